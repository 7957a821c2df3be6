"""The paid path on real processes (SPEC §8): gunicorn with several workers, the worker script, and the
operator's `scripts/test-stars-webhook` — vendors are the sandboxes on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

import updates
from auth import sign_init_data
from conftest import BOT_TOKEN, WEBHOOK_SECRET
from storage import OrderStore

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(data_dir: Path, esimgo, telegram, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "ESIMGO_", "FULFIL_"))}
    env.update(ESIMGO_API_KEY=esimgo.api_key, ESIMGO_BASE_URL=esimgo.url, TELEGRAM_BOT_TOKEN=BOT_TOKEN,
               TELEGRAM_API_URL=telegram.url, TELEGRAM_WEBHOOK_SECRET=WEBHOOK_SECRET, DATA_DIR=str(data_dir),
               PUBLIC_BASE_URL="https://shop.example.test")
    env.update(extra)
    return env


def run_script(env: dict[str, str], *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          **kwargs)


class Gunicorn:
    def __init__(self, env: dict[str, str], workers: int = 2, ready: str = "/api/esimgo/countries") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**env, "BIND": f"127.0.0.1:{self.port}", "WEB_CONCURRENCY": str(workers)}
        self.log = Path(env["DATA_DIR"]).parent / f"gunicorn-{self.port}.log"
        with open(self.log, "wb") as log:  # access and error log, as PM2 would collect them
            self.proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "app:create_app()"], cwd=ROOT, env=env,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 60
        while True:  # every worker answers only once it has the catalogue
            assert self.proc.poll() is None, "gunicorn exited"
            try:
                oks = [requests.get(self.url + ready, timeout=2).status_code for _ in range(4)]
                if oks == [200] * 4:
                    return
            except requests.RequestException:
                pass
            assert time.time() < deadline, "gunicorn did not become ready"
            time.sleep(0.3)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):  # no worker may outlive its test and reach the next one
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)


def test_one_payment_delivered_eight_times_to_several_workers_buys_one_esim(data_dir, esimgo, telegram):
    env = server_env(data_dir, esimgo, telegram)
    server = Gunicorn(env, workers=3)
    try:
        auth = "tma " + sign_init_data(BOT_TOKEN, {"id": 2515644, "first_name": "T"})
        invoice = requests.post(server.url + "/api/telegram/stars/create-invoice", json={"bundle_name":
                                "esim_1GB_7D_TH_V2"}, headers={"Authorization": auth}, timeout=10).json()
        update = updates.successful_payment(2515644, invoice["order_id"], invoice["stars"], charge_id="stxMULTI")
        bodies = [update] * 4 + [{**update, "update_id": updates.next_update_id()} for _ in range(4)]
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda b: requests.post(server.url + "/api/telegram/webhook", json=b, timeout=30,
                                  headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}).status_code, bodies))
        assert codes == [200] * 8
        telegram.wait_for("sendPhoto", timeout=20)
    finally:
        server.stop()
    # Restarted, Telegram redelivers again: still nothing new.
    server = Gunicorn(env, workers=2)
    try:
        again = requests.post(server.url + "/api/telegram/webhook", json={**update, "update_id":
                              updates.next_update_id()}, headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET},
                              timeout=30)
        assert again.status_code == 200  # answered after handling: the charge was found already recorded
    finally:
        server.stop()
    assert "already recorded on order" in server.log.read_text()
    assert len(esimgo.orders) == 1
    assert len(telegram.calls("sendPhoto")) == 1
    order = OrderStore(data_dir / "orders.json").get(invoice["order_id"])
    assert order["status"] == "completed" and order["telegram_payment_charge_id"] == "stxMULTI"


def test_the_worker_script_finishes_what_the_web_process_left(data_dir, esimgo, telegram):
    env = server_env(data_dir, esimgo, telegram, FULFIL_INLINE="0")  # the web process records payment only
    server = Gunicorn(env, workers=1)
    try:
        auth = "tma " + sign_init_data(BOT_TOKEN, {"id": 42, "first_name": "T"})
        invoice = requests.post(server.url + "/api/telegram/stars/create-invoice", json={"bundle_name":
                                "esim_3GB_30D_FR_V2"}, headers={"Authorization": auth}, timeout=10).json()
        requests.post(server.url + "/api/telegram/webhook", json=updates.successful_payment(
            42, invoice["order_id"], invoice["stars"]), headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET},
            timeout=10)
    finally:
        server.stop()
    store = OrderStore(data_dir / "orders.json")
    assert store.get(invoice["order_id"])["status"] == "paid"
    result = run_script(env, "scripts/worker", "--once")
    assert result.returncode == 0, result.stderr
    assert "advanced 1 order(s)" in result.stderr
    order = store.get(invoice["order_id"])
    assert order["status"] == "completed" and order["delivered_at"]
    assert len(telegram.calls("sendPhoto", chat_id=42)) == 1


def test_operator_script_walks_the_paid_path_on_a_running_server(data_dir, esimgo, telegram):
    env = server_env(data_dir, esimgo, telegram)
    server = Gunicorn(env, workers=2)
    try:
        result = run_script(env, "scripts/test-stars-webhook", "--url", server.url)
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for step in ("[1/7] invoice", "[2/7] pre-checkout", "[3/7] payment webhook", "[4/7] eSIM Go order",
                 "[5/7] eSIM details", "[6/7] saved in orders.json", "[7/7] buyer notified"):
        assert step in out and "OK" in out.split(step)[1].splitlines()[0], out
    assert "314 Stars ($3.06)" in out and "All steps passed." in out
    assert len(esimgo.orders) == 1 and len(telegram.calls("sendPhoto", chat_id=2515644)) == 1


def test_operator_script_names_the_step_that_failed(data_dir, esimgo, telegram):
    env = server_env(data_dir, esimgo, telegram)
    esimgo.settings(balance=0.5)  # eSIM Go refuses: the order is refunded, step 4 fails
    server = Gunicorn(env, workers=1)
    try:
        result = run_script(env, "scripts/test-stars-webhook", "--url", server.url)
    finally:
        server.stop()
    assert result.returncode == 4, result.stdout
    assert "[4/7] eSIM Go order" in result.stdout and "FAIL" in result.stdout
    assert "Insufficient balance" in result.stdout


def test_operator_script_reports_an_unreachable_server(data_dir, esimgo, telegram):
    env = server_env(data_dir, esimgo, telegram)
    result = run_script(env, "scripts/test-stars-webhook", "--url", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1 and "[1/7] invoice" in result.stdout and "cannot reach" in result.stdout


def test_operator_script_asks_before_spending_real_balance(data_dir, esimgo, telegram):
    env = server_env(data_dir, esimgo, telegram, ESIMGO_BASE_URL="https://api.esim-go.com/v2.4")
    result = run_script(env, "scripts/test-stars-webhook", "--url", "http://127.0.0.1:9", stdin=subprocess.DEVNULL)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "spends real eSIM Go balance" in result.stdout and "--yes" in result.stdout
    assert "Not confirmed" in result.stdout and "[1/7]" not in result.stdout  # stopped before any step


def test_setup_bot_points_telegram_at_the_webhook_with_its_secret(data_dir, esimgo, telegram):
    env = server_env(data_dir, esimgo, telegram)
    result = run_script(env, "scripts/setup-bot")
    assert result.returncode == 0, result.stdout + result.stderr
    (hook,) = telegram.calls("setWebhook")
    assert hook.params["url"] == "https://shop.example.test/api/telegram/webhook"
    assert hook.params["secret_token"] == WEBHOOK_SECRET
    assert "pre_checkout_query" in hook.params["allowed_updates"]
    assert len(telegram.calls("setMyCommands")) == 2
    menu = telegram.calls("setChatMenuButton")[0].json("menu_button")
    assert menu["web_app"]["url"] == "https://shop.example.test/"


def test_signed_qr_links_never_reach_the_access_log(data_dir, esimgo, telegram):
    env = server_env(data_dir, esimgo, telegram)
    server = Gunicorn(env, workers=1)
    try:
        auth = {"Authorization": "tma " + sign_init_data(BOT_TOKEN, {"id": 43, "first_name": "T"})}
        invoice = requests.post(server.url + "/api/telegram/stars/create-invoice", json={"bundle_name":
                                "esim_1GB_7D_TH_V2"}, headers=auth, timeout=10).json()
        requests.post(server.url + "/api/telegram/webhook", json=updates.successful_payment(
            43, invoice["order_id"], invoice["stars"]), headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET},
            timeout=10)
        telegram.wait_for("sendPhoto", chat_id=43, timeout=20)
        order = requests.get(f"{server.url}/api/orders/{invoice['order_id']}", headers=auth, timeout=10).json()
        qr_url = order["order"]["qr_url"]
        assert requests.get(server.url + qr_url, timeout=10).status_code == 200
    finally:
        server.stop()
    log = server.log.read_text()
    assert f"GET /qr/{invoice['order_id']}.png HTTP/1.1\" 200" in log  # the request is logged...
    assert "sig=" not in log and qr_url.split("?")[1] not in log  # ...without its signature


def test_once_healthz_is_200_no_buyer_is_told_plans_are_loading(data_dir, esimgo, telegram):
    (data_dir / "catalogue.json").unlink()  # first start: one worker fetches, the others wait for its file
    server = Gunicorn(server_env(data_dir, esimgo, telegram), workers=3, ready="/healthz")
    try:
        codes = [requests.get(server.url + "/api/esimgo/countries", timeout=10).status_code for _ in range(40)]
        assert codes == [200] * 40
        server.proc.send_signal(signal.SIGHUP)  # pm2 reload: new workers replace the old ones
        deadline = time.monotonic() + 4
        codes = []
        while time.monotonic() < deadline:
            codes.append(requests.get(server.url + "/api/esimgo/countries", timeout=10).status_code)
        assert set(codes) == {200} and len(codes) > 20
    finally:
        server.stop()


def gunicorn_workers(master: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()]
    except OSError:
        return []


def test_killing_web_workers_at_random_while_payments_arrive_buys_each_esim_once(data_dir, esimgo, telegram):
    import random
    import threading

    # Short leases so the worker takes over quickly from a killed web process (production: 120 s).
    env = server_env(data_dir, esimgo, telegram, FULFIL_LEASE_SECONDS="3", FULFIL_RECONCILE_SECONDS="1",
                     WORKER_POLL_SECONDS="0.5")
    esimgo.settings(processing_seconds=0.5)  # so kills also land while eSIM Go is preparing the eSIM
    server = Gunicorn(env, workers=2)
    worker = subprocess.Popen([sys.executable, "scripts/worker"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    buyers = list(range(3_000_001, 3_000_041))
    hook = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
    stop = threading.Event()
    kills = []

    def killer() -> None:  # OOM, deploys, crashes: a web worker dies mid-request, whatever it was doing
        rng = random.Random(7)
        while not stop.wait(rng.uniform(0.25, 0.7)):
            pids = gunicorn_workers(server.proc.pid)
            if pids:
                victim = rng.choice(pids)
                try:
                    os.kill(victim, signal.SIGKILL)
                    kills.append(victim)
                except ProcessLookupError:
                    pass

    try:
        invoices = {}
        for user in buyers:
            auth = {"Authorization": "tma " + sign_init_data(BOT_TOKEN, {"id": user, "first_name": "T"})}
            invoices[user] = requests.post(server.url + "/api/telegram/stars/create-invoice", headers=auth, timeout=10,
                                           json={"bundle_name": "esim_1GB_7D_TH_V2"}).json()
        updates_by_user = {u: updates.successful_payment(u, i["order_id"], i["stars"]) for u, i in invoices.items()}
        chaos = threading.Thread(target=killer, daemon=True)
        chaos.start()

        def deliver_until_acknowledged(update: dict) -> int:
            """Telegram's side: redeliver an update until it is answered 200."""
            attempts = 0
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                attempts += 1
                try:
                    if requests.post(server.url + "/api/telegram/webhook", json=update, headers=hook,
                                     timeout=15).status_code == 200:
                        return attempts
                except requests.RequestException:
                    pass
                time.sleep(0.2)
            raise AssertionError(f"update {update['update_id']} never acknowledged")

        with ThreadPoolExecutor(8) as pool:
            attempts = list(pool.map(deliver_until_acknowledged, updates_by_user.values()))
        store = OrderStore(data_dir / "orders.json", background=False)

        def settled() -> list[dict]:
            states = [store.get(i["order_id"]) for i in invoices.values()]
            return states if all(o["status"] == "completed" and o.get("delivered_at") for o in states) else []

        kill_until = time.monotonic() + 5  # keep killing while the eSIMs are bought and sent, for a while
        while time.monotonic() < kill_until and not settled():
            time.sleep(0.2)
        stop.set()
        chaos.join()
        for update in updates_by_user.values():  # a late redelivery of every update changes nothing
            assert deliver_until_acknowledged(update) == 1
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not settled():
            time.sleep(0.2)
        states = [store.get(i["order_id"]) for i in invoices.values()]
    finally:
        stop.set()
        worker.terminate()
        worker.wait(20)
        server.stop()
    assert len(kills) >= 3, f"only {len(kills)} kills: the test did not test much"
    assert [o["status"] for o in states] == ["completed"] * len(buyers), [(o["id"], o["status"]) for o in states]
    assert len(esimgo.orders) == len(buyers)  # one eSIM per payment, however many times it was delivered
    assert telegram.calls("refundStarPayment") == []
    for user, order in zip(buyers, states, strict=True):
        photos = telegram.calls("sendPhoto", chat_id=user)
        # At least once, and always the order's own eSIM (its iPhone link carries the Matching ID); a second
        # copy only if a process died between sending it and writing that down.
        markups = {str(p.json("reply_markup")) for p in photos}
        assert photos and len(markups) == 1 and order["matchingId"] in markups.pop()
    print(f"{len(kills)} workers killed; deliveries needed {sum(attempts)} posts for {len(buyers)} payments")
