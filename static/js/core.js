/* core.js — what every page shares: the Telegram.WebApp wrapper (theme, MainButton, BackButton, haptics,
   popups), the language (ru/en dictionary from static/i18n.json, switch kept in localStorage), API calls
   carrying the buyer's initData, DOM building that only ever sets text (never HTML from data), formatting.
   Pages register themselves on ES.pages; boot.js runs the one named by <body data-page>. */
(function () {
  "use strict";

  const ES = (window.ES = { pages: {} });
  const tg = (window.Telegram && window.Telegram.WebApp) || null;
  const body = document.body;
  const DICT = window.ES_I18N || { en: {} };

  ES.tg = tg;
  ES.demo = body.dataset.demo === "1";
  // Inside Telegram the client hands us signed initData; in a plain browser it is empty.
  ES.inTelegram = Boolean(tg && tg.initData);

  // ---- small utilities ------------------------------------------------------------------------------

  function storage(kind) {
    // Web views may refuse storage (private mode, strict settings): the app must still work without it.
    return {
      get(key) { try { return window[kind].getItem(key); } catch (e) { return null; } },
      set(key, value) { try { window[kind].setItem(key, value); } catch (e) { /* not fatal */ } },
    };
  }
  ES.local = storage("localStorage");
  ES.session = storage("sessionStorage");
  ES.$ = (selector, root) => (root || document).querySelector(selector);
  ES.$$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));
  ES.query = (name) => new URLSearchParams(location.search).get(name);

  /** Build an element. Children and `text` become text nodes: data never reaches innerHTML. */
  ES.el = function (tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of [].concat(children === undefined ? [] : children)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  };

  // ---- language -------------------------------------------------------------------------------------

  const langListeners = [];
  ES.lang = document.documentElement.lang === "ru" ? "ru" : "en";

  ES.detectLang = function () {
    const chosen = ES.local.get("esims.lang");
    if (chosen && DICT[chosen]) return chosen;
    const user = tg && tg.initDataUnsafe && tg.initDataUnsafe.user;
    if (user && user.language_code) return /^ru/i.test(user.language_code) ? "ru" : "en";
    return ES.lang; // the server's guess (cookie or Accept-Language)
  };

  ES.t = function (key, vars) {
    const table = DICT[ES.lang] || {};
    let text = table[key] !== undefined ? table[key] : (DICT.en[key] !== undefined ? DICT.en[key] : key);
    for (const [name, value] of Object.entries(vars || {})) text = text.split("{" + name + "}").join(String(value));
    return text;
  };

  const pluralRules = {};
  /** Plural forms: key_one / key_few / key_many / key_other, chosen by Intl.PluralRules. */
  ES.tn = function (key, n, vars) {
    const rules = pluralRules[ES.lang] || (pluralRules[ES.lang] = new Intl.PluralRules(ES.lang));
    const form = key + "_" + rules.select(n);
    const table = DICT[ES.lang] || {};
    const chosen = table[form] !== undefined ? form : key + "_other";
    return ES.t(chosen, Object.assign({ n: ES.number(n) }, vars));
  };

  ES.applyI18n = function (root) {
    for (const node of ES.$$("[data-i18n]", root)) node.textContent = ES.t(node.dataset.i18n);
    for (const node of ES.$$("[data-i18n-placeholder]", root)) node.placeholder = ES.t(node.dataset.i18nPlaceholder);
    for (const node of ES.$$("[data-i18n-aria]", root)) node.setAttribute("aria-label", ES.t(node.dataset.i18nAria));
    document.documentElement.lang = ES.lang;
    for (const button of ES.$$(".lang-switch button")) {
      button.setAttribute("aria-pressed", String(button.dataset.lang === ES.lang));
    }
  };

  /** Switch language; `explicit` (the switch) is remembered over Telegram's language_code. */
  ES.setLang = function (lang, explicit) {
    if (!DICT[lang]) return;
    const changed = lang !== ES.lang || document.documentElement.lang !== lang;
    ES.lang = lang;
    if (explicit) ES.local.set("esims.lang", lang);
    // The server renders the next page in this language, so it arrives without a flash of the other one.
    document.cookie = "lang=" + lang + "; path=/; max-age=31536000; samesite=lax";
    if (changed) {
      ES.applyI18n(document);
      for (const listener of langListeners) listener();
    }
  };
  ES.onLang = (listener) => langListeners.push(listener);

  // ---- formatting -----------------------------------------------------------------------------------

  ES.number = (n, digits) => new Intl.NumberFormat(ES.lang, { maximumFractionDigits: digits || 0 }).format(n);
  ES.stars = (n) => ES.number(n) + " ⭐";
  // Money arrives as a decimal string; converting for display only (never for a price) is safe.
  ES.usd = (text) => new Intl.NumberFormat(ES.lang, { style: "currency", currency: "USD" }).format(Number(text));
  // 1 GB = 1000 MB, as eSIM Go counts (SPEC §5).
  ES.gb = (mb) => ES.t("gb", { n: ES.number(mb / 1000, 2) });
  ES.bytes = (bytes) => ES.t("gb", { n: ES.number(bytes / 1e9, bytes < 1e9 ? 2 : 1) });
  ES.days = (n) => ES.tn("days_n", n);
  ES.speed = function (list) {
    const sorted = (list || []).slice().sort();
    return sorted.slice(-2).join("/");
  };
  ES.date = function (iso) {
    const date = new Date(iso);
    if (isNaN(date)) return "";
    return new Intl.DateTimeFormat(ES.lang, { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" })
      .format(date);
  };
  ES.flag = function (code) {
    if (!/^[A-Z]{2}$/.test(code || "")) return code === "global" ? "🌐" : "🌍";
    return String.fromCodePoint(...Array.from(code, (ch) => 0x1f1e6 + ch.charCodeAt(0) - 65));
  };

  const displayNames = {};
  /** A country's name in the buyer's language (the catalogue has English names only). */
  ES.countryName = function (code, fallback) {
    if (ES.lang === "en" || !/^[A-Z]{2}$/.test(code || "")) return fallback || code;
    try {
      const names = displayNames[ES.lang] || (displayNames[ES.lang] = new Intl.DisplayNames([ES.lang], { type: "region" }));
      const name = names.of(code);
      return name && name !== code ? name : fallback || code;
    } catch (e) {
      return fallback || code;
    }
  };
  ES.areaKind = (code) => (/^[A-Z]{2}$/.test(code || "") ? "local" : code === "global" ? "global" : "regional");
  ES.areaName = function (kind, code, fallback) {
    if (kind === "local") return ES.countryName(code, fallback);
    if (kind === "global") return ES.t("global_name");
    const key = "region_" + code;
    const translated = ES.t(key);
    return translated !== key ? translated : fallback || code;
  };
  ES.areaHref = function (kind, code) {
    if (kind === "local") return "/country/" + encodeURIComponent(code);
    if (kind === "global") return "/global";
    return "/region/" + encodeURIComponent(code);
  };
  /** "1 GB · 7 days" or "Unlimited · 7 days" for a plan or an order. */
  ES.planText = function (plan) {
    const data = plan.unlimited ? ES.t("unlimited") : plan.data_mb ? ES.gb(plan.data_mb) : null;
    const days = plan.duration_days ? ES.days(plan.duration_days) : null;
    return [data, days].filter(Boolean).join(" · ");
  };

  // ---- API ------------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, status, code) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }
  ES.ApiError = ApiError;

  /** initData for `Authorization: tma …`: Telegram's, or in demo mode a signed demo buyer's. */
  ES.initData = async function () {
    if (ES.inTelegram) return tg.initData;
    if (!ES.demo) throw new ApiError(ES.t("outside_title"), 401, "unauthorized");
    const cached = JSON.parse(ES.session.get("esims.demoInit") || "null");
    if (cached && Date.now() - cached.at < 3600 * 1000) return cached.value;
    const answer = await ES.api("/api/demo/init-data?lang=" + ES.lang);
    ES.session.set("esims.demoInit", JSON.stringify({ at: Date.now(), value: answer.init_data }));
    return answer.init_data;
  };

  /** JSON API call; throws ApiError with a message fit to show the buyer. */
  ES.api = async function (path, options) {
    const opts = options || {};
    const headers = { Accept: "application/json" };
    if (opts.auth) headers.Authorization = "tma " + (await ES.initData());
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method: opts.method || "GET", headers, credentials: "same-origin", cache: "no-store",
        body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
      });
    } catch (e) {
      throw new ApiError(ES.t("error_network"), 0, "network");
    }
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      throw new ApiError((data && data.message) || ES.t("error_generic"), response.status, data && data.error);
    }
    return data;
  };

  // ---- Telegram ------------------------------------------------------------------------------------

  function supports(version) {
    return Boolean(ES.inTelegram && tg.isVersionAtLeast && tg.isVersionAtLeast(version));
  }
  ES.supports = supports;

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

  let toastTimer = null;
  ES.toast = function (text, ms) {
    const box = document.getElementById("toast");
    if (!box) return;
    box.textContent = text;
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { box.hidden = true; }, ms || 2200);
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

  /** Where Back goes: the previous in-app page, or the page's parent when we came from elsewhere. */
  ES.parent = (ES.$(".back-link") && ES.$(".back-link").getAttribute("href")) || "/";
  ES.backToParent = false;
  ES.back = function () {
    let fromUs = false;
    try { fromUs = Boolean(document.referrer) && new URL(document.referrer).origin === location.origin; } catch (e) { /* no */ }
    if (!ES.backToParent && fromUs && history.length > 1) history.back();
    else location.href = ES.parent;
  };

  ES.initNavigation = function () {
    const root = body.dataset.root === "1";
    const back = () => { ES.haptic("light"); ES.back(); };
    if (ES.inTelegram) {
      if (root) tg.BackButton.hide();
      else { tg.BackButton.onClick(back); tg.BackButton.show(); }
    } else {
      const link = ES.$(".back-link");
      if (link && !root) {
        link.hidden = false;
        link.addEventListener("click", (event) => { event.preventDefault(); back(); });
      }
    }
    // Light haptics on taps of interactive rows, tabs and buttons; links to Telegram / the web open natively.
    document.addEventListener("click", (event) => {
      const target = event.target.closest("a, button");
      if (!target) return;
      if (target.matches(".row, .seg button, .tabbar a, .button, .copy, .lang-switch button")) ES.haptic("light");
      if (target.matches("a[data-telegram-link]") && ES.inTelegram && tg.openTelegramLink) {
        event.preventDefault();
        tg.openTelegramLink(target.href);
      } else if (target.matches("a[data-external]")) {
        event.preventDefault();
        ES.openLink(target.href);
      }
    });
  };

  ES.initLangSwitch = function () {
    for (const button of ES.$$(".lang-switch button")) {
      button.addEventListener("click", () => ES.setLang(button.dataset.lang, true));
    }
  };

  // ---- shared page states ---------------------------------------------------------------------------

  /** Replace `box` with a centred state: icon or spinner, title, text, optional button. */
  ES.state = function (box, opts) {
    const parts = [];
    if (opts.spinner) parts.push(ES.el("div", { class: "spinner", "aria-hidden": "true" }));
    else if (opts.icon) parts.push(ES.el("div", { class: "state-icon", "aria-hidden": "true", text: opts.icon }));
    if (opts.title) parts.push(ES.el("h2", { text: opts.title }));
    if (opts.text) parts.push(ES.el("p", { text: opts.text }));
    if (opts.button) {
      const b = opts.button;
      parts.push(b.href
        ? ES.el("a", { class: "button" + (b.secondary ? " secondary" : ""), href: b.href, text: b.text })
        : ES.el("button", { type: "button", class: "button" + (b.secondary ? " secondary" : ""), text: b.text, onclick: b.onClick }));
    }
    const node = ES.el("div", { class: "state" }, parts);
    box.replaceChildren(node);
    return node;
  };

  ES.errorState = function (box, error, retry) {
    ES.state(box, {
      icon: "⚠️", title: error && error.message ? error.message : ES.t("error_generic"),
      button: retry ? { text: ES.t("retry"), onClick: retry, secondary: true } : null,
    });
  };

  ES.copy = async function (text) {
    let done = false;
    try {
      await navigator.clipboard.writeText(text);
      done = true;
    } catch (e) {
      // Older web views have no async clipboard: copy through a selected, off-screen text area.
      const area = ES.el("textarea", { readonly: true, style: "position:fixed;top:-1000px;opacity:0" });
      area.value = text;
      body.append(area);
      area.select();
      try { done = document.execCommand("copy"); } catch (err) { done = false; }
      area.remove();
    }
    if (done) {
      ES.notify("success");
      ES.toast(ES.t("copied"));
    }
    return done;
  };
})();
