"""Safe retries after a lost answer (cancel, approve, reject, confirm-receipt), caps on unpaid holdings,
refund requests that must say which units come back."""

from __future__ import annotations

import pytest

from tests.api.test_orders_api import make_sku, place
from tests.api.test_payment_webhooks import get, pay

pytestmark = pytest.mark.usefixtures("provider_env")


def ship_all(api, order):
    shipped = api.admin("POST", f"/admin/orders/{order['order_id']}/shipments", body={"carrier": "DHL"},
                        headers={"Idempotency-Key": "parcel-1"})
    assert shipped.status == 201, shipped.text
    return shipped.json()


def test_confirm_receipt_completes_a_shipped_order_once_and_a_retry_answers_the_same(api):
    make_sku(api, "TEE", on_hand=5)
    order = place(api, ("TEE", 1)).json()
    path = f"/orders/{order['order_id']}/confirm-receipt"
    assert api.request("POST", path).status == 409  # not shipped yet
    pay(api, order)
    ship_all(api, order)
    assert api.request("POST", path, user="mallory").status == 404  # not theirs
    done = api.request("POST", path)
    assert done.status == 200 and done.json()["status"] == "COMPLETED"
    again = api.request("POST", path)
    assert again.status == 200 and again.json()["history"] == done.json()["history"]


def test_approve_and_reject_retried_after_success_answer_the_same_order(api, queues, monkeypatch):
    monkeypatch.setenv("RISK_LARGE_AMOUNT", "1000")
    monkeypatch.setenv("RISK_MAX_LARGE_PAYMENTS", "1")
    make_sku(api, "TV", on_hand=5, amount=5000)
    first, second = place(api, ("TV", 1), key="a").json(), place(api, ("TV", 1), key="b").json()
    pay(api, first)
    pay(api, second)
    assert get(api, first)["status"] == get(api, second)["status"] == "ON_HOLD"
    approve = f"/admin/orders/{first['order_id']}/approve"
    approved = api.admin("POST", approve)
    assert approved.status == 200 and approved.json()["status"] == "PAID"
    again = api.admin("POST", approve)
    assert again.status == 200 and again.json()["history"] == approved.json()["history"]
    reject = f"/admin/orders/{second['order_id']}/reject"
    rejected = api.admin("POST", reject)
    assert rejected.status == 200 and rejected.json()["status"] == "CANCELLED"
    again = api.admin("POST", reject)
    assert again.status == 200 and again.json()["refunds"] == rejected.json()["refunds"]
    assert len(again.json()["refunds"]) == 1 and again.json()["amount_refunded"]["amount"] == 5000
    assert api.admin("POST", f"/admin/orders/{second['order_id']}/approve").status == 409


def test_unpaid_order_caps_answer_429_and_free_up_when_an_order_ends(api, monkeypatch):
    monkeypatch.setenv("MAX_UNPAID_ORDERS_PER_CUSTOMER", "2")
    monkeypatch.setenv("MAX_UNPAID_UNITS_PER_SKU", "5")
    make_sku(api, "TEE", on_hand=50)
    make_sku(api, "CAP", on_hand=50)
    first = place(api, ("TEE", 3), key="1").json()
    place(api, ("CAP", 1), key="2")
    third = place(api, ("CAP", 1), key="3")
    assert third.status == 429 and third.json()["type"].endswith("unpaid-limit")
    assert third.json()["max_unpaid_orders"] == 2
    assert place(api, ("CAP", 1), key="4", user="bob").status == 201  # per customer
    pay(api, first)  # a paid order no longer counts
    too_many_units = place(api, ("CAP", 5), key="5")
    assert too_many_units.status == 429 and too_many_units.json()["skus"] == [{"sku": "CAP", "unpaid": 1}]
    assert place(api, ("CAP", 4), key="6").status == 201
    # A replay of a placed order is never refused by the cap.
    assert place(api, ("CAP", 4), key="6").status == 201


def test_refund_by_amount_with_restock_must_name_the_units(api, queues):
    make_sku(api, "TEE", on_hand=5)
    order = place(api, ("TEE", 2)).json()
    pay(api, order)
    path = f"/admin/orders/{order['order_id']}/refunds"
    vague = api.admin("POST", path, body={"amount": {"amount": 1, "currency": "USD"}, "restock": True})
    assert vague.status == 422
    assert get(api, order)["refunds"] == [] and get(api, order)["payment_status"] == "paid"
    by_lines = api.admin("POST", path, body={"lines": [{"sku": "TEE", "quantity": 1}], "restock": True,
                                             "amount": {"amount": 1, "currency": "USD"}},
                         headers={"Idempotency-Key": "r1"})
    assert by_lines.status == 201
    entry = by_lines.json()["refunds"][0]
    assert entry["restocked"] == [{"sku": "TEE", "quantity": 1}] and entry["status"] == "succeeded"
