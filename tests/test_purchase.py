"""The Stars purchase end to end through the webhook (SPEC §4, §6): invoice, pre-checkout, exactly one
eSIM Go order and one QR photo per payment, or a refund — with both vendors as sandboxes on 127.0.0.1."""

from __future__ import annotations

import io
import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
from PIL import Image

import updates
from conftest import ADMIN_ID, SERVICE_TOKEN, WEBHOOK_SECRET, wait_on_disk
from extensions import fulfilment, store

ROOT = Path(__file__).resolve().parent.parent
BUYER = 2515644
BUNDLE = "esim_1GB_7D_TH_V2"
HOOK = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}


@pytest.fixture
def config(config):
    # Quick retries so failure paths settle in a test's time; the behaviour is the production one.
    config.update(FULFIL_BACKOFF_SECONDS="0.2", FULFIL_RECONCILE_SECONDS="0.3", FULFIL_PROCESSING_POLL_SECONDS="0.5")
    return config




def invoice(client, tma, user=BUYER, bundle=BUNDLE, lang="en", **extra):
    response = client.post("/api/telegram/stars/create-invoice", json={"bundle_name": bundle, **extra},
                           headers={"Authorization": tma(user, language_code=lang)})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def post(client, update):
    return client.post("/api/telegram/webhook", json=update, headers=HOOK)


