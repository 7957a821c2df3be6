/* plans.js — the plans of one destination (/country/<ISO>, /region/<slug>, /global) from
   GET /api/esimgo/bundles, split into Standard and Unlimited; a plan opens its checkout, which finds the plan
   already in memory. With ?iccid= (a top-up) the choice is carried on to the checkout. */
(function (ES) {
  "use strict";

  const { el, t, tn } = ES;

  ES.pages.plans = function () {
    const { kind, area: code } = ES.route.params;
    const iccid = ES.query("iccid");
    const box = document.getElementById("plans");
    const tabs = document.getElementById("plan-tabs");
    const query = kind === "local" ? "country=" + encodeURIComponent(code)
      : kind === "regional" ? "region=" + encodeURIComponent(code) : "global";
    let data = null;
    let tab = "standard";

    function planRow(plan) {
      const href = "/checkout/" + encodeURIComponent(plan.name) + (iccid ? "?iccid=" + encodeURIComponent(iccid) : "");
      const details = [plan.unlimited ? t("unlimited") : null, ES.speed(plan.speed)];
      if (kind !== "local" && plan.countries > 1) details.push(tn("countries_n", plan.countries));
      return el("a", { class: "row plan", href, "data-bundle": plan.name }, [
        el("span", { class: "gb", text: plan.unlimited ? "∞" : ES.gb(plan.data_mb) }),
        el("span", { class: "main" }, [
          el("div", { class: "name", text: ES.days(plan.duration_days) }),
          el("div", { class: "sub", text: details.filter(Boolean).join(" · ") }),
        ]),
        el("span", { class: "price" }, [
          el("div", { class: "stars", text: ES.stars(plan.stars) }),
          el("div", { class: "usd", text: ES.usd(plan.price_usd) }),
        ]),
        el("span", { class: "chev", "aria-hidden": "true", text: "›" }),
      ]);
    }

    function render() {
      if (!data) return;
      const area = data.area;
      const name = ES.areaName(kind, code, area.name);
      document.getElementById("area-name").textContent = name;
      document.getElementById("area-flag").textContent = area.flag;
      document.title = name + " · esimsdata";
      document.getElementById("area-sub").textContent = kind === "local"
        ? tn("plans_n", area.plan_count)
        : tn("countries_n", area.countries) + " · " + tn("plans_n", area.plan_count);
      const standard = data.bundles.filter((b) => !b.unlimited);
      const unlimited = data.bundles.filter((b) => b.unlimited);
      tabs.hidden = !(standard.length && unlimited.length);
      const shown = tab === "unlimited" ? unlimited : standard;
      box.replaceChildren(el("div", { class: "list" }, shown.map(planRow)));
    }

    const selectTab = ES.tabs(tabs, (name) => {
      tab = name;
      render();
    });
    selectTab(tab);
    // Opened from another page: the flag and the browser's name of the place while its plans load.
    const flag = document.getElementById("area-flag");
    if (!flag.textContent) flag.textContent = ES.flag(kind === "local" ? code : kind === "global" ? "global" : "");
    const heading = document.getElementById("area-name");
    if (!heading.textContent) heading.textContent = ES.areaName(kind, code, "");
    ES.load(box, () => ES.catalogueApi("/api/esimgo/bundles?" + query).then((answer) => {
      data = answer;
      for (const plan of data.bundles) {
        ES.catalogueKeep("/api/esimgo/bundle/" + encodeURIComponent(plan.name), { bundle: plan, area: data.area });
      }
      if (!data.bundles.some((b) => !b.unlimited)) {
        tab = "unlimited"; // only unlimited plans here: show them, not an empty Standard tab
        selectTab(tab);
      }
    }), render, {
      catalogue: true,
      notFound: () => ({ icon: "🧭", title: t("no_plans"), button: { text: t("to_catalogue"), href: "/" } }),
    });
  };
})(window.ES);
