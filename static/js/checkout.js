/* checkout.js — /checkout/<bundle_name>[?iccid=]: the plan (from the plans page's list in memory, else
   GET /api/esimgo/bundle/<name>), what is included, the price in Stars and USD, the device check with the
   buyer's word that the phone takes an eSIM (not for a top-up: that eSIM is installed already), and the
   MainButton that pays: POST create-invoice (progress on the button meanwhile), then
   Telegram.WebApp.openInvoice. "paid" leads to the eSIM page, which waits for it. */
(function (ES) {
  "use strict";

  const { el, t, tn } = ES;
  let deviceConfirmed = false; // once given, the buyer's word holds for this launch

  ES.pages.checkout = function () {
    const name = ES.route.params.bundle;
    const iccid = ES.query("iccid");
    const box = document.getElementById("checkout");
    const device = document.getElementById("checkout-device");
    const confirm = document.getElementById("device-ok");
    let plan = null;
    let busy = false;

    ES.deviceCheck(device);
    confirm.checked = deviceConfirmed;
    confirm.addEventListener("change", () => { deviceConfirmed = confirm.checked; });

    function fact(icon, text) {
      return el("li", {}, [el("span", { class: "ic", "aria-hidden": "true", text: icon }), el("span", { text })]);
    }

    function render() {
      if (!plan) return;
      const kind = plan.kind;
      const area = ES.areaName(kind, plan.area, plan.area_name);
      const flag = kind === "local" ? ES.flag(plan.area) : ES.flag(plan.area === "global" ? "global" : "");
      document.getElementById("checkout-title").textContent = iccid ? t("topup_title") : t("checkout_title");
      const coverage = kind === "local" ? area : area + " — " + tn("countries_n", plan.countries);
      const facts = [
        plan.unlimited ? fact("📶", t("inc_unlimited")) : fact("📶", t("inc_data", { gb: ES.gb(plan.data_mb) })),
        fact("📅", t("inc_validity", { days: ES.days(plan.duration_days) })),
        fact("🗺️", t("inc_coverage", { area: coverage })),
        plan.speed && plan.speed.length ? fact("🚀", t("inc_speed", { speed: plan.speed.slice().sort().join(", ") })) : null,
        fact("⏱️", t("inc_start")),
        fact("💬", t("inc_data_only")),
        fact("⚡", t("inc_instant")),
      ];
      const nodes = [
        el("div", { class: "card summary" }, [
          el("span", { class: "flag", "aria-hidden": "true", text: flag }),
          el("div", {}, [el("div", { class: "name", text: area }), el("div", { class: "sub", text: ES.planText(plan) })]),
        ]),
      ];
      if (iccid) nodes.push(el("p", { class: "notice", text: t("topup_for", { tail: iccid.slice(-4) }) }));
      nodes.push(
        el("h2", { class: "section-title", text: t("included") }),
        el("ul", { class: "card facts" }, facts),
        el("div", { class: "card total", "data-total": "" }, [
          el("span", { class: "label", text: t("total") }),
          el("span", {}, [
            el("span", { class: "stars", "data-stars": String(plan.stars), text: ES.stars(plan.stars) }),
            el("span", { class: "usd", "data-usd": plan.price_usd, text: "≈ " + ES.usd(plan.price_usd) }),
          ]),
        ]),
      );
      box.replaceChildren(...nodes);
      device.hidden = Boolean(iccid);
      ES.parent = ES.areaHref(kind, plan.area) + (iccid ? "?iccid=" + encodeURIComponent(iccid) : "");
      if (!busy) ES.mainButton.set(t("pay_button", { stars: ES.number(plan.stars) }), pay);
    }

    function done() {
      busy = false;
      ES.mainButton.progress(false);
    }

    function paid(orderId, status) {
      ES.mainButton.hide();
      // Replace, not push: Back from the eSIM page must not land on a checkout that was already paid.
      ES.go("/esim/" + encodeURIComponent(orderId) + "?" + status + "=1", { replace: true });
    }

    async function pay() {
      if (busy || !plan) return;
      if (!iccid && !confirm.checked) {
        // Not paid before the buyer has said the phone takes an eSIM: show where, and why.
        ES.notify("warning");
        confirm.closest("label").scrollIntoView({ block: "center" });
        confirm.focus({ preventScroll: true });
        ES.toast(t("device_confirm_first"), 3500);
        return;
      }
      busy = true;
      ES.haptic("light");
      ES.mainButton.progress(true);
      let invoice;
      try {
        const request = { bundle_name: plan.name };
        if (iccid) request.iccid = iccid;
        invoice = await ES.api("/api/telegram/stars/create-invoice", { method: "POST", auth: true, body: request });
      } catch (error) {
        done();
        ES.notify("error");
        await ES.alert(error.message);
        return;
      }
      if (!box.isConnected) { // the buyer went elsewhere meanwhile: no invoice opens over another page
        done();
        return;
      }
      if (!ES.inTelegram) {
        // Demo in a plain browser: no Telegram to take the payment, so the demo plays Telegram's part.
        done();
        if (!window.confirm(t("demo_pay_confirm", { stars: ES.number(invoice.stars) }))) {
          ES.toast(t("pay_cancelled"));
          return;
        }
        busy = true;
        ES.mainButton.progress(true);
        try {
          await ES.api("/api/demo/pay/" + encodeURIComponent(invoice.order_id), { method: "POST", auth: true });
        } catch (error) {
          done();
          await ES.alert(error.message);
          return;
        }
        paid(invoice.order_id, "paid");
        return;
      }
      if (!ES.supports("6.1")) {
        done();
        await ES.alert(t("pay_unsupported"));
        return;
      }
      try {
        ES.tg.openInvoice(invoice.invoice_link, (status) => {
          if (status === "paid") {
            ES.notify("success");
            paid(invoice.order_id, "paid");
          } else if (status === "pending") {
            paid(invoice.order_id, "pending");
          } else if (status === "failed") {
            done();
            ES.notify("error");
            ES.alert(t("pay_failed"));
          } else {
            done();
            ES.toast(t("pay_cancelled"));
          }
        });
        // The invoice sheet is Telegram's now; our button must not spin behind it.
        ES.mainButton.progress(false);
      } catch (error) {
        done();
        ES.alert(t("error_generic"));
      }
    }

    ES.load(box, () => ES.catalogueApi("/api/esimgo/bundle/" + encodeURIComponent(name)).then((answer) => {
      plan = answer.bundle;
    }), render, {
      catalogue: true,
      notFound: () => ({ icon: "🧭", title: t("plan_gone"), button: { text: t("to_catalogue"), href: "/" } }),
    });
  };
})(window.ES);
