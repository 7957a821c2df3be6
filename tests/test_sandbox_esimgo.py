"""The eSIM Go sandbox answers like eSIM Go v2.4 does, over real HTTP, and obeys its controls."""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import json
import math
import time
from collections.abc import Iterator

import pytest
import requests
from flask import Flask, request

from sandboxes.esimgo import EsimGoSandbox
from sandboxes.server import ServerThread

KEY = "sandbox-key"
TH_1GB = "esim_1GB_7D_TH_V2"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[EsimGoSandbox]:
    running = EsimGoSandbox().start()
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def fresh(sandbox: EsimGoSandbox) -> None:
    sandbox.reset()


@pytest.fixture
def api(sandbox: EsimGoSandbox) -> requests.Session:
    session = requests.Session()
    session.headers["X-API-Key"] = KEY
    return session


def buy(sandbox: EsimGoSandbox, api: requests.Session, item: str = TH_1GB, quantity: int = 1, **extra) -> dict:
    line = {"type": "bundle", "quantity": quantity, "item": item, "allowReassign": False, **extra}
    response = api.post(f"{sandbox.url}/orders", json={"type": "transaction", "assign": True, "order": [line]})
    assert response.status_code == 200, response.text
    return response.json()


def organisation_balance(sandbox: EsimGoSandbox, api: requests.Session) -> float:
    return api.get(f"{sandbox.url}/organisation").json()["organisations"][0]["balance"]


# ----- catalogue -------------------------------------------------------------------------------------------------


def test_catalogue_pages_with_the_real_envelope(sandbox: EsimGoSandbox, api: requests.Session) -> None:
    total = len(sandbox.catalogue)
    first = api.get(f"{sandbox.url}/catalogue", params={"perPage": 100, "page": 1}).json()
    assert set(first) == {"bundles", "pageCount", "rows", "pageSize"}
    assert (first["rows"], first["pageSize"], first["pageCount"]) == (total, 100, math.ceil(total / 100))
    assert len(first["bundles"]) == 100
    assert first["bundles"][0]["name"] == "esim_1GB_7D_AD_V2"

    default = api.get(f"{sandbox.url}/catalogue").json()
    assert default["pageSize"] == 50 and len(default["bundles"]) == 50

    last = api.get(f"{sandbox.url}/catalogue", params={"perPage": 100, "page": first["pageCount"]}).json()
    assert len(last["bundles"]) == total - 100 * (first["pageCount"] - 1)
    beyond = api.get(f"{sandbox.url}/catalogue", params={"perPage": 100, "page": first["pageCount"] + 1}).json()
    assert beyond["bundles"] == [] and beyond["rows"] == total

    capped = api.get(f"{sandbox.url}/catalogue", params={"perPage": 5000}).json()
    assert capped["pageSize"] == 1000 and len(capped["bundles"]) == 1000


def test_catalogue_covers_195_countries_with_local_regional_and_global_plans(sandbox: EsimGoSandbox) -> None:
    bundles = sandbox.catalogue
    isos = {country["iso"] for bundle in bundles for country in bundle["countries"]}
    assert len(isos) >= 195
    names = {bundle["name"] for bundle in bundles}
    for plan in ("1GB_7D", "3GB_30D", "5GB_30D", "10GB_30D", "20GB_30D", "UL_1D", "UL_3D", "UL_7D", "UL_15D"):
        assert all(f"esim_{plan}_{iso}_V2" in names for iso in isos)
    europe = sandbox.bundle("esim_1GB_7D_REUP_V2")
    assert {c["region"] for c in europe["countries"]} == {"Europe"} and len(europe["countries"]) > 40
    world = sandbox.bundle("esim_1GB_7D_RGBS_V2")
    assert world["description"] == "eSIM, 1GB, 7 Days, Global, V2"
    assert len(world["countries"]) >= 100 and len({c["region"] for c in world["countries"]}) == 7
    unlimited = sandbox.bundle("esim_UL_7D_TH_V2")
    assert unlimited["unlimited"] is True and unlimited["groups"] == ["Standard Unlimited Lite"]
    assert unlimited["description"] == "eSIM, Unlimited Lite, 7 Days, Thailand, V2"


