"""The one door to Telegram's Bot API: every call the shop makes to Telegram goes through `BotApi`, as every
call to eSIM Go goes through `esimgo.py` (STYLE.md).

It owns the pyTelegramBotAPI client (base URL `TELEGRAM_API_URL`, timeouts), the few calls the shop makes —
invoice link, pre-checkout answer, messages with a QR photo or text, Stars refunds, the bot's own setup — and
what their failures mean: `TelegramPermanent` (the request itself is wrong for that chat: blocked bot, unknown
chat, bad request; trying again will not help) or `TelegramRetryable` (rate limit, Telegram's 5xx, the
network). The handlers and the webhook that receive updates are `bot.py`.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Sequence
from typing import TypeVar

import requests
from telebot import TeleBot, apihelper, types
from telebot.apihelper import ApiTelegramException

log = logging.getLogger(__name__)

T = TypeVar("T")
Button = types.InlineKeyboardButton


class TelegramError(Exception):
    """A Bot API call failed; `code` is Telegram's error code (0 when Telegram was not reached)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class TelegramRetryable(TelegramError):
    """Rate limited, Telegram's own error, or the network: the same call may work later."""


class TelegramPermanent(TelegramError):
    """The request cannot work as it is (blocked by the user, unknown chat, bad parameters)."""


def app_button(text: str, url: str) -> Button:
    """A button opening a Mini App page: a web_app button on https, a plain link otherwise (web_app buttons
    need https; demo mode runs on http://127.0.0.1)."""
    if url.startswith("https://"):
        return Button(text, web_app=types.WebAppInfo(url))
    return Button(text, url=url)


def link_button(text: str, url: str) -> Button:
    return Button(text, url=url)


def _markup(buttons: Sequence[Button] | None) -> types.InlineKeyboardMarkup | None:
    if not buttons:
        return None
    markup = types.InlineKeyboardMarkup()
    for button in buttons:
        markup.add(button)
    return markup


# A request's URL holds the bot token and, for pyTelegramBotAPI, every parameter (a caption's activation code).
_URL = re.compile(r"(https?://|/bot\d+:)\S*")


def scrub(text: str) -> str:
    """An HTTP library's error text without the URLs in it, so it may be logged, stored and shown."""
    return _URL.sub("<url>", text)[:300]


class BotApi:
    """The shop's Bot API client. One per app; `telebot` is the pyTelegramBotAPI instance the webhook's
    handlers are registered on."""

    def __init__(self, token: str, api_url: str) -> None:
        # pyTelegramBotAPI reads the base URL from a module global; one app per process makes that safe.
        apihelper.API_URL = None if api_url == "https://api.telegram.org" else api_url + "/bot{0}/{1}"
        apihelper.CONNECT_TIMEOUT = 5
        apihelper.READ_TIMEOUT = 30
        self.telebot = TeleBot(token, threaded=False, parse_mode=None)

    def _call(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except ApiTelegramException as exc:
            code = int(exc.error_code or 0)
            # 400 (bad request for this chat) and 403 (blocked, no rights) will not change by trying again;
            # anything else (429, 5xx, a 401/404 from a misconfigured token or URL the operator can mend) may.
            kind = TelegramPermanent if code in (400, 403) else TelegramRetryable
            raise kind(f"{what}: {exc.description}", code) from exc
        except apihelper.ApiException as exc:  # not Telegram's JSON (a proxy's 502 page, a cut-off answer)
            raise TelegramRetryable(f"{what}: {scrub(str(exc))}") from exc
        except requests.RequestException as exc:
            raise TelegramRetryable(f"{what}: {type(exc).__name__}: {scrub(str(exc))}") from exc

    # ---- payments ------------------------------------------------------------------------------

    def invoice_link(self, *, title: str, description: str, payload: str, stars: int) -> str:
        """A Stars invoice link (XTR, one price, empty provider token) whose payload is our order id."""
        return self._call("createInvoiceLink", lambda: self.telebot.create_invoice_link(
            title=title, description=description, payload=payload, provider_token="", currency="XTR",
            prices=[types.LabeledPrice(label=title, amount=stars)]))

    def answer_pre_checkout(self, query_id: str, ok: bool, error_message: str | None = None) -> None:
        self._call("answerPreCheckoutQuery", lambda: self.telebot.answer_pre_checkout_query(
            query_id, ok=ok, error_message=None if ok else error_message))

    def refund(self, user_id: int, charge_id: str) -> bool:
        """Give the Stars of a charge back; False when Telegram says it was refunded already (also done)."""
        try:
            self._call("refundStarPayment", lambda: self.telebot.refund_star_payment(user_id, charge_id))
        except TelegramPermanent as exc:
            if "CHARGE_ALREADY_REFUNDED" in str(exc).upper():
                return False
            raise
        return True

    # ---- messages ------------------------------------------------------------------------------

    def send_text(self, chat_id: int, text: str, buttons: Sequence[Button] | None = None,
                  html: bool = False) -> int:
        """Send a text message; returns its message id."""
        message = self._call("sendMessage", lambda: self.telebot.send_message(
            chat_id, text, parse_mode="HTML" if html else None, reply_markup=_markup(buttons)))
        return message.message_id

    def send_photo(self, chat_id: int, png: bytes, file_name: str, caption: str,
                   buttons: Sequence[Button] | None = None) -> int:
        """Send a PNG (the eSIM's QR code) with an HTML caption; returns the message id."""
        photo = types.InputFile(io.BytesIO(png), file_name=file_name)
        message = self._call("sendPhoto", lambda: self.telebot.send_photo(
            chat_id, photo, caption=caption, parse_mode="HTML", reply_markup=_markup(buttons)))
        return message.message_id

    # ---- the bot's own setup (scripts/setup-bot) -------------------------------------------------

    def set_webhook(self, url: str, secret: str, allowed_updates: list[str]) -> None:
        self._call("setWebhook", lambda: self.telebot.set_webhook(
            url=url, secret_token=secret or None, allowed_updates=allowed_updates, max_connections=20))

    def set_commands(self, commands: list[tuple[str, str]], language_code: str | None = None) -> None:
        self._call("setMyCommands", lambda: self.telebot.set_my_commands(
            [types.BotCommand(c, d) for c, d in commands], language_code=language_code))

    def set_menu_button(self, text: str, url: str) -> None:
        self._call("setChatMenuButton", lambda: self.telebot.set_chat_menu_button(
            menu_button=types.MenuButtonWebApp(type="web_app", text=text, web_app=types.WebAppInfo(url))))

    def __repr__(self) -> str:  # never the token
        return f"<BotApi {apihelper.API_URL or 'https://api.telegram.org'}>"
