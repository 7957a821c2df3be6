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


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's Chromium. Install it with "
                    "`apt-get install -y chromium` (scripts/test does this) — never `playwright install`.")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


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
