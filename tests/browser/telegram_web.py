"""Telegram's genuine client script around our Mini App, for browser tests: the copy of telegram-web-app.js that
@twa-dev/sdk ships (node_modules/, installed by `npm ci` in scripts/test — never fetched from the internet), and
the Telegram side it talks to.

- Telegram Web (Web K / Web A): `telegram-web.html`, served on its own port and opened as http://localhost:<port>
  — another site than the shop at http://127.0.0.1:<port> — holds the Mini App in a cross-site iframe, opened with
  the launch fragment (`#tgWebAppData=…&tgWebAppPlatform=weba&tgWebAppThemeParams=…`) and spoken to over
  postMessage. Chromium's third-party storage is `blocked` (cookies and sessionStorage refused in the iframe, as
  privacy settings and some browsers do) or `allowed`.
- The apps (iOS, Android, Desktop, macOS): the Mini App as the page itself, the script talking to
  `window.TelegramWebviewProxy`, which the apps inject.
Both answer through `telegram-client.js` (theme, viewport, MainButton / BackButton, haptics, links, popups) and pay
an invoice as `fake_telegram.Payments` does: pre_checkout_query and successful_payment to the shop's webhook, then
`invoice_closed` with the status.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

from playwright.sync_api import Browser, BrowserContext, Frame, FrameLocator, Page

from auth import sign_init_data

from .fake_telegram import VIEWPORT, WEBAPP_JS, Buyer, Payments, theme

HERE = Path(__file__).resolve().parent
GENUINE_JS = HERE.parents[1] / "node_modules" / "@twa-dev" / "sdk" / "dist" / "telegram-web-apps.js"
HARNESS = HERE / "telegram-web.html"
CLIENT_JS = HERE / "telegram-client.js"
# Chromium 156's switches for third-party storage in a cross-site iframe (the tests prove which one is in force).
STORAGE_FLAGS = {"blocked": ["--test-third-party-cookie-phaseout"],
                 "allowed": ["--disable-features=TrackingProtection3pcd"]}
# The apps inject this bridge before the page's scripts run; events come back through Telegram.WebView.
NATIVE_BRIDGE = """
window.TelegramWebviewProxy = { postEvent(eventType, eventData) {
  const client = window.__tgWeb || (window.__tgWeb = window.TelegramClient(__CFG__,
    (type, data) => setTimeout(() => window.Telegram.WebView.receiveEvent(type, data), 0)));
  setTimeout(() => client.receive(eventType, eventData ? JSON.parse(eventData) : {}), 0);
} };
"""


def launch_fragment(buyer: Buyer, bot_token: str, scheme: str, platform: str, version: str = "8.0") -> str:
    """The URL fragment a Telegram client opens a Mini App with: signed initData, version, platform, theme."""
    params = {"tgWebAppData": sign_init_data(bot_token, buyer.user()), "tgWebAppVersion": version,
              "tgWebAppPlatform": platform, "tgWebAppThemeParams": json.dumps(theme(scheme), separators=(",", ":"))}
    return "#" + urlencode(params, quote_via=quote)


def harness_app(environ, start_response):
    """The harness's WSGI app: Telegram Web's page and the client script it shares with the apps."""
    files = {"/": (HARNESS, "text/html"), "/telegram-client.js": (CLIENT_JS, "text/javascript")}
    found = files.get(environ["PATH_INFO"])
    if found is None:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    start_response("200 OK", [("Content-Type", found[1] + "; charset=utf-8"), ("Cache-Control", "no-store")])
    return [found[0].read_bytes()]


@dataclass
class TelegramClientPage:
    """A Mini App inside a Telegram client run by the genuine script: what the buyer sees and does there."""

    page: Page  # Telegram Web's tab, or the app's web view
    buyer: Buyer
    payments: Payments
    shop_origin: str
    iframe: bool
    requests: list[str] = field(default_factory=list)  # every URL asked, by any frame
    documents: list[str] = field(default_factory=list)  # the HTML of every Mini App document as the server sent it
    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions

    @property
    def frame(self) -> Frame:
        if not self.iframe:
            return self.page.main_frame
        return self.page.locator("#app").element_handle().content_frame()

    @property
    def app(self) -> FrameLocator | Page:
        """Locators inside the Mini App."""
        return self.page.frame_locator("#app") if self.iframe else self.page

    def client(self, expression: str):
        """Evaluate against the Telegram client's state (telegram-client.js), e.g. client("mainButton.text")."""
        return self.page.evaluate("window.__tgWeb." + expression)

    def wait_main_button(self, text: str) -> None:
        self.page.wait_for_function(
            "t => window.__tgWeb && __tgWeb.mainButton.is_visible && __tgWeb.mainButton.text === t", arg=text)

    def tap_main(self) -> None:
        self.client("tapMain()")

    def tap_back(self) -> None:
        self.client("tapBack()")

    def path(self) -> str:
        """The Mini App's current path and query (its URL without the launch fragment)."""
        parts = urlsplit(self.frame.url)
        return parts.path + ("?" + parts.query if parts.query else "")


def open_client(browser: Browser, shop, buyer: Buyer, payments: Payments, bot_token: str, *, harness_origin: str | None,
                scheme: str, platform: str, path: str = "/") -> tuple[BrowserContext, TelegramClientPage]:
    """Open the shop's `path` in a Telegram client: Telegram Web's iframe with `harness_origin`, else an app."""
    phone = harness_origin is None and platform in ("ios", "android")
    context = browser.new_context(viewport=VIEWPORT, locale="en-US", color_scheme=scheme, is_mobile=phone,
                                  has_touch=phone)
    script = GENUINE_JS.read_text("utf-8")
    context.route(WEBAPP_JS, lambda route: route.fulfill(status=200, content_type="text/javascript", body=script))

    def pay(slug: str) -> str:
        invoice = next((i for i in reversed(shop.telegram.invoices()) if i.get("slug") == slug), None)
        return payments.pay(invoice["link"]) if invoice else "failed"

    context.expose_function("__payInvoice", pay)
    app_url = shop.origin + path + launch_fragment(buyer, bot_token, scheme, platform)
    config = {"app": app_url, "theme": theme(scheme), "width": VIEWPORT["width"], "height": VIEWPORT["height"]}
    if not harness_origin:
        bridge = NATIVE_BRIDGE.replace("__CFG__", json.dumps(config))
        context.add_init_script(script=CLIENT_JS.read_text("utf-8") + bridge)
    page = context.new_page()
    page.set_default_timeout(10_000)
    client = TelegramClientPage(page, buyer, payments, shop.origin, iframe=bool(harness_origin))
    page.on("request", lambda request: client.requests.append(request.url))
    page.on("pageerror", lambda error: client.errors.append(str(error)))
    page.on("console", lambda message: client.errors.append(message.text) if message.type == "error" else None)

    def keep_document(response) -> None:
        if response.request.resource_type == "document" and response.url.startswith(shop.origin):
            client.documents.append(response.text())

    page.on("response", keep_document)
    if harness_origin:
        page.goto(harness_origin + "/?" + urlencode({"cfg": json.dumps(config)}))
    else:
        page.goto(app_url)
    return context, client
