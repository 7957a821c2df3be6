"""The admin console's routes (SPEC §4, §7): the page `/admin/orders.html`, login and logout, and
`/api/admin/*` — orders (search, filters, detail, CSV), the owner's actions (resend, retry, refund), sales
stats and buyers. Who may call them is `admin_auth.py`; what they read is `admin_data.py`; the actions are
the fulfilment's own exactly-once paths.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from flask import Blueprint, Flask, Response, abort, g, jsonify, render_template, request

import admin_data
import events
import extensions
import orders
from admin_auth import (
    LoginThrottle,
    admin_required,
    client_address,
    cross_site,
    end_session,
    new_csrf_token,
    password_matches,
    session,
    start_session,
)
from assets import static_url
from errors import api_error
from fulfilment import OwnerActionError
from qr import lpa_for, qr_png
from storage import JsonStore

log = logging.getLogger("admin")

bp = Blueprint("admin", __name__)

# The console is our own script and stylesheet only: nothing inline, no other host, never inside a frame.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")


def init_app(app: Flask) -> None:
    settings = extensions.settings(app)
    def small_file(name: str) -> JsonStore:
        return JsonStore(f"{settings.data_dir}/{name}", lock_timeout=settings.storage_lock_timeout)
    index = admin_data.OrderIndex(extensions.store(app))
    if settings.admin_warm_up:
        # Summarising every order takes a few seconds at 50,000 (bench/admin_bench.py): done in the background
        # a little after start, once buyers' first requests are served, so the owner's first page is quick.
        timer = threading.Timer(WARM_UP_AFTER_SECONDS, _warm, args=(index,))
        timer.daemon = True  # never holds up a worker's exit
        timer.start()
    extensions.init(app, admin_index=index,
                    login_throttle=LoginThrottle(small_file("admin-logins.json")),
                    ended_sessions=small_file("admin-sessions.json"))
    app.register_blueprint(bp)


WARM_UP_AFTER_SECONDS = 5.0


def _warm(index: admin_data.OrderIndex) -> None:
    started = time.monotonic()
    try:
        count = len(index.summaries())
        log.info("admin: %d orders summarised for the console in %.3fs", count, time.monotonic() - started)
    except Exception:  # the first page builds them instead
        log.exception("admin: could not summarise the orders in the background")


def _index() -> admin_data.OrderIndex:
    return extensions.get("admin_index")


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = CSP
    return response


@bp.errorhandler(admin_data.QueryError)
def _bad_query(exc: admin_data.QueryError) -> Any:
    return api_error(400, "invalid_query", str(exc))


@bp.errorhandler(OwnerActionError)
def _refused(exc: OwnerActionError) -> Any:
    return api_error(exc.status, exc.error, exc.message)


# ---- the page and signing in ---------------------------------------------------------------------


@bp.get("/admin/")
@bp.get("/admin/orders.html")
def console() -> str:
    return render_template("admin.html", script_url=static_url("admin/admin.js"),
                           settings_script_url=static_url("admin/settings.js"),
                           style_url=static_url("admin/admin.css"))


@bp.post("/admin/login")
def login() -> Any:
    client = client_address()
    # JSON only (a cross-site form cannot send it without asking first), and never from another site's page:
    # neither may use up the owner's attempts.
    if cross_site() or not request.is_json:
        log.warning("admin login from %s refused: %s", client, "cross-site" if cross_site() else "not JSON")
        return api_error(403, "forbidden", "Sign in from the admin console's own page.")
    if not extensions.settings().admin_password:
        log.warning("admin login from %s, but ADMIN_PASSWORD is not set", client)
        return api_error(403, "login_disabled", "Login is off: set ADMIN_PASSWORD on the server.")
    throttle: LoginThrottle = extensions.get("login_throttle")
    wait = throttle.attempt(client)
    if wait:
        log.warning("admin login refused for %s: too many failed attempts", client)
        return api_error(429, "too_many_attempts", f"Too many attempts. Try again in {wait // 60 + 1} min.")
    body = request.get_json(silent=True)
    if not password_matches(body.get("password") if isinstance(body, dict) else None):
        log.warning("admin login failed from %s", client)
        return api_error(401, "wrong_password", "Wrong password.")
    throttle.cleared(client)
    log.info("admin signed in from %s", client)
    csrf = new_csrf_token()
    response = jsonify(ok=True, csrf=csrf)
    start_session(response, csrf)
    return response


@bp.post("/admin/logout")
@admin_required
def logout() -> Any:
    response = jsonify(ok=True)
    end_session(response)
    return response


@bp.get("/api/admin/session")
@admin_required
def whoami() -> Any:
    current = session() if g.admin == "session" else None
    return jsonify(signed_in=True, via=g.admin, csrf=current["csrf"] if current else None)


# ---- events to the owner's backend ---------------------------------------------------------------


@bp.get("/api/admin/outbox")
@admin_required
def outbox() -> Any:
    waiting = events.troubles(extensions.store())
    counts = events.backlog(waiting)
    return jsonify(enabled=extensions.get("outbox").enabled, events=waiting, pending=counts["pending"],
                   failed=counts["failed"])


@bp.post("/api/admin/outbox/<event_id>/send")
@admin_required
def send_event_again(event_id: str) -> Any:
    try:
        with orders.acting_as("admin"):
            order = extensions.get("outbox").send_again(extensions.store(), event_id)
    except ValueError as exc:
        return api_error(409, "not_now", str(exc))
    if order is None:
        return api_error(404, "not_found", "No event has this id.")
    log.info("admin (%s) asked to send event %s of order %s again", g.admin, event_id, order.get("id"))
    return jsonify(ok=True, message="It will be sent within a few seconds.")


# ---- orders --------------------------------------------------------------------------------------


# The console's lists and sums: each is what admin_data makes of the query string (a QueryError is a 400).
READERS = {"orders": admin_data.page_of, "stats": admin_data.stats, "users": admin_data.buyers}


@bp.get("/api/admin/<any(orders, stats, users):view>")
@admin_required
def read(view: str) -> Any:
    return jsonify(READERS[view](_index(), request.args))


@bp.get("/api/admin/orders.csv")
@admin_required
def order_csv() -> Response:
    response = Response(admin_data.csv_text(_index(), request.args), mimetype="text/csv")
    stamp = orders.now_iso()[:10]
    response.headers["Content-Disposition"] = f'attachment; filename="esimsdata-orders-{stamp}.csv"'
    return response


def _order(order_id: str) -> dict[str, Any]:
    order = extensions.store().get(order_id)
    if order is None:
        abort(404, description="No such order.")
    return order


@bp.get("/api/admin/orders/<order_id>")
@admin_required
def order_detail(order_id: str) -> Any:
    return jsonify(admin_data.detail(_order(order_id)))


@bp.get("/api/admin/orders/<order_id>/qr.png")
@admin_required
def order_qr(order_id: str) -> Response:
    order = _order(order_id)
    if not (order.get("smdpAddress") and order.get("matchingId")):
        abort(404, description="This order has no eSIM yet.")
    return Response(qr_png(lpa_for(order)), mimetype="image/png")


def _acted(action: str, order_id: str, message: str, result: dict[str, Any]) -> Any:
    log.info("admin (%s, %s) %s order %s: %s", g.admin, client_address(), action, order_id, message)
    return jsonify(ok=True, message=message, detail=admin_data.detail(result))


@bp.post("/api/admin/orders/<order_id>/resend")
@admin_required
def resend(order_id: str) -> Any:
    with orders.acting_as("admin"):
        result = extensions.fulfilment().resend(order_id)
    return _acted("resend", order_id, "The eSIM was sent to the buyer again.", result)


@bp.post("/api/admin/orders/<order_id>/retry")
@admin_required
def retry(order_id: str) -> Any:
    with orders.acting_as("admin"):
        result = extensions.fulfilment().retry_now(order_id)
    if result.get("delivered_at") and result.get("status") == orders.COMPLETED:
        message = "Done: the eSIM is ready and was delivered to the buyer."
    elif result.get("status") == orders.REFUNDED:
        message = "The order could not be fulfilled; the buyer's Stars were refunded."
    else:
        reason = orders.attention(result) or result.get("last_error") or "the next attempt is scheduled"
        message = f"Tried again; still {orders.STATUS_TEXT.get(str(result.get('status')), '?')}: {reason}"
    return _acted("retry", order_id, message, result)


@bp.post("/api/admin/orders/<order_id>/refund")
@admin_required
def refund(order_id: str) -> Any:
    body = request.get_json(silent=True) if request.is_json else None
    reason = body.get("reason") if isinstance(body, dict) else None
    reason = reason.strip()[:200] if isinstance(reason, str) else ""
    with orders.acting_as("admin"):
        result = extensions.fulfilment().refund_now(order_id, reason)
    if result.get("status") != orders.REFUNDED:
        raise OwnerActionError(502, "refund_failed", f"Telegram did not refund it: {result.get('refund_error')}. "
                                                     "It stays in Needs attention.")
    return _acted("refund", order_id, f"Refunded {result.get('stars')} ⭐; the buyer was told.", result)
