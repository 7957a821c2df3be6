"""The shop's counters and latencies (Prometheus, through the official client); `metrics_api.py` serves them.

Counts are kept by the process where things happen (web workers: invoices, payments, webhooks; the worker:
completions, refunds, outbox deliveries). Under gunicorn and PM2 every process writes them into one folder
(`PROMETHEUS_MULTIPROC_DIR`, set by gunicorn.conf.py and scripts/worker before anything imports the client),
and a scrape adds them up. Nothing here imports Flask: the eSIM Go client counts its calls here too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import Counter, Histogram

NS = "esimsdata"
INVOICES = Counter(f"{NS}_invoices", "Stars invoices created")
PAYMENTS = Counter(f"{NS}_payments", "Stars payments recorded (each charge once)")
COMPLETIONS = Counter(f"{NS}_completions", "eSIMs delivered to their buyer")
REFUNDS = Counter(f"{NS}_refunds", "Stars refunded", ["by"])  # shop (could not fulfil), owner, elsewhere
FAILURES = Counter(f"{NS}_failures", "Paid orders the shop could not fulfil", ["reason"])
ESIMGO = Counter(f"{NS}_esimgo_requests", "Calls to eSIM Go", ["endpoint", "outcome"])
ESIMGO_SECONDS = Histogram(f"{NS}_esimgo_request_seconds", "eSIM Go call latency", ["endpoint"],
                           buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30))
WEBHOOK_SECONDS = Histogram(f"{NS}_webhook_seconds", "Telegram update handling time", ["kind"],
                            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10))
PRE_CHECKOUT_SECONDS = Histogram(f"{NS}_pre_checkout_seconds", "Time to answer a pre-checkout query "
                                 "(Telegram allows 10 s)", buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10))
EVENT_DELIVERIES = Counter(f"{NS}_event_deliveries", "POSTs of order events to the owner's backend", ["outcome"])


@contextmanager
def timed(histogram: Any) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        histogram.observe(time.perf_counter() - started)


def esimgo_endpoint(method: str, path: str) -> str:
    """A call's endpoint without its ids ("GET /esims/{iccid}/bundles"), so the labels stay few."""
    parts = ["{id}" if any(ch.isdigit() for ch in part) and part not in ("v2.4",) else part
             for part in path.strip("/").split("/")]
    return f"{method} /{'/'.join(parts)}"
