"""The Mini App's pages (SPEC §7): buyer-facing HTML routes, their assets, and demo mode's signed buyer.

Owns the page routes (catalogue, plans of a country / region / global, checkout, My eSIMs, eSIM detail,
help), which render only the page chrome — the data comes from the JSON API in the browser, authenticated
with the buyer's initData. It also owns how the code reaches Telegram's web view fresh and fast: the JS
modules in `static/js/` and the ru/en dictionary `static/i18n.json` are served as one bundle, the CSS is
inlined, and `static_url()` puts a content hash on every asset URL so those are cached for a year while
HTML is never cached (`no-store`). Demo mode only: `GET /api/demo/init-data` signs a demo buyer and
`POST /api/demo/pay/<order_id>` plays Telegram's part of a payment, so the shop can be tried in a browser.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, redirect, render_template, request, url_for
from markupsafe import Markup

import extensions
import updates
from auth import buyer_required, current_buyer, sign_init_data
from errors import api_error
from orders import AWAITING_PAYMENT, belongs_to

bp = Blueprint("pages", __name__)

STATIC = Path(__file__).resolve().parent / "static"
LANGUAGES = ("en", "ru")
CSS_FILE = "css/app.css"
I18N_FILE = "i18n.json"
# The bundle's parts, in load order: core first (namespace, Telegram, i18n, API), boot last (runs the page).
JS_MODULES = ("js/core.js", "js/catalogue.js", "js/plans.js", "js/checkout.js", "js/orders.js", "js/esim.js",
              "js/boot.js")
BUNDLE = "app.js"
YEAR = 365 * 24 * 3600

DEMO_USER = {"id": 1000001, "first_name": "Demo", "username": "demo_buyer"}

_ISO = re.compile(r"[A-Za-z]{2}")
_SLUG = re.compile(r"[a-z0-9-]{1,64}")
_BUNDLE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_ORDER_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_TELEGRAM_HANDLE = re.compile(r"@?([A-Za-z][A-Za-z0-9_]{3,31})")


# ---- assets --------------------------------------------------------------------------------------------

# (mtimes, content, hash) per asset. Files are read and hashed once; a changed mtime (a developer's edit,
# a deploy without restart) is picked up on the next request, so a hash never describes stale content.
_assets: dict[str, tuple[tuple[int, ...], bytes, str]] = {}


def _short_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def _mtimes(names: tuple[str, ...]) -> tuple[int, ...]:
    return tuple((STATIC / name).stat().st_mtime_ns for name in names)


def _build_bundle() -> bytes:
    parts = ["/* esimsdata Mini App: static/i18n.json + static/js/*.js, joined by pages.py */",
             "window.ES_I18N = " + json.dumps(json.loads((STATIC / I18N_FILE).read_text("utf-8")),
                                              ensure_ascii=False, separators=(",", ":")) + ";"]
    for name in JS_MODULES:
        parts.append(f"/* ---- {name} ---- */\n" + (STATIC / name).read_text("utf-8"))
    return "\n".join(parts).encode()


def asset(name: str) -> tuple[bytes, str]:
    """(content, short sha256) of a static file, or of the JS bundle when `name` is BUNDLE."""
    sources = (I18N_FILE, *JS_MODULES) if name == BUNDLE else (name,)
    mtimes = _mtimes(sources)
    cached = _assets.get(name)
    if cached is None or cached[0] != mtimes:
        content = _build_bundle() if name == BUNDLE else (STATIC / name).read_bytes()
        cached = (mtimes, content, _short_hash(content))
        _assets[name] = cached
    return cached[1], cached[2]


def static_url(filename: str) -> str:
    """URL of an asset with its content hash (`?v=`), so a changed file is a new URL inside Telegram."""
    _, version = asset(filename)
    if filename == BUNDLE:
        return url_for("pages.bundle", name=BUNDLE, v=version)
    return url_for("static", filename=filename, v=version)


def inline_css() -> Markup:
    """The stylesheet, inlined into every page: one request less on the first screen (our own file)."""
    content, _ = asset(CSS_FILE)
    return Markup(content.decode())


def translations() -> dict[str, dict[str, str]]:
    content, _ = asset(I18N_FILE)
    cached = _parsed_i18n.get(content)
    if cached is None:
        _parsed_i18n.clear()
        cached = _parsed_i18n[content] = json.loads(content)
    return cached


_parsed_i18n: dict[bytes, dict[str, dict[str, str]]] = {}


@bp.record_once
def _warm_assets(_state: Any) -> None:
    # Hash everything at start-up: a missing or broken asset fails the deploy, not a buyer's page.
    for name in (CSS_FILE, I18N_FILE, BUNDLE):
        asset(name)
    translations()


@bp.get("/assets/<name>")
def bundle(name: str) -> Response:
    if name != BUNDLE:
        abort(404)
    content, version = asset(BUNDLE)
    response = Response(content, mimetype="text/javascript")
    response.headers["Cache-Control"] = _asset_cache(version)
    return response


def _asset_cache(version: str) -> str:
    # Only the URL naming the current content may be cached for good; anything else revalidates.
    if request.args.get("v") == version:
        return f"public, max-age={YEAR}, immutable"
    return "no-cache"


@bp.after_app_request
def _static_cache(response: Response) -> Response:
    if request.endpoint == "static" and response.status_code == 200 and request.args.get("v"):
        filename = (request.view_args or {}).get("filename", "")
        try:
            _, version = asset(filename)
        except OSError:
            return response
        response.headers["Cache-Control"] = _asset_cache(version)
    return response


# ---- language ------------------------------------------------------------------------------------------


def page_language() -> str:
    """The language the server renders in: the browser JS's choice (cookie), else Accept-Language.

    The JS decides from the switch (localStorage) or Telegram's `language_code` and stores it in the `lang`
    cookie, so from the second page on the HTML arrives in the buyer's language without a flash.
    """
    chosen = request.cookies.get("lang")
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES, default="en") or "en"


def translate(key: str, lang: str | None = None) -> str:
    table = translations()
    lang = lang or page_language()
    return table.get(lang, {}).get(key) or table["en"].get(key) or key


# ---- pages ---------------------------------------------------------------------------------------------


def _support() -> dict[str, str | None]:
    """The support contact from config: a Telegram @handle becomes a t.me link, anything else is text."""
    contact = str(current_app.config.get("SUPPORT_CONTACT") or "").strip()
    match = _TELEGRAM_HANDLE.fullmatch(contact)
    if match:
        return {"label": "@" + match.group(1), "url": f"https://t.me/{match.group(1)}"}
    if contact.startswith(("https://", "mailto:")):
        return {"label": contact.removeprefix("mailto:"), "url": contact}
    return {"label": contact, "url": None}


def _bot_url() -> str | None:
    # The bot's @username is not a required setting; without it the "open in Telegram" page explains in words.
    match = _TELEGRAM_HANDLE.fullmatch(str(current_app.config.get("TELEGRAM_BOT_USERNAME") or "").strip())
    return f"https://t.me/{match.group(1)}" if match else None


@bp.app_context_processor
def _template_helpers() -> dict[str, Any]:
    lang = page_language()
    return {
        "lang": lang,
        "t": lambda key: translate(key, lang),
        "static_url": static_url,
        "inline_css": inline_css,
        "demo": bool(current_app.config.get("DEMO_MODE")),
        "support": _support(),
        "bot_url": _bot_url(),
    }


def _page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    return render_template(template, **context), status


def _not_found(message_key: str = "page_not_found") -> tuple[str, int]:
    return _page("not_found.html", 404, page="not_found", message_key=message_key)


def _area(kind: str, code: str) -> dict[str, Any] | None | bool:
    """The catalogue's summary of an area; None while the catalogue loads, False if it has no such area."""
    index = extensions.catalogue().index
    if index is None:
        return None
    if (kind, code) not in index.by_area:
        return False
    return index.summary(kind, code)


