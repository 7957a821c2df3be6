"""The shop's JSON API for the Mini App and operators: catalogue at sale prices, and orders (SPEC §4).

Public catalogue routes read the in-memory catalogue only (never eSIM Go, never cost prices). Order routes
are authenticated: a buyer sees only their own orders; operators seed orders with the service token.
"""

from __future__ import annotations

import copy
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, request

import extensions
import usage
from auth import buyer_required, current_buyer, service_required
from errors import api_error
from esimgo import EsimGoError
from messages import promo_text
from orders import (
    AWAITING_PAYMENT,
    COMPLETED,
    OrderInputError,
    belongs_to,
    buyer_view,
    can_move,
    clean_seed,
    has_step_left,
    now_iso,
)
from orders import new as new_order
from purchase import PurchaseError, check_promo, create_invoice, language_for
from qr import ios_install_url, lpa_for, qr_png, qr_signature_valid, signed_qr_path

bp = Blueprint("shop_api", __name__, url_prefix="/api")


def _catalogue_index():
    index = extensions.catalogue().index
    if index is None:
        return None, api_error(503, "catalogue_loading", "Plans are loading. Please try again in a moment.")
    return index, None


@bp.get("/esimgo/countries")
def countries() -> Response | tuple[Response, int]:
    index, error = _catalogue_index()
    if error:
        return error
    listing = index.listing()
    listing["demo"] = bool(extensions.settings().demo_mode)
    return jsonify(listing)


@bp.get("/esimgo/bundles")
def bundles() -> Response | tuple[Response, int]:
    index, error = _catalogue_index()
    if error:
        return error
    country = request.args.get("country", "").strip().upper()
    region = request.args.get("region", "").strip().lower()
    if country:
        key = ("local", country)
    elif region:
        key = ("regional", region)
    elif "global" in request.args:
        key = ("global", "global")
    else:
        return api_error(400, "missing_area", "Say which plans: ?country=TH, ?region=europe or ?global.")
    plans = index.by_area.get(key)
    if not plans:
        return api_error(404, "unknown_area", "We have no plans for that destination.")
    kind_filter = request.args.get("type", "").strip().lower()
    if kind_filter in ("standard", "unlimited"):
        plans = [p for p in plans if p.bundle.unlimited == (kind_filter == "unlimited")]
    return jsonify(area=index.summary(*key), kind=key[0], bundles=[p.public() for p in plans],
                   updated_at=index.fetched_at)


@bp.get("/esimgo/bundle/<name>")
def one_bundle(name: str) -> Response | tuple[Response, int]:
    index, error = _catalogue_index()
    if error:
        return error
    plan = index.plans.get(name)
    if plan is None:
        return api_error(404, "unknown_bundle", "This plan is not available. Please pick another one.")
    return jsonify(bundle=plan.public(), area=index.summary(plan.kind, plan.area))


def _refused(exc: PurchaseError) -> tuple[Response, int]:
    return jsonify(error=exc.code, message=exc.message, **exc.extra), exc.status


def _promo_tries_left(body: Any, field: str) -> tuple[Response, int] | None:
    """A 429 when this buyer has tried too many promo codes lately (guessing them one by one), else None. `field`
    is where the route reads the code from: a request carrying one anywhere else is not asking about a code."""
    if not isinstance(body, dict) or body.get(field) in (None, ""):
        return None
    buyer = current_buyer()
    if extensions.get("promo_throttle").attempt(str(buyer.id)):
        current_app.logger.warning("promo code refused for user %s: too many tries", buyer.id)
        return api_error(429, "too_many_promo_tries", promo_text("too_many", language_for(buyer, body)))
    return None


@bp.post("/promo/check")
@buyer_required
def promo_check() -> Response | tuple[Response, int]:
    body = request.get_json(silent=True)
    throttled = _promo_tries_left(body, "code")
    if throttled:
        return throttled
    try:
        answer = check_promo(store=extensions.store(), catalogue=extensions.catalogue(), shop=extensions.shop(),
                             buyer=current_buyer(), body=body)
    except PurchaseError as exc:
        return _refused(exc)
    return jsonify(answer)