def test_thailand_1gb_costs_2_26_and_some_speeds_are_null(sandbox: EsimGoSandbox, api: requests.Session) -> None:
    bundle = api.get(f"{sandbox.url}/catalogue/bundle/{TH_1GB}").json()
    assert bundle["price"] == 2.26
    assert bundle["countries"] == [{"name": "Thailand", "region": "Asia", "iso": "TH"}]
    assert bundle["dataAmount"] == 1000 and bundle["duration"] == 7 and bundle["billingType"] == "FixedCost"

    assert api.get(f"{sandbox.url}/catalogue/bundle/ESIM_1GB_7D_TH_V2").status_code == 404  # names are case-sensitive
    missing = api.get(f"{sandbox.url}/catalogue/bundle/esim_nope")
    assert (missing.status_code, missing.json()) == (404, {"message": "Bundle not found"})

    served = []
    for page in (1, 2, 3):
        served += api.get(f"{sandbox.url}/catalogue", params={"perPage": 1000, "page": page}).json()["bundles"]
    assert len(served) == len(sandbox.catalogue)
    null_speeds = sum(1 for b in served if b["speed"] is None)
    assert 0 < null_speeds < len(served) * 0.1
    assert all(isinstance(b["price"], float) for b in served)


def test_catalogue_filters(sandbox: EsimGoSandbox, api: requests.Session) -> None:
    def names(**params: str) -> set[str]:
        body = api.get(f"{sandbox.url}/catalogue", params={"perPage": 1000, **params}).json()
        return {bundle["name"] for bundle in body["bundles"]}

    thailand = names(countries="TH")
    assert TH_1GB in thailand and "esim_1GB_7D_RASIA_V2" in thailand and "esim_1GB_7D_RGBS_V2" in thailand
    assert not any("_GB_" in name for name in thailand)
    assert {"esim_1GB_7D_GB_V2", TH_1GB} <= names(countries="GB,TH")
    europe = names(region="Europe")
    assert "esim_1GB_7D_FR_V2" in europe and TH_1GB not in europe and "esim_1GB_7D_RGBS_V2" not in europe
    assert all(name.startswith("esim_UL_") for name in names(group="Standard Unlimited Lite"))
    assert names(description="thailand, v2") == {n for n in thailand if "_TH_" in n}


# ----- auth, errors, headers -----------------------------------------------------------------------------------


def test_wrong_or_missing_key_is_refused_like_the_real_api(sandbox: EsimGoSandbox) -> None:
    refused = requests.get(f"{sandbox.url}/catalogue", headers={"X-API-Key": "wrong"})
    assert (refused.status_code, refused.json()) == (403, {"message": "api token is invalid"})
    order = requests.post(f"{sandbox.url}/orders", json={"type": "validate"})
    assert order.status_code == 401 and order.text == ""
    assert order.headers["Content-Type"].startswith("text/plain")
    lower = requests.get(f"{sandbox.url}/organisation", headers={"x-api-key": KEY})
    assert lower.status_code == 200
    for header in ("X-Ratelimit-Limit", "X-Ratelimit-Remaining", "X-Ratelimit-Reset"):
        assert header in refused.headers and header in lower.headers


def test_unknown_path_is_a_json_404(sandbox: EsimGoSandbox, api: requests.Session) -> None:
    response = api.get(f"{sandbox.url}/bundles")
    assert (response.status_code, response.json()) == (404, {"message": "Not Found"})


# ----- orders ----------------------------------------------------------------------------------------------------


