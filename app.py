"""The Flask application factory: `gunicorn 'app:create_app()'` and the tests build the shop here.

`create_app(config)` reads the configuration (environment, `.env`, then `config` overrides), builds the
collaborators (orders store, eSIM Go client, catalogue cache) onto `app.extensions`, registers the routes
and starts the catalogue's background refresh. Nothing touches the network at import time.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask, jsonify
from flask.json.provider import DefaultJSONProvider

import bot
import extensions
from catalogue import Catalogue
from config import load_config
from errors import register_error_handlers
from esimgo import EsimGoClient
from fulfilment import Fulfilment
from pricing import PriceSettings
from storage import OrderStore

log = logging.getLogger("esimsdata")

MAX_BODY_BYTES = 256 * 1024


class SafeJSON(DefaultJSONProvider):
    """Flask's JSON, where a body nested too deeply to parse is bad input (400), like any other bad JSON."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


def create_app(config: dict[str, Any] | None = None) -> Flask:
    settings = load_config(config)
    _configure_logging()
    app = Flask(__name__)
    app.config.update(settings)
    # Telegram updates and our own bodies are a few KB; anything far larger is refused with 413 before parsing.
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json = SafeJSON(app)
    app.json.sort_keys = False  # keep our field order in answers (jq-friendly, readable)

    data_dir = Path(settings["DATA_DIR"])
    data_dir.mkdir(parents=True, exist_ok=True)
    if settings["DEMO_MODE"]:
        import demo  # only demo mode needs the sandboxes

        demo.ensure_sandboxes(settings)
        log.warning("DEMO MODE: no ESIMGO_API_KEY/TELEGRAM_BOT_TOKEN set; using the local eSIM Go and "
                    "Telegram sandboxes (%s, %s). Nothing here is real.",
                    settings["ESIMGO_BASE_URL"], settings["TELEGRAM_API_URL"])

    store = OrderStore(data_dir / "orders.json", lock_timeout=settings["STORAGE_LOCK_TIMEOUT"])
    client = EsimGoClient(settings["ESIMGO_BASE_URL"], settings["ESIMGO_API_KEY"])
    catalogue = Catalogue(
        client,
        data_dir / "catalogue.json",
        PriceSettings.from_config(settings),
        refresh_seconds=settings["CATALOGUE_REFRESH_HOURS"] * 3600,
        retry_seconds=settings["CATALOGUE_RETRY_SECONDS"],
    )
    extensions.init(app, store=store, esimgo=client, catalogue=catalogue)
    bot.init_app(app)
    extensions.init(app, fulfilment=Fulfilment(store, client, extensions.get("bot", app), app.config))

    register_error_handlers(app)
    from assets import bp as assets_bp
    from demo_api import bp as demo_bp
    from pages import bp as pages_bp
    from shop_api import bp as shop_api_bp
    from shop_api import qr_bp

    app.register_blueprint(shop_api_bp)
    app.register_blueprint(qr_bp)
    app.register_blueprint(assets_bp)
    app.register_blueprint(pages_bp)
    app.register_blueprint(demo_bp)

    @app.after_request
    def protect(response):  # type: ignore[no-untyped-def]
        # Order answers carry activation codes (LPA, Matching ID, QR): nothing is stored by a browser, a proxy
        # or Telegram's web view unless a route says otherwise (hashed assets do).
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    @app.get("/healthz")
    def healthz():  # type: ignore[no-untyped-def]
        storage_state = store.check()
        catalogue_state = catalogue.state()
        healthy = storage_state["ok"] and catalogue_state["ok"]
        body = {"ok": healthy, "demo": settings["DEMO_MODE"], "storage": storage_state,
                "catalogue": catalogue_state}
        return jsonify(body), 200 if healthy else 503

    catalogue.load_from_disk()
    if settings["CATALOGUE_BACKGROUND"]:
        catalogue.start_background()
        if not catalogue.wait_until_loaded(settings["CATALOGUE_STARTUP_WAIT_SECONDS"]):
            log.error("no catalogue after %ss (eSIM Go: %s); serving anyway, /healthz says 503 until it loads",
                      settings["CATALOGUE_STARTUP_WAIT_SECONDS"], catalogue.last_error)
    return app


def _configure_logging() -> None:
    # Dated lines on stderr: PM2 and gunicorn collect them (pm2 logs esimsdata).
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
