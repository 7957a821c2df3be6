/* ui.js — the pieces every page is built from: centred states (spinner or icon, title, text, button), ES.load
   (fetch, draw, and the one way a page fails, waits for the catalogue or polls — until the buyer leaves the
   page), ES.tabs (the segmented tabs), the toast, ES.announce (the screen reader's live region) and
   copy-to-clipboard. */
(function (ES) {
  "use strict";

  const { el, t } = ES;

  /** Replace `box` with a centred state: icon or spinner, title, text, optional button. */
  ES.state = function (box, opts) {
    const parts = [];
    if (opts.spinner) parts.push(el("div", { class: "spinner", "aria-hidden": "true" }));
    else if (opts.icon) parts.push(el("div", { class: "state-icon", "aria-hidden": "true", text: opts.icon }));
    if (opts.title) parts.push(el("h2", { text: opts.title }));
    if (opts.text) parts.push(el("p", { text: opts.text }));
    if (opts.button) {
      const b = opts.button;
      parts.push(b.href
        ? el("a", { class: "button" + (b.secondary ? " secondary" : ""), href: b.href, text: b.text })
        : el("button", { type: "button", class: "button" + (b.secondary ? " secondary" : ""), text: b.text, onclick: b.onClick }));
    }
    const node = el("div", { class: "state" }, parts);
    box.replaceChildren(node);
    return node;
  };

  /**
   * Load what a page shows into `box` (which holds its skeleton meanwhile), the one way every page does.
   * - fetch(): a promise that settles once the page holds the answer, e.g. ES.api(url).then((a) => { data = a; }).
   * - render(): draws the page from what it holds: after every fetch, and on a language change.
   * - options.catalogue: the answer comes from the catalogue, so 503 means it is still being fetched for the
   *   first time: say so and look again in 3 s.
   * - options.notFound(): the state options 404 shows.
   * - options.poll(): after a fetch, how many ms until the next one (0: no more).
   * - options.keep: once something was shown, a failed fetch keeps it and tries again quietly after this many ms.
   * Any other failure shows the error's message and a Retry button. Once the buyer has moved to another page
   * (`box` is no longer in the document) nothing more is fetched or drawn.
   */
  ES.load = function (box, fetch, render, options) {
    const opts = options || {};
    let loaded = false;
    let failure = null; // the state shown instead of the page, redrawn in the new language

    function fail(draw) {
      failure = draw;
      draw();
    }

    function run() {
      if (!box.isConnected) return;
      fetch().then(() => {
        if (!box.isConnected) return;
        loaded = true;
        failure = null;
        render();
        const next = opts.poll ? opts.poll() : 0;
        if (next) setTimeout(run, next);
      }).catch((error) => {
        if (!box.isConnected) return;
        if (error.status === 404 && opts.notFound) {
          fail(() => ES.state(box, opts.notFound()));
        } else if (error.status === 503 && opts.catalogue) {
          fail(() => ES.state(box, { spinner: true, title: t("catalogue_loading") }));
          setTimeout(run, 3000);
        } else if (loaded && opts.keep) {
          setTimeout(run, opts.keep);
        } else {
          fail(() => ES.state(box, {
            icon: "⚠️", title: error && error.message ? error.message : t("error_generic"),
            button: { text: t("retry"), onClick: run, secondary: true },
          }));
        }
      });
    }

    ES.onLang(() => (failure ? failure() : render()));
    run();
  };

  /**
   * Segmented tabs: `list` is a role="tablist" of button[role="tab"][data-tab]. A tap, or ←/→/Home/End (focus
   * follows, as in the ARIA tabs pattern), selects one and calls onSelect(name). Returns select(name), which
   * marks a tab selected without calling onSelect.
   */
  ES.tabs = function (list, onSelect) {
    const buttons = ES.$$("button[data-tab]", list);
    const keys = { ArrowLeft: (at) => at - 1, ArrowRight: (at) => at + 1, Home: () => 0, End: () => buttons.length - 1 };

    function select(name) {
      for (const button of buttons) {
        const chosen = button.dataset.tab === name;
        button.setAttribute("aria-selected", String(chosen));
        button.tabIndex = chosen ? 0 : -1; // Tab reaches the chosen one; the arrows move between them
      }
    }

    function choose(button) {
      select(button.dataset.tab);
      onSelect(button.dataset.tab);
    }

    list.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-tab]");
      if (button) choose(button);
    });
    list.addEventListener("keydown", (event) => {
      const at = buttons.indexOf(event.target);
      if (at < 0 || !keys[event.key]) return;
      event.preventDefault();
      const next = buttons[(keys[event.key](at) + buttons.length) % buttons.length];
      next.focus();
      choose(next);
    });
    return select;
  };

  let toastTimer = null;
  ES.toast = function (text, ms) {
    const box = document.getElementById("toast");
    if (!box) return;
    box.textContent = text;
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { box.hidden = true; }, ms || 2200);
  };

  /** Say `text` once to a screen reader (counts, outcomes), instead of having it re-read a whole list. */
  ES.announce = function (text) {
    const region = document.getElementById("announce");
    if (!region) return;
    region.textContent = "";
    // A fresh text node in the next frame: the same words twice in a row are still announced.
    requestAnimationFrame(() => { region.textContent = text; });
  };

  ES.copy = async function (text) {
    let done = false;
    try {
      await navigator.clipboard.writeText(text);
      done = true;
    } catch (e) {
      // Older web views have no async clipboard: copy through a selected, off-screen text area.
      const area = el("textarea", { readonly: true, style: "position:fixed;top:-1000px;opacity:0" });
      area.value = text;
      document.body.append(area);
      area.select();
      try { done = document.execCommand("copy"); } catch (err) { done = false; }
      area.remove();
    }
    if (done) {
      ES.notify("success");
      ES.toast(t("copied"));
    }
    return done;
  };
})(window.ES);
