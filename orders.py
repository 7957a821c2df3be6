"""The order record: its fields, its statuses and the moves between them, and what a buyer may see of it
(SPEC §6). Storage of the records is `storage.py`; what drives the moves is the purchase code.

    awaiting_payment ──> paid ──> provisioning ──> completed ──(the owner refunds)──┐
          │  ^             │            │                                           v
          v  │(paid late)  └────> failed <┘ ─────────────────────────────────> refunded
        expired

Status only moves along these arrows; a move backwards is refused. Every move, and every other thing that
happens to an order (delivery, an owner's action), is written into the order's own `history`, with when and
who: the shop itself, Telegram's webhook or the admin (`acting_as`).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

AWAITING_PAYMENT = "awaiting_payment"
PAID = "paid"
PROVISIONING = "provisioning"
COMPLETED = "completed"
EXPIRED = "expired"
FAILED = "failed"
REFUNDED = "refunded"

TRANSITIONS: dict[str, frozenset[str]] = {
    AWAITING_PAYMENT: frozenset({PAID, EXPIRED}),
    # Telegram may still deliver a payment for an order we had expired: the money is real, so it is taken
    # forward to fulfilment (or a refund) rather than ignored.
    EXPIRED: frozenset({PAID}),
    PAID: frozenset({PROVISIONING, COMPLETED, FAILED}),
    PROVISIONING: frozenset({COMPLETED, FAILED}),
    FAILED: frozenset({REFUNDED}),
    COMPLETED: frozenset(),  # refunded only on the owner's word: see `move`
    REFUNDED: frozenset(),
}
STATUSES = frozenset(TRANSITIONS)

# How a buyer sees each status, in the bot and in the Mini App alike: a key of the shared dictionary
# static/i18n.json, and the tone the app colours it with ("wait", "ok", "bad", or plain).
STATUS_LABELS: dict[str, tuple[str, str]] = {
    AWAITING_PAYMENT: ("status_awaiting_payment", ""),
    PAID: ("status_preparing", "wait"),
    PROVISIONING: ("status_preparing", "wait"),
    COMPLETED: ("status_ready", "ok"),
    FAILED: ("status_refunding", "bad"),
    REFUNDED: ("status_refunded", ""),
    EXPIRED: ("status_expired", ""),
}

# The earlier version's field names (SPEC §6) that an operator may seed through POST /api/orders.
SEED_FIELDS = (
    "id", "telegram_user_id", "telegram_username", "orderReference", "bundle_name", "provider_product_id",
    "country_code", "country_name", "price", "cost", "stars", "currency", "payment_method", "source",
    "customer", "telegram_payment_charge_id", "status", "iccid", "matchingId", "smdpAddress",
    "created_at", "updated_at",
)
MONEY_FIELDS = ("price", "cost")

# What a buyer sees of their own order: no cost, no internal errors.
BUYER_FIELDS = (
    "id", "status", "bundle_name", "country_code", "country_name", "price", "stars", "currency",
    "created_at", "paid_at", "delivered_at", "iccid", "matchingId", "smdpAddress", "data_mb",
    "duration_days", "unlimited", "top_up_of", "plan_kind",
)


MAX_USD = Decimal(1_000_000)  # no eSIM costs this; larger numbers are typing errors or probes
MAX_STARS = 100_000_000


def is_digits(text: Any) -> bool:
    """ASCII digits only: `"²".isdigit()` is True, but no id or timestamp is written that way."""
    return isinstance(text, str) and text.isascii() and text.isdigit()


class OrderInputError(ValueError):
    """A seed field has a value an order cannot hold; the message names the field."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def parse_time(value: Any) -> datetime | None:
    """An order's ISO timestamp as an aware datetime (UTC if it carries no zone); None if absent or unreadable."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        moment.astimezone(UTC)  # a year-1 time with a zone east of UTC cannot be: treat it as unreadable
    except (ValueError, OverflowError):
        return None
    return moment


def new_order_id() -> str:
    """Our order id: the invoice payload (1-128 bytes), readable in logs, unguessable."""
    return f"ord_{datetime.now(UTC):%Y%m%d}_{secrets.token_hex(5)}"


def can_move(current: str, new: str) -> bool:
    return current == new or new in TRANSITIONS.get(current, frozenset())


def move(order: dict[str, Any], new: str, **fields: Any) -> None:
    """Set `order`'s status to `new` (with `fields`), or raise ValueError if that move goes backwards.

    Two moves are not in TRANSITIONS: a completed order becomes refunded when the owner refunds it in the admin
    console (`refund_by_owner`, which only the console sets), and any paid order becomes refunded when Telegram
    says its payment was refunded elsewhere (`refunded_elsewhere`, set only from Telegram's refunded_payment).
    """
    current = order.get("status", AWAITING_PAYMENT)
    # A refund made outside the shop (Telegram's refunded_payment) is a fact, whatever the order's state.
    outside = new == REFUNDED and current in (PAID, PROVISIONING, COMPLETED, FAILED) \
        and order.get("refunded_elsewhere") is True
    owners_refund = current == COMPLETED and new == REFUNDED and order.get("refund_by_owner") is True
    if not (can_move(current, new) or owners_refund or outside):
        raise ValueError(f"order {order.get('id')}: status {current} cannot become {new}")
    order.update(fields)
    order["status"] = new
    order["updated_at"] = now_iso()
    if current != new:
        record(order, "status", f"{current} → {new}")


# ---- history -------------------------------------------------------------------------------------

HISTORY_KEPT = 50  # an order sees a handful of events; this bounds one that is retried for days
_actor: ContextVar[str] = ContextVar("actor", default="shop")


@contextmanager
def acting_as(who: str) -> Iterator[None]:
    """Within this block, what happens to orders is recorded as done by `who` ("admin", "telegram"...)."""
    token = _actor.set(who)
    try:
        yield
    finally:
        _actor.reset(token)


def record(order: dict[str, Any], event: str, detail: str = "") -> None:
    """Append one event to the order's history: when, what, by whom, and a short detail for the owner."""
    entry = {"at": now_iso(), "event": event, "by": _actor.get()}
    if detail:
        entry["detail"] = str(detail)[:300]
    history = order.get("history")
    history = [*(history if isinstance(history, list) else []), entry]
    if len(history) > HISTORY_KEPT:  # keep how it began (created, paid) and the latest
        history = history[:2] + history[-(HISTORY_KEPT - 2):]
    order["history"] = history


# What happens next to an order (`next_step`): the buyer pays, then fulfilment buys, collects, delivers or refunds.
PAY, BUY, COLLECT, DELIVER, REFUND = "pay", "buy", "collect", "deliver", "refund"


def next_step(order: dict[str, Any]) -> str | None:
    """The next thing to happen to this order, or None when it is settled.

    Orders saved through the operator endpoint (`imported`) are records: nothing happens to them by itself.
    """
    if order.get("imported"):
        return None
    status = order.get("status")
    if status == AWAITING_PAYMENT:
        return PAY
    if status == PAID or (status == PROVISIONING and not order.get("orderReference")):
        return BUY
    if status == PROVISIONING:
        return COLLECT
    if status == COMPLETED and order.get("refunded_elsewhere"):
        return REFUND  # Telegram refunded it while the shop held it: settled as refunded (Fulfilment._step)
    if status == COMPLETED and not order.get("delivered_at") and not order.get("delivery_error"):
        return DELIVER
    if status == FAILED:
        return REFUND
    return None


def has_step_left(order: dict[str, Any]) -> bool:
    """Whether something is still to happen to this order: a payment, the purchase, delivery or a refund."""
    return next_step(order) is not None


def belongs_to(order: dict[str, Any] | None, user_id: Any) -> bool:
    """Whether `order` is this Telegram user's (ids compared as text: files hold both numbers and strings)."""
    return order is not None and str(order.get("telegram_user_id")) == str(user_id)


def new(telegram_user_id: int, status: str = AWAITING_PAYMENT, **fields: Any) -> dict[str, Any]:
    """A new order record with the fields every order has (SPEC §6); `fields` add to or override them."""
    now = now_iso()
    order: dict[str, Any] = {
        "id": new_order_id(), "telegram_user_id": telegram_user_id, "status": status, "currency": "XTR",
        "payment_method": "telegram_stars", "source": "telegram_mini_app", "created_at": now, "updated_at": now,
    }
    order.update(fields)
    record(order, "created", str(order.get("status")))
    return order


def is_settled(order: dict[str, Any]) -> bool:
    """Nothing is left to happen to this order (the worker never needs to look at it again): no step, and no
    event waiting to be sent to the owner's backend (events.py)."""
    return not has_step_left(order) and not any(
        isinstance(e, dict) and e.get("state") == "pending" for e in order.get("outbox") or [])


def can_pay(order: dict[str, Any]) -> bool:
    """Whether a Stars payment may be taken for this order now (its invoice is ours and still open)."""
    return order.get("status") == AWAITING_PAYMENT and not order.get("imported")


def buyer_view(order: dict[str, Any]) -> dict[str, Any]:
    """The part of an order its buyer may see, with its status label (a dictionary key) and tone."""
    view = {k: order[k] for k in BUYER_FIELDS if k in order}
    view["status_label"], view["status_tone"] = STATUS_LABELS.get(str(order.get("status")), (None, ""))
    return view


def clean_seed(body: Any) -> dict[str, Any]:
    """Validate an operator's seed body: only known fields, with the types an order holds."""
    if not isinstance(body, dict):
        raise OrderInputError("The body must be a JSON object of order fields.")
    unknown = sorted(set(body) - set(SEED_FIELDS))
    if unknown:
        raise OrderInputError(f"Unknown order fields: {', '.join(unknown)}.")
    clean: dict[str, Any] = {}
    for key, value in body.items():
        if value is None:
            continue
        if key == "telegram_user_id":
            text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
            if not is_digits(text) or len(text) > 16 or not 0 < int(text) < 2**53:
                raise OrderInputError("telegram_user_id must be a numeric Telegram user id.")
            clean[key] = int(text)
        elif key in MONEY_FIELDS:
            try:
                amount = Decimal(str(value)) if isinstance(value, (str, int, float)) else None
            except InvalidOperation:
                amount = None
            if isinstance(value, bool) or amount is None or not amount.is_finite() or not 0 <= amount < MAX_USD:
                raise OrderInputError(f"{key} must be a number of US dollars from 0 to {MAX_USD:,}.")
            clean[key] = amount.quantize(Decimal("0.0001")).normalize() if amount else Decimal(0)
        elif key == "stars":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_STARS:
                raise OrderInputError(f"stars must be a whole number from 0 to {MAX_STARS:,}.")
            clean[key] = value
        elif key == "status":
            if not isinstance(value, str) or value not in STATUSES:
                raise OrderInputError(f"status must be one of: {', '.join(sorted(STATUSES))}.")
            clean[key] = value
        elif key == "customer":
            flat = isinstance(value, dict) and all(
                isinstance(k, str) and (v is None or isinstance(v, (str, int, float, bool))) for k, v in value.items())
            if not (flat or isinstance(value, str)):
                raise OrderInputError("customer must be a string or an object of plain values (no nesting).")
            clean[key] = value
        else:
            if not isinstance(value, (str, int)) or isinstance(value, bool):
                raise OrderInputError(f"{key} must be a string.")
            clean[key] = str(value)
    if "id" in clean and not (1 <= len(clean["id"].encode()) <= 128):
        raise OrderInputError("id must be 1 to 128 bytes (it is the invoice payload).")
    return clean


# ---- the owner's view ----------------------------------------------------------------------------

# The admin console's words for each status (the owner reads English; buyers get STATUS_LABELS' texts).
STATUS_TEXT: dict[str, str] = {
    AWAITING_PAYMENT: "Awaiting payment", PAID: "Paid", PROVISIONING: "Provisioning", COMPLETED: "Completed",
    FAILED: "Failed, refunding", REFUNDED: "Refunded", EXPIRED: "Expired",
}


def attention(order: dict[str, Any]) -> str | None:
    """Why the owner must act on this order, or None: a paid order the shop could not settle in time (it
    could not reconcile with eSIM Go, or kept failing), a delivery that failed, a refund that failed."""
    status = order.get("status")
    if status == COMPLETED and order.get("delivery_error") and not order.get("delivered_at"):
        return f"Delivery failed: {order['delivery_error']}"
    if order.get("refund_error") and status in (FAILED, COMPLETED, PAID):
        return f"Refund failed: {order['refund_error']}"
    flag = order.get("needs_attention")
    if flag and has_step_left(order):
        return str(flag.get("reason") if isinstance(flag, dict) else flag) or f"Still {status}"
    return None


def leased(order: dict[str, Any], now: datetime | None = None) -> bool:
    """Whether a process holds this order right now (it is taking a step: buying, collecting, refunding)."""
    until = parse_time(order.get("lease_until"))
    return until is not None and until > (now or datetime.now(UTC))


def owner_actions(order: dict[str, Any]) -> dict[str, bool]:
    """What the admin console may do with this order now."""
    status = order.get("status")
    has_esim = bool(order.get("iccid") and (order.get("matchingId") or order.get("top_up_of")))
    buyer = is_digits(str(order.get("telegram_user_id") or ""))  # someone to send to and refund
    paid_by_stars = buyer and bool(order.get("telegram_payment_charge_id"))
    return {
        "resend": status == COMPLETED and has_esim and buyer,
        "retry": not order.get("imported") and (
            status in (PAID, PROVISIONING, FAILED)
            or (status == COMPLETED and not order.get("delivered_at") and bool(order.get("delivery_error")))),
        # Never while eSIM Go may be buying it: a refund then could leave the shop paying for a free eSIM.
        "refund": paid_by_stars and (status in (COMPLETED, FAILED) or (
            status == PAID and not order.get("esimgo_unsure") and not order.get("orderReference"))),
    }
