/* esim.js — one order's page (/esim/<order_id>) from GET /api/orders/<id>. While the eSIM is prepared it
   says so and polls; once ready: the QR (our signed, short-lived PNG URL), SM-DP+ address and activation
   code with copy buttons, the iPhone one-tap link (only on an iPhone, where it works), usage (used, left, days left, when it was measured; a warning
   at 80 %, and at 100 % "used up" with Top up as the primary button), top-up, and the install steps. */
(function (ES) {
  "use strict";

  const { el, t } = ES;
  const IOS_PREFIX = "https://esimsetup.apple.com/esim_qrcode_provisioning?carddata=";

  ES.pages.esim = function () {
    const id = ES.route.params.order;
    const box = document.getElementById("esim");
    const install = document.getElementById("install");
    const title = document.getElementById("esim-title");
    const subtitle = document.getElementById("esim-sub");
    // Telegram said "paid" / "pending" before our webhook may have seen the payment.
    const justPaid = ES.query("paid") === "1";
    const pending = ES.query("pending") === "1";
    let order = null;
    let polls = 0;
    let wasWaiting = false;

    // Just paid: Back goes to My eSIMs (the checkout behind us is already paid); otherwise back in history.
    ES.backToParent = justPaid || pending;

    function waiting(status) {
      return ES.inProgress(status) || (status === "awaiting_payment" && (justPaid || pending));
    }

    function codeRow(label, value) {
      return el("div", { class: "code-row" }, [
        el("div", { class: "main" }, [el("div", { class: "label", text: label }), el("code", { text: value })]),
        el("button", { type: "button", class: "copy", text: t("copy"), "aria-label": t("copy") + ": " + label,
          onclick: () => ES.copy(value) }),
      ]);
    }

    // "Updated 5 minutes ago" / "Обновлено 5 минут назад"; a week or more back, the local date and time.
    function measuredText(iso) {
      const at = new Date(iso);
      if (!iso || isNaN(at)) return null;
      const seconds = Math.max(0, (Date.now() - at.getTime()) / 1000); // a clock ahead of ours reads "just now"
      if (seconds < 60) return t("usage_updated_now");
      if (seconds >= 7 * 86400 || !Intl.RelativeTimeFormat) return t("usage_updated", { when: ES.date(iso) });
      const [unit, size] = seconds < 3600 ? ["minute", 60] : seconds < 86400 ? ["hour", 3600] : ["day", 86400];
      const when = new Intl.RelativeTimeFormat(ES.lang, { numeric: "auto" }).format(-Math.floor(seconds / size), unit);
      return t("usage_updated", { when });
    }

    function usageCard(info, measuredAt) {
      const parts = [el("h2", { class: "section-title", text: t("usage_title") })];
      const daysLeft = info && info.daysLeft !== null ? el("span", { text: ES.tn("days_left", info.daysLeft) }) : null;
      const lines = [];
      if (info && info.unlimited) {
        lines.push(el("div", { class: "line" }, [el("span", { text: t("unlimited") }), daysLeft]));
      } else if (info && info.total) {
        lines.push(
          el("div", { class: "line" }, [
            el("span", { text: t("used_of", { used: ES.bytes(info.used || 0), total: ES.bytes(info.total) }) }),
          ]),
          ES.usageBar(info),
          el("div", { class: "line hint" }, [el("span", { text: t("left", { left: ES.bytes(info.left || 0) }) }), daysLeft]),
        );
      } else if (daysLeft) {
        lines.push(el("div", { class: "line hint" }, [daysLeft]));
      }
      if (!lines.length) {
        parts.push(el("div", { class: "card usage hint", text: t("usage_unknown") }));
        return parts;
      }
      if (info.level) {
        lines.push(el("p", { class: "usage-status " + info.level, id: "usage-status" }, [
          el("strong", { text: ES.usageLevelText(info) }),
          info.level === "out" ? " " + t("usage_out_hint") : null,
        ]));
      }
      const measured = measuredText(measuredAt);
      if (measured) {
        lines.push(el("time", { class: "measured hint", datetime: measuredAt, title: ES.date(measuredAt), text: measured }));
      }
      parts.push(el("div", { class: "card usage" }, lines));
      return parts;
    }

    function topUp() {
      const kind = order.plan_kind || ES.areaKind(order.country_code);
      ES.go(ES.areaHref(kind, order.country_code) + "?iccid=" + encodeURIComponent(order.iccid));
    }

    function readyNodes() {
      const nodes = [];
      const qr = typeof order.qr_url === "string" && /^\/(?!\/)/.test(order.qr_url) ? order.qr_url : null;
      if (qr) {
        nodes.push(el("div", { class: "card qr-card" }, [
          el("img", { src: qr, width: "248", height: "248", alt: t("qr_alt"), id: "qr" }),
          el("p", { text: t("qr_caption") }),
        ]));
      }
      // Apple's one-tap install works only on the iPhone itself: inside Telegram it is the MainButton, in a
      // browser on an iPhone a link; anywhere else (Android, a computer) the QR and the codes are the way.
      const onIphone = ES.platform() === "ios";
      const ios = onIphone && typeof order.ios_install_url === "string" && order.ios_install_url.startsWith(IOS_PREFIX)
        ? order.ios_install_url : null;
      if (ios && !ES.inTelegram) {
        nodes.push(el("a", { class: "button secondary", href: ios, "data-external": true, id: "ios-install",
          text: t("ios_button") }));
      }
      if (ios) nodes.push(el("p", { class: "footnote hint", text: t("ios_hint") }));
      const codes = [];
      if (order.smdpAddress) codes.push(codeRow(t("smdp_label"), order.smdpAddress));
      if (order.matchingId) codes.push(codeRow(t("code_label"), order.matchingId));
      if (order.lpa) codes.push(codeRow(t("lpa_label"), order.lpa));
      if (order.iccid) codes.push(codeRow(t("iccid_label"), order.iccid));
      if (codes.length) nodes.push(el("div", { class: "card codes" }, codes));
      const usage = ES.usageInfo(order.usage);
      nodes.push(...usageCard(usage, order.usage && order.usage.measured_at));
      if (order.iccid) {
        // Data used up: topping up is what the buyer came for, so it is the page's primary button.
        const usedUp = usage && usage.level === "out";
        nodes.push(el("button", { type: "button", class: usedUp ? "button" : "button secondary", id: "top-up",
          text: t("topup"), onclick: topUp }));
      }
      return { nodes, ios: ios && ES.inTelegram ? ios : null };
    }

    function render() {
      if (!order) return;
      const kind = ES.areaKind(order.country_code);
      const area = ES.areaName(kind, order.country_code, order.country_name || order.bundle_name);
      title.textContent = area;
      subtitle.textContent = [ES.planText(order), t(ES.statusInfo(order).key)].filter(Boolean).join(" · ");
      document.title = area + " · esimsdata";
      install.hidden = order.status !== "completed";
      ES.mainButton.hide();
      const stars = ES.number(order.stars || 0);
      const status = order.status;
      if (status === "completed") {
        const ready = readyNodes();
        box.replaceChildren(...ready.nodes);
        // On an iPhone the one-tap install is the thing to do next.
        if (ready.ios) {
          ES.mainButton.set(t("ios_button"), () => ES.openLink(ready.ios));
        }
      } else if (status === "failed") {
        ES.state(box, { icon: "↩️", title: t("failed_title"), text: t("failed_hint", { stars }) });
      } else if (status === "refunded") {
        ES.state(box, { icon: "↩️", title: t("refunded_title"), text: t("refunded_hint", { stars }),
          button: { text: t("browse_plans"), href: "/", secondary: true } });
      } else if (status === "expired") {
        ES.state(box, { icon: "⌛", title: t("expired_title"), text: t("expired_hint"),
          button: { text: t("browse_plans"), href: "/", secondary: true } });
      } else if (status === "awaiting_payment" && pending) {
        ES.state(box, { spinner: true, title: t("pending_title"), text: t("pending_hint") });
      } else if (status === "awaiting_payment" && !justPaid) {
        ES.state(box, { icon: "🕓", title: t("awaiting_title"), text: t("awaiting_hint"),
          button: { text: t("browse_plans"), href: "/", secondary: true } });
      } else {
        const node = ES.state(box, { spinner: true, title: t("preparing_title"), text: t("preparing_hint") });
        if (polls > 30) node.append(el("p", { text: t("still_working") }));
      }
    }

    // Quick at first (it usually takes seconds), then gently while the page stays open.
    function nextLook() {
      if (!waiting(order.status)) return 0;
      polls += 1;
      return polls < 45 ? 2000 : 10000;
    }

    function showSteps(which) {
      for (const list of ES.$$("[data-steps]", install)) list.hidden = list.dataset.steps !== which;
    }
    const selectSteps = ES.tabs(document.getElementById("install-tabs"), showSteps);
    const platform = ES.platform() === "android" ? "android" : "iphone";
    selectSteps(platform);
    showSteps(platform);

    ES.load(box, () => ES.api("/api/orders/" + encodeURIComponent(id), { auth: true }).then((answer) => {
      order = answer.order;
      if (wasWaiting && order.status === "completed") ES.notify("success");
      wasWaiting = waiting(order.status);
    }), render, {
      poll: nextLook,
      keep: 5000, // a hiccup while polling: keep the page, try again
      notFound: () => ({ icon: "🔎", title: t("not_found_title"), text: t("not_found_hint"),
        button: { text: t("nav_my"), href: "/my-esims" } }),
    });
  };
})(window.ES);
