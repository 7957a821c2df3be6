"""After the sale (SPEC §6): how much data an eSIM has used and has left, and what its buyer is told about it.

- `POST /api/esimgo/callback`: eSIM Go's V3 callbacks. The signature (HMAC-SHA256 of the raw body keyed with the
  API key, in `X-Signature-SHA256`, hex or base64: reference/esimgo.md §2) is checked before anything is parsed.
- `refresh()`: when the last report is older than `STALE`, eSIM Go is asked (`GET /esims/{iccid}/bundles`), at
  most once per eSIM per `STALE` across every process.
- `apply()`: one reading onto the eSIM's order. Usage never moves backwards within a bundle, and a late report of
  an older bundle never replaces a newer one's (a top-up is a new bundle).
- The buyer's messages: at 80 % and at 100 % used, once per bundle; one day before a bundle ends, a reminder
  (`remind_due`, the worker's), never twice, never for a bundle used up or already followed by a top-up.

Usage lives on the order that bought the eSIM (a top-up's page shows that eSIM's usage), as `usage`:
{bundle, assignment, total_bytes, remaining_bytes, used_bytes, unlimited, starts_at, ends_at, measured_at,
source}, whole numbers only (the store reads fractions back as Decimal). Quantities are bytes; 1 GB = 1000 MB =
10**9 bytes, as eSIM Go counts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, jsonify, request

import extensions
import orders
from botapi import BotApi, TelegramError, TelegramRetryable, app_button
from errors import api_error
from esimgo import EsimGoClient, EsimGoError
from messages import app_text, plan_title, t
from storage import OrderStore

log = logging.getLogger("usage")

bp = Blueprint("usage", __name__, url_prefix="/api/esimgo")

STALE = timedelta(minutes=5)  # older reports are refreshed from eSIM Go when the buyer looks
ALERTS = (80, 100)  # percent used at which the buyer is told, once per bundle
REMIND_BEFORE = timedelta(days=1)
BUNDLES_REMEMBERED = 10  # alert marks kept per eSIM (one per bundle it has had)
USED_STATES = ("depleted", "expired", "revoked", "lapsed")


def signature_valid(raw: bytes, signature: str | None, api_key: str) -> bool:
    """eSIM Go's callback signature: HMAC-SHA256 of the raw body with the API key, as hex or base64."""
    if not signature or not api_key:
        return False
    digest = hmac.new(api_key.encode(), raw, hashlib.sha256).digest()
    given = signature.strip()
    return (hmac.compare_digest(given.lower().encode(), digest.hex().encode())  # hex in either case
            or hmac.compare_digest(given.encode(), base64.b64encode(digest)))


@dataclass(frozen=True)
class Reading:
    """What eSIM Go says about one bundle on an eSIM, at one moment."""

    bundle: str
    assignment: str  # which bundle on the eSIM (its assignment reference): a top-up is a new one
    total_bytes: int | None
    remaining_bytes: int | None
    unlimited: bool
    starts_at: str | None = None  # when the bundle started (its first use), as eSIM Go's callbacks say
    ends_at: str | None = None
    referenced: bool = True  # False: a report naming the bundle only (FirstUse has no reference)
    estimated: bool = False  # True: eSIM Go did not say the dates; counted from the assignment (a refresh)

    @classmethod
    def from_callback(cls, bundle: Any) -> Reading:
        """From a V3 callback's `bundle`; ValueError if it is not one."""
        if not isinstance(bundle, dict):
            raise ValueError("no bundle object")
        reference = bundle.get("reference") or bundle.get("id")
        return cls(bundle=str(bundle.get("name") or ""),
                   assignment=str(reference or bundle.get("name") or ""), referenced=bool(reference),
                   total_bytes=_bytes(bundle.get("initialQuantity")),
                   remaining_bytes=_bytes(bundle.get("remainingQuantity")),
                   unlimited=bundle.get("unlimited") is True,
                   starts_at=_iso(bundle.get("startTime")), ends_at=_iso(bundle.get("endTime")))


