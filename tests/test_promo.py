"""Promo codes (issue 12, docs/settings.md): the owner's codes through the admin API, the buyer's preview
(`POST /api/promo/check`), the discounted invoice, pre-checkout and paid order, and uses counted exactly —
against the Telegram and eSIM Go sandboxes, with the real store."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from test_purchase import BUNDLE, BUYER, answer_of, config, invoice, pay, post, wait_status  # noqa: F401

import updates
from conftest import ADMIN_TOKEN
from extensions import store

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def create(client, status=201, **fields):
    response = client.post("/api/admin/promocodes", json=fields, headers=ADMIN)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def listed(client, code):
    (entry,) = [c for c in client.get("/api/admin/promocodes", headers=ADMIN).get_json()["promocodes"]
                if c["code"].casefold() == code.casefold()]
    return entry


def check(client, tma, code, bundle=BUNDLE, user=BUYER, lang="en", app_lang=None):
    body = {"code": code, "bundle_name": bundle, **({"lang": app_lang} if app_lang else {})}
    response = client.post("/api/promo/check", json=body, headers={"Authorization": tma(user, language_code=lang)})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def try_invoice(client, tma, code, user=BUYER, lang="en", bundle=BUNDLE):
    return client.post("/api/telegram/stars/create-invoice", json={"bundle_name": bundle, "promo_code": code},
                       headers={"Authorization": tma(user, language_code=lang)})


# ---- the buyer's price ---------------------------------------------------------------------------------


def test_a_20_percent_code_discounts_preview_invoice_pre_checkout_and_the_paid_order(app, client, tma, telegram):
    create(client, code="SUMMER20", percent_off=20)
    preview = check(client, tma, "summer20")  # any case
    assert preview["valid"] is True and preview["code"] == "SUMMER20"
    assert (preview["full_stars"], preview["full_price_usd"]) == (314, "3.06")
    assert (preview["stars"], preview["price_usd"], preview["discount_usd"]) == (252, "2.45", "0.61")
    assert "20%" in preview["message"]

    answer = invoice(client, tma, promo_code="Summer20")
    assert (answer["stars"], answer["price_usd"], answer["discount_usd"]) == (252, "2.45", "0.61")
    (call,) = telegram.calls("createInvoiceLink")
    assert [p["amount"] for p in call.json("prices")] == [252]

    post(client, updates.pre_checkout(BUYER, answer["order_id"], 314))  # the full price is not this invoice's
    assert answer_of(telegram)[0] is False
    post(client, updates.pre_checkout(BUYER, answer["order_id"], 252))
    assert answer_of(telegram) == (True, None)

    pay(client, answer)
    order = wait_status(app, answer["order_id"], {"completed"})
    assert order["promo_code"] == "SUMMER20" and order["discount_usd"] == Decimal("0.61")
    assert (order["price"], order["stars"], order["paid_stars"]) == (Decimal("2.45"), 252, 252)
    assert (order["full_price"], order["full_stars"]) == (Decimal("3.06"), 314)
    entry = listed(client, "SUMMER20")
    assert (entry["uses"], entry["held"], entry["revenue_usd"], entry["revenue_stars"], entry["discount_usd"]) == (
        1, 0, "2.45", 252, "0.61")
    csv = client.get("/api/admin/orders.csv", headers=ADMIN).get_data(as_text=True)
    header, row = csv.splitlines()[0].split(","), csv.splitlines()[1].split(",")
    assert row[header.index("promo_code")] == "SUMMER20" and row[header.index("discount_usd")] == "0.61"


def test_a_fixed_discount_larger_than_the_price_still_costs_one_star(app, client, tma):
    create(client, code="FREEBIE", amount_off_usd="500.00")
    preview = check(client, tma, "FREEBIE")
    assert (preview["stars"], preview["price_usd"], preview["discount_usd"]) == (1, "0.00", "3.06")
    answer = invoice(client, tma, promo_code="freebie")
    assert answer["stars"] == 1 and store(app).get(answer["order_id"])["stars"] == 1


def test_a_fixed_discount_takes_its_dollars_off_before_the_stars_are_counted(client, tma):
    create(client, code="FIVE", amount_off_usd=1)
    preview = check(client, tma, "five")
    # 3.06 - 1.00 = 2.06 USD -> ceil(2.06 / 0.75 / 0.013) = 212 Stars
    assert (preview["price_usd"], preview["stars"], preview["discount_usd"]) == ("2.06", 212, "1.00")


@pytest.mark.parametrize("fields, reason, en, ru", [
    ({"active": False}, "unknown", "does not exist", "нет"),
    ({"starts_at": "2099-01-01"}, "not_started", "not active yet", "ещё не действует"),
    ({"ends_at": "2020-01-01T00:00:00Z"}, "expired", "expired", "истёк"),
    ({"destinations": ["US", "europe"]}, "not_applicable", "does not apply", "не действует для"),
    ({"destinations": ["regional", "global"]}, "not_applicable", "does not apply", "не действует для"),
])
def test_a_code_that_cannot_be_used_says_why_in_the_buyers_language_and_changes_nothing(
        app, client, tma, telegram, fields, reason, en, ru):
    create(client, code="NOPE10", percent_off=10, **fields)
    for lang, words in (("en", en), ("ru", ru)):
        preview = check(client, tma, "NOPE10", lang=lang)
        assert preview["valid"] is False and preview["reason"] == reason and words in preview["message"]
        assert (preview["stars"], preview["price_usd"], preview["discount_usd"]) == (314, "3.06", "0.00")
        refused = try_invoice(client, tma, "nope10", lang=lang)
        assert refused.status_code == 422
        assert refused.get_json()["error"] == f"promo_{reason}" and words in refused.get_json()["message"]
    # The Mini App's own language choice wins over the Telegram account's.
    assert ru in check(client, tma, "NOPE10", lang="en", app_lang="ru")["message"]
    assert telegram.calls("createInvoiceLink") == [] and store(app).orders_for_user(BUYER) == []


@pytest.mark.parametrize("destinations", [["TH"], ["th"], ["local"], ["europe", "TH"]])
def test_a_code_limited_to_destinations_applies_to_them(client, tma, destinations):
    create(client, code="THAI", percent_off=10, destinations=destinations)
    assert check(client, tma, "THAI")["valid"] is True


def test_unknown_codes_get_the_same_answer_as_paused_ones(client, tma):
    for code in ("NOSUCH", "ÜBER-2026#1", "x" * 32):
        preview = check(client, tma, code)
        assert preview["valid"] is False and preview["reason"] == "unknown"


@pytest.mark.parametrize("body, status", [
    ({"bundle_name": BUNDLE}, 400),
    ({"code": "A"}, 400),
    ({"code": 5, "bundle_name": BUNDLE}, 400),
    ({"code": ["A"], "bundle_name": BUNDLE}, 400),
    ({"code": "A" * 200, "bundle_name": BUNDLE}, 400),
    ({"code": "A", "bundle_name": "esim_nope"}, 404),
    ([], 400),
    ("code", 400),
])
def test_malformed_promo_checks_get_a_4xx_with_a_message(client, tma, body, status):
    response = client.post("/api/promo/check", json=body, headers={"Authorization": tma(BUYER)})
    assert response.status_code == status and response.get_json()["message"]


def test_promo_checks_need_a_telegram_buyer(client):
    assert client.post("/api/promo/check", json={"code": "A", "bundle_name": BUNDLE}).status_code == 401


def test_guessing_codes_one_after_another_is_slowed_down(client, tma):
    answers = [client.post("/api/promo/check", json={"code": f"GUESS{i}", "bundle_name": BUNDLE},
                           headers={"Authorization": tma(BUYER, language_code="ru")}) for i in range(21)]
    assert [a.status_code for a in answers[:20]] == [200] * 20
    assert answers[20].status_code == 429 and "Слишком много" in answers[20].get_json()["message"]
    # ...for that buyer only, and invoices with a code count too
    assert check(client, tma, "GUESS", user=BUYER + 1)["reason"] == "unknown"
    assert try_invoice(client, tma, "GUESS").status_code == 429


# ---- uses -------------------------------------------------------------------------------------------


def test_two_buyers_racing_for_the_last_use_one_gets_it_the_other_is_told(app, client, tma, telegram):
    create(client, code="LAST1", percent_off=50, max_uses=1)
    gate = threading.Barrier(2)

    def race(user):
        gate.wait()
        return try_invoice(app.test_client(), tma, "LAST1", user=user)

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(race, (BUYER, BUYER + 1)))
    assert sorted(a.status_code for a in answers) == [200, 422]
    (loser,) = [a for a in answers if a.status_code == 422]
    assert loser.get_json()["reason"] == "used_up" and "used up" in loser.get_json()["message"]
    assert len(telegram.calls("createInvoiceLink")) == 1
    assert listed(client, "LAST1")["held"] == 1 and listed(client, "LAST1")["state"] == "used_up"


def test_a_used_up_code_comes_back_when_the_holder_lets_the_invoice_expire(app, client, tma):
    create(client, code="ONCE", percent_off=10, max_uses=1)
    first = invoice(client, tma, promo_code="ONCE")
    assert try_invoice(client, tma, "ONCE", user=BUYER + 1).get_json()["reason"] == "used_up"
    store(app).update(first["order_id"], lambda o: o.update(expires_at="2020-01-01T00:00:00+00:00"))
    assert check(client, tma, "ONCE", user=BUYER + 1)["valid"] is True


def test_a_new_checkout_with_the_same_code_replaces_the_buyers_unpaid_one(app, client, tma, telegram):
    create(client, code="ONE", percent_off=10, max_uses=1)
    first = invoice(client, tma, promo_code="ONE")
    second = invoice(client, tma, promo_code="ONE")  # the buyer went back and pressed Pay again
    assert store(app).get(first["order_id"])["status"] == "expired"
    post(client, updates.pre_checkout(BUYER, first["order_id"], first["stars"]))
    assert answer_of(telegram)[0] is False  # the replaced invoice cannot be paid any more
    assert store(app).get(second["order_id"])["status"] == "awaiting_payment" and second["stars"] == first["stars"]
    # The replaced one may still be on a payment sheet: for a few minutes it holds a use for everyone else.
    assert listed(client, "ONE")["held"] == 2
    assert check(client, tma, "ONE", user=BUYER + 1)["reason"] == "used_up"


def test_a_use_is_counted_once_per_paid_order_whatever_telegram_redelivers(app, client, tma):
    create(client, code="TWICE", percent_off=10, max_uses=2)
    answer = invoice(client, tma, promo_code="TWICE")
    for _ in range(3):
        pay(client, answer, charge_id="stxTWICE")
    wait_status(app, answer["order_id"], {"completed"})
    entry = listed(client, "TWICE")
    assert (entry["uses"], entry["held"], entry["state"]) == (1, 0, "active")


def test_once_per_buyer_means_once_for_each_buyer(app, client, tma):
    create(client, code="HELLO", percent_off=10, once_per_buyer=True)
    answer = invoice(client, tma, promo_code="HELLO")
    pay(client, answer)
    wait_status(app, answer["order_id"], {"completed"})
    again = check(client, tma, "hello", lang="ru")
    assert again["reason"] == "already_used" and "уже использовали" in again["message"]
    assert check(client, tma, "HELLO", user=BUYER + 1)["valid"] is True


def test_a_refund_gives_the_use_back(app, client, tma, esimgo, telegram):
    create(client, code="BACK", percent_off=10, max_uses=1)
    esimgo.settings(balance=0.5)  # eSIM Go cannot sell it: the order is refunded
    answer = invoice(client, tma, promo_code="BACK")
    pay(client, answer, charge_id="stxBACK")
    wait_status(app, answer["order_id"], {"refunded"})
    (refund,) = telegram.calls("refundStarPayment")
    assert refund.params["telegram_payment_charge_id"] == "stxBACK"
    entry = listed(client, "BACK")
    assert (entry["uses"], entry["refunded"], entry["state"]) == (0, 1, "active")
    assert check(client, tma, "BACK", user=BUYER + 1)["valid"] is True


def test_a_use_counts_while_the_paid_order_is_still_being_bought(app, client, tma, esimgo):
    create(client, code="BUSY", percent_off=10, max_uses=1)
    esimgo.settings(balance=0.5)
    answer = invoice(client, tma, promo_code="BUSY")
    # Paid but not settled yet: nobody else may take the use meanwhile.
    store(app).update(answer["order_id"], lambda o: o.update(status="paid", telegram_payment_charge_id="stxB"))
    assert check(client, tma, "BUSY", user=BUYER + 1)["reason"] == "used_up"


# ---- the owner's codes ------------------------------------------------------------------------------


def test_the_owner_creates_edits_pauses_and_deletes_a_code(client, tma):
    made = create(client, code="Зима-2026#1", percent_off="15", max_uses=10, starts_at="2026-01-01",
                  ends_at="2099-12-31", destinations=["th", "Europe", "global"])["promocode"]
    assert made["code"] == "Зима-2026#1" and made["destinations"] == ["TH", "europe", "global"]
    assert made["starts_at"] == "2026-01-01T00:00:00+00:00" and made["ends_at"] == "2099-12-31T23:59:59+00:00"
    assert check(client, tma, "ЗИМА-2026#1")["discount_usd"] == "0.46"
    path = "/api/admin/promocodes/" + "зима-2026%231"
    edited = client.put(path, json={"amount_off_usd": "1.50"}, headers=ADMIN).get_json()["promocode"]
    assert edited["amount_off_usd"] == "1.5" and edited["percent_off"] is None and edited["max_uses"] == 10
    assert client.put(path, json={"active": False}, headers=ADMIN).get_json()["promocode"]["state"] == "paused"
    assert check(client, tma, "Зима-2026#1")["reason"] == "unknown"
    assert client.put(path, json={"active": True}, headers=ADMIN).get_json()["promocode"]["state"] == "active"
    assert client.delete(path, headers=ADMIN).get_json() == {"ok": True}
    assert client.get("/api/admin/promocodes", headers=ADMIN).get_json()["promocodes"] == []
    assert client.delete(path, headers=ADMIN).status_code == 404
    history = client.get("/api/admin/settings", headers=ADMIN).get_json()["history"]
    assert [list(h["changes"]) for h in history][:2] == [["promocodes.Зима-2026#1"]] * 2
    assert history[0]["changes"]["promocodes.Зима-2026#1"]["to"] is None
    assert history[0]["by"].startswith("admin (token")


def test_codes_are_one_whatever_their_case(client):
    create(client, code="Promo", percent_off=5)
    answer = create(client, status=409, code="PROMO", percent_off=5)
    assert answer["error"] == "code_exists" and "Promo" in answer["message"]


@pytest.mark.parametrize("fields, field", [
    ({"percent_off": 10}, "code"),
    ({"code": "", "percent_off": 10}, "code"),
    ({"code": "has space", "percent_off": 10}, "code"),
    ({"code": "semi;colon", "percent_off": 10}, "code"),
    ({"code": "<script>", "percent_off": 10}, "code"),
    ({"code": "x" * 33, "percent_off": 10}, "code"),
    ({"code": 12, "percent_off": 10}, "code"),
    ({"code": "A"}, "percent_off"),
    ({"code": "A", "percent_off": 0}, "percent_off"),
    ({"code": "A", "percent_off": 101}, "percent_off"),
    ({"code": "A", "percent_off": "ten"}, "percent_off"),
    ({"code": "A", "percent_off": True}, "percent_off"),
    ({"code": "A", "percent_off": "NaN"}, "percent_off"),
    ({"code": "A", "amount_off_usd": -1}, "amount_off_usd"),
    ({"code": "A", "amount_off_usd": "1.001"}, "amount_off_usd"),
    ({"code": "A", "amount_off_usd": "1e9"}, "amount_off_usd"),
    ({"code": "A", "percent_off": 10, "amount_off_usd": 1}, "amount_off_usd"),
    ({"code": "A", "percent_off": 10, "starts_at": "tomorrow"}, "starts_at"),
    ({"code": "A", "percent_off": 10, "ends_at": 20261231}, "ends_at"),
    ({"code": "A", "percent_off": 10, "starts_at": "2026-12-31", "ends_at": "2026-01-01"}, "ends_at"),
    ({"code": "A", "percent_off": 10, "max_uses": 0}, "max_uses"),
    ({"code": "A", "percent_off": 10, "max_uses": 1.5}, "max_uses"),
    ({"code": "A", "percent_off": 10, "max_uses": "5"}, "max_uses"),
    ({"code": "A", "percent_off": 10, "once_per_buyer": "yes"}, "once_per_buyer"),
    ({"code": "A", "percent_off": 10, "active": 1}, "active"),
    ({"code": "A", "percent_off": 10, "destinations": "TH"}, "destinations"),
    ({"code": "A", "percent_off": 10, "destinations": ["XX"]}, "destinations"),
    ({"code": "A", "percent_off": 10, "destinations": ["mars"]}, "destinations"),
    ({"code": "A", "percent_off": 10, "destinations": [None]}, "destinations"),
    ({"code": "A", "percent_off": 10, "colour": "red"}, "colour"),
])
def test_an_invalid_code_is_refused_field_by_field_and_nothing_is_saved(client, fields, field):
    answer = create(client, status=400, **fields)
    assert answer["error"] == "invalid_promocode" and field in answer["fields"] and answer["fields"][field]
    assert client.get("/api/admin/promocodes", headers=ADMIN).get_json()["promocodes"] == []


@pytest.mark.parametrize("body", [None, [], "x", 5, {"code": "OTHER"}, {"percent_off": -5}, {"percent_off": None},
                                  {"percent_off": ""}, {"amount_off_usd": None}, {"max_uses": -1}])
def test_an_invalid_edit_changes_nothing(client, body):
    create(client, code="KEEP", percent_off=10)
    response = client.put("/api/admin/promocodes/KEEP", json=body, headers=ADMIN)
    assert response.status_code == 400 and response.get_json()["message"]
    assert listed(client, "KEEP")["percent_off"] == "10"


def test_promo_codes_are_for_the_owner_only(client, tma):
    for method, path in (("get", "/api/admin/promocodes"), ("post", "/api/admin/promocodes"),
                         ("put", "/api/admin/promocodes/A"), ("delete", "/api/admin/promocodes/A")):
        assert getattr(client, method)(path, json={}, headers={"Authorization": tma(BUYER)}).status_code == 401


# ---- what the review found ---------------------------------------------------------------------------


def test_a_check_cannot_dodge_the_guessing_limit_with_an_empty_promo_code_field(client, tma):
    answers = [client.post("/api/promo/check", headers={"Authorization": tma(BUYER)},
                           json={"code": f"G{i}", "bundle_name": BUNDLE, "promo_code": None}) for i in range(21)]
    assert answers[-1].status_code == 429


def test_a_replaced_checkout_paid_after_all_leaves_no_second_discounted_checkout_payable(app, client, tma, telegram):
    create(client, code="SOLO", percent_off=50, max_uses=1, once_per_buyer=True)
    first = invoice(client, tma, promo_code="SOLO")
    post(client, updates.pre_checkout(BUYER, first["order_id"], first["stars"]))
    assert answer_of(telegram) == (True, None)  # the buyer is on the payment sheet of the first one...
    second = invoice(client, tma, promo_code="SOLO")  # ...and opens the checkout again on another device
    pay(client, first, charge_id="stxFIRST")  # Telegram pays the sheet the buyer was on: never turned away
    wait_status(app, first["order_id"], {"completed"})
    assert store(app).get(second["order_id"])["status"] == "expired"
    post(client, updates.pre_checkout(BUYER, second["order_id"], second["stars"]))
    assert answer_of(telegram)[0] is False
    # Its sheet might still be open for a few minutes: counted as held meanwhile, so nobody else takes a use.
    assert (listed(client, "SOLO")["uses"], listed(client, "SOLO")["held"]) == (1, 1)


@pytest.mark.parametrize("minutes_ago, other_buyer_gets_it", [(1, False), (4, False), (6, True)])
def test_an_expired_checkout_keeps_its_use_a_few_minutes_for_a_late_payment(app, client, tma, minutes_ago,
                                                                               other_buyer_gets_it):
    from datetime import UTC, datetime, timedelta

    create(client, code="LATE", percent_off=10, max_uses=1)
    first = invoice(client, tma, promo_code="LATE")
    expired = (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat(timespec="seconds")
    store(app).update(first["order_id"], lambda o: o.update(expires_at=expired, status="expired"))
    assert check(client, tma, "LATE", user=BUYER + 1)["valid"] is other_buyer_gets_it


@pytest.mark.parametrize("fields, field", [
    ({"percent_off": "1e-9"}, "percent_off"),
    ({"percent_off": "1E+1"}, "percent_off"),
    ({"percent_off": "0.001"}, "percent_off"),
    ({"amount_off_usd": "1e2"}, "amount_off_usd"),
    ({"percent_off": 10, "starts_at": "0001-01-01T00:00:00+05:00"}, "starts_at"),
    ({"percent_off": 10, "ends_at": "9999-12-31T23:59:59-05:00"}, "ends_at"),
])
def test_numbers_in_exponent_form_and_dates_off_the_calendar_are_refused(client, fields, field):
    answer = create(client, status=400, code="EDGE", **fields)
    assert field in answer["fields"]


def test_a_code_is_found_whatever_unicode_spelling_or_case_the_buyer_types(client, tma):
    create(client, code="\u0390x", percent_off=10)  # ΐ as one character
    assert check(client, tma, "\u03aa\u0301X")["valid"] is True  # capital Ϊ and a combining accent: the same letters
    assert check(client, tma, "\u03b9\u0308\u0301x")["valid"] is True  # ι, then both accents combining
