/* esimsdata admin console (issue 10): the owner's orders, what needs them, sales, buyers, and the fixes
   (resend, retry, refund); with BACKEND_WEBHOOK_URL set, the order events its backend has not taken yet, each
   with Send again (issue 13). templates/admin.html is chrome only; everything shown comes from /api/admin/* after
   login and is written as text (textContent, createElement, SVG through the DOM): order fields are buyer- and
   vendor-controlled, so no API value ever reaches innerHTML. The CSRF token lives in this closure; the session
   cookie is HttpOnly. The shop's settings views (prices, promo codes, help texts: static/admin/settings.js) are
   added through the small interface at the end, window.esimsAdmin, whose api() sends the token without showing it
   (the page's CSP runs no script but our own two). */
(function () {
  "use strict";

  const PER_PAGE = 50;
  const ATTENTION_MAX = 20;
  const SEARCH_DELAY_MS = 350;
  const STATUSES = [
    ["awaiting_payment", "Awaiting payment"], ["paid", "Paid"], ["provisioning", "Provisioning"],
    ["completed", "Completed"], ["failed", "Failed"], ["refunded", "Refunded"], ["expired", "Expired"],
  ];
  const TONE_ICON = { ok: "✓", wait: "⏳", bad: "✕", "": "•" };
  const PAYMENT = { unpaid: ["Unpaid", ""], paid: ["Paid", "ok"], refunded: ["Refunded", "wait"] };
  const ESIM = { none: ["No eSIM", ""], pending: ["eSIM pending", "wait"], ready: ["eSIM ready", "ok"] };
  const DELIVERY = { none: ["Not sent", ""], pending: ["Sending", "wait"], delivered: ["Delivered", "ok"],
    failed: ["Delivery failed", "bad"] };
  const ACTIONS = {
    resend: { label: "Resend eSIM", what: "Sends the QR code and activation codes to the buyer again.",
      ask: "Send this eSIM to the buyer again?", yes: "Yes, resend" },
    retry: { label: "Retry", what: "Tries again what failed: buying the eSIM at eSIM Go or delivering it.",
      ask: "Retry this order now?", yes: "Yes, retry" },
    refund: { label: "Refund", what: "Gives the Stars back and tells the buyer.",
      ask: "Refund this order?", yes: "Yes, refund" },
  };
  // events.py's event names, in the owner's words; the state of an event not delivered yet.
  const EVENTS = { telegram_stars_payment_succeeded: "Payment received", esim_order_completed: "eSIM delivered",
    telegram_stars_payment_refunded: "Refunded" };
  const EVENT_STATES = { pending: ["Waiting", "wait"], failed: ["Failed", "bad"] };

  const state = {
    csrf: null,
    signedIn: false,
    view: "orders",
    filters: emptyFilters(),
    page: 1,
    usersQuery: "",
    usersPage: 1,
    userNames: {},      // telegram id -> @username, for the "Buyer:" chip
    countries: {},      // code -> {name, flag}, for the country filter
    detailId: null,
    detail: null,
    seq: { orders: 0, users: 0, attention: 0, stats: 0, detail: 0, events: 0 },
  };
  // Views another file adds (addView): name -> { show(), refresh(), signedOut() }.
  const addedViews = {};

  function emptyFilters() {
    return { q: "", statuses: [], from: "", to: "", country: "", user: "", attention: false };
  }

  // ---- DOM ---------------------------------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  /* el("td", {class: "x", "data-label": "Time"}, [children]): attributes by setAttribute, `text` as
     textContent, `on<event>` as listeners; children are nodes or strings (strings become text nodes). */
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function svg(tag, attrs, children) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.setAttribute("class", value);
      else if (key === "text") node.textContent = String(value);
      else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
  }

  function append(node, children) {
    for (const child of [].concat(children === undefined ? [] : children)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
  }

  function show(node, visible) { node.hidden = !visible; }

  // ---- formatting ----------------------------------------------------------------------------------------

  const integer = new Intl.NumberFormat(undefined);
  const dollars = new Intl.NumberFormat(undefined, { style: "currency", currency: "USD" });
  const moment = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  const day = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", timeZone: "UTC" });
  const relativeTime = new Intl.RelativeTimeFormat("en", { numeric: "auto" });

  function count(value) {
    const n = Number(value);
    return value === null || value === undefined || value === "" || !Number.isFinite(n) ? "—" : integer.format(n);
  }

  function stars(value) { return count(value) + " ⭐"; }

  function usd(value) {
    // USD comes as a decimal string; Number() only for display, the value itself is never computed with.
    if (value === null || value === undefined || value === "") return "—";
    const n = Number(value);
    return Number.isFinite(n) ? dollars.format(n) : String(value);
  }

  function when(iso) {
    if (!iso) return "—";
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? String(iso) : moment.format(date);
  }

  // "in 20 seconds", "3 minutes ago"; "now" within 5 s. The exact time is the <time>'s title.
  function relative(iso) {
    const date = new Date(iso);
    if (!iso || Number.isNaN(date.getTime())) return "—";
    const seconds = Math.round((date.getTime() - Date.now()) / 1000);
    if (Math.abs(seconds) < 5) return "now";
    for (const [unit, size] of [["day", 86400], ["hour", 3600], ["minute", 60]]) {
      if (Math.abs(seconds) >= size) return relativeTime.format(Math.round(seconds / size), unit);
    }
    return relativeTime.format(seconds, "second");
  }

  function dayLabel(isoDate) {
    const date = new Date(isoDate + "T00:00:00Z");
    return Number.isNaN(date.getTime()) ? String(isoDate) : day.format(date);
  }

  // "@name" whether or not the stored username already has its "@"; "" when there is none.
  function handle(username) {
    return username ? "@" + String(username).replace(/^@/, "") : "";
  }

  function buyerName(id, username) {
    const at = handle(username);
    return at ? `${at} · ${id}` : String(id ?? "—");
  }

  function text(value) {
    if (value === null || value === undefined || value === "") return "—";
    return typeof value === "object" ? JSON.stringify(value) : String(value);
  }

  function timeNode(iso, format) {
    return el("time", { datetime: iso || null, title: format ? when(iso) : null, text: (format || when)(iso) });
  }

  // The ⚠ before a "needs attention" reason: decoration, so screen readers skip it.
  function warnIcon() {
    return el("span", { "aria-hidden": "true", text: "⚠ " });
  }

  function statusBadge(row) {
    const tone = row.tone || "";
    return el("span", { class: `badge tone-${tone || "none"}`, "data-status": row.status },
      [el("span", { "aria-hidden": "true", text: TONE_ICON[tone] || "•" }), " ", row.status_text || row.status]);
  }

  function stateTags(row) {
    const tags = [];
    for (const [table, value, name] of [[PAYMENT, row.payment, "Payment"], [ESIM, row.esim, "eSIM"],
      [DELIVERY, row.delivery, "Delivery"]]) {
      const [words, tone] = table[value] || [String(value ?? "—"), ""];
      tags.push(el("span", { class: `tag tone-${tone || "none"}`, title: `${name}: ${words}` }, words));
    }
    return el("span", { class: "tags" }, tags);
  }

  // ---- API -----------------------------------------------------------------------------------------------

  class ApiError extends Error {
    // fields: a refused form's reasons by field ({"markup": "Must be at least 1…"}), when the server gave them.
    constructor(status, code, message, fields) {
      super(message);
      this.status = status;
      this.code = code;
      this.fields = fields || null;
    }
  }

  async function api(path, options) {
    const method = (options && options.method) || "GET";
    const headers = { Accept: "application/json" };
    let body;
    if (method !== "GET") {
      if (state.csrf) headers["X-CSRF-Token"] = state.csrf;
      headers["Content-Type"] = "application/json";
      body = JSON.stringify((options && options.body) || {});
    }
    let response;
    try {
      response = await fetch(path, { method, headers, body, credentials: "same-origin", cache: "no-store" });
    } catch (error) {
      throw new ApiError(0, "network", "The server could not be reached. Check the connection and try again.");
    }
    let data = null;
    try { data = await response.json(); } catch (error) { data = null; }
    if (response.status === 401 && state.signedIn) {
      signOut("Your session has ended. Sign in again.");
    }
    if (!response.ok) {
      const message = (data && data.message) || `The server answered ${response.status}. Try again.`;
      throw new ApiError(response.status, (data && data.error) || `http_${response.status}`, message,
        data && typeof data.fields === "object" ? data.fields : null);
    }
    return data || {};
  }

  function notice(message, tone) {
    const node = $("notice");
    node.textContent = message || "";
    node.className = `notice tone-${tone || "none"}`;
    show(node, Boolean(message));
  }

  // An action's outcome line (the order's Actions, the events list): the words, coloured ok or bad.
  function showOutcome(node, outcome) {
    node.textContent = outcome ? outcome.message : "";
    node.className = `outcome tone-${outcome ? outcome.tone : "none"}`;
    show(node, Boolean(outcome));
  }

  function failed(error) {
    if (error instanceof ApiError && error.status === 401) return;  // back at the login form already
    notice(error.message || String(error), "bad");
  }

  /* GET url and render(answer), but only if this is still the newest load of its kind (typing, paging and
     Refresh overlap: a slow older answer must not overwrite a newer one) and the owner is still signed in.
     With a summaryId, that line says loadingText meanwhile and is emptied again if this load fails. */
  async function loadLatest(kind, url, render, summaryId, loadingText) {
    const seq = ++state.seq[kind];
    const summary = summaryId ? $(summaryId) : null;
    if (summary) summary.textContent = loadingText;
    try {
      const answer = await api(url);
      if (seq !== state.seq[kind] || !state.signedIn) return;
      render(answer);
    } catch (error) {
      if (summary && seq === state.seq[kind]) summary.textContent = "";
      failed(error);
    }
  }

  /* The "Page x of y" pager under a list (ids <prefix>-page, -prev, -next): the page the server answered (else
     the one asked for), ‹ off on the first page, › off on the last. Returns the numbers for the summary line. */
  function renderPager(prefix, answer, currentPage) {
    const total = Number(answer.total) || 0;
    const page = Number(answer.page) || currentPage;
    const perPage = Number(answer.per_page) || PER_PAGE;
    const pages = Math.max(1, Math.ceil(total / perPage));
    $(prefix + "-page").textContent = `Page ${count(page)} of ${count(pages)}`;
    $(prefix + "-prev").disabled = page <= 1;
    $(prefix + "-next").disabled = page >= pages;
    return { total, page, perPage };
  }

  // A list's table body: the rows, or one row across all columns saying why there are none.
  function fillTable(bodyId, rows, columns, emptyText) {
    $(bodyId).replaceChildren(...(rows.length ? rows
      : [el("tr", { class: "empty" }, el("td", { colspan: columns, text: emptyText }))]));
  }

  // ---- login ---------------------------------------------------------------------------------------------

  async function boot() {
    wire();
    try {
      const session = await api("/api/admin/session");
      if (session.signed_in === false) throw new ApiError(401, "signed_out", "");
      state.csrf = session.csrf || null;
      enterConsole();
    } catch (error) {
      showLogin(error.status === 401 ? "" : error.message);
    }
  }

  function showLogin(message) {
    show($("booting"), false);
    show($("console"), false);
    show($("login"), true);
    const problem = $("login-error");
    problem.textContent = message || "";
    show(problem, Boolean(message));
    $("password").focus();
  }

  async function login(event) {
    event.preventDefault();
    const field = $("password");
    const button = $("login-form").querySelector("button[type=submit]");
    const problem = $("login-error");
    if (!field.value) {
      problem.textContent = "Enter the admin password.";
      show(problem, true);
      field.focus();
      return;
    }
    button.disabled = true;
    show(problem, false);
    try {
      const answer = await api("/admin/login", { method: "POST", body: { password: field.value } });
      state.csrf = answer.csrf || null;
      field.value = "";
      enterConsole();
    } catch (error) {
      problem.textContent = error.message;
      show(problem, true);
      field.select();
    } finally {
      button.disabled = false;
    }
  }

  function enterConsole() {
    state.signedIn = true;
    show($("booting"), false);
    show($("login"), false);
    show($("console"), true);
    if (window.matchMedia("(min-width: 900px)").matches) $("more-filters").open = true;
    notice("");
    showView(state.view);
    loadStats();
    loadAttention();
    loadOrders();
    loadEvents();
    syncDetail();
  }

  function signOut(message) {
    state.signedIn = false;
    state.csrf = null;
    if ($("detail").open) $("detail").close();
    // Nothing of the orders stays in the page once signed out.
    for (const id of ["orders-body", "users-body", "events-body", "attention-list", "periods", "chart", "detail-body"]) {
      $(id).replaceChildren();
    }
    for (const view of Object.values(addedViews)) view.signedOut();
    showLogin(message);
  }

  async function logout() {
    try {
      await api("/admin/logout", { method: "POST" });
    } catch (error) {
      if (error.status !== 401) { failed(error); return; }
    }
    if (location.hash) history.replaceState(null, "", location.pathname + location.search);
    signOut("You are signed out.");
  }

  // ---- views ---------------------------------------------------------------------------------------------

  function showView(view) {
    state.view = view;
    for (const tab of document.querySelectorAll(".tab")) {
      if (tab.dataset.view === view) tab.setAttribute("aria-current", "page");
      else tab.removeAttribute("aria-current");
    }
    for (const section of document.querySelectorAll("#console > .view")) show(section, section.id === "view-" + view);
    if (addedViews[view]) addedViews[view].show();
    if (view === "users") loadUsers();
    if (view === "events") loadEvents();
    else showOutcome($("events-outcome"), null);
  }

  function refreshAll() {
    notice("");
    loadStats();
    loadAttention();
    loadEvents();  // also its tab and badge, whichever view is shown
    if (state.view === "users") loadUsers(); else if (state.view === "orders") loadOrders();
    else if (addedViews[state.view]) addedViews[state.view].refresh();
    if (state.detailId) loadDetail(state.detailId);
  }

  // ---- dashboard -----------------------------------------------------------------------------------------

  function loadStats() {
    return loadLatest("stats", "/api/admin/stats?days=30", (stats) => {
      renderPeriods(stats.periods || {});
      renderChart(stats.days || []);
      for (const country of stats.countries || []) rememberCountry(country);
      renderCountryOptions();
    });
  }

  function renderPeriods(periods) {
    const cards = [];
    for (const [key, title] of [["today", "Today"], ["7d", "7 days"], ["30d", "30 days"]]) {
      const p = periods[key] || {};
      cards.push(el("article", { class: "period", "data-period": key }, [
        el("h3", { text: title }),
        el("p", { class: "period-main" }, [el("strong", { text: count(p.orders) }), " orders"]),
        el("dl", {}, [
          el("div", {}, [el("dt", { text: "Stars" }), el("dd", { text: stars(p.stars) })]),
          el("div", {}, [el("dt", { text: "Revenue" }), el("dd", { text: usd(p.usd) })]),
          el("div", {}, [el("dt", { text: "Cost" }), el("dd", { text: usd(p.cost) })]),
          el("div", {}, [el("dt", { text: "Margin" }), el("dd", { text: usd(p.margin) })]),
          el("div", {}, [el("dt", { text: "Refunds" }), el("dd", { text: count(p.refunds) })]),
        ]),
      ]));
    }
    $("periods").replaceChildren(...cards);
  }

  function renderChart(days) {
    const box = $("chart");
    if (!days.length) { box.replaceChildren(el("p", { class: "hint", text: "No sales yet." })); return; }
    const width = 600, height = 120, gap = 2;
    const values = days.map((d) => Math.max(0, Number(d.usd) || 0));
    const top = Math.max(...values, 0);
    const slot = width / days.length;
    const total = values.reduce((a, b) => a + b, 0);
    const orders = days.reduce((a, d) => a + (Number(d.orders) || 0), 0);
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", class: "bars",
      role: "img", "aria-label": `Sales per day, ${days.length} days: ${integer.format(orders)} orders, ${dollars.format(total)}` });
    chart.append(svg("line", { x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5, class: "axis" }));
    days.forEach((d, i) => {
      const h = top > 0 ? Math.max(values[i] > 0 ? 2 : 0, (values[i] / top) * (height - 4)) : 0;
      const bar = svg("rect", { x: (i * slot + gap / 2).toFixed(2), y: (height - h).toFixed(2),
        width: Math.max(1, slot - gap).toFixed(2), height: h.toFixed(2),
        class: Number(d.failures) > 0 || Number(d.refunds) > 0 ? "bar bar-bad" : "bar", "data-date": d.date });
      bar.append(svg("title", {}, `${dayLabel(d.date)}: ${count(d.orders)} orders, ${stars(d.stars)}, ${usd(d.usd)}` +
        (Number(d.refunds) ? `, ${count(d.refunds)} refunded` : "") +
        (Number(d.failures) ? `, ${count(d.failures)} failed` : "")));
      chart.append(bar);
    });
    const legend = el("div", { class: "chart-axis" }, [
      el("span", { text: dayLabel(days[0].date) }),
      el("span", { text: `max ${dollars.format(top)} a day` }),
      el("span", { text: dayLabel(days[days.length - 1].date) }),
    ]);
    box.replaceChildren(chart, legend);
  }

  // ---- needs attention -----------------------------------------------------------------------------------

  function loadAttention() {
    return loadLatest("attention", `/api/admin/orders?attention=1&page=1&per_page=${ATTENTION_MAX}`,
      (answer) => renderAttention(answer.orders || [], answer.total || 0));
  }

  function renderAttention(rows, total) {
    const list = $("attention-list");
    list.replaceChildren(...rows.map((row) => el("li", { "data-order": row.id }, [
      el("a", { href: "#order=" + encodeURIComponent(row.id) }, [
        el("span", { class: "attention-reason" }, [warnIcon(), row.attention || row.status_text || "Needs a look"]),
        el("span", { class: "attention-what" }, `${row.flag || ""} ${row.country_name || row.country_code || ""} · ${row.plan || row.bundle_name || ""}`.trim()),
        el("span", { class: "attention-who hint" }, `${buyerName(row.telegram_user_id, row.telegram_username)} · ${when(row.created_at)}`),
      ]),
    ])));
    if (total > rows.length) {
      const more = el("button", { type: "button", class: "ghost small", text: `Show all ${count(total)}` });
      more.addEventListener("click", () => {
        applyFilters({ ...emptyFilters(), attention: true });
        $("orders-title").scrollIntoView({ block: "start" });
      });
      list.append(el("li", { class: "more" }, more));
    }
    $("attention-count").textContent = total ? `(${count(total)})` : "";
    show($("attention-clear"), total === 0);
    $("attention").classList.toggle("is-clear", total === 0);
  }

  // ---- orders --------------------------------------------------------------------------------------------

  function orderQuery() {
    const query = new URLSearchParams();
    const f = state.filters;
    if (f.q) query.set("q", f.q);
    for (const status of f.statuses) query.append("status", status);
    if (f.from) query.set("from", f.from);
    if (f.to) query.set("to", f.to);
    if (f.country) query.set("country", f.country);
    if (f.user) query.set("user", f.user);
    if (f.attention) query.set("attention", "1");
    return query;
  }

  function readFilters() {
    state.filters = {
      q: $("f-q").value.trim(),
      statuses: [...document.querySelectorAll("#f-statuses input:checked")].map((box) => box.value),
      from: $("f-from").value,
      to: $("f-to").value,
      country: $("f-country").value,
      user: state.filters.user,
      attention: $("f-attention").checked,
    };
    state.page = 1;
  }

  function writeFilters() {
    const f = state.filters;
    $("f-q").value = f.q;
    for (const box of document.querySelectorAll("#f-statuses input")) box.checked = f.statuses.includes(box.value);
    $("f-from").value = f.from;
    $("f-to").value = f.to;
    if (f.country && !state.countries[f.country]) rememberCountry({ country_code: f.country });
    renderCountryOptions();
    $("f-country").value = f.country;
    $("f-attention").checked = f.attention;
  }

  // Show the orders list with these filters, from its first page, the form showing them too.
  function applyFilters(filters) {
    state.filters = filters;
    state.page = 1;
    writeFilters();
    loadOrders();
  }

  function describeFilters() {
    const f = state.filters;
    const active = f.statuses.length + (f.from ? 1 : 0) + (f.to ? 1 : 0) + (f.country ? 1 : 0) + (f.attention ? 1 : 0);
    $("filters-active").textContent = active ? `(${active})` : "";
    show($("user-filter"), Boolean(f.user));
    $("user-filter-name").textContent = f.user ? buyerName(f.user, state.userNames[f.user]) : "";
    $("csv").setAttribute("href", "/api/admin/orders.csv?" + orderQuery().toString());
  }

  function loadOrders() {
    describeFilters();
    const query = orderQuery();
    query.set("page", String(state.page));
    query.set("per_page", String(PER_PAGE));
    return loadLatest("orders", "/api/admin/orders?" + query.toString(), renderOrders, "orders-summary", "Loading orders…");
  }

  function renderOrders(answer) {
    const rows = answer.orders || [];
    const { total, page, perPage } = renderPager("orders", answer, state.page);
    for (const row of rows) {
      rememberCountry(row);
      if (row.telegram_username) state.userNames[row.telegram_user_id] = row.telegram_username;
    }
    renderCountryOptions();
    fillTable("orders-body", rows.map(orderRow), 7, total ? "No orders on this page." : "No orders match.");
    const first = total ? (page - 1) * perPage + 1 : 0;
    const last = Math.min(total, (page - 1) * perPage + rows.length);
    $("orders-summary").textContent = total
      ? `${count(first)}–${count(last)} of ${count(total)} ${total === 1 ? "order" : "orders"}, newest first`
      : "No orders match these filters.";
    describeFilters();
  }

  function orderRow(row) {
    const link = el("a", { href: "#order=" + encodeURIComponent(row.id), class: "order-link",
      "aria-label": `Order ${row.id}` }, timeNode(row.created_at));
    const tr = el("tr", { "data-order": row.id, class: row.attention ? "needs-attention" : null }, [
      el("td", { class: "c-time", "data-label": "Time" }, [link, el("span", { class: "sub mono", text: row.id })]),
      el("td", { class: "c-buyer", "data-label": "Buyer" }, [
        el("span", { class: "mono", text: row.telegram_user_id }),
        row.telegram_username ? el("span", { class: "sub", text: handle(row.telegram_username) }) : null,
      ]),
      el("td", { class: "c-dest", "data-label": "Destination" }, [
        el("span", { class: "flag", "aria-hidden": "true", text: row.flag || "" }), " ",
        el("span", { text: row.country_name || row.country_code || "—" }),
      ]),
      el("td", { class: "c-plan", "data-label": "Plan" }, [
        el("span", { class: row.plan && row.plan !== row.bundle_name ? null : "mono", text: row.plan || row.bundle_name || "—" }),
        row.plan && row.plan !== row.bundle_name ? el("span", { class: "sub mono", text: row.bundle_name || "" }) : null,
      ]),
      el("td", { class: "c-price num", "data-label": "Price" }, [
        el("span", { text: stars(row.stars) }), el("span", { class: "sub", text: usd(row.price) }),
      ]),
      el("td", { class: "c-status", "data-label": "Status" }, [
        statusBadge(row),
        row.attention ? el("span", { class: "sub attention-note" }, [warnIcon(), row.attention]) : null,
      ]),
      el("td", { class: "c-states", "data-label": "Payment · eSIM · Delivery" }, stateTags(row)),
    ]);
    tr.addEventListener("click", (event) => {
      if (event.target.closest("a, button")) return;
      location.hash = "order=" + encodeURIComponent(row.id);
    });
    return tr;
  }

  function rememberCountry(item) {
    const code = item && item.country_code;
    if (!code || state.countries[code]) return;
    state.countries[code] = { name: item.country_name || code, flag: item.flag || "" };
  }

  function renderCountryOptions() {
    const select = $("f-country");
    const chosen = state.filters.country || select.value;
    const codes = Object.keys(state.countries).sort((a, b) =>
      state.countries[a].name.localeCompare(state.countries[b].name));
    const have = [...select.options].map((option) => option.value).slice(1);
    if (have.join() === codes.join()) return;
    select.replaceChildren(el("option", { value: "", text: "All countries" }),
      ...codes.map((code) => el("option", { value: code },
        `${state.countries[code].flag} ${state.countries[code].name} (${code})`.trim())));
    select.value = chosen;
  }

  function filterByUser(id, username) {
    if (username) state.userNames[id] = username;
    showView("orders");
    applyFilters({ ...emptyFilters(), user: String(id) });
    $("orders-title").scrollIntoView({ block: "start" });
  }

  // ---- buyers --------------------------------------------------------------------------------------------

  function loadUsers() {
    const query = new URLSearchParams({ page: String(state.usersPage), per_page: String(PER_PAGE) });
    if (state.usersQuery) query.set("q", state.usersQuery);
    return loadLatest("users", "/api/admin/users?" + query.toString(), renderUsers, "users-summary", "Loading buyers…");
  }

  function renderUsers(answer) {
    const users = answer.users || [];
    const { total } = renderPager("users", answer, state.usersPage);
    fillTable("users-body", users.map((user) => {
      const id = user.telegram_user_id;
      const open = el("button", { type: "button", class: "link", "aria-label": `Orders of ${buyerName(id, user.telegram_username)}` }, [
        user.telegram_username ? el("span", { text: handle(user.telegram_username) }) : null,
        el("span", { class: user.telegram_username ? "sub mono" : "mono", text: id }),
      ]);
      open.addEventListener("click", () => filterByUser(id, user.telegram_username));
      return el("tr", { "data-user": id }, [
        el("td", { class: "c-user", "data-label": "Buyer" }, open),
        el("td", { class: "num", "data-label": "Orders", text: count(user.orders) }),
        el("td", { class: "num", "data-label": "Paid", text: count(user.paid_orders) }),
        el("td", { class: "num", "data-label": "Spent" }, [el("span", { text: stars(user.stars) }),
          el("span", { class: "sub", text: usd(user.usd) })]),
        el("td", { "data-label": "First order" }, timeNode(user.first_order_at)),
        el("td", { "data-label": "Last order" }, timeNode(user.last_order_at)),
      ]);
    }), 6, "No buyers match.");
    $("users-summary").textContent = total ? `${count(total)} ${total === 1 ? "buyer" : "buyers"}, most recent first` : "";
  }

  // ---- events to the owner's backend ---------------------------------------------------------------------

  function loadEvents() {
    return loadLatest("events", "/api/admin/outbox", renderEvents, "events-summary", "Loading events…");
  }

  function renderEvents(answer) {
    const enabled = Boolean(answer.enabled);
    const events = answer.events || [];
    const failures = Number(answer.failed) || 0;
    const waiting = Number(answer.pending) || 0;
    show($("events-tab"), enabled);
    const badge = $("events-badge");
    badge.textContent = failures ? count(failures) : "";
    badge.title = failures ? `${count(failures)} failed` : "";
    show(badge, failures > 0);
    $("events-tab").setAttribute("aria-label", failures ? `Events, ${count(failures)} failed` : "Events");
    if (!enabled) {
      $("events-body").replaceChildren();
      $("events-summary").textContent = "";
      if (state.view === "events") showView("orders");
      return;
    }
    // One order's events go in their order: a later one waits for an earlier one not delivered yet.
    const ahead = new Set();
    fillTable("events-body", events.map((event) => {
      const behind = ahead.has(event.order_id);
      ahead.add(event.order_id);
      return eventRow(event, behind);
    }), 7, "✓ All events delivered.");
    const parts = [failures ? `${count(failures)} failed` : "", waiting ? `${count(waiting)} waiting` : ""];
    $("events-summary").textContent = events.length
      ? `${count(events.length)} ${events.length === 1 ? "event" : "events"} not delivered yet (${parts.filter(Boolean).join(", ")}), oldest first`
      : "Your backend has taken every event.";
  }

  function eventName(event) {
    return EVENTS[event] || text(event);
  }

  function eventRow(event, behind) {
    const [words, tone] = EVENT_STATES[event.state] || [text(event.state), ""];
    const failedForGood = event.state === "failed";
    // An event held behind its order's earlier one goes once that one has: sending it again would change nothing.
    const send = behind ? null : el("button", { type: "button", class: failedForGood ? "primary small" : "ghost small",
      "data-send": event.id, text: "Send again",
      title: "Sends this event to your backend again, within a few seconds." });
    const confirmBox = el("div", { class: "confirm", hidden: true, role: "group", "aria-label": "Confirm sending again" });
    if (send) send.addEventListener("click", () => askSendAgain(event, confirmBox));
    return el("tr", { "data-event": event.id, "data-state": event.state, class: failedForGood ? "needs-attention" : null }, [
      el("td", { class: "c-event", "data-label": "Event" }, [
        el("strong", { text: eventName(event.event) }),
        el("span", { class: "sub" }, ["queued ", timeNode(event.created_at, (iso) => relative(iso).replace(/^now$/, "just now"))]),
      ]),
      el("td", { class: "c-order", "data-label": "Order" },
        el("a", { href: "#order=" + encodeURIComponent(event.order_id), class: "mono", text: text(event.order_id) })),
      el("td", { class: "c-state", "data-label": "State" }, statusBadge({ tone, status: event.state, status_text: words })),
      el("td", { class: "c-attempts num", "data-label": "Attempts", text: count(event.attempts) }),
      el("td", { class: "c-next", "data-label": "Next try" }, failedForGood
        ? el("span", { class: "hint", text: "Not until you send it again" })
        : behind ? el("span", { class: "hint", text: "After this order's event before it" })
          : timeNode(event.next_at, relative)),
      el("td", { class: "c-error", "data-label": "Last error" },
        el("span", { class: event.last_error ? "event-error" : "hint", text: text(event.last_error) })),
      el("td", { class: "c-act" }, send ? [send, confirmBox] : []),
    ]);
  }

  function askSendAgain(event, box) {
    const buttons = [...$("events-body").querySelectorAll("button[data-send]")];
    showOutcome($("events-outcome"), null);
    for (const button of buttons) button.disabled = true;
    confirmStep(box, {
      question: `Send the “${eventName(event.event)}” event of order ${text(event.order_id)} to your backend again?`,
      note: event.state === "failed" ? "If what its error says is not mended yet, it fails again." : null,
      name: "send", yes: "Yes, send again",
      onCancel: () => {
        for (const button of buttons) button.disabled = false;
        box.closest("tr").querySelector("button[data-send]").focus();
      },
      onYes: () => sendAgain(event),
    });
  }

  async function sendAgain(event) {
    let outcome;
    try {
      const answer = await api(`/api/admin/outbox/${encodeURIComponent(event.id)}/send`, { method: "POST" });
      outcome = { message: `${eventName(event.event)} of order ${text(event.order_id)}: ${answer.message || "Done."}`,
        tone: "ok" };
    } catch (error) {
      if (error.status === 401) return;
      outcome = { message: error.status === 404
        ? "This event is no longer waiting: your backend may have taken it already." : error.message, tone: "bad" };
    }
    await loadEvents();
    if (state.view !== "events") return;
    const result = $("events-outcome");
    showOutcome(result, outcome);
    result.focus({ preventScroll: false });
  }

  // ---- order detail --------------------------------------------------------------------------------------

  function hashOrder() {
    const match = /^#order=(.+)$/.exec(location.hash);
    if (!match) return null;
    try { return decodeURIComponent(match[1]); } catch (error) { return null; }
  }

  function syncDetail() {
    if (!state.signedIn) return;
    const id = hashOrder();
    if (id) openDetail(id);
    else if ($("detail").open) $("detail").close();
  }

  function openDetail(id) {
    const dialog = $("detail");
    if (state.detailId !== id) {
      state.detailId = id;
      state.detail = null;
      $("detail-title").textContent = "Order " + id;
      $("detail-body").replaceChildren();
    }
    if (!dialog.open) dialog.showModal();
    loadDetail(id);
  }

  async function loadDetail(id, outcome) {
    const seq = ++state.seq.detail;
    show($("detail-loading"), !state.detail);
    try {
      const answer = await api("/api/admin/orders/" + encodeURIComponent(id));
      if (seq !== state.seq.detail || state.detailId !== id) return;
      renderDetail(answer, outcome);
    } catch (error) {
      if (seq !== state.seq.detail || error.status === 401) return;
      show($("detail-loading"), false);
      const message = error.status === 404 ? `There is no order ${id}.` : error.message;
      $("detail-body").replaceChildren(el("p", { class: "outcome tone-bad", role: "alert", text: message }));
    }
  }

  function closeDetail() {
    const dialog = $("detail");
    forgetDetail();  // at once: the dialog's "close" event comes a task later
    if (dialog.open) dialog.close();
  }

  function forgetDetail() {
    state.detailId = null;
    state.detail = null;
    state.seq.detail++;
    if (hashOrder()) history.replaceState(null, "", location.pathname + location.search);
  }


  function field(label, value, options) {
    const opts = options || {};
    const shown = opts.format ? opts.format(value) : text(value);
    const dd = el("dd", { class: opts.mono ? "mono" : null },
      el("span", { class: "value", [opts.stored ? "data-stored" : "data-field"]: opts.key || null }, shown));
    if (opts.copy && value) {
      const copy = el("button", { type: "button", class: "ghost small copy", "aria-label": `Copy ${label}`, text: "Copy" });
      copy.addEventListener("click", async () => {
        try {
          await navigator.clipboard.writeText(String(value));
          copy.textContent = "Copied";
        } catch (error) {
          copy.textContent = "Select and copy";
        }
      });
      dd.append(" ", copy);
    }
    return el("div", { class: "kv" }, [el("dt", { text: label }), dd]);
  }

  function renderDetail(answer, outcome) {
    state.detail = answer;
    show($("detail-loading"), false);
    const order = answer.order || {};
    const row = answer.row || {};
    const pick = (key) => (order[key] !== undefined && order[key] !== null && order[key] !== "" ? order[key] : row[key]);
    $("detail-title").textContent = `Order ${row.id || order.id || state.detailId}`;

    const head = el("div", { class: "detail-summary" }, [
      el("p", { class: "detail-what" }, [el("span", { class: "flag", "aria-hidden": "true", text: row.flag || "" }), " ",
        `${row.country_name || order.country_name || row.country_code || ""} · ${row.plan || row.bundle_name || ""}`]),
      el("p", {}, [statusBadge(row), " ", stateTags(row)]),
      row.attention ? el("p", { class: "attention-note", role: "note" }, [warnIcon(), "Needs attention: ", row.attention])
        : null,
    ]);

    const sections = [head, actionsSection(answer, outcome)];

    const buyer = el("button", { type: "button", class: "ghost small", text: "All orders of this buyer" });
    buyer.addEventListener("click", () => { closeDetail(); filterByUser(row.telegram_user_id, row.telegram_username); });
    sections.push(el("section", { class: "detail-section d-buyer" }, [el("h3", { text: "Buyer" }), el("dl", {}, [
      field("Telegram user id", pick("telegram_user_id"), { mono: true, key: "telegram_user_id" }),
      field("Username", handle(pick("telegram_username")) || null, { key: "telegram_username" }),
    ]), buyer]));

    const esim = [el("h3", { text: "eSIM" })];
    if (answer.qr_url) {
      esim.push(el("img", { class: "qr", src: answer.qr_url, alt: "QR code of this eSIM", width: 180, height: 180 }));
    }
    esim.push(el("dl", {}, [
      field("ICCID", pick("iccid"), { mono: true, copy: true, key: "iccid" }),
      field("Matching ID", pick("matchingId"), { mono: true, copy: true, key: "matchingId" }),
      field("SM-DP+", pick("smdpAddress"), { mono: true, copy: true, key: "smdpAddress" }),
      field("LPA", answer.lpa, { mono: true, copy: true, key: "lpa" }),
      field("eSIM Go orderReference", pick("orderReference"), { mono: true, copy: true, key: "orderReference" }),
      field("Bundle", pick("bundle_name"), { mono: true, key: "bundle_name" }),
    ]));
    sections.push(el("section", { class: "detail-section d-esim" }, esim));

    sections.push(el("section", { class: "detail-section d-money" }, [el("h3", { text: "Money" }), el("dl", {}, [
      field("Stars", pick("stars"), { format: stars, key: "stars" }),
      field("Price", pick("price"), { format: usd, key: "price" }),
      field("Cost", pick("cost"), { format: usd, key: "cost" }),
      field("Margin", row.margin, { format: usd, key: "margin" }),
      field("Charge id", pick("telegram_payment_charge_id"), { mono: true, copy: true, key: "telegram_payment_charge_id" }),
      field("Created", pick("created_at"), { format: when, key: "created_at" }),
    ])]));

    const history = answer.history || [];
    sections.push(el("section", { class: "detail-section d-history" }, [el("h3", { text: "History" }),
      history.length
        ? el("ol", { class: "history" }, history.map((entry) => el("li", {}, [
          el("span", { class: "history-when" }, timeNode(entry.at)),
          el("strong", { text: text(entry.event) }),
          entry.by ? el("span", { class: "hint", text: " by " + text(entry.by) }) : null,
          entry.detail ? el("span", { class: "history-detail", text: text(entry.detail) }) : null,
        ])))
        : el("p", { class: "hint", text: "No history recorded." })]));

    const keys = Object.keys(order).sort();
    sections.push(el("details", { class: "detail-section all-fields" }, [
      el("summary", { text: `Every stored field (${keys.length})` }),
      el("dl", {}, keys.map((key) => field(key, order[key], { mono: true, key, stored: true }))),
    ]));

    $("detail-body").replaceChildren(...sections);
  }

  function actionsSection(answer, outcome) {
    const allowed = answer.actions || {};
    const row = answer.row || {};
    const id = row.id || (answer.order && answer.order.id) || state.detailId;
    const section = el("section", { class: "detail-section actions", "aria-labelledby": "actions-title" },
      el("h3", { id: "actions-title", text: "Actions" }));
    const buttons = el("div", { class: "action-buttons" });
    const confirmBox = el("div", { class: "confirm", hidden: true, role: "group", "aria-label": "Confirm the action" });
    const result = el("p", { class: "outcome", role: "status", "aria-live": "polite", tabindex: "-1" });
    showOutcome(result, outcome);
    for (const name of ["resend", "retry", "refund"]) {
      const action = ACTIONS[name];
      const button = el("button", { type: "button", class: name === "refund" ? "danger" : "primary",
        "data-action": name, title: action.what, text: action.label });
      button.disabled = !allowed[name];
      button.addEventListener("click", () => askConfirm(name, id, row, confirmBox, buttons, result));
      buttons.append(button);
    }
    const hints = el("ul", { class: "action-hints hint" }, ["resend", "retry", "refund"].map((name) =>
      el("li", {}, [el("strong", { text: ACTIONS[name].label + ": " }), ACTIONS[name].what,
        allowed[name] ? "" : " Not possible in this order's state."])));
    section.append(buttons, confirmBox, result, hints);
    return section;
  }

  /* The console's confirm step, in `box` under the button pressed: the question (and a note, and fields such as
     the refund's reason), then `yes` (data-confirm=name; red when danger) and Cancel. Cancel empties the box and
     calls onCancel; yes turns into "Working…" with both buttons off, then calls onYes. */
  function confirmStep(box, { question, note, fields, name, yes, danger, onYes, onCancel }) {
    const yesButton = el("button", { type: "button", class: danger ? "danger" : "primary", "data-confirm": name, text: yes });
    const no = el("button", { type: "button", class: "ghost", text: "Cancel" });
    box.replaceChildren(...[el("p", { text: question }), note ? el("p", { class: "hint", text: note }) : null,
      ...(fields || []), el("div", { class: "confirm-buttons" }, [yesButton, no])].filter(Boolean));
    box.hidden = false;
    no.addEventListener("click", () => {
      box.hidden = true;
      box.replaceChildren();
      onCancel();
    });
    yesButton.addEventListener("click", () => {
      yesButton.disabled = true;
      no.disabled = true;
      yesButton.textContent = "Working…";
      onYes();
    });
    const input = (fields || []).find((node) => node.tagName === "INPUT");
    (input || yesButton).focus();
  }

  function askConfirm(name, id, row, box, buttons, result) {
    const action = ACTIONS[name];
    const who = buyerName(row.telegram_user_id, row.telegram_username);
    const question = name === "refund"
      ? `Refund ${stars(row.stars)} (${usd(row.price)}) to ${who}? The buyer is told.`
      : name === "resend" ? `Send this eSIM to ${who} again?` : action.ask;
    let reason = null;
    const fields = [];
    if (name === "refund") {
      reason = el("input", { id: "refund-reason", type: "text", maxlength: 200, autocomplete: "off",
        placeholder: "e.g. the eSIM did not work" });
      fields.push(el("label", { for: "refund-reason", text: "Reason (optional)" }), reason);
    }
    for (const button of buttons.querySelectorAll("button")) button.disabled = true;
    showOutcome(result, null);
    confirmStep(box, { question, fields, name, yes: action.yes, danger: name === "refund",
      onCancel: () => {
        const allowed = (state.detail && state.detail.actions) || {};
        for (const button of buttons.querySelectorAll("button")) button.disabled = !allowed[button.dataset.action];
        buttons.querySelector(`[data-action="${name}"]`).focus();
      },
      onYes: () => runAction(name, id, reason ? reason.value.trim() : ""),
    });
  }

  async function runAction(name, id, reason) {
    const body = name === "refund" && reason ? { reason } : {};
    let outcome;
    let detail = null;
    try {
      const answer = await api(`/api/admin/orders/${encodeURIComponent(id)}/${name}`, { method: "POST", body });
      outcome = { message: answer.message || "Done.", tone: "ok" };
      detail = answer.detail || null;
    } catch (error) {
      if (error.status === 401) return;
      outcome = { message: error.message, tone: "bad" };
    }
    if (state.detailId !== id) return;
    if (detail && detail.order) renderDetail(detail, outcome);
    else loadDetail(id, outcome);
    const shown = $("detail-body").querySelector(".outcome");
    if (shown) shown.focus({ preventScroll: false });
    loadStats();
    loadAttention();
    loadOrders();
    loadEvents();  // a refund queues an event; a retry may deliver the eSIM (another)
  }

  // ---- wiring --------------------------------------------------------------------------------------------

  /* A search form: submitting searches at once; typing searches once the typing pauses. Returns the "search
     now" function, which also drops a pending typed search. */
  function wireSearch(formId, inputId, search) {
    let typing = null;
    const now = () => { clearTimeout(typing); search(); };
    $(formId).addEventListener("submit", (event) => { event.preventDefault(); now(); });
    $(inputId).addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(now, SEARCH_DELAY_MS); });
    return now;
  }

  // ‹ and › under a list: move state[pageKey] one page (never below 1) and load the list again.
  function wirePager(prefix, pageKey, load) {
    $(prefix + "-prev").addEventListener("click", () => { state[pageKey] = Math.max(1, state[pageKey] - 1); load(); });
    $(prefix + "-next").addEventListener("click", () => { state[pageKey] += 1; load(); });
  }

  function wire() {
    $("login-form").addEventListener("submit", login);
    $("logout").addEventListener("click", logout);
    $("refresh").addEventListener("click", refreshAll);
    for (const tab of document.querySelectorAll(".tab")) {
      tab.addEventListener("click", () => showView(tab.dataset.view));
    }

    $("f-statuses").replaceChildren(...STATUSES.map(([value, label]) => el("label", { class: "check-chip" }, [
      el("input", { type: "checkbox", name: "status", value }), el("span", { text: label }),
    ])));
    const apply = wireSearch("filters", "f-q", () => { readFilters(); loadOrders(); });
    $("filters").addEventListener("change", (event) => { if (event.target.id !== "f-q") apply(); });
    $("f-clear").addEventListener("click", () => applyFilters(emptyFilters()));
    $("user-filter-clear").addEventListener("click", () => { state.filters.user = ""; state.page = 1; loadOrders(); });
    wirePager("orders", "page", loadOrders);

    wireSearch("users-filters", "u-q", () => { state.usersQuery = $("u-q").value.trim(); state.usersPage = 1; loadUsers(); });
    wirePager("users", "usersPage", loadUsers);

    const dialog = $("detail");
    $("detail-close").addEventListener("click", closeDetail);
    dialog.addEventListener("close", () => { if (!dialog.open) forgetDetail(); });  // Esc, or closed by the code
    dialog.addEventListener("click", (event) => { if (event.target === dialog) closeDetail(); });  // the backdrop
    window.addEventListener("hashchange", syncDetail);
  }

  /* What static/admin/settings.js may use: the DOM and formatting helpers, the API (the session's CSRF token on
     every write; a 401 signs the console out), the error notice, outcome line and confirm step, and addView(name,
     { show, refresh, signedOut }) for a view whose tab is .tab[data-view=name] and section #view-<name>: show
     when its tab is chosen, refresh on ↻, signedOut to forget what it shows. */
  function addView(name, hooks) {
    addedViews[name] = hooks;
    if (state.signedIn && state.view === name) hooks.show();
  }

  window.esimsAdmin = Object.freeze({
    $, el, api, failed, showOutcome, confirmStep, count, stars, usd, when, text,
    signedIn: () => state.signedIn, addView,
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
