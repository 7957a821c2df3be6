"""Buying with Stars up to the moment the money is ours: the invoice, the pre-checkout answer, and recording
`successful_payment` exactly once (SPEC §4, §6). What happens after — the eSIM Go order, delivery,
refunds — is `fulfilment.py`.

The price is computed on the server from the cached catalogue and frozen into the order before the invoice
exists; pre-checkout accepts only that amount. A payment is recorded under the orders lock keyed by its
`telegram_payment_charge_id`, so redeliveries, new update ids, concurrent workers and restarts all find it
already there and do nothing.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from telebot import types

import events
import metrics
import orders
import promo as promo_rules
from auth import Buyer
from botapi import BotApi, TelegramError
from catalogue import Catalogue, Plan
from config import Settings
from events import Outbox
from messages import language_of, plan_title, promo_text
from pricing import Price
from promo import Promo
from shop_settings import ShopSettings, text
from storage import OrderStore

log = logging.getLogger(__name__)

INVOICE_TITLE_MAX = 32
INVOICE_DESCRIPTION_MAX = 255


class PurchaseError(Exception):
    """A buyer's purchase request cannot go ahead; `status`, `code` and `message` make the API answer."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.extra = extra  # more fields of the answer (a promo code's `reason`)


def is_expired(order: dict[str, Any], now: datetime | None = None) -> bool:
    expires = orders.parse_time(order.get("expires_at"))
    return expires is not None and (now or datetime.now(UTC)) >= expires


# ---- invoice ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quote:
    """What a buyer is asked to pay for a plan now: the sale price, and the price after a promo code if any."""

    plan: Plan
    price: Price
    promo: Promo | None = None
    discount: Decimal = promo_rules.ZERO

    def answer(self) -> dict[str, Any]:
        return {"stars": self.price.stars, "price_usd": self.price.usd, "discount_usd": self.discount,
                "full_stars": self.plan.price.stars, "full_price_usd": self.plan.price.usd}


def new_order(buyer: Buyer, quote: Quote, expiry_minutes: float, top_up_of: str | None) -> dict[str, Any]:
    """An order awaiting payment, with the price frozen at the moment of the quote."""
    plan = quote.plan
    bundle = plan.bundle
    order = orders.new(
        buyer.id,
        telegram_username=buyer.username,
        bundle_name=bundle.name,
        provider_product_id=bundle.name,
        country_code=plan.area.upper() if plan.kind == "local" else plan.area,
        country_name=plan.area_name,
        plan_kind=plan.kind,
        data_mb=bundle.data_mb,
        duration_days=bundle.duration_days,
        unlimited=bundle.unlimited,
        price=quote.price.usd,
        cost=bundle.cost,  # catalogue cost at quote time; replaced by eSIM Go's actual total on purchase
        stars=quote.price.stars,
        customer={"first_name": buyer.first_name, "username": buyer.username, "language_code": buyer.language_code},
        language=buyer.language,
    )
    created = orders.parse_time(order["created_at"])
    order["expires_at"] = (created + timedelta(minutes=expiry_minutes)).isoformat(timespec="seconds")
    if top_up_of:
        order["top_up_of"] = top_up_of
    if quote.promo:
        order.update(promo_code=quote.promo.code, promo_id=quote.promo.id, discount_usd=quote.discount,
                     full_price=plan.price.usd, full_stars=plan.price.stars)
    return order


def _top_up_esim(store: OrderStore, buyer: Buyer, iccid: Any) -> str:
    """The buyer's own delivered eSIM with this ICCID, or a PurchaseError."""
    if not isinstance(iccid, str) or not orders.is_digits(iccid.strip()):
        raise PurchaseError(400, "invalid_iccid", "iccid must be the ICCID of one of your eSIMs.")
    iccid = iccid.strip()
    if not any(o.get("iccid") == iccid and o.get("status") == orders.COMPLETED
               for o in store.orders_for_user(buyer.id)):
        raise PurchaseError(404, "unknown_esim", "We could not find that eSIM among yours.")
    return iccid


