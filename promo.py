"""Promo codes (issue 12, docs/settings.md): what a code is, whether it applies to a plan for a buyer now, the
price after it, and its uses — counted from the orders sold with it, never from a counter of their own.

A use is an order with the code that is paid and not refunded; an unpaid checkout holds one until its invoice
expires. Both are counted under the orders lock when an invoice is made (`purchase.create_invoice`), so two
buyers racing for the last use cannot both get an invoice, and a refund gives its use back by itself. The codes
are stored in `data/settings.json` (`shop_settings.py`), keyed case-insensitively.
"""

from __future__ import annotations

import secrets
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import orders
from pricing import CENT, Price, PriceSettings, stars_for
from shop_settings import SettingsInvalid, ShopSettings, decimal_value, text
from shop_settings import record as shop_record

CODE_MAX = 32
AMOUNT_MAX = Decimal(10000)
DESTINATIONS_MAX = 300
KINDS = ("local", "regional", "global")  # plan kinds that may stand for every plan of the kind
FIELDS = ("code", "percent_off", "amount_off_usd", "starts_at", "ends_at", "max_uses", "once_per_buyer",
          "destinations", "active")
ZERO = Decimal("0.00")
PAYMENT_GRACE = timedelta(minutes=5)  # Telegram pays within seconds of an accepted pre-checkout
TRIES_ALLOWED = 20  # promo code checks per buyer in TRIES_WINDOW_SECONDS: plenty for a traveller, slow for a guesser
TRIES_WINDOW_SECONDS = 600

# Why a code does not give its discount: the buyer-facing text is messages.TEXTS["promo_<reason>"].
UNKNOWN, NOT_STARTED, EXPIRED, USED_UP, ALREADY_USED, NOT_APPLICABLE = (
    "unknown", "not_started", "expired", "used_up", "already_used", "not_applicable")


