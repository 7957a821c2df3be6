"""`GET /metrics` (SPEC §4): the counters of `metrics.py` from every process, and the states read from the orders
at scrape time (orders needing attention, the outbox backlog, the catalogue's age), in Prometheus text format.
Served to loopback without a proxy in between (a local scraper), or to a bearer of METRICS_TOKEN / ADMIN_TOKEN.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

import events
import extensions
import orders
from auth import token_matches
from errors import api_error
from metrics import NS

bp = Blueprint("metrics", __name__)


class StateCollector:
    """Gauges read from the orders at scrape time (any process can read them: the store is shared)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        store = extensions.store(self.app)
        open_orders = store.open_orders()
        # Open orders, and settled ones with a failed delivery or refund: a byte search, then only those decoded.
        marked = [o for key in ('"delivery_error"', '"refund_error"') for o in store.containing(key)]
        attention = {o["id"] for o in [*open_orders, *marked] if orders.attention(o)}
        yield GaugeMetricFamily(f"{NS}_orders_needing_attention", "Orders the owner must act on",
                                value=len(attention))
        waiting = events.backlog(events.troubles(store))
        yield GaugeMetricFamily(f"{NS}_outbox_pending", "Order events not yet delivered", value=waiting["pending"])
        yield GaugeMetricFamily(f"{NS}_outbox_oldest_pending_seconds", "Age of the oldest undelivered event",
                                value=waiting["oldest_seconds"])
        yield GaugeMetricFamily(f"{NS}_outbox_failed", "Order events given up or refused (send them again "
                                "from the admin console)", value=waiting["failed"])
        fetched = orders.parse_time(extensions.catalogue(self.app).state()["fetched_at"])
        yield GaugeMetricFamily(f"{NS}_catalogue_age_seconds", "Age of the plans shown to buyers (NaN: none)",
                                value=time.time() - fetched.timestamp() if fetched else float("nan"))


def _allowed() -> bool:
    # Loopback without a proxy's header is a local scraper; through nginx (X-Forwarded-For) a token is needed.
    local = request.remote_addr in ("127.0.0.1", "::1") and "X-Forwarded-For" not in request.headers
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    settings = extensions.settings()
    tokened = scheme.lower() == "bearer" and any(
        token_matches(token.strip(), expected) for expected in (settings.metrics_token, settings.admin_token))
    return local or tokened


@bp.get("/metrics")
def scrape() -> Any:
    if not _allowed():
        return api_error(403, "forbidden", "Metrics are served to loopback, or with Authorization: Bearer <token>.")
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        counts = CollectorRegistry()
        multiprocess.MultiProcessCollector(counts)  # every process's counts, added up
    else:
        counts = REGISTRY  # one process (tests, a plain run)
    body = generate_latest(counts)
    body += generate_latest(_state_registry(current_app._get_current_object()))
    return Response(body, mimetype=CONTENT_TYPE_LATEST.split(";")[0],
                    headers={"Content-Type": CONTENT_TYPE_LATEST})


def _state_registry(app: Any) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(app))
    return registry
