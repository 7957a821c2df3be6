/* A stand-in for https://telegram.org/js/telegram-web-app.js in browser tests (see fake_telegram.py, which
   replaces __CONFIG__): window.Telegram.WebApp as Telegram's client sets it up for a user, recording what the
   page does in window.__tg, and openInvoice paying through window.__payInvoice (a Python hook). */
(function () {
  const cfg = __CONFIG__;
  const root = document.documentElement;
  // What the pages did, kept across page loads of the tab (as one Telegram session): calls, invoices, haptics.
  let saved = null;
  try { saved = JSON.parse(sessionStorage.getItem("__tg") || "null"); } catch (e) { saved = null; }
  const log = (window.__tg = saved || { calls: [], invoices: [], haptics: [], links: [] });
  const push = (list, item) => { log[list].push(item); sessionStorage.setItem("__tg", JSON.stringify(log)); };
  function css() {
    for (const [key, value] of Object.entries(cfg.theme)) root.style.setProperty("--tg-theme-" + key.replace(/_/g, "-"), value);
    root.style.setProperty("--tg-color-scheme", cfg.colorScheme);
    for (const side of ["top", "bottom", "left", "right"]) {
      root.style.setProperty("--tg-safe-area-inset-" + side, "0px");
      root.style.setProperty("--tg-content-safe-area-inset-" + side, "0px");
    }
    root.style.setProperty("--tg-viewport-height", window.innerHeight + "px");
    root.style.setProperty("--tg-viewport-stable-height", window.innerHeight + "px");
  }
  css();
  // For screenshots: draw the MainButton where Telegram's client shows it, under the page.
  function draw(b) {
    if (!cfg.drawMainButton) return;
    let bar = document.getElementById("__tg_main_button");
    if (!bar) {
      bar = document.createElement("div");
      bar.id = "__tg_main_button";
      bar.style.cssText = "position:fixed;left:0;right:0;bottom:0;z-index:99;padding:8px 12px 10px;" +
        "background:" + (cfg.theme.bottom_bar_bg_color || cfg.theme.bg_color);
      const inner = document.createElement("div");
      inner.style.cssText = "height:46px;border-radius:10px;display:flex;align-items:center;justify-content:center;" +
        "font:600 16px -apple-system,Roboto,sans-serif;background:" + cfg.theme.button_color + ";color:" + cfg.theme.button_text_color;
      bar.append(inner);
      (document.body || document.documentElement).append(bar);
    }
    bar.firstChild.textContent = b.text;
    bar.style.display = b.isVisible ? "block" : "none";
    document.documentElement.style.setProperty("--tg-content-safe-area-inset-bottom", b.isVisible ? "64px" : "0px");
  }
  function bottomButton(name) {
    const handlers = [];
    const b = {
      text: "Continue", isVisible: false, isActive: true, isProgressVisible: false,
      setText(text) { b.text = String(text); return redraw(); },
      show() { b.isVisible = true; return redraw(); },
      hide() { b.isVisible = false; return redraw(); },
      enable() { b.isActive = true; return b; },
      disable() { b.isActive = false; return b; },
      showProgress() { b.isProgressVisible = true; push("calls", name + ".showProgress"); return b; },
      hideProgress() { b.isProgressVisible = false; return b; },
      setParams(p) {
        if ("text" in p) b.text = String(p.text);
        if ("is_visible" in p) b.isVisible = Boolean(p.is_visible);
        if ("is_active" in p) b.isActive = Boolean(p.is_active);
        return redraw();
      },
      onClick(fn) { handlers.push(fn); return b; },
      offClick(fn) { const i = handlers.indexOf(fn); if (i >= 0) handlers.splice(i, 1); return b; },
      // What a tap on Telegram's native button does: run the page's handlers.
      _tap() { if (b.isVisible && b.isActive) handlers.slice().forEach((fn) => fn()); return handlers.length; },
    };
    function redraw() {
      if (name === "MainButton") {
        if (document.body) draw(b); else document.addEventListener("DOMContentLoaded", () => draw(b));
      }
      return b;
    }
    return b;
  }
  const back = { isVisible: false, handlers: [],
    show() { back.isVisible = true; return back; }, hide() { back.isVisible = false; return back; },
    onClick(fn) { back.handlers.push(fn); return back; }, offClick(fn) { back.handlers = back.handlers.filter((h) => h !== fn); return back; },
    _tap() { back.handlers.slice().forEach((fn) => fn()); } };
  const events = {};
  const [major, minor] = cfg.version.split(".").map(Number);
  window.Telegram = { WebApp: {
    initData: cfg.initData, initDataUnsafe: cfg.initDataUnsafe, version: cfg.version, platform: cfg.platform,
    colorScheme: cfg.colorScheme, themeParams: cfg.theme, isExpanded: false,
    viewportHeight: window.innerHeight, viewportStableHeight: window.innerHeight,
    safeAreaInset: { top: 0, bottom: 0, left: 0, right: 0 }, contentSafeAreaInset: { top: 0, bottom: 0, left: 0, right: 0 },
    MainButton: bottomButton("MainButton"), SecondaryButton: bottomButton("SecondaryButton"), BackButton: back,
    HapticFeedback: {
      impactOccurred(style) { push("haptics", "impact:" + style); },
      notificationOccurred(type) { push("haptics", "notification:" + type); },
      selectionChanged() { push("haptics", "selection"); },
    },
    ready() { push("calls", "ready"); }, expand() { push("calls", "expand"); window.Telegram.WebApp.isExpanded = true; },
    close() { push("calls", "close"); },
    isVersionAtLeast(v) { const [a, b] = String(v).split(".").map(Number); return major > a || (major === a && minor >= (b || 0)); },
    setHeaderColor(c) { push("calls", "setHeaderColor:" + c); }, setBackgroundColor(c) { push("calls", "setBackgroundColor:" + c); },
    setBottomBarColor(c) { push("calls", "setBottomBarColor:" + c); },
    enableClosingConfirmation() {}, disableClosingConfirmation() {},
    onEvent(name, fn) { (events[name] = events[name] || []).push(fn); },
    offEvent(name, fn) { events[name] = (events[name] || []).filter((h) => h !== fn); },
    openLink(url) { push("links", url); }, openTelegramLink(url) { push("links", url); },
    showAlert(message, cb) { push("calls", "showAlert:" + message); if (cb) setTimeout(cb, 0); },
    showPopup(params, cb) { push("calls", "showPopup:" + params.message); if (cb) setTimeout(() => cb(null), 0); },
    showConfirm(message, cb) { push("calls", "showConfirm:" + message); if (cb) setTimeout(() => cb(true), 0); },
    openInvoice(url, cb) {
      const ok = /^https:\/\/t\.me\/(\$|invoice\/)[A-Za-z0-9\-_=]+$/.test(url);
      if (!ok) throw new Error("WebAppInvoiceUrlInvalid");  // as the real client checks the link
      push("invoices", url);
      const settle = (status) => { push("calls", "invoiceClosed:" + status); if (cb) cb(status); };
      if (window.__payInvoice) window.__payInvoice(url).then(settle, () => settle("failed"));
      else setTimeout(() => settle("cancelled"), 0);
    },
  } };
})();
