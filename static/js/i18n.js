/* i18n.js — the buyer's language: the ru/en dictionary from static/i18n.json (window.ES_I18N, put at the top of
   the bundle by assets.py), ES.t / ES.tn (plurals), re-translating the page's [data-i18n*] elements, and the
   EN/RU switch (kept in memory and localStorage over Telegram's language_code; for the server in a cookie, or
   where the web view refuses the cookie, in the URL's ?lang= — ES.langInUrl, which router.js writes). */
(function (ES) {
  "use strict";

  const DICT = window.ES_I18N || { en: {} };
  const langListeners = { kept: [], view: [] };
  let chosen = null; // the switch's choice, in memory whatever storage allows
  ES.lang = document.documentElement.lang === "ru" ? "ru" : "en";
  ES.langInUrl = false;

  // Only our own languages: a ?lang= naming an object's property (constructor, __proto__) is not one.
  const known = (lang) => typeof lang === "string" && Object.prototype.hasOwnProperty.call(DICT, lang);

  ES.detectLang = function () {
    for (const lang of [chosen, ES.local.get("esims.lang"), ES.query("lang")]) {
      if (known(lang)) return lang;
    }
    const user = ES.tg && ES.tg.initDataUnsafe && ES.tg.initDataUnsafe.user;
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

  /**
   * Re-translate what the server wrote (templates/_i18n.html marks it with its key), and show only the current
   * language's copy of what the server wrote in each language ([data-lang-only]: the owner's help texts).
   */
  ES.applyI18n = function (root) {
    for (const node of ES.$$("[data-i18n]", root)) node.textContent = ES.t(node.dataset.i18n);
    for (const node of ES.$$("[data-lang-only]", root)) node.hidden = node.dataset.langOnly !== ES.lang;
    for (const node of ES.$$("[data-i18n-placeholder]", root)) node.placeholder = ES.t(node.dataset.i18nPlaceholder);
    for (const node of ES.$$("[data-i18n-aria]", root)) node.setAttribute("aria-label", ES.t(node.dataset.i18nAria));
    document.documentElement.lang = ES.lang;
    for (const button of ES.$$(".lang-switch button")) {
      button.setAttribute("aria-pressed", String(button.dataset.lang === ES.lang));
    }
  };

  function cookieHolds(lang) {
    try { return document.cookie.split(/;\s*/).indexOf("lang=" + lang) >= 0; } catch (e) { return false; }
  }

  /** Switch language; `explicit` (the switch) is remembered over Telegram's language_code. */
  ES.setLang = function (lang, explicit) {
    if (!known(lang)) return;
    const changed = lang !== ES.lang || document.documentElement.lang !== lang;
    ES.lang = lang;
    if (explicit) {
      chosen = lang;
      ES.local.set("esims.lang", lang);
    }
    // A reload is rendered by the server in this language: the cookie tells it, or the URL where no cookie is kept.
    document.cookie = "lang=" + lang + "; path=/; max-age=31536000; samesite=lax";
    ES.langInUrl = !cookieHolds(lang);
    if (changed) {
      ES.applyI18n(document);
      for (const listener of langListeners.kept.concat(langListeners.view)) listener();
    }
  };
  /** Call `listener` on a language change: while the current view is shown, or for good with `keep`. */
  ES.onLang = (listener, keep) => langListeners[keep ? "kept" : "view"].push(listener);
  ES.dropViewListeners = () => { langListeners.view.length = 0; };

  ES.initLangSwitch = function () {
    for (const button of ES.$$(".lang-switch button")) {
      button.addEventListener("click", () => ES.setLang(button.dataset.lang, true));
    }
  };
})(window.ES);
