/* Telegram's side of a Mini App for browser tests (telegram_web.py): what a Telegram client answers to the
   events Telegram's genuine telegram-web-app.js posts, and what it records. `TelegramClient(cfg, send)` gets the
   client's config (theme, viewport) and `send(eventType, eventData)`, the way back to the Mini App: postMessage
   into the iframe for Telegram Web (Web K / Web A), Telegram.WebView.receiveEvent for the apps (iOS, Android,
   Desktop, macOS, which talk through window.TelegramWebviewProxy). Payments go to window.__payInvoice(slug), a
   Python hook that posts Telegram's updates to the shop's webhook and answers the invoice's status. */
window.TelegramClient = function (cfg, send) {
  const state = { events: [], mainButton: { is_visible: false }, backButton: { is_visible: false },
    invoices: [], links: [], haptics: [], popups: [], colors: [] };
  const inset = { top: 0, bottom: 0, left: 0, right: 0 };
  const answers = {
    web_app_request_theme: () => send("theme_changed", { theme_params: cfg.theme }),
    web_app_request_viewport: () => send("viewport_changed", { height: cfg.height, is_expanded: true, is_state_stable: true }),
    web_app_expand: () => send("viewport_changed", { height: cfg.height, is_expanded: true, is_state_stable: true }),
    web_app_request_safe_area: () => send("safe_area_changed", inset),
    web_app_request_content_safe_area: () => send("content_safe_area_changed", inset),
    web_app_setup_main_button: (data) => { state.mainButton = data; },
    web_app_setup_back_button: (data) => { state.backButton = data; },
    web_app_set_header_color: (data) => state.colors.push("header:" + (data.color_key || data.color)),
    web_app_set_background_color: (data) => state.colors.push("background:" + data.color),
    web_app_trigger_haptic_feedback: (data) => state.haptics.push(data.type + ":" + (data.impact_style || data.notification_type || "")),
    web_app_open_link: (data) => state.links.push(data.url),
    web_app_open_tg_link: (data) => state.links.push("https://t.me" + data.path_full),
    web_app_open_popup: (data) => { state.popups.push(data.message); send("popup_closed", {}); },
    web_app_open_invoice: async (data) => {
      state.invoices.push(data.slug);
      let status = "failed";
      try { status = await window.__payInvoice(data.slug); } catch (e) { status = "failed"; }
      send("invoice_closed", { slug: data.slug, status });
    },
  };
  state.receive = function (eventType, eventData) {
    state.events.push(eventType);
    if (answers[eventType]) answers[eventType](eventData || {});
  };
  // What the buyer does on Telegram's own controls.
  state.tapMain = () => send("main_button_pressed");
  state.tapBack = () => send("back_button_pressed");
  state.setTheme = (theme) => { cfg.theme = theme; send("theme_changed", { theme_params: theme }); };
  return state;
};
