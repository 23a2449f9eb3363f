"""Webhook settlement through the real payment_webhook handler (moto): exactly once, never money without stock."""

from __future__ import annotations

import json

import boto3
import pytest

from localrun.fake_providers import signed_webhook
from shop.adapters import wiring
from shop.domain.money import Money
from shop.payments.signing import hmac_header
from tests.api.conftest import PROVIDER_KEYS
from tests.api.test_expiry_and_restock import deliver, levels
from tests.api.test_orders_api import make_sku, place

KEYS = PROVIDER_KEYS
pytestmark = pytest.mark.usefixtures("provider_env")


def pay(api, order, amount=None, event_id=None, provider="sandbox"):
    money = amount or Money(order["total"]["amount"], order["total"]["currency"])
    headers, body = signed_webhook(KEYS, provider, order["order_id"], money, event_id=event_id)
    return api.request("POST", f"/webhooks/{provider}", user=None, headers=dict(headers), raw=body)


def paid_order(api, *lines, **placing):
    """An order of `lines` ((sku, quantity) pairs), placed (by alice unless `placing` says) and paid in full
    through the sandbox webhook."""
    order = place(api, *lines, **placing).json()
    assert pay(api, order).status == 200
    return order


def get(api, order):
    return api.request("GET", f"/orders/{order['order_id']}").json()


def records(outcome=None):
    items = boto3.client("dynamodb").scan(TableName="shop-api-tests")["Items"]
    found = [i for i in items if i["pk"]["S"].startswith("WEBHOOK#")]
    return [i for i in found if outcome is None or i["outcome"]["S"] == outcome]


def test_payment_sells_the_reservation_once(api):
    make_sku(api, "TEE", on_hand=5)
    order = place(api, ("TEE", 2)).json()
    first, again = pay(api, order, event_id="evt-1"), pay(api, order, event_id="evt-1")
    assert (first.status, again.status) == (200, 200)
    paid = get(api, order)
    assert (paid["status"], paid["payment_status"], paid["amount_paid"]["amount"]) == ("PAID", "paid", 3998)
    assert levels(api) == {"on_hand": 3, "available": 3, "reserved": 0, "sold": 2}
    assert len(records()) == 1


def test_out_of_order_events_change_nothing(api):
    make_sku(api, "TEE", on_hand=5)
    order = place(api, ("TEE", 1)).json()
    assert pay(api, order, event_id="evt-succeeded").status == 200
    created = json.dumps({"id": "evt-created", "type": "payment.created", "order_id": order["order_id"]}).encode()
    late = api.request("POST", "/webhooks/sandbox", user=None, raw=created,
                       headers={"Sandbox-Signature": hmac_header(KEYS.sandbox_webhook_secret, created)})
    assert late.status == 200 and get(api, order)["status"] == "PAID"
    assert [r["outcome"]["S"] for r in records()] and len(records("ignored")) == 1


def test_unknown_order_is_recorded_and_acknowledged(api):
    fake = {"order_id": "ord_" + "z" * 26, "total": {"amount": 100, "currency": "USD"}}
    assert pay(api, fake).status == 200
    assert len(records("unknown_order")) == 1


def published(monkeypatch):
    """Records the domain events the handlers publish, in order."""
    from tests.ddblocal.conftest import Recorder

    recorder = Recorder()
    monkeypatch.setattr(wiring.default_ports(), "events", recorder)
    return recorder.calls


def test_amount_mismatch_holds_and_marks_nothing_paid(api, monkeypatch):
    events = published(monkeypatch)
    make_sku(api, "TEE", on_hand=5)
    order = place(api, ("TEE", 1)).json()
    assert pay(api, order, amount=Money(1, "USD")).status == 200
    held = get(api, order)
    assert (held["status"], held["payment_status"]) == ("ON_HOLD", "unpaid")
    assert levels(api)["reserved"] == 1 and levels(api)["sold"] == 0
    approved = api.admin("POST", f"/admin/orders/{order['order_id']}/approve")
    assert approved.status == 200 and approved.json()["status"] == "PAID"
    assert levels(api)["sold"] == 1
    assert [t for t, _ in events if t.startswith("order.")] == ["order.created", "order.on_hold", "order.approved"]


def expired_order(api, monkeypatch, on_hand):
    """An order of 2 TEE (of `on_hand`) whose payment window closed: expired, its reservation released."""
    monkeypatch.setenv("PAYMENT_WINDOW_SECONDS", "0")
    wiring.reset()
    make_sku(api, "TEE", on_hand=on_hand)
    order = place(api, ("TEE", 2)).json()
    from shop.services.orders import expire_order

    expire_order(wiring.default_ports(), order["order_id"])
    return order


