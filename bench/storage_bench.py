#!/usr/bin/env python3
"""Does the shop stay fast as its history grows? (issue 7, docs/storage.md)

For each history — 1k, 10k and 50k orders over ten months, and 20k orders all made in the last 7 days — it
writes orders.json as the earlier version did, starts the shop as operators run it (gunicorn with 2
workers plus `scripts/worker`, both vendors as instant sandboxes on 127.0.0.1) and measures, over HTTP:
start-up until /healthz is 200, create-invoice, a buyer's GET /api/orders, the slowest of 8 pre-checkouts
arriving at once, successful_payment -> QR photo one at a time, 8 payments at once, the largest resident
memory of any shop process, and how soon orders.json is current after the burst.

    .venv/bin/python bench/storage_bench.py                       # this checkout
    .venv/bin/python bench/storage_bench.py --baseline 4b9e8df    # and another commit, side by side
    .venv/bin/python bench/storage_bench.py --sizes 1k,50k --runs 30
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

import updates  # noqa: E402
from auth import sign_init_data  # noqa: E402
from history import FIRST_USER, make_history, write_earlier_layout  # noqa: E402
from report import markdown_table, ms, sized_arguments  # noqa: E402
from sandboxes.esimgo import EsimGoSandbox  # noqa: E402
from sandboxes.telegram import TelegramSandbox  # noqa: E402

BOT_TOKEN = "123456789:BENCH-token"
SECRET = "bench-webhook-secret"
BUNDLE = "esim_1GB_7D_TH_V2"
SIZES = {"1k": (1_000, 300), "10k": (10_000, 300), "50k": (50_000, 300), "20k-hot": (20_000, 7)}


@dataclass
class Result:
    label: str
    code: str
    startup: float = 0.0
    invoice: list[float] = field(default_factory=list)
    my_orders: list[float] = field(default_factory=list)
    pre_checkout_slowest: float = 0.0
    delivery: list[float] = field(default_factory=list)
    burst_seconds: float | None = None  # None: not all 8 delivered within the wait
    burst_delivered: int = 0
    burst_5xx: int = 0
    restart: float | None = None
    rss_mb: float = 0.0
    file_current: float | None = None
    error: str = ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of a process and (for the gunicorn master) its workers: the largest one, in MB."""
    pids = [pid]
    try:
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    largest = 0.0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    largest = max(largest, int(line.split()[1]) / 1024)
        except OSError:
            pass
    return largest


class Shop:
    """gunicorn (2 workers) and scripts/worker from `code`, on `data_dir`."""

    def __init__(self, code: Path, data_dir: Path, esimgo: EsimGoSandbox, telegram: TelegramSandbox) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "ESIMGO_", "FULFIL_"))}
        env.update(ESIMGO_API_KEY=esimgo.api_key, ESIMGO_BASE_URL=esimgo.url, TELEGRAM_BOT_TOKEN=BOT_TOKEN,
                   TELEGRAM_API_URL=telegram.url, TELEGRAM_WEBHOOK_SECRET=SECRET, DATA_DIR=str(data_dir),
                   PUBLIC_BASE_URL="https://shop.example.test", BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="2",
                   ESIMSDATA_ENV_FILE=str(data_dir / "no.env"))
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        started = time.monotonic()
        self.web = subprocess.Popen([sys.executable, "-m", "gunicorn", "app:create_app()"], cwd=code, env=env, **quiet)
        self.worker = subprocess.Popen([sys.executable, str(code / "scripts" / "worker")], cwd=code, env=env, **quiet)
        deadline = started + 120
        while True:
            if self.web.poll() is not None:
                raise RuntimeError("gunicorn exited")
            try:
                if requests.get(self.url + "/healthz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("not healthy within 120 s")
            time.sleep(0.05)
        self.startup = time.monotonic() - started

    def rss(self) -> float:
        return max(rss_mb(self.web.pid), rss_mb(self.worker.pid))

    def stop(self) -> None:
        for proc in (self.worker, self.web):
            proc.send_signal(signal.SIGTERM)
        for proc in (self.worker, self.web):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


class Buyer:
    def __init__(self, shop: Shop, user: int) -> None:
        self.shop, self.user = shop, user
        self.auth = {"Authorization": "tma " + sign_init_data(BOT_TOKEN, {"id": user, "first_name": "Bench"})}

    def invoice(self) -> dict:
        response = requests.post(self.shop.url + "/api/telegram/stars/create-invoice", json={"bundle_name": BUNDLE},
                                 headers=self.auth, timeout=60)
        response.raise_for_status()
        return response.json()

    def my_orders(self) -> requests.Response:
        return requests.get(self.shop.url + "/api/orders", headers=self.auth, timeout=60)


def post_update(shop: Shop, update: dict) -> int:
    try:
        return requests.post(shop.url + "/api/telegram/webhook", json=update, timeout=60,
                             headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}).status_code
    except requests.RequestException:
        return 599


