"""After the sale (issue 11): eSIM Go's signed usage callbacks, sent by the eSIM Go sandbox to the real app served
over HTTP, the buyer's 80 % / 100 % messages and reminder, usage asked of eSIM Go, and refunds made elsewhere."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests

import updates
from conftest import WEBHOOK_SECRET
from extensions import fulfilment, store
from sandboxes.server import ServerThread

BUYER = 2515644
BUNDLE = "esim_1GB_7D_TH_V2"
TOP_UP = "esim_3GB_30D_TH_V2"
HOOK = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}


@pytest.fixture
def config(config):
    config.update(FULFIL_INLINE="0")  # each test runs the fulfilment itself
    return config


@pytest.fixture
def served(app):
    """The app on a real port, where the eSIM Go sandbox can POST its callbacks."""
    server = ServerThread(app).start()
    yield server.origin + "/api/esimgo/callback"
    server.stop()




def bought(app, client, tma, bundle=BUNDLE, iccid=None, lang="en"):
    body = {"bundle_name": bundle, **({"iccid": iccid} if iccid else {})}
    answer = client.post("/api/telegram/stars/create-invoice", json=body,
                         headers={"Authorization": tma(BUYER, language_code=lang)}).get_json()
    assert answer.get("order_id"), answer
    update = updates.successful_payment(BUYER, answer["order_id"], answer["stars"], language_code=lang)
    assert client.post("/api/telegram/webhook", json=update, headers=HOOK).status_code == 200
    fulfilment(app).settle(answer["order_id"])
    order = store(app).get(answer["order_id"])
    assert order["status"] == "completed", order
    return order


def buyer_messages(telegram, text):
    """The messages with `text` that Telegram took (a refused call is recorded too)."""
    return [c for c in telegram.calls("sendMessage", chat_id=BUYER) if text in c.params["text"] and c.status == 200]


def test_a_signed_80_percent_report_updates_the_order_and_tells_the_buyer_once(app, client, tma, esimgo, telegram,
                                                                              served):
    order = bought(app, client, tma)
    answer = esimgo.send_usage_callback(served, order["iccid"], 80)
    assert answer.status_code == 200 and answer.json()["used"] is True
    usage = store(app).get(order["id"])["usage"]
    assert (usage["total_bytes"], usage["used_bytes"], usage["remaining_bytes"]) == (
        1_000_000_000, 800_000_000, 200_000_000)
    assert usage["ends_at"] and usage["source"] == "callback"
    (told,) = buyer_messages(telegram, "80%")
    button = json.loads(told.params["reply_markup"])["inline_keyboard"][0][0]
    assert button["web_app"]["url"] == f"https://shop.example.test/country/TH?iccid={order['iccid']}"

    # The same report again, and four copies at once: still one message.
    assert esimgo.send_usage_callback(served, order["iccid"], 80).status_code == 200
    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda _: esimgo.send_usage_callback(served, order["iccid"], 80).status_code,
                              range(4)))
    assert codes == [200] * 4 and len(buyer_messages(telegram, "80%")) == 1

    # Through the sandbox's own HTTP control, as a test against a running shop would drive it.
    sent = requests.post(f"{esimgo.origin}/_sandbox/usage", timeout=10, json={
        "url": served, "iccid": order["iccid"], "percent": 100, "encoding": "base64"}).json()
    assert sent["status"] == 200
    assert len(buyer_messages(telegram, "used up")) == 1
    assert store(app).get(order["id"])["usage"]["remaining_bytes"] == 0
    # A late 50 % report of the same bundle never moves usage backwards.
    esimgo.send_usage_callback(served, order["iccid"], 50)
    assert store(app).get(order["id"])["usage"]["remaining_bytes"] == 0
    view = client.get(f"/api/orders/{order['id']}", headers={"Authorization": tma(BUYER)}).get_json()["order"]
    assert view["usage"]["percent"] == 100.0 and view["usage"]["days_left"] == 7


def test_a_top_up_is_a_new_bundle_whose_80_percent_is_told_again(app, client, tma, esimgo, telegram, served):
    order = bought(app, client, tma)
    esimgo.send_usage_callback(served, order["iccid"], 80)
    top_up = bought(app, client, tma, bundle=TOP_UP, iccid=order["iccid"])
    assert top_up["top_up_of"] == order["iccid"]
    esimgo.send_usage_callback(served, order["iccid"], 80, bundle_name=TOP_UP)
    assert len(buyer_messages(telegram, "80%")) == 2
    usage = store(app).get(order["id"])["usage"]  # the eSIM's order holds its usage
    assert usage["bundle"] == TOP_UP and usage["total_bytes"] == 3_000_000_000
    shown = client.get(f"/api/orders/{top_up['id']}", headers={"Authorization": tma(BUYER)}).get_json()["order"]
    assert shown["usage"]["remaining_bytes"] == 600_000_000  # the top-up's page shows the eSIM's usage


def test_russian_buyers_are_told_in_russian(app, client, tma, esimgo, telegram, served):
    order = bought(app, client, tma, lang="ru")
    esimgo.send_usage_callback(served, order["iccid"], 100)
    (told,) = buyer_messages(telegram, "закончился")
    assert "Таиланд" in told.params["text"]
    assert json.loads(told.params["reply_markup"])["inline_keyboard"][0][0]["text"] == "Пополнить эту eSIM"


def _signed(esimgo, body: bytes, encoding: str = "hex") -> str:
    digest = hmac.new(esimgo.api_key.encode(), body, hashlib.sha256).digest()
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()


@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_a_wrong_signature_is_401_and_changes_nothing(app, client, tma, esimgo, telegram, encoding):
    order = bought(app, client, tma)
    report = {"iccid": order["iccid"], "alertType": "Utilisation", "bundle": {
        "name": BUNDLE, "reference": "ref-1", "initialQuantity": 10**9, "remainingQuantity": 0,
        "startTime": "2026-11-22T00:00:00Z", "endTime": "2026-11-29T00:00:00Z", "unlimited": False}}
    body = json.dumps(report).encode()
    altered = body.replace(b'"remainingQuantity": 0', b'"remainingQuantity": 1')
    for raw, signature in ((body, None), (body, ""), (body, "00" * 32), (body, base64.b64encode(b"x" * 32).decode()),
                           (altered, _signed(esimgo, body, encoding)), (body, _signed(esimgo, body, encoding)[:-2]),
                           (body, _signed(esimgo, body + b" ", encoding))):
        headers = {"X-Signature-SHA256": signature} if signature is not None else {}
        answer = client.post("/api/esimgo/callback", data=raw, headers=headers, content_type="application/json")
        assert answer.status_code == 401 and answer.get_json()["error"] == "bad_signature"
    assert "usage" not in store(app).get(order["id"]) and not buyer_messages(telegram, "used up")
    # The right signature, in this encoding, is taken.
    answer = client.post("/api/esimgo/callback", data=body, content_type="application/json",
                         headers={"X-Signature-SHA256": _signed(esimgo, body, encoding)})
    assert answer.status_code == 200 and store(app).get(order["id"])["usage"]["remaining_bytes"] == 0


@pytest.mark.parametrize("bundle", [None, [], {"initialQuantity": "lots"}, {"remainingQuantity": -5},
                                    {"initialQuantity": 10**401}, {"remainingQuantity": float("inf")}])
def test_a_signed_report_that_cannot_be_read_is_a_clear_400_and_changes_nothing(app, client, tma, esimgo, bundle):
    order = bought(app, client, tma)
    for body in (b"not json", b"[]", json.dumps({"iccid": order["iccid"], "alertType": "Utilisation",
                                                  "bundle": bundle}).encode()):
        answer = client.post("/api/esimgo/callback", data=body, content_type="application/json",
                             headers={"X-Signature-SHA256": _signed(esimgo, body)})
        assert answer.status_code == 400 and answer.get_json()["message"], body
    assert "usage" not in store(app).get(order["id"])


def test_an_unknown_esim_or_another_kind_of_event_is_200_and_stores_nothing(app, client, tma, esimgo, served,
                                                                            caplog):
    caplog.set_level("INFO", logger="usage")
    order = bought(app, client, tma)
    before = store(app).get(order["id"])
    answer = esimgo.send_usage_callback(served, "8944000000000000001", 80, bundle_name=BUNDLE)
    assert answer.status_code == 200 and answer.json()["used"] is False
    event = json.dumps({"date": "2026-06-22T13:03:31Z", "event": "esim.deletion_scheduled",
                        "iccid": order["iccid"]}).encode()
    assert client.post("/api/esimgo/callback", data=event, content_type="application/json",
                       headers={"X-Signature-SHA256": _signed(esimgo, event)}).status_code == 200
    assert store(app).get(order["id"]) == before
    assert "not ours (8944000000000000001)" in caplog.text and "esim.deletion_scheduled" in caplog.text


def test_a_stale_report_is_refreshed_from_esim_go_at_most_once_in_five_minutes(app, client, tma, esimgo, served):
    order = bought(app, client, tma)
    esimgo.send_usage_callback(served, order["iccid"], 50)
    store(app).update(order["id"], lambda o: o["usage"].update(measured_at="2026-01-01T00:00:00+00:00"))
    auth = {"Authorization": tma(BUYER)}

    def asked() -> int:
        return len([r for r in esimgo.requests_log if r["path"] == f"/esims/{order['iccid']}/bundles"])

    shown = client.get(f"/api/orders/{order['id']}", headers=auth).get_json()["order"]["usage"]
    assert asked() == 1 and shown["remaining_bytes"] == 500_000_000 and shown["measured_at"] > "2026-01-01T00:01"
    store(app).update(order["id"], lambda o: o["usage"].update(measured_at="2026-01-01T00:00:00+00:00"))
    client.get(f"/api/orders/{order['id']}", headers=auth)
    assert asked() == 1  # asked a moment ago (by any process): not again


def test_a_bundle_ending_tomorrow_is_reminded_exactly_once(app, client, tma, esimgo, telegram, served):
    order = bought(app, client, tma)
    esimgo.send_usage_callback(served, order["iccid"], 50)
    tomorrow = (datetime.now(UTC) + timedelta(hours=20)).isoformat(timespec="seconds")
    store(app).update(order["id"], lambda o: o["usage"].update(ends_at=tomorrow))
    for _ in range(3):
        fulfilment(app)._next_reminders = 0  # the worker looks once a minute; here every round
        fulfilment(app).run_due()
    assert len(buyer_messages(telegram, "ends tomorrow")) == 1
    assert [h["event"] for h in store(app).get(order["id"])["history"]].count("reminder") == 1


def test_no_reminder_for_a_bundle_used_up_or_already_topped_up(app, client, tma, esimgo, telegram, served):
    from usage import remind_due

    used_up = bought(app, client, tma)
    esimgo.send_usage_callback(served, used_up["iccid"], 100)
    topped = bought(app, client, tma)
    esimgo.send_usage_callback(served, topped["iccid"], 50)
    bought(app, client, tma, bundle=TOP_UP, iccid=topped["iccid"])
    tomorrow = (datetime.now(UTC) + timedelta(hours=20)).isoformat(timespec="seconds")
    for order in (used_up, topped):
        store(app).update(order["id"], lambda o: o["usage"].update(ends_at=tomorrow))
    assert remind_due(store(app), app.extensions["esimsdata"]["bot"], "https://shop.example.test") == 0
    assert not buyer_messages(telegram, "ends tomorrow")


def test_a_refund_made_elsewhere_marks_the_order_refunded_and_refunds_nothing(app, client, tma, telegram, caplog):
    order = bought(app, client, tma)
    update = updates.refunded_payment(BUYER, order["id"], order["stars"], order["telegram_payment_charge_id"])
    assert client.post("/api/telegram/webhook", json=update, headers=HOOK).status_code == 200
    after = store(app).get(order["id"])
    assert after["status"] == "refunded" and after["refunded_elsewhere"] is True and after["refunded_at"]
    assert after["history"][-1]["by"] == "telegram"
    again = updates.refunded_payment(BUYER, order["id"], order["stars"], order["telegram_payment_charge_id"])
    assert client.post("/api/telegram/webhook", json=again, headers=HOOK).status_code == 200
    assert telegram.calls("refundStarPayment") == []
    assert len([c for c in telegram.calls("sendMessage") if "refunded outside the shop" in c.params["text"]]) == 1
    stranger = updates.refunded_payment(BUYER, "ord_x", 5, "stxUNKNOWN")
    assert client.post("/api/telegram/webhook", json=stranger, headers=HOOK).status_code == 200
    assert "no order of ours has it" in caplog.text


def test_my_esims_in_the_bot_shows_what_is_left(app, client, tma, esimgo, telegram, served):
    order = bought(app, client, tma)
    esimgo.send_usage_callback(served, order["iccid"], 80)
    command = updates.command(BUYER, "/myesims")
    assert client.post("/api/telegram/webhook", json=command, headers=HOOK).status_code == 200
    listing = telegram.calls("sendMessage", chat_id=BUYER)[-1].params["text"]
    assert "0.2 GB left · 7 days left" in listing


def _report(app, client, esimgo, iccid, bundle, kind="Utilisation", upper=False):
    body = json.dumps({"iccid": iccid, "alertType": kind, "bundle": bundle}).encode()
    signature = _signed(esimgo, body)
    answer = client.post("/api/esimgo/callback", data=body, content_type="application/json",
                         headers={"X-Signature-SHA256": signature.upper() if upper else signature})
    assert answer.status_code == 200, answer.get_json()


def test_late_or_partial_reports_never_move_usage_back(app, client, tma, esimgo, served):
    order = bought(app, client, tma)
    esimgo.send_usage_callback(served, order["iccid"], 80)
    stored = store(app).get(order["id"])["usage"]
    start = stored["starts_at"].replace("+00:00", "Z")
    # FirstUse names only the bundle (no reference), and arrives late.
    _report(app, client, esimgo, order["iccid"], {"name": BUNDLE, "initialQuantity": 10**9,
                                                  "remainingQuantity": 999_999_000, "startTime": start})
    # A report without quantities, then one whose remaining is above the bundle's size (hex in capitals).
    _report(app, client, esimgo, order["iccid"], {"name": BUNDLE, "reference": stored["assignment"]})
    _report(app, client, esimgo, order["iccid"], {"name": BUNDLE, "reference": stored["assignment"],
                                                  "initialQuantity": 10**9, "remainingQuantity": 5 * 10**9},
            upper=True)
    usage = store(app).get(order["id"])["usage"]
    assert (usage["remaining_bytes"], usage["used_bytes"], usage["ends_at"]) == (
        200_000_000, 800_000_000, stored["ends_at"])


def test_a_late_report_of_the_bundle_before_a_top_up_is_ignored(app, client, tma, esimgo, served):
    order = bought(app, client, tma)
    esimgo.send_usage_callback(served, order["iccid"], 80)
    old = store(app).get(order["id"])["usage"]
    bought(app, client, tma, bundle=TOP_UP, iccid=order["iccid"])
    esimgo.send_usage_callback(served, order["iccid"], 10, bundle_name=TOP_UP)
    _report(app, client, esimgo, order["iccid"], {"name": BUNDLE, "reference": old["assignment"],
                                                  "initialQuantity": 10**9, "remainingQuantity": 0})
    _report(app, client, esimgo, order["iccid"], {"name": BUNDLE, "reference": "never-seen-0",
                                                  "initialQuantity": 10**9, "remainingQuantity": 0})  # no start
    assert store(app).get(order["id"])["usage"]["bundle"] == TOP_UP


def test_asking_esim_go_never_replaces_the_dates_its_callbacks_gave(app, client, tma, esimgo, served):
    order = bought(app, client, tma)
    end = (datetime.now(UTC) + timedelta(days=10)).replace(microsecond=0)
    esimgo.send_usage_callback(served, order["iccid"], 50)
    stored = store(app).get(order["id"])["usage"]
    _report(app, client, esimgo, order["iccid"], {
        "name": BUNDLE, "reference": stored["assignment"], "initialQuantity": 10**9, "remainingQuantity": 5 * 10**8,
        "startTime": stored["starts_at"].replace("+00:00", "Z"), "endTime": end.isoformat().replace("+00:00", "Z")})
    store(app).update(order["id"], lambda o: o["usage"].update(measured_at="2026-01-01T00:00:00+00:00"))
    view = client.get(f"/api/orders/{order['id']}", headers={"Authorization": tma(BUYER)}).get_json()["order"]
    assert view["usage"]["ends_at"] == end.isoformat() and view["usage"]["days_left"] == 10
    assert store(app).get(order["id"])["usage"]["source"] == "esimgo"  # it was asked, and kept the dates


def test_an_alert_telegram_did_not_take_is_sent_with_the_next_report(app, client, tma, esimgo, telegram, served):
    order = bought(app, client, tma)
    telegram.fail("sendMessage", 429, "Too Many Requests: retry after 1")
    esimgo.send_usage_callback(served, order["iccid"], 80)
    assert not buyer_messages(telegram, "80%")
    esimgo.send_usage_callback(served, order["iccid"], 80)
    assert len(buyer_messages(telegram, "80%")) == 1


def test_a_refund_made_while_the_esim_is_being_bought_buys_nothing_more_and_sends_nothing(app, client, tma, esimgo,
                                                                                      telegram):
    from conftest import ADMIN_ID

    answer = client.post("/api/telegram/stars/create-invoice", json={"bundle_name": BUNDLE},
                         headers={"Authorization": tma(BUYER)}).get_json()
    payment = updates.successful_payment(BUYER, answer["order_id"], answer["stars"])
    assert client.post("/api/telegram/webhook", json=payment, headers=HOOK).status_code == 200
    charge = payment["message"]["successful_payment"]["telegram_payment_charge_id"]
    # The worker has claimed it and is buying at eSIM Go (its lease is held) when Telegram's refund arrives.
    lease = (datetime.now(UTC) + timedelta(seconds=60)).isoformat(timespec="seconds")
    store(app).update(answer["order_id"], lambda o: o.update(status="provisioning", esimgo_unsure=True,
                                                             lease_until=lease))
    refund = updates.refunded_payment(BUYER, answer["order_id"], answer["stars"], charge)
    assert client.post("/api/telegram/webhook", json=refund, headers=HOOK).status_code == 200
    flagged = store(app).get(answer["order_id"])
    assert flagged["status"] == "provisioning" and flagged["refunded_elsewhere"] is True
    # The purchase did go through: the shop finds it, keeps its eSIM on record, sends nothing, refunds nothing.
    bought_meanwhile = app.extensions["esimsdata"]["esimgo"].create_order(BUNDLE)
    store(app).update(answer["order_id"], lambda o: o.update(lease_until="2020-01-01T00:00:00+00:00",
                                                             esimgo_attempt_at=orders_now()))
    fulfilment(app).settle(answer["order_id"])
    after = store(app).get(answer["order_id"])
    assert after["status"] == "refunded" and after["orderReference"] == bought_meanwhile.reference
    assert after["iccid"] and len(esimgo.orders) == 1
    assert telegram.calls("sendPhoto") == [] and telegram.calls("refundStarPayment") == []
    alert = [c.params["text"] for c in telegram.calls("sendMessage", chat_id=ADMIN_ID)]
    assert any(after["iccid"] in text and "revoke" in text for text in alert)


def test_a_refund_that_arrives_before_its_payment_buys_nothing(app, client, tma, esimgo, telegram):
    answer = client.post("/api/telegram/stars/create-invoice", json={"bundle_name": BUNDLE},
                         headers={"Authorization": tma(BUYER)}).get_json()
    refund = updates.refunded_payment(BUYER, answer["order_id"], answer["stars"], "stxLATE")
    assert client.post("/api/telegram/webhook", json=refund, headers=HOOK).status_code == 200
    payment = updates.successful_payment(BUYER, answer["order_id"], answer["stars"], charge_id="stxLATE")
    assert client.post("/api/telegram/webhook", json=payment, headers=HOOK).status_code == 200
    fulfilment(app).settle(answer["order_id"])
    assert store(app).get(answer["order_id"])["status"] == "refunded"
    assert esimgo.orders == [] and telegram.calls("refundStarPayment") == []


def orders_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