def _check_invoice_rate(mine: list[dict[str, Any]], buyer: Buyer, per_minute: int) -> None:
    """At most `per_minute` new invoices per buyer, counted from the buyer's orders (so across every worker)."""
    since = datetime.now(UTC) - timedelta(minutes=1)
    recent = sum(1 for o in mine if (orders.parse_time(o.get("created_at")) or since) > since)
    if recent >= per_minute:
        log.warning("invoice refused for user %s: %d invoices in the last minute", buyer.id, recent)
        raise PurchaseError(429, "too_many_invoices",
                            "Too many checkouts in a minute. Please wait a moment and try again.")


def language_for(buyer: Buyer, body: Any) -> str:
    """The Mini App's language (`lang` in the body) if it says one of ours, else the buyer's Telegram language."""
    lang = body.get("lang") if isinstance(body, dict) else None
    return lang if lang in ("en", "ru") else buyer.language


def _plan(catalogue: Catalogue, body: Any) -> Plan:
    """The plan a request names (`bundle_name`), at the prices in force; or a PurchaseError."""
    if not isinstance(body, dict):
        raise PurchaseError(400, "invalid_body", "Send a JSON object with bundle_name.")
    name = body.get("bundle_name")
    if not isinstance(name, str) or not name.strip():
        raise PurchaseError(400, "invalid_bundle", "bundle_name is required.")
    plan = catalogue.plan(name.strip())
    if plan is None:
        if catalogue.index is None:
            raise PurchaseError(503, "catalogue_loading", "Plans are loading. Please try again in a moment.")
        raise PurchaseError(404, "unknown_bundle", "This plan is not available. Please pick another one.")
    return plan


def promo_code_in(body: Any, field: str = "promo_code") -> str | None:
    """The promo code a request carries (None when it has none), or a PurchaseError when it is not text."""
    code = body.get(field) if isinstance(body, dict) else None
    if code is None or code == "":
        return None
    if not isinstance(code, str) or len(code) > 4 * promo_rules.CODE_MAX:
        raise PurchaseError(400, "invalid_promo_code", "The promo code must be text of at most 32 characters.")
    return code


def quote(catalogue: Catalogue, shop: ShopSettings, store: Any, buyer: Buyer, plan: Plan, code: str | None,
          lang: str, with_code: list[dict[str, Any]] | None = None) -> Quote:
    """The price this buyer pays for `plan` with `code`; a PurchaseError 422 when the code gives nothing.
    `with_code`: the orders sold with the code, as read under the orders lock (else read now)."""
    if code is None:
        return Quote(plan, plan.price)
    promo = promo_rules.find(shop, code)
    if with_code is None:
        with_code = store.sold_with_promo(promo.id) if promo else []
    reason = promo_rules.refusal(promo, plan.kind, plan.area, buyer.id, with_code)
    if reason or promo is None:
        raise PurchaseError(422, f"promo_{reason}", promo_text(str(reason), lang), reason=reason)
    index = catalogue.index
    price, off = promo_rules.price_with(promo, plan.price, index.prices if index else shop.prices())
    return Quote(plan, price, promo, off)


def check_promo(*, store: OrderStore, catalogue: Catalogue, shop: ShopSettings, buyer: Buyer,
                body: Any) -> dict[str, Any]:
    """POST /api/promo/check: what a code does to a plan's price, for the checkout's preview (nothing is held)."""
    plan = _plan(catalogue, body)
    code = promo_code_in(body, "code")
    if code is None:
        raise PurchaseError(400, "invalid_promo_code", "Send the promo code as code.")
    lang = language_for(buyer, body)
    try:
        found = quote(catalogue, shop, store, buyer, plan, code, lang)
    except PurchaseError as exc:
        if "reason" not in exc.extra:
            raise
        return {"valid": False, "reason": exc.extra["reason"], **Quote(plan, plan.price).answer(),
                "message": exc.message}
    assert found.promo is not None
    off = (f"{text(found.promo.percent_off)}%" if found.promo.percent_off is not None
           else f"{found.discount} $" if lang == "ru" else f"${found.discount}")
    return {"valid": True, "code": found.promo.code, **found.answer(),
            "message": promo_text("valid", lang, code=found.promo.code, off=off)}