def test_transaction_creates_esims_and_charges_the_balance(sandbox: EsimGoSandbox, api: requests.Session) -> None:
    before = organisation_balance(sandbox, api)
    body = buy(sandbox, api, quantity=2)

    assert body["status"] == "completed" and body["currency"] == "USD" and body["assigned"] is True
    assert body["total"] == 4.52 and body["statusMessage"] == "Order completed: 2 eSIMs assigned"
    item = body["order"][0]
    assert (item["item"], item["quantity"], item["pricePerUnit"], item["subTotal"]) == (TH_1GB, 2, 2.26, 4.52)
    assert len(item["esims"]) == 2 and item["iccids"] == [e["iccid"] for e in item["esims"]]
    for esim in item["esims"]:
        assert len(esim["iccid"]) == 19 and esim["iccid"].startswith("8944") and esim["iccid"].isdigit()
        assert esim["smdpAddress"] == "rsp.truphone.com" and esim["matchingId"]
    assert organisation_balance(sandbox, api) == pytest.approx(before - 4.52)

    iccid = item["iccids"][0]
    details = api.get(f"{sandbox.url}/esims/{iccid}").json()
    assert details["profileStatus"] == "Released" and details["matchingId"] == item["esims"][0]["matchingId"]
    assert details["firstInstalledDateTime"] is None and details["customerRef"] is None
    bundles = api.get(f"{sandbox.url}/esims/{iccid}/bundles").json()["bundles"]
    assignment = bundles[0]["assignments"][0]
    assert bundles[0]["name"] == TH_1GB and assignment["initialQuantity"] == 1_000_000_000
    assert assignment["bundleState"].lower() == "active"
    assert api.get(f"{sandbox.url}/esims/8944000000000000000").status_code == 400  # unknown ICCID: 400, not 404

    stored = sandbox.orders
    assert [o["orderReference"] for o in stored] == [body["orderReference"]]
    assert stored[0]["order"][0]["allowReassign"] is False and stored[0]["total"] == 4.52
    assert api.get(f"{sandbox.url}/orders/{body['orderReference']}").json()["order"][0]["iccids"] == item["iccids"]
    listed = api.get(f"{sandbox.url}/orders").json()
    assert listed["rows"] == 1 and listed["orders"][0]["orderReference"] == body["orderReference"]
    missing = api.get(f"{sandbox.url}/orders/not-a-reference")
    assert (missing.status_code, missing.json()) == (404, {"message": "Order not found"})


def test_insufficient_balance_is_refused_and_creates_nothing(sandbox: EsimGoSandbox, api: requests.Session) -> None:
    sandbox.settings(balance=2.0)
    order = {"type": "transaction", "assign": True, "order": [{"type": "bundle", "quantity": 1, "item": TH_1GB}]}
    response = api.post(f"{sandbox.url}/orders", json=order)
    assert (response.status_code, response.json()) == (400, {"message": "Insufficient balance"})
    assert sandbox.orders == [] and organisation_balance(sandbox, api) == 2.0


def test_validate_prices_the_order_and_charges_nothing(sandbox: EsimGoSandbox, api: requests.Session) -> None:
    order = {"type": "validate", "assign": True, "order": [{"type": "bundle", "quantity": 3, "item": TH_1GB}]}
    body = api.post(f"{sandbox.url}/orders", json=order).json()
    assert body["valid"] is True and body["total"] == 6.78 and "orderReference" not in body
    assert "esims" not in body["order"][0]
    assert sandbox.orders == [] and organisation_balance(sandbox, api) == 1000.0


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"type": "bundle", "quantity": 1, "item": "esim_nope"}, "not found"),
        ({"type": "bundle", "quantity": 0, "item": TH_1GB}, "quantity"),
        ({"type": "bundle", "quantity": 2, "item": TH_1GB, "iccids": ["8944000000000000000"]}, "iccids"),
        ({"type": "bundle", "quantity": 1, "item": TH_1GB, "iccids": ["8944000000000000000"]}, "eSIM not found"),
    ],
)
def test_malformed_orders_get_a_clear_400(sandbox: EsimGoSandbox, api: requests.Session, line, message) -> None:
    response = api.post(f"{sandbox.url}/orders", json={"type": "transaction", "assign": True, "order": [line]})
    assert response.status_code == 400 and message in response.json()["message"]
    assert api.post(f"{sandbox.url}/orders", data="not json").status_code == 400
    assert sandbox.orders == []