def test_late_payment_takes_stock_again_when_there_is_some(api, monkeypatch):
    order = expired_order(api, monkeypatch, on_hand=5)
    assert pay(api, order).status == 200
    assert get(api, order)["status"] == "PAID"
    assert levels(api) == {"on_hand": 3, "available": 3, "reserved": 0, "sold": 2}


def test_late_payment_without_stock_is_refunded(api, monkeypatch):
    order = expired_order(api, monkeypatch, on_hand=2)
    place(api, ("TEE", 2), key="someone-else", user="bob")
    assert pay(api, order).status == 200
    assert get(api, order)["status"] == "EXPIRED"
    refunded = records("refunded")
    assert len(refunded) == 1 and "no stock" in refunded[0]["refund_reason"]["S"]
    assert levels(api) == {"on_hand": 2, "available": 0, "reserved": 2, "sold": 0}


def test_deduct_on_payment_takes_stock_at_payment_or_refunds(api):
    make_sku(api, "DIGI", on_hand=1, stock_policy="deduct_on_payment")
    first = place(api, ("DIGI", 1), key="a").json()
    second = place(api, ("DIGI", 1), key="b").json()
    assert levels(api, "DIGI")["reserved"] == 0  # nothing is held by orders
    assert pay(api, first).status == 200 and get(api, first)["status"] == "PAID"
    assert pay(api, second).status == 200
    assert get(api, second)["status"] == "CANCELLED" and len(records("refunded")) == 1
    assert levels(api, "DIGI") == {"on_hand": 0, "available": 0, "reserved": 0, "sold": 1}


def test_risk_rule_holds_repeated_large_payments(api, queues, monkeypatch):
    events = published(monkeypatch)
    monkeypatch.setenv("RISK_LARGE_AMOUNT", "1000")
    monkeypatch.setenv("RISK_MAX_LARGE_PAYMENTS", "2")
    make_sku(api, "TV", on_hand=5, amount=5000)
    first = place(api, ("TV", 1), key="a").json()
    second = place(api, ("TV", 1), key="b").json()
    pay(api, first)
    pay(api, second)
    assert get(api, first)["status"] == "PAID"
    held = get(api, second)
    assert held["status"] == "ON_HOLD" and held["payment_status"] == "paid" and held["hold_reason"] == "under_review"
    by_operator = api.admin("GET", f"/admin/orders?order_number={second['order_number']}").json()["items"][0]
    assert "risk" in by_operator["hold_reason"]  # the rule is for operators only
    rejected = api.admin("POST", f"/admin/orders/{second['order_id']}/reject")
    assert rejected.status == 200 and rejected.json()["payment_status"] == "refunded"
    assert [t for t, d in events if d.get("order_id") == second["order_id"]] == [
        "order.created", "order.paid", "order.cancelled", "order.refunded"]  # the cancel commits before the refund
    messages = boto3.client("sqs").receive_message(QueueUrl=queues["restock"], MaxNumberOfMessages=10)["Messages"]
    assert deliver("restock", *[m["Body"] for m in messages])["batchItemFailures"] == []
    assert levels(api, "TV") == {"on_hand": 4, "available": 4, "reserved": 0, "sold": 1}


def test_refunds_by_amount_and_bounds(api, queues):
    make_sku(api, "TEE", on_hand=5)
    order = place(api, ("TEE", 2)).json()
    pay(api, order)
    path = f"/admin/orders/{order['order_id']}/refunds"
    assert api.admin("POST", path, body={"amount": {"amount": 999999, "currency": "USD"}}).status == 422
    assert api.admin("POST", path, body={"amount": {"amount": 100, "currency": "EUR"}}).status == 422
    partial = api.admin("POST", path, body={"amount": {"amount": 1000, "currency": "USD"}},
                        headers={"Idempotency-Key": "p1"})
    assert partial.status == 201 and partial.json()["payment_status"] == "partially_refunded"
    rest = api.admin("POST", path, body={}, headers={"Idempotency-Key": "rest"})
    assert rest.json()["payment_status"] == "refunded" and rest.json()["amount_refunded"]["amount"] == 3998
    assert api.admin("POST", path, body={}, headers={"Idempotency-Key": "more"}).status == 409
    assert levels(api)["sold"] == 2  # no restock asked


def test_unpaid_order_cannot_be_refunded(api):
    make_sku(api, "TEE", on_hand=5)
    order = place(api, ("TEE", 1)).json()
    assert api.admin("POST", f"/admin/orders/{order['order_id']}/refunds", body={}).status == 409
