"""The admin console's API (issue 10): who may call it, what it shows, and the owner's three actions, through
the real app, the eSIM Go sandbox and the Bot API sandbox."""

from __future__ import annotations

import csv
import io

import pytest

import updates
from conftest import ADMIN_ID, ADMIN_TOKEN, SERVICE_TOKEN, WEBHOOK_SECRET
from extensions import fulfilment, store

BUYER = 2515644
OTHER = 3000001
BUNDLE = "esim_1GB_7D_TH_V2"
PASSWORD = "correct horse battery staple"
TOKEN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

ROUTES = [("GET", "/api/admin/session"), ("GET", "/api/admin/orders"), ("GET", "/api/admin/orders.csv"),
          ("GET", "/api/admin/orders/ord_x"), ("GET", "/api/admin/orders/ord_x/qr.png"),
          ("GET", "/api/admin/stats"), ("GET", "/api/admin/users"), ("POST", "/api/admin/orders/ord_x/resend"),
          ("POST", "/api/admin/orders/ord_x/retry"), ("POST", "/api/admin/orders/ord_x/refund"),
          ("POST", "/admin/logout")]


@pytest.fixture
def config(config):
    # The web process does not settle payments here: each test runs the fulfilment itself, step by step.
    config.setdefault("ADMIN_PASSWORD", PASSWORD)  # a test's own @pytest.mark.settings wins
    config.update(FULFIL_INLINE="0", FULFIL_BACKOFF_SECONDS="0.1", FULFIL_RECONCILE_SECONDS="0.3")
    return config




def paid_order(app, client, tma, user=BUYER, username="traveller", settle=True):
    answer = client.post("/api/telegram/stars/create-invoice", json={"bundle_name": BUNDLE},
                         headers={"Authorization": tma(user, username=username)}).get_json()
    update = updates.successful_payment(user, answer["order_id"], answer["stars"])
    assert client.post("/api/telegram/webhook", json=update,
                       headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}).status_code == 200
    if settle:
        fulfilment(app).settle(answer["order_id"])
    return store(app).get(answer["order_id"])


def sign_in(client) -> dict:
    response = client.post("/admin/login", json={"password": PASSWORD})
    assert response.status_code == 200, response.get_json()
    return {"X-CSRF-Token": response.get_json()["csrf"]}


# ---- who may call it -----------------------------------------------------------------------------


@pytest.mark.parametrize("method, path", ROUTES)
def test_every_admin_route_is_401_without_credentials_and_shows_no_data(client, tma, method, path):
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": tma(BUYER)},
                    {"Authorization": f"Basic {ADMIN_TOKEN}"}, {"Cookie": "esimsdata_admin=forged.value.sig"}):
        response = client.open(path, method=method, headers=headers)
        assert response.status_code == 401, (path, headers)
        assert response.get_json() == {"error": "unauthorized", "message": "Sign in to the admin console."}


def test_the_admin_token_opens_the_api(app, client, tma):
    order = paid_order(app, client, tma)
    listing = client.get("/api/admin/orders", headers=TOKEN).get_json()
    assert [row["id"] for row in listing["orders"]] == [order["id"]] and listing["total"] == 1
    assert client.get("/api/admin/session", headers=TOKEN).get_json()["via"] == "token"


def test_the_console_page_holds_no_order_data_and_forbids_framing(app, client, tma):
    order = paid_order(app, client, tma)
    response = client.get("/admin/orders.html")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and order["id"] not in html and order["iccid"] not in html
    assert "script-src 'self';" in response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"


def test_a_wrong_password_is_refused_and_the_right_one_opens_a_strict_session(client, caplog):
    caplog.set_level("INFO", logger="admin")
    wrong = client.post("/admin/login", json={"password": "guess"})
    assert wrong.status_code == 401 and wrong.get_json()["error"] == "wrong_password"
    assert "Set-Cookie" not in wrong.headers
    assert "admin login failed from 127.0.0.1" in caplog.text

    right = client.post("/admin/login", json={"password": PASSWORD})
    cookie = right.headers["Set-Cookie"]
    assert right.status_code == 200 and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Max-Age=43200" in cookie and "; Secure" in cookie  # the shop's address is https
    assert client.get("/api/admin/session", base_url="https://localhost").get_json()["csrf"] == \
        right.get_json()["csrf"]
    assert client.get("/api/admin/orders", base_url="https://localhost").status_code == 200


