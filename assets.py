"""How the Mini App's code reaches Telegram's web view fresh and fast (SPEC §7, STYLE.md): the JS modules in
`static/js/` and the ru/en dictionary `static/i18n.json` are served as one bundle (`/assets/app.js?v=<hash>`),
the CSS is inlined, and `static_url()` puts a content hash on every other static URL (such as the device list,
`static/devices.json`), so assets are cached for a year while a page never names stale code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, request, url_for
from markupsafe import Markup

bp = Blueprint("assets", __name__)

STATIC = Path(__file__).resolve().parent / "static"
CSS_FILE = "css/app.css"
I18N_FILE = "i18n.json"
DEVICES_FILE = "devices.json"  # the device check's phone list (README: how to update it)
# The bundle's parts, in load order: dom.js first (it makes the ES namespace), then what the pages share
# (Telegram glue, language, formatting, API, page pieces, moving between pages), the pages, and boot.js last
# (starts the router on the page the server rendered).
JS_MODULES = ("js/dom.js", "js/telegram.js", "js/i18n.js", "js/format.js", "js/api.js", "js/ui.js", "js/router.js",
              "js/devices.js", "js/catalogue.js", "js/plans.js", "js/checkout.js", "js/orders.js", "js/esim.js",
              "js/boot.js")
BUNDLE = "app.js"
YEAR = 365 * 24 * 3600


# (mtimes, content, hash) per asset. Files are read and hashed once; a changed mtime (a developer's edit,
# a deploy without restart) is picked up on the next request, so a hash never describes stale content.
_assets: dict[str, tuple[tuple[int, ...], bytes, str]] = {}


def _short_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def _mtimes(names: tuple[str, ...]) -> tuple[int, ...]:
    return tuple((STATIC / name).stat().st_mtime_ns for name in names)


def compact(source: str, name: str = "module") -> str:
    """A module as the bundle carries it: indentation, blank lines and whole-line comments left out.

    Line by line, and every line of code kept as it is, so nothing but whitespace and comments can change: a
    quarter of the first screen's bytes. What this cannot do safely is refused (a ValueError fails the start,
    not a buyer's page): code after a block comment on its line, and code that may span lines (a template
    literal, a line continued with a backslash).
    """
    lines, in_comment = [], False
    for number, line in enumerate(source.splitlines(), 1):
        text = line.strip()
        if in_comment or text.startswith("/*"):
            if "*/" in text and not text.endswith("*/"):
                raise ValueError(f"{name}:{number}: code after a block comment on one line: split the line")
            in_comment = not text.endswith("*/")
        elif text and not text.startswith("//"):
            if "`" in text or text.endswith("\\"):
                raise ValueError(f"{name}:{number}: a template literal or a continued line: the bundle keeps code "
                                 "line by line (assets.compact), so write it with plain strings")
            lines.append(text)
    return "\n".join(lines)


def _build_bundle() -> bytes:
    parts = ["/* esimsdata Mini App: static/i18n.json + static/js/*.js, joined by assets.py */",
             "window.ES_I18N = " + json.dumps(json.loads((STATIC / I18N_FILE).read_text("utf-8")),
                                              ensure_ascii=False, separators=(",", ":")) + ";"]
    for name in JS_MODULES:
        parts.append(f"/* ---- {name} ---- */\n" + compact((STATIC / name).read_text("utf-8"), name))
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
        return url_for("assets.bundle", name=BUNDLE, v=version)
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
    for name in (CSS_FILE, I18N_FILE, DEVICES_FILE, BUNDLE):
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


