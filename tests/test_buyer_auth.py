"""Buyer auth (SPEC §4): Mini App initData validated on the server; a buyer sees only their own orders."""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote

import pytest

from auth import InitDataError, validate_init_data
from conftest import BOT_TOKEN, SERVICE_TOKEN, wait_on_disk

DAY = 86400


def telegram_shaped_init_data(token: str, user_json: str, auth_date: int, extra: dict[str, str]) -> str:
    """initData built the way Telegram's clients send it: percent-encoded raw values, user JSON as
    Telegram writes it (escaped slashes kept), a `signature` field, fields in Telegram's order."""
    fields = {"query_id": "AAHdF6IQAAAAAN0XohDhrOrc", "user": user_json, "auth_date": str(auth_date), **extra}
    check = "\n".join(f"{k}={fields[k]}" for k in sorted(fields))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    fields["hash"] = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in fields.items())


TELEGRAM_USER = ('{"id":2515644,"first_name":"Иван","last_name":"Петров+Сидоров","username":"ivan_p",'
                 '"language_code":"ru","is_premium":true,"allows_write_to_pm":true,'
                 '"photo_url":"https:\\/\\/t.me\\/i\\/userpic\\/320\\/abc+def.svg"}')


def test_telegram_shaped_init_data_is_accepted_with_raw_values():
    signature = "Sl4rEDQkGAr3JcZq1Ytxq_8e0wW3SkFdlN-EeBpIgWvN0y9o-QTD4Tq_rTCBuPQ"  # Ed25519, for third parties
    raw = telegram_shaped_init_data(BOT_TOKEN, TELEGRAM_USER, int(time.time()) - 60,
                                    {"signature": signature, "chat_instance": "-8031"})
    assert "%5C%2F" in raw  # the escaped slashes travel as they are
    buyer = validate_init_data(raw, BOT_TOKEN, max_age=DAY)
    assert buyer.id == 2515644
    assert buyer.first_name == "Иван"
    assert buyer.language == "ru"


def test_the_api_accepts_a_telegram_shaped_caller(client):
    raw = telegram_shaped_init_data(BOT_TOKEN, TELEGRAM_USER, int(time.time()), {"signature": "abc_-"})
    response = client.get("/api/orders", headers={"Authorization": f"tma {raw}"})
    assert response.status_code == 200
    assert response.get_json() == {"orders": []}


@pytest.mark.parametrize("case", ["forged", "stale", "tampered", "no_hash", "garbage", "future", "duplicate"])
def test_bad_init_data_is_refused(case):
    now = int(time.time())
    good = telegram_shaped_init_data(BOT_TOKEN, TELEGRAM_USER, now, {})
    raw = {
        "forged": telegram_shaped_init_data("987654321:someone-elses-token", TELEGRAM_USER, now, {}),
        "stale": telegram_shaped_init_data(BOT_TOKEN, TELEGRAM_USER, now - DAY - 5, {}),
        "tampered": good.replace("2515644", "2515645"),
        "no_hash": good.split("&hash=")[0],
        "garbage": "test&foo=bar=baz",
        "future": telegram_shaped_init_data(BOT_TOKEN, TELEGRAM_USER, now + 3600, {}),
        "duplicate": good + "&auth_date=1",
    }[case]
    with pytest.raises(InitDataError):
        validate_init_data(raw, BOT_TOKEN, max_age=DAY)


