"""The Mini App's pages (SPEC §7): the buyer-facing HTML routes and what every page carries.

Owns the page routes (catalogue, plans of a country / region / global, checkout, My eSIMs, eSIM detail,
help), the language a page is rendered in, and the headers of every page: never cached (`no-store`), and a
Content-Security-Policy that allows only our origin and telegram.org. Each route answers the same one-document
app (templates/base.html): the page asked for rendered into <main>, every other page as a <template> that
static/js/router.js clones when the buyer moves on, so the Mini App is loaded once per launch and Telegram's
launch data never has to be stored. Pages render only their chrome; the data comes from the JSON API in the
browser, authenticated with the buyer's initData. Assets are `assets.py`; demo mode's buyer API is `demo_api.py`.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, url_for

import extensions
import richtext
from assets import inline_css, static_url, translations
from shop_settings import FAQ_TOPICS

bp = Blueprint("pages", __name__)

LANGUAGES = ("en", "ru")

_ISO = re.compile(r"[A-Za-z]{2}")
_SLUG = re.compile(r"[a-z0-9-]{1,64}")
_BUNDLE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_ORDER_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_TELEGRAM_HANDLE = re.compile(r"@?([A-Za-z][A-Za-z0-9_]{3,31})")


# ---- language ------------------------------------------------------------------------------------------


def page_language() -> str:
    """The language the server renders in: `?lang=`, else the `lang` cookie, else Accept-Language.

    The JS decides from the switch or Telegram's `language_code` and keeps it in the `lang` cookie; where the web
    view refuses the cookie (Telegram Web's cross-site iframe) it keeps it in the URL's `?lang=` instead, so a
    reload — or a link the bot gives with `?lang=` — is rendered in the buyer's language on the first paint.
    """
    for chosen in (request.args.get("lang"), request.cookies.get("lang")):
        if chosen in LANGUAGES:
            return chosen
    return request.accept_languages.best_match(LANGUAGES, default="en") or "en"


def translate(key: str, lang: str | None = None) -> str:
    table = translations()
    lang = lang or page_language()
    return table.get(lang, {}).get(key) or table["en"].get(key) or key


# ---- pages ---------------------------------------------------------------------------------------------


def _support() -> dict[str, Any]:
    """The support contact in force (the owner's, else config): a Telegram @handle becomes a t.me link, an https
    or mailto URL a link, anything else is text."""
    contact = extensions.shop().support_contact().strip()
    match = _TELEGRAM_HANDLE.fullmatch(contact)
    if match:
        return {"label": "@" + match.group(1), "url": f"https://t.me/{match.group(1)}", "telegram": True}
    if contact.startswith(("https://", "mailto:")):  # opened as a web or mail link: Telegram's opener takes t.me only
        return {"label": contact.removeprefix("mailto:"), "url": contact, "telegram": contact.startswith("https://t.me/")}
    return {"label": contact, "url": None, "telegram": False}


def _help_texts() -> dict[str, Any]:
    """The help page's FAQ and refund policy, per text: None while neither language has the owner's own (the page
    keeps its built-in, re-translated markup), else each language's text in force rendered by richtext.py (FAQ
    entries; the refund policy's paragraphs), shown by the page in the buyer's language. Every page carries the
    help page (as the router's template), so they are rendered once per change of the settings."""
    shop = extensions.shop()

    def render(_: Any) -> dict[str, Any]:
        texts, custom = shop.texts(), shop.custom_texts()
        draw = {"faq": richtext.faq, "refund_policy": richtext.blocks}
        return {name: {lang: make(texts[name][lang]) for lang in LANGUAGES} if any(custom[name].values()) else None
                for name, make in draw.items()}

    return shop.derived("help_html", render)


def _bot_url() -> str | None:
    # The bot's @username is not a required setting; without it the "open in Telegram" page explains in words.
    match = _TELEGRAM_HANDLE.fullmatch(extensions.settings().telegram_bot_username.strip())
    return f"https://t.me/{match.group(1)}" if match else None


@bp.app_context_processor
def _template_helpers() -> dict[str, Any]:
    lang = page_language()
    return {
        "lang": lang,
        "t": lambda key: translate(key, lang),
        "static_url": static_url,
        "inline_css": inline_css,
        "demo": extensions.settings().demo_mode,
        "support": _support(),
        "help_texts": _help_texts(),
        "faq_topics": FAQ_TOPICS,  # the built-in FAQ, the same the owner's editor starts from
        "bot_url": _bot_url(),
    }


# The app's pages: view name -> (template, title key, parent page). A view without a parent is a root: the tab
# bar shows, Back does not. static/js/router.js has the client's side of the same table (paths -> views).
VIEWS: dict[str, tuple[str, str | None, str | None]] = {
    "catalogue": ("catalogue.html", None, None),
    "plans": ("plans.html", None, "/"),
    "checkout": ("checkout.html", "checkout_title", "/"),
    "orders": ("my_esims.html", "my_title", None),
    "esim": ("esim.html", "esim_title", "/my-esims"),
    "help": ("help.html", "help_title", None),
    "not_found": ("not_found.html", None, "/"),
}


def _page(view: str, status: int = 200, title: str | None = None, **context: Any) -> tuple[str, int]:
    template, title_key, parent = VIEWS[view]
    if title is None:
        title = f"{translate(title_key)} · esimsdata" if title_key else "esimsdata"
    # Every other page as a <template> for the router; the one shown is copied from <main> by the script.
    others = [(name, spec[0]) for name, spec in VIEWS.items() if name not in (view, "not_found")]
    return render_template("base.html", page=view, view_file=template, title=title, root=parent is None,
                           parent=parent or "/", templates=others, **context), status


def _not_found(message_key: str = "page_not_found") -> tuple[str, int]:
    return _page("not_found", 404, message_key=message_key)


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
    return _page("catalogue")


@bp.get("/country/<iso>")
def country(iso: str) -> Any:
    if not _ISO.fullmatch(iso):
        return _not_found("area_not_found")
    if iso != iso.upper():
        query = request.query_string.decode()  # as it came: query names never reach url_for's own arguments
        return redirect(url_for("pages.country", iso=iso.upper()) + ("?" + query if query else ""), 301)
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
    name = area["name"] if area else None
    return _page("plans", title=f"{name} · esimsdata" if name else None, kind=kind, code=code, area=area or None)


@bp.get("/checkout/<bundle_name>")
def checkout(bundle_name: str) -> tuple[str, int]:
    if not _BUNDLE_NAME.fullmatch(bundle_name):
        return _not_found("plan_gone")
    index = extensions.catalogue().index
    if index is not None and bundle_name not in index.plans:
        return _not_found("plan_gone")
    return _page("checkout")


@bp.get("/my-esims")
def my_esims() -> tuple[str, int]:
    return _page("orders")


@bp.get("/esim/<order_id>")
def esim(order_id: str) -> tuple[str, int]:
    if not _ORDER_ID.fullmatch(order_id):
        return _not_found()
    return _page("esim")


@bp.get("/help")
def help_page() -> tuple[str, int]:
    return _page("help")