def test_top_up_respects_provider_compatibility(sandbox: EsimGoSandbox, api: requests.Session) -> None:
    iccid = buy(sandbox, api)["order"][0]["iccids"][0]
    compatible = api.get(f"{sandbox.url}/esims/{iccid}/compatible/esim_3GB_30D_TH_V2").json()
    assert compatible == {"compatible": True}
    assert api.get(f"{sandbox.url}/esims/{iccid}/compatible/esim_1GB_7D_RGBS_V2").json() == {"compatible": False}

    top_up = buy(sandbox, api, "esim_3GB_30D_TH_V2", iccids=[iccid])
    assert top_up["order"][0]["iccids"] == [iccid]
    states = {b["name"] for b in api.get(f"{sandbox.url}/esims/{iccid}/bundles").json()["bundles"]}
    assert states == {TH_1GB, "esim_3GB_30D_TH_V2"}

    line = {"type": "bundle", "quantity": 1, "item": "esim_1GB_7D_RGBS_V2", "iccids": [iccid], "allowReassign": False}
    refused = api.post(f"{sandbox.url}/orders", json={"type": "transaction", "assign": True, "order": [line]})
    assert (refused.status_code, refused.json()) == (400, {"message": "Bundle is not compatible with eSIM"})

    moved = buy(sandbox, api, "esim_1GB_7D_RGBS_V2", iccids=[iccid], allowReassign=True)
    new_esim = moved["order"][0]["esims"][0]
    assert new_esim["iccid"] != iccid and new_esim["smdpAddress"] == "rsp-3104.idemia.io"


def test_processing_order_answers_503_then_completes(sandbox: EsimGoSandbox, api: requests.Session) -> None:
    sandbox.settings(processing_seconds=0.4)
    body = buy(sandbox, api)
    reference = body["orderReference"]
    assert body["status"] == "processing" and body["statusMessage"] == "Order is being processed"
    assert "esims" not in body["order"][0]

    waiting = api.get(f"{sandbox.url}/esims/assignments", params={"reference": reference})
    assert waiting.status_code == 503 and waiting.headers["Retry-After"] == "1"
    assert waiting.json() == {"message": "Processing - Please come back later"}

    time.sleep(0.5)
    done = api.get(f"{sandbox.url}/orders/{reference}").json()
    assert done["status"] == "completed" and len(done["order"][0]["esims"]) == 1
    assignments = api.get(f"{sandbox.url}/esims/assignments", params={"reference": reference})
    assert assignments.status_code == 200


def test_assignments_are_csv_by_default_and_json_on_request(sandbox: EsimGoSandbox, api: requests.Session) -> None:
    single = buy(sandbox, api)
    reference, esim = single["orderReference"], single["order"][0]["esims"][0]

    as_csv = api.get(f"{sandbox.url}/esims/assignments", params={"reference": reference})
    assert as_csv.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert rows == [
        {
            "ICCID": esim["iccid"],
            "Matching ID": esim["matchingId"],
            "RSP URL": esim["smdpAddress"],
            "Bundle": TH_1GB,
            "Reference": reference,
        }
    ]

    as_json = api.get(
        f"{sandbox.url}/esims/assignments", params={"reference": reference}, headers={"Accept": "application/json"}
    ).json()
    assert as_json == {**esim, "profileStatus": "Released"}

    several = buy(sandbox, api, quantity=2)["orderReference"]
    listed = api.get(
        f"{sandbox.url}/esims/assignments", params={"reference": several}, headers={"Accept": "application/json"}
    ).json()
    assert isinstance(listed, list) and len(listed) == 2

    unknown = api.get(f"{sandbox.url}/esims/assignments", params={"reference": "nope"})
    assert unknown.status_code == 400 and "message" in unknown.json()


def test_organisation_shapes(sandbox: EsimGoSandbox, api: requests.Session) -> None:
    listed = api.get(f"{sandbox.url}/organisation").json()
    assert listed["organisations"][0]["balance"] == 1000.0 and listed["organisations"][0]["currency"] == "USD"
    sandbox.settings(organisation_shape="flat")
    flat = api.get(f"{sandbox.url}/organisation").json()
    assert flat["name"] == "esimsdata sandbox" and flat["balance"] == 1000.0


# ----- scripted failures ---------------------------------------------------------------------------------------


def test_scripted_failures_count_down_and_match_method(sandbox: EsimGoSandbox, api: requests.Session) -> None:
    sandbox.fail("/catalogue", 500, times=2)
    statuses = [api.get(f"{sandbox.url}/catalogue/bundle/{TH_1GB}").status_code for _ in range(3)]
    assert statuses == [500, 500, 200]

    sandbox.fail("/orders", 429, method="POST")
    assert api.get(f"{sandbox.url}/orders").status_code == 200  # GET does not match a POST-only failure
    limited = api.post(f"{sandbox.url}/orders", json={})
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
    assert limited.json() == {"message": "Rate limit exceeded"}

    sandbox.fail("/orders", 401, method="POST")
    unauthorised = api.post(f"{sandbox.url}/orders", json={})
    assert unauthorised.status_code == 401 and unauthorised.text == ""

    sandbox.fail("/esims/assignments", 503, retry_after=7)
    busy = api.get(f"{sandbox.url}/esims/assignments", params={"reference": "x"})
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "7"
    assert busy.json() == {"message": "Processing - Please come back later"}

    sandbox.fail("/organisation", 502, message="upstream went away")
    assert api.get(f"{sandbox.url}/organisation").json() == {"message": "upstream went away"}