def wait_status(app, order_id, statuses, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        order = store(app).get(order_id)
        if order["status"] in statuses and (order["status"] != "completed" or order.get("delivered_at")):
            return order
        time.sleep(0.05)
    raise AssertionError(f"order stuck: {json.dumps(store(app).get(order_id), default=str)}")


def pay(client, order, user=BUYER, charge_id=None, lang="en"):
    return post(client, updates.successful_payment(user, order["order_id"], order["stars"], charge_id=charge_id,
                                                   language_code=lang))


# ---- invoice ---------------------------------------------------------------------------------------


def test_invoice_for_thailand_1gb_is_314_stars_priced_on_the_server(app, client, tma, telegram):
    answer = invoice(client, tma, price=0.01, stars=1, price_usd="0.01")  # client prices are ignored
    assert answer["stars"] == 314 and answer["price_usd"] == "3.06"
    assert answer["invoice_link"].startswith("https://t.me/$")
    (call,) = telegram.calls("createInvoiceLink")
    assert call.params["currency"] == "XTR" and call.params.get("provider_token", "") == ""
    assert [p["amount"] for p in call.json("prices")] == [314]
    assert call.params["payload"] == answer["order_id"]
    order = store(app).get(answer["order_id"])
    assert order["status"] == "awaiting_payment" and order["telegram_user_id"] == BUYER
    assert order["price"] == Decimal("3.06") and order["stars"] == 314 and order["cost"] == Decimal("2.26")


@pytest.mark.parametrize("body, status, error", [
    ({"bundle_name": "esim_1GB_7D_XX_V9"}, 404, "unknown_bundle"),
    ({}, 400, "invalid_bundle"),
    ({"bundle_name": 42}, 400, "invalid_bundle"),
    ([1, 2], 400, "invalid_body"),
    ({"bundle_name": BUNDLE, "iccid": "8944000000000000000"}, 404, "unknown_esim"),
    ({"bundle_name": BUNDLE, "iccid": "abc"}, 400, "invalid_iccid"),
])
def test_bad_invoice_requests_get_clear_4xx(client, tma, body, status, error):
    response = client.post("/api/telegram/stars/create-invoice", json=body, headers={"Authorization": tma(BUYER)})
    assert response.status_code == status
    assert response.get_json()["error"] == error and response.get_json()["message"]


def test_invoices_need_a_telegram_buyer(client):
    response = client.post("/api/telegram/stars/create-invoice", json={"bundle_name": BUNDLE})
    assert response.status_code == 401


def test_a_bot_api_failure_gives_a_502_and_leaves_no_payable_order(app, client, tma, telegram):
    telegram.fail("createInvoiceLink", 500, "Internal Server Error")
    response = client.post("/api/telegram/stars/create-invoice", json={"bundle_name": BUNDLE},
                           headers={"Authorization": tma(BUYER)})
    assert response.status_code == 502 and response.get_json()["error"] == "invoice_failed"
    (order,) = store(app).orders_for_user(BUYER)
    assert order["status"] == "expired"


def test_the_price_of_an_open_invoice_survives_a_settings_change(app, client, tma, config, telegram):
    from app import create_app

    answer = invoice(client, tma)
    assert answer["stars"] == 314
    # The operator raises the markup and restarts: new quotes change, the open invoice does not.
    repriced = create_app({**config, "MARKUP": "2.00"})
    again = repriced.test_client()
    new_quote = again.post("/api/telegram/stars/create-invoice", json={"bundle_name": BUNDLE},
                           headers={"Authorization": tma(BUYER + 1)}).get_json()
    assert new_quote["stars"] > 314
    again.post("/api/telegram/webhook", json=updates.pre_checkout(BUYER, answer["order_id"], 314), headers=HOOK)
    assert answer_of(telegram) == (True, None)
    again.post("/api/telegram/webhook", json=updates.pre_checkout(BUYER, answer["order_id"], new_quote["stars"]),
               headers=HOOK)
    assert answer_of(telegram)[0] is False
    repriced.extensions["esimsdata"]["store"].close()


# ---- pre-checkout ----------------------------------------------------------------------------------


def answer_of(telegram):
    call = telegram.calls("answerPreCheckoutQuery")[-1]
    return call.params["ok"] == "True", call.params.get("error_message")


def test_pre_checkout_accepts_the_right_buyer_amount_and_currency(client, tma, telegram):
    answer = invoice(client, tma)
    assert post(client, updates.pre_checkout(BUYER, answer["order_id"], 314)).status_code == 200
    assert answer_of(telegram) == (True, None)


@pytest.mark.parametrize("case, words", [
    ("amount", "price has changed"),
    ("currency", "price has changed"),
    ("buyer", "another Telegram account"),
    ("unknown", "could not find"),
    ("expired", "expired"),
    ("paid", "already paid"),
])
def test_bad_pre_checkouts_are_refused_with_a_message(app, client, tma, telegram, case, words):
    answer = invoice(client, tma)
    oid = answer["order_id"]
    if case == "expired":
        store(app).update(oid, lambda o: o.update(expires_at="2020-01-01T00:00:00+00:00"))
    if case == "paid":
        pay(client, answer)
        wait_status(app, oid, {"completed"})
    update = {
        "amount": updates.pre_checkout(BUYER, oid, 313),
        "currency": updates.pre_checkout(BUYER, oid, 314, currency="USD"),
        "buyer": updates.pre_checkout(999, oid, 314),
        "unknown": updates.pre_checkout(BUYER, "ord_nope", 314),
        "expired": updates.pre_checkout(BUYER, oid, 314),
        "paid": updates.pre_checkout(BUYER, oid, 314),
    }[case]
    assert post(client, update).status_code == 200
    ok, message = answer_of(telegram)
    assert ok is False and words in message


def test_pre_checkout_refusals_speak_russian_to_russian_buyers(client, tma, telegram):
    answer = invoice(client, tma, lang="ru")
    post(client, updates.pre_checkout(BUYER, answer["order_id"], 1, language_code="ru"))
    assert answer_of(telegram) == (False, "Цена изменилась. Пожалуйста, оформите заказ заново.")


def test_the_worker_expires_unpaid_orders_and_they_cannot_be_paid(app, client, tma, telegram):
    answer = invoice(client, tma)
    store(app).update(answer["order_id"], lambda o: o.update(expires_at="2020-01-01T00:00:00+00:00"))
    fulfilment(app).run_due()
    assert store(app).get(answer["order_id"])["status"] == "expired"
    post(client, updates.pre_checkout(BUYER, answer["order_id"], 314))
    assert answer_of(telegram)[0] is False


# ---- the happy path, exactly once -------------------------------------------------------------------


def test_one_payment_buys_one_esim_and_sends_one_qr_photo(app, client, tma, esimgo, telegram):
    answer = invoice(client, tma)
    assert pay(client, answer, charge_id="stxONE").status_code == 200
    order = wait_status(app, answer["order_id"], {"completed"})
    (bought,) = esimgo.orders
    assert bought["orderReference"] == order["orderReference"]
    assert bought["order"][0]["item"] == BUNDLE and bought["order"][0]["quantity"] == 1
    assert bought["order"][0]["allowReassign"] is False
    assert order["telegram_payment_charge_id"] == "stxONE" and order["cost"] == Decimal("2.26")
    assert order["iccid"] and order["matchingId"] and order["smdpAddress"]

    (photo,) = telegram.calls("sendPhoto")
    assert photo.chat_id == str(BUYER)
    lpa = f"LPA:1${order['smdpAddress']}${order['matchingId']}"
    caption = photo.params["caption"]
    assert order["matchingId"] in caption and order["smdpAddress"] in caption and lpa in caption
    buttons = [b for row in photo.json("reply_markup")["inline_keyboard"] for b in row]
    iphone = next(b["url"] for b in buttons if "iPhone" in b["text"])
    assert iphone == ("https://esimsetup.apple.com/esim_qrcode_provisioning?carddata="
                      + lpa.replace(":", "%3A").replace("$", "%24"))
    assert any(b.get("web_app", {}).get("url") == f"https://shop.example.test/esim/{order['id']}" for b in buttons)
    upload = photo.files["photo"]
    assert upload.data.startswith(b"\x89PNG")
    assert order["delivered_at"] and order["delivery_message_id"]


def test_the_buyer_gets_the_esim_in_the_app_and_its_qr_only_through_a_signed_link(app, client, tma):
    answer = invoice(client, tma)
    pay(client, answer)
    wait_status(app, answer["order_id"], {"completed"})
    mine = client.get(f"/api/orders/{answer['order_id']}", headers={"Authorization": tma(BUYER)}).get_json()
    assert mine["order"]["lpa"].startswith("LPA:1$")
    assert mine["order"]["plan_kind"] == "local"  # the eSIM page's top-up goes back to the right plan list
    assert mine["order"]["ios_install_url"].startswith("https://esimsetup.apple.com/")
    qr = client.get(mine["order"]["qr_url"])
    assert qr.status_code == 200 and qr.mimetype == "image/png"
    width, height = Image.open(io.BytesIO(qr.data)).size
    assert width == height >= 200
    # Not someone else's: another buyer gets 404, a tampered link 403.
    assert client.get(f"/api/orders/{answer['order_id']}", headers={"Authorization": tma(777)}).status_code == 404
    assert client.get(mine["order"]["qr_url"].replace("sig=", "sig=0")).status_code == 403
    assert client.get(f"/qr/{answer['order_id']}.png").status_code == 403


def test_answers_carrying_an_activation_code_are_never_cacheable(app, client, tma):
    answer = invoice(client, tma)
    pay(client, answer)
    wait_status(app, answer["order_id"], {"completed"})
    auth = {"Authorization": tma(BUYER)}
    one = client.get(f"/api/orders/{answer['order_id']}", headers=auth)
    listing = client.get("/api/orders", headers=auth)
    qr = client.get(one.get_json()["order"]["qr_url"])
    for response in (one, listing, qr):
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_same_payment_eight_times_some_at_once_buys_one_esim(app, client, tma, esimgo, telegram):
    answer = invoice(client, tma)
    update = updates.successful_payment(BUYER, answer["order_id"], 314, charge_id="stxDUP")
    same_update = [update] * 3
    new_update_ids = [{**update, "update_id": updates.next_update_id()} for _ in range(5)]

    def deliver(body):
        return app.test_client().post("/api/telegram/webhook", json=body, headers=HOOK).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(deliver, same_update + new_update_ids))
    assert statuses == [200] * 8
    wait_status(app, answer["order_id"], {"completed"})
    assert fulfilment(app).wait_idle()  # every thread any delivery started has finished
    assert len(esimgo.orders) == 1
    assert len(telegram.calls("sendPhoto")) == 1
    assert [o["telegram_payment_charge_id"] for o in store(app).orders_for_user(BUYER)] == ["stxDUP"]


