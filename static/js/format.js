/* format.js — how numbers, prices, data, days, dates and places read in the buyer's language: Stars and USD,
   GB as eSIM Go counts them, flags, country / region / global names and the URL of each area's plans; and
   ES.norm, the one way a search compares text. */
(function (ES) {
  "use strict";

  /** Text as searches compare it: lower case, accents dropped, trimmed. */
  ES.norm = (text) => String(text || "").toLowerCase().normalize("NFD").replace(/[\u0300-\u036f]/g, "").trim();
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
  /** A country's name in the buyer's language (the catalogue has English names only; the browser knows more). */
  ES.countryName = function (code, fallback) {
    if ((ES.lang === "en" && fallback) || !/^[A-Z]{2}$/.test(code || "")) return fallback || code;
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
})(window.ES);