def key(code: str) -> str:
    """The code as compared: Unicode-normalised and case-folded, so SUMMER20, summer20 and Ｓｕｍｍｅｒ20 are one."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", code).strip().casefold())


def _code_error(code: Any) -> str | None:
    if not isinstance(code, str) or not code.strip():
        return "Required: letters, digits, - _ or #."
    code = unicodedata.normalize("NFKC", code.strip())
    if len(code) > CODE_MAX:
        return f"At most {CODE_MAX} characters."
    if not all(ch.isalpha() or ch.isdigit() or ch in "-_#" or unicodedata.category(ch).startswith("M")
               for ch in code):
        return "Only letters, digits, - _ and # (no spaces)."
    return None


def parse_time(value: Any, field: str, errors: dict[str, str], end: bool = False) -> str | None:
    """ISO 8601 → stored ISO text in UTC. A date alone is midnight UTC (the start of that day; for `ends_at` the
    end of it); a time without a zone is UTC."""
    if value in (None, ""):
        return None
    if not isinstance(value, str) or len(value) > 40:
        errors[field] = "Must be a date or time in ISO 8601, e.g. 2026-12-31 or 2026-12-31T18:00:00Z."
        return None
    try:
        if len(value.strip()) == 10:
            day = date.fromisoformat(value.strip())
            moment = datetime.combine(day, time.max if end else time.min, tzinfo=UTC).replace(microsecond=0)
        else:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat(timespec="seconds")
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 moved across a time zone
        errors[field] = "Must be a date or time in ISO 8601, e.g. 2026-12-31 or 2026-12-31T18:00:00Z."
        return None


def clean(body: Any, existing: Mapping[str, Any] | None, areas: Iterable[str]) -> dict[str, Any]:
    """The stored form of a code the owner sent (POST: `existing` None; PUT: the stored one, changed by `body`).
    `areas` are the destinations the catalogue sells (country codes, region codes, "global"). SettingsInvalid
    names each bad field."""
    if not isinstance(body, dict):
        raise SettingsInvalid({}, "Send a JSON object with the promo code.")
    errors: dict[str, str] = {f: "Unknown field." for f in body if f not in FIELDS}
    record: dict[str, Any] = dict(existing or {})
    if existing is None:
        error = _code_error(body.get("code"))
        if error:
            errors["code"] = error
        else:
            record["code"] = unicodedata.normalize("NFKC", body["code"].strip())
    elif "code" in body and (not isinstance(body["code"], str) or key(body["code"]) != key(existing["code"])):
        errors["code"] = "A code cannot be renamed: create a new one."

    if "percent_off" in body and body["percent_off"] not in (None, ""):
        percent = decimal_value(body["percent_off"], places=2)
        if percent is None or not Decimal("0.01") <= percent <= 100:
            errors["percent_off"] = "Must be a percent from 0.01 to 100, with at most 2 decimals."
        else:
            record.update(percent_off=text(percent), amount_off_usd=None)
    if "amount_off_usd" in body and body["amount_off_usd"] not in (None, ""):
        amount = decimal_value(body["amount_off_usd"], places=2)
        if "percent_off" in body and body["percent_off"] not in (None, ""):
            errors["amount_off_usd"] = "Give either percent_off or amount_off_usd, not both."
        elif amount is None or not 0 < amount <= AMOUNT_MAX or amount != amount.quantize(CENT):
            errors["amount_off_usd"] = f"Must be an amount in USD more than 0 and at most {AMOUNT_MAX}, in cents."
        else:
            record.update(amount_off_usd=text(amount), percent_off=None)
    given = [f for f in ("percent_off", "amount_off_usd") if body.get(f) not in (None, "")]
    emptied = [f for f in ("percent_off", "amount_off_usd") if f in body and body[f] in (None, "")]
    if emptied and not given:  # an edit may swap the discount, never leave a code without one
        errors[emptied[0]] = "A code needs its discount: percent_off or amount_off_usd."
    elif not record.get("percent_off") and not record.get("amount_off_usd") and "percent_off" not in errors \
            and "amount_off_usd" not in errors:
        errors["percent_off"] = "Give the discount: percent_off or amount_off_usd."

    for field in ("starts_at", "ends_at"):
        if field in body:
            record[field] = parse_time(body[field], field, errors, end=field == "ends_at")
    if record.get("starts_at") and record.get("ends_at") and "starts_at" not in errors and "ends_at" not in errors \
            and record["ends_at"] <= record["starts_at"]:
        errors["ends_at"] = "Must be after the start."

    if "max_uses" in body:
        uses = body["max_uses"]
        if uses in (None, ""):
            record["max_uses"] = None
        elif isinstance(uses, bool) or not isinstance(uses, int) or not 1 <= uses <= 10_000_000:
            errors["max_uses"] = "Must be a whole number from 1, or empty for no limit."
        else:
            record["max_uses"] = uses
    for flag in ("once_per_buyer", "active"):
        if flag in body:
            if not isinstance(body[flag], bool):
                errors[flag] = "Must be true or false."
            else:
                record[flag] = body[flag]
    if "destinations" in body:
        record["destinations"] = _destinations(body["destinations"], set(areas), errors)

    if errors:
        raise SettingsInvalid(errors, "The promo code was not saved: see each field.")
    now = orders.now_iso()
    record.setdefault("id", secrets.token_hex(6))
    record.setdefault("created_at", now)
    record["updated_at"] = now
    for field, default in (("percent_off", None), ("amount_off_usd", None), ("starts_at", None), ("ends_at", None),
                           ("max_uses", None), ("once_per_buyer", False), ("destinations", []), ("active", True)):
        record.setdefault(field, default)
    return record


def _destinations(value: Any, areas: set[str], errors: dict[str, str]) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > DESTINATIONS_MAX:
        errors["destinations"] = "Must be a list such as [\"TH\", \"europe\", \"global\"]."
        return []
    clean: list[str] = []
    unknown: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            unknown.append(repr(item)[:20])
            continue
        name = item.strip()
        name = name.upper() if len(name) == 2 else name.lower()
        if name in KINDS or name in areas:
            if name not in clean:
                clean.append(name)
        else:
            unknown.append(item[:20])
    if unknown:
        errors["destinations"] = ("Not sold here: " + ", ".join(unknown[:5]) +
                                  ". Use country codes (TH), regions (europe), global, local or regional.")
    return clean


# ---- using a code ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Promo:
    """A stored code, read for checking and pricing."""

    id: str
    code: str
    percent_off: Decimal | None
    amount_off_usd: Decimal | None
    starts_at: datetime | None
    ends_at: datetime | None
    max_uses: int | None
    once_per_buyer: bool
    destinations: tuple[str, ...]
    active: bool

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Promo:
        def number(name: str) -> Decimal | None:
            return Decimal(record[name]) if record.get(name) else None
        return cls(id=record["id"], code=record["code"], percent_off=number("percent_off"),
                   amount_off_usd=number("amount_off_usd"), starts_at=orders.parse_time(record.get("starts_at")),
                   ends_at=orders.parse_time(record.get("ends_at")), max_uses=record.get("max_uses"),
                   once_per_buyer=bool(record.get("once_per_buyer")),
                   destinations=tuple(record.get("destinations") or ()), active=bool(record.get("active", True)))

    def applies_to(self, kind: str, area: str) -> bool:
        """Whether a plan of this kind and area (catalogue.Plan's) may have the discount."""
        if not self.destinations:
            return True
        wanted = area.upper() if kind == "local" else area
        return kind in self.destinations or wanted in self.destinations

    def discount(self, usd: Decimal) -> Decimal:
        """USD off a price: a percent rounded half-up to cents, or the fixed amount; never more than the price."""
        if self.percent_off is not None:
            off = (usd * self.percent_off / 100).quantize(CENT, rounding=ROUND_HALF_UP)
        else:
            off = self.amount_off_usd or ZERO
        return min(off, usd).quantize(CENT)


def price_with(promo: Promo, price: Price, settings: PriceSettings) -> tuple[Price, Decimal]:
    """The price after the code and the USD it took off; Stars by the usual formula, never below 1."""
    off = promo.discount(price.usd)
    usd = (price.usd - off).quantize(CENT)
    return Price(usd=usd, stars=stars_for(usd, settings)), off


def holds_use(order: Mapping[str, Any], now: datetime) -> str | None:
    """"used" for a paid order with the code (not refunded), "held" for a checkout that may still be paid: unpaid
    until PAYMENT_GRACE after its invoice expired (or was replaced), since a buyer whose pre-checkout was accepted
    just before may still pay it (a payment is never turned away: `purchase.record_payment`)."""
    status = order.get("status")
    if status in (orders.PAID, orders.PROVISIONING, orders.COMPLETED, orders.FAILED):
        return "used"
    if status in (orders.AWAITING_PAYMENT, orders.EXPIRED):
        expires = orders.parse_time(order.get("expires_at"))
        return "held" if expires is None or expires + PAYMENT_GRACE > now else None
    return None


def refusal(promo: Promo | None, kind: str, area: str, buyer_id: int, with_code: list[dict[str, Any]],
            now: datetime | None = None) -> str | None:
    """Why this buyer cannot have this code on this plan now (None: they can). `with_code` are the orders sold
    with it (their storage.PROMO_FIELDS are enough); a buyer's own unpaid checkout with it does not count (a new
    checkout replaces it)."""
    now = now or datetime.now(UTC)
    if promo is None or not promo.active:
        return UNKNOWN
    if promo.starts_at and now < promo.starts_at:
        return NOT_STARTED
    if promo.ends_at and now > promo.ends_at:  # ends_at is the code's last second
        return EXPIRED
    if not promo.applies_to(kind, area):
        return NOT_APPLICABLE
    taking = [(o, holds_use(o, now)) for o in with_code]
    mine = [use for o, use in taking if orders.belongs_to(o, buyer_id)]
    if promo.once_per_buyer and "used" in mine:
        return ALREADY_USED
    others = sum(1 for o, use in taking if use and not (use == "held" and orders.belongs_to(o, buyer_id)))
    if promo.max_uses is not None and others >= promo.max_uses:
        return USED_UP
    return None


def tally(record: Mapping[str, Any], with_code: list[dict[str, Any]], now: datetime | None = None) -> dict[str, Any]:
    """A code as the admin list shows it: the stored fields, its state, uses, held checkouts, revenue."""
    now = now or datetime.now(UTC)
    promo = Promo.from_record(record)
    uses = [(o, holds_use(o, now)) for o in with_code]
    used = [o for o, use in uses if use == "used"]
    held = sum(1 for _, use in uses if use == "held")
    state = "active"
    if not promo.active:
        state = "paused"
    elif promo.ends_at and now > promo.ends_at:
        state = "ended"
    elif promo.starts_at and now < promo.starts_at:
        state = "scheduled"
    elif promo.max_uses is not None and len(used) + held >= promo.max_uses:
        state = "used_up"
    return {
        **{f: record.get(f) for f in FIELDS},
        "created_at": record.get("created_at"), "updated_at": record.get("updated_at"),
        "state": state, "uses": len(used), "held": held,
        "refunded": sum(1 for o in with_code if o.get("status") == orders.REFUNDED),
        "revenue_usd": str(sum((Decimal(str(o.get("price") or 0)) for o in used), ZERO)),
        "revenue_stars": sum(int(o.get("paid_stars") or o.get("stars") or 0) for o in used),
        "discount_usd": str(sum((Decimal(str(o.get("discount_usd") or 0)) for o in used), ZERO)),
    }


# ---- the owner's list ------------------------------------------------------------------------------------


class PromoNotFound(LookupError):
    pass


class PromoExists(ValueError):
    pass


def find(shop: ShopSettings, code: Any) -> Promo | None:
    """The stored code a buyer typed (any case), or None."""
    if not isinstance(code, str) or not code.strip() or len(code) > CODE_MAX * 4:
        return None
    record = shop.promocodes().get(key(code))
    return Promo.from_record(record) if record else None


def _summary(record: Mapping[str, Any] | None) -> str | None:
    """One line for the settings history: what the code gives and on what terms."""
    if record is None:
        return None
    off = f"{record['percent_off']}% off" if record.get("percent_off") else f"{record.get('amount_off_usd')} USD off"
    terms = [off, "active" if record.get("active", True) else "paused"]
    if record.get("max_uses"):
        terms.append(f"max {record['max_uses']} uses")
    if record.get("once_per_buyer"):
        terms.append("once per buyer")
    if record.get("starts_at") or record.get("ends_at"):
        terms.append(f"{record.get('starts_at') or '…'} – {record.get('ends_at') or '…'}")
    if record.get("destinations"):
        terms.append("for " + " ".join(record["destinations"]))
    return ", ".join(terms)


def create(shop: ShopSettings, body: Any, who: str, areas: Iterable[str]) -> dict[str, Any]:
    """POST /api/admin/promocodes: the stored code (SettingsInvalid, PromoExists)."""
    record = clean(body, None, areas)
    with shop.change() as data:
        codes = data.setdefault("promocodes", {})
        if key(record["code"]) in codes:
            raise PromoExists(codes[key(record["code"])]["code"])
        codes[key(record["code"])] = record
        shop_record(data, who, {f"promocodes.{record['code']}": {"from": None, "to": _summary(record)}})
    return record


def edit(shop: ShopSettings, code: str, body: Any, who: str, areas: Iterable[str]) -> dict[str, Any]:
    """PUT /api/admin/promocodes/<code>: the changed code (SettingsInvalid, PromoNotFound)."""
    with shop.change() as data:
        codes = data.setdefault("promocodes", {})
        existing = codes.get(key(code))
        if existing is None:
            raise PromoNotFound(code)
        record = clean(body, existing, areas)
        codes[key(code)] = record
        before, after = _summary(existing), _summary(record)
        if before != after:
            shop_record(data, who, {f"promocodes.{record['code']}": {"from": before, "to": after}})
    return record


def delete(shop: ShopSettings, code: str, who: str) -> None:
    """DELETE /api/admin/promocodes/<code> (PromoNotFound). Orders keep the code they were sold with."""
    with shop.change() as data:
        existing = data.get("promocodes", {}).pop(key(code), None)
        if existing is None:
            raise PromoNotFound(code)
        shop_record(data, who, {f"promocodes.{existing['code']}": {"from": _summary(existing), "to": None}})