@pytest.mark.settings(PUBLIC_BASE_URL="http://127.0.0.1:8000")
def test_the_session_cookie_is_secure_whenever_the_request_came_over_https(client):
    assert "Secure" not in client.post("/admin/login", json={"password": PASSWORD}).headers["Set-Cookie"]
    response = client.post("/admin/login", json={"password": PASSWORD}, base_url="https://127.0.0.1:8000")
    assert "; Secure" in response.headers["Set-Cookie"]


def test_another_sites_page_can_neither_log_in_nor_use_up_the_owners_attempts(client):
    for _ in range(8):
        cross = client.post("/admin/login", json={"password": "guess"}, headers={"Sec-Fetch-Site": "cross-site"})
        assert cross.status_code == 403
        assert client.post("/admin/login", data={"password": "guess"}).status_code == 403  # a plain form
        assert client.post("/admin/login", json={"password": "guess"},
                           headers={"Origin": "https://evil.example"}).status_code == 403
    assert client.post("/admin/login", json={"password": PASSWORD}, headers={"Sec-Fetch-Site": "same-origin",
                                                                            "Origin": "https://shop.example.test"}
                       ).status_code == 200


def test_a_cookie_post_without_its_csrf_token_is_refused(app, client, tma, telegram):
    order = paid_order(app, client, tma)
    csrf = sign_in(client)
    sent = len(telegram.calls("sendPhoto"))
    for headers in ({}, {"X-CSRF-Token": "not-the-token"}):
        refused = client.post(f"/api/admin/orders/{order['id']}/resend", headers=headers)
        assert refused.status_code == 403 and refused.get_json()["error"] == "csrf"
    assert len(telegram.calls("sendPhoto")) == sent  # nothing was sent
    assert client.post(f"/api/admin/orders/{order['id']}/resend", headers=csrf).status_code == 200


def test_logging_out_ends_the_session_even_for_a_copy_of_its_cookie(client):
    csrf = sign_in(client)
    copied = client.get_cookie("esimsdata_admin").value
    assert client.post("/admin/logout", headers=csrf).status_code == 200
    assert client.get("/api/admin/orders").status_code == 401
    client.set_cookie("esimsdata_admin", copied)
    assert client.get("/api/admin/orders").status_code == 401
    assert client.post("/admin/logout", headers=csrf).status_code == 401
    sign_in(client)  # a new session works
    assert client.get("/api/admin/orders").status_code == 200


def test_login_failures_are_limited_per_client(client):
    nginx = {"X-Forwarded-For": "203.0.113.7"}  # the client's address, as nginx on loopback passes it
    for _ in range(5):
        assert client.post("/admin/login", json={"password": "guess"}, headers=nginx).status_code == 401
    blocked = client.post("/admin/login", json={"password": PASSWORD}, headers=nginx)
    assert blocked.status_code == 429 and "Try again in" in blocked.get_json()["message"]
    # Another client is not locked out by someone else's guessing.
    assert client.post("/admin/login", json={"password": PASSWORD},
                       headers={"X-Forwarded-For": "198.51.100.9"}).status_code == 200
    # An IPv6 client has a whole /64 to take addresses from: it counts as one.
    for n in range(5):
        client.post("/admin/login", json={"password": "guess"}, headers={"X-Forwarded-For": f"2001:db8::{n + 1}"})
    assert client.post("/admin/login", json={"password": PASSWORD},
                       headers={"X-Forwarded-For": "2001:db8::ffff"}).status_code == 429


@pytest.mark.settings(ADMIN_PASSWORD="")
def test_without_a_password_nobody_can_log_in(client):
    response = client.post("/admin/login", json={"password": ""})
    assert response.status_code == 403 and "ADMIN_PASSWORD" in response.get_json()["message"]