def test_a_redelivery_after_a_restart_changes_nothing(app, client, tma, config, esimgo, telegram):
    from app import create_app

    answer = invoice(client, tma)
    update = updates.successful_payment(BUYER, answer["order_id"], 314, charge_id="stxRESTART")
    post(client, update)
    wait_status(app, answer["order_id"], {"completed"})
    restarted = create_app(config).test_client()  # a fresh process reading the same data folder
    assert restarted.post("/api/telegram/webhook", json=update, headers=HOOK).get_json()["duplicate"] is True
    fresh_id = {**update, "update_id": updates.next_update_id()}
    assert restarted.post("/api/telegram/webhook", json=fresh_id, headers=HOOK).status_code == 200
    assert restarted.application.extensions["esimsdata"]["fulfilment"].wait_idle()
    assert fulfilment(app).wait_idle()
    assert len(esimgo.orders) == 1 and len(telegram.calls("sendPhoto")) == 1


# ---- slow and failing eSIM Go -----------------------------------------------------------------------


def test_an_order_esim_go_keeps_processing_is_still_delivered_once(app, client, tma, esimgo, telegram):
    esimgo.settings(processing_seconds=3)
    answer = invoice(client, tma)
    pay(client, answer)
    order = wait_status(app, answer["order_id"], {"completed"}, timeout=30)
    assert len(esimgo.orders) == 1 and len(telegram.calls("sendPhoto")) == 1
    assert order["iccid"] == esimgo.orders[0]["order"][0]["iccids"][0]


def test_503_then_500_from_esim_go_is_retried_and_delivered_once(app, client, tma, esimgo, telegram):
    esimgo.fail("/orders", 503, method="POST", times=1)
    esimgo.fail("/orders", 500, method="POST", times=1)
    answer = invoice(client, tma)
    pay(client, answer)
    order = wait_status(app, answer["order_id"], {"completed"}, timeout=30)
    assert order["buy_attempts"] == 3
    assert len(esimgo.orders) == 1 and len(telegram.calls("sendPhoto")) == 1


