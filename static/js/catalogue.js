/* catalogue.js — the shop's first screen (/): every destination from one GET /api/esimgo/countries,
   Countries / Regions / Global tabs, and a search over all of them in English and the buyer's language whose
   result count is announced once (not every row re-read). */
(function (ES) {
  "use strict";

  const { el, t, tn } = ES;
  // Where most of our buyers travel: shown first on the Countries tab while the search is empty.
  const POPULAR = ["TR", "TH", "AE", "EG", "GE", "VN", "CN", "US"];
  // Names people type that neither the English nor the localised name contains.
  const ALIASES = {
    AE: "uae emirates dubai оаэ эмираты дубай", US: "usa america сша америка", GB: "uk britain england англия британия",
    KR: "korea корея", CZ: "czechia чехия", TR: "turkiye турция", NL: "holland голландия",
  };

  const norm = ES.norm;
  let chosenTab = null; // the tab chosen earlier in this launch (and this session, where storage allows)

  ES.pages.catalogue = function () {
    const box = document.getElementById("destinations");
    const search = document.getElementById("search");
    const tabs = document.getElementById("kind-tabs");
    let data = null;
    let tab = chosenTab || ES.session.get("esims.tab") || "local";
    let announced = null;

    function entry(kind, item) {
      const name = ES.areaName(kind, item.code, item.name);
      let sub;
      if (kind === "local") sub = tn("plans_n", item.plan_count);
      else if (kind === "global") sub = t("global_sub", { n: tn("countries_n", item.countries) });
      else sub = tn("countries_n", item.countries) + " · " + tn("plans_n", item.plan_count);
      const words = [name, item.name, kind === "local" ? ALIASES[item.code] : ""].join(" ");
      return {
        code: item.code, name, sub, flag: item.flag, stars: item.from_stars, usd: item.from_usd,
        href: ES.areaHref(kind, item.code), search: norm(words), iso: kind === "local" ? item.code.toLowerCase() : "",
      };
    }

    function row(e) {
      return el("a", { class: "row", href: e.href, "data-code": e.code }, [
        el("span", { class: "flag", "aria-hidden": "true", text: e.flag }),
        el("span", { class: "main" }, [el("div", { class: "name", text: e.name }), el("div", { class: "sub", text: e.sub })]),
        el("span", { class: "price" }, [
          el("div", { class: "stars" }, [el("span", { class: "from", text: t("from") + " " }), ES.stars(e.stars)]),
          el("div", { class: "usd", text: ES.usd(e.usd) }),
        ]),
        el("span", { class: "chev", "aria-hidden": "true", text: "›" }),
      ]);
    }

    function section(title, entries) {
      const nodes = [];
      if (title) nodes.push(el("h2", { class: "section-title", text: title }));
      nodes.push(el("div", { class: "list" }, entries.map(row)));
      return nodes;
    }

    function render() {
      if (!data) return;
      const raw = search.value.trim();
      const q = norm(raw);
      tabs.classList.toggle("searching", Boolean(q));
      const byName = (a, b) => a.name.localeCompare(b.name, ES.lang);
      const countries = data.countries.map((c) => entry("local", c)).sort(byName);
      const regions = data.regions.map((r) => entry("regional", r)).sort(byName);
      const world = data.global ? [entry("global", data.global)] : [];
      const nodes = [];
      if (q) {
        const hits = countries.concat(regions, world).filter((e) => e.search.includes(q) || e.iso === q);
        if (hits.length) nodes.push(...section(t("results"), hits));
        else nodes.push(el("div", { class: "card empty", text: t("no_results", { q: raw }) }));
        const count = hits.length ? tn("results_n", hits.length) : t("no_results", { q: raw });
        if (count !== announced) ES.announce(count);
        announced = count;
      } else if (tab === "region") {
        nodes.push(...section(null, regions));
      } else if (tab === "global") {
        nodes.push(...section(null, world));
      } else {
        const popular = POPULAR.map((code) => countries.find((e) => e.code === code)).filter(Boolean);
        if (popular.length) nodes.push(...section(t("popular"), popular));
        nodes.push(...section(t("all_countries"), countries));
      }
      if (!q) announced = null;
      box.replaceChildren(...nodes);
    }

    const selectTab = ES.tabs(tabs, (name) => {
      tab = chosenTab = name;
      ES.session.set("esims.tab", tab);
      search.value = "";
      render();
    });
    selectTab(tab); // the tab chosen earlier in this session
    search.addEventListener("input", render);
    search.addEventListener("keydown", (event) => {
      if (event.key === "Enter") search.blur(); // hides the phone keyboard, as "Search" on it suggests
    });
    ES.load(box, () => ES.catalogueApi("/api/esimgo/countries").then((answer) => { data = answer; }), render,
      { catalogue: true });
  };
})(window.ES);
