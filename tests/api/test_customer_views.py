"""Customers see only what is theirs to see: a held order is "under review" (not which rule held it),
operators are anonymous, refunds show only refund_id, amount, currency, lines, status, at, automatic.
The admin view keeps everything."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from shop.adapters.items import refund_from_record
from shop.domain.money import Money
from shop.domain.orders import HistoryEntry, Order, OrderLine, OrderStatus
from shop.services.presenters import (
    CUSTOMER_REFUND_FIELDS,
    UNDER_REVIEW,
    admin_order_view,
    order_view,
)
from tests.api.test_orders_api import make_sku, place
from tests.api.test_payment_webhooks import get, pay

pytestmark = pytest.mark.usefixtures("provider_env")

OPERATOR_SUB = "ops-jane-7f3k"  # an operator's Cognito sub: never shown to customers


def admin_get(api, order) -> dict:
    found = as_operator(api, "GET", f"/admin/orders?order_number={order['order_number']}").json()
    return found["items"][0]


def as_operator(api, method, path, **kwargs):
    return api.request(method, path, user=OPERATOR_SUB, groups="admin", **kwargs)


def customer_reads(api, order) -> list[dict]:
    """Every way the customer sees the order: by id and in their list."""
    listed = [o for o in api.request("GET", "/orders").json()["items"] if o["order_id"] == order["order_id"]]
    return [get(api, order)] + listed


# ---- through the API -----------------------------------------------------------------------------

def test_a_held_order_is_under_review_for_its_customer_and_explained_to_operators(api, monkeypatch):
    monkeypatch.setenv("RISK_LARGE_AMOUNT", "1000")
    monkeypatch.setenv("RISK_MAX_LARGE_PAYMENTS", "1")
    monkeypatch.setenv("RISK_WINDOW_SECONDS", "7200")
    make_sku(api, "TV", on_hand=3, amount=5000)
    order = place(api, ("TV", 1)).json()
    assert pay(api, order).status == 200
    for seen in customer_reads(api, order):
        assert seen["status"] == "ON_HOLD" and seen["hold_reason"] == UNDER_REVIEW
        held_entry = seen["history"][-1]
        assert held_entry["to"] == "ON_HOLD" and held_entry["reason"] == UNDER_REVIEW
        text = json.dumps(seen)
        for leak in ("risk", "1000", "7200", "minor units", "within"):
            assert leak not in text, leak
    operator_view = admin_get(api, order)
    assert "risk" in operator_view["hold_reason"] and "1000" in operator_view["hold_reason"]
    assert "risk" in operator_view["history"][-1]["reason"]


def test_an_amount_mismatch_hold_does_not_tell_the_customer_the_amounts(api):
    make_sku(api, "TEE", on_hand=5)
    order = place(api, ("TEE", 1)).json()
    assert pay(api, order, amount=Money(1, "USD")).status == 200
    seen = get(api, order)
    assert seen["status"] == "ON_HOLD" and seen["hold_reason"] == UNDER_REVIEW
    assert "mismatch" not in json.dumps(seen) and "expected" not in json.dumps(seen)
    assert "mismatch" in admin_get(api, order)["hold_reason"]


def test_operator_identities_and_refund_notes_are_in_admin_views_only(api):
    make_sku(api, "TEE", on_hand=5)
    order = place(api, ("TEE", 3)).json()
    assert pay(api, order).status == 200
    refund = as_operator(api, "POST", f"/admin/orders/{order['order_id']}/refunds",
                         body={"lines": [{"sku": "TEE", "quantity": 1}], "reason": "goodwill: VIP complaint #42"},
                         headers={"Idempotency-Key": "r-1"})
    assert refund.status == 201, refund.text
    assert OPERATOR_SUB in refund.text and "VIP complaint" in refund.text  # the operator's own answer: admin view
    operator_view = admin_get(api, order)
    assert operator_view["refunds"][0]["actor"] == f"admin:{OPERATOR_SUB}"
    assert operator_view["refunds"][0]["reason"] == "goodwill: VIP complaint #42"

    for seen in customer_reads(api, order):
        text = json.dumps(seen)
        assert OPERATOR_SUB not in text and "VIP complaint" not in text and "provider_refund_id" not in text
        assert len(seen["refunds"]) == 1
        shown = seen["refunds"][0]
        assert set(shown) <= set(CUSTOMER_REFUND_FIELDS)
        assert shown["refund_id"] == operator_view["refunds"][0]["refund_id"]
        assert shown["amount"] == 1999 and shown["currency"] == "USD"
        assert shown["lines"] == [{"sku": "TEE", "quantity": 1}]
        assert seen["amount_refunded"] == {"amount": 1999, "currency": "USD"}


def test_an_operator_cancel_and_shipment_show_as_operator_to_the_customer(api):
    make_sku(api, "TEE", on_hand=5)
    unpaid = place(api, ("TEE", 1), key="a").json()
    cancelled = as_operator(api, "POST", f"/admin/orders/{unpaid['order_id']}/cancel")
    assert cancelled.status == 200 and cancelled.json()["history"][-1]["actor"] == f"admin:{OPERATOR_SUB}"
    entry = get(api, unpaid)["history"][-1]
    assert (entry["to"], entry["actor"], entry["reason"]) == ("CANCELLED", "operator", "cancelled_by_operator")

    paid = place(api, ("TEE", 2), key="b").json()
    assert pay(api, paid).status == 200
    shipped = as_operator(api, "POST", f"/admin/orders/{paid['order_id']}/shipments",
                          body={"carrier": "DHL", "tracking_number": "JD0001"}, headers={"Idempotency-Key": "s-1"})
    assert shipped.status == 201, shipped.text
    seen = get(api, paid)
    assert OPERATOR_SUB not in json.dumps(seen)
    assert seen["shipments"][0]["actor"] == "operator" and seen["shipments"][0]["tracking_number"] == "JD0001"
    assert seen["history"][-1]["actor"] == "operator"
    assert [h["actor"] for h in seen["history"]][:2] == ["customer:alice", "provider:sandbox"]  # these may stay
    assert admin_get(api, paid)["shipments"][0]["actor"] == f"admin:{OPERATOR_SUB}"


def test_the_customers_own_cancel_answer_is_the_customer_view(api):
    make_sku(api, "TEE", on_hand=5)
    order = place(api, ("TEE", 1)).json()
    answer = api.request("POST", f"/orders/{order['order_id']}/cancel").json()
    assert "customer_id" not in answer and answer["hold_reason"] is None
    assert answer["history"][-1]["actor"] == "customer:alice"


# ---- the presenter, with the refund fields that are on their way --------------------------------

AT = "2026-11-24T10:00:00.000Z"


def _order(**changes) -> Order:
    base = Order(order_id="ord_x", order_number="20261124-AAAA-BBBBBB", customer_id="alice",
                 status=OrderStatus.PAID, lines=(OrderLine("TEE", "Tee", 2, Money(1999, "EUR")),), currency="EUR",
                 payment_provider="stripe", shipping_address={"name": "A"}, created_at=AT, updated_at=AT,
                 expires_at=AT, payment_status="partially_refunded", amount_paid=3998, amount_refunded=1999)
    return replace(base, **changes)


FUTURE_REFUND = {"refund_id": "rf_1", "amount": 1999, "currency": "EUR", "status": "pending",
                 "lines": [{"sku": "TEE", "quantity": 1, "unit_price": 1999}], "restock": True,
                 "restocked": [{"sku": "TEE", "quantity": 1}], "automatic": False, "attempts": 3,
                 "last_error": "stripe /v1/refunds answered 500", "reason": "internal: suspected reseller",
                 "at": AT, "actor": "admin:ops-1", "provider_refund_id": "re_123", "some_future_field": "x"}


def test_customer_refunds_are_an_allow_list():
    order = _order(refunds=(refund_from_record(FUTURE_REFUND, "EUR"),))
    shown = order_view(order)["refunds"]
    assert shown == [{"refund_id": "rf_1", "amount": 1999, "currency": "EUR", "lines": [{"sku": "TEE", "quantity": 1}],
                      "status": "pending", "at": AT, "automatic": False}]
    admin, = admin_order_view(order)["refunds"]
    assert {k: admin[k] for k in ("reason", "actor", "attempts", "last_error", "provider_refund_id", "restocked")} == {
        "reason": "internal: suspected reseller", "actor": "admin:ops-1", "attempts": 3,
        "last_error": "stripe /v1/refunds answered 500", "provider_refund_id": "re_123",
        "restocked": [{"sku": "TEE", "quantity": 1}]}


def test_refunds_recorded_before_they_had_a_status_show_as_succeeded_in_the_orders_currency():
    legacy = {"refund_id": "rf_0", "amount": 500, "lines": [], "restock": False, "reason": "refund", "at": AT,
              "actor": "admin:ops-1", "provider_refund_id": "re_0"}
    assert order_view(_order(refunds=(refund_from_record(legacy, "EUR"),)))["refunds"] == [
        {"refund_id": "rf_0", "amount": 500, "currency": "EUR", "lines": [], "status": "succeeded", "at": AT,
         "automatic": False}]


def test_history_hides_operators_and_hold_reasons_but_not_the_rest():
    history = (
        HistoryEntry(AT, "customer:alice", None, "PENDING_PAYMENT", "order placed"),
        HistoryEntry(AT, "provider:stripe", "PENDING_PAYMENT", "ON_HOLD", "risk: 3 payments of at least 100000"),
        HistoryEntry(AT, "admin:ops-1", "ON_HOLD", "PAID", "approved by operator"),
        HistoryEntry(AT, "system:payment_window", "PAID", "CANCELLED", "payment_window_expired"),
        HistoryEntry(AT, "someone-else", "PAID", "CANCELLED", "x"),
    )
    order = _order(status=OrderStatus.ON_HOLD, history=history, hold_reason="risk: 3 payments of at least 100000")
    view = order_view(order)
    assert [(h["actor"], h["reason"]) for h in view["history"]] == [
        ("customer:alice", "order placed"), ("provider:stripe", UNDER_REVIEW), ("operator", "approved by operator"),
        ("system:payment_window", "payment_window_expired"), ("operator", "x")]
    assert view["hold_reason"] == UNDER_REVIEW and "risk" not in json.dumps(view)
    admin = admin_order_view(order)
    assert admin["hold_reason"].startswith("risk") and admin["history"][2]["actor"] == "admin:ops-1"
    assert order_view(replace(order, status=OrderStatus.PAID))["hold_reason"] is None
