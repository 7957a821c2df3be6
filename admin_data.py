"""What the admin console reads (SPEC §7): every order as a row the owner can search, filter and page
through, newest first; one order in full with its history; sales per day and per country; the buyers; the
CSV export. Read-only: the owner's actions are `Fulfilment.retry_now/refund_now/resend`.

Speed with a long history: each process keeps a small `Summary` of every order (what filters, sorting and
the counts need), rebuilt only for orders whose stored line changed since the last call, so a search over
50,000 orders reads summaries, not 50,000 JSON documents; only the rows of the page shown are decoded.
"""

from __future__ import annotations

import csv
import io
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import orders
from catalogue import flag
from messages import plan_title
from qr import lpa_for
from storage import OrderStore, decode_order

log = logging.getLogger("admin")

PER_PAGE = 50
MAX_PER_PAGE = 200
MAX_DAYS = 366
CSV_FIELDS = ("id", "created_at", "telegram_user_id", "telegram_username", "country_code", "country_name",
              "bundle_name", "status", "stars", "price", "promo_code", "discount_usd", "cost", "margin", "paid_at",
              "delivered_at", "refunded_at", "iccid", "orderReference", "telegram_payment_charge_id")
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class QueryError(ValueError):
    """A filter the console cannot read; the message names it."""


@dataclass(frozen=True)
class Summary:
    """One order as the console filters, sorts and counts it."""

    id: str
    created: float  # POSIX time, for newest-first
    day: str  # UTC date of creation, YYYY-MM-DD
    user: str
    username: str  # lower case, without @
    status: str
    country: str
    country_name: str
    stars: int
    price: Decimal | None
    cost: Decimal | None  # what eSIM Go charged, once it sold the eSIM
    paid_day: str | None
    bought_day: str | None
    refunded_day: str | None
    failed_day: str | None  # the shop could not fulfil it (an owner's refund is no failure)
    attention: bool
    search: str  # lower-case id, orderReference, ICCID, charge id, user id, @username, joined by spaces


def _money(value: Any) -> Decimal | None:
    try:
        amount = Decimal(str(value)) if value not in (None, "") and not isinstance(value, bool) else None
    except InvalidOperation:
        return None
    return amount if amount is not None and amount.is_finite() and abs(amount) < orders.MAX_USD else None


def _stars(value: Any) -> int:
    text = str(value) if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    return int(text) if orders.is_digits(text) and int(text) < orders.MAX_STARS else 0


def _day(value: Any) -> str | None:
    moment = orders.parse_time(value)
    return moment.astimezone(UTC).date().isoformat() if moment else None


def summarize(key: str, order: dict[str, Any]) -> Summary:
    """The summary of the order stored under `key`; a record too odd to read becomes a bare one (and a log line),
    never an error: one imported order must not take the console down."""
    try:
        return _summary(key, order)
    except Exception:
        log.exception("admin: order %s cannot be summarised; listed bare", key)
        return Summary(id=key, created=0.0, day="", user="", username="", status=str(order.get("status")),
                       country="", country_name="", stars=0, price=None, cost=None, paid_day=None, bought_day=None,
                       refunded_day=None, failed_day=None, attention=False, search=key.lower())


def _summary(key: str, order: dict[str, Any]) -> Summary:
    created = orders.parse_time(order.get("created_at"))
    username = str(order.get("telegram_username") or "").lstrip("@").lower()
    keys = (key, order.get("orderReference"), order.get("iccid"), order.get("telegram_payment_charge_id"),
            order.get("telegram_user_id"), "@" + username if username else "")
    return Summary(
        id=key, created=created.timestamp() if created else 0.0,
        day=created.astimezone(UTC).date().isoformat() if created else "",
        user=str(order.get("telegram_user_id") or ""), username=username, status=str(order.get("status") or ""),
        country=str(order.get("country_code") or "").upper(), country_name=str(order.get("country_name") or ""),
        stars=_stars(order.get("stars")), price=_money(order.get("price")),
        cost=_money(order.get("cost")) if order.get("orderReference") or order.get("imported") else None,
        paid_day=_day(order.get("paid_at")), bought_day=_day(order.get("bought_at") or order.get("paid_at")),
        # An imported refunded order may lack refunded_at: its last change is the refund.
        refunded_day=_day(order.get("refunded_at") or (order.get("status") == orders.REFUNDED
                                                       and order.get("updated_at"))),
        failed_day=None if order.get("refund_by_owner") else _day(order.get("failed_at")),
        attention=orders.attention(order) is not None,
        search=" ".join(str(k).lower() for k in keys if k),
    )


