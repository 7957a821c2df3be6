"""Demo mode's buyer API (SPEC §3, §8): `GET /api/demo/init-data` signs a demo buyer and
`POST /api/demo/pay/<order_id>` plays Telegram's part of a payment through our own webhook, so the shop can be
tried in a plain browser. Both are a 404 outside demo mode.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, request

import extensions
import updates
from auth import buyer_required, current_buyer, sign_init_data
from errors import api_error
from orders import AWAITING_PAYMENT, belongs_to
from pages import LANGUAGES

bp = Blueprint("demo_api", __name__)

DEMO_USER = {"id": 1000001, "first_name": "Demo", "username": "demo_buyer"}


def demo_only(view: Callable) -> Callable:
    """The route exists in demo mode only: anywhere else it is a plain 404, before any other check."""
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not extensions.settings().demo_mode:
            abort(404)
        return view(*args, **kwargs)
    return wrapper


@bp.get("/api/demo/init-data")
@demo_only
def demo_init_data() -> Response:
    """A signed demo buyer, so the shop can be tried in a normal browser."""
    lang = request.args.get("lang", "en")
    user = {**DEMO_USER, "language_code": lang if lang in LANGUAGES else "en"}
    response = jsonify(init_data=sign_init_data(extensions.settings().telegram_bot_token, user))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/api/demo/pay/<order_id>")
@demo_only
@buyer_required
def demo_pay(order_id: str) -> Response | tuple[Response, int]:
    """Pay the buyer's own order as Telegram would once they confirm: a pre_checkout_query, then the
    successful_payment message, both through our real webhook. Nothing else in the shop knows it was a demo."""
    buyer = current_buyer()
    order = extensions.store().get(order_id)
    if not belongs_to(order, buyer.id):
        return api_error(404, "unknown_order", "We could not find this order among yours.")
    if order.get("status") != AWAITING_PAYMENT:
        return api_error(409, "not_payable", "This order is not waiting for payment.")
    user = updates.user(buyer.id, buyer.language_code or "en", buyer.first_name or "Demo", buyer.username)
    secret = extensions.settings().telegram_webhook_secret
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
    webhook = current_app.test_client()
    for update in (updates.pre_checkout(buyer.id, order_id, order["stars"], from_user=user),
                   updates.successful_payment(buyer.id, order_id, order["stars"], from_user=user,
                                              charge_id="demo-" + secrets.token_hex(12))):
        answer = webhook.post("/api/telegram/webhook", json=update, headers=headers)
        if answer.status_code != 200:
            current_app.logger.error("demo payment of %s: webhook answered %s", order_id, answer.status_code)
            return api_error(502, "demo_payment_failed", "The demo payment did not go through. Please try again.")
    current_app.logger.info("demo payment of order %s by demo user %s", order_id, buyer.id)
    return jsonify(order_id=order_id, status="paid")
