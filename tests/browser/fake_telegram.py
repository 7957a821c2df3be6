"""The Telegram client's side of a Mini App, for driving our pages in Chromium: a stand-in for
`telegram-web-app.js` and the payment a buyer makes in Telegram's invoice sheet.

`install(context, ...)` answers every request for https://telegram.org/js/telegram-web-app.js with a script
that defines `window.Telegram.WebApp` the way the real client does for a user: signed initData, the theme's
`--tg-theme-*` CSS variables, MainButton / BackButton / HapticFeedback objects that record what the page did
(in `window.__tg`), and `openInvoice(link, cb)` which pays through `pay_invoice()` — the updates Telegram
would send our webhook (pre_checkout_query, then successful_payment) — and then calls `cb("paid")`.
Shared by the browser tests and `screenshots.py`.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from playwright.sync_api import BrowserContext, Route

from auth import sign_init_data

WEBAPP_JS = "https://telegram.org/js/telegram-web-app.js*"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 390, "height": 780}
# True once the eSIM page's QR image has loaded (for page.wait_for_function).
QR_LOADED = "() => { const i = document.getElementById('qr'); return Boolean(i && i.complete && i.naturalWidth); }"

# Telegram's own palettes (iOS day, Android night) as the client hands them to Mini Apps.
THEMES: dict[str, dict[str, str]] = {
    "light": {
        "bg_color": "#ffffff", "text_color": "#000000", "hint_color": "#8e8e93", "link_color": "#007aff",
        "button_color": "#007aff", "button_text_color": "#ffffff", "secondary_bg_color": "#efeff4",
        "header_bg_color": "#f8f8f8", "accent_text_color": "#007aff", "section_bg_color": "#ffffff",
        "section_header_text_color": "#6d6d72", "subtitle_text_color": "#8e8e93", "destructive_text_color": "#ff3b30",
        "section_separator_color": "#c8c7cc", "bottom_bar_bg_color": "#f2f2f2",
    },
    "dark": {
        "bg_color": "#212d3b", "text_color": "#ffffff", "hint_color": "#7d8b99", "link_color": "#5eabe1",
        "button_color": "#50a8eb", "button_text_color": "#ffffff", "secondary_bg_color": "#151e27",
        "header_bg_color": "#242d39", "accent_text_color": "#64b5ef", "section_bg_color": "#1d2733",
        "section_header_text_color": "#79c4fc", "subtitle_text_color": "#7b8790", "destructive_text_color": "#ee686f",
        "section_separator_color": "#0d1218", "bottom_bar_bg_color": "#151e27",
    },
}

# The client's script, with __CONFIG__ to fill in (user, theme, platform, version).
STUB_JS = Path(__file__).with_name("telegram-web-app.stub.js")


def theme(scheme: str) -> dict[str, str]:
    return THEMES[scheme]


@dataclass
class Buyer:
    """The Telegram user the fake client signs initData for."""

    id: int = 2515644
    first_name: str = "Anna"
    username: str | None = "anna_travels"
    language_code: str = "en"

    def user(self) -> dict[str, Any]:
        user: dict[str, Any] = {"id": self.id, "first_name": self.first_name, "language_code": self.language_code}
        if self.username:
            user["username"] = self.username
        return user


@dataclass
class Payments:
    """Pays invoices the way Telegram does once the buyer confirms: updates to our webhook, in order."""

    origin: str
    telegram: Any  # the Bot API sandbox handle (tests/conftest.py `telegram`)
    buyer: Buyer
    webhook_secret: str
    paid: list[str] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(int(time.time() * 1000) % 10**9))

    def _post(self, update: dict[str, Any]) -> requests.Response:
        return requests.post(self.origin + "/api/telegram/webhook", json=update, timeout=10,
                             headers={"X-Telegram-Bot-Api-Secret-Token": self.webhook_secret})

    def pay(self, link: str) -> str:
        """Pay the invoice behind `link`; returns the status the invoice sheet reports ("paid"/"failed")."""
        invoice = next((i for i in reversed(self.telegram.invoices()) if i.get("link") == link), None)
        if invoice is None:
            return "failed"
        stars = int(invoice["amount"])
        user = {"id": self.buyer.id, "is_bot": False, "first_name": self.buyer.first_name,
                "language_code": self.buyer.language_code}
        answered = len(self.telegram.calls("answerPreCheckoutQuery"))
        query_id = str(next(self._ids))
        self._post({"update_id": next(self._ids), "pre_checkout_query": {
            "id": query_id, "from": user, "currency": "XTR", "total_amount": stars,
            "invoice_payload": invoice["payload"]}})
        answers = self.telegram.wait_for("answerPreCheckoutQuery", count=answered + 1, timeout=10)
        if str(answers[-1].params.get("ok")).lower() != "true":
            return "failed"
        charge = f"stxTEST{next(self._ids)}"
        response = self._post({"update_id": next(self._ids), "message": {
            "message_id": next(self._ids) % 100000, "date": int(time.time()),
            "chat": {"id": self.buyer.id, "type": "private"}, "from": user,
            "successful_payment": {"currency": "XTR", "total_amount": stars, "invoice_payload": invoice["payload"],
                                   "telegram_payment_charge_id": charge, "provider_payment_charge_id": ""}}})
        if response.status_code != 200:
            return "failed"
        self.paid.append(invoice["payload"])
        return "paid"


def stub_script(buyer: Buyer | None, bot_token: str, scheme: str = "light", platform: str = "ios",
                version: str = "8.0", draw_main_button: bool = False) -> str:
    """telegram-web-app.js for `buyer` (None: opened outside Telegram — empty initData, as in a browser)."""
    if buyer is None:
        init_data, unsafe, platform = "", {}, "unknown"
    else:
        init_data = sign_init_data(bot_token, buyer.user())
        unsafe = {"user": buyer.user(), "auth_date": int(time.time())}
    config = {"initData": init_data, "initDataUnsafe": unsafe, "colorScheme": scheme, "theme": theme(scheme),
              "platform": platform, "version": version, "drawMainButton": draw_main_button}
    return STUB_JS.read_text("utf-8").replace("__CONFIG__", json.dumps(config, ensure_ascii=False))


def install(context: BrowserContext, script: str, payments: Payments | None = None) -> None:
    """Serve `script` for telegram-web-app.js in every page of `context`, and wire the payment hook."""
    def fulfil(route: Route) -> None:
        route.fulfill(status=200, content_type="text/javascript", body=script,
                      headers={"Cache-Control": "max-age=3600"})

    context.route(WEBAPP_JS, fulfil)
    if payments is not None:
        context.expose_function("__payInvoice", payments.pay)