class OrderIndex:
    """The summaries of every order in one process, kept in step with the store line by line."""

    def __init__(self, store: OrderStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        # order id -> (its stored line, its summary, its place in the store: orders made in one second keep
        # the order they were made in)
        self._cache: dict[str, tuple[bytes, Summary, int]] = {}
        self._newest_first: list[Summary] = []

    def summaries(self) -> list[Summary]:
        """Every order's summary, newest first."""
        lines = self.store.lines()
        with self._lock:
            changed = len(lines) != len(self._cache)
            for place, (key, raw) in enumerate(lines.items()):
                cached = self._cache.get(key)
                if cached is None or cached[0] is not raw:  # a new or changed order: its line is a new object
                    self._cache[key] = (raw, summarize(key, decode_order(raw)), place)
                    changed = True
            if len(self._cache) != len(lines):
                for key in [k for k in self._cache if k not in lines]:
                    del self._cache[key]
            if changed:
                ranked = sorted(self._cache.values(), key=lambda c: (c[1].created, c[2]), reverse=True)
                self._newest_first = [summary for _, summary, _ in ranked]
            return self._newest_first


# ---- orders ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    q: str = ""
    statuses: frozenset[str] = frozenset()
    start: str | None = None  # YYYY-MM-DD, inclusive
    end: str | None = None
    country: str = ""
    user: str = ""
    attention: bool = False

    def matches(self, s: Summary) -> bool:
        return ((not self.statuses or s.status in self.statuses)
                and (not self.start or s.day >= self.start) and (not self.end or s.day <= self.end)
                and (not self.country or s.country == self.country) and (not self.user or s.user == self.user)
                and (not self.attention or s.attention) and (not self.q or self.q in s.search))


def _one(args: Mapping[str, Any], name: str) -> str:
    value = args.get(name)
    return value.strip() if isinstance(value, str) else ""


def _date(args: Mapping[str, Any], name: str) -> str | None:
    text = _one(args, name)
    if not text:
        return None
    try:
        if len(text) == 10:
            return date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    raise QueryError(f"{name} must be a date like 2026-11-22.")


def _whole(args: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    text = _one(args, name)
    if not text:
        return default
    if not orders.is_digits(text) or not low <= int(text) <= high:
        raise QueryError(f"{name} must be a whole number from {low} to {high}.")
    return int(text)


def parse_filters(args: Any) -> Filters:
    """The orders filters of a query string (`args` is Flask's MultiDict); a QueryError says which is wrong."""
    statuses = frozenset(s.strip() for s in args.getlist("status") if s.strip())
    unknown = statuses - orders.STATUSES
    if unknown:
        raise QueryError(f"status must be one of: {', '.join(sorted(orders.STATUSES))}.")
    country = _one(args, "country").upper()
    if country and not (len(country) == 2 and country.isascii() and country.isalpha()):
        raise QueryError("country must be a two-letter country code like TH.")
    user = _one(args, "user")
    if user and not orders.is_digits(user):
        raise QueryError("user must be a numeric Telegram user id.")
    start, end = _date(args, "from"), _date(args, "to")
    if start and end and start > end:
        raise QueryError("from must not be after to.")
    q = _one(args, "q").lower()
    return Filters(q=q[:200], statuses=statuses, start=start, end=end, country=country, user=user,
                   attention=_one(args, "attention") in ("1", "true", "yes"))


def row(order: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    """One order (stored under `key`) as a line of the console's table; an unreadable record gives a bare line."""
    key = key or str(order.get("id"))
    try:
        return _row(order, key)
    except Exception:
        log.exception("admin: order %s cannot be shown in full; shown bare", key)
        return {"id": key, "status": str(order.get("status")), "status_text": "Unreadable record", "tone": "bad",
                "attention": None}


def _row(order: dict[str, Any], key: str) -> dict[str, Any]:
    status = str(order.get("status") or "")
    _, tone = orders.STATUS_LABELS.get(status, (None, ""))
    price, cost = _money(order.get("price")), _money(order.get("cost"))
    title = plan_title(order).split(" · ", 1)
    paid = bool(order.get("paid_at") or order.get("telegram_payment_charge_id")) or status in (
        orders.PAID, orders.PROVISIONING, orders.COMPLETED, orders.FAILED)
    return {
        "id": key, "created_at": order.get("created_at"),
        "telegram_user_id": order.get("telegram_user_id"), "telegram_username": order.get("telegram_username"),
        "country_code": order.get("country_code"), "country_name": order.get("country_name"),
        "flag": flag(str(order.get("country_code") or "")), "bundle_name": order.get("bundle_name"),
        "plan": title[1] if len(title) > 1 else order.get("bundle_name"),
        "stars": order.get("stars"), "price": _usd(price), "cost": _usd(cost),
        "margin": _usd(price - cost) if price is not None and cost is not None else None,
        "status": status, "status_text": orders.STATUS_TEXT.get(status, status), "tone": tone,
        "payment": "refunded" if status == orders.REFUNDED else ("paid" if paid else "unpaid"),
        "esim": "ready" if order.get("iccid") else ("pending" if status in (orders.PAID, orders.PROVISIONING)
                                                    else "none"),
        "delivery": ("delivered" if order.get("delivered_at") else "failed" if order.get("delivery_error")
                     else "none" if order.get("imported")  # a record: the shop never sends it
                     else "pending" if status in (orders.PAID, orders.PROVISIONING, orders.COMPLETED) else "none"),
        "iccid": order.get("iccid"), "attention": orders.attention(order),
    }


def _usd(amount: Decimal | None) -> str | None:
    return None if amount is None else str(amount.quantize(Decimal("0.01")))


def find(index: OrderIndex, filters: Filters) -> list[Summary]:
    return [s for s in index.summaries() if filters.matches(s)]


def page_of(index: OrderIndex, args: Any) -> dict[str, Any]:
    """GET /api/admin/orders: the filtered orders' rows for one page, newest first."""
    filters = parse_filters(args)
    page = _whole(args, "page", 1, 1, 1_000_000)
    per_page = _whole(args, "per_page", PER_PAGE, 1, MAX_PER_PAGE)
    found = find(index, filters)
    shown = found[(page - 1) * per_page:page * per_page]
    rows = [row(o, s.id) for s, o in ((s, index.store.get(s.id)) for s in shown) if o is not None]
    return {"orders": rows, "total": len(found), "page": page, "per_page": per_page}


def detail(order: dict[str, Any]) -> dict[str, Any]:
    """GET /api/admin/orders/<id>: every field, the history (recorded, or told from the timestamps of an order
    older than the history), what may be done with it, and its install code."""
    has_esim = bool(order.get("smdpAddress") and order.get("matchingId"))
    history = order.get("history")
    return {"order": order, "row": row(order),
            "history": history if isinstance(history, list) and history else _told_history(order),
            "actions": orders.owner_actions(order), "lpa": lpa_for(order) if has_esim else None,
            "qr_url": f"/api/admin/orders/{quote(str(order.get('id')), safe='')}/qr.png" if has_esim else None}


def _told_history(order: dict[str, Any]) -> list[dict[str, Any]]:
    events = [(order.get(field), event) for field, event in (
        ("created_at", "created"), ("paid_at", "paid"), ("bought_at", "bought at eSIM Go"),
        ("completed_at", "completed"), ("delivered_at", "delivered"), ("failed_at", "failed"),
        ("refunded_at", "refunded"))]
    return [{"at": at, "event": event, "by": "shop", "detail": "from the order's timestamps"}
            for at, event in sorted((e for e in events if e[0]), key=lambda e: str(e[0]))]


def csv_text(index: OrderIndex, args: Any) -> str:
    """GET /api/admin/orders.csv: the filtered orders, newest first, every cell safe to open in a spreadsheet."""
    filters = parse_filters(args)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    lines = index.store.lines()  # one snapshot, not a locked lookup per row
    for summary in find(index, filters):
        raw = lines.get(summary.id)
        if raw is None:
            continue
        order = decode_order(raw)
        price, cost = _money(order.get("price")), _money(order.get("cost"))
        values = {**order, "margin": _usd(price - cost) if price is not None and cost is not None else ""}
        writer.writerow([_cell(values.get(name)) for name in CSV_FIELDS])
    return out.getvalue()


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


# ---- sales ----------------------------------------------------------------------------------------


def _totals() -> dict[str, Any]:
    return {"orders": 0, "stars": 0, "usd": Decimal(0), "cost": Decimal(0), "margin": Decimal(0), "refunds": 0,
            "failures": 0}


def _sold(s: Summary) -> bool:
    """A sale that stands: paid and not refunded (imported completed orders count too)."""
    return s.status in (orders.PAID, orders.PROVISIONING, orders.COMPLETED)


def _add_sale(totals: dict[str, Any], s: Summary) -> None:
    totals["orders"] += 1
    totals["stars"] += s.stars
    totals["usd"] += s.price or 0
    totals["margin"] += s.price or 0


def _add_cost(totals: dict[str, Any], s: Summary) -> None:
    """What eSIM Go charged, on the day it sold the eSIM: refunded or not, the shop paid it."""
    totals["cost"] += s.cost or 0
    totals["margin"] -= s.cost or 0


def _public(totals: dict[str, Any]) -> dict[str, Any]:
    return {k: _usd(v) if isinstance(v, Decimal) else v for k, v in totals.items()}


def stats(index: OrderIndex, args: Any, today: date | None = None) -> dict[str, Any]:
    """GET /api/admin/stats?days=30: sales per day (oldest first), today / 7 / 30 days, by country, refunds,
    failures and how many orders need the owner."""
    days = _whole(args, "days", 30, 1, MAX_DAYS)
    today = today or datetime.now(UTC).date()
    first = (today - timedelta(days=max(days, 30) - 1)).isoformat()
    per_day = {(today - timedelta(days=n)).isoformat(): _totals() for n in range(max(days, 30))}
    countries: dict[str, dict[str, Any]] = {}
    attention = 0
    for s in index.summaries():
        attention += s.attention
        sale_day = s.paid_day or s.day
        if _sold(s) and sale_day >= first and sale_day in per_day:
            _add_sale(per_day[sale_day], s)
            if sale_day > (today - timedelta(days=days)).isoformat():
                place = countries.setdefault(s.country or "?", {"country_code": s.country or None,
                                                                "country_name": s.country_name or s.country,
                                                                "flag": flag(s.country), "orders": 0, "stars": 0,
                                                                "usd": Decimal(0)})
                place["orders"] += 1
                place["stars"] += s.stars
                place["usd"] += s.price or 0
        if s.cost is not None and s.bought_day in per_day:
            _add_cost(per_day[s.bought_day], s)
        if s.refunded_day in per_day:
            per_day[s.refunded_day]["refunds"] += 1
        if s.failed_day in per_day:
            per_day[s.failed_day]["failures"] += 1
    ordered = sorted(per_day.items())
    return {
        "periods": {name: _public(_sum(d for day, d in ordered if day > (today - timedelta(days=n)).isoformat()))
                    for name, n in (("today", 1), ("7d", 7), ("30d", 30))},
        "days": [{"date": day, **_public(d)} for day, d in ordered[-days:]],
        "countries": [_public(c) for c in sorted(countries.values(), key=lambda c: (-c["usd"], -c["orders"]))],
        "attention": attention,
    }


def _sum(parts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    total = _totals()
    for part in parts:
        for key in total:
            total[key] += part[key]
    return total


# ---- buyers ---------------------------------------------------------------------------------------


def buyers(index: OrderIndex, args: Any) -> dict[str, Any]:
    """GET /api/admin/users: buyers as their orders show them, most recent first."""
    q = _one(args, "q").lstrip("@").lower()
    page = _whole(args, "page", 1, 1, 1_000_000)
    per_page = _whole(args, "per_page", PER_PAGE, 1, MAX_PER_PAGE)
    people: dict[str, dict[str, Any]] = {}
    newest_first = index.summaries()
    for rank, s in enumerate(reversed(newest_first)):  # oldest first: the first order seen is the first made
        if not s.user:
            continue  # an imported record without a buyer
        person = people.get(s.user)
        if person is None:
            person = people[s.user] = {"telegram_user_id": s.user, "telegram_username": None, "orders": 0,
                                       "paid_orders": 0, "stars": 0, "usd": Decimal(0), "first_order_at": s.created,
                                       "last_order_at": s.created}
        person["orders"] += 1
        person["last_order_at"], person["rank"] = s.created, rank
        person["telegram_username"] = s.username or person["telegram_username"]
        if _sold(s):
            person["paid_orders"] += 1
            person["stars"] += s.stars
            person["usd"] += s.price or 0
    found = [p for p in people.values()
             if not q or q in p["telegram_user_id"] or q in (p["telegram_username"] or "")]
    found.sort(key=lambda p: (p["last_order_at"], p["rank"]), reverse=True)
    shown = [{k: v for k, v in p.items() if k != "rank"} for p in found[(page - 1) * per_page:page * per_page]]
    return {"users": [{**_public(p), "telegram_user_id": _id(p["telegram_user_id"]),
                       "first_order_at": _iso(p["first_order_at"]), "last_order_at": _iso(p["last_order_at"])}
                      for p in shown],
            "total": len(found), "page": page, "per_page": per_page}


def _iso(timestamp: float) -> str | None:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds") if timestamp else None


def _id(user: str) -> int | str:
    return int(user) if orders.is_digits(user) else user