@pytest.mark.parametrize("body", [None, "", "[]", '{"password": 5}', '{"password": null}', "{bad json"])
def test_malformed_logins_are_a_clear_401(client, body):
    response = client.post("/admin/login", data=body, content_type="application/json")
    assert response.status_code == 401 and response.get_json()["error"] == "wrong_password"


def test_actions_change_nothing_on_get(app, client, tma):
    order = paid_order(app, client, tma)
    for action in ("resend", "retry", "refund"):
        assert client.get(f"/api/admin/orders/{order['id']}/{action}", headers=TOKEN).status_code == 405
    assert store(app).get(order["id"])["status"] == "completed"


# ---- reading ---------------------------------------------------------------------------------------


def test_search_finds_orders_by_every_id_an_owner_has_at_hand(app, client, tma):
    mine = paid_order(app, client, tma, username="Alice_Travels")
    other = paid_order(app, client, tma, user=OTHER, username="bob")
    for q in (mine["iccid"], mine["iccid"][-6:], "@alice_travels", "Alice_Travels", str(BUYER), mine["id"],
              mine["orderReference"], mine["telegram_payment_charge_id"]):
        found = client.get("/api/admin/orders", query_string={"q": q}, headers=TOKEN).get_json()
        assert [o["id"] for o in found["orders"]] == [mine["id"]], q
    both = client.get("/api/admin/orders", headers=TOKEN).get_json()["orders"]
    assert [o["id"] for o in both] == [other["id"], mine["id"]]  # newest first
    row = both[1]
    assert (row["status"], row["status_text"], row["payment"], row["esim"], row["delivery"]) == (
        "completed", "Completed", "paid", "ready", "delivered")
    assert (row["flag"], row["plan"], row["stars"], row["price"], row["telegram_username"]) == (
        "🇹🇭", "1 GB · 7 days", 314, "3.06", "Alice_Travels")


def test_filters_by_status_dates_country_and_user(app, client, tma):
    done = paid_order(app, client, tma)
    waiting = client.post("/api/telegram/stars/create-invoice", json={"bundle_name": BUNDLE},
                          headers={"Authorization": tma(OTHER)}).get_json()
    today = done["created_at"][:10]

    def ids(**query):
        answer = client.get("/api/admin/orders", query_string=query, headers=TOKEN)
        assert answer.status_code == 200, answer.get_json()
        return {o["id"] for o in answer.get_json()["orders"]}

    assert ids(status="completed") == {done["id"]}
    assert ids(status=["completed", "awaiting_payment"]) == {done["id"], waiting["order_id"]}
    assert ids(**{"from": today, "to": today}) == {done["id"], waiting["order_id"]}
    assert ids(**{"to": "2020-01-01"}) == set()
    assert ids(country="th", user=str(OTHER)) == {waiting["order_id"]}
    assert ids(country="FR") == set()
    page = client.get("/api/admin/orders", query_string={"per_page": 1, "page": 2}, headers=TOKEN).get_json()
    assert (page["total"], page["page"], page["per_page"], len(page["orders"])) == (2, 2, 1, 1)


@pytest.mark.parametrize("query", [{"status": "lost"}, {"from": "22.11.2026"}, {"to": "2026-13-01"},
                                   {"from": "2026-11-22", "to": "2026-11-01"}, {"country": "THA"},
                                   {"user": "@bob"}, {"from": "2026-11-22T00:00"}, {"country": "<b>"}])
def test_unreadable_filters_are_a_400_that_names_them(client, query):
    for path in ("/api/admin/orders", "/api/admin/orders.csv"):
        response = client.get(path, query_string=query, headers=TOKEN)
        assert response.status_code == 400, (path, query)
        assert response.get_json()["error"] == "invalid_query"
        assert next(iter(query)) in response.get_json()["message"]


@pytest.mark.parametrize("query", [{"page": "0"}, {"per_page": "5000"}, {"page": "x"}, {"per_page": "-1"},
                                   {"page": "²"}])
def test_unreadable_pages_are_a_400_that_names_them(client, query):
    for path in ("/api/admin/orders", "/api/admin/users"):
        response = client.get(path, query_string=query, headers=TOKEN)
        assert response.status_code == 400 and next(iter(query)) in response.get_json()["message"], path


