/* api.js — the one door to our JSON API: ES.api() (no-store, same-origin) carrying the buyer's initData as
   `Authorization: tma …` when asked (Telegram's, or in demo mode a signed demo buyer's), and ES.ApiError with a
   message fit to show the buyer, its HTTP status and error code (what ES.load decides on). ES.catalogueApi()
   keeps the catalogue's answers in memory for a while, so moving back and forth between pages asks again only
   for what it has not seen. */
(function (ES) {
  "use strict";

  class ApiError extends Error {
    constructor(message, status, code) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  let demoBuyer = null;
  /** initData for `Authorization: tma …`: Telegram's, or in demo mode a signed demo buyer's. */
  async function initData() {
    if (ES.inTelegram) return ES.tg.initData;
    if (!ES.demo) throw new ApiError(ES.t("outside_title"), 401, "unauthorized");
    const cached = demoBuyer || JSON.parse(ES.session.get("esims.demoInit") || "null");
    if (cached && Date.now() - cached.at < 3600 * 1000) return cached.value;
    const answer = await ES.api("/api/demo/init-data?lang=" + ES.lang);
    demoBuyer = { at: Date.now(), value: answer.init_data };
    ES.session.set("esims.demoInit", JSON.stringify(demoBuyer));
    return answer.init_data;
  }

  /** JSON API call; throws ApiError with a message fit to show the buyer. */
  ES.api = async function (path, options) {
    const opts = options || {};
    const headers = { Accept: "application/json" };
    if (opts.auth) headers.Authorization = "tma " + (await initData());
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

  // The catalogue changes daily at most: its answers are reused for 10 minutes (failures never are).
  const FRESH_MS = 10 * 60 * 1000;
  const answers = new Map();

  /** GET a public catalogue path, from memory when it was asked lately. */
  ES.catalogueApi = function (path) {
    const kept = answers.get(path);
    if (kept && Date.now() - kept.at < FRESH_MS) return kept.promise;
    const promise = ES.api(path);
    answers.set(path, { at: Date.now(), promise });
    promise.catch(() => { if (answers.get(path) && answers.get(path).promise === promise) answers.delete(path); });
    return promise;
  };
  /** Keep an answer the page already holds (a plan from its list) for a later ES.catalogueApi(path). */
  ES.catalogueKeep = (path, answer) => answers.set(path, { at: Date.now(), promise: Promise.resolve(answer) });
})(window.ES);
