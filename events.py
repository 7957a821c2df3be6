"""Signed order events to the owner's backend (SPEC §4; the receiver's side: docs/events.md).

When BACKEND_WEBHOOK_URL is set, three moments of an order become events: `telegram_stars_payment_succeeded`
(a payment recorded), `esim_order_completed` (the eSIM delivered) and `telegram_stars_payment_refunded` (Stars
went back). Each is written into the order's own `outbox` list by `Outbox.add`, inside the same store change as
the moment itself: one journal line holds both, so a crash can neither drop an event nor invent one. An order
with an undelivered event stays among the store's open orders, which the worker reads every round.

The worker (`Outbox.deliver_due`) POSTs each event's canonical JSON (keys sorted, `,`/`:` separators, UTF-8
unescaped), signed with `X-Webhook-Signature` (hex HMAC-SHA256 of exactly those bytes keyed with
BACKEND_WEBHOOK_SECRET), with `X-Service-Token`, `Idempotency-Key` and `X-Event-Id`. One order's events go in
the order they happened. 2xx with `"success": true` or an empty body, and 409 ("already processed"), are done;
401/403 stop that event and alert the admins; anything else is tried again with backoff for 24 hours.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

import metrics
import orders
from storage import OrderStore

log = logging.getLogger("events")

VERSION = "1.0"
PAYMENT_SUCCEEDED = "telegram_stars_payment_succeeded"
ORDER_COMPLETED = "esim_order_completed"
PAYMENT_REFUNDED = "telegram_stars_payment_refunded"
TIMEOUT = 10.0
GIVE_UP_AFTER = timedelta(hours=24)
SENDING_LEASE = timedelta(seconds=60)  # longer than one POST's timeout: no two workers send one event at once
SENT_KEPT = 10  # delivered events an order keeps (without their bodies), for the admin console


def canonical(body: dict[str, Any]) -> bytes:
    """The exact bytes that are signed and sent."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(raw: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def pending(order: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in order.get("outbox") or [] if isinstance(e, dict) and e.get("state") == "pending"]


def troubles(store: OrderStore) -> list[dict[str, Any]]:
    """Events not delivered (waiting, or failed for good), oldest first, as the admin console lists them."""
    holders = {o["id"]: o for o in store.open_orders() if pending(o)}
    holders.update({o["id"]: o for o in store.containing('"state": "failed"')})
    shown = [{"id": e.get("id"), "order_id": order_id, "event": e.get("event"), "state": e.get("state"),
              "attempts": e.get("attempts"), "created_at": e.get("created_at"), "next_at": e.get("next_at"),
              "last_error": e.get("last_error")}
             for order_id, o in holders.items() for e in o.get("outbox") or []
             if isinstance(e, dict) and e.get("state") in ("pending", "failed")]
    return sorted(shown, key=lambda e: str(e["created_at"]))


def backlog(waiting: list[dict[str, Any]], now: datetime | None = None) -> dict[str, Any]:
    """What `troubles()` found, counted: how many wait, how old the oldest is (seconds), how many failed."""
    now = now or datetime.now(UTC)
    created = [orders.parse_time(e["created_at"]) for e in waiting if e["state"] == "pending"]
    return {"pending": len(created), "failed": sum(e["state"] == "failed" for e in waiting),
            "oldest_seconds": round(max(((now - t).total_seconds() for t in created if t), default=0))}


def body_for(order: dict[str, Any], event: str, event_id: str, now: datetime) -> dict[str, Any]:
    """An event's fields: the seed's (event, user_id, amount_stars, currency, telegram_charge_id,
    invoice_payload, timestamp) and ours (event_id, order_id, bundle_name, country_code, price_usd, iccid)."""
    user = str(order.get("telegram_user_id") or "")
    body: dict[str, Any] = {
        "event": event, "event_id": event_id, "order_id": order.get("id"),
        "user_id": int(user) if orders.is_digits(user) else None,
        "amount_stars": order.get("stars"), "currency": "XTR",
        "telegram_charge_id": order.get("telegram_payment_charge_id"),
        "invoice_payload": canonical({"order_id": order.get("id")}).decode(),
        "timestamp": int(now.timestamp()), "bundle_name": order.get("bundle_name"),
        "country_code": order.get("country_code"),
        "price_usd": str(order["price"]) if order.get("price") is not None else None,
    }
    if event == ORDER_COMPLETED:
        body["iccid"] = order.get("iccid")
    if order.get("promo_code"):  # sold with a discount: price_usd is what was charged
        body.update(promo_code=order["promo_code"], discount_usd=str(order.get("discount_usd") or "0.00"))
    return body


