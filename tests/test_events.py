"""Signed order events to the owner's backend and /metrics (issue 13), against a loopback receiver that checks
what a real backend would: the signature by the documented recipe, the canonical bytes, the token."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask, request

import updates
from conftest import ADMIN_ID, ADMIN_TOKEN, ROOT, SERVICE_TOKEN, WEBHOOK_SECRET, wait_on_disk
from extensions import fulfilment, store
from sandboxes.server import ServerThread

BUYER = 2515644
BUNDLE = "esim_1GB_7D_TH_V2"
SECRET = "test-backend-secret-0123456789"
HOOK = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}


def verify(raw: bytes, signature: str, secret: str = SECRET) -> bool:
    """docs/events.md's recipe, as the receiving side writes it."""
    expected = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature.strip().lower())


class Receiver:
    """The owner's backend on 127.0.0.1: answers from a script (default 200 {"success": true}), records all."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.taken: set[str] = set()  # event ids processed: a repeat is answered 409
        self.answers: list[tuple[int, str]] = []
        self.lock = threading.Lock()
        app = Flask("receiver")

        @app.post("/events")
        def take():  # type: ignore[no-untyped-def]
            raw = request.get_data()
            with self.lock:
                status, body = self.answers.pop(0) if self.answers else (200, '{"success": true}')
                if status == 200 and request.headers.get("X-Event-Id") in self.taken:
                    status, body = 409, '{"error": "already processed"}'  # as the docs ask a backend to do
                if status == 200:
                    self.taken.add(request.headers.get("X-Event-Id"))
                self.received.append({"raw": raw, "headers": dict(request.headers), "status": status})
            return body, status, {"Content-Type": "application/json"}

        self.server = ServerThread(app).start()
        self.url = self.server.origin + "/events"

    def delivered(self) -> list[dict]:
        """Events the backend processed (each once: a repeat is a 409), parsed, in the order they came."""
        with self.lock:
            return [json.loads(r["raw"]) for r in self.received if r["status"] == 200]


@pytest.fixture
def receiver():
    box = Receiver()
    yield box
    box.server.stop()


@pytest.fixture
def config(config, receiver):
    config.setdefault("BACKEND_WEBHOOK_URL", receiver.url)  # a test's @pytest.mark.settings wins
    config.update(BACKEND_WEBHOOK_SECRET=SECRET, FULFIL_INLINE="0", EVENTS_RETRY_SECONDS="0.01")
    return config




def paid(app, client, tma, settle=True):
    answer = client.post("/api/telegram/stars/create-invoice", json={"bundle_name": BUNDLE},
                         headers={"Authorization": tma(BUYER)}).get_json()
    update = updates.successful_payment(BUYER, answer["order_id"], answer["stars"])
    assert client.post("/api/telegram/webhook", json=update, headers=HOOK).status_code == 200
    if settle:
        fulfilment(app).settle(answer["order_id"])
    return store(app).get(answer["order_id"])


def deliver(app, rounds: int = 1) -> None:
    for _ in range(rounds):
        app.extensions["esimsdata"]["outbox"].deliver_due(store(app))
        time.sleep(0.02)  # past the test's 10 ms retry delay: the next round may send again


def test_the_documented_test_vector_holds():
    doc = (ROOT / "docs" / "events.md").read_text()
    blocks = re.findall(r"```\n(.*?)\n```", doc, re.S)
    secret, body, signature = (b.strip() for b in blocks[1:4])
    import events

    assert events.canonical(json.loads(body)) == body.encode()
    assert events.sign(body.encode(), secret) == signature and verify(body.encode(), signature, secret)


def test_each_event_is_signed_canonical_and_in_order(app, client, tma, receiver):
    order = paid(app, client, tma)
    deliver(app)
    client.post(f"/api/admin/orders/{order['id']}/refund", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    deliver(app)
    assert [e["event"] for e in receiver.delivered()] == [
        "telegram_stars_payment_succeeded", "esim_order_completed", "telegram_stars_payment_refunded"]
    for got in receiver.received:
        headers, raw = got["headers"], got["raw"]
        assert verify(raw, headers["X-Webhook-Signature"]) and len(headers["X-Webhook-Signature"]) == 64
        body = json.loads(raw)
        assert json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() == raw
        assert headers["X-Service-Token"] == SERVICE_TOKEN
        assert headers["Content-Type"] == "application/json; charset=utf-8"
        assert headers["Idempotency-Key"] == headers["X-Event-Id"] == body["event_id"]
        assert headers["User-Agent"].startswith("esimsdata/")
        assert (body["order_id"], body["user_id"], body["amount_stars"], body["currency"], body["price_usd"]) == (
            order["id"], BUYER, 314, "XTR", "3.06")
        assert body["telegram_charge_id"] == order["telegram_payment_charge_id"]
        assert json.loads(body["invoice_payload"]) == {"order_id": order["id"]}
        assert isinstance(body["timestamp"], int) and body["bundle_name"] == BUNDLE
    assert receiver.delivered()[1]["iccid"] == order["iccid"]
    after = store(app).get(order["id"])
    assert [e["state"] for e in after["outbox"]] == ["sent"] * 3 and "body" not in after["outbox"][0]
    assert app.test_client().get("/healthz").get_json()["outbox"] == {"pending": 0, "failed": 0, "oldest_seconds": 0}


def test_a_failing_backend_gets_the_event_once_it_answers(app, client, tma, receiver):
    receiver.answers = [(500, "oops"), (200, '{"success": false}'), (503, "")]
    order = paid(app, client, tma, settle=False)
    deliver(app, rounds=5)
    taken = receiver.delivered()
    assert [e["event"] for e in taken] == ["telegram_stars_payment_succeeded"]
    ids = [json.loads(r["raw"])["event_id"] for r in receiver.received]
    assert len(set(ids)) == 1 and len(ids) == 4  # three refusals, one delivery: the same event, same bytes
    assert len({r["raw"] for r in receiver.received}) == 1
    entry = store(app).get(order["id"])["outbox"][0]
    assert entry["state"] == "sent" and entry["attempts"] == 4


def test_409_means_already_processed(app, client, tma, receiver):
    receiver.answers = [(409, '{"error": "duplicate"}')]
    order = paid(app, client, tma, settle=False)
    deliver(app, rounds=3)
    assert len(receiver.received) == 1 and store(app).get(order["id"])["outbox"][0]["state"] == "sent"


def test_401_stops_that_event_and_alerts_the_admin_until_sent_again(app, client, tma, receiver, telegram):
    receiver.answers = [(401, '{"error": "bad signature"}')]
    order = paid(app, client, tma, settle=False)
    deliver(app, rounds=3)
    assert len(receiver.received) == 1
    entry = store(app).get(order["id"])["outbox"][0]
    assert entry["state"] == "failed" and "401" in entry["last_error"]
    alert = telegram.calls("sendMessage", chat_id=ADMIN_ID)[-1].params["text"]
    assert "refused" in alert and order["id"] in alert
    token = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    listed = client.get("/api/admin/outbox", headers=token).get_json()
    assert (listed["failed"], listed["events"][0]["id"]) == (1, entry["id"])
    fulfilment(app).settle(order["id"])  # its completion comes after the refused payment event: it waits
    deliver(app, rounds=2)
    assert len(receiver.received) == 1
    assert client.post(f"/api/admin/outbox/{entry['id']}/send", headers=token).status_code == 200
    assert client.post("/api/admin/outbox/not-an-event/send", headers=token).status_code == 404
    deliver(app)
    assert [e["event"] for e in receiver.delivered()] == ["telegram_stars_payment_succeeded", "esim_order_completed"]
    assert receiver.delivered()[0]["event_id"] == entry["id"]


@pytest.mark.settings(BACKEND_WEBHOOK_URL="")
def test_without_a_url_nothing_is_queued_or_sent(app, client, tma, receiver):
    order = paid(app, client, tma)
    deliver(app)
    assert "outbox" not in store(app).get(order["id"]) and receiver.received == []
    assert "outbox" not in client.get("/healthz").get_json()


def test_metrics_count_a_purchase_and_a_refund_and_are_private(app, client, tma):
    def value(text: str, name: str) -> float:
        found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        return float(found.group(1)) if found else 0.0

    before = client.get("/metrics").get_data(as_text=True)
    order = paid(app, client, tma)
    client.post(f"/api/admin/orders/{order['id']}/refund", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    after = client.get("/metrics")
    text = after.get_data(as_text=True)
    assert after.status_code == 200 and after.mimetype == "text/plain"
    for name in ("esimsdata_invoices_total", "esimsdata_payments_total", "esimsdata_completions_total",
                 'esimsdata_refunds_total{by="owner"}'):
        assert value(text, name) == value(before, name) + 1, name
    assert 'esimsdata_esimgo_requests_total{endpoint="POST /orders",outcome="ok"}' in text
    assert "esimsdata_pre_checkout_seconds_count" in text and 'esimsdata_webhook_seconds_count{kind="message"}' in text
    assert value(text, "esimsdata_outbox_pending") == 3  # paid, completed, refunded: none delivered in this test
    assert value(text, "esimsdata_catalogue_age_seconds") >= 0
    outside = {"REMOTE_ADDR": "203.0.113.5"}
    assert client.get("/metrics", environ_base=outside).status_code == 403
    assert client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.5"}).status_code == 403  # via nginx
    assert client.get("/metrics", environ_base=outside, headers={"Authorization": "Bearer nope"}).status_code == 403
    assert client.get("/metrics", environ_base=outside,
                      headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 200


@pytest.mark.slow
def test_a_worker_killed_with_events_pending_delivers_them_after_a_restart_none_twice(app, client, tma, receiver,
                                                                                      config, data_dir):
    receiver.answers = [(500, "")] * 2
    orders_paid = [paid(app, client, tma)["id"] for _ in range(3)]  # delivered: two events each wait
    wait_on_disk(data_dir / "orders.json", lambda d: True)
    env = {**os.environ, **{k: str(v) for k, v in config.items()}, "WORKER_POLL_SECONDS": "0.2",
           "EVENTS_RETRY_SECONDS": "30"}  # after a failure, this worker would wait: it is killed first
    worker = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "worker")], env=env, cwd=ROOT,
                              start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while len(receiver.received) < 2 and time.monotonic() < deadline:  # both refusals seen, the rest pending
        time.sleep(0.05)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    assert len(receiver.received) >= 2
    env["EVENTS_RETRY_SECONDS"] = "0.01"
    restarted = subprocess.run([sys.executable, str(ROOT / "scripts" / "worker"), "--once"], env=env, cwd=ROOT,
                               timeout=120, capture_output=True, text=True)
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    # The refused ones wait out their 30 s retry; run rounds until each has been taken.
    deadline = time.monotonic() + 90
    while len(receiver.delivered()) < 3 * 2 and time.monotonic() < deadline:
        for order_id in orders_paid:  # as if their retry time, and a killed POST's 60 s hold, had passed
            store(app).update(order_id, lambda o: [e.update(next_at="2020-01-01T00:00:00+00:00", sending_until=None)
                                                    for e in o.get("outbox") or [] if e.get("state") == "pending"])
        subprocess.run([sys.executable, str(ROOT / "scripts" / "worker"), "--once"], env=env, cwd=ROOT,
                       timeout=120, capture_output=True)
    taken = [(e["order_id"], e["event"]) for e in receiver.delivered()]
    assert sorted(taken) == sorted([(o, ev) for o in orders_paid
                                    for ev in ("telegram_stars_payment_succeeded", "esim_order_completed")])
    assert len({e["event_id"] for e in receiver.delivered()}) == len(taken)  # none twice


@pytest.mark.slow
def test_metrics_under_gunicorn_add_up_the_web_workers_and_the_order_worker(tmp_path, esimgo, telegram,
                                                                            catalogue_cache):
    import shutil

    import requests
    from test_app import clean_env, free_port, stop, wait_healthy

    from auth import sign_init_data

    shutil.copy(catalogue_cache, tmp_path / "catalogue.json")
    port = free_port()
    env = clean_env(ESIMGO_API_KEY=esimgo.api_key, ESIMGO_BASE_URL=esimgo.url, TELEGRAM_BOT_TOKEN="1:x",
                    TELEGRAM_WEBHOOK_SECRET="s3cret", TELEGRAM_API_URL=telegram.url, DATA_DIR=str(tmp_path),
                    BIND=f"127.0.0.1:{port}", FULFIL_INLINE="0", WORKER_POLL_SECONDS="0.2")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    web = subprocess.Popen([sys.executable, "-m", "gunicorn", "app:create_app()"], cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    worker = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "worker")], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, web)
        auth = {"Authorization": "tma " + sign_init_data("1:x", {"id": BUYER, "first_name": "A"})}
        answer = requests.post(f"{url}/api/telegram/stars/create-invoice", json={"bundle_name": BUNDLE},
                               headers=auth, timeout=10).json()
        update = updates.successful_payment(BUYER, answer["order_id"], answer["stars"])
        assert requests.post(f"{url}/api/telegram/webhook", json=update, timeout=10,
                             headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret"}).status_code == 200
        telegram.wait_for("sendPhoto", chat_id=BUYER, timeout=30)  # the order worker delivered it
        text = requests.get(f"{url}/metrics", timeout=10).text
        # Counted in a web worker (invoice, payment) and in the order worker (completion): one scrape has all.
        for line in ("esimsdata_invoices_total 1.0", "esimsdata_payments_total 1.0", "esimsdata_completions_total 1.0"):
            assert line in text, line
        assert list((tmp_path / "metrics").glob("counter_*.db"))
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(10)
        stop(web)


def test_an_esim_first_delivered_by_the_owners_resend_is_reported_completed_once(app, client, tma, receiver,
                                                                                   telegram):
    telegram.fail("sendPhoto", 403, "Forbidden: bot was blocked by the user")
    order = paid(app, client, tma)
    token = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert client.post(f"/api/admin/orders/{order['id']}/resend", headers=token).status_code == 200
    assert client.post(f"/api/admin/orders/{order['id']}/resend", headers=token).status_code == 200
    deliver(app)
    assert [e["event"] for e in receiver.delivered()] == ["telegram_stars_payment_succeeded", "esim_order_completed"]


def test_a_refund_made_in_telegram_while_the_shop_holds_a_delivered_order_is_reported(app, client, tma, receiver):
    order = paid(app, client, tma)
    held = (datetime.now(UTC) + timedelta(seconds=60)).isoformat(timespec="seconds")
    store(app).update(order["id"], lambda o: o.update(lease_until=held))  # e.g. the owner's resend in flight
    refund = updates.refunded_payment(BUYER, order["id"], order["stars"], order["telegram_payment_charge_id"])
    assert client.post("/api/telegram/webhook", json=refund, headers=HOOK).status_code == 200
    assert store(app).get(order["id"])["status"] == "completed"  # the shop settles it once it lets go
    store(app).update(order["id"], lambda o: o.update(lease_until="2020-01-01T00:00:00+00:00"))
    fulfilment(app).run_due()
    deliver(app)
    assert store(app).get(order["id"])["status"] == "refunded"
    assert [e["event"] for e in receiver.delivered()][-1] == "telegram_stars_payment_refunded"


def test_a_redirecting_backend_gets_nothing_and_the_admin_is_told(app, client, tma, receiver, telegram):
    receiver.answers = [(302, "")]
    order = paid(app, client, tma, settle=False)
    deliver(app, rounds=2)
    assert [r["status"] for r in receiver.received] == [302]  # followed nowhere: our token stays ours
    entry = store(app).get(order["id"])["outbox"][0]
    assert entry["state"] == "failed" and "redirects" in entry["last_error"] and entry["body"]
    assert "refused" in telegram.calls("sendMessage", chat_id=ADMIN_ID)[-1].params["text"]
    token = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert client.post(f"/api/admin/outbox/{entry['id']}/send", headers=token).status_code == 200
    deliver(app)
    sent_again = client.post(f"/api/admin/outbox/{entry['id']}/send", headers=token)
    assert sent_again.status_code == 409 and "delivered already" in sent_again.get_json()["message"]
