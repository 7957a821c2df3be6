/* boot.js — last in the bundle: tells Telegram we are ready, settles language and theme, wires Back, the
   language switch and haptics, then runs the page named by <body data-page>. Outside Telegram (and not in
   demo mode) it shows how to open the shop instead. */
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
  ES.initNavigation();
  ES.mainButton.hide(); // Telegram keeps the MainButton across pages: each page starts without one

  const page = document.body.dataset.page;
  if (!ES.inTelegram && !ES.demo) {
    document.getElementById("main").hidden = true;
    document.getElementById("outside").hidden = false;
    for (const tabbar of ES.$$(".tabbar")) tabbar.hidden = true;
    return;
  }
  if (ES.pages[page]) ES.pages[page]();
})(window.ES);
