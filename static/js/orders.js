/* orders.js — My eSIMs (/my-esims): every order of the buyer (GET /api/orders, newest first) with its
   status in words and, once an eSIM is in use, a compact usage line; while one is being prepared the list
   refreshes itself. Also what the eSIM page shares: the status labels (ES.statusInfo) and the reading of an
   order's `usage` (ES.usageInfo, ES.usageLevelText, ES.usageBar). */
(function (ES) {
  "use strict";

  const { el, t } = ES;

  // Buyer-facing status: the server's one table (orders.STATUS_LABELS) names the dictionary key and tone.
  ES.statusInfo = (order) => ({ key: order.status_label || order.status, cls: order.status_tone || "" });
  ES.inProgress = (status) => status === "paid" || status === "provisioning" || status === "failed";

  const LOW_PERCENT = 80; // eSIM Go's own warning threshold (the bot's usage_80 message)
  // A number, or null; the store keeps fractions as decimals, which the API writes as strings ("80.0").
  function count(value) {
    const n = typeof value === "string" && value.trim() ? Number(value) : value;
    return typeof n === "number" && isFinite(n) ? n : null;
  }

  /**
   * An order's `usage` (bytes, 1 GB = 10^9) as the buyer reads it: percent used (0..100 or null), bytes left,
   * days left, and the level: "out" (data used up), "low" (80 % or more used) or "". Null when nothing is known.
   */
  ES.usageInfo = function (usage) {
    if (!usage) return null;
    const total = count(usage.total_bytes);
    const used = count(usage.used_bytes);
    let percent = count(usage.percent);
    if (percent === null && total) percent = (100 * (used || 0)) / total;
    if (percent !== null) percent = Math.max(0, Math.min(100, percent));
    let left = count(usage.remaining_bytes);
    if (left === null && total !== null && used !== null) left = total - used;
    if (left !== null) left = Math.max(0, left);
    const unlimited = Boolean(usage.unlimited);
    const out = !unlimited && (percent === 100 || left === 0);
    const level = unlimited ? "" : out ? "out" : percent >= LOW_PERCENT ? "low" : "";
    return { unlimited, total, used, left, percent: out ? 100 : percent, level, daysLeft: count(usage.days_left) };
  };

  /** "Data used up", "Data running low" or "" for an ES.usageInfo(). */
  ES.usageLevelText = (info) => (info.level === "out" ? t("usage_out") : info.level === "low" ? t("usage_low") : "");

  /** The usage bar; its level is in its words too (aria-valuetext), not only in its colour. */
  ES.usageBar = function (info, extraClass) {
    const shown = Math.round(info.percent);
    const words = [t("used_percent", { percent: ES.number(shown) }), ES.usageLevelText(info)];
    return el("div", { class: ["bar", info.level, extraClass].filter(Boolean).join(" "), role: "progressbar",
      "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(shown), "aria-valuetext": words.filter(Boolean).join(", ") },
    [el("span", { style: "width:" + info.percent.toFixed(1) + "%" })]);
  };

  /** "1.2 GB left · 5 days left", "Unlimited · 5 days left", "Data used up · …" for My eSIMs. */
  function usageLine(info) {
    const days = info.daysLeft;
    if (!info.unlimited && info.level !== "out" && info.left !== null && days !== null) {
      return t("left_and_days", { left: ES.bytes(info.left), days: ES.days(days) });
    }
    const data = info.unlimited ? t("unlimited") : info.level === "out" ? t("usage_out")
      : info.left !== null ? t("left", { left: ES.bytes(info.left) }) : null;
    return [data, days !== null ? ES.tn("days_left", days) : null].filter(Boolean).join(" · ");
  }

  ES.pages.orders = function () {
    const box = document.getElementById("orders");
    let orders = null;
    let polls = 0;

    function orderRow(order) {
      const kind = ES.areaKind(order.country_code);
      const info = ES.statusInfo(order);
      const plan = ES.planText(order) || order.bundle_name;
      const usage = order.status === "completed" ? ES.usageInfo(order.usage) : null;
      const usageText = usage ? usageLine(usage) : "";

      return el("a", { class: "row order", href: "/esim/" + encodeURIComponent(order.id), "data-order": order.id }, [
        el("span", { class: "flag", "aria-hidden": "true", text: ES.flag(order.country_code) }),
        el("span", { class: "main" }, [
          el("div", { class: "name" }, [
            ES.areaName(kind, order.country_code, order.country_name || order.bundle_name),
            order.top_up_of ? el("span", { class: "hint", text: " · " + t("topup_badge") }) : null,
          ]),
          el("div", { class: "sub", text: plan }),
          usageText ? el("div", { class: ["usage-line", usage.level].filter(Boolean).join(" ") }, [
            el("span", { class: "sub", text: usageText }),
            usage.percent !== null && !usage.unlimited ? ES.usageBar(usage, "thin") : null,
          ]) : null,
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
