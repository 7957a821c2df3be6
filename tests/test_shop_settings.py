"""The owner's shop settings (issue 12, docs/settings.md): prices, country markups, support contact and help
texts from the admin API, validated field by field, recorded, backed up, and in force at once — in this process
and in every gunicorn worker — without touching an order already awaiting payment."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from decimal import Decimal

import pytest
import requests
from test_purchase import BUNDLE, BUYER, answer_of, invoice, post

import updates
from conftest import ADMIN_TOKEN, ROOT
from extensions import shop

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def save(client, status=200, **body):
    response = client.put("/api/admin/settings", json=body, headers=ADMIN)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def thai_plan(client):
    (plan,) = [b for b in client.get("/api/esimgo/bundles?country=TH").get_json()["bundles"] if b["name"] == BUNDLE]
    return plan["price_usd"], plan["stars"]


def test_the_settings_in_force_start_from_the_environment(client):
    view = client.get("/api/admin/settings", headers=ADMIN).get_json()
    assert {k: view[k] for k in ("markup", "stars_markup", "stars_fee", "stars_usd_rate", "country_markups")} == {
        "markup": "1.29", "stars_markup": "1.05", "stars_fee": "0.25", "stars_usd_rate": "0.013",
        "country_markups": {}}
    assert view["support_contact"] == "@esimsdata_support" and view["history"] == []
    assert "When does my plan start?" in view["texts"]["faq"]["en"]
    assert "Когда начинает действовать тариф?" in view["texts"]["faq"]["ru"]
    assert view["custom_texts"] == {"faq": {"en": False, "ru": False}, "refund_policy": {"en": False, "ru": False}}
    assert view["defaults"]["markup"] == "1.29"


@pytest.mark.settings(MARKUP="1.5", COUNTRY_MARKUPS="TH:10")
def test_the_environment_gives_the_defaults_and_saved_values_override_them(client):
    view = client.get("/api/admin/settings", headers=ADMIN).get_json()
    assert view["markup"] == "1.5" and view["country_markups"] == {"TH": "10"}
    saved = save(client, markup="1.29", country_markups={})
    assert saved["markup"] == "1.29" and saved["country_markups"] == {} and saved["defaults"]["markup"] == "1.5"
    assert thai_plan(client) == ("3.06", 314)


def test_a_changed_thailand_markup_prices_new_invoices_and_the_catalogue_at_once_but_not_an_open_invoice(
        app, client, tma, telegram):
    waiting = invoice(client, tma)
    assert (waiting["stars"], thai_plan(client)) == (314, ("3.06", 314))
    us_before = client.get("/api/esimgo/bundles?country=US").get_json()["bundles"]
    (th_before,) = [c for c in client.get("/api/esimgo/countries").get_json()["countries"] if c["code"] == "TH"]
    saved = save(client, country_markups={"TH": 10})
    assert saved["country_markups"] == {"TH": "10"}
    # 2.26 × 1.29 × 1.10 × 1.05 = 3.367… -> 3.37 USD -> ceil(3.37 / 0.75 / 0.013) = 346 Stars
    assert thai_plan(client) == ("3.37", 346)
    fresh = invoice(client, tma, user=BUYER + 1)
    assert (fresh["price_usd"], fresh["stars"]) == ("3.37", 346)
    countries = client.get("/api/esimgo/countries").get_json()["countries"]
    (thailand,) = [c for c in countries if c["code"] == "TH"]
    assert Decimal(thailand["from_usd"]) > Decimal(th_before["from_usd"])  # the cheapest Thai plan is repriced too
    # The invoice made before keeps its 314 Stars: pre-checkout accepts it as it was offered.
    post(client, updates.pre_checkout(BUYER, waiting["order_id"], 314))
    assert answer_of(telegram) == (True, None)
    # other countries keep theirs
    assert client.get("/api/esimgo/bundles?country=US").get_json()["bundles"] == us_before
    admin_countries = client.get("/api/admin/countries", headers=ADMIN).get_json()["countries"]
    assert [c["markup_percent"] for c in admin_countries if c["code"] == "TH"] == ["10"]


def test_the_base_and_stars_settings_change_every_price(client):
    save(client, markup="1.5", stars_markup="1", stars_fee="0.3", stars_usd_rate="0.015")
    # 2.26 × 1.5 × 1 = 3.39 USD -> ceil(3.39 / 0.7 / 0.015) = 323 Stars
    assert thai_plan(client) == ("3.39", 323)


def test_the_preview_prices_examples_with_unsaved_values_and_saves_nothing(client):
    answer = client.post("/api/admin/settings/preview", json={"country_markups": {"TH": 10}}, headers=ADMIN)
    assert answer.status_code == 200
    examples = answer.get_json()["examples"]
    assert examples[0]["area"] == "TH" and examples[0]["now"]["usd"] != examples[0]["after"]["usd"]
    assert {e["kind"] for e in examples} == {"local", "regional", "global"} and len(examples) <= 10
    by_name = {e["bundle_name"]: e for e in examples}
    us = next(e for e in examples if e["area"] == "US")
    assert us["now"] == us["after"]  # no markup named for it
    assert all(Decimal(e["cost_usd"]) < Decimal(e["now"]["usd"]) for e in by_name.values())
    assert thai_plan(client) == ("3.06", 314)
    refused = client.post("/api/admin/settings/preview", json={"markup": "0.9"}, headers=ADMIN)
    assert refused.status_code == 400 and "markup" in refused.get_json()["fields"]


@pytest.mark.parametrize("body, field", [
    ({"markup": "0.5"}, "markup"),
    ({"markup": 0.99}, "markup"),
    ({"markup": "11"}, "markup"),
    ({"markup": "abc"}, "markup"),
    ({"markup": ""}, "markup"),
    ({"markup": None}, "markup"),
    ({"markup": True}, "markup"),
    ({"markup": [1.3]}, "markup"),
    ({"markup": "NaN"}, "markup"),
    ({"markup": "Infinity"}, "markup"),
    ({"markup": "1e400"}, "markup"),
    ({"stars_markup": "0.9"}, "stars_markup"),
    ({"stars_fee": -0.1}, "stars_fee"),
    ({"stars_fee": "1"}, "stars_fee"),
    ({"stars_usd_rate": "0"}, "stars_usd_rate"),
    ({"stars_usd_rate": "-0.013"}, "stars_usd_rate"),
    ({"stars_usd_rate": "2"}, "stars_usd_rate"),
    ({"country_markups": {"TH": "ten"}}, "country_markups.TH"),
    ({"country_markups": {"TH": "-60"}}, "country_markups.TH"),
    ({"country_markups": {"TH": "-30"}}, "country_markups.TH"),  # 1.29 × 0.7 < 1: under cost
    ({"country_markups": {"TH": 5000}}, "country_markups.TH"),
    ({"country_markups": {"THA": 5}}, "country_markups.THA"),
    ({"country_markups": {"1": 5}}, "country_markups.1"),
    ({"country_markups": ["TH", 5]}, "country_markups"),
    ({"country_markups": "TH:5"}, "country_markups"),
    ({"support_contact": 5}, "support_contact"),
    ({"support_contact": "x" * 201}, "support_contact"),
    ({"support_contact": "@a\n@b"}, "support_contact"),
    ({"texts": {"faq": {"en": "x" * 5001}}}, "texts.faq.en"),
    ({"texts": {"faq": {"ru": ["a"]}}}, "texts.faq.ru"),
    ({"texts": {"faq": {"ru": "bell\x07"}}}, "texts.faq.ru"),
    ({"texts": {"faq": {"de": "Hallo"}}}, "texts.faq"),
    ({"texts": {"faq": "Q?\nA."}}, "texts.faq"),
    ({"texts": {"about": {"en": "x"}}}, "texts.about"),
    ({"texts": "faq"}, "texts"),
    ({"price": 1}, "price"),
])
def test_invalid_settings_are_refused_field_by_field_and_nothing_is_saved(client, body, field):
    valid = {"support_contact": "@other_help"} if "support_contact" not in body else {"stars_markup": "1.1"}
    answer = save(client, status=400, **body, **valid)  # a valid value alongside is not saved either
    assert answer["error"] == "invalid_settings" and answer["message"]
    assert field in answer["fields"] and answer["fields"][field]
    view = client.get("/api/admin/settings", headers=ADMIN).get_json()
    assert (view["stars_markup"], view["support_contact"]) == ("1.05", "@esimsdata_support") and view["history"] == []


@pytest.mark.parametrize("body", [None, [], "markup", 3])
def test_a_body_that_is_not_an_object_is_a_400(client, body):
    response = client.put("/api/admin/settings", json=body, headers=ADMIN)
    assert response.status_code == 400 and response.get_json()["message"]


def test_lowering_the_base_markup_may_not_leave_a_country_under_cost(client):
    save(client, country_markups={"TH": "-20"}, markup="1.3")  # 1.3 × 0.8 = 1.04
    answer = save(client, status=400, markup="1.2")  # 1.2 × 0.8 = 0.96
    assert "country_markups.TH" in answer["fields"]


def test_every_change_is_recorded_with_who_when_and_from_what(client, data_dir):
    save(client, markup="1.35")
    save(client, markup="1.4", country_markups={"TH": 10, "US": "5"})
    save(client, country_markups={"TH": "12"})
    history = client.get("/api/admin/settings", headers=ADMIN).get_json()["history"]
    assert [h["changes"] for h in history] == [
        {"country_markups.TH": {"from": "10", "to": "12"}, "country_markups.US": {"from": "5", "to": None}},
        {"markup": {"from": "1.35", "to": "1.4"}, "country_markups.TH": {"from": None, "to": "10"},
         "country_markups.US": {"from": None, "to": "5"}},
        {"markup": {"from": None, "to": "1.35"}},
    ]
    assert all(h["by"] == "admin (token, 127.0.0.1)" and re.match(r"\d{4}-\d\d-\d\dT", h["at"]) for h in history)
    # The file is plain JSON an operator can read, and each earlier version is kept.
    on_disk = json.loads((data_dir / "settings.json").read_text())
    assert on_disk["values"]["country_markups"] == {"TH": "12"}
    backups = sorted((data_dir / "backups" / "settings").glob("settings-*.json"))
    assert len(backups) == 2
    assert json.loads(backups[-1].read_text())["values"]["country_markups"] == {"TH": "10", "US": "5"}


def test_saving_the_same_values_again_records_nothing(client):
    save(client, markup="1.35")
    save(client, markup="1.350")
    assert len(client.get("/api/admin/settings", headers=ADMIN).get_json()["history"]) == 1


def test_help_texts_and_the_support_contact_are_saved_per_language_and_reset(client, app, telegram):
    saved = save(client, texts={"faq": {"ru": "Вопрос?\nОтвет."}}, support_contact="@shop_help")
    assert saved["texts"]["faq"]["ru"] == "Вопрос?\nОтвет."
    assert saved["custom_texts"]["faq"] == {"en": False, "ru": True}
    assert "When does my plan start?" in saved["texts"]["faq"]["en"]
    assert shop(app).support_contact() == "@shop_help"
    post(client, updates.command(BUYER, "/help"))
    assert "@shop_help" in telegram.calls("sendMessage")[-1].params["text"]
    reset = save(client, texts={"faq": {"ru": None}}, support_contact="")
    assert reset["custom_texts"]["faq"]["ru"] is False and reset["support_contact"] == "@esimsdata_support"
    assert "Когда начинает действовать тариф?" in reset["texts"]["faq"]["ru"]


def test_settings_are_for_the_owner_only(client, tma):
    for method, path in (("get", "/api/admin/settings"), ("put", "/api/admin/settings"),
                         ("post", "/api/admin/settings/preview"), ("get", "/api/admin/countries")):
        assert getattr(client, method)(path, json={}, headers={"Authorization": tma(BUYER)}).status_code == 401


def test_a_damaged_settings_file_leaves_the_last_good_settings_in_force(app, client, data_dir, caplog):
    save(client, country_markups={"TH": 10})
    assert thai_plan(client) == ("3.37", 346)
    (data_dir / "settings.json").write_text('{"values": {"markup": ')  # a bad hand edit
    assert thai_plan(client) == ("3.37", 346)
    assert "using the last good settings" in caplog.text
    # ...and no save lands on a file the operator has to look at first.
    assert client.put("/api/admin/settings", json={"markup": "1.3"}, headers=ADMIN).status_code == 503


# ---- every worker --------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_gunicorn_worker_uses_a_new_markup_within_seconds(tmp_path, esimgo, telegram, catalogue_cache):
    import shutil

    from test_app import clean_env, free_port, stop, wait_healthy

    from auth import sign_init_data

    shutil.copy(catalogue_cache, tmp_path / "catalogue.json")
    port = free_port()
    env = clean_env(ESIMGO_API_KEY=esimgo.api_key, ESIMGO_BASE_URL=esimgo.url, TELEGRAM_BOT_TOKEN="1:x",
                    TELEGRAM_WEBHOOK_SECRET="s3cret", TELEGRAM_API_URL=telegram.url, DATA_DIR=str(tmp_path),
                    BIND=f"127.0.0.1:{port}", ADMIN_TOKEN=ADMIN_TOKEN * 3, WEB_CONCURRENCY="2")
    log = tmp_path / "gunicorn.log"
    with log.open("w") as out:
        web = subprocess.Popen([sys.executable, "-m", "gunicorn", "app:create_app()"], cwd=ROOT, env=env,
                               stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def buyer(user_id):
        return {"Authorization": "tma " + sign_init_data("1:x", {"id": user_id, "first_name": "A"})}

    def thai(session):
        plans = session.get(f"{url}/api/esimgo/bundles?country=TH", timeout=10).json()["bundles"]
        return next((p["price_usd"], p["stars"]) for p in plans if p["name"] == BUNDLE)

    try:
        wait_healthy(url, web)
        workers = set(re.findall(r"Booting worker with pid: (\d+)", log.read_text()))
        assert len(workers) == 2, log.read_text()[-2000:]
        # Both workers have their catalogue in memory before the change (one that loads it after starts repriced).
        deadline = time.monotonic() + 30
        loaded: set[str] = set()
        while loaded < workers and time.monotonic() < deadline:
            loaded = set(re.findall(r"^\S+ \S+ (\d+) catalogue INFO catalogue: \d+ bundles loaded", log.read_text(),
                                    re.M))
            time.sleep(0.1)
        assert loaded >= workers, log.read_text()[-2000:]
        waiting = requests.post(f"{url}/api/telegram/stars/create-invoice", json={"bundle_name": BUNDLE},
                                headers=buyer(BUYER), timeout=10).json()
        assert waiting["stars"] == 314
        saved = requests.put(f"{url}/api/admin/settings", json={"country_markups": {"TH": 10}}, timeout=10,
                             headers={"Authorization": f"Bearer {ADMIN_TOKEN * 3}"})
        assert saved.status_code == 200, saved.text
        changed_at = time.monotonic()
        # Each worker says when it has priced its catalogue again (its own background round, every 5 s).
        deadline = changed_at + 15
        while time.monotonic() < deadline:
            repriced = set(re.findall(r"^\S+ \S+ (\d+) catalogue INFO catalogue: \d+ plans repriced", log.read_text(),
                                      re.M))
            if repriced >= workers:
                break
            time.sleep(0.1)
        assert repriced >= workers, log.read_text()[-3000:]
        took = time.monotonic() - changed_at
        # Whichever worker answers (a new connection each time), the catalogue and new invoices have the new price.
        for i in range(10):
            assert thai(requests) == ("3.37", 346)
            fresh = requests.post(f"{url}/api/telegram/stars/create-invoice", json={"bundle_name": BUNDLE},
                                  headers=buyer(BUYER + 1 + i), timeout=10).json()
            assert fresh["stars"] == 346, fresh
        # The invoice made before the change is still payable at its 314 Stars.
        update = updates.pre_checkout(BUYER, waiting["order_id"], 314)
        assert requests.post(f"{url}/api/telegram/webhook", json=update, timeout=10,
                             headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret"}).status_code == 200
        call = telegram.calls("answerPreCheckoutQuery")[-1]
        assert call.params["ok"] == "True"
        assert took < 10
    finally:
        stop(web)


@pytest.mark.parametrize("body, field", [
    ({"stars_usd_rate": "1e-10000"}, "stars_usd_rate"),
    ({"stars_usd_rate": "1E-2"}, "stars_usd_rate"),
    ({"markup": "1.0000001"}, "markup"),
    ({"stars_fee": "0.9999999999999999999999"}, "stars_fee"),
    ({"stars_fee": "0.6"}, "stars_fee"),
    ({"country_markups": {"TH": "1e-99999"}}, "country_markups.TH"),
    ({"country_markups": {"TH": "10.125"}}, "country_markups.TH"),
])
def test_numbers_that_would_pass_a_range_but_break_pricing_are_refused(client, body, field):
    for route in ("/api/admin/settings", "/api/admin/settings/preview"):
        method = client.put if route.endswith("settings") else client.post
        answer = method(route, json=body, headers=ADMIN)
        assert answer.status_code == 400 and field in answer.get_json()["fields"]
    assert thai_plan(client) == ("3.06", 314)


@pytest.mark.parametrize("stored", [
    {"values": {"markup": "1,35"}},
    {"values": {"markup": ["1.35"]}},
    {"values": {"country_markups": {"TH": "ten"}}},
    {"values": {"country_markups": ["TH"]}},
    {"values": {"texts": {"faq": "Q?"}}},
    {"values": "markup"},
    {"promocodes": {"x": {"code": "X"}}},
    [],
])
def test_a_hand_edit_with_wrong_types_leaves_the_last_good_settings_in_force(client, data_dir, caplog, tma, stored):
    save(client, country_markups={"TH": 10})
    (data_dir / "settings.json").write_text(json.dumps(stored))
    assert thai_plan(client) == ("3.37", 346)
    assert client.get("/help").status_code == 200
    assert client.post("/api/promo/check", json={"code": "X", "bundle_name": BUNDLE},
                       headers={"Authorization": tma(BUYER)}).status_code == 200
    assert caplog.text.count("using the last good settings") == 1  # said once, not on every request
