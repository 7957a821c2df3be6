"""Browser test fixtures: the real app served on a local port, Debian's Chromium through Playwright, and the
Telegram client stand-in from `fake_telegram.py`. (tests/browser is a package, so this file is imported as
`browser.conftest` and the other tests' `from conftest import ...` still finds tests/conftest.py.)

- `browser`: one headless Chromium per session (/usr/bin/chromium; a missing binary fails loudly, never skips).
- `shop`: `create_app()` with the vendor sandboxes from tests/conftest.py, served by a werkzeug thread.
- `first_start`: the same on its very first start, with no catalogue on disk: the catalogue API answers 503 until
  the test loads it (`extensions.catalogue(first_start.app).refresh()`).
- `open_app(lang=..., scheme=..., buyer=..., platform=...)`: a fresh 390×780 page "inside Telegram" for a buyer
  (`buyer=None`: a plain browser), recording every request it makes (`.requests`) so tests can check hosts and
  the first-screen budget.
- `telegram_client(storage=..., lang=..., scheme=..., platform=...)`: the shop opened by Telegram's genuine
  telegram-web-app.js (`telegram_web.py`): in Telegram Web's cross-site iframe (platform "weba"/"webk", third-party
  storage "blocked" or "allowed" by a Chromium of its own) or as an app's web view (any other platform).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, sync_playwright

import extensions
from app import create_app
from conftest import make_config
from sandboxes.server import ServerThread

from .fake_telegram import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, WEBAPP_JS, Buyer, Payments, install, stub_script
from .telegram_web import GENUINE_JS, STORAGE_FLAGS, harness_app, open_client


@pytest.fixture(scope="session")
def playwright():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's Chromium. Install it with "
                    "`apt-get install -y chromium` (scripts/test does this) — never `playwright install`.")
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright):
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def storage_browsers(playwright):
    """A Chromium per third-party storage mode ("blocked", "allowed"), launched when first asked for."""
    launched: dict[str, object] = {}

    def get(mode: str):
        if mode not in launched:
            launched[mode] = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                        args=CHROMIUM_ARGS + STORAGE_FLAGS[mode])
        return launched[mode]

    yield get
    for browser in launched.values():
        browser.close()


@pytest.fixture(scope="session")
def telegram_web_origin():
    """Telegram Web's stand-in, as another site than the shop (localhost vs 127.0.0.1)."""
    server = ServerThread(harness_app).start()
    yield f"http://localhost:{server.port}"
    server.stop()


@dataclass
class Shop:
    """The running app: its origin, the Flask app (config, collaborators) and the sandboxes behind it."""

    origin: str
    app: object
    esimgo: object
    telegram: object
    hits: list[str] = field(default_factory=list)  # paths (with query) that reached the server, in order

    @property
    def host(self) -> str:
        return urlsplit(self.origin).netloc


@pytest.fixture
def shop(config, esimgo, telegram):
    # tests/conftest.py's `config`: the sandboxes, test secrets (BOT_TOKEN, WEBHOOK_SECRET), a fresh data folder.
    app = create_app(config)
    hits: list[str] = []

    def counted(environ, start_response):
        query = environ.get("QUERY_STRING")
        hits.append(environ["PATH_INFO"] + ("?" + query if query else ""))
        return app(environ, start_response)

    server = ServerThread(counted).start()
    yield Shop(server.origin, app, esimgo, telegram, hits)
    server.stop()


@pytest.fixture
def first_start(tmp_path, esimgo, telegram):
    folder = tmp_path / "first-start"
    folder.mkdir()
    app = create_app(make_config(folder, esimgo, telegram))  # CATALOGUE_BACKGROUND=0: only the test fetches it
    server = ServerThread(app).start()
    yield Shop(server.origin, app, esimgo, telegram)
    server.stop()
    app.extensions["esimsdata"]["store"].close()


@dataclass
class Recorded:
    url: str
    host: str
    resource: str
    page_url: str


@dataclass
class AppPage:
    """A page inside the fake Telegram client, with what it requested and the buyer it belongs to."""

    page: Page
    buyer: Buyer | None
    payments: Payments | None
    requests: list[Recorded] = field(default_factory=list)

    def tg(self, expression: str):
        """Evaluate `expression` against the fake client's state (window.Telegram.WebApp / window.__tg)."""
        return self.page.evaluate(expression)


@pytest.fixture
def open_app(browser, shop):
    contexts = []

    def make(lang: str = "en", scheme: str = "light", buyer: Buyer | None | bool = True, platform: str = "ios",
             color_scheme: str | None = None, telegram_script: bool = True) -> AppPage:
        who = Buyer(language_code=lang) if buyer is True else (buyer or None)
        context = browser.new_context(viewport=VIEWPORT, device_scale_factor=2, is_mobile=True, has_touch=True,
                                      color_scheme=color_scheme or scheme, locale="en-US")
        contexts.append(context)
        settings = extensions.settings(shop.app)
        payments = Payments(shop.origin, shop.telegram, who, settings.telegram_webhook_secret) if who else None
        if telegram_script:
            install(context, stub_script(who, settings.telegram_bot_token, scheme=scheme, platform=platform),
                    payments)
        else:  # telegram.org unreachable, as in a browser that blocks it
            context.route(WEBAPP_JS, lambda route: route.abort("blockedbyclient"))
        page = context.new_page()
        page.set_default_timeout(10_000)
        app_page = AppPage(page, who, payments)

        def record(request) -> None:
            parts = urlsplit(request.url)
            if parts.scheme in ("http", "https", "ws", "wss"):
                app_page.requests.append(Recorded(request.url, parts.netloc, request.resource_type, page.url))

        page.on("request", record)
        return app_page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def telegram_client(storage_browsers, browser, shop, telegram_web_origin):
    if not GENUINE_JS.exists():
        pytest.fail(f"{GENUINE_JS} is missing: run `npm ci` (scripts/test does this).")
    contexts = []
    settings = extensions.settings(shop.app)

    def make(storage: str = "allowed", lang: str = "en", scheme: str = "light", platform: str = "weba",
             path: str = "/"):
        buyer = Buyer(language_code=lang)
        payments = Payments(shop.origin, shop.telegram, buyer, settings.telegram_webhook_secret)
        web = platform in ("weba", "webk", "web")
        context, client = open_client(storage_browsers(storage) if web else browser, shop, buyer, payments,
                                      settings.telegram_bot_token, harness_origin=telegram_web_origin if web else None,
                                      scheme=scheme, platform=platform, path=path)
        contexts.append(context)
        return client

    yield make
    for context in contexts:
        context.close()