def test_slow_answer_arrives_late_but_intact(sandbox: EsimGoSandbox, api: requests.Session) -> None:
    sandbox.fail("/organisation", 0, delay=0.3)
    started = time.monotonic()
    response = api.get(f"{sandbox.url}/organisation")
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 200 and response.json()["organisations"][0]["balance"] == 1000.0
    sandbox.fail("/organisation", 0, delay=0.5)
    with pytest.raises(requests.Timeout):
        api.get(f"{sandbox.url}/organisation", timeout=0.1)


# ----- callbacks -------------------------------------------------------------------------------------------------


def test_usage_callback_is_signed_with_the_api_key(sandbox: EsimGoSandbox, api: requests.Session) -> None:
    received: list[tuple[bytes, str]] = []
    receiver = Flask("receiver")

    @receiver.post("/callback")
    def callback() -> str:
        received.append((request.get_data(), request.headers.get("X-Signature-SHA256", "")))
        return "ok"

    server = ServerThread(receiver).start()
    try:
        iccid = buy(sandbox, api, "esim_5GB_30D_TH_V2")["order"][0]["iccids"][0]
        assert sandbox.send_usage_callback(f"{server.origin}/callback", iccid, 50).status_code == 200
        sandbox.send_usage_callback(f"{server.origin}/callback", iccid, 80, encoding="base64")
    finally:
        server.stop()

    (hex_body, hex_signature), (b64_body, b64_signature) = received
    hex_digest = hmac.new(KEY.encode(), hex_body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(hex_signature, hex_digest)
    b64_digest = base64.b64encode(hmac.new(KEY.encode(), b64_body, hashlib.sha256).digest()).decode()
    assert hmac.compare_digest(b64_signature, b64_digest)

    payload = json.loads(hex_body)
    assert payload["iccid"] == iccid and payload["alertType"] == "Utilisation"
    assert payload["bundle"]["name"] == "esim_5GB_30D_TH_V2"
    assert payload["bundle"]["initialQuantity"] == 5_000_000_000
    assert payload["bundle"]["remainingQuantity"] == 2_500_000_000
    assignment = api.get(f"{sandbox.url}/esims/{iccid}/bundles").json()["bundles"][0]["assignments"][0]
    assert assignment["remainingQuantity"] == 1_000_000_000  # the 80% callback is the latest word


# ----- HTTP controls -----------------------------------------------------------------------------------------------


def test_http_controls_drive_the_sandbox(sandbox: EsimGoSandbox, api: requests.Session) -> None:
    control = f"{sandbox.origin}/_sandbox"
    assert requests.post(f"{control}/fail", json={"path": "/catalogue", "status": 500, "times": 1}).status_code == 200
    assert api.get(f"{sandbox.url}/catalogue").status_code == 500
    assert api.get(f"{sandbox.url}/catalogue").status_code == 200
    assert requests.post(f"{control}/fail", json={"status": 500}).status_code == 400

    settings = requests.post(f"{control}/settings", json={"balance": 50.5}).json()
    assert settings["balance"] == 50.5 and organisation_balance(sandbox, api) == 50.5

    reference = buy(sandbox, api)["orderReference"]
    orders = requests.get(f"{control}/orders").json()["orders"]
    assert [o["orderReference"] for o in orders] == [reference]
    logged = requests.get(f"{control}/requests").json()["requests"]
    assert {"method": "POST", "path": "/orders"}.items() <= logged[-1].items()
    assert json.loads(logged[-1]["body"])["order"][0]["item"] == TH_1GB

    assert requests.post(f"{control}/reset").json() == {"ok": True}
    assert requests.get(f"{control}/orders").json() == {"orders": []}
    assert organisation_balance(sandbox, api) == 1000.0