@pytest.mark.parametrize("header", ["", "tma ", "Bearer abc", "tma auth_date=1&hash=00"])
def test_orders_api_refuses_missing_or_bad_auth_with_401(client, header):
    response = client.get("/api/orders", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    body = response.get_json()
    assert body["error"] == "unauthorized" and "Telegram" in body["message"]


def test_stale_init_data_gets_401_from_the_api(client, tma):
    response = client.get("/api/orders", headers={"Authorization": tma(1, auth_date=int(time.time()) - DAY - 60)})
    assert response.status_code == 401


def seed(client, **fields):
    return client.post("/api/orders", json=fields, headers={"X-Service-Token": SERVICE_TOKEN})


def test_a_buyer_sees_only_their_own_orders_whatever_they_ask_for(client, tma):
    assert seed(client, id="ord_alice", telegram_user_id=111, bundle_name="esim_1GB_7D_TH_V2",
                status="completed", iccid="8944000000000000001", price="3.06", cost="2.26").status_code == 201
    assert seed(client, id="ord_bob", telegram_user_id=222, bundle_name="esim_3GB_30D_FR_V2",
                iccid="8944000000000000002").status_code == 201
    for url in ("/api/orders", "/api/orders?userId=222", "/api/orders?telegram_user_id=222"):
        orders = client.get(url, headers={"Authorization": tma(111)}).get_json()["orders"]
        assert [o["id"] for o in orders] == ["ord_alice"]
        assert orders[0]["iccid"] == "8944000000000000001"
        assert "cost" not in orders[0]  # what we paid eSIM Go is not the buyer's business
    bob = client.get("/api/orders", headers={"Authorization": tma(222)}).get_json()["orders"]
    assert [o["id"] for o in bob] == ["ord_bob"]


def test_seeding_orders_needs_the_service_token(client, tma):
    body = {"telegram_user_id": 111, "bundle_name": "esim_1GB_7D_TH_V2"}
    assert client.post("/api/orders", json=body).status_code == 403
    assert client.post("/api/orders", json=body, headers={"X-Service-Token": "guess"}).status_code == 403
    # A buyer's own initData is not an operator credential either.
    assert client.post("/api/orders", json=body, headers={"Authorization": tma(111)}).status_code == 403
    assert client.get("/api/orders", headers={"Authorization": tma(111)}).get_json()["orders"] == []


@pytest.mark.settings(SERVICE_TOKEN="")
def test_seeding_is_closed_when_no_service_token_is_configured(app, client):
    response = client.post("/api/orders", json={"telegram_user_id": 1}, headers={"X-Service-Token": ""})
    assert response.status_code == 403


def test_an_update_keeps_fields_it_was_not_given(client, app):
    created = seed(client, telegram_user_id=111, bundle_name="esim_1GB_7D_TH_V2", price="3.06", stars=314,
                   country_code="TH").get_json()["order"]
    updated = seed(client, id=created["id"], status="paid", telegram_payment_charge_id="ch_1")
    assert updated.status_code == 200
    order = app.extensions["esimsdata"]["store"].get(created["id"])
    assert order["bundle_name"] == "esim_1GB_7D_TH_V2" and order["stars"] == 314 and order["country_code"] == "TH"
    assert order["status"] == "paid" and order["telegram_payment_charge_id"] == "ch_1"
    assert str(order["price"]) == "3.06"


@pytest.mark.parametrize("body, status, words", [
    ("not json", 400, "JSON object"),
    ({"telegram_user_id": "abc"}, 400, "telegram_user_id"),
    ({"telegram_user_id": 1, "price": "free"}, 400, "price"),
    ({"telegram_user_id": 1, "stars": 3.5}, 400, "stars"),
    ({"telegram_user_id": 1, "status": "shipped"}, 400, "status"),
    ({"telegram_user_id": 1, "is_admin": True}, 400, "Unknown order fields"),
    ({"bundle_name": "x"}, 400, "telegram_user_id"),
])
def test_bad_seed_input_gets_a_clear_4xx(client, body, status, words):
    kwargs = {"data": body, "content_type": "application/json"} if isinstance(body, str) else {"json": body}
    response = client.post("/api/orders", headers={"X-Service-Token": SERVICE_TOKEN}, **kwargs)
    assert response.status_code == status
    assert words in response.get_json()["message"]


def test_status_never_moves_backwards_and_owners_never_change(client):
    order = seed(client, telegram_user_id=111, status="completed").get_json()["order"]
    assert seed(client, id=order["id"], status="awaiting_payment").status_code == 409
    assert seed(client, id=order["id"], telegram_user_id=222).status_code == 409


def test_seeded_orders_are_written_to_the_file_operators_read(client, data_dir):
    seed(client, id="ord_x", telegram_user_id=2515644, bundle_name="esim_1GB_7D_TH_V2", price="3.06")
    on_disk = wait_on_disk(data_dir / "orders.json", lambda d: "2515644" in d)
    assert on_disk["2515644"][-1]["id"] == "ord_x"
    assert on_disk["2515644"][-1]["price"] == 3.06
