"""The app's collaborators, hung on `app.extensions["esimsdata"]` by `create_app()` and read back here.

Routes, the bot and scripts ask for `settings()`, `shop()`, `store()`, `esimgo()`, `catalogue()`, `fulfilment()` instead
of importing globals, so every app (tests build many) has its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

if TYPE_CHECKING:
    from catalogue import Catalogue
    from config import Settings
    from esimgo import EsimGoClient
    from fulfilment import Fulfilment
    from shop_settings import ShopSettings
    from storage import OrderStore

KEY = "esimsdata"


def init(app: Flask, **collaborators: Any) -> None:
    app.extensions.setdefault(KEY, {}).update(collaborators)


def get(name: str, app: Flask | None = None) -> Any:
    return (app or current_app).extensions[KEY][name]


def settings(app: Flask | None = None) -> Settings:
    return get("settings", app)


def shop(app: Flask | None = None) -> ShopSettings:
    """The owner's settings in force (prices, texts, support contact, promo codes); `settings()` has the defaults."""
    return get("shop", app)


def store(app: Flask | None = None) -> OrderStore:
    return get("store", app)


def esimgo(app: Flask | None = None) -> EsimGoClient:
    return get("esimgo", app)


def catalogue(app: Flask | None = None) -> Catalogue:
    return get("catalogue", app)


def fulfilment(app: Flask | None = None) -> Fulfilment:
    return get("fulfilment", app)