def test_the_csv_holds_the_filtered_rows_with_formulas_neutralised(app, client, tma):
    order = paid_order(app, client, tma)
    seeded = client.post("/api/orders", headers={"X-Service-Token": SERVICE_TOKEN}, json={
        "telegram_user_id": OTHER, "telegram_username": "=HYPERLINK(\"http://evil\")", "country_code": "TH",
        "country_name": "+cmd|' /C calc'!A0", "bundle_name": "@SUM(1+1)", "iccid": "-2+3", "status": "completed",
        "price": "3.06", "cost": "1"}).get_json()["order"]
    response = client.get("/api/admin/orders.csv", query_string={"country": "TH"}, headers=TOKEN)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["id"] for r in rows] == [seeded["id"], order["id"]]
    assert rows[0]["telegram_username"] == "'=HYPERLINK(\"http://evil\")"
    assert rows[0]["country_name"] == "'+cmd|' /C calc'!A0" and rows[0]["bundle_name"] == "'@SUM(1+1)"
    assert rows[0]["iccid"] == "'-2+3" and rows[0]["margin"] == "2.06"
    assert rows[1]["iccid"] == order["iccid"] and rows[1]["stars"] == "314"
    only_seeded = client.get("/api/admin/orders.csv", query_string={"user": OTHER}, headers=TOKEN)
    assert len(list(csv.DictReader(io.StringIO(only_seeded.get_data(as_text=True))))) == 1


def test_an_order_in_full_with_its_history_and_install_code(app, client, tma):
    order = paid_order(app, client, tma)
    detail = client.get(f"/api/admin/orders/{order['id']}", headers=TOKEN).get_json()
    assert detail["order"]["orderReference"] == order["orderReference"] and detail["order"]["cost"]
    assert detail["lpa"] == f"LPA:1${order['smdpAddress']}${order['matchingId']}"
    assert detail["actions"] == {"resend": True, "retry": False, "refund": True}
    moves = [(h["event"], h.get("detail"), h["by"]) for h in detail["history"]]
    assert moves[0] == ("created", "awaiting_payment", "shop")
    assert ("status", "awaiting_payment → paid", "telegram") in moves
    assert ("status", "provisioning → completed", "shop") in moves and moves[-1][0] == "delivered"
    qr = client.get(detail["qr_url"], headers=TOKEN)
    assert qr.status_code == 200 and qr.mimetype == "image/png" and qr.headers["Cache-Control"] == "no-store"
    assert client.get("/api/admin/orders/ord_20261122_0000000000", headers=TOKEN).status_code == 404


def test_stats_count_sales_refunds_and_buyers(app, client, tma):
    paid_order(app, client, tma)
    second = paid_order(app, client, tma, user=OTHER, username="bob")
    client.post(f"/api/admin/orders/{second['id']}/refund", headers=TOKEN)
    stats = client.get("/api/admin/stats", query_string={"days": 7}, headers=TOKEN).get_json()
    today = stats["days"][-1]
    assert len(stats["days"]) == 7 and today["date"] == second["created_at"][:10]
    assert (today["orders"], today["stars"], today["usd"], today["refunds"]) == (1, 314, "3.06", 1)
    # eSIM Go was paid for both eSIMs, refunded or not: the day lost money.
    assert today["cost"] == "4.52" and today["margin"] == "-1.46"
    assert stats["periods"]["today"] == stats["periods"]["30d"] == {k: v for k, v in today.items() if k != "date"}
    assert stats["countries"] == [{"country_code": "TH", "country_name": "Thailand", "flag": "🇹🇭", "orders": 1,
                                   "stars": 314, "usd": "3.06"}]
    people = client.get("/api/admin/users", headers=TOKEN).get_json()
    assert [(u["telegram_user_id"], u["telegram_username"], u["orders"], u["paid_orders"], u["usd"])
            for u in people["users"]] == [(OTHER, "bob", 1, 0, "0.00"), (BUYER, "traveller", 1, 1, "3.06")]
    assert client.get("/api/admin/stats", query_string={"days": "400"}, headers=TOKEN).status_code == 400