@bp.post("/telegram/stars/create-invoice")
@buyer_required
def stars_invoice() -> Response | tuple[Response, int]:
    body = request.get_json(silent=True)
    throttled = _promo_tries_left(body, "promo_code")
    if throttled:
        return throttled
    try:
        answer = create_invoice(store=extensions.store(), catalogue=extensions.catalogue(),
                                telegram=extensions.get("bot"), esimgo=extensions.esimgo(), buyer=current_buyer(),
                                body=body, settings=extensions.settings(), shop=extensions.shop())
    except PurchaseError as exc:
        return _refused(exc)
    except EsimGoError as exc:  # the top-up compatibility check could not reach eSIM Go
        current_app.logger.warning("create-invoice: eSIM Go unavailable: %s", exc)
        return api_error(503, "provider_unavailable", "We could not check this plan right now. Please try again.")
    return jsonify(answer)


@bp.get("/orders/<order_id>")
@buyer_required
def my_order(order_id: str) -> Response | tuple[Response, int]:
    order = extensions.store().get(order_id)
    # Someone else's order looks exactly like a missing one.
    if not belongs_to(order, current_buyer().id):
        return api_error(404, "unknown_order", "We could not find this order among yours.")
    store = extensions.store()
    if usage.refresh(store, extensions.get("esimgo_quick"), extensions.get("bot"),
                     extensions.settings().public_base_url, order):
        order = store.get(order_id) or order
    view = {**buyer_view(order), "usage": usage.for_buyer(order, store)}
    lpa = lpa_for(order) if order.get("status") == COMPLETED else None
    if lpa:
        view.update(lpa=lpa, ios_install_url=ios_install_url(lpa),
                    qr_url=signed_qr_path(extensions.settings().telegram_bot_token, order_id))
    return jsonify(order=view)


@bp.get("/orders")
@buyer_required
def my_orders() -> Response:
    buyer = current_buyer()
    # Only ever the caller's own orders: the id comes from validated initData; any userId parameter is ignored.
    store = extensions.store()
    orders = store.orders_for_user(buyer.id)
    return jsonify(orders=[{**buyer_view(o), "usage": usage.for_buyer(o, store)} for o in reversed(orders)])


@bp.post("/orders")
@service_required
def seed_order() -> Response | tuple[Response, int]:
    body = request.get_json(silent=True)
    try:
        fields = clean_seed(body)
    except OrderInputError as exc:
        return api_error(400, "invalid_order", str(exc))
    with extensions.store().transaction() as tx:
        existing = tx.get(fields["id"]) if "id" in fields else None
        if existing is None:
            if "telegram_user_id" not in fields:
                return api_error(400, "invalid_order", "A new order needs telegram_user_id.")
            order = new_order(**fields)
            order["imported"] = True  # a record: it never starts a purchase, a delivery or a message
            if "updated_at" not in fields:
                order["updated_at"] = order["created_at"]
            tx.add(order)
            created = True
        else:
            user = fields.get("telegram_user_id", existing.get("telegram_user_id"))
            if str(user) != str(existing.get("telegram_user_id")):
                return api_error(409, "owner_mismatch", "That order belongs to another Telegram user.")
            current = existing.get("status", AWAITING_PAYMENT)
            new_status = fields.get("status", current)
            if not can_move(current, new_status):
                return api_error(409, "status_backwards", f"Status {current} cannot become {new_status}.")
            if has_step_left(existing):
                # Any field could redirect the work: a bigger plan bought, other codes sent, a refund elsewhere.
                return api_error(409, "order_in_progress",
                                 f"The shop is still handling this order ({current}); it cannot be changed from "
                                 "outside. Wait for it to settle, or act on it in the admin console.")
            if new_status != current:
                existing["imported"] = True  # a status set from outside is a record, never a cue to act
            existing.update(fields)  # fields not given are kept
            existing["updated_at"] = fields.get("updated_at", now_iso())
            order, created = existing, False
        result = copy.deepcopy(order)
    current_app.logger.info("operator %s order %s for user %s", "created" if created else "updated",
                            result["id"], result.get("telegram_user_id"))
    return jsonify(order=result, created=created), 201 if created else 200


qr_bp = Blueprint("qr", __name__)


@qr_bp.get("/qr/<order_id>.png")
def qr_image(order_id: str) -> Response:
    """The eSIM's QR code, for the buyer's own signed, short-lived link only."""
    if not qr_signature_valid(extensions.settings().telegram_bot_token, order_id, request.args.get("exp", ""),
                              request.args.get("sig", "")):
        abort(403)
    order = extensions.store().get(order_id)
    lpa = lpa_for(order) if order else None
    if not lpa:
        abort(404)
    return Response(qr_png(lpa), mimetype="image/png")  # no-store, like every answer with an activation code
