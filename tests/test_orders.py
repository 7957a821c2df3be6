"""The order record's rules (orders.py): what happens next to an order, whose it is, how a new one starts."""

from __future__ import annotations

import pytest

import orders


@pytest.mark.parametrize("fields, step", [
    ({"status": "awaiting_payment"}, orders.PAY),
    ({"status": "paid"}, orders.BUY),
    ({"status": "provisioning"}, orders.BUY),  # no eSIM Go order yet: the purchase is (re)tried
    ({"status": "provisioning", "orderReference": "r"}, orders.COLLECT),
    ({"status": "completed"}, orders.DELIVER),
    ({"status": "completed", "delivered_at": "t"}, None),
    ({"status": "completed", "delivery_error": "blocked"}, None),  # the admin resends it
    ({"status": "failed"}, orders.REFUND),
    ({"status": "refunded"}, None),
    ({"status": "expired"}, None),
    ({"status": "paid", "imported": True}, None),  # an operator's record: nothing happens by itself
    ({"status": "on_hold"}, None),  # a status this version does not know
])
def test_next_step_follows_the_status_and_what_has_been_done(fields, step):
    assert orders.next_step(fields) == step
    assert orders.has_step_left(fields) is (step is not None)


def test_an_order_belongs_to_its_buyer_whether_the_id_is_stored_as_a_number_or_text():
    assert orders.belongs_to({"telegram_user_id": 2515644}, "2515644")
    assert orders.belongs_to({"telegram_user_id": "2515644"}, 2515644)
    assert not orders.belongs_to({"telegram_user_id": 2515644}, 42)
    assert not orders.belongs_to(None, 42)


def test_a_new_order_has_the_fields_every_order_has():
    order = orders.new(42, bundle_name="esim_1GB_7D_TH_V2")
    assert order["id"].startswith("ord_") and order["telegram_user_id"] == 42
    assert (order["status"], order["currency"], order["payment_method"], order["source"]) == (
        "awaiting_payment", "XTR", "telegram_stars", "telegram_mini_app")
    assert order["created_at"] == order["updated_at"] and order["bundle_name"] == "esim_1GB_7D_TH_V2"
    assert orders.new(42)["id"] != order["id"]