# ---- the owner's actions -----------------------------------------------------------------------------


def test_a_failed_delivery_needs_attention_and_retry_delivers_it_with_one_esim(app, client, tma, telegram, esimgo):
    telegram.fail("sendPhoto", error_code=403, description="Forbidden: bot was blocked by the user")
    order = paid_order(app, client, tma)
    assert order["status"] == "completed" and order["delivery_error"] and not order.get("delivered_at")
    alert = telegram.calls("sendMessage", chat_id=ADMIN_ID)[-1].params["text"]
    assert f"https://shop.example.test/admin/orders.html#order={order['id']}" in alert  # the bot links the order
    attention = client.get("/api/admin/orders", query_string={"attention": 1}, headers=TOKEN).get_json()["orders"]
    assert [(o["id"], o["delivery"]) for o in attention] == [(order["id"], "failed")]
    assert attention[0]["attention"].startswith("Delivery failed: ")

    csrf = sign_in(client)
    answer = client.post(f"/api/admin/orders/{order['id']}/retry", headers=csrf)
    assert answer.status_code == 200 and answer.get_json()["message"].startswith("Done")
    after = store(app).get(order["id"])
    assert after["delivered_at"] and len(esimgo.orders) == 1
    assert len(telegram.calls("sendPhoto", chat_id=BUYER)) == 2  # the refused one and the delivered one
    assert [h["by"] for h in after["history"] if h["event"] == "retry"] == ["admin"]
    assert client.get("/api/admin/orders", query_string={"attention": 1}, headers=TOKEN).get_json()["total"] == 0
    # Nothing is left to retry, and a retry never buys a second eSIM.
    again = client.post(f"/api/admin/orders/{order['id']}/retry", headers=csrf)
    assert again.status_code == 409 and len(esimgo.orders) == 1


def test_a_stuck_paid_order_is_retried_through_the_exactly_once_path(app, client, tma, esimgo):
    esimgo.fail("/orders", status=503, method="POST")
    order = paid_order(app, client, tma, settle=False)
    fulfilment(app).advance(order["id"])  # eSIM Go answered 503: maybe bought, so it must check first
    waiting = store(app).get(order["id"])
    assert waiting["status"] == "provisioning" and waiting["esimgo_unsure"]
    answer = client.post(f"/api/admin/orders/{order['id']}/retry", headers=TOKEN)
    assert answer.status_code == 200, answer.get_json()
    assert store(app).get(order["id"])["status"] == "completed" and len(esimgo.orders) <= 1


def test_refunding_a_completed_order_returns_the_stars_and_tells_the_buyer(app, client, tma, telegram):
    order = paid_order(app, client, tma)
    csrf = sign_in(client)
    answer = client.post(f"/api/admin/orders/{order['id']}/refund", json={"reason": "changed plans"}, headers=csrf)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["detail"]["row"]["status_text"] == "Refunded"
    refunds = telegram.calls("refundStarPayment")
    assert [c.params["telegram_payment_charge_id"] for c in refunds] == [order["telegram_payment_charge_id"]]
    told = telegram.calls("sendMessage", chat_id=BUYER)[-1].params["text"]
    assert "has been refunded" in told and "314" in told and order["id"] in told
    after = store(app).get(order["id"])
    assert after["status"] == "refunded" and "changed plans" in after["refund_reason"]
    assert ("refund", "changed plans", "admin") in [(h["event"], h.get("detail"), h["by"]) for h in after["history"]]
    again = client.post(f"/api/admin/orders/{order['id']}/refund", headers=csrf)
    assert again.status_code == 409 and len(telegram.calls("refundStarPayment")) == 1