class Outbox:
    """The events of one shop: queued into orders by the code that changes them, delivered by the worker."""

    def __init__(self, url: str, secret: str, service_token: str, alert: Callable[..., None] | None = None,
                 first_retry: float = 10.0) -> None:
        self.url, self.secret, self.service_token = url, secret, service_token
        self.first_retry = first_retry  # seconds; doubled after each failure, at most an hour
        self.alert = alert  # alert(key, order_id, **values): the admins' Telegram alert
        self.session = requests.Session()

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def add(self, order: dict[str, Any], event: str) -> None:
        """Queue `event` on `order`; call inside the store change that makes it happen. Nothing without a URL."""
        if not self.enabled:
            return
        now = datetime.now(UTC)
        event_id = uuid.uuid4().hex
        order["outbox"] = [*(order.get("outbox") or []), {
            "id": event_id, "event": event, "state": "pending", "attempts": 0,
            "created_at": now.isoformat(timespec="seconds"), "next_at": now.isoformat(timespec="seconds"),
            "body": canonical(body_for(order, event, event_id, now)).decode(),
        }]

    # ---- delivery (the worker's thread) ------------------------------------------------------------

    def run(self, store: OrderStore, stop: threading.Event, poll: float) -> None:
        """The worker's delivery loop, in a thread of its own: a slow or dead backend never holds up eSIMs."""
        while not stop.is_set():
            try:
                self.deliver_due(store, stop)
            except Exception:  # a bad round (storage busy) must not end the loop
                log.exception("events: delivery round failed")
            stop.wait(poll)

    def deliver_due(self, store: OrderStore, stop: threading.Event | None = None) -> int:
        """Send every event that is due, each order's in their order; how many were delivered."""
        if not self.enabled:
            return 0
        delivered = 0
        for order in store.open_orders():
            if not _first_due(order, datetime.now(UTC)):
                continue  # decided on the copy: an order with nothing due costs no lock
            while not (stop and stop.is_set()):
                outcome = self._send_next(store, order["id"])
                if outcome != "delivered":
                    break  # wait, failed, or another worker has it: this order's later events wait too
                delivered += 1
        return delivered

    def _send_next(self, store: OrderStore, order_id: str) -> str:
        claimed: list[dict[str, Any]] = []

        def claim(current: dict[str, Any]) -> None:  # under the lock: this worker sends it, no other
            entry = _first_due(current, datetime.now(UTC))
            if entry is not None:
                entry["sending_until"] = (datetime.now(UTC) + SENDING_LEASE).isoformat(timespec="seconds")
                claimed.append(dict(entry))
        store.update(order_id, claim)
        if not claimed:
            return "wait"
        entry = claimed[0]
        outcome, error = self._post(entry)
        metrics.EVENT_DELIVERIES.labels(outcome).inc()
        now = datetime.now(UTC)
        given_up: list[bool] = []

        def settle(current: dict[str, Any]) -> None:
            for stored in current.get("outbox") or []:
                if isinstance(stored, dict) and stored.get("id") == entry["id"]:
                    given_up.append(_settle(stored, outcome, error, now, self.first_retry))
            _trim(current)
        store.update(order_id, settle)
        if outcome == "refused" and self.alert:
            self.alert("event_refused", order_id, event=entry["event"], error=error)
        elif any(given_up) and self.alert:
            self.alert("event_given_up", order_id, event=entry["event"], error=error)
        return outcome

    def _post(self, entry: dict[str, Any]) -> tuple[str, str]:
        """POST one event: ("delivered" | "refused" | "retry", why)."""
        raw = entry["body"].encode()
        headers = {"Content-Type": "application/json; charset=utf-8", "X-Webhook-Signature": sign(raw, self.secret),
                   "X-Service-Token": self.service_token, "User-Agent": f"esimsdata/{VERSION}",
                   "Idempotency-Key": entry["id"], "X-Event-Id": entry["id"]}
        try:
            # No redirects: one would turn the POST into a bodiless GET and carry our token elsewhere.
            response = self.session.post(self.url, data=raw, headers=headers, timeout=TIMEOUT, allow_redirects=False)
        except Exception as exc:  # any failure to send is a retry; the library's text names the URL: not kept
            return "retry", type(exc).__name__
        status = response.status_code
        if status == 409:
            return "delivered", "409: already processed"
        if status in (401, 403):
            return "refused", f"{status}: the backend refused our signature or token"
        if 300 <= status < 400:
            return "refused", f"{status}: BACKEND_WEBHOOK_URL redirects (to {response.headers.get('Location', '?')})"
        if 200 <= status < 300:
            try:
                answer = response.json() if response.content.strip() else {}
            except ValueError:
                answer = {}
            if isinstance(answer, dict) and str(answer.get("success", True)).lower() == "false":
                return "retry", f"{status} with success false: {str(answer)[:200]}"
            return "delivered", ""
        return "retry", f"HTTP {status}"

    # ---- the owner's view and "send again" -----------------------------------------------------------

    def send_again(self, store: OrderStore, event_id: str) -> dict[str, Any] | None:
        """Put a failed (or waiting) event back to be sent now; the order, or None if no order has it."""
        if not re.fullmatch(r"[0-9a-f]{32}", event_id):
            return None
        found = [o for o in store.containing(event_id)
                 if any(isinstance(e, dict) and e.get("id") == event_id for e in o.get("outbox") or [])]
        if not found:
            return None

        outcome: list[str] = []

        def again(current: dict[str, Any]) -> None:
            now = orders.now_iso()
            for entry in current.get("outbox") or []:
                if not isinstance(entry, dict) or entry.get("id") != event_id:
                    continue
                sending = orders.parse_time(entry.get("sending_until"))
                if entry.get("state") == "sent" or not entry.get("body"):
                    outcome.append("sent")
                elif sending and sending > datetime.now(UTC):
                    outcome.append("sending")
                else:
                    entry.update(state="pending", attempts=0, next_at=now, retry_since=now)
                    orders.record(current, "event_again", entry.get("event", ""))
                    outcome.append("again")
            for entry in pending(current):  # the ones it held back get a fresh day too
                entry["retry_since"] = now
        order = store.update(found[0]["id"], again)
        if outcome and outcome[0] != "again":
            raise ValueError("It was delivered already." if outcome[0] == "sent" else "It is being sent right now.")
        return order