MAX_BYTES = 10**15  # a petabyte: no bundle comes near it; larger numbers are not usage


def _bytes(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not math.isfinite(value)) or not 0 <= value < MAX_BYTES:
        raise ValueError(f"a quantity must be a number of bytes, got {str(value)[:40]}")
    return int(value)


def _iso(value: Any) -> str | None:
    moment = orders.parse_time(value)
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else None


# ---- the record ------------------------------------------------------------------------------------


def esim_order(store: OrderStore, iccid: str) -> dict[str, Any] | None:
    """The order that bought this eSIM (where its usage lives), or None for an eSIM that is not ours."""
    newest = store.get_by_iccid(iccid)
    if newest is None or not newest.get("top_up_of"):
        return newest
    bought = [o for o in store.orders_for_user(newest.get("telegram_user_id"))
              if o.get("iccid") == iccid and not o.get("top_up_of")]
    return bought[-1] if bought else newest


def _same_bundle(usage: dict[str, Any], reading: Reading) -> bool:
    if usage.get("assignment") == reading.assignment:
        return True
    # A report that names only the bundle (FirstUse) is about the stored one when the name and start agree.
    return not reading.referenced and usage.get("bundle") == reading.bundle and (
        not reading.starts_at or reading.starts_at == usage.get("starts_at"))


def apply(order: dict[str, Any], reading: Reading, source: str) -> int | None:
    """Put `reading` on the eSIM's order (under the store's lock); the alert level newly reached, if any.

    Within one bundle use only grows: quantities a report lacks are kept, and the dates eSIM Go sent are never
    replaced by estimated ones. A different bundle replaces the stored one only when it is newer: never one
    the eSIM has moved past, never one without its start when a bundle is stored (a late report of an older
    bundle), and never one that started before the stored one did.
    """
    usage = order.get("usage") if isinstance(order.get("usage"), dict) else {}
    same = bool(usage) and _same_bundle(usage, reading)
    if usage and not same:
        past = order.get("usage_past") if isinstance(order.get("usage_past"), list) else []
        known_start = usage.get("starts_at") and not usage.get("estimated")
        if reading.assignment in past or (source == "callback" and (
                not reading.starts_at or (known_start and reading.starts_at < usage["starts_at"]))):
            return None
        order["usage_past"] = [*past, usage.get("assignment")][-BUNDLES_REMEMBERED:]
    kept = usage if same else {}
    total = reading.total_bytes if reading.total_bytes is not None else kept.get("total_bytes")
    remaining = reading.remaining_bytes if reading.remaining_bytes is not None else kept.get("remaining_bytes")
    if isinstance(remaining, int) and isinstance(kept.get("remaining_bytes"), int):
        remaining = min(remaining, kept["remaining_bytes"])  # reports arrive out of order; use never shrinks
    if isinstance(remaining, int) and isinstance(total, int):
        remaining = max(0, min(remaining, total))
    used = total - remaining if isinstance(total, int) and isinstance(remaining, int) else None
    dates_known = kept and not kept.get("estimated") and kept.get("ends_at")
    take_dates = not (reading.estimated and dates_known)
    order["usage"] = {
        "bundle": reading.bundle or kept.get("bundle"),
        "assignment": kept.get("assignment") if same and not reading.referenced else reading.assignment,
        "total_bytes": total, "remaining_bytes": remaining, "used_bytes": used,
        "unlimited": reading.unlimited or bool(kept.get("unlimited")),
        "starts_at": (reading.starts_at if take_dates else None) or kept.get("starts_at"),
        "ends_at": (reading.ends_at if take_dates else None) or kept.get("ends_at"),
        "estimated": reading.estimated if take_dates and reading.ends_at else bool(kept.get("estimated")),
        "measured_at": orders.now_iso(), "source": source,
    }
    percent = _percent(used, total)
    if order["usage"]["unlimited"] or percent is None:
        return None
    assignment = order["usage"]["assignment"]
    marks = order.get("usage_alerts") if isinstance(order.get("usage_alerts"), dict) else {}
    sent = marks.get(assignment, [])
    reached = [level for level in ALERTS if percent >= level and level not in sent]
    if not reached:
        return None
    marks[assignment] = sorted({*sent, *reached})
    order["usage_alerts"] = dict(list(marks.items())[-BUNDLES_REMEMBERED:])
    orders.record(order, "usage_alert", f"{max(reached)} % used")
    return max(reached)  # a jump straight to 100 % is one message, not two


