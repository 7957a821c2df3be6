"""The door to Telegram's Bot API (botapi.py), against the Bot API sandbox: the calls the shop makes, and
what each kind of failure becomes."""

from __future__ import annotations

import socket

import pytest

from botapi import BotApi, TelegramPermanent, TelegramRetryable, app_button, link_button
from conftest import BOT_TOKEN


@pytest.fixture
def api(telegram) -> BotApi:
    return BotApi(BOT_TOKEN, telegram.url)


def test_an_invoice_link_is_a_stars_invoice_for_our_order(api, telegram):
    link = api.invoice_link(title="Thailand · 1 GB · 7 days", description="eSIM", payload="ord_1", stars=314)
    assert link.startswith("https://t.me/")
    (call,) = telegram.calls("createInvoiceLink")
    assert call.params["currency"] == "XTR" and call.params["provider_token"] == ""
    assert call.json("prices") == [{"label": "Thailand · 1 GB · 7 days", "amount": 314}]


def test_messages_carry_their_buttons_and_return_the_message_id(api, telegram):
    buttons = [link_button("Install", "https://esimsetup.apple.com/x"), app_button("Open", "https://shop.test/e")]
    message_id = api.send_text(42, "<b>ready</b>", buttons, html=True)
    (call,) = telegram.calls("sendMessage", chat_id=42)
    assert message_id > 0 and call.params["parse_mode"] == "HTML"
    rows = call.json("reply_markup")["inline_keyboard"]
    assert rows[0][0]["url"].startswith("https://esimsetup") and rows[1][0]["web_app"]["url"] == "https://shop.test/e"
    assert app_button("Open", "http://127.0.0.1:8000/e").url == "http://127.0.0.1:8000/e"  # no web_app on http


@pytest.mark.parametrize("code, kind", [(403, TelegramPermanent), (400, TelegramPermanent),
                                        (429, TelegramRetryable), (502, TelegramRetryable),
                                        (401, TelegramRetryable), (404, TelegramRetryable)])
def test_each_kind_of_failure_says_whether_trying_again_can_help(api, telegram, code, kind):
    telegram.fail("sendMessage", code, "Forbidden: bot was blocked by the user" if code == 403 else None)
    with pytest.raises(kind) as raised:
        api.send_text(42, "hello")
    assert raised.value.code == code and "sendMessage" in str(raised.value)


def test_telegram_out_of_reach_is_worth_retrying(telegram):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    try:
        with pytest.raises(TelegramRetryable) as raised:
            BotApi(BOT_TOKEN, f"http://127.0.0.1:{port}").send_text(42, "Activation code: JQ-SECRET-CODE")
        assert raised.value.code == 0
        # The library's text names the URL, which holds the token and every parameter: it must not get out
        # (the error is logged, stored on the order, shown in the admin console).
        said = str(raised.value)
        assert "ConnectionError" in said and BOT_TOKEN not in said and "JQ-SECRET-CODE" not in said
    finally:
        BotApi(BOT_TOKEN, telegram.url)  # the base URL is pyTelegramBotAPI's global: point it back


def test_a_charge_refunded_before_counts_as_refunded(api, telegram):
    telegram.fail("refundStarPayment", 400, "Bad Request: CHARGE_ALREADY_REFUNDED")
    assert api.refund(42, "stx1") is False
    assert api.refund(42, "stx2") is True
    telegram.fail("refundStarPayment", 400, "Bad Request: CHARGE_NOT_FOUND")
    with pytest.raises(TelegramPermanent):
        api.refund(42, "stx3")


def test_an_answer_that_is_not_telegrams_json_is_worth_retrying(telegram):
    from flask import Flask

    from sandboxes.server import ServerThread

    proxy = Flask("proxy")  # what a proxy in front of the Bot API answers when Telegram is down
    proxy.add_url_rule("/<path:anything>", "page", lambda anything: ("<html><h1>502 Bad Gateway</h1></html>", 502),
                       methods=["GET", "POST"])
    server = ServerThread(proxy).start()
    try:
        with pytest.raises(TelegramRetryable, match="createInvoiceLink"):
            BotApi(BOT_TOKEN, server.origin).invoice_link(title="t", description="d", payload="p", stars=1)
    finally:
        server.stop()
        BotApi(BOT_TOKEN, telegram.url)