def test_a_purchase_whose_answer_was_lost_is_found_not_bought_again(app, client, tma, esimgo, telegram):
    # eSIM Go takes the order but answers too late: our read times out (maybe sent).
    client_ = app.extensions["esimsdata"]["esimgo"]
    client_.timeout = (1.0, 0.5)
    esimgo.fail("/orders", 0, method="POST", delay=1.0)
    # The shop looks for the order only once eSIM Go has had time to finish it (as FULFIL_RECONCILE_SECONDS
    # does in production): looking earlier would buy again, and the late order would land after this test.
    fulfilment(app).reconcile_wait = 2.0
    answer = invoice(client, tma)
    pay(client, answer)
    order = wait_status(app, answer["order_id"], {"completed"}, timeout=30)
    assert len(esimgo.orders) == 1  # adopted, not bought twice
    assert order["orderReference"] == esimgo.orders[0]["orderReference"]
    assert len(telegram.calls("sendPhoto")) == 1


def test_insufficient_balance_refunds_tells_the_buyer_and_alerts_the_admin(app, client, tma, esimgo, telegram):
    esimgo.settings(balance=1.0)
    answer = invoice(client, tma, lang="ru")
    pay(client, answer, charge_id="stxPOOR", lang="ru")
    order = wait_status(app, answer["order_id"], {"refunded"})
    (refund,) = telegram.calls("refundStarPayment")
    assert refund.params["user_id"] == str(BUYER) and refund.params["telegram_payment_charge_id"] == "stxPOOR"
    assert "balance" in order["refund_reason"].lower()
    buyer_msgs = [c.params["text"] for c in telegram.wait_for("sendMessage", chat_id=BUYER)]
    assert any("возвращены" in m and "314" in m for m in buyer_msgs)
    admin_msgs = [c.params["text"] for c in telegram.wait_for("sendMessage", chat_id=ADMIN_ID)]
    assert any(order["id"] in m and "balance" in m.lower() for m in admin_msgs)
    assert esimgo.orders == [] and telegram.calls("sendPhoto") == []


def test_an_already_refunded_charge_counts_as_refunded(app, client, tma, esimgo, telegram):
    esimgo.settings(balance=1.0)
    telegram.fail("refundStarPayment", 400, "Bad Request: CHARGE_ALREADY_REFUNDED")
    answer = invoice(client, tma)
    pay(client, answer)
    assert wait_status(app, answer["order_id"], {"refunded"})["refunded_at"]


def test_retries_exhausted_means_refunded(app, client, tma, esimgo, telegram):
    app.extensions["esimsdata"]["fulfilment"].max_attempts = 2
    esimgo.fail("/orders", 429, method="POST", times=10)
    answer = invoice(client, tma)
    pay(client, answer)
    order = wait_status(app, answer["order_id"], {"refunded"}, timeout=30)
    assert order["buy_attempts"] == 2 and len(telegram.calls("refundStarPayment")) == 1


def test_a_payment_for_an_unknown_order_is_refunded(app, client, telegram):
    post(client, updates.successful_payment(BUYER, "ord_forged", 50, charge_id="stxSTRAY"))
    deadline = time.time() + 10
    while not telegram.calls("refundStarPayment") and time.time() < deadline:
        time.sleep(0.05)
    (refund,) = telegram.calls("refundStarPayment")
    assert refund.params["telegram_payment_charge_id"] == "stxSTRAY"
    (stray,) = store(app).orders_for_user(BUYER)
    assert stray["related_order"] == "ord_forged" and "unknown order" in stray["refund_reason"]


def test_a_second_payment_of_a_paid_order_is_refunded_not_fulfilled_twice(app, client, tma, esimgo, telegram):
    answer = invoice(client, tma)
    pay(client, answer, charge_id="stxFIRST")
    wait_status(app, answer["order_id"], {"completed"})
    pay(client, answer, charge_id="stxSECOND")
    deadline = time.time() + 10
    while not telegram.calls("refundStarPayment") and time.time() < deadline:
        time.sleep(0.05)
    assert [c.params["telegram_payment_charge_id"] for c in telegram.calls("refundStarPayment")] == ["stxSECOND"]
    assert len(esimgo.orders) == 1 and len(telegram.calls("sendPhoto")) == 1


# ---- recovery without the web process ---------------------------------------------------------------