def test_resend_sends_the_qr_again_and_is_recorded(app, client, tma, telegram):
    order = paid_order(app, client, tma)
    answer = client.post(f"/api/admin/orders/{order['id']}/resend", headers=TOKEN)
    assert answer.status_code == 200 and answer.get_json()["message"] == "The eSIM was sent to the buyer again."
    photos = telegram.calls("sendPhoto", chat_id=BUYER)
    assert len(photos) == 2 and order["matchingId"] in photos[-1].params["caption"]
    assert [h["event"] for h in store(app).get(order["id"])["history"]][-1] == "resent"
    telegram.fail("sendPhoto", error_code=403, description="Forbidden: bot was blocked by the user")
    failed = client.post(f"/api/admin/orders/{order['id']}/resend", headers=TOKEN)
    assert failed.status_code == 502 and "bot was blocked" in failed.get_json()["message"]


@pytest.mark.parametrize("action", ["resend", "retry", "refund"])
def test_actions_on_a_wrong_state_or_unknown_order_are_a_clear_4xx(app, client, tma, action):
    waiting = client.post("/api/telegram/stars/create-invoice", json={"bundle_name": BUNDLE},
                          headers={"Authorization": tma(BUYER)}).get_json()
    refused = client.post(f"/api/admin/orders/{waiting['order_id']}/{action}", headers=TOKEN)
    assert refused.status_code == 409 and "Awaiting payment" in refused.get_json()["message"]
    unknown = client.post(f"/api/admin/orders/ord_20261122_ffffffffff/{action}", headers=TOKEN)
    assert unknown.status_code == 404 and unknown.get_json()["error"] == "not_found"
    assert store(app).get(waiting["order_id"])["status"] == "awaiting_payment"


def test_an_owners_refund_of_a_paid_order_is_no_failure_for_the_buyer_or_the_stats(app, client, tma, telegram):
    order = paid_order(app, client, tma, settle=False)  # paid, nothing bought yet (the worker has not run)
    answer = client.post(f"/api/admin/orders/{order['id']}/refund", headers=TOKEN)
    assert answer.status_code == 200, answer.get_json()
    told = telegram.calls("sendMessage", chat_id=BUYER)[-1].params["text"]
    assert "has been refunded" in told and "could not" not in told
    stats = client.get("/api/admin/stats", headers=TOKEN).get_json()
    assert (stats["days"][-1]["refunds"], stats["days"][-1]["failures"], stats["days"][-1]["cost"]) == (1, 0, "0.00")


def test_the_operator_api_cannot_mark_a_delivered_order_refunded(app, client, tma, telegram):
    order = paid_order(app, client, tma)
    answer = client.post("/api/orders", headers={"X-Service-Token": SERVICE_TOKEN},
                         json={"id": order["id"], "status": "refunded"})
    assert answer.status_code == 409 and store(app).get(order["id"])["status"] == "completed"
    assert telegram.calls("refundStarPayment") == []


def test_odd_records_from_an_older_file_never_take_the_console_down(data_dir, config):
    import json

    from app import create_app

    odd = [{"id": "dup", "telegram_user_id": 42, "status": "completed", "price": "1e30", "stars": "314"},
           {"id": "dup", "telegram_user_id": 42, "status": "refunded", "created_at": "0001-01-01T00:00:00+05:00"},
           {"telegram_user_id": 42, "status": "completed", "country_name": 5, "data_mb": "1GB",
            "duration_days": "7.5", "history": 5},
           {"id": "odd-status", "status": ["x"], "needs_attention": "check this", "created_at": "yesterday"}]
    (data_dir / "orders.json").write_text(json.dumps({"42": odd[:3], "43": odd[3:]}))
    app = create_app(config)
    client = app.test_client()
    try:
        listing = client.get("/api/admin/orders", headers=TOKEN)
        assert listing.status_code == 200
        rows = listing.get_json()["orders"]
        assert listing.get_json()["total"] == len(rows) == 4 and len({r["id"] for r in rows}) == 4
        for path in ("/api/admin/orders.csv", "/api/admin/stats", "/api/admin/users",
                     "/api/admin/orders?q=dup", "/api/admin/orders?attention=1"):
            assert client.get(path, headers=TOKEN).status_code == 200, path
        for row in rows:
            assert client.get(f"/api/admin/orders/{row['id']}", headers=TOKEN).status_code in (200, 404), row
        assert client.get("/api/admin/orders/odd-status", headers=TOKEN).status_code == 200
    finally:
        app.extensions["esimsdata"]["store"].close()