def send_timed(shop: Shop, body: dict, sent: dict[str, float]) -> int:
    """Post a pre-checkout update, noting when it left (the answer's time is read from the Bot API sandbox)."""
    sent[body["pre_checkout_query"]["id"]] = time.time()
    return post_update(shop, body)


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def measure(label: str, code: Path, code_name: str, runs: int, esimgo: EsimGoSandbox, telegram: TelegramSandbox,
            catalogue: Path, workdir: Path) -> Result:
    count, days = SIZES[label]
    result = Result(label, code_name)
    data_dir = workdir / f"{code_name}-{label}"
    data_dir.mkdir(parents=True)
    by_user = make_history(count, days)
    write_earlier_layout(by_user, data_dir / "orders.json")
    shutil.copy(catalogue, data_dir / "catalogue.json")
    # A shop that has run for a while has a full record of handled update ids (bot.SEEN_UPDATES_KEPT).
    seen = {str(10_000_000 + n): "2026-11-01T00:00:00+00:00" for n in range(5000)}
    (data_dir / "updates.json").write_text(json.dumps({"seen": seen}, indent=1))
    regular = max(by_user, key=lambda u: len(by_user[u]))  # the buyer with the longest history
    by_user.clear()
    esimgo.reset()
    esimgo.settings(balance=1_000_000)
    telegram.reset()
    try:
        shop = Shop(code, data_dir, esimgo, telegram)
    except RuntimeError as exc:
        result.error = str(exc)
        return result
    try:
        result.startup = shop.startup
        result.rss_mb = shop.rss()
        users = iter(range(FIRST_USER - 1, 0, -1))  # new buyers, below the history's ids
        Buyer(shop, next(users)).invoice()  # warm-up
        # A new buyer each time: the shop allows a buyer only a few invoices a minute.
        result.invoice = [timed(Buyer(shop, next(users)).invoice) for _ in range(max(runs, 10))]
        old = Buyer(shop, int(regular))
        result.my_orders = [timed(lambda: old.my_orders().raise_for_status()) for _ in range(30)]

        for _ in range(3):  # 8 pre-checkouts at once, three times
            buyers = [Buyer(shop, next(users)) for _ in range(8)]
            invoices = [b.invoice() for b in buyers]
            bodies = [updates.pre_checkout(b.user, i["order_id"], i["stars"])
                      for b, i in zip(buyers, invoices, strict=True)]
            sent: dict[str, float] = {}
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda body, sent=sent: send_timed(shop, body, sent), bodies))
            answers = {c.params.get("pre_checkout_query_id"): c.at for c in telegram.calls("answerPreCheckoutQuery")}
            result.pre_checkout_slowest = max(result.pre_checkout_slowest,
                                              *(answers[q] - t for q, t in sent.items() if q in answers))
            if len([q for q in sent if q in answers]) < 8:
                result.error = "a pre-checkout went unanswered"

        for _ in range(runs):  # one payment at a time
            buyer = Buyer(shop, next(users))
            invoice = buyer.invoice()
            post_update(shop, updates.pre_checkout(buyer.user, invoice["order_id"], invoice["stars"]))
            started = time.time()
            if post_update(shop, updates.successful_payment(buyer.user, invoice["order_id"], invoice["stars"])) >= 500:
                result.burst_5xx += 1
            (photo,) = telegram.wait_for("sendPhoto", chat_id=buyer.user, timeout=120)[:1]
            result.delivery.append(photo.at - started)

        buyers = [Buyer(shop, next(users)) for _ in range(8)]  # 8 payments at once
        invoices = [b.invoice() for b in buyers]
        bodies = [updates.successful_payment(b.user, i["order_id"], i["stars"])
                  for b, i in zip(buyers, invoices, strict=True)]
        started = time.time()
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda body: post_update(shop, body), bodies))
        result.burst_5xx += sum(1 for c in codes if c >= 500)
        deadline = started + 120
        while time.time() < deadline:
            photos = [c for b in buyers for c in telegram.calls("sendPhoto", chat_id=b.user)[:1]]
            if len(photos) == len(buyers):
                break
            time.sleep(0.02)
        result.burst_delivered = len(photos)
        result.rss_mb = max(result.rss_mb, shop.rss())
        if len(photos) == len(buyers):
            result.burst_seconds = max(p.at for p in photos) - started
            result.file_current = file_current_after(shop, data_dir, photos)
        shop.stop()
        again = Shop(code, data_dir, esimgo, telegram)  # a restart (pm2 reload) with this history
        result.restart = again.startup
        result.rss_mb = max(result.rss_mb, again.rss())
        shop = again
    except Exception as exc:  # report what was measured so far, with the reason
        result.error = f"{type(exc).__name__}: {exc}"[:200]
    finally:
        shop.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    return result


