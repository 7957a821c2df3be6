"""Who is calling: Telegram Mini App buyers (initData), operators (service token) and the admin (SPEC §4).

initData is checked exactly as Telegram specifies (../shared/reference/telegram.md §2.1): the raw query
string is URL-decoded, every field but `hash` is sorted into the data-check-string with its raw value
(JSON is never re-serialised), the HMAC-SHA256 keyed with HMAC("WebAppData", bot token) is compared in
constant time, and `auth_date` must be at most INITDATA_MAX_AGE_SECONDS old. The buyer's id comes only
from there, never from a query parameter or a body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any
from urllib.parse import parse_qsl, urlencode

from flask import current_app, g, request

import extensions
from errors import api_error

CLOCK_SKEW_SECONDS = 300  # a phone's clock a few minutes ahead is not an attack


class InitDataError(ValueError):
    """initData is missing, malformed, forged or too old; the message says which (for the log)."""


@dataclass(frozen=True)
class Buyer:
    id: int
    first_name: str = ""
    username: str | None = None
    language_code: str | None = None

    @property
    def language(self) -> str:
        """"ru" for Russian-speaking buyers, "en" for everyone else (SPEC §1)."""
        return "ru" if (self.language_code or "").lower().startswith("ru") else "en"


def _secret_key(bot_token: str) -> bytes:
    return hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()


def _data_check_string(fields: dict[str, str]) -> str:
    return "\n".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "hash")


def validate_init_data(raw: str, bot_token: str, max_age: int, now: float | None = None) -> Buyer:
    """Return the buyer described by `raw` initData, or raise InitDataError."""
    if not raw:
        raise InitDataError("no initData")
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=True)
    except ValueError as exc:
        raise InitDataError(f"initData is not a query string: {exc}") from None
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise InitDataError("initData repeats a field")
    received = fields.get("hash", "")
    if not received:
        raise InitDataError("initData has no hash")
    expected = hmac.new(_secret_key(bot_token), _data_check_string(fields).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), received.lower().encode()):  # bytes: any text compares
        raise InitDataError("initData hash does not match")
    try:
        auth_date = int(fields["auth_date"])
    except (KeyError, ValueError):
        raise InitDataError("initData has no valid auth_date") from None
    now = time.time() if now is None else now
    if now - auth_date > max_age:
        raise InitDataError(f"initData is {int(now - auth_date)}s old (limit {max_age}s)")
    if auth_date - now > CLOCK_SKEW_SECONDS:
        raise InitDataError("initData auth_date is in the future")
    try:
        user = json.loads(fields["user"])
        user_id = int(user["id"])
    except (KeyError, ValueError, TypeError):
        raise InitDataError("initData has no valid user") from None
    if isinstance(user.get("id"), bool) or user_id <= 0:
        raise InitDataError("initData user id is not a Telegram id")
    return Buyer(id=user_id, first_name=str(user.get("first_name") or ""), username=user.get("username"),
                 language_code=user.get("language_code"))


def sign_init_data(bot_token: str, user: dict[str, Any], auth_date: int | None = None,
                   extra: dict[str, str] | None = None) -> str:
    """Build initData as Telegram does (used by demo mode, tests and scripts/test-stars-webhook)."""
    fields = {"auth_date": str(int(time.time()) if auth_date is None else auth_date),
              "query_id": "AAH-esimsdata-local",
              "user": json.dumps(user, ensure_ascii=False, separators=(",", ":")),
              **(extra or {})}
    fields["hash"] = hmac.new(_secret_key(bot_token), _data_check_string(fields).encode(),
                              hashlib.sha256).hexdigest()
    return urlencode(fields)


def current_buyer() -> Buyer:
    return g.buyer


def buyer_required(view: Callable) -> Callable:
    """The view runs only for a Mini App caller with valid `Authorization: tma <initData>`; sets g.buyer."""
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
        try:
            if scheme.lower() != "tma":
                raise InitDataError("no 'Authorization: tma <initData>' header")
            settings = extensions.settings()
            g.buyer = validate_init_data(raw.strip(), settings.telegram_bot_token,
                                         settings.initdata_max_age_seconds)
        except InitDataError as exc:
            current_app.logger.info("buyer auth refused for %s %s: %s", request.method, request.path, exc)
            return api_error(401, "unauthorized", "Please reopen the shop from Telegram and try again.")
        return view(*args, **kwargs)
    return wrapper


def token_matches(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; an unset expected token matches nothing."""
    if not expected or not given:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def service_required(view: Callable) -> Callable:
    """Operator endpoints: `X-Service-Token` must equal SERVICE_TOKEN (unset = endpoint closed)."""
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not token_matches(request.headers.get("X-Service-Token"), extensions.settings().service_token):
            current_app.logger.warning("service token refused for %s %s from %s", request.method, request.path,
                                       request.remote_addr)
            return api_error(403, "forbidden", "A valid X-Service-Token header is required.")
        return view(*args, **kwargs)
    return wrapper
