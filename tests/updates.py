"""Telegram Update bodies as Telegram sends them to our webhook (shapes from ../shared/reference/telegram.md §5)."""

from __future__ import annotations

import itertools
import time
import uuid

_update_ids = itertools.count(int(time.time()) % 1_000_000 * 1000)


def next_update_id() -> int:
    return next(_update_ids)


def user(user_id: int, language_code: str = "en") -> dict:
    return {"id": user_id, "is_bot": False, "first_name": "Test", "username": f"user{user_id}",
            "language_code": language_code}


def command(user_id: int, text: str, language_code: str = "en", update_id: int | None = None) -> dict:
    return {"update_id": update_id or next_update_id(), "message": {
        "message_id": 1, "date": int(time.time()), "chat": {"id": user_id, "type": "private"},
        "from": user(user_id, language_code), "text": text,
        "entities": [{"offset": 0, "length": len(text.split()[0]), "type": "bot_command"}]}}


def pre_checkout(user_id: int, payload: str, amount: int, currency: str = "XTR", language_code: str = "en",
                 update_id: int | None = None) -> dict:
    return {"update_id": update_id or next_update_id(), "pre_checkout_query": {
        "id": str(uuid.uuid4().int)[:18], "from": user(user_id, language_code), "currency": currency,
        "total_amount": amount, "invoice_payload": payload}}


def successful_payment(user_id: int, payload: str, amount: int, charge_id: str | None = None,
                       language_code: str = "en", update_id: int | None = None) -> dict:
    return {"update_id": update_id or next_update_id(), "message": {
        "message_id": 2, "date": int(time.time()), "chat": {"id": user_id, "type": "private"},
        "from": user(user_id, language_code),
        "successful_payment": {"currency": "XTR", "total_amount": amount, "invoice_payload": payload,
                               "telegram_payment_charge_id": charge_id or f"stxTEST{uuid.uuid4().hex}",
                               "provider_payment_charge_id": ""}}}