@pytest.mark.settings(FULFIL_INLINE="0")  # as if the web worker died right after recording the payment
def test_the_worker_finishes_a_payment_the_web_process_never_fulfilled(app, client, tma, esimgo, telegram):
    answer = invoice(client, tma)
    pay(client, answer)
    assert store(app).get(answer["order_id"])["status"] == "paid"
    assert fulfilment(app).run_due() == 1
    order = store(app).get(answer["order_id"])
    assert order["status"] == "completed" and order["delivered_at"]
    assert len(esimgo.orders) == 1 and len(telegram.calls("sendPhoto")) == 1


@pytest.mark.settings(FULFIL_INLINE="0")
def test_a_dead_process_lease_is_taken_over_and_its_purchase_adopted(app, client, tma, esimgo, telegram):
    answer = invoice(client, tma)
    pay(client, answer)
    oid = answer["order_id"]
    # A process claimed the order, bought at eSIM Go, then died before writing anything down.
    bought = app.extensions["esimsdata"]["esimgo"].create_order(BUNDLE)
    store(app).update(oid, lambda o: o.update(status="provisioning", esimgo_unsure=True, buy_attempts=1,
                                              esimgo_attempt_at="2026-01-01T00:00:00+00:00",
                                              lease_until="2020-01-01T00:00:00+00:00"))
    fulfilment(app).run_due()
    order = store(app).get(oid)
    assert order["status"] == "completed" and order["orderReference"] == bought.reference
    assert len(esimgo.orders) == 1 and len(telegram.calls("sendPhoto")) == 1


@pytest.mark.settings(FULFIL_INLINE="0")
def test_a_held_lease_keeps_other_processes_off_the_order(app, client, tma, esimgo, caplog):
    from datetime import UTC, datetime, timedelta

    caplog.set_level("INFO", logger="fulfilment")
    answer = invoice(client, tma)
    pay(client, answer)
    # Taken 60 s ago (leases last 120 s) by a process that has not finished: probably one that died.
    until = (datetime.now(UTC) + timedelta(seconds=60)).isoformat(timespec="seconds")
    store(app).update(answer["order_id"], lambda o: o.update(lease_until=until))
    assert fulfilment(app).run_due() == 0
    fulfilment(app).run_due()
    assert esimgo.orders == [] and store(app).get(answer["order_id"])["status"] == "paid"
    # The operator reading the log learns why nothing happens, once, and what will.
    said = [r.getMessage() for r in caplog.records if f"leased until {until}" in r.getMessage()]
    assert len(said) == 1 and "takes over then" in said[0]


def test_a_failed_delivery_is_retried_without_buying_again(app, client, tma, esimgo, telegram):
    telegram.fail("sendPhoto", 502, "Bad Gateway", times=1)
    answer = invoice(client, tma)
    pay(client, answer)
    order = wait_status(app, answer["order_id"], {"completed"}, timeout=20)
    assert order["delivery_attempts"] == 2
    assert len(esimgo.orders) == 1
    assert [c.status for c in telegram.calls("sendPhoto")] == [502, 200]


# ---- top-up -----------------------------------------------------------------------------------------


def test_a_top_up_goes_onto_the_buyers_own_esim(app, client, tma, esimgo, telegram):
    first = invoice(client, tma)
    pay(client, first)
    iccid = wait_status(app, first["order_id"], {"completed"})["iccid"]
    top_up = invoice(client, tma, bundle="esim_3GB_30D_TH_V2", iccid=iccid)
    pay(client, top_up)
    order = wait_status(app, top_up["order_id"], {"completed"})
    assert order["iccid"] == iccid and order["top_up_of"] == iccid
    assert esimgo.orders[-1]["order"][0]["iccids"] == [iccid]
    assert esimgo.orders[-1]["order"][0]["allowReassign"] is False
    assert len(telegram.calls("sendPhoto")) == 1  # the top-up is a text message: nothing new to install
    assert any("Top-up" in c.params["text"] for c in telegram.calls("sendMessage", chat_id=BUYER))


def test_an_incompatible_top_up_is_refused_before_payment(app, client, tma):
    first = invoice(client, tma)
    pay(client, first)
    iccid = wait_status(app, first["order_id"], {"completed"})["iccid"]
    response = client.post("/api/telegram/stars/create-invoice",
                           json={"bundle_name": "esim_1GB_7D_RGBS_V2", "iccid": iccid},
                           headers={"Authorization": tma(BUYER)})
    assert response.status_code == 422 and response.get_json()["error"] == "incompatible_top_up"


def test_someone_elses_esim_cannot_be_topped_up(app, client, tma):
    first = invoice(client, tma)
    pay(client, first)
    iccid = wait_status(app, first["order_id"], {"completed"})["iccid"]
    response = client.post("/api/telegram/stars/create-invoice", json={"bundle_name": BUNDLE, "iccid": iccid},
                           headers={"Authorization": tma(4242)})
    assert response.status_code == 404


# ---- the webhook itself -----------------------------------------------------------------------------