@bp.after_request
def _no_store(response: Response) -> Response:
    # Telegram's web view caches hard; HTML must never be reused, so it always names the current assets.
    if response.mimetype == "text/html":
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        # Only our origin and telegram.org (the Mini App script) may ever be asked for anything.
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self' https://telegram.org; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'"
        )
    return response


@bp.get("/")
def catalogue() -> tuple[str, int]:
    return _page("catalogue.html", page="catalogue", root=True)


@bp.get("/country/<iso>")
def country(iso: str) -> Any:
    if not _ISO.fullmatch(iso):
        return _not_found("area_not_found")
    if iso != iso.upper():
        return redirect(url_for("pages.country", iso=iso.upper(), **request.args), 301)
    return _plans("local", iso)


@bp.get("/region/<slug>")
def region(slug: str) -> Any:
    if not _SLUG.fullmatch(slug):
        return _not_found("area_not_found")
    return _plans("regional", slug)


@bp.get("/global")
def global_plans() -> Any:
    return _plans("global", "global")


def _plans(kind: str, code: str) -> tuple[str, int]:
    area = _area(kind, code)
    if area is False:
        return _not_found("area_not_found")
    return _page("plans.html", page="plans", kind=kind, code=code, area=area or None)


@bp.get("/checkout/<bundle_name>")
def checkout(bundle_name: str) -> tuple[str, int]:
    if not _BUNDLE_NAME.fullmatch(bundle_name):
        return _not_found("plan_gone")
    index = extensions.catalogue().index
    if index is not None and bundle_name not in index.plans:
        return _not_found("plan_gone")
    return _page("checkout.html", page="checkout", bundle_name=bundle_name)


@bp.get("/my-esims")
def my_esims() -> tuple[str, int]:
    return _page("my_esims.html", page="orders", root=True)


@bp.get("/esim/<order_id>")
def esim(order_id: str) -> tuple[str, int]:
    if not _ORDER_ID.fullmatch(order_id):
        return _not_found()
    return _page("esim.html", page="esim", order_id=order_id)


@bp.get("/help")
def help_page() -> tuple[str, int]:
    return _page("help.html", page="help", root=True)


# ---- demo ----------------------------------------------------------------------------------------------


def demo_only(view: Callable) -> Callable:
    """The route exists in demo mode only: anywhere else it is a plain 404, before any other check."""
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_app.config.get("DEMO_MODE"):
            abort(404)
        return view(*args, **kwargs)
    return wrapper


@bp.get("/api/demo/init-data")
@demo_only
def demo_init_data() -> Response:
    """A signed demo buyer, so the shop can be tried in a normal browser."""
    lang = request.args.get("lang", "en")
    user = {**DEMO_USER, "language_code": lang if lang in LANGUAGES else "en"}
    response = jsonify(init_data=sign_init_data(current_app.config["TELEGRAM_BOT_TOKEN"], user))
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
    secret = current_app.config.get("TELEGRAM_WEBHOOK_SECRET")
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
