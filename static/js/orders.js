/* orders.js — My eSIMs (/my-esims): every order of the buyer (GET /api/orders, newest first) with its
   status in words; while one is being prepared the list refreshes itself. Also the status labels that the
   eSIM page shares (ES.statusInfo). */
(function (ES) {
  "use strict";

  const { el, t } = ES;

  // Buyer-facing status: the server's one table (orders.STATUS_LABELS) names the dictionary key and tone.
  ES.statusInfo = (order) => ({ key: order.status_label || order.status, cls: order.status_tone || "" });
  ES.inProgress = (status) => status === "paid" || status === "provisioning" || status === "failed";

  ES.pages.orders = function () {
    const box = document.getElementById("orders");
    let orders = null;
    let polls = 0;

    function orderRow(order) {
      const kind = ES.areaKind(order.country_code);
      const info = ES.statusInfo(order);
      const plan = ES.planText(order) || order.bundle_name;

      return el("a", { class: "row order", href: "/esim/" + encodeURIComponent(order.id), "data-order": order.id }, [
        el("span", { class: "flag", "aria-hidden": "true", text: ES.flag(order.country_code) }),
        el("span", { class: "main" }, [
          el("div", { class: "name" }, [
            ES.areaName(kind, order.country_code, order.country_name || order.bundle_name),
            order.top_up_of ? el("span", { class: "hint", text: " · " + t("topup_badge") }) : null,
          ]),
          el("div", { class: "sub", text: plan }),
          order.created_at ? el("div", { class: "sub", text: t("ordered_on", { date: ES.date(order.created_at) }) }) : null,
        ]),
        el("span", { class: "chip " + info.cls, "data-status": order.status, text: t(info.key) }),
        el("span", { class: "chev", "aria-hidden": "true", text: "›" }),
      ]);
    }

    function render() {
      if (!orders) return;
      if (!orders.length) {
        ES.state(box, {
          icon: "🌍", title: t("my_empty"), text: t("my_empty_hint"), button: { text: t("browse_plans"), href: "/" },
        });
        return;
      }
      box.replaceChildren(el("div", { class: "list" }, orders.map(orderRow)));
    }

    // Something is being prepared: look again soon, less often the longer it takes.
    function nextLook() {
      if (!orders.some((o) => ES.inProgress(o.status))) return 0;
      polls += 1;
      return polls < 20 ? 3000 : 15000;
    }

    ES.load(box, () => ES.api("/api/orders", { auth: true }).then((answer) => {
      orders = answer.orders || [];
    }), render, { poll: nextLook, keep: 15000 });
  };
})(window.ES);
