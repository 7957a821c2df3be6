/* boot.js — last in the bundle: tells Telegram we are ready, settles language and theme, wires the language
   switch and haptics, then hands the page the server rendered to router.js, which runs it and every page after
   it in this document. Outside Telegram (and not in demo mode) it shows how to open the shop instead. */
(function (ES) {
  "use strict";

  const tg = ES.tg;
  if (tg) {
    try {
      tg.ready(); // as early as possible: Telegram hides its placeholder now, not after every image
      if (ES.inTelegram) tg.expand();
    } catch (e) { /* an old client: carry on */ }
  }
  ES.setLang(ES.detectLang(), false);
  ES.applyTheme();
  if (tg && ES.inTelegram && tg.onEvent) tg.onEvent("themeChanged", ES.applyTheme);
  ES.initLangSwitch();
  ES.initTaps();

  if (!ES.inTelegram && !ES.demo) {
    document.getElementById("main").hidden = true;
    document.getElementById("outside").hidden = false;
    for (const tabbar of ES.$$(".tabbar")) tabbar.hidden = true;
    return;
  }
  ES.startRouter();
})(window.ES);
