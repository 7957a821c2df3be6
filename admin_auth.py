"""Who may use the admin console and its API (SPEC §4, §7): the owner's password login, its session cookie,
the CSRF token that goes with it, the throttle on failed logins, and `Authorization: Bearer <ADMIN_TOKEN>`
for scripts.

The session is a cookie signed with a key derived from ADMIN_PASSWORD and ADMIN_TOKEN (changing either signs
everyone out), holding only an expiry-checked timestamp and the session's CSRF token, which also names the
session: no order data, nothing to forge without the key. Logging out puts the session on a short list of
ended ones (data/admin-sessions.json, kept until they would have expired anyway), so a copied cookie stops
working too. With no ADMIN_PASSWORD set, nobody can log in (the token still works).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Response, g, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

import extensions
from auth import token_matches
from config import Settings
from errors import api_error
from storage import JsonStore
from throttle import Throttle

log = logging.getLogger("admin")

COOKIE = "esimsdata_admin"
SESSION_SECONDS = 12 * 3600  # a working day; then the owner logs in again
CSRF_HEADER = "X-CSRF-Token"
LOGIN_FAILURES_ALLOWED = 5  # per client in LOGIN_WINDOW_SECONDS; then 429 until the window moves on
LOGIN_WINDOW_SECONDS = 15 * 60
LOGIN_CLIENTS_KEPT = 5000  # the throttle file stays small whatever an attacker spreads his guesses over


def _serializer(settings: Settings) -> URLSafeTimedSerializer | None:
    if not settings.admin_password:
        return None
    secret = "\0".join((settings.admin_password, settings.admin_token, settings.telegram_bot_token))
    key = hmac.new(b"esimsdata admin session", secret.encode(), hashlib.sha256).digest()
    return URLSafeTimedSerializer(key, salt="admin-session")


def password_matches(given: Any) -> bool:
    return isinstance(given, str) and token_matches(given, extensions.settings().admin_password)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def start_session(response: Response, csrf: str) -> None:
    """Sign the owner in on `response`: the session cookie, carrying this session's CSRF token."""
    serializer = _serializer(extensions.settings())
    assert serializer is not None  # only called after password_matches()
    response.set_cookie(COOKIE, serializer.dumps({"csrf": csrf}), max_age=SESSION_SECONDS, httponly=True,
                        samesite="Strict", secure=_secure(), path="/")


def end_session(response: Response) -> None:
    """Sign out: the cookie goes, and the session it named can never be used again (a copy of the cookie too)."""
    current = session()
    if current is not None:
        with extensions.get("ended_sessions").transaction() as ended:
            now = int(time.time())
            for key in [k for k, until in ended.items() if not isinstance(until, int) or until < now]:
                del ended[key]
            ended[_session_key(current["csrf"])] = now + SESSION_SECONDS
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="Strict", secure=_secure())


def _secure() -> bool:
    # Behind nginx the request may look like plain http; the shop's public address says how browsers reach it.
    return request.is_secure or extensions.settings().public_base_url.startswith("https://")


def _session_key(csrf: str) -> str:
    return hashlib.sha256(csrf.encode()).hexdigest()[:32]  # the list never holds a usable token


def session() -> dict[str, Any] | None:
    """The signed-in owner's session from the cookie ({"csrf": ...}), or None."""
    raw = request.cookies.get(COOKIE)
    serializer = _serializer(extensions.settings())
    if not raw or serializer is None:
        return None
    try:
        data = serializer.loads(raw, max_age=SESSION_SECONDS)
    except BadSignature:  # also an expired one (SignatureExpired is a BadSignature)
        return None
    if not isinstance(data, dict) or not isinstance(data.get("csrf"), str):
        return None
    if _session_key(data["csrf"]) in extensions.get("ended_sessions").read():
        return None
    return data


def admin_required(view: Callable) -> Callable:
    """The view runs for `Authorization: Bearer <ADMIN_TOKEN>` or a session cookie; a cookie's POST must also
    carry its CSRF token in X-CSRF-Token. Anything else is 401 (403 for a missing CSRF token), with no data."""
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token_matches(token.strip(), extensions.settings().admin_token):
            g.admin = "token"
        else:
            current = session()
            if current is None:
                return api_error(401, "unauthorized", "Sign in to the admin console.")
            if request.method not in ("GET", "HEAD") and not token_matches(request.headers.get(CSRF_HEADER),
                                                                           current["csrf"]):
                log.warning("admin %s %s refused: no valid CSRF token (from %s)", request.method, request.path,
                            client_address())
                return api_error(403, "csrf", "Reload the admin console and try again.")
            g.admin = "session"
        return view(*args, **kwargs)
    return wrapper


def cross_site() -> bool:
    """Whether a browser says this request comes from another site's page (which must not log in, nor use up
    the owner's attempts)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    return origin is not None and origin.rstrip("/") != request.host_url.rstrip("/") \
        and origin.rstrip("/") != extensions.settings().public_base_url


def client_address() -> str:
    """The caller's address: nginx on the same machine (the only proxy trusted) passes it in X-Forwarded-For
    (README: `proxy_set_header X-Forwarded-For $remote_addr`)."""
    remote = request.remote_addr or "?"
    forwarded = request.headers.get("X-Forwarded-For", "")
    if remote in ("127.0.0.1", "::1") and forwarded:
        return forwarded.split(",")[-1].strip()[:64] or remote
    return remote


def _client_key(address: str) -> str:
    """IPv6 clients by their /64 (one home or phone has a whole /64 to pick addresses from)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)


class LoginThrottle(Throttle):
    """Login attempts per client, shared by every process through a small file (data/admin-logins.json); a good
    password takes the client's attempts back (`cleared`)."""

    def __init__(self, store: JsonStore) -> None:
        super().__init__(store, LOGIN_FAILURES_ALLOWED, LOGIN_WINDOW_SECONDS, LOGIN_CLIENTS_KEPT)

    def attempt(self, client: str) -> int:
        return super().attempt(_client_key(client))

    def cleared(self, client: str) -> None:
        super().cleared(_client_key(client))