def create_invoice(*, store: OrderStore, catalogue: Catalogue, telegram: BotApi, esimgo: Any, buyer: Buyer,
                   body: Any, settings: Settings, shop: ShopSettings) -> dict[str, Any]:
    """Price the bundle (with the buyer's promo code, if any), store the order, create the Stars invoice link;
    returns the API answer."""
    if not isinstance(body, dict):
        raise PurchaseError(400, "invalid_body", "Send a JSON object with bundle_name.")
    per_minute = settings.invoices_per_minute
    _check_invoice_rate(store.orders_for_user(buyer.id), buyer, per_minute)  # before anything costs a call
    plan = _plan(catalogue, body)
    code = promo_code_in(body)
    lang = language_for(buyer, body)
    offer = quote(catalogue, shop, store, buyer, plan, code, lang)  # a quick refusal before anything else
    top_up_of = None
    if body.get("iccid") not in (None, ""):
        top_up_of = _top_up_esim(store, buyer, body["iccid"])
        if not esimgo.compatible(top_up_of, plan.name):
            raise PurchaseError(422, "incompatible_top_up",
                                "This plan cannot be added to that eSIM. Please pick another plan.")

    # The order exists before the invoice does, so no payment can ever arrive for an order we lack.
    with store.transaction() as tx:
        _check_invoice_rate(tx.orders_for_user(buyer.id), buyer, per_minute)  # again under the lock: exact
        if offer.promo is not None:
            # The code's uses, counted under the lock: of two buyers racing for its last use, one gets it.
            with_code = tx.sold_with_promo(offer.promo.id)
            now = datetime.now(UTC)
            for earlier in with_code:  # one held use per buyer and code: this checkout replaces an unpaid one
                if orders.belongs_to(earlier, buyer.id) and promo_rules.holds_use(earlier, now) == "held":
                    # Held a little longer for others (promo.PAYMENT_GRACE): it may be on the buyer's payment sheet.
                    orders.move(tx.get(earlier["id"]), orders.EXPIRED, expires_at=now.isoformat(timespec="seconds"),
                                last_error="replaced by a newer checkout with its promo code")
            offer = quote(catalogue, shop, store, buyer, plan, code, lang, with_code)
        order = new_order(buyer, offer, settings.order_expiry_minutes, top_up_of)
        tx.add(order)

    title = plan_title(order, buyer.language)[:INVOICE_TITLE_MAX]
    description = (f"{'Top-up' if top_up_of else 'eSIM'}: {plan.bundle.description}. "
                   "Delivered instantly in this chat and in the app.")[:INVOICE_DESCRIPTION_MAX]
    try:
        link = telegram.invoice_link(title=title, description=description, payload=order["id"], stars=order["stars"])
    except TelegramError as exc:  # the order can never be paid: close it
        log.error("createInvoiceLink failed for order %s: %s", order["id"], exc)
        error = f"invoice: {exc}"
        store.update(order["id"], lambda o: orders.move(o, orders.EXPIRED, last_error=error))
        raise PurchaseError(502, "invoice_failed", "We could not create the invoice. Please try again.") from None
    store.update(order["id"], lambda o: o.update(invoice_link=link))
    metrics.INVOICES.inc()
    log.info("invoice for order %s: %s, %s stars%s, user %s", order["id"], plan.name, order["stars"],
             f" with promo code {offer.promo.code} (-{offer.discount} USD)" if offer.promo else "", buyer.id)
    return {"invoice_link": link, "order_id": order["id"], "stars": order["stars"], "price_usd": order["price"],
            "discount_usd": offer.discount}


# ---- pre-checkout ----------------------------------------------------------------------------------


def pre_checkout_refusal(order: dict[str, Any] | None, user_id: int, currency: str,
                         total_amount: int) -> str | None:
    """None when this order may be paid now; otherwise the key of the buyer-facing reason."""
    if order is None:
        return "pcq_unknown"
    if not orders.belongs_to(order, user_id):
        return "pcq_wrong_buyer"
    if order.get("status") == orders.EXPIRED or (order.get("status") == orders.AWAITING_PAYMENT
                                                 and is_expired(order)):
        return "pcq_expired"
    if not orders.can_pay(order):
        return "pcq_not_awaiting"
    if currency != "XTR" or total_amount != order.get("stars"):
        return "pcq_amount"
    return None


