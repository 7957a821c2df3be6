/* router.js — the Mini App's pages inside one document. Each move is History API navigation, never a page
   load, so Telegram's launch data (the URL fragment telegram-web-app.js reads once at start), the theme and the
   language stay in memory whatever the web view lets us store (Telegram Web's cross-site iframe may refuse
   sessionStorage and cookies). Owns the client's table of paths → views (pages.py has the server's), URLs that
   keep the launch fragment (and `?lang=` where the language cookie is refused) so a reload still opens in
   Telegram, the language and the same page, in-app link clicks, Back (Telegram's BackButton, or the page's back
   link in a browser), and each view's start: a fresh copy of its <template>, title, tab bar, focus, then the
   page's script (ES.pages[view]) with ES.route.params. */
(function (ES) {
  "use strict";

  // [path pattern, view, params from the match]
  const ROUTES = [
    [/^\/$/, "catalogue"],
    [/^\/country\/([A-Za-z]{2})$/, "plans", (m) => ({ kind: "local", area: m[1].toUpperCase() })],
    [/^\/region\/([a-z0-9-]{1,64})$/, "plans", (m) => ({ kind: "regional", area: m[1] })],
    [/^\/global$/, "plans", () => ({ kind: "global", area: "global" })],
    [/^\/checkout\/([A-Za-z0-9_.-]{1,128})$/, "checkout", (m) => ({ bundle: m[1] })],
    [/^\/my-esims$/, "orders"],
    [/^\/esim\/([A-Za-z0-9_-]{1,128})$/, "esim", (m) => ({ order: m[1] })],
    [/^\/help$/, "help"],
  ];
  // Where Back goes from a view that is not a root (roots show the tab bar instead), and each view's title.
  const PARENTS = { plans: "/", checkout: "/", esim: "/my-esims", not_found: "/" };
  const TITLES = { checkout: "checkout_title", orders: "my_title", esim: "esim_title", help: "help_title" };

  const body = document.body;
  const main = document.getElementById("main");
  // The fragment Telegram opened us with (tgWebAppData, version, platform, theme): kept on every URL.
  const launchHash = location.hash;

  function resolve(path) {
    for (const [pattern, view, params] of ROUTES) {
      const match = pattern.exec(path);
      if (match) return { view, params: params ? params(match) : {} };
    }
    return null;
  }

  /** An in-app URL: the path, `?lang=` when no cookie can carry the language, and the launch fragment. */
  ES.url = function (path) {
    const url = new URL(path, location.origin);
    if (url.origin !== location.origin) throw new Error("not an in-app path: " + path);
    if (ES.langInUrl) url.searchParams.set("lang", ES.lang);
    else url.searchParams.delete("lang");
    // Absolute and on our origin: "//host/…" can never come out of it, so the signed launch data stays here.
    return location.origin + url.pathname + url.search + launchHash;
  };

  const depth = () => (history.state && history.state.depth) || 0;

  /** Open an in-app path (`replace`: instead of the current entry, as after a payment). */
  ES.go = function (path, options) {
    const target = new URL(path, location.href);
    if (target.origin !== location.origin) return; // only our own pages ever get the launch data
    const route = resolve(target.pathname);
    const url = ES.url(target.href);
    if (!route) {
      location.assign(url); // a page the client does not know: the server answers it, the launch data rides along
      return;
    }
    const same = target.pathname + target.search === location.pathname + location.search;
    if ((options && options.replace) || same) {
      history.replaceState({ depth: depth() }, "", url);
    } else {
      history.replaceState(Object.assign({}, history.state, { scroll: window.scrollY }), ""); // for coming back
      history.pushState({ depth: depth() + 1 }, "", url);
    }
    show(route, true);
  };

  /** Back: the previous in-app page, or the page's parent when we came from elsewhere. */
  ES.back = function () {
    if (!ES.backToParent && depth() > 0) history.back();
    else ES.go(ES.parent, { replace: true });
  };

  function setTitle() {
    const key = TITLES[ES.route.view];
    document.title = key ? ES.t(key) + " · esimsdata" : "esimsdata";
  }

  function chrome(root) {
    const view = ES.route.view;
    const tabbar = ES.$(".tabbar");
    tabbar.hidden = !root;
    ES.$(".app").classList.toggle("has-tabbar", root);
    for (const link of ES.$$("a[data-view]", tabbar)) {
      if (link.dataset.view === view) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    if (ES.inTelegram) {
      if (root) ES.tg.BackButton.hide(); else ES.tg.BackButton.show();
    } else {
      const link = ES.$(".back-link");
      link.hidden = root;
      link.setAttribute("href", ES.parent);
    }
  }

  function show(route, moved) {
    ES.route = route;
    ES.mainButton.hide(); // Telegram keeps the MainButton across pages: each page starts without one
    ES.dropViewListeners();
    ES.parent = PARENTS[route.view] || "/";
    ES.backToParent = false;
    const template = document.getElementById("view-" + route.view);
    if (moved && !template) {
      location.reload(); // a page this document has no copy of (back to an odd URL): the server draws it
      return;
    }
    if (moved) {
      main.replaceChildren(template.content.cloneNode(true));
      ES.applyI18n(main); // the copies are in the server's language
      setTitle();
    }
    ES.onLang(setTitle);
    chrome(!(route.view in PARENTS));
    if (ES.pages[route.view]) ES.pages[route.view]();
    if (moved) {
      window.scrollTo(0, 0);
      // The new page's heading takes the focus, so a screen reader says where the buyer is now.
      const heading = ES.$("h1", main);
      if (heading) heading.focus({ preventScroll: true });
    }
  }

  /** Start on the page the server rendered; from here on every move stays in this document. */
  ES.startRouter = function () {
    const page = body.dataset.page;
    // The page the server rendered becomes a template too (its per-route text left out), for coming back to it.
    if (!document.getElementById("view-" + page)) {
      const template = document.createElement("template");
      template.id = "view-" + page;
      template.content.append(...Array.from(main.childNodes, (node) => node.cloneNode(true)));
      for (const node of template.content.querySelectorAll("[data-per-route]")) node.textContent = "";
      body.append(template);
    }
    const found = page === "not_found" ? null : resolve(location.pathname);
    history.replaceState({ depth: depth() }, "", ES.url(location.pathname + location.search));
    ES.onLang(() => history.replaceState(history.state, "", ES.url(location.pathname + location.search)), true);
    history.scrollRestoration = "manual"; // the page is drawn anew: its scroll is put back once it is
    addEventListener("popstate", () => {
      show(resolve(location.pathname) || { view: "not_found", params: {} }, true);
      const scroll = history.state && history.state.scroll;
      // Data already in memory is drawn by the next frame; back to where the buyer was in the list.
      if (scroll) requestAnimationFrame(() => window.scrollTo(0, scroll));
    });
    const back = () => { ES.haptic("light"); ES.back(); };
    if (ES.inTelegram) ES.tg.BackButton.onClick(back);
    ES.$(".back-link").addEventListener("click", (event) => { event.preventDefault(); back(); });
    // In-app links move inside this document; other origins, new tabs and Telegram links are left alone.
    document.addEventListener("click", (event) => {
      if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      const link = event.target.closest("a[href]");
      if (!link || link.target || link.matches("[data-external], [data-telegram-link], .back-link")) return;
      const url = new URL(link.href);
      if (url.origin !== location.origin) return;
      event.preventDefault();
      ES.go(url.pathname + url.search);
    });
    show(found || { view: page, params: {} }, false);
  };
})(window.ES);
