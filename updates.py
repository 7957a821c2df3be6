"""Telegram Update bodies as Telegram sends them to our webhook (shapes from ../shared/reference/telegram.md §5).

The one builder of updates: demo mode's payments, `scripts/test-stars-webhook`, the tests and the benchmarks
all make their updates here, so they all look like what Telegram really sends.
"""

from __future__ import annotations

import itertools
import secrets
import time
from typing import Any

_START = secrets.randbits(24)
_calls = itertools.count()


def next_update_id() -> int:
    """A fresh update id (the webhook skips an id it has handled): the second, then a counter from a random start,
    so ids made in two processes at once (gunicorn workers in demo mode) do not meet."""
    seconds = int(time.time()) - 1_735_689_600  # since 2025-01-01: below 2**52 until 2033
    return seconds << 24 | (_START + next(_calls)) % 2**24  # a counter: never the same id twice in one process


def user(user_id: int, language_code: str = "en", first_name: str = "Test",
         username: str | None = None) -> dict[str, Any]:
    """A Telegram User (the buyer), as in `from`."""
    return {"id": user_id, "is_bot": False, "first_name": first_name, "username": username or f"user{user_id}",
            "language_code": language_code}


def command(user_id: int, text: str, language_code: str = "en", update_id: int | None = None) -> dict[str, Any]:
    return {"update_id": update_id or next_update_id(), "message": {
        "message_id": 1, "date": int(time.time()), "chat": {"id": user_id, "type": "private"},
        "from": user(user_id, language_code), "text": text,
        "entities": [{"offset": 0, "length": len(text.split()[0]), "type": "bot_command"}]}}


def pre_checkout(user_id: int, payload: str, amount: int, currency: str = "XTR", language_code: str = "en",
                 update_id: int | None = None, from_user: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"update_id": update_id or next_update_id(), "pre_checkout_query": {
        "id": str(secrets.randbits(60)), "from": from_user or user(user_id, language_code), "currency": currency,
        "total_amount": amount, "invoice_payload": payload}}


def successful_payment(user_id: int, payload: str, amount: int, charge_id: str | None = None,
                       language_code: str = "en", update_id: int | None = None,
                       from_user: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"update_id": update_id or next_update_id(), "message": {
        "message_id": secrets.randbelow(10**6) + 1, "date": int(time.time()),
        "chat": {"id": user_id, "type": "private"}, "from": from_user or user(user_id, language_code),
        "successful_payment": {"currency": "XTR", "total_amount": amount, "invoice_payload": payload,
                               "telegram_payment_charge_id": charge_id or f"stxTEST{secrets.token_hex(16)}",
                               "provider_payment_charge_id": ""}}}


def refunded_payment(user_id: int, payload: str, amount: int, charge_id: str,
                     update_id: int | None = None) -> dict[str, Any]:
    """The service message Telegram sends when a Stars payment was refunded (by the bot or elsewhere)."""
    return {"update_id": update_id or next_update_id(), "message": {
        "message_id": secrets.randbelow(10**6) + 1, "date": int(time.time()),
        "chat": {"id": user_id, "type": "private"}, "from": user(user_id),
        "refunded_payment": {"currency": "XTR", "total_amount": amount, "invoice_payload": payload,
                             "telegram_payment_charge_id": charge_id}}}