def file_current_after(shop: Shop, data_dir: Path, photos: list) -> float | None:
    """Seconds from the burst's last QR photo until /healthz says orders.json holds every change (the journal
    design); None for a store that writes orders.json on every change (nothing to wait for)."""
    last = max(p.at for p in photos)
    deadline = time.time() + 30
    while time.time() < deadline:
        storage = requests.get(shop.url + "/healthz", timeout=10).json().get("storage", {})
        if "unwritten_changes" not in storage:
            return None
        if storage["unwritten_changes"] == 0 and (data_dir / "orders.json").stat().st_mtime >= last:
            return time.time() - last
        time.sleep(0.02)
    return float("inf")


def table(results: list[Result]) -> str:
    rows = [
        ("orders in history", lambda r: f"{r.label} ({r.code})"),
        ("start on the earlier version's file, to /healthz 200", lambda r: f"{r.startup:.1f} s"),
        ("restart (pm2 reload), to /healthz 200", lambda r: "-" if r.restart is None else f"{r.restart:.1f} s"),
        ("create-invoice, median", lambda r: ms(r.invoice)),
        ("buyer's GET /api/orders, median", lambda r: ms(r.my_orders)),
        ("8 pre-checkouts at once, slowest", lambda r: ms([r.pre_checkout_slowest])),
        ("payment -> QR photo, median", lambda r: ms(r.delivery)),
        ("payment -> QR photo, p95", lambda r: ms(r.delivery, 0.95)),
        ("8 payments at once, all delivered", lambda r: f"{r.burst_seconds:.2f} s" if r.burst_seconds is not None
         else f"{r.burst_delivered} of 8 in 120 s"),
        ("webhook 5xx answers", lambda r: str(r.burst_5xx)),
        ("largest process, resident", lambda r: f"{r.rss_mb:.0f} MB"),
        ("orders.json current after burst", lambda r: "at once" if r.file_current is None
         else f"{r.file_current:.2f} s"),
    ]
    errors = [f"- {r.label} ({r.code}): {r.error}" for r in results if r.error]
    return "\n".join(markdown_table(rows, results) + errors)


def main() -> int:
    def baseline(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--baseline", metavar="REV", help="also measure this git commit (e.g. the version before)")
        parser.add_argument("--baseline-runs", type=int, default=5)

    args, labels = sized_arguments(__doc__, SIZES, "1k,10k,50k,20k-hot", 20, "sequential payments per history",
                                   baseline)
    codes = [("this", ROOT, args.runs)]
    with bench_setup("storage") as (workdir, esimgo, telegram, catalogue):
        try:
            if args.baseline:
                baseline = workdir / "baseline"
                subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(baseline), args.baseline],
                               check=True, capture_output=True)
                codes.insert(0, (args.baseline[:10], baseline, args.baseline_runs))
            results = []
            for label in labels:
                for name, code, runs in codes:
                    print(f"... {label} on {name}", file=sys.stderr, flush=True)
                    results.append(measure(label, code, name, runs, esimgo, telegram, catalogue, workdir))
            print(f"esimsdata storage benchmark, {os.cpu_count()} cores, vendors answering instantly on 127.0.0.1; "
                  f"{args.runs} sequential payments per history" +
                  (f" ({args.baseline_runs} on {args.baseline})" if args.baseline else ""))
            print(table(results))
        finally:
            if args.baseline:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(workdir / "baseline")],
                               capture_output=True)
    return 0


@contextmanager
def bench_setup(name: str) -> Iterator[tuple[Path, EsimGoSandbox, TelegramSandbox, Path]]:
    """A bench's work folder, both vendors as sandboxes on 127.0.0.1 and the catalogue on disk (`fetch_catalogue`);
    the app's logging off, as each bench prints only its table. All of it is gone afterwards."""
    logging.disable(logging.CRITICAL)
    workdir = Path(tempfile.mkdtemp(prefix=f"esimsdata-{name}-bench-"))
    esimgo, telegram = EsimGoSandbox().start(), TelegramSandbox().start()
    try:
        yield workdir, esimgo, telegram, fetch_catalogue(workdir, esimgo, telegram)
    finally:
        esimgo.stop()
        telegram.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def fetch_catalogue(workdir: Path, esimgo: EsimGoSandbox, telegram: TelegramSandbox) -> Path:
    """catalogue.json fetched once by the real Catalogue code, so each shop starts with it on disk."""
    from app import create_app
    from conftest import make_config
    from extensions import catalogue, store

    folder = workdir / "catalogue"
    folder.mkdir()
    app = create_app(make_config(folder, esimgo, telegram))
    assert catalogue(app).refresh(), catalogue(app).last_error
    store(app).close()
    return folder / "catalogue.json"


if __name__ == "__main__":
    threading.excepthook = lambda args: None  # sandbox threads ending at exit are not news
    raise SystemExit(main())