def test_the_webhook_refuses_calls_without_the_secret(client, telegram):
    update = updates.command(BUYER, "/start")
    assert client.post("/api/telegram/webhook", json=update).status_code == 403
    assert client.post("/api/telegram/webhook", json=update,
                       headers={"X-Telegram-Bot-Api-Secret-Token": "guess"}).status_code == 403
    assert telegram.calls("sendMessage") == []


@pytest.mark.parametrize("body", ["not json", "[]", '{"update_id": "x"}', '{"message": {}}',
                                  '{"update_id": 5, "message": {"chat": 1}}'])
def test_malformed_updates_get_400_not_500(client, body):
    response = client.post("/api/telegram/webhook", data=body, content_type="application/json", headers=HOOK)
    assert response.status_code == 400 and response.get_json()["error"] == "bad_update"


def test_an_update_already_handled_is_acknowledged_without_running_again(client, telegram):
    update = updates.command(BUYER, "/start")
    assert post(client, update).get_json() == {"ok": True}
    assert post(client, update).get_json() == {"ok": True, "duplicate": True}
    assert len(telegram.calls("sendMessage")) == 1


@pytest.mark.parametrize("lang, words", [("en", "Open the shop"), ("ru", "Открыть магазин")])
def test_start_offers_the_mini_app_in_the_buyers_language(client, telegram, lang, words):
    post(client, updates.command(BUYER, "/start", language_code=lang))
    (call,) = telegram.calls("sendMessage")
    (button,) = call.json("reply_markup")["inline_keyboard"][0]
    assert button["text"].endswith(words)
    assert button["web_app"]["url"] == "https://shop.example.test/"


def test_myesims_lists_the_buyers_orders_and_paysupport_answers(app, client, tma, telegram):
    answer = invoice(client, tma)
    pay(client, answer)
    wait_status(app, answer["order_id"], {"completed"})
    telegram.reset()
    post(client, updates.command(BUYER, "/myesims"))
    post(client, updates.command(BUYER, "/paysupport"))
    texts = [c.params["text"] for c in telegram.calls("sendMessage")]
    assert answer["order_id"] in texts[0] and "Ready" in texts[0]  # the app's own word for it
    assert "refunded automatically" in texts[1]


def test_a_failing_handler_answers_500_so_telegram_redelivers(app, client, tma, telegram, data_dir):
    answer = invoice(client, tma)
    journal = data_dir / "orders.journal"
    shutil.rmtree(journal)
    journal.write_text("not a folder")  # nothing can be written while the payment arrives
    update = updates.successful_payment(BUYER, answer["order_id"], 314)
    assert post(client, update).status_code == 500
    assert post(client, update).status_code == 500  # not swallowed as "already handled"
    assert client.get("/healthz").get_json()["storage"]["ok"] is False
    journal.unlink()  # the operator mends the disk; Telegram keeps redelivering until it gets a 200
    deadline = time.monotonic() + 10
    while post(client, update).status_code != 200:
        assert time.monotonic() < deadline, "the payment was never taken after the disk was mended"
        time.sleep(0.2)
    telegram.wait_for("sendPhoto", chat_id=BUYER)
    assert wait_status(app, answer["order_id"], {"completed"})["status"] == "completed"


def test_a_payment_while_orders_json_is_deleted_is_still_fulfilled_and_health_says_why(app, client, tma, telegram,
                                                                                       data_dir):
    answer = invoice(client, tma)
    wait_on_disk(data_dir / "orders.json", lambda d: str(BUYER) in d)
    (data_dir / "orders.json").unlink()
    health = client.get("/healthz")
    assert health.status_code == 503 and "orders.json is missing" in health.get_json()["storage"]["error"]
    # Not an empty shop: the order made before the deletion is paid for and delivered, never refunded.
    assert post(client, updates.successful_payment(BUYER, answer["order_id"], 314)).status_code == 200
    telegram.wait_for("sendPhoto", chat_id=BUYER)
    assert wait_status(app, answer["order_id"], {"completed"})["status"] == "completed"
    assert telegram.calls("refundStarPayment") == []


def operator_saves(client, **fields):
    return client.post("/api/orders", json=fields, headers={"X-Service-Token": SERVICE_TOKEN})