def _settle(entry: dict[str, Any], outcome: str, error: str, now: datetime, first_retry: float) -> bool:
    """Write a POST's outcome on its event; True when this failure is the one that gives it up (after a day)."""
    entry["attempts"] = int(entry.get("attempts") or 0) + 1
    entry["sending_until"] = None
    entry["last_error"] = error or None
    if outcome == "delivered":
        entry.update(state="sent", sent_at=now.isoformat(timespec="seconds"))
        entry.pop("body", None)  # delivered: the order keeps a line, not the payload
        return False
    since = orders.parse_time(entry.get("retry_since") or entry.get("created_at")) or now
    if outcome == "refused" or now - since > GIVE_UP_AFTER:
        entry["state"] = "failed"
        return outcome != "refused"
    delay = min(first_retry * 2 ** (entry["attempts"] - 1), 3600)  # 10 s, 20 s, 40 s ... at most an hour apart
    entry["next_at"] = (now + timedelta(seconds=delay)).isoformat(timespec="seconds")
    return False


def _first_due(order: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    """The order's first undelivered event if it may be sent now (not waiting, not being sent, not held back by
    an earlier one that failed)."""
    unsent = [e for e in order.get("outbox") or [] if isinstance(e, dict) and e.get("state") != "sent"]
    if not unsent or unsent[0].get("state") != "pending":
        return None
    entry = unsent[0]
    due = orders.parse_time(entry.get("next_at")) or now
    sending = orders.parse_time(entry.get("sending_until"))
    return entry if due <= now and (sending is None or sending <= now) else None


def _trim(order: dict[str, Any]) -> None:
    outbox = [e for e in order.get("outbox") or [] if isinstance(e, dict)]
    sent = [e for e in outbox if e.get("state") == "sent"]
    drop = {id(e) for e in sent[:-SENT_KEPT]} if len(sent) > SENT_KEPT else set()
    order["outbox"] = [e for e in outbox if id(e) not in drop]
