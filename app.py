"""The Flask application factory: `gunicorn 'app:create_app()'` and the tests build the shop here.

`create_app(config)` reads the settings (environment, `.env`, then `config` overrides by variable name), hangs
them and the collaborators (orders store, eSIM Go client, catalogue cache, bot, fulfilment) on
`app.extensions`, registers the routes and starts the catalogue's background refresh. Nothing touches the
network at import time.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask, jsonify
from flask.json.provider import DefaultJSONProvider

import bot
import events
import extensions
import promo
from catalogue import Catalogue
from config import load_settings
from errors import register_error_handlers
from esimgo import EsimGoClient
from events import Outbox
from fulfilment import Fulfilment
from shop_settings import ShopSettings
from storage import JsonStore, OrderStore
from throttle import Throttle

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
    settings = load_settings(config)
    _configure_logging()
    app = Flask(__name__)
    # Telegram updates and our own bodies are a few KB; anything far larger is refused with 413 before parsing.
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json = SafeJSON(app)
    app.json.sort_keys = False  # keep our field order in answers (jq-friendly, readable)

    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    if settings.demo_mode:
        import demo  # only demo mode needs the sandboxes

        demo.ensure_sandboxes(settings)
        log.warning("DEMO MODE: no ESIMGO_API_KEY/TELEGRAM_BOT_TOKEN set; using the local eSIM Go and "
                    "Telegram sandboxes (%s, %s). Nothing here is real. Admin console: %s/admin/orders.html",
                    settings.esimgo_base_url, settings.telegram_api_url, settings.public_base_url)

    store = OrderStore(data_dir / "orders.json", lock_timeout=settings.storage_lock_timeout)
    client = EsimGoClient(settings.esimgo_base_url, settings.esimgo_api_key)
    # The owner's prices, texts and promo codes (data/settings.json) over the environment's defaults.
    shop = ShopSettings(data_dir / "settings.json", settings, lock_timeout=settings.storage_lock_timeout)
    catalogue = Catalogue(
        client,
        data_dir / "catalogue.json",
        shop.prices,
        refresh_seconds=settings.catalogue_refresh_hours * 3600,
        retry_seconds=settings.catalogue_retry_seconds,
    )
    # The buyer's eSIM page asks eSIM Go for fresh usage while the buyer waits: that client gives up quickly.
    quick = EsimGoClient(settings.esimgo_base_url, settings.esimgo_api_key, timeout=(2.0, 4.0), get_retries=0)
    extensions.init(app, settings=settings, shop=shop, store=store, esimgo=client, esimgo_quick=quick,
                    catalogue=catalogue)
    bot.init_app(app)
    tries = JsonStore(data_dir / "promo-tries.json", lock_timeout=settings.storage_lock_timeout)
    extensions.init(app, promo_throttle=Throttle(tries, promo.TRIES_ALLOWED, promo.TRIES_WINDOW_SECONDS))
    outbox = Outbox(settings.backend_webhook_url, settings.backend_webhook_secret, settings.service_token,
                    first_retry=settings.events_retry_seconds)
    fulfilment = Fulfilment(store, client, extensions.get("bot", app), settings, outbox)
    outbox.alert = fulfilment.alert_admins  # a refused event is the admins' to mend
    extensions.init(app, outbox=outbox, fulfilment=fulfilment)

    register_error_handlers(app)
    import admin_api

    admin_api.init_app(app)
    from admin_settings_api import bp as admin_settings_bp
    from assets import bp as assets_bp
    from demo_api import bp as demo_bp
    from metrics_api import bp as metrics_bp
    from pages import bp as pages_bp
    from shop_api import bp as shop_api_bp
    from shop_api import qr_bp
    from usage import bp as usage_bp

    app.register_blueprint(shop_api_bp)
    app.register_blueprint(qr_bp)
    app.register_blueprint(assets_bp)
    app.register_blueprint(pages_bp)
    app.register_blueprint(demo_bp)
    app.register_blueprint(usage_bp)
    app.register_blueprint(metrics_bp)
    app.register_blueprint(admin_settings_bp)

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
        body = {"ok": healthy, "demo": extensions.settings(app).demo_mode, "storage": storage_state,
                "catalogue": catalogue_state}
        if outbox.enabled:  # events the owner's backend has not taken yet
            body["outbox"] = events.backlog(events.troubles(store))
        return jsonify(body), 200 if healthy else 503

    catalogue.load_from_disk()
    if settings.catalogue_background:
        catalogue.start_background()
        if not catalogue.wait_until_loaded(settings.catalogue_startup_wait_seconds):
            log.error("no catalogue after %ss (eSIM Go: %s); serving anyway, /healthz says 503 until it loads",
                      settings.catalogue_startup_wait_seconds, catalogue.last_error)
    return app


def _configure_logging() -> None:
    # Dated lines on stderr: PM2 and gunicorn collect them (pm2 logs esimsdata).
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