def test_orders_saved_by_an_operator_never_buy_deliver_or_message(app, client, esimgo, telegram):
    paid = operator_saves(client, telegram_user_id=BUYER, bundle_name=BUNDLE, status="paid", stars=314)
    done = operator_saves(client, telegram_user_id=BUYER, bundle_name=BUNDLE, status="completed",
                          smdpAddress="evil.example", matchingId="ATTACKER-CODE", iccid="8944000000000000099")
    failed = operator_saves(client, telegram_user_id=BUYER, bundle_name=BUNDLE, status="failed",
                            telegram_payment_charge_id="stxFORGED")
    assert [r.status_code for r in (paid, done, failed)] == [201, 201, 201]
    fulfilment = app.extensions["esimsdata"]["fulfilment"]
    for _ in range(3):  # the worker's rounds
        fulfilment.run_due()
    assert esimgo.orders == []
    assert telegram.calls("sendPhoto") == [] and telegram.calls("sendMessage") == []
    assert telegram.calls("refundStarPayment") == []
    assert store(app).get(paid.get_json()["order"]["id"])["status"] == "paid"  # kept as the record it is


def test_an_operator_cannot_move_an_order_the_shop_is_handling(app, client, tma, esimgo):
    answer = invoice(client, tma)  # awaiting payment: the shop's own invoice is open
    refused = operator_saves(client, id=answer["order_id"], status="paid")
    assert refused.status_code == 409 and refused.get_json()["error"] == "order_in_progress"
    bigger = operator_saves(client, id=answer["order_id"], bundle_name="esim_20GB_30D_TH_V2", stars=1)
    assert bigger.status_code == 409  # no field of a live order, not only its status
    assert store(app).get(answer["order_id"])["bundle_name"] == BUNDLE
    store(app).update(answer["order_id"], lambda o: o.update(status="expired"))
    assert operator_saves(client, id=answer["order_id"], status="paid").status_code == 200  # a settled order
    app.extensions["esimsdata"]["fulfilment"].run_due()
    assert esimgo.orders == []  # recorded, not bought


def test_a_payment_for_an_order_an_operator_saved_is_refunded(app, client, telegram):
    saved = operator_saves(client, telegram_user_id=BUYER, bundle_name=BUNDLE, stars=314).get_json()["order"]
    post(client, updates.pre_checkout(BUYER, saved["id"], 314))
    (answer,) = telegram.calls("answerPreCheckoutQuery")
    assert answer.params["ok"] in (False, "False", "false")
    assert post(client, updates.successful_payment(BUYER, saved["id"], 314)).status_code == 200
    telegram.wait_for("refundStarPayment")
    assert store(app).get(saved["id"])["status"] == "awaiting_payment"


@pytest.mark.settings(FULFIL_INLINE="0")
def test_an_interrupted_purchase_is_adopted_when_eSIM_Go_lists_orders_as_one_object(app, client, tma, esimgo,
                                                                                    telegram):
    esimgo.settings(order_list_shape="object")  # the v2.4 schema's example shape
    answer = invoice(client, tma)
    pay(client, answer)
    bought = app.extensions["esimsdata"]["esimgo"].create_order(BUNDLE)  # bought, then the process died
    store(app).update(answer["order_id"], lambda o: o.update(status="provisioning", esimgo_unsure=True,
                                                             buy_attempts=1, esimgo_attempt_at=orders_now()))
    fulfilment(app).run_due()
    order = store(app).get(answer["order_id"])
    assert order["status"] == "completed" and order["orderReference"] == bought.reference
    assert len(esimgo.orders) == 1


@pytest.mark.settings(FULFIL_INLINE="0")
def test_when_eSIM_Go_shows_only_its_newest_order_and_it_is_not_ours_nothing_is_bought_again(app, client, tma,
                                                                                             esimgo):
    esimgo.settings(order_list_shape="object")
    answer = invoice(client, tma)
    pay(client, answer)
    ours = app.extensions["esimsdata"]["esimgo"].create_order(BUNDLE)  # bought, then the process died...
    app.extensions["esimsdata"]["esimgo"].create_order("esim_3GB_30D_FR_V2")  # ...and someone else's came after
    store(app).update(answer["order_id"], lambda o: o.update(status="provisioning", esimgo_unsure=True,
                                                             buy_attempts=1, esimgo_attempt_at=orders_now()))
    for _ in range(3):
        fulfilment(app).run_due()
        store(app).update(answer["order_id"], lambda o: o.pop("next_attempt_at", None))
    order = store(app).get(answer["order_id"])
    assert len(esimgo.orders) == 2 and order["status"] == "provisioning"  # never a second purchase of ours
    assert "only its newest order" in order["last_error"]
    esimgo.settings(order_list_shape="envelope")  # once the whole list can be read, ours is found
    fulfilment(app).run_due()
    assert store(app).get(answer["order_id"])["orderReference"] == ours.reference


