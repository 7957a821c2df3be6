/* checkout.js — /checkout/<bundle_name>[?iccid=]: the plan (from the plans page's list in memory, else
   GET /api/esimgo/bundle/<name>), what is included, the price in Stars and USD, the promo code (checked with
   POST /api/promo/check; the total then shows the discounted price beside the full one struck through), the
   device check with the buyer's word that the phone takes an eSIM (not for a top-up: that eSIM is installed
   already), and the MainButton that pays: POST create-invoice with the code (progress on the button
   meanwhile), then Telegram.WebApp.openInvoice. "paid" leads to the eSIM page, which waits for it. */
(function (ES) {
  "use strict";

  const { el, t, tn } = ES;
  let deviceConfirmed = false; // once given, the buyer's word holds for this launch

  /**
   * The promo code (templates/checkout.html #checkout-promo): a disclosure, then the field and Apply (a form, so
   * Enter applies), checked for the plan with POST /api/promo/check in the buyer's language; once valid, the
   * code with the server's words and Remove. `changed()` is called whenever the price to pay changes.
   */
  function promoCode(changed) {
    const box = document.getElementById("checkout-promo");
    const toggle = document.getElementById("promo-toggle");
    const form = document.getElementById("promo-form");
    const input = document.getElementById("promo-code");
    const appliedRow = document.getElementById("promo-applied");
    const appliedText = document.getElementById("promo-applied-text");
    const remove = document.getElementById("promo-remove");
    const message = document.getElementById("promo-message");
    let plan = null;
    let applied = null; // the server's answer for the code in force: { code, stars, price_usd, discount_usd, ... }
    let checking = null; // the check under way: a promise of whether the code is now applied

    function say(text, lang, wrong) {
      message.textContent = text || "";
      message.hidden = !text;
      if (lang) message.setAttribute("lang", lang); else message.removeAttribute("lang");
      message.classList.toggle("error", Boolean(wrong));
      if (wrong) input.setAttribute("aria-invalid", "true"); else input.removeAttribute("aria-invalid");
    }

    function draw() {
      const open = toggle.getAttribute("aria-expanded") === "true";
      toggle.hidden = Boolean(applied);
      form.hidden = Boolean(applied) || !open;
      appliedRow.hidden = !applied;
      if (applied) {
        // The server's words ("SUMMER20: 20% off") are in the language they were asked in; after a switch, ours.
        const theirs = applied.lang === ES.lang && applied.message;
        appliedText.textContent = theirs || t("promo_applied_code", { code: applied.code });
        appliedText.setAttribute("lang", ES.lang);
        remove.setAttribute("aria-label", t("promo_remove_label", { code: applied.code }));
      }
    }

    /** Check the code in the field; resolves true once it is applied. */
    function apply() {
      if (checking) return checking;
      const code = input.value.trim();
      if (!code) {
        say(t("promo_enter"), ES.lang, true);
        input.focus();
        return Promise.resolve(false);
      }
      const lang = ES.lang;
      form.setAttribute("aria-busy", "true");
      const body = { code, bundle_name: plan.name, lang };
      checking = ES.api("/api/promo/check", { method: "POST", auth: true, body }).then((answer) => {
        if (answer.valid) {
          applied = Object.assign({ lang }, answer);
          say("");
          ES.notify("success");
          ES.announce(t("promo_applied", { stars: ES.number(answer.stars) }));
          return true;
        }
        say(answer.message, lang, true);
        ES.notify("error");
        return false;
      }, (error) => {
        say(error.message, ES.lang, true);
        ES.notify("error");
        return false;
      }).then((done) => {
        checking = null;
        form.removeAttribute("aria-busy");
        if (!box.isConnected) return false;
        draw();
        if (done) {
          changed();
          appliedText.focus({ preventScroll: true }); // the field is gone: focus stays where the code is
        }
        return done;
      });
      return checking;
    }

    /** Back to the full price, the field open with `code` in it (and `text` under it, when given). */
    function clear(code, text) {
      applied = null;
      toggle.setAttribute("aria-expanded", "true");
      input.value = code || "";
      say(text || "", text ? ES.lang : null, Boolean(text));
      draw();
      changed();
    }

    toggle.addEventListener("click", () => {
      const open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", String(open));
      if (!open) say("");
      draw();
      if (open) input.focus();
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      ES.haptic("light");
      apply();
    });
    input.addEventListener("input", () => {
      if (input.hasAttribute("aria-invalid")) say("");
    });
    remove.addEventListener("click", () => {
      clear("");
      input.focus();
      ES.announce(t("promo_removed", { stars: ES.number(plan.stars) }));
    });

    return {
      show(shown) {
        plan = shown;
        box.hidden = false;
        draw();
      },
      applied: () => applied,
      /** A code typed but not applied: paying checks it first. */
      pending: () => !applied && !form.hidden && input.value.trim() !== "",
      apply,
      /** create-invoice refused the code (e.g. its last use just went to someone else): say why, full price. */
      refuse(text) {
        const code = applied ? applied.code : input.value.trim();
        clear(code, text);
        input.focus({ preventScroll: true });
        box.scrollIntoView({ block: "center" });
      },
    };
  }

  ES.pages.checkout = function () {
    const name = ES.route.params.bundle;
    const iccid = ES.query("iccid");
    const box = document.getElementById("checkout");
    const device = document.getElementById("checkout-device");
    const confirm = document.getElementById("device-ok");
    let plan = null;
    let busy = false;
    let buttonText = null; // what the MainButton says now
    const promo = promoCode(render);

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
        total(),
      );
      box.replaceChildren(...nodes);
      promo.show(plan);
      device.hidden = Boolean(iccid);
      ES.parent = ES.areaHref(kind, plan.area) + (iccid ? "?iccid=" + encodeURIComponent(iccid) : "");
      payButton();
    }

    /** The MainButton says what the buyer pays now (not while paying, and not once the buyer has left). */
    function payButton() {
      const text = t("pay_button", { stars: ES.number(price().stars) });
      if (busy || !box.isConnected || text === buttonText) return;
      buttonText = text;
      ES.mainButton.set(text, pay);
    }

    /** What the buyer pays: the plan's price, or the promo code's. */
    function price() {
      const code = promo.applied();
      return code ? { stars: code.stars, usd: code.price_usd } : { stars: plan.stars, usd: plan.price_usd };
    }

    /** The total: the price to pay; with a promo code the full price struck through beside it, and the discount. */
    function total() {
      const code = promo.applied();
      const now = price();
      const stars = el("span", { class: "stars", "data-stars": String(now.stars), text: ES.stars(now.stars) });
      const usd = el("span", { class: "usd", "data-usd": now.usd, text: "≈ " + ES.usd(now.usd) });
      if (!code) {
        return el("div", { class: "card total", "data-total": "" }, [
          el("span", { class: "label", text: t("total") }), el("span", {}, [stars, usd]),
        ]);
      }
      const was = (text, data) => el("s", Object.assign({ class: "was" }, data), [
        el("span", { class: "visually-hidden", text: t("promo_full_price") + ": " }), text]);
      return el("div", { class: "card total discounted", "data-total": "" }, [
        el("span", { class: "label", text: t("total") }),
        el("span", { class: "amount" }, [
          el("span", {}, [was(ES.stars(code.full_stars), { "data-full-stars": String(code.full_stars) }), " ", stars]),
          el("span", {}, [was(ES.usd(code.full_price_usd), { "data-full-usd": code.full_price_usd }), " ", usd]),
        ]),
        el("span", { class: "discount", "data-discount": code.discount_usd }, [
          el("span", { text: t("promo_discount") + " · " + code.code }),
          el("span", { text: "−" + ES.usd(code.discount_usd) }),
        ]),
      ]);
    }

    function done() {
      busy = false;
      ES.mainButton.progress(false);
      payButton(); // a code applied on the way to paying changed the price
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
      // A code typed but not applied is checked first: the invoice is for the price the page shows.
      if (promo.pending() && !(await promo.apply())) {
        done();
        return;
      }
      let invoice;
      try {
        const request = { bundle_name: plan.name, lang: ES.lang };
        if (iccid) request.iccid = iccid;
        if (promo.applied()) request.promo_code = promo.applied().code;
        invoice = await ES.api("/api/telegram/stars/create-invoice", { method: "POST", auth: true, body: request });
      } catch (error) {
        done();
        ES.notify("error");
        if (error.status === 422 && /^promo_/.test(error.code || "")) {
          promo.refuse(error.message); // no invoice: the buyer sees the full price again, and why
          return;
        }
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
