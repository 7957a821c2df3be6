"""The admin console's routes for the shop's settings (issue 12, docs/settings.md): prices with their preview,
the countries with their prices in force, the help texts and support contact, and the promo codes with their
uses. What is valid and how it is stored is `shop_settings.py` and `promo.py`; who may call is `admin_auth.py`.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, abort, g, jsonify, request

import extensions
import promo
from admin_auth import admin_required, client_address
from catalogue import CatalogueIndex, Plan
from errors import api_error
from pricing import PriceSettings, sale_price
from shop_settings import SettingsInvalid, text
from storage import StorageError

log = logging.getLogger("admin")

bp = Blueprint("admin_settings", __name__, url_prefix="/api/admin")

EXAMPLE_AREAS = (("local", "TH"), ("local", "US"), ("regional", "europe"), ("global", "global"))
EXAMPLES_MAX = 10


def _who() -> str:
    return f"admin ({g.admin}, {client_address()})"


@bp.errorhandler(SettingsInvalid)
def _invalid(exc: SettingsInvalid) -> Any:
    error = "invalid_promocode" if request.path.startswith("/api/admin/promocodes") else "invalid_settings"
    return jsonify(error=error, message=exc.message, fields=exc.fields), 400


@bp.errorhandler(StorageError)
def _unreadable(exc: StorageError) -> Any:
    log.error("shop settings: %s", exc)
    return api_error(503, "settings_unavailable", f"The settings could not be saved: {exc}")


@bp.errorhandler(promo.PromoNotFound)
def _no_code(exc: promo.PromoNotFound) -> Any:
    return api_error(404, "not_found", "There is no such promo code.")


def _index() -> CatalogueIndex:
    index = extensions.catalogue().index
    if index is None:
        abort(503, description="The catalogue is still loading; try again in a minute.")
    return index


# ---- settings ----------------------------------------------------------------------------------------------


@bp.get("/settings")
@admin_required
def read_settings() -> Any:
    return jsonify(extensions.shop().view())


@bp.put("/settings")
@admin_required
def save_settings() -> Any:
    view = extensions.shop().update(request.get_json(silent=True), _who())
    log.info("%s saved shop settings: %s", _who(), ", ".join(sorted((request.get_json(silent=True) or {}).keys())))
    return jsonify(view)


@bp.post("/settings/preview")
@admin_required
def preview() -> Any:
    """What example plans cost now and would cost with the unsaved values in the body."""
    shop = extensions.shop()
    body = request.get_json(silent=True)
    after, _ = shop.proposed(body)
    index = _index()
    now = index.prices
    areas = [("local", code) for code in sorted(set(after.country_markup_percent) | set(now.country_markup_percent))
             if now.country_markup_percent.get(code) != after.country_markup_percent.get(code)]
    areas += [("local", code) for code in sorted(after.country_markup_percent)] + list(EXAMPLE_AREAS)
    examples: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for kind, area in areas:
        plans = index.by_area.get((kind, area))
        if not plans or (kind, area) in seen or len(examples) >= EXAMPLES_MAX:
            continue
        seen.add((kind, area))
        examples.append(_example(min(plans, key=lambda p: p.price.usd), now, after))
    return jsonify(examples=examples)


def _example(plan: Plan, now: PriceSettings, after: PriceSettings) -> dict[str, Any]:
    country = plan.area if plan.kind == "local" else None
    before, later = sale_price(plan.bundle.cost, country, now), sale_price(plan.bundle.cost, country, after)
    return {"bundle_name": plan.name, "area_name": plan.area_name, "kind": plan.kind, "area": plan.area,
            "description": plan.bundle.description, "cost_usd": plan.bundle.cost,
            "now": {"usd": before.usd, "stars": before.stars}, "after": {"usd": later.usd, "stars": later.stars}}


@bp.get("/countries")
@admin_required
def countries() -> Any:
    """Every destination the catalogue sells, with its lowest price in force and (countries) its markup."""
    index = _index()
    markups = index.prices.country_markup_percent
    listing = index.listing()

    def cheapest_cost(kind: str, area: str) -> Any:
        return min(p.bundle.cost for p in index.by_area[(kind, area)])

    def entry(kind: str, item: dict[str, Any]) -> dict[str, Any]:
        out = {"code": item["code"], "name": item["name"], "flag": item.get("flag"), "region": item.get("region"),
               "plan_count": item["plan_count"], "from_usd": item["from_usd"], "from_stars": item["from_stars"],
               "from_cost_usd": cheapest_cost(kind, item["code"])}
        if kind == "local":
            out["markup_percent"] = text(markups[item["code"]]) if item["code"] in markups else None
        return out

    world = listing["global"]
    return jsonify({"countries": [entry("local", c) for c in listing["countries"]],
                    "regions": [entry("regional", r) for r in listing["regions"]],
                    "global": entry("global", world) if world else None})


def _areas() -> set[str]:
    index = extensions.catalogue().index
    return {area for (_, area) in index.by_area} if index else set()


# ---- promo codes -------------------------------------------------------------------------------------------


def _listed(record: dict[str, Any]) -> dict[str, Any]:
    return promo.tally(record, extensions.store().sold_with_promo(record["id"]))


@bp.get("/promocodes")
@admin_required
def promocodes() -> Any:
    records = sorted(extensions.shop().promocodes().values(), key=lambda r: r.get("created_at", ""), reverse=True)
    return jsonify(promocodes=[_listed(r) for r in records])


@bp.post("/promocodes")
@admin_required
def create_promocode() -> Any:
    try:
        record = promo.create(extensions.shop(), request.get_json(silent=True), _who(), _areas())
    except promo.PromoExists as exc:
        return api_error(409, "code_exists", f"The code {exc} exists already: edit it instead.")
    log.info("%s created promo code %s", _who(), record["code"])
    return jsonify(promocode=_listed(record)), 201


@bp.put("/promocodes/<code>")
@admin_required
def edit_promocode(code: str) -> Any:
    record = promo.edit(extensions.shop(), code, request.get_json(silent=True), _who(), _areas())
    log.info("%s changed promo code %s", _who(), record["code"])
    return jsonify(promocode=_listed(record))


@bp.delete("/promocodes/<code>")
@admin_required
def delete_promocode(code: str) -> Any:
    promo.delete(extensions.shop(), code, _who())
    log.info("%s deleted promo code %s", _who(), code)
    return jsonify(ok=True)