def answer_pre_checkout(store: OrderStore, query: types.PreCheckoutQuery) -> tuple[bool, str | None, str]:
    """Decide a pre-checkout query: (ok, refusal key or None, buyer language). Reads only; fast."""
    order = store.get(query.invoice_payload)
    refusal = pre_checkout_refusal(order, query.from_user.id, query.currency, query.total_amount)
    lang = (order or {}).get("language") or language_of(query.from_user.language_code)
    if refusal:
        log.warning("pre-checkout refused for payload %r user %s: %s", query.invoice_payload, query.from_user.id,
                    refusal)
    return refusal is None, refusal, lang


# ---- successful payment ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentOutcome:
    order_id: str
    new: bool  # False: this charge was recorded before (redelivery); nothing more to do
    status: str


def record_payment(store: OrderStore, message: types.Message, outbox: Outbox | None = None) -> PaymentOutcome:
    """Record a successful Stars payment exactly once per telegram_payment_charge_id.

    The paid order moves to `paid` and is ready for fulfilment. A payment that cannot buy an eSIM —
    unknown order, someone else's order, wrong amount, an order already paid with another charge — is
    recorded as its own `failed` order so fulfilment refunds it: no Stars are ever kept without an eSIM.
    """
    payment = message.successful_payment
    charge_id = payment.telegram_payment_charge_id
    payer = message.from_user
    now = orders.now_iso()
    with store.transaction() as tx:
        existing = tx.get_by_charge_id(charge_id)
        if existing is not None:
            log.info("payment %s already recorded on order %s; redelivery ignored", charge_id, existing["id"])
            return PaymentOutcome(existing["id"], False, existing["status"])
        order = tx.get(payment.invoice_payload)
        problem = None
        if order is None:
            problem = "payment for an unknown order"
        elif not orders.belongs_to(order, payer.id):
            problem = f"payment by user {payer.id} for another user's order"
        elif payment.currency != "XTR" or payment.total_amount != order.get("stars"):
            problem = f"paid {payment.total_amount} {payment.currency}, order costs {order.get('stars')} XTR"
        elif order.get("imported"):
            problem = "payment for an order saved by an operator (no invoice of ours)"
        elif not orders.can_move(order.get("status", ""), orders.PAID) or order.get("status") == orders.PAID:
            problem = f"order already {order.get('status')}"
        if problem is None:
            orders.move(order, orders.PAID, telegram_payment_charge_id=charge_id, paid_at=now,
                        provider_payment_charge_id=payment.provider_payment_charge_id or "",
                        paid_stars=payment.total_amount)
            if outbox:
                outbox.add(order, events.PAYMENT_SUCCEEDED)  # in this same change: recorded together or not at all
            if order.get("promo_id"):  # the code is used: another checkout of the buyer's with it may not be paid
                for other in tx.sold_with_promo(order["promo_id"]):
                    if other["id"] != order["id"] and orders.belongs_to(other, payer.id) \
                            and other.get("status") == orders.AWAITING_PAYMENT:
                        orders.move(tx.get(other["id"]), orders.EXPIRED, expires_at=now,
                                    last_error="another checkout with its promo code was paid")
            result = copy.deepcopy(order)
        else:
            # Keep the money traceable and refundable as an order of its own.
            stray = orders.new(
                payer.id, orders.FAILED, telegram_username=payer.username,
                bundle_name=(order or {}).get("bundle_name"), related_order=payment.invoice_payload,
                country_name=(order or {}).get("country_name"), stars=payment.total_amount,
                paid_stars=payment.total_amount, currency=payment.currency, language=language_of(payer.language_code),
                telegram_payment_charge_id=charge_id, paid_at=now, refund_reason=problem, last_error=problem,
            )
            if outbox:
                outbox.add(stray, events.PAYMENT_SUCCEEDED)  # real Stars moved; their refund follows
            tx.add(stray)
            result = copy.deepcopy(stray)
    if problem:
        log.error("payment %s (%s Stars, user %s) cannot be fulfilled: %s; it will be refunded",
                  charge_id, payment.total_amount, payer.id, problem)
    else:
        log.info("payment %s recorded: order %s paid (%s Stars)", charge_id, result["id"], payment.total_amount)
    return PaymentOutcome(result["id"], True, result["status"])