def _percent(used: Any, total: Any) -> float | None:
    if not isinstance(used, int) or not isinstance(total, int) or total <= 0:
        return None
    return min(100.0, round(100 * used / total, 1))


def for_buyer(order: dict[str, Any], store: OrderStore) -> dict[str, Any] | None:
    """The usage a buyer sees with this order (a top-up shows its eSIM's), with the days left."""
    source = order
    if order.get("top_up_of"):
        source = esim_order(store, order["top_up_of"]) or order
    usage = source.get("usage")
    if not isinstance(usage, dict):
        return None
    ends = orders.parse_time(usage.get("ends_at"))
    days_left = None
    if ends is not None:
        days_left = max(0, math.ceil((ends - datetime.now(UTC)).total_seconds() / 86400))
    keys = ("total_bytes", "used_bytes", "remaining_bytes", "unlimited", "ends_at", "measured_at")
    return {**{k: usage.get(k) for k in keys}, "percent": _percent(usage.get("used_bytes"), usage.get("total_bytes")),
            "days_left": days_left}


# ---- telling the buyer -------------------------------------------------------------------------------


def topup_url(public_url: str, order: dict[str, Any]) -> str:
    """The Mini App's plans for this eSIM's destination, carrying the eSIM on to checkout as a top-up."""
    code = str(order.get("country_code") or "")
    kind = order.get("plan_kind") or ("local" if len(code) == 2 else "")
    path = {"local": f"/country/{code.upper()}", "regional": f"/region/{code}", "global": "/global"}.get(kind)
    return f"{public_url}{path}?iccid={order['iccid']}" if path else f"{public_url}/esim/{order['id']}"


def tell(bot: BotApi, public_url: str, order: dict[str, Any], key: str) -> bool:
    """One after-sale message to the buyer, in their language, with the button that tops this eSIM up; False
    when Telegram did not take it for a reason that may pass (the caller lets it be sent again)."""
    lang = order.get("language") or "en"
    try:
        bot.send_text(int(order["telegram_user_id"]), t(key, lang, plan=plan_title(order, lang)),
                      [app_button(app_text("topup", lang), topup_url(public_url, order))], html=True)
    except TelegramRetryable as exc:
        log.warning("order %s: %s not sent, will be again: %s", order.get("id"), key, exc)
        return False
    except (TelegramError, KeyError, ValueError) as exc:  # blocked, or no buyer to write to: trying cannot help
        log.warning("order %s: %s not sent: %s", order.get("id"), key, exc)
    return True


def take(store: OrderStore, bot: BotApi, public_url: str, owner: dict[str, Any], reading: Reading,
         source: str) -> bool:
    """Record a reading on the eSIM's order (`esim_order`) and send the alert it reaches."""
    reached: list[int] = []
    updated = store.update(owner["id"], lambda o: reached.extend(
        [level] if (level := apply(o, reading, source)) else []))
    if updated is not None and reached:  # marked under the lock: a duplicate delivered meanwhile sends nothing
        if not tell(bot, public_url, updated, f"usage_{reached[0]}"):
            store.update(owner["id"], lambda o: _unmark(o, updated["usage"]["assignment"], reached[0]))
    return True


def _unmark(order: dict[str, Any], assignment: str, level: int) -> None:
    """The alert was not sent: the next report (or refresh) reaching it sends it."""
    marks = order.get("usage_alerts") or {}
    marks[assignment] = [mark for mark in marks.get(assignment, []) if mark != level]


