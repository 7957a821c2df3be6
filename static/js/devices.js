/* devices.js — "Will it work on my phone?" (templates/_device_check.html) on the checkout and help pages: what
   Telegram says the buyer is on (WebApp.platform), a search over the eSIM-capable phones in static/devices.json
   (fetched once, when the buyer first goes to search — never on the first screen), whose count is announced
   once. Also the help page's script, which is only this. */
(function (ES) {
  "use strict";

  const { el, t, tn } = ES;
  const SHOWN = 8; // rows shown; the count says how many more match
  const PLATFORM_TEXT = { ios: "device_platform_ios", android: "device_platform_android",
    desktop: "device_platform_desktop", unknown: "device_platform_unknown" };
  let list = null; // promise of every model: { name, note, search, compact }

  function models() {
    if (!list) {
      list = fetch(document.body.dataset.devices, { credentials: "same-origin" })
        .then((response) => { if (!response.ok) throw new Error(String(response.status)); return response.json(); })
        .then((data) => data.brands.flatMap((brand) => brand.models.map((model) => {
          const name = model.startsWith(brand.brand) ? model : brand.brand + " " + model;
          const search = ES.norm(name);
          return { name, note: brand.note || null, search, compact: search.replace(/\s+/g, "") };
        })));
      list.catch(() => { list = null; }); // a dropped connection: the next keystroke asks again
    }
    return list;
  }

  function row(model) {
    return el("li", { class: "device" }, [
      el("span", { class: "main" }, [
        el("span", { class: "name", text: model.name }),
        model.note ? el("span", { class: "sub", text: t(model.note) }) : null,
      ]),
      el("span", { class: "chip ok", text: t("device_yes") }),
    ]);
  }

  /** Wire the device check inside `root` (its platform line, search, results and count). */
  ES.deviceCheck = function (root) {
    const input = ES.$("#device-search", root);
    const results = ES.$("#device-results", root);
    const count = ES.$("#device-count", root);
    const platform = ES.$("#device-platform", root);
    let found = null; // matches of the current search, null while there is none
    let said = null;

    function draw() {
      platform.textContent = t(PLATFORM_TEXT[ES.platform()]);
      const raw = input.value.trim();
      results.hidden = !(raw && found && found.length);
      results.replaceChildren(...(raw && found ? found.slice(0, SHOWN).map(row) : []));
      let text = "";
      if (raw && found) {
        text = found.length ? tn("device_found_n", found.length) : t("device_none", { q: raw });
        if (found.length > SHOWN) text += " " + t("device_more");
      }
      count.textContent = text;
      if (text && text !== said) ES.announce(text);
      said = text;
    }

    async function search() {
      const q = ES.norm(input.value);
      if (!q) {
        found = null;
        draw();
        return;
      }
      let all;
      try {
        all = await models();
      } catch (e) {
        count.textContent = t("error_network");
        return;
      }
      if (ES.norm(input.value) !== q) return; // the buyer typed on meanwhile; that search draws
      const words = q.split(/\s+/);
      const compact = q.replace(/\s+/g, "");
      found = all.filter((m) => words.every((w) => m.search.includes(w)) || m.compact.includes(compact));
      draw();
    }

    input.addEventListener("focus", () => { models().catch(() => {}); }, { once: true });
    input.addEventListener("input", search);
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") input.blur(); // hides the phone keyboard, as "Search" on it suggests
    });
    ES.onLang(draw);
    draw();
  };

  ES.pages.help = () => ES.deviceCheck(document.getElementById("device-check"));
})(window.ES);
