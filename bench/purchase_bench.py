#!/usr/bin/env python3
"""Benchmark of our own time on the paid path, with both vendors as instant local sandboxes:

- pre-checkout: webhook request received -> answerPreCheckoutQuery sent (Telegram allows 10 s);
- delivery: successful_payment received -> QR photo sent (eSIM Go order, assignments, QR render, sendPhoto).

    .venv/bin/python bench/purchase_bench.py [--runs 50] [--orders-in-file 2000]

`--orders-in-file` pre-fills orders.json so the figures include a realistically sized file under the lock.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # conftest: the test config

import updates  # noqa: E402
from app import create_app  # noqa: E402
from auth import sign_init_data  # noqa: E402
from conftest import BOT_TOKEN, WEBHOOK_SECRET, make_config  # noqa: E402
from sandboxes.esimgo import EsimGoSandbox  # noqa: E402
from sandboxes.telegram import TelegramSandbox  # noqa: E402
from storage import OrderStore  # noqa: E402


def summary(name: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p95 = ms[max(0, int(len(ms) * 0.95) - 1)]
    return (f"{name:<34} n={len(ms):<4} median {statistics.median(ms):7.1f} ms   p95 {p95:7.1f} ms   "
            f"max {ms[-1]:7.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--orders-in-file", type=int, default=2000)
    args = parser.parse_args()
    logging.disable(logging.INFO)
    esimgo, telegram = EsimGoSandbox().start(), TelegramSandbox().start()
    data_dir = Path(tempfile.mkdtemp(prefix="esimsdata-bench-"))
    if args.orders_in_file:
        store = OrderStore(data_dir / "orders.json", background=False)
        with store.transaction() as tx:
            for i in range(args.orders_in_file):
                tx.add({"id": f"old_{i}", "telegram_user_id": 10_000 + i % 500, "status": "completed",
                        "delivered_at": "2026-01-01T00:00:00+00:00", "bundle_name": "esim_1GB_7D_TH_V2", "stars": 314})
        store.compact()
    app = create_app(make_config(data_dir, esimgo, telegram))
    app.extensions["esimsdata"]["catalogue"].refresh()
    client = app.test_client()
    hook = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
    pre_checkout, pre_checkout_http, delivery = [], [], []
    for run in range(args.runs):
        user = 2_000_000 + run
        auth = "tma " + sign_init_data(BOT_TOKEN, {"id": user, "first_name": "Bench"})
        invoice = client.post("/api/telegram/stars/create-invoice", json={"bundle_name": "esim_1GB_7D_TH_V2"},
                              headers={"Authorization": auth}).get_json()
        started = time.time()
        client.post("/api/telegram/webhook", json=updates.pre_checkout(user, invoice["order_id"], 314), headers=hook)
        pre_checkout_http.append(time.time() - started)
        (answer,) = telegram.calls("answerPreCheckoutQuery", chat_id=None)[-1:]
        pre_checkout.append(answer.at - started)
        started = time.time()
        client.post("/api/telegram/webhook", json=updates.successful_payment(user, invoice["order_id"], 314),
                    headers=hook)
        (photo,) = telegram.wait_for("sendPhoto", chat_id=user, timeout=30)
        delivery.append(photo.at - started)
    print(f"esimsdata paid-path benchmark: {args.runs} purchases, {args.orders_in_file} older orders in the file, "
          "vendors answering instantly on 127.0.0.1")
    print(summary("pre-checkout answer sent", pre_checkout))
    print(summary("pre-checkout webhook answered", pre_checkout_http))
    print(summary("payment -> QR photo sent", delivery))
    esimgo.stop()
    telegram.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