# ---- eSIM Go's callbacks -----------------------------------------------------------------------------


@bp.post("/callback")
def callback() -> Any:
    raw = request.get_data(cache=True)  # the signature covers these exact bytes: checked before parsing
    settings = extensions.settings()
    if not signature_valid(raw, request.headers.get("X-Signature-SHA256"), settings.esimgo_api_key):
        log.warning("eSIM Go callback refused: missing or wrong X-Signature-SHA256 (from %s)", request.remote_addr)
        return api_error(401, "bad_signature", "X-Signature-SHA256 does not sign this body.")
    try:
        body = json.loads(raw)
    except ValueError:
        return api_error(400, "bad_json", "The body is not JSON.")
    if not isinstance(body, dict):
        return api_error(400, "bad_callback", "The body must be a JSON object.")
    kind = str(body.get("alertType") or body.get("event") or "")
    iccid = str(body.get("iccid") or "")
    if kind not in ("Utilisation", "FirstUse"):
        log.info("eSIM Go callback %r for %s: not a usage report; noted only", kind[:40], iccid[:30])
        return jsonify(ok=True, used=False)
    store = extensions.store()
    owner = esim_order(store, iccid)
    if owner is None:
        # Answered 200 all the same: eSIM Go would otherwise keep sending it.
        log.info("eSIM Go callback for an eSIM that is not ours (%s); nothing stored", iccid[:30])
        return jsonify(ok=True, used=False)
    try:
        reading = Reading.from_callback(body.get("bundle"))
    except ValueError as exc:
        log.warning("eSIM Go callback for %s not understood: %s", iccid[:30], exc)
        return api_error(400, "bad_callback", f"The usage report could not be read: {exc}")
    take(store, extensions.get("bot"), settings.public_base_url, owner, reading, "callback")
    return jsonify(ok=True, used=True)


# ---- asking eSIM Go ------------------------------------------------------------------------------------


def refresh(store: OrderStore, esimgo: EsimGoClient, bot: BotApi, public_url: str,
            order: dict[str, Any]) -> bool:
    """Ask eSIM Go for this eSIM's usage if the last report is stale and nobody asked in the last `STALE`;
    whether a new reading was stored. `esimgo` should be a client that gives up quickly: the buyer waits."""
    iccid = order.get("top_up_of") or order.get("iccid")
    owner = esim_order(store, iccid) if iccid and order.get("status") == orders.COMPLETED else None
    now = datetime.now(UTC)
    if owner is None or owner.get("status") != orders.COMPLETED or not _due(owner, now):
        return False  # decided on the copy first: a fresh page view never takes the store's lock
    claimed: list[bool] = []

    def claim(current: dict[str, Any]) -> None:  # under the lock: one process asks, the others see its answer
        if _due(current, now):
            current["usage_asked_at"] = now.isoformat(timespec="seconds")
            claimed.append(True)
    store.update(owner["id"], claim)
    if not claimed:
        return False
    try:
        bundles = esimgo.esim_bundles(iccid)
    except EsimGoError as exc:
        log.info("order %s: usage not available from eSIM Go (%s)", owner["id"], exc)
        return False
    live = [b for b in bundles if b.state == "active"]  # queued ones have not started; used ones are done
    if not live:
        return False
    current = live[-1]
    starts = orders.parse_time(current.assigned_at)
    days = _duration_days(store, owner, current.name)
    ends = starts + timedelta(days=days) if starts and days else None
    reading = Reading(bundle=current.name, assignment=current.reference or current.name,
                      referenced=bool(current.reference),
                      total_bytes=None if current.unlimited else current.initial_bytes,
                      remaining_bytes=None if current.unlimited else current.remaining_bytes,
                      unlimited=current.unlimited, starts_at=_iso(current.assigned_at),
                      ends_at=_iso(ends.isoformat()) if ends else None, estimated=True)
    return take(store, bot, public_url, owner, reading, "esimgo")


