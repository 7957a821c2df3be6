/* esimsdata admin console: the shop's settings (issue 12; the API is docs/settings.md). Three views added to
   admin.js's through window.esimsAdmin:
   - Prices: base markup, Stars markup, Stars fee, USD per Star and a markup per country, with a preview of
     example plans (now → after) computed by the server from the unsaved values, and the history of changes;
   - Promo codes: the list with uses and revenue, a form to create or edit one, pause/resume and delete;
   - Help texts: the support contact, the FAQ and refund policy in English and Russian.
   A refused value's reason (a 400's `fields`) is shown next to its field and nothing the owner typed is lost.
   As in admin.js, values from the API are written as text (textContent, createElement), never as HTML. */
(function () {
  "use strict";

  const admin = window.esimsAdmin;
  const { $, el, api, failed, showOutcome, confirmStep, count, stars, usd, when, text } = admin;

  const PREVIEW_DELAY_MS = 400;
  const PRICE_KEYS = ["markup", "stars_markup", "stars_fee", "stars_usd_rate"];
  const TEXTS = [["faq", "FAQ"], ["refund_policy", "Refund policy"]];
  const LANGS = [["en", "English"], ["ru", "Russian"]];
  const TEXT_MAX = 5000;
  // What a change in the history is called; texts.<text>.<lang> are named from TEXTS and LANGS.
  const SETTING_NAMES = { markup: "Base markup", stars_markup: "Stars markup", stars_fee: "Stars fee",
    stars_usd_rate: "USD per Star", country_markups: "Markup per country", support_contact: "Support contact",
    texts: "Help texts" };
  const PLAN_KINDS = { local: "Every country plan", regional: "Every regional plan" };
  const PROMO_STATES = { active: ["Active", "ok"], paused: ["Paused", "wait"], scheduled: ["Scheduled", ""],
    ended: ["Ended", ""], used_up: ["Used up", "bad"] };

  const state = {
    settings: null,       // GET /api/admin/settings, as last answered
    countries: null,      // GET /api/admin/countries
    promos: [],
    editing: null,        // the promo code the form edits; "" for a new one; null while the form is closed
    destinations: [],     // the promo form's chosen destinations
    resets: new Set(),    // help texts ("faq.ru", "support_contact") to put back to built-in when saving
    previewTimer: null,
    seq: { settings: 0, countries: 0, promos: 0, preview: 0 },
  };

  // ---- shared ----------------------------------------------------------------------------------------------

  /* GET url and render(answer) if this is still the newest load of its kind and the owner still signed in. */
  async function latest(kind, url, render) {
    const seq = ++state.seq[kind];
    try {
      const answer = await api(url);
      if (seq === state.seq[kind] && admin.signedIn()) render(answer);
    } catch (error) {
      if (seq === state.seq[kind]) failed(error);
    }
  }

  // An input shows the value in force unless the owner has changed it (then force, after a save, replaces it).
  function setSaved(input, value, force) {
    const shown = value === null || value === undefined ? "" : String(value);
    if (force || input.dataset.saved === undefined || input.value === input.dataset.saved) input.value = shown;
    input.dataset.saved = shown;
  }

  function changed(input) {
    return input.dataset.saved !== undefined && input.value !== input.dataset.saved;
  }

  function clearFieldErrors(form) {
    for (const node of form.querySelectorAll("[data-error-for]")) {
      node.textContent = "";
      node.hidden = true;
    }
    for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  }

  /* A refused form's reasons ({key: reason}) next to their fields: the node [data-error-for~=key] (else the one
     for the key's first part: "destinations.3" → "destinations") shows it and its inputs are marked invalid;
     with scroll, the first of them is brought into view (after a save, never while the owner types).
     Returns the reasons no node could show, as "key: reason". */
  function showFieldErrors(form, fields, scroll) {
    clearFieldErrors(form);
    const unplaced = [];
    let first = null;
    for (const [key, reason] of Object.entries(fields || {})) {
      const node = form.querySelector(`[data-error-for~="${CSS.escape(key)}"]`)
        || form.querySelector(`[data-error-for~="${CSS.escape(key.split(".")[0])}"]`);
      if (!node) { unplaced.push(`${key}: ${text(reason)}`); continue; }
      node.textContent = node.textContent ? `${node.textContent} ${text(reason)}` : text(reason);
      node.hidden = false;
      const owner = node.closest("li[data-country]");
      if (owner) owner.hidden = false;
      if (node.id) {
        for (const input of form.querySelectorAll(`[aria-describedby~="${CSS.escape(node.id)}"]`)) {
          input.setAttribute("aria-invalid", "true");
          first = first || input;
        }
      }
    }
    if (first && scroll) first.scrollIntoView({ block: "center" });
    return unplaced;
  }

  // The outcome of a refused save: the server's message, and any reason that has no field of its own.
  function refusedOutcome(node, form, error) {
    const unplaced = error.fields ? showFieldErrors(form, error.fields, true) : [];
    showOutcome(node, { message: [error.message, ...unplaced].join(" "), tone: "bad" });
  }

  function busy(button, working, words) {
    if (working) {
      button.dataset.words = button.textContent;
      button.textContent = words;
    } else if (button.dataset.words) {
      button.textContent = button.dataset.words;
    }
    button.disabled = working;
  }

  function loadSettings() {
    return latest("settings", "/api/admin/settings", (answer) => applySettings(answer, null));
  }

  function loadCountries() {
    return latest("countries", "/api/admin/countries", (answer) => {
      state.countries = answer;
      renderCountries(false);
      renderDestinationPicker();
      renderChosenDestinations();
      if (state.promos.length) renderPromos();
    });
  }

  /* The settings in force into both forms (an input the owner has changed keeps its value, except in the form
     just saved: force "prices" or "help"), and the history. */
  function applySettings(answer, force) {
    state.settings = answer;
    const defaults = answer.defaults || {};
    for (const key of PRICE_KEYS) {
      setSaved($("set-" + key), answer[key], force === "prices");
      document.querySelector(`[data-default-for="${key}"] [data-default]`).textContent = text(defaults[key]);
    }
    renderCountries(force === "prices");
    if (force === "help") state.resets.clear();
    setSaved($("set-support_contact"), answer.support_contact, force === "help");
    const texts = answer.texts || {};
    for (const [key] of TEXTS) {
      for (const [lang] of LANGS) setSaved(textArea(key, lang), (texts[key] || {})[lang], force === "help");
    }
    renderHelpStates();
    renderHistory(answer.history || []);
    $("prices-status").textContent = "";
    if (!$("view-prices").hidden) schedulePreview(0);
  }

  // ---- prices ----------------------------------------------------------------------------------------------

  function percentValue(value) {
    return value.trim().replace(/\s*%$/, "");
  }

  // The Prices form as it stands, in PUT's words (the preview takes the same).
  function pricesDraft() {
    const body = {};
    for (const key of PRICE_KEYS) body[key] = $("set-" + key).value.trim();
    // Only once the countries are drawn: without them (catalogue loading, a failed request) the form has no
    // country inputs, and an empty map would wipe every country markup on save.
    if (!state.countries) return body;
    const markups = {};
    for (const input of $("country-list").querySelectorAll("input[data-country]")) {
      const value = percentValue(input.value);
      if (value !== "") markups[input.dataset.country] = value;
    }
    body.country_markups = markups;
    return body;
  }

  function sameNumber(a, b) {
    if (String(a) === String(b)) return true;
    return a !== "" && b !== "" && b !== null && b !== undefined && Number.isFinite(Number(a)) && Number(a) === Number(b);
  }

  // Only what differs from the settings in force: the history then records what the owner meant to change.
  function pricesChanges() {
    const draft = pricesDraft();
    const saved = state.settings || {};
    const body = {};
    for (const key of PRICE_KEYS) if (!sameNumber(draft[key], saved[key])) body[key] = draft[key];
    if (!draft.country_markups) return body;
    const before = saved.country_markups || {};
    const after = draft.country_markups;
    const codes = new Set([...Object.keys(before), ...Object.keys(after)]);
    if ([...codes].some((code) => !(code in before && code in after && sameNumber(after[code], before[code])))) {
      body.country_markups = after;
    }
    return body;
  }

  function countryName(code) {
    const known = state.countries && (state.countries.countries || []).find((c) => c.code === code);
    return known ? known.name : code;
  }

  function renderCountries(force) {
    if (!state.settings || !state.countries) return;
    const list = $("country-list");
    const typed = {};
    if (!force) {
      for (const input of list.querySelectorAll("input[data-country]")) {
        if (changed(input)) typed[input.dataset.country] = input.value;
      }
    }
    const saved = state.settings.country_markups || {};
    const countries = [...(state.countries.countries || [])];
    const known = new Set(countries.map((c) => c.code));
    for (const code of Object.keys(saved)) if (!known.has(code)) countries.push({ code, name: code });
    const own = (c) => (c.code in saved ? 0 : 1);
    countries.sort((a, b) => own(a) - own(b) || String(a.name).localeCompare(String(b.name)));
    list.replaceChildren(...countries.map((c) => countryRow(c, saved[c.code], typed[c.code])));
    filterCountries();
  }

  function countryRow(country, saved, typed) {
    const code = country.code;
    const id = "cm-" + code;
    const input = el("input", { id, type: "text", inputmode: "decimal", autocomplete: "off", spellcheck: "false",
      "data-country": code, placeholder: "none", "aria-describedby": `price-${id} err-${id}` });
    setSaved(input, saved, true);
    if (typed !== undefined) input.value = typed;
    const clear = el("button", { type: "button", class: "ghost small", "data-clear": code, text: "✕",
      "aria-label": `No markup of its own for ${country.name}`, title: "No markup of its own" });
    clear.addEventListener("click", () => {
      input.value = "";
      input.dispatchEvent(new Event("input", { bubbles: true }));
      input.focus();
    });
    const price = country.plan_count
      ? `from ${usd(country.from_usd)} · ${stars(country.from_stars)} · cost ${usd(country.from_cost_usd)}`
      : "no plans in the catalogue now";
    return el("li", { class: "country", "data-country": code,
      "data-search": `${country.name} ${code} ${country.region || ""}`.toLowerCase() }, [
      el("div", { class: "country-what" }, [
        el("label", { for: id }, [el("span", { class: "flag", "aria-hidden": "true", text: country.flag || "" }),
          country.flag ? " " : "", el("span", { class: "country-name", text: text(country.name) }), " ",
          el("span", { class: "mono hint", text: code })]),
        el("span", { id: `price-${id}`, class: "sub", text: price }),
      ]),
      el("div", { class: "with-unit country-input" }, [input, el("span", { class: "unit", text: "%" }), clear]),
      el("p", { id: `err-${id}`, class: "field-error", "data-error-for": `country_markups.${code}`, hidden: true }),
    ]);
  }

  // The search keeps in view what the owner has changed and what was refused, whatever it matches.
  function filterCountries() {
    const words = $("country-q").value.trim().toLowerCase();
    const rows = [...$("country-list").children];
    let shown = 0;
    for (const row of rows) {
      const visible = !words || row.dataset.search.includes(words) || changed(row.querySelector("input"))
        || !row.querySelector(".field-error").hidden;
      row.hidden = !visible;
      if (visible) shown += 1;
    }
    const own = Object.keys((state.settings && state.settings.country_markups) || {}).length;
    $("countries-summary").textContent = words
      ? (shown ? `${count(shown)} of ${count(rows.length)} countries` : "No country matches.")
      : `${count(rows.length)} countries; ${count(own)} with a markup of their own`;
  }

  function schedulePreview(delay) {
    clearTimeout(state.previewTimer);
    if (!state.settings) return;
    $("preview-status").textContent = "Working out the prices…";
    $("preview-list").classList.add("stale");
    state.previewTimer = setTimeout(runPreview, delay === undefined ? PREVIEW_DELAY_MS : delay);
  }

  async function runPreview() {
    const seq = ++state.seq.preview;
    const form = $("prices-form");
    try {
      const answer = await api("/api/admin/settings/preview", { method: "POST", body: pricesDraft() });
      if (seq !== state.seq.preview || !admin.signedIn()) return;
      clearFieldErrors(form);
      filterCountries();
      renderPreview(answer.examples || []);
    } catch (error) {
      if (seq !== state.seq.preview || error.status === 401) return;
      if (error.fields) {
        const unplaced = showFieldErrors(form, error.fields);
        $("preview-status").textContent = ["Mend the values marked in red to see their prices.", ...unplaced].join(" ");
      } else {
        $("preview-status").textContent = `No preview: ${error.message}`;
      }
    }
  }

  function renderPreview(examples) {
    const moved = examples.filter((e) => (e.now || {}).usd !== (e.after || {}).usd
      || (e.now || {}).stars !== (e.after || {}).stars).length;
    $("preview-list").classList.remove("stale");
    $("preview-list").replaceChildren(...examples.map(previewRow));
    $("preview-status").textContent = !examples.length ? "No plans to show."
      : moved ? `With your unsaved values, ${count(moved)} of these ${count(examples.length)} plans change price.`
        : "These are the prices in force: your values change nothing yet.";
  }

  function previewRow(example) {
    const now = example.now || {};
    const after = example.after || {};
    const up = Number(after.stars) > Number(now.stars) || Number(after.usd) > Number(now.usd);
    const down = Number(after.stars) < Number(now.stars) || Number(after.usd) < Number(now.usd);
    const tone = up ? "up" : down ? "down" : "same";
    return el("li", { class: `example ${tone}`, "data-bundle": example.bundle_name, "data-area": example.area }, [
      el("div", { class: "example-what" }, [el("strong", { text: text(example.area_name) }), " ",
        el("span", { class: "hint", text: text(example.description) })]),
      el("div", { class: "example-prices" }, [
        el("span", { class: "now", text: `${usd(now.usd)} · ${stars(now.stars)}` }),
        el("span", { class: "arrow", "aria-hidden": "true", text: tone === "up" ? "↗" : tone === "down" ? "↘" : "→" }),
        el("span", { class: "visually-hidden", text: " becomes " }),
        el("span", { class: "after", text: `${usd(after.usd)} · ${stars(after.stars)}` }),
      ]),
      el("span", { class: "sub", text: `cost ${usd(example.cost_usd)} · ${text(example.bundle_name)}` }),
    ]);
  }

  function describeChanges(body) {
    const parts = [];
    for (const key of PRICE_KEYS) if (key in body) parts.push(`${SETTING_NAMES[key]} ${body[key]}`);
    if (body.country_markups) {
      const before = (state.settings && state.settings.country_markups) || {};
      for (const code of new Set([...Object.keys(before), ...Object.keys(body.country_markups)])) {
        const after = body.country_markups[code];
        if (after === undefined) parts.push(`${countryName(code)}: no markup of its own`);
        else if (!sameNumber(after, before[code])) parts.push(`${countryName(code)} ${after} %`);
      }
    }
    return parts.join(", ");
  }

  async function savePrices(event) {
    event.preventDefault();
    if (!state.settings) return;
    await saveSettings("prices", pricesChanges(), {
      describe: describeChanges,
      nothing: "Nothing to save: every value is the one in force.",
      saved: (words) => `Saved: ${words}. The catalogue and new invoices use the new prices within seconds; `
        + "an order already awaiting payment keeps its price.",
      after: loadCountries,  // their lowest prices, now at the new markups
      scroll: true,
    });
  }

  /* Save one settings view's changes with PUT /api/admin/settings (its form, outcome and button are
     #<view>-form, -outcome and -save): "nothing to save", the server's reasons by field, or `saved(words)`. */
  async function saveSettings(view, body, { describe, nothing, saved, after, scroll }) {
    const form = $(view + "-form");
    const outcome = $(view + "-outcome");
    if (!Object.keys(body).length) {
      showOutcome(outcome, { message: nothing, tone: "ok" });
      return;
    }
    const button = $(view + "-save");
    busy(button, true, "Saving…");
    showOutcome(outcome, null);
    try {
      const words = describe(body);
      const answer = await api("/api/admin/settings", { method: "PUT", body });
      clearFieldErrors(form);
      applySettings(answer, view);
      showOutcome(outcome, { message: saved(words), tone: "ok" });
      if (after) after();
    } catch (error) {
      if (error.status === 401) return;
      refusedOutcome(outcome, form, error);
    } finally {
      busy(button, false);
    }
    outcome.focus({ preventScroll: !scroll });
  }

  function undoPrices() {
    for (const key of PRICE_KEYS) setSaved($("set-" + key), state.settings ? state.settings[key] : "", true);
    renderCountries(true);
    clearFieldErrors($("prices-form"));
    showOutcome($("prices-outcome"), null);
    schedulePreview(0);
  }

  // ---- history ---------------------------------------------------------------------------------------------

  function settingName(key) {
    const parts = String(key).split(".");
    if (parts[0] === "texts" && parts.length === 3) {
      const title = (TEXTS.find(([k]) => k === parts[1]) || [])[1] || parts[1];
      const language = (LANGS.find(([l]) => l === parts[2]) || [])[1] || parts[2];
      return `${title} (${language})`;
    }
    if (parts[0] === "country_markups" && parts.length === 2) return `Markup for ${countryName(parts[1])}`;
    if (parts[0] === "promocodes" && parts.length >= 2) return `Promo code ${parts.slice(1).join(".")}`;
    return SETTING_NAMES[key] || String(key);
  }

  // A value in the history, short: long texts are cut (the whole is the title), a map of markups is listed.
  // Nothing (null) is the default a setting falls back to, or a markup or promo code that was not there.
  function historyValue(key, value, side) {
    if (value === null || value === undefined || value === "") {
      const kind = String(key).split(".")[0];
      if (kind === "texts") return ["built-in text", null];
      if (kind === "country_markups") return ["none", null];
      if (kind === "promocodes") return [side === "from" ? "new" : "deleted", null];
      return ["default", null];
    }
    let words;
    if (typeof value === "object") {
      const entries = Object.entries(value);
      words = !entries.length ? "none"
        : String(key).startsWith("country_markups") ? entries.map(([code, pct]) => `${code} ${text(pct)} %`).join(", ")
          : JSON.stringify(value);
    } else {
      words = String(value) + (String(key).startsWith("country_markups.") ? " %" : "");
    }
    const flat = words.replace(/\s+/g, " ");
    return flat.length > 80 ? [flat.slice(0, 79) + "…", words] : [flat, null];
  }

  function renderHistory(history) {
    const list = $("settings-history");
    if (!history.length) {
      list.replaceChildren(el("li", { class: "hint none", text: "No changes yet: every value is the default." }));
      return;
    }
    list.replaceChildren(...history.map((entry) => el("li", {}, [
      el("span", { class: "history-when" }, [el("time", { datetime: entry.at || null, text: when(entry.at) }),
        entry.by ? ` · by ${text(entry.by)}` : ""]),
      el("ul", { class: "changes" }, Object.entries(entry.changes || {}).map(([key, change]) => {
        const [from, fromAll] = historyValue(key, (change || {}).from, "from");
        const [to, toAll] = historyValue(key, (change || {}).to, "to");
        return el("li", { "data-change": key }, [el("strong", { text: settingName(key) + ": " }),
          el("span", { class: "from", title: fromAll, text: from }), " → ",
          el("span", { class: "to", title: toAll, text: to })]);
      })),
    ])));
  }

  // ---- promo codes -----------------------------------------------------------------------------------------

  function loadPromos() {
    $("promos-summary").textContent = state.promos.length ? $("promos-summary").textContent : "Loading promo codes…";
    return latest("promos", "/api/admin/promocodes", (answer) => {
      state.promos = answer.promocodes || [];
      renderPromos();
    });
  }

  function destinationName(code) {
    if (PLAN_KINDS[code]) return PLAN_KINDS[code];
    const catalogue = state.countries || {};
    const country = (catalogue.countries || []).find((c) => c.code === code);
    if (country) return `${country.flag ? country.flag + " " : ""}${country.name}`;
    const region = (catalogue.regions || []).find((r) => r.code === code);
    if (region) return text(region.name);
    if (code === "global") return (catalogue.global && catalogue.global.name) || "Global";
    return text(code);
  }

  function discountText(promo) {
    if (promo.percent_off !== null && promo.percent_off !== undefined) return `${text(promo.percent_off)} % off`;
    return `${usd(promo.amount_off_usd)} off`;
  }

  function renderPromos() {
    const rows = state.promos.map(promoRow);
    $("promos-body").replaceChildren(...(rows.length ? rows : [el("tr", { class: "empty" },
      el("td", { colspan: 8, text: "No promo codes yet: + New code makes one." }))]));
    const live = state.promos.filter((p) => p.state === "active").length;
    $("promos-summary").textContent = state.promos.length
      ? `${count(state.promos.length)} ${state.promos.length === 1 ? "code" : "codes"}, ${count(live)} active; newest first`
      : "";
  }

  function promoRow(promo) {
    const [words, tone] = PROMO_STATES[promo.state] || [text(promo.state), ""];
    const badge = el("span", { class: `badge tone-${tone || "none"}`, "data-state": promo.state }, words);
    const act = (action, label, style) => el("button", { type: "button", class: `${style} small`,
      "data-promo-action": action, text: label });
    const paused = promo.active === false;
    const buttons = [act("edit", "Edit", "ghost"), act(paused ? "resume" : "pause", paused ? "Resume" : "Pause", "ghost"),
      act("delete", "Delete", "ghost danger-text")];
    const confirmBox = el("div", { class: "confirm", hidden: true, role: "group", "aria-label": "Confirm deleting" });
    buttons[0].addEventListener("click", () => openPromoForm(promo));
    buttons[1].addEventListener("click", () => setPromoActive(promo, paused));
    buttons[2].addEventListener("click", () => askDelete(promo, confirmBox));
    const held = [promo.held ? `${count(promo.held)} held` : "", promo.refunded ? `${count(promo.refunded)} refunded` : ""]
      .filter(Boolean).join(", ");
    const dests = promo.destinations || [];
    return el("tr", { "data-code": promo.code, "data-state": promo.state }, [
      el("td", { class: "c-code", "data-label": "Code" }, [el("strong", { class: "mono", text: text(promo.code) }),
        promo.once_per_buyer ? el("span", { class: "sub", text: "once per buyer" }) : null]),
      el("td", { class: "c-off", "data-label": "Discount", text: discountText(promo) }),
      el("td", { class: "c-state", "data-label": "State" }, badge),
      el("td", { class: "c-uses num", "data-label": "Uses" }, [
        el("span", { text: `${count(promo.uses)} / ${promo.max_uses ? count(promo.max_uses) : "no limit"}` }),
        held ? el("span", { class: "sub", text: held }) : null]),
      el("td", { class: "c-revenue num", "data-label": "Revenue" }, [el("span", { text: usd(promo.revenue_usd) }),
        el("span", { class: "sub", text: stars(promo.revenue_stars) }),
        Number(promo.discount_usd) ? el("span", { class: "sub", text: `${usd(promo.discount_usd)} given off` }) : null]),
      el("td", { class: "c-dates", "data-label": "Dates" }, promo.starts_at || promo.ends_at ? [
        el("span", { text: promo.starts_at ? `from ${when(promo.starts_at)}` : "from now" }),
        el("span", { class: "sub", text: promo.ends_at ? `until ${when(promo.ends_at)}` : "no end" })]
        : el("span", { text: "Any time" })),
      el("td", { class: "c-dests", "data-label": "For" }, dests.length
        ? el("span", { text: dests.map(destinationName).join(", ") }) : el("span", { class: "hint", text: "Every plan" })),
      el("td", { class: "c-act" }, [el("div", { class: "row-buttons" }, buttons), confirmBox]),
    ]);
  }

  function promoPath(promo) {
    return "/api/admin/promocodes/" + encodeURIComponent(promo.code);
  }

  function promoOutcome(message, tone) {
    const node = $("promos-outcome");
    showOutcome(node, { message, tone });
    node.focus({ preventScroll: false });
  }

  async function setPromoActive(promo, active) {
    try {
      const answer = await api(promoPath(promo), { method: "PUT", body: { active } });
      const now = answer.promocode || {};
      const [words] = PROMO_STATES[now.state] || [text(now.state)];
      await loadPromos();
      promoOutcome(active ? `${promo.code} is on again (${words}).`
        : `${promo.code} is paused: buyers who enter it are told it is not valid until you resume it.`, "ok");
    } catch (error) {
      if (error.status === 401) return;
      await loadPromos();
      promoOutcome(error.message, "bad");
    }
  }

  function askDelete(promo, box) {
    const buttons = [...$("promos-body").querySelectorAll("button[data-promo-action]")];
    for (const button of buttons) button.disabled = true;
    showOutcome($("promos-outcome"), null);
    confirmStep(box, {
      question: `Delete the code ${promo.code}?`,
      note: "Buyers can no longer use it; orders keep the code they were sold with. This cannot be undone.",
      name: "delete", yes: "Yes, delete", danger: true,
      onCancel: () => {
        for (const button of buttons) button.disabled = false;
        box.closest("tr").querySelector('[data-promo-action="delete"]').focus();
      },
      onYes: () => deletePromo(promo),
    });
  }

  async function deletePromo(promo) {
    let message;
    let tone = "ok";
    try {
      await api(promoPath(promo), { method: "DELETE" });
      message = `${promo.code} was deleted.`;
      if (state.editing === promo.code) closePromoForm();
    } catch (error) {
      if (error.status === 401) return;
      message = error.status === 404 ? `${promo.code} was deleted already.` : error.message;
      tone = error.status === 404 ? "ok" : "bad";
    }
    await loadPromos();
    promoOutcome(message, tone);
  }

  // <input type=datetime-local> is the owner's own time; the API takes and gives ISO 8601 with a zone.
  function localInput(iso) {
    const date = new Date(iso || "");
    if (!iso || Number.isNaN(date.getTime())) return "";
    const two = (n) => String(n).padStart(2, "0");
    return `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())}T${two(date.getHours())}:${two(date.getMinutes())}`;
  }

  function isoFromInput(value) {
    if (!value) return null;
    const date = new Date(value);
    return Number.isNaN(date.getTime()) ? value : date.toISOString();
  }

  function discountKind() {
    return document.querySelector('input[name="promo-kind"]:checked').value;
  }

  function openPromoForm(promo) {
    const form = $("promo-form");
    const editing = Boolean(promo);
    state.editing = editing ? promo.code : "";
    clearFieldErrors(form);
    showOutcome($("promo-form-outcome"), null);
    $("promo-form-title").textContent = editing ? `Edit ${promo.code}` : "New promo code";
    $("promo-save").textContent = editing ? "Save changes" : "Create code";
    const code = $("promo-code");
    code.value = editing ? promo.code : "";
    code.readOnly = editing;
    const amount = editing && (promo.percent_off === null || promo.percent_off === undefined);
    for (const radio of form.querySelectorAll('input[name="promo-kind"]')) {
      radio.checked = radio.value === (amount ? "amount" : "percent");
    }
    $("promo-off").value = editing ? text(amount ? promo.amount_off_usd : promo.percent_off).replace("—", "") : "";
    $("promo-starts").value = editing ? localInput(promo.starts_at) : "";
    $("promo-ends").value = editing ? localInput(promo.ends_at) : "";
    $("promo-max").value = editing && promo.max_uses ? String(promo.max_uses) : "";
    $("promo-once").checked = editing ? Boolean(promo.once_per_buyer) : false;
    $("promo-active").checked = editing ? promo.active !== false : true;
    state.destinations = editing ? [...(promo.destinations || [])] : [];
    renderUnit();
    renderDestinationPicker();
    renderChosenDestinations();
    form.hidden = false;
    form.scrollIntoView({ block: "start" });
    (editing ? $("promo-off") : code).focus({ preventScroll: true });
  }

  function closePromoForm() {
    state.editing = null;
    $("promo-form").hidden = true;
    clearFieldErrors($("promo-form"));
  }

  function renderUnit() {
    const amount = discountKind() === "amount";
    $("promo-off-unit").textContent = amount ? "USD" : "%";
    $("promo-off").setAttribute("aria-label", amount ? "USD off" : "Percent off");
  }

  function renderDestinationPicker() {
    const select = $("promo-dest-pick");
    const catalogue = state.countries || {};
    const chosen = new Set(state.destinations);
    const option = (code, label) => el("option", { value: code, disabled: chosen.has(code), text: label });
    const groups = [
      el("optgroup", { label: "Kinds of plan" }, Object.entries(PLAN_KINDS).map(([code, label]) => option(code, label))),
      el("optgroup", { label: "Global and regions" }, [option("global", destinationName("global")),
        ...(catalogue.regions || []).map((r) => option(r.code, text(r.name)))]),
      el("optgroup", { label: "Countries" }, (catalogue.countries || []).map((c) =>
        option(c.code, `${c.flag ? c.flag + " " : ""}${c.name} (${c.code})`))),
    ];
    select.replaceChildren(el("option", { value: "", text: "Add a destination or kind of plan…" }), ...groups);
    select.value = "";
  }

  function renderChosenDestinations() {
    const list = $("promo-dests");
    list.replaceChildren(...state.destinations.map((code) => {
      const remove = el("button", { type: "button", class: "chip-remove", "aria-label": `Remove ${destinationName(code)}`,
        text: "✕" });
      remove.addEventListener("click", () => {
        state.destinations = state.destinations.filter((d) => d !== code);
        renderDestinationPicker();
        renderChosenDestinations();
        $("promo-dest-pick").focus();
      });
      return el("li", { class: "chip", "data-destination": code }, [el("span", { text: destinationName(code) }), remove]);
    }));
    $("promo-dests-hint").textContent = state.destinations.length
      ? "Only plans for these destinations or kinds." : "None chosen: every plan.";
  }

  function promoBody() {
    const body = {};
    if (!state.editing) body.code = $("promo-code").value.trim();
    const off = $("promo-off").value.trim();
    body[discountKind() === "amount" ? "amount_off_usd" : "percent_off"] = off === "" ? null : off;
    body.starts_at = isoFromInput($("promo-starts").value);
    body.ends_at = isoFromInput($("promo-ends").value);
    const max = $("promo-max").value.trim();
    body.max_uses = max === "" ? null : /^\d+$/.test(max) ? Number(max) : max;
    body.once_per_buyer = $("promo-once").checked;
    body.active = $("promo-active").checked;
    body.destinations = [...state.destinations];
    return state.editing ? promoChanges(body) : body;
  }

  /* An edit sends only what the owner changed in the form: a form opened before someone paused the code (or
     before another change) does not quietly put the old values back. */
  function promoChanges(body) {
    const was = state.promos.find((p) => p.code === state.editing);
    if (!was) return body;
    const time = (value) => (value ? new Date(value).getTime() : null);
    const same = {
      percent_off: (v) => was.percent_off !== null && sameNumber(v === null ? "" : v, was.percent_off),
      amount_off_usd: (v) => was.amount_off_usd !== null && sameNumber(v === null ? "" : v, was.amount_off_usd),
      starts_at: (v) => time(v) === time(was.starts_at),
      ends_at: (v) => time(v) === time(was.ends_at),
      destinations: (v) => JSON.stringify(v) === JSON.stringify(was.destinations || []),
    };
    const changes = {};
    for (const [key, value] of Object.entries(body)) {
      if (!(same[key] ? same[key](value) : value === was[key])) changes[key] = value;
    }
    return changes;
  }

  async function savePromo(event) {
    event.preventDefault();
    const form = $("promo-form");
    const outcome = $("promo-form-outcome");
    const editing = state.editing;
    const button = $("promo-save");
    if (!$("promo-off").value.trim()) {  // a code always has its discount (the server refuses one without)
      showFieldErrors(form, { percent_off: "Give the discount: a percent or an amount in USD." }, true);
      return;
    }
    busy(button, true, "Saving…");
    showOutcome(outcome, null);
    try {
      const body = promoBody();
      const answer = editing
        ? await api(promoPath({ code: editing }), { method: "PUT", body })
        : await api("/api/admin/promocodes", { method: "POST", body });
      const saved = answer.promocode || {};
      const [words] = PROMO_STATES[saved.state] || [text(saved.state)];
      busy(button, false);
      closePromoForm();
      await loadPromos();
      promoOutcome(editing ? `${saved.code || editing} was saved (${words}).`
        : `${saved.code || body.code} was created (${words}): ${discountText(saved)}.`, "ok");
    } catch (error) {
      busy(button, false);
      if (error.status === 401) return;
      if (error.status === 409) showFieldErrors(form, { code: error.message }, true);
      if (error.status === 404) {
        closePromoForm();
        await loadPromos();
        promoOutcome(`${editing} no longer exists: it was deleted meanwhile.`, "bad");
        return;
      }
      refusedOutcome(outcome, form, error);
      outcome.focus({ preventScroll: true });
    }
  }

  // ---- help texts ------------------------------------------------------------------------------------------

  function textArea(key, lang) {
    return $(`text-${key}-${lang}`);
  }

  function textDefault(key, lang) {
    const texts = (state.settings && state.settings.defaults && state.settings.defaults.texts) || {};
    return (texts[key] || {})[lang] || "";
  }

  function tagState(tag, words, tone) {
    tag.textContent = words;
    tag.className = `tag tone-${tone}`;
  }

  function renderHelpStates() {
    const settings = state.settings;
    if (!settings) return;
    const custom = settings.custom_texts || {};
    for (const [key] of TEXTS) {
      for (const [lang] of LANGS) {
        const name = `${key}.${lang}`;
        const box = document.querySelector(`[data-text="${name}"]`);
        const area = textArea(key, lang);
        const own = Boolean((custom[key] || {})[lang]);
        const tag = box.querySelector("[data-text-state]");
        if (state.resets.has(name)) tagState(tag, "Built-in after saving", "wait");
        else if (changed(area)) tagState(tag, "Not saved yet", "wait");
        else if (own) tagState(tag, "Your text", "ok");
        else tagState(tag, "Built-in text", "none");
        box.querySelector("[data-reset]").disabled = state.resets.has(name) || (!own && !changed(area));
        const length = [...area.value].length;
        const counter = box.querySelector("[data-count]");
        counter.textContent = `${count(length)} / ${count(TEXT_MAX)} characters`;
        counter.classList.toggle("over", length > TEXT_MAX);
      }
    }
    const support = $("set-support_contact");
    const fallback = (settings.defaults || {}).support_contact;
    const own = settings.support_contact !== fallback;
    const tag = document.querySelector(".support [data-text-state]");
    if (state.resets.has("support_contact")) tagState(tag, "Default after saving", "wait");
    else if (changed(support)) tagState(tag, "Not saved yet", "wait");
    else tagState(tag, own ? "Yours" : "Default", own ? "ok" : "none");
    document.querySelector('[data-reset="support_contact"]').disabled = state.resets.has("support_contact")
      || (!own && !changed(support));
    document.querySelector(".support [data-default-label]").textContent = fallback ? `Default: ${fallback}` : "";
  }

  function resetText(name) {
    const settings = state.settings;
    if (!settings) return;
    if (name === "support_contact") {
      const input = $("set-support_contact");
      input.value = (settings.defaults || {}).support_contact || "";
      if (settings.support_contact !== (settings.defaults || {}).support_contact) state.resets.add(name);
      input.focus();
    } else {
      const [key, lang] = name.split(".");
      const area = textArea(key, lang);
      area.value = textDefault(key, lang);
      if (((settings.custom_texts || {})[key] || {})[lang]) state.resets.add(name);
      area.focus();
    }
    renderHelpStates();
  }

  // Only what the owner changed: texts are merged per text and language, null puts the built-in one back.
  function helpChanges() {
    const body = {};
    const support = $("set-support_contact");
    if (state.resets.has("support_contact")) body.support_contact = null;
    else if (changed(support)) body.support_contact = support.value.trim();
    const texts = {};
    for (const [key] of TEXTS) {
      for (const [lang] of LANGS) {
        const area = textArea(key, lang);
        let value;
        if (state.resets.has(`${key}.${lang}`)) value = null;
        else if (changed(area)) value = area.value;
        else continue;
        texts[key] = { ...(texts[key] || {}), [lang]: value };
      }
    }
    if (Object.keys(texts).length) body.texts = texts;
    return body;
  }

  function describeHelp(body) {
    const names = "support_contact" in body ? ["Support contact"] : [];
    for (const [key, langs] of Object.entries(body.texts || {})) {
      for (const lang of Object.keys(langs)) names.push(settingName(`texts.${key}.${lang}`));
    }
    return names.join(", ");
  }

  async function saveHelp(event) {
    event.preventDefault();
    if (!state.settings) return;
    await saveSettings("help", helpChanges(), {
      describe: describeHelp,
      nothing: "Nothing to save: the texts are the ones in force.",
      saved: (words) => `Saved: ${words}. The help page shows it now.`,
    });
  }

  function undoHelp() {
    state.resets.clear();
    const settings = state.settings || {};
    setSaved($("set-support_contact"), settings.support_contact, true);
    for (const [key] of TEXTS) {
      for (const [lang] of LANGS) setSaved(textArea(key, lang), ((settings.texts || {})[key] || {})[lang], true);
    }
    clearFieldErrors($("help-form"));
    showOutcome($("help-outcome"), null);
    renderHelpStates();
  }

  // ---- views and wiring ------------------------------------------------------------------------------------

  function showPrices() {
    if (!state.settings) $("prices-status").textContent = "Loading the settings…";
    loadSettings();
    loadCountries();
  }

  function showPromos() {
    loadPromos();
    loadCountries();
  }

  function showHelp() {
    loadSettings();
  }

  // Signed out: nothing the console showed stays in the page, typed values included.
  function signedOut() {
    clearTimeout(state.previewTimer);
    for (const kind of Object.keys(state.seq)) state.seq[kind] += 1;
    Object.assign(state, { settings: null, countries: null, promos: [], editing: null, destinations: [] });
    state.resets.clear();
    for (const id of ["country-list", "preview-list", "settings-history", "promos-body", "promo-dests", "preview-status",
      "countries-summary", "promos-summary"]) {
      $(id).replaceChildren();
    }
    for (const form of [$("prices-form"), $("promo-form"), $("help-form")]) {
      form.reset();
      clearFieldErrors(form);
      for (const input of form.querySelectorAll("[data-saved]")) delete input.dataset.saved;
    }
    $("promo-form").hidden = true;
    for (const id of ["prices-outcome", "promo-form-outcome", "promos-outcome", "help-outcome"]) showOutcome($(id), null);
  }

  function wire() {
    const prices = $("prices-form");
    prices.addEventListener("submit", savePrices);
    prices.addEventListener("input", (event) => {
      if (event.target.id === "country-q") { filterCountries(); return; }
      showOutcome($("prices-outcome"), null);
      schedulePreview();
    });
    for (const button of prices.querySelectorAll("[data-default-for]")) {
      button.addEventListener("click", () => {
        const input = $("set-" + button.dataset.defaultFor);
        input.value = button.querySelector("[data-default]").textContent;
        input.dispatchEvent(new Event("input", { bubbles: true }));
        input.focus();
      });
    }
    $("prices-undo").addEventListener("click", undoPrices);

    $("promo-new").addEventListener("click", () => openPromoForm(null));
    $("promo-cancel").addEventListener("click", () => { closePromoForm(); $("promo-new").focus(); });
    $("promo-form").addEventListener("submit", savePromo);
    for (const radio of document.querySelectorAll('input[name="promo-kind"]')) radio.addEventListener("change", renderUnit);
    $("promo-dest-pick").addEventListener("change", (event) => {
      const code = event.target.value;
      if (code && !state.destinations.includes(code)) state.destinations.push(code);
      renderDestinationPicker();
      renderChosenDestinations();
    });

    const help = $("help-form");
    help.addEventListener("submit", saveHelp);
    help.addEventListener("input", (event) => {
      const name = event.target.name;
      if (name) state.resets.delete(name);
      showOutcome($("help-outcome"), null);
      renderHelpStates();
    });
    for (const button of help.querySelectorAll("[data-reset]")) {
      button.addEventListener("click", () => resetText(button.dataset.reset));
    }

    admin.addView("prices", { show: showPrices, refresh: showPrices, signedOut });
    admin.addView("promos", { show: showPromos, refresh: showPromos, signedOut });
    admin.addView("help", { show: showHelp, refresh: showHelp, signedOut });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", wire);
  else wire();
})();
