/* telegram.js — the Telegram.WebApp glue: whether we run inside Telegram (or in demo mode in a plain browser),
   which kind of device the buyer is on, the theme, haptics, native alerts and links, and the MainButton (a
   look-alike bar outside Telegram). Back and moving between pages are router.js's. */
(function (ES) {
  "use strict";

  const tg = (window.Telegram && window.Telegram.WebApp) || null;
  const body = document.body;

  ES.tg = tg;
  ES.demo = body.dataset.demo === "1";
  // Inside Telegram the client hands us signed initData; in a plain browser it is empty.
  ES.inTelegram = Boolean(tg && tg.initData);

  function supports(version) {
    return Boolean(ES.inTelegram && tg.isVersionAtLeast && tg.isVersionAtLeast(version));
  }
  ES.supports = supports;

  /**
   * The buyer's device: "ios", "android", "desktop" (Telegram Desktop, macOS, Web K / Web A) or "unknown", from
   * Telegram's WebApp.platform; outside Telegram (demo) from the browser's user agent.
   */
  ES.platform = function () {
    const platform = ES.inTelegram ? String(tg.platform || "") : "";
    if (platform === "ios") return "ios";
    if (/^android/.test(platform)) return "android";
    if (platform && platform !== "unknown") return "desktop";
    const agent = navigator.userAgent;
    return /iPhone|iPad|iPod/.test(agent) ? "ios" : /Android/.test(agent) ? "android" : "unknown";
  };

  ES.applyTheme = function () {
    if (!tg) return;
    if (ES.inTelegram) document.documentElement.dataset.scheme = tg.colorScheme === "dark" ? "dark" : "light";
    if (supports("6.1")) {
      try {
        tg.setHeaderColor("secondary_bg_color");
        tg.setBackgroundColor("secondary_bg_color");
        if (supports("7.10") && tg.setBottomBarColor) tg.setBottomBarColor("secondary_bg_color");
      } catch (e) { /* cosmetic only */ }
    }
  };

  ES.haptic = function (style) {
    if (!supports("6.1") || !tg.HapticFeedback) return;
    try { tg.HapticFeedback.impactOccurred(style || "light"); } catch (e) { /* cosmetic only */ }
  };
  ES.notify = function (type) {
    if (!supports("6.1") || !tg.HapticFeedback) return;
    try { tg.HapticFeedback.notificationOccurred(type); } catch (e) { /* cosmetic only */ }
  };

  /** Telegram's native alert inside Telegram; a plain alert in a browser. */
  ES.alert = function (text) {
    return new Promise((resolve) => {
      const message = String(text).slice(0, 256); // popups take at most 256 characters
      if (supports("6.2")) {
        try { tg.showAlert(message, () => resolve()); return; } catch (e) { /* fall through */ }
      }
      window.alert(message);
      resolve();
    });
  };

  ES.openLink = function (url) {
    if (ES.inTelegram && tg.openLink) tg.openLink(url);
    else window.open(url, "_blank", "noopener");
  };

  /** The one primary action: Telegram's MainButton, or a look-alike bar in a plain browser (demo). */
  let mainHandler = null;
  ES.mainButton = {
    set(text, onClick) {
      this.hide();
      mainHandler = onClick;
      if (ES.inTelegram) {
        tg.MainButton.setParams({ text, is_visible: true, is_active: true });
        tg.MainButton.onClick(mainHandler);
      } else {
        const button = document.getElementById("main-button");
        button.textContent = text;
        button.hidden = false;
        button.disabled = false;
        button.onclick = mainHandler;
        body.classList.add("has-main-button");
      }
    },
    progress(on) {
      if (ES.inTelegram) {
        if (on) tg.MainButton.showProgress(false); else tg.MainButton.hideProgress();
      } else {
        const button = document.getElementById("main-button");
        button.disabled = Boolean(on);
        button.classList.toggle("busy", Boolean(on));
      }
    },
    hide() {
      if (ES.inTelegram) {
        if (mainHandler) tg.MainButton.offClick(mainHandler);
        tg.MainButton.hideProgress();
        tg.MainButton.hide();
      } else {
        const button = document.getElementById("main-button");
        button.hidden = true;
        button.onclick = null;
        button.classList.remove("busy");
        body.classList.remove("has-main-button");
      }
      mainHandler = null;
    },
  };

  /** Light haptics on taps of interactive rows, tabs and buttons; links to Telegram / the web open natively. */
  ES.initTaps = function () {
    document.addEventListener("click", (event) => {
      const target = event.target.closest("a, button");
      if (!target) return;
      if (target.matches(".row, .seg button, .tabbar a, .button, .copy, .lang-switch button")) ES.haptic("light");
      // In Telegram Web's iframe telegram-web-app.js opens t.me links itself (and says so): never twice.
      if (event.defaultPrevented) return;
      if (target.matches("a[data-telegram-link]") && ES.inTelegram && tg.openTelegramLink) {
        event.preventDefault();
        tg.openTelegramLink(target.href);
      } else if (target.matches("a[data-external]")) {
        event.preventDefault();
        ES.openLink(target.href);
      }
    });
  };
})(window.ES);
