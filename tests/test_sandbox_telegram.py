"""The Telegram sandbox answers pyTelegramBotAPI and plain HTTP clients the way the Bot API does."""

from __future__ import annotations

import io
import re
import threading
import time

import pytest
import requests
import telebot
from PIL import Image
from telebot import apihelper, types
from telebot.apihelper import ApiTelegramException

from sandboxes.telegram import TelegramSandbox

TOKEN = "123456:TEST-token_x"
CHAT = 4242
INVOICE_LINK = re.compile(r"^https://t\.me/\$[A-Za-z0-9\-_=]+$")


@pytest.fixture(scope="module")
def sandbox():
    running = TelegramSandbox().start()
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def fresh(sandbox):
    sandbox.reset()


@pytest.fixture
def bot(sandbox, monkeypatch):
    """A pyTelegramBotAPI bot whose requests go to the sandbox; API_URL is restored after the test."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr(apihelper, "API_URL", sandbox.url + "/bot{0}/{1}")
    return telebot.TeleBot(TOKEN, threaded=False)


@pytest.fixture
def http(sandbox):
    """Plain requests against the sandbox, ignoring any proxy the environment sets."""
    session = requests.Session()
    session.trust_env = False
    yield session
    session.close()


def api(sandbox: TelegramSandbox, method: str, token: str = TOKEN) -> str:
    return f"{sandbox.url}/bot{token}/{method}"


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "navy").save(buffer, "PNG")
    return buffer.getvalue()


def stars_invoice(bot: telebot.TeleBot, **overrides) -> str:
    arguments = {
        "title": "Spain 5 GB",
        "description": "5 GB for 30 days",
        "payload": "order-42",
        "provider_token": "",
        "currency": "XTR",
        "prices": [types.LabeledPrice("eSIM", 314)],
    }
    arguments.update(overrides)
    return bot.create_invoice_link(**arguments)


# ----- identity, routing, errors -----


def test_get_me_describes_the_bot_behind_the_token(bot):
    me = bot.get_me()

    assert (me.id, me.is_bot, me.username, me.first_name) == (123456, True, "esimsdata_demo_bot", "esimsdata demo")
    assert me.can_join_groups is True


def test_malformed_token_is_unauthorized_and_recorded(sandbox, http):
    response = http.get(api(sandbox, "getMe", token="not-a-token"))

    assert response.status_code == 401
    assert response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    assert [c.status for c in sandbox.calls("getMe")] == [401]


def test_unknown_method_is_not_found(sandbox, http):
    response = http.post(api(sandbox, "sendTelepathy"))

    assert response.status_code == 404
    assert response.json() == {"ok": False, "error_code": 404, "description": "Not Found: method not found"}
    assert sandbox.calls()[0].method == "sendTelepathy"


def test_method_names_are_case_insensitive_and_recorded_in_camel_case(sandbox, http):
    response = http.get(api(sandbox, "SENDMESSAGE"), params={"chat_id": CHAT, "text": "hi"})

    assert response.json()["ok"] is True
    assert [c.method for c in sandbox.calls("sendmessage")] == ["sendMessage"]


# ----- messages -----


def test_send_message_numbers_messages_per_chat(bot, sandbox):
    first = bot.send_message(CHAT, "one")
    second = bot.send_message(CHAT, "two")
    other = bot.send_message(777, "elsewhere")

    assert (first.message_id, second.message_id, other.message_id) == (1, 2, 1)
    assert (second.chat.id, second.chat.type, second.from_user.id) == (CHAT, "private", 123456)
    assert [c.params["text"] for c in sandbox.calls("sendMessage", chat_id=CHAT)] == ["one", "two"]


def test_send_message_refuses_empty_text_and_missing_chat(sandbox, http):
    empty = http.post(api(sandbox, "sendMessage"), data={"chat_id": CHAT, "text": "  "})
    no_chat = http.post(api(sandbox, "sendMessage"), data={"text": "hi"})

    assert (empty.status_code, empty.json()["description"]) == (400, "Bad Request: message text is empty")
    assert (no_chat.status_code, no_chat.json()["description"]) == (400, "Bad Request: chat_id is empty")


def test_send_message_renders_html_and_echoes_inline_keyboard(bot, sandbox):
    keyboard = types.InlineKeyboardMarkup()
    keyboard.add(types.InlineKeyboardButton("Buy", callback_data="buy:es-5gb"))

    message = bot.send_message(CHAT, "Pay <b>314 ⭐</b> &amp; go", parse_mode="HTML", reply_markup=keyboard)

    assert message.text == "Pay 314 ⭐ & go"
    assert [(e.type, e.offset, e.length) for e in message.entities] == [("bold", 4, 5)]
    assert message.reply_markup.keyboard[0][0].callback_data == "buy:es-5gb"
    assert sandbox.calls("sendMessage")[0].json("reply_markup")["inline_keyboard"][0][0]["text"] == "Buy"


@pytest.mark.parametrize(
    ("text", "parse_mode", "description"),
    [
        ("Price < 5", "HTML", 'Unsupported start tag "" at byte offset 6'),
        ("<b>bold", "HTML", 'Can\'t find end tag corresponding to start tag "b"'),
        ("v1.0", "MarkdownV2", "Character '.' is reserved and must be escaped with the preceding '\\'"),
    ],
)
def test_send_message_refuses_text_telegram_cannot_parse(bot, text, parse_mode, description):
    with pytest.raises(ApiTelegramException) as refused:
        bot.send_message(CHAT, text, parse_mode=parse_mode)

    assert refused.value.error_code == 400
    assert refused.value.description == f"Bad Request: can't parse entities: {description}"


def test_callback_data_longer_than_64_bytes_is_refused(bot):
    keyboard = types.InlineKeyboardMarkup()
    keyboard.add(types.InlineKeyboardButton("Buy", callback_data="x" * 65))

    with pytest.raises(ApiTelegramException, match="BUTTON_DATA_INVALID"):
        bot.send_message(CHAT, "pick", reply_markup=keyboard)


# ----- photos -----


def test_send_photo_records_the_upload_and_reports_its_real_size(bot, sandbox):
    image = png(300, 180)

    message = bot.send_photo(CHAT, image, caption="Your eSIM QR")

    largest = message.photo[-1]
    assert (largest.width, largest.height, largest.file_size) == (300, 180, len(image))
    assert message.caption == "Your eSIM QR"
    upload = sandbox.calls("sendPhoto")[0].files["photo"]
    assert (upload.filename, upload.data) == ("photo", image)


def test_send_photo_keeps_the_file_name_given(bot, sandbox):
    bot.send_photo(CHAT, types.InputFile(io.BytesIO(png(64, 64)), file_name="esim-qr.png"))

    assert sandbox.calls("sendPhoto")[0].files["photo"].filename == "esim-qr.png"


def test_send_photo_can_resend_by_file_id(bot):
    first = bot.send_photo(CHAT, png(120, 120))

    again = bot.send_photo(CHAT, first.photo[-1].file_id)

    assert again.photo[-1].file_id == first.photo[-1].file_id


def test_send_photo_refuses_bytes_that_are_not_an_image(bot):
    with pytest.raises(ApiTelegramException) as refused:
        bot.send_photo(CHAT, b"definitely not a png")

    assert refused.value.description == "Bad Request: IMAGE_PROCESS_FAILED"


def test_send_photo_refuses_a_caption_over_1024_characters(bot):
    with pytest.raises(ApiTelegramException) as refused:
        bot.send_photo(CHAT, png(10, 10), caption="x" * 1025)

    assert refused.value.description == "Bad Request: message caption is too long"


# ----- Stars invoices -----


def test_stars_invoice_link_is_a_t_me_link_and_remembered(bot, sandbox):
    link = stars_invoice(bot)

    assert INVOICE_LINK.match(link)
    call = sandbox.calls("createInvoiceLink")[0]
    assert call.json("prices")[0]["amount"] == 314
    assert call.params["provider_token"] == ""
    invoice = sandbox.invoices()[0]
    assert (invoice["link"], invoice["slug"]) == (link, link.removeprefix("https://t.me/$"))
    assert (invoice["payload"], invoice["currency"], invoice["amount"]) == ("order-42", "XTR", 314)


def test_stars_invoice_without_provider_token_parameter_is_accepted(bot):
    assert INVOICE_LINK.match(stars_invoice(bot, provider_token=None))


@pytest.mark.parametrize(
    ("overrides", "description"),
    [
        ({"prices": [types.LabeledPrice("eSIM", 300), types.LabeledPrice("Fee", 14)]}, "STARS_INVOICE_INVALID"),
        ({"provider_token": "284685063:TEST:abc"}, "STARS_INVOICE_INVALID"),
        ({"prices": [types.LabeledPrice("eSIM", 0)]}, "CURRENCY_TOTAL_AMOUNT_INVALID"),
        ({"payload": "x" * 129}, "INVOICE_PAYLOAD_INVALID"),
        ({"payload": "é" * 65}, "INVOICE_PAYLOAD_INVALID"),  # 130 bytes, 65 characters
        ({"title": "t" * 33}, "INVOICE_TITLE_INVALID"),
    ],
)
def test_bad_stars_invoices_are_refused(bot, sandbox, overrides, description):
    with pytest.raises(ApiTelegramException) as refused:
        stars_invoice(bot, **overrides)

    assert (refused.value.error_code, refused.value.description) == (400, f"Bad Request: {description}")
    assert sandbox.invoices() == []
    assert sandbox.calls("createInvoiceLink")[0].status == 400


# ----- pre-checkout and refunds -----


def test_answer_pre_checkout_query_records_ok_and_refusal(bot, sandbox):
    assert bot.answer_pre_checkout_query("pcq1", ok=True) is True
    assert bot.answer_pre_checkout_query("pcq2", ok=False, error_message="Sold out") is True

    recorded = [(c.params["pre_checkout_query_id"], c.params["ok"]) for c in sandbox.calls("answerPreCheckoutQuery")]
    assert recorded == [("pcq1", "True"), ("pcq2", "False")]
    assert sandbox.calls("answerPreCheckoutQuery")[1].params["error_message"] == "Sold out"


def test_refusing_a_pre_checkout_query_needs_an_error_message(bot):
    with pytest.raises(ApiTelegramException) as refused:
        bot.answer_pre_checkout_query("pcq1", ok=False)

    assert refused.value.error_code == 400


def test_a_charge_can_be_refunded_only_once(bot, sandbox):
    assert bot.refund_star_payment(555, "stxCHARGE") is True

    with pytest.raises(ApiTelegramException) as refused:
        bot.refund_star_payment(555, "stxCHARGE")

    assert refused.value.description == "Bad Request: CHARGE_ALREADY_REFUNDED"
    assert [c.status for c in sandbox.calls("refundStarPayment")] == [200, 400]


# ----- webhook and bot setup -----


def test_webhook_set_shown_and_deleted(bot):
    assert bot.set_webhook("https://shop.example/telegram/webhook", secret_token="s3cret",
                           allowed_updates=["message", "pre_checkout_query"]) is True

    info = bot.get_webhook_info()
    assert (info.url, info.pending_update_count, info.allowed_updates) == (
        "https://shop.example/telegram/webhook", 0, ["message", "pre_checkout_query"])
    assert bot.delete_webhook() is True
    assert bot.get_webhook_info().url == ""


def test_plain_http_webhook_is_refused(bot):
    with pytest.raises(ApiTelegramException, match="An HTTPS URL must be provided"):
        bot.set_webhook("http://127.0.0.1:5000/telegram/webhook")


def test_bot_setup_methods_answer_true(bot, sandbox):
    assert bot.set_my_commands([types.BotCommand("start", "Open the shop")]) is True
    menu = types.MenuButtonWebApp("Shop", types.WebAppInfo("https://shop.example/app"))
    assert bot.set_chat_menu_button(CHAT, menu) is True
    assert sandbox.calls("setChatMenuButton")[0].json("menu_button")["web_app"]["url"] == "https://shop.example/app"


# ----- transports -----


def test_json_body_parameters_are_read_and_normalised_to_strings(sandbox, http):
    response = http.post(api(sandbox, "sendMessage"), json={
        "chat_id": CHAT,
        "text": "From JSON",
        "disable_notification": True,
        "reply_markup": {"inline_keyboard": [[{"text": "Open", "url": "https://shop.example"}]]},
    })

    assert response.status_code == 200
    assert response.json()["result"]["reply_markup"]["inline_keyboard"][0][0]["text"] == "Open"
    call = sandbox.calls("sendMessage", chat_id=CHAT)[0]
    assert (call.params["chat_id"], call.params["disable_notification"]) == (str(CHAT), "true")
    assert call.json("reply_markup")["inline_keyboard"][0][0]["url"] == "https://shop.example"


def test_form_body_and_query_string_parameters_are_merged(sandbox, http):
    response = http.post(api(sandbox, "sendMessage") + f"?chat_id={CHAT}", data={"text": "From a form"})

    assert response.json()["result"]["text"] == "From a form"
    assert sandbox.calls("sendMessage")[0].params == {"chat_id": str(CHAT), "text": "From a form"}


def test_multipart_upload_with_attach_reference(sandbox, http):
    image = png(50, 40)

    response = http.post(api(sandbox, "sendPhoto"), data={"chat_id": CHAT, "photo": "attach://qr"},
                         files={"qr": ("qr.png", image, "image/png")})

    assert response.json()["result"]["photo"][-1]["width"] == 50
    upload = sandbox.calls("sendPhoto")[0].files["qr"]
    assert (upload.filename, upload.content_type, upload.data) == ("qr.png", "image/png", image)


def test_malformed_json_body_is_a_bad_request(sandbox, http):
    response = http.post(api(sandbox, "sendMessage"), data="{not json",
                         headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert response.json()["ok"] is False


# ----- scripted failures and waiting -----


def test_scripted_failure_then_success(bot, sandbox):
    sandbox.fail("sendMessage", 429, times=1)

    with pytest.raises(ApiTelegramException) as limited:
        bot.send_message(CHAT, "first try")
    retried = bot.send_message(CHAT, "second try")

    assert limited.value.error_code == 429
    assert limited.value.result_json["parameters"] == {"retry_after": 1}
    assert retried.text == "second try"
    assert [c.status for c in sandbox.calls("sendMessage")] == [429, 200]


def test_slow_answer_with_error_code_zero(bot, sandbox):
    sandbox.fail("getMe", error_code=0, delay=0.3)

    started = time.monotonic()
    me = bot.get_me()

    assert me.id == 123456
    assert time.monotonic() - started >= 0.3
    assert sandbox.calls("getMe")[0].status == 200


def test_wait_for_sees_a_call_made_from_another_thread(bot, sandbox):
    sender = threading.Timer(0.1, lambda: bot.send_message(CHAT, "later"))
    sender.start()

    found = sandbox.wait_for("sendMessage", chat_id=CHAT, timeout=5)

    sender.join()
    assert found[0].params["text"] == "later"


def test_wait_for_lists_what_was_recorded_when_it_gives_up(bot, sandbox):
    bot.get_me()

    with pytest.raises(AssertionError, match=r"expected 1 sendPhoto.*recorded: getMe"):
        sandbox.wait_for("sendPhoto", timeout=0.1)


# ----- HTTP control endpoints -----


def test_http_control_endpoints(sandbox, http, bot):
    scripted = http.post(f"{sandbox.url}/_sandbox/fail",
                         json={"method": "sendPhoto", "error_code": 403,
                               "description": "Forbidden: bot was blocked by the user"})
    assert scripted.json() == {"ok": True}

    with pytest.raises(ApiTelegramException) as blocked:
        bot.send_photo(CHAT, png(20, 20))
    bot.send_message(CHAT, "hello")
    bot.send_message(99, "other chat")

    assert (blocked.value.error_code, blocked.value.description) == (403, "Forbidden: bot was blocked by the user")
    photos = http.get(f"{sandbox.url}/_sandbox/calls", params={"method": "sendPhoto"}).json()["calls"]
    assert photos[0]["files"]["photo"]["size"] > 0
    assert photos[0]["files"]["photo"]["filename"] == "photo"
    messages = http.get(f"{sandbox.url}/_sandbox/calls", params={"method": "sendMessage", "chat_id": CHAT}).json()
    assert [c["params"]["text"] for c in messages["calls"]] == ["hello"]

    assert http.post(f"{sandbox.url}/_sandbox/reset").json() == {"ok": True}
    assert http.get(f"{sandbox.url}/_sandbox/calls").json() == {"calls": []}