def _due(order: dict[str, Any], now: datetime) -> bool:
    usage = order.get("usage") if isinstance(order.get("usage"), dict) else {}
    heard, asked = orders.parse_time(usage.get("measured_at")), orders.parse_time(order.get("usage_asked_at"))
    return (heard is None or now - heard > STALE) and (asked is None or now - asked > STALE)


def _duration_days(store: OrderStore, owner: dict[str, Any], bundle: str) -> int | None:
    """How long `bundle` lasts, from the order of this buyer that bought it (the eSIM's or a top-up's)."""
    for order in reversed(store.orders_for_user(owner.get("telegram_user_id"))):
        if order.get("bundle_name") == bundle and isinstance(order.get("duration_days"), int):
            return order["duration_days"]
    return None


# ---- the reminder -----------------------------------------------------------------------------------


def remind_due(store: OrderStore, bot: BotApi, public_url: str, now: datetime | None = None) -> int:
    """The worker's: remind every buyer whose bundle ends within a day (once per bundle; not when it is used up
    or a top-up came after it). Reads only the orders whose usage ends today or tomorrow. How many were sent."""
    now = now or datetime.now(UTC)
    days = {now.date(), (now + REMIND_BEFORE).date()}
    candidates = {o["id"]: o for day in days for o in store.containing(f'"ends_at": "{day.isoformat()}')}
    return sum(_remind(store, bot, public_url, order, now) for order in candidates.values()
               if _needs_reminder(store, order, now))


def _remind(store: OrderStore, bot: BotApi, public_url: str, order: dict[str, Any], now: datetime) -> bool:
    marked: list[bool] = []

    def mark(current: dict[str, Any]) -> None:  # under the lock: never twice, whichever worker runs
        if _needs_reminder(store, current, now, look_for_top_up=False):
            current["usage_reminded"] = [*current.get("usage_reminded", []),
                                         current["usage"]["assignment"]][-BUNDLES_REMEMBERED:]
            orders.record(current, "reminder", "bundle ends within a day")
            marked.append(True)
    updated = store.update(order["id"], mark)
    if updated is None or not marked:
        return False
    if not tell(bot, public_url, updated, "usage_ends_soon"):  # the next round tries again
        assignment = updated["usage"]["assignment"]
        store.update(order["id"], lambda o: o.update(
            usage_reminded=[a for a in o.get("usage_reminded", []) if a != assignment]))
        return False
    return True


def _needs_reminder(store: OrderStore, order: dict[str, Any], now: datetime, look_for_top_up: bool = True) -> bool:
    usage = order.get("usage")
    if not isinstance(usage, dict) or order.get("status") != orders.COMPLETED:
        return False
    ends = orders.parse_time(usage.get("ends_at"))
    if ends is None or usage.get("estimated") or not now < ends <= now + REMIND_BEFORE:
        return False  # only on the end eSIM Go said (an estimate counts from purchase, not first use)
    if usage.get("assignment") in order.get("usage_reminded", []):
        return False
    if not usage.get("unlimited") and usage.get("remaining_bytes") == 0:
        return False  # used up: the 100 % message already offered the top-up
    if look_for_top_up:
        iccid = order.get("iccid")
        on_esim = [o for o in store.orders_for_user(order.get("telegram_user_id"))
                   if iccid and iccid in (o.get("iccid"), o.get("top_up_of")) and o.get("status") == orders.COMPLETED]
        # The current bundle was bought by the newest order of that bundle; a top-up bought after it follows it.
        current = max((o for o in on_esim if o.get("bundle_name") == usage.get("bundle")),
                      key=lambda o: str(o.get("paid_at") or ""), default=None)
        bought = str(current.get("paid_at") or "") if current else ""
        if any(o.get("top_up_of") == iccid and o is not current and str(o.get("paid_at") or "") >= bought
               for o in on_esim):
            return False  # already topped up: the next bundle takes over
    return True
