"""Catalogue and prices (SPEC §5): cached from eSIM Go, grouped from the bundles, sold at server prices."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest

from app import create_app
from catalogue import classify
from conftest import make_config
from esimgo import BundleCountry, CatalogueBundle


def test_countries_list_every_country_with_code_flag_plan_count_and_lowest_price(client):
    body = client.get("/api/esimgo/countries").get_json()
    th_plans = client.get("/api/esimgo/bundles?country=TH").get_json()["bundles"]
    cheapest = min(th_plans, key=lambda p: Decimal(p["price_usd"]))
    countries = body["countries"]
    assert len(countries) >= 190
    th = next(c for c in countries if c["code"] == "TH")
    assert th["name"] == "Thailand" and th["flag"] == "🇹🇭" and th["region"] == "Asia"
    assert th["plan_count"] == len(th_plans) >= 5
    assert (th["from_usd"], th["from_stars"]) == (cheapest["price_usd"], cheapest["stars"])
    assert [c["name"] for c in countries] == sorted(c["name"] for c in countries)
    assert body["regions"] and body["global"]["plan_count"] >= 1


def test_thailand_plans_carry_sale_prices_and_never_the_cost(client, esimgo):
    response = client.get("/api/esimgo/bundles?country=th")
    assert response.status_code == 200
    body = response.get_json()
    plan = next(p for p in body["bundles"] if p["name"] == "esim_1GB_7D_TH_V2")
    assert plan["price_usd"] == "3.06" and plan["stars"] == 314
    assert plan["data_gb"] == 1 and plan["duration_days"] == 7 and plan["unlimited"] is False
    raw = response.get_data(as_text=True)
    assert "2.26" not in raw and '"cost"' not in raw and '"price"' not in raw
    for p in body["bundles"]:
        cost = Decimal(str(esimgo.bundle(p["name"])["price"]))
        assert Decimal(p["price_usd"]) > cost  # never sold at or below what eSIM Go charges us


def test_standard_and_unlimited_plans_are_both_offered_and_filterable(client):
    everything = client.get("/api/esimgo/bundles?country=TH").get_json()["bundles"]
    unlimited = client.get("/api/esimgo/bundles?country=TH&type=unlimited").get_json()["bundles"]
    standard = client.get("/api/esimgo/bundles?country=TH&type=standard").get_json()["bundles"]
    assert unlimited and standard and len(unlimited) + len(standard) == len(everything)
    assert all(p["unlimited"] for p in unlimited) and not any(p["unlimited"] for p in standard)
    # standard first, smallest data first
    assert everything[: len(standard)] == standard
    assert [p["data_mb"] for p in standard] == sorted(p["data_mb"] for p in standard)


def test_regional_and_global_plans(client):
    regions = client.get("/api/esimgo/countries").get_json()["regions"]
    europe = next(r for r in regions if r["name"] == "Europe")
    plans = client.get(f"/api/esimgo/bundles?region={europe['code']}").get_json()
    assert plans["kind"] == "regional" and all(p["countries"] > 10 for p in plans["bundles"])
    world = client.get("/api/esimgo/bundles?global").get_json()
    assert world["kind"] == "global" and world["bundles"]
    assert all(p["countries"] >= 100 for p in world["bundles"])


@pytest.mark.parametrize("query, status, error", [
    ("", 400, "missing_area"),
    ("?country=XX", 404, "unknown_area"),
    ("?region=atlantis", 404, "unknown_area"),
    ("?country=%00%ff", 404, "unknown_area"),
])
def test_bad_catalogue_queries_get_clear_errors(client, query, status, error):
    response = client.get(f"/api/esimgo/bundles{query}")
    assert response.status_code == status
    assert response.get_json()["error"] == error and response.get_json()["message"]


def test_country_markup_setting_changes_that_country_only(data_dir, esimgo, telegram):
    app = create_app(make_config(data_dir, esimgo, telegram, COUNTRY_MARKUPS="TH:10"))
    client = app.test_client()
    th = client.get("/api/esimgo/bundles?country=TH").get_json()["bundles"][0]
    assert th["name"] == "esim_1GB_7D_TH_V2" and th["price_usd"] == "3.37"


def test_groupings_come_from_the_bundles_themselves():
    def bundle(*countries):
        return CatalogueBundle("b", "b", tuple(BundleCountry(i, i, r) for i, r in countries), 1000, 7, (), False,
                               Decimal(1))
    assert classify(bundle(("TH", "Asia"))) == ("local", "TH", "TH")
    assert classify(bundle(("FR", "Europe"), ("DE", "Europe"), ("TR", "Asia"))) == ("regional", "europe", "Europe")
    assert classify(bundle(("FR", "Europe"), ("US", "North America"), ("TH", "Asia")))[0] == "global"


def test_requests_never_wait_on_esim_go_once_cached(client, esimgo):
    before = len(esimgo.requests_log)
    for url in ("/api/esimgo/countries", "/api/esimgo/bundles?country=TH", "/api/esimgo/bundles?global"):
        assert client.get(url).status_code == 200
    assert len(esimgo.requests_log) == before


def test_before_the_first_load_the_catalogue_says_it_is_loading(tmp_path, esimgo, telegram):
    esimgo.fail("/catalogue", 500, times=100)
    app = create_app(make_config(tmp_path, esimgo, telegram))
    response = app.test_client().get("/api/esimgo/countries")
    assert response.status_code == 503
    assert response.get_json()["error"] == "catalogue_loading"
    health = app.test_client().get("/healthz")
    assert health.status_code == 503 and health.get_json()["catalogue"]["ok"] is False


def test_the_background_thread_fetches_caches_on_disk_and_a_new_process_reuses_it(tmp_path, esimgo, telegram):
    app = create_app(make_config(tmp_path, esimgo, telegram, CATALOGUE_BACKGROUND="1"))
    client = app.test_client()
    deadline = time.time() + 30
    while client.get("/healthz").status_code != 200 and time.time() < deadline:
        time.sleep(0.2)
    assert client.get("/healthz").get_json()["catalogue"]["bundles"] == len(esimgo.catalogue)
    cached = json.loads((tmp_path / "catalogue.json").read_text())
    assert len(cached["bundles"]) == len(esimgo.catalogue)

    fetches = sum(1 for r in esimgo.requests_log if r["path"] == "/catalogue")
    second = create_app(make_config(tmp_path, esimgo, telegram, CATALOGUE_BACKGROUND="1"))  # serves once loaded
    assert second.test_client().get("/api/esimgo/countries").status_code == 200
    assert sum(1 for r in esimgo.requests_log if r["path"] == "/catalogue") == fetches  # fresh cache: no refetch
    app.extensions["esimsdata"]["catalogue"].stop()
    second.extensions["esimsdata"]["catalogue"].stop()


def test_a_failed_refresh_keeps_selling_the_last_good_catalogue(app, client, esimgo):
    esimgo.fail("/catalogue", 500, times=100)
    cat = app.extensions["esimsdata"]["catalogue"]
    assert cat.refresh() is False
    assert "500" in cat.last_error or "Server" in cat.last_error
    assert client.get("/api/esimgo/bundles?country=TH").status_code == 200