@pytest.mark.settings(FULFIL_INLINE="0")
def test_a_paid_order_that_cannot_be_settled_is_flagged_for_the_admin_once(app, client, tma, esimgo, telegram):
    fulfilment(app).attention_after = 0  # FULFIL_ATTENTION_MINUTES, 10 in production
    answer = invoice(client, tma)
    pay(client, answer)
    # Unsure whether eSIM Go bought it, and eSIM Go's order list cannot be read: nothing may be bought again.
    store(app).update(answer["order_id"], lambda o: o.update(status="provisioning", esimgo_unsure=True,
                                                             buy_attempts=1, esimgo_attempt_at=orders_now()))
    esimgo.fail("/orders", 500, times=50, method="GET")
    for _ in range(3):
        fulfilment(app).run_due()
        store(app).update(answer["order_id"], lambda o: o.pop("next_attempt_at", None))
    order = store(app).get(answer["order_id"])
    assert order["status"] == "provisioning" and esimgo.orders == []
    assert order["needs_attention"]["reason"]
    alerts = [c for c in telegram.calls("sendMessage", chat_id=ADMIN_ID) if answer["order_id"] in c.params["text"]]
    assert len(alerts) == 1 and "needs attention" in alerts[0].params["text"]


def orders_now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="seconds")


def test_invoices_that_expired_unpaid_long_ago_are_dropped_and_nothing_paid_ever_is(app, client, tma):
    from datetime import UTC, datetime, timedelta

    from purchase import prune_expired

    old, recent, paid = (invoice(client, tma, user=BUYER + i)["order_id"] for i in range(3))
    long_ago = (datetime.now(UTC) - timedelta(days=30)).isoformat(timespec="seconds")
    store(app).update(old, lambda o: o.update(status="expired", updated_at=long_ago))
    store(app).update(recent, lambda o: o.update(status="expired"))
    store(app).update(paid, lambda o: o.update(status="expired", updated_at=long_ago, telegram_payment_charge_id="x"))
    assert prune_expired(store(app), timedelta(days=14)) == 1
    assert store(app).get(old) is None
    assert store(app).get(recent) is not None and store(app).get(paid) is not None


def test_a_buyer_creating_invoices_in_a_loop_is_slowed_down(client, tma):
    answers = [client.post("/api/telegram/stars/create-invoice", json={"bundle_name": BUNDLE},
                           headers={"Authorization": tma(BUYER)}) for _ in range(12)]
    assert [a.status_code for a in answers[:10]] == [200] * 10
    assert answers[10].status_code == 429 and answers[10].get_json()["error"] == "too_many_invoices"
    other = client.post("/api/telegram/stars/create-invoice", json={"bundle_name": BUNDLE},
                        headers={"Authorization": tma(BUYER + 1)})
    assert other.status_code == 200  # one buyer's loop does not stop anyone else


def test_the_invoice_limit_holds_when_a_buyer_fires_requests_at_once(app, client, tma):
    auth = {"Authorization": tma(BUYER)}

    def one(_):
        return client.post("/api/telegram/stars/create-invoice", json={"bundle_name": BUNDLE},
                           headers=auth).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(one, range(20)))
    assert codes.count(200) == 10 and codes.count(429) == 10
    assert len(store(app).orders_for_user(BUYER)) == 10


def test_an_oversized_body_is_refused_before_it_is_read(client, tma):
    response = client.post("/api/telegram/stars/create-invoice", data=b"{" + b" " * (300 * 1024) + b"}",
                           content_type="application/json", headers={"Authorization": tma(BUYER)})
    assert response.status_code == 413 and response.get_json()["error"]


@pytest.mark.parametrize("lang, bundle, title", [
    ("ru", BUNDLE, "Таиланд · 1 ГБ · 7 дн."),
    ("en", BUNDLE, "Thailand · 1 GB · 7 days"),
    ("ru", "esim_3GB_30D_FR_V2", "Франция · 3 ГБ · 30 дн."),
])
def test_the_invoice_title_is_in_the_buyers_language_country_included(client, tma, telegram, lang, bundle, title):
    invoice(client, tma, bundle=bundle, lang=lang)
    (link,) = telegram.calls("createInvoiceLink")
    assert link.params["title"] == title


def test_the_bot_and_the_app_name_a_status_with_the_same_word(app, client, tma, telegram):
    answer = invoice(client, tma, lang="ru")
    pay(client, answer, lang="ru")
    wait_status(app, answer["order_id"], {"completed"})
    view = client.get("/api/orders", headers={"Authorization": tma(BUYER, language_code="ru")}).get_json()
    assert (view["orders"][0]["status_label"], view["orders"][0]["status_tone"]) == ("status_ready", "ok")
    telegram.reset()
    post(client, updates.command(BUYER, "/myesims", language_code="ru"))
    (listing,) = telegram.calls("sendMessage", chat_id=BUYER)
    words = json.loads((ROOT / "static" / "i18n.json").read_text())["ru"]
    assert f"— {words['status_ready']} ({answer['order_id']})" in listing.params["text"]