def expire_unpaid(store: OrderStore, now: datetime | None = None) -> list[str]:
    """Close orders whose invoice time ran out; returns their ids."""
    now = now or datetime.now(UTC)
    expired: list[str] = []
    with store.transaction() as tx:
        for order in tx.open_orders():
            if order.get("status") == orders.AWAITING_PAYMENT and is_expired(order, now):
                orders.move(order, orders.EXPIRED)
                expired.append(order["id"])
    if expired:
        log.info("expired %d unpaid orders: %s", len(expired), ", ".join(expired))
    return expired


def prune_expired(store: OrderStore, older_than: timedelta, now: datetime | None = None) -> int:
    """Drop invoices that expired unpaid more than `older_than` ago (no money ever moved); returns how many.
    Anything with a charge id, or saved by an operator, is kept whatever its status."""
    cutoff = (now or datetime.now(UTC)) - older_than
    stale = [o["id"] for o in store.containing(f'"status": "{orders.EXPIRED}"')
             if o.get("status") == orders.EXPIRED and not o.get("telegram_payment_charge_id")
             and not o.get("imported") and (orders.parse_time(o.get("updated_at")) or cutoff) < cutoff]
    if not stale:
        return 0
    with store.transaction() as tx:
        for order_id in stale:
            order = tx.get(order_id)
            if order and order.get("status") == orders.EXPIRED and not order.get("telegram_payment_charge_id"):
                tx.remove(order_id)
    log.info("dropped %d invoices that expired unpaid before %s", len(stale), cutoff.isoformat(timespec="seconds"))
    return len(stale)


def record_outside_refund(store: OrderStore, fulfilment: Any, refunded: types.RefundedPayment,
                          outbox: Outbox | None = None) -> str | None:
    """Telegram says a payment was refunded (by the owner in Telegram, by Telegram, or our own refund's echo).
    Nothing is refunded again, and no eSIM is bought for it. An order nobody is working on becomes refunded at
    once; one the shop holds (buying, collecting, refunding) or not yet paid is flagged, and the fulfilment
    settles it (`Fulfilment._step`). The order id, if ours."""
    charge_id = refunded.telegram_payment_charge_id
    order = store.get_by_charge_id(charge_id) if charge_id else None
    if order is None:  # the refund may come before the payment it refunds: found by our order id
        by_payload = store.get(refunded.invoice_payload) if refunded.invoice_payload else None
        if by_payload is not None and by_payload.get("status") in (orders.AWAITING_PAYMENT, orders.EXPIRED):
            order = by_payload
    if order is None:
        log.warning("refunded_payment for charge %s (%s, %s XTR): no order of ours has it", charge_id,
                    refunded.invoice_payload, refunded.total_amount)
        return None
    outcome: list[str] = []

    def mark(current: dict[str, Any]) -> None:
        status = current.get("status")
        if status == orders.REFUNDED or current.get("refunded_elsewhere"):
            return  # ours, or a redelivery: already counted
        current["refunded_elsewhere"] = True
        orders.record(current, "refunded_elsewhere", f"Telegram: {refunded.total_amount} ⭐ refunded")
        in_flight = orders.leased(current) or current.get("esimgo_unsure") or status == orders.PROVISIONING
        if status in (orders.PAID, orders.COMPLETED, orders.FAILED) and not in_flight:
            orders.move(current, orders.REFUNDED, refunded_at=orders.now_iso(), next_attempt_at=None)
            if outbox:
                outbox.add(current, events.PAYMENT_REFUNDED)
            metrics.REFUNDS.labels("elsewhere").inc()
            outcome.append("refunded")
        else:  # not paid yet, or the shop is working on it: it settles the order when it next looks
            current.pop("next_attempt_at", None)
            outcome.append("flagged")
        outcome.append(str(status))
    store.update(order["id"], mark)
    if outcome:
        log.warning("order %s: refunded outside the shop while %s (%s)", order["id"], outcome[1], outcome[0])
        if outcome[1] != orders.FAILED:  # a failed order was being refunded by us: this is that refund
            fulfilment.alert_admins("refunded_elsewhere", order["id"], stars=refunded.total_amount,
                                    charge_id=charge_id)
    return order["id"]
