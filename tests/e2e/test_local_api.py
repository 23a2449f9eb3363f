"""The storefront and operator flows of the README, over HTTP against `python -m localrun`."""

from __future__ import annotations

import time
import uuid

import pytest

pytestmark = pytest.mark.e2e

ADDRESS = {"name": "Ada Lovelace", "line1": "12 Analytical St", "city": "London", "postal_code": "N1 1AA",
           "country": "GB"}


def new_sku(api, on_hand=5, **extra):
    code = f"SKU-{uuid.uuid4().hex[:8]}"
    body = {"name": "Tee", "price": {"amount": 1999, "currency": "EUR"}, "on_hand": on_hand, **extra}
    created = api.admin("PUT", f"/admin/skus/{code}", json=body)
    assert created.status_code == 201, created.text
    return code


def place(api, code, quantity=1, user="alice", key=None, **extra):
    body = {"items": [{"sku": code, "quantity": quantity}], "shipping_address": ADDRESS,
            "payment_provider": "sandbox", **extra}
    return api.call("POST", "/orders", user=user, json=body, headers={"Idempotency-Key": key or uuid.uuid4().hex})


def levels(api, code):
    return api.admin("GET", f"/admin/skus/{code}").json()["levels"]


def test_order_lifecycle_over_http(local_server):
    api = local_server
    code = new_sku(api, on_hand=5, low_stock_threshold=2)
    sku = api.call("GET", f"/skus/{code}").json()
    assert (sku["available"], sku["availability"], sku["price"]) == (5, "in_stock", {"amount": 1999, "currency": "EUR"})

    placed = place(api, code, quantity=3)
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert order["status"] == "PENDING_PAYMENT" and order["total"] == {"amount": 5997, "currency": "EUR"}
    assert order["lines"][0]["unit_price"] == {"amount": 1999, "currency": "EUR"}
    assert order["order_id"] and order["order_number"] and order["expires_at"].endswith("Z")
    low = api.call("GET", f"/skus/{code}").json()
    assert (low["available"], low["availability"]) == (2, "low_stock")

    assert api.call("GET", f"/orders/{order['order_id']}").json()["order_id"] == order["order_id"]
    assert api.call("GET", f"/orders/{order['order_id']}", user="mallory").status_code == 404
    mine = api.call("GET", "/orders").json()["items"]
    assert order["order_id"] in [o["order_id"] for o in mine]

    cancelled = api.call("POST", f"/orders/{order['order_id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
    assert levels(api, code) == {"on_hand": 5, "available": 5, "reserved": 0, "sold": 0}
    again = api.call("POST", f"/orders/{order['order_id']}/cancel")  # a retry after a lost answer
    assert again.status_code == 200 and again.json()["history"] == cancelled.json()["history"]
    by_other = api.admin("POST", f"/admin/orders/{order['order_id']}/cancel")
    assert by_other.status_code == 409 and by_other.headers["Content-Type"] == "application/problem+json"

    ledger = api.admin("GET", f"/admin/skus/{code}/ledger").json()["items"]
    assert [e["reason"] for e in ledger] == ["initial_stock", "order_placed", "cancelled_by_customer"]


def test_idempotency_and_errors_over_http(local_server):
    api = local_server
    code = new_sku(api, on_hand=2)
    first = place(api, code, key="retry-me")
    second = place(api, code, key="retry-me")
    assert (first.status_code, second.status_code) == (201, 201) and first.json() == second.json()
    assert place(api, code, quantity=2, key="retry-me").status_code == 422

    short = place(api, code, quantity=2)
    assert short.status_code == 409
    assert short.json()["shortages"] == [{"sku": code, "requested": 2, "available": 1}]

    body = {"items": [{"sku": code, "quantity": 1, "unit_price": 1}], "shipping_address": ADDRESS}
    assert api.call("POST", "/orders", json=body, headers={"Idempotency-Key": "p"}).status_code == 422
    body = {"items": [{"sku": code, "quantity": 1}], "shipping_address": ADDRESS, "total": 1}
    assert api.call("POST", "/orders", json=body, headers={"Idempotency-Key": "t"}).status_code == 422
    missing = api.call("POST", "/orders", json={"items": [{"sku": code, "quantity": 1}], "shipping_address": ADDRESS})
    assert missing.status_code == 400 and missing.headers["Content-Type"] == "application/problem+json"
    assert place(api, "NO-SUCH-SKU").status_code == 422
    assert api.call("PUT", f"/admin/skus/{code}", json={"name": "x", "price": {"amount": 1, "currency": "EUR"}}
                    ).status_code == 403
    assert api.call("GET", "/orders", user=None).status_code == 401
    garbage = api.call("POST", "/orders", data=b"{not json", headers={"Idempotency-Key": "g",
                                                                      "Content-Type": "application/json"})
    assert garbage.status_code in (400, 422) and "Traceback" not in garbage.text
    assert api.call("GET", "/openapi.json", user=None).json()["paths"]["/orders"]["post"]


def test_unpaid_order_expires_and_paid_order_does_not(local_server):
    api = local_server
    code = new_sku(api, on_hand=4)
    unpaid = place(api, code, quantity=1).json()
    paid = place(api, code, quantity=2).json()
    assert api.call("POST", f"/_local/pay/{paid['order_id']}", user=None).status_code == 200
    deadline = time.monotonic() + 30
    while api.call("GET", f"/orders/{unpaid['order_id']}").json()["status"] != "EXPIRED":
        assert time.monotonic() < deadline, "the unpaid order did not expire"
        time.sleep(0.5)
    time.sleep(1)
    assert api.call("GET", f"/orders/{paid['order_id']}").json()["status"] == "PAID"
    assert levels(api, code) == {"on_hand": 2, "available": 2, "reserved": 0, "sold": 2}
    reasons = [e["reason"] for e in api.admin("GET", f"/admin/skus/{code}/ledger").json()["items"]]
    assert reasons.count("payment_window_expired") == 1


def test_poison_message_reaches_the_dead_letter_queue(local_server):
    import boto3

    api = local_server
    resources = api.call("GET", "/_local/resources", user=None).json()
    sqs = boto3.client("sqs", endpoint_url=resources["aws_endpoint"], region_name="us-east-1",
                       aws_access_key_id="local", aws_secret_access_key="local")
    sqs.send_message(QueueUrl=resources["queues"]["stock_release"], MessageBody="{not json")
    dlq = resources["dead_letter_queues"]["stock_release"]
    deadline = time.monotonic() + 60
    while True:
        got = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=1, WaitTimeSeconds=1).get("Messages", [])
        if got:
            assert got[0]["Body"] == "{not json"
            break
        assert time.monotonic() < deadline, "poison message never reached the DLQ"


def test_backorders_over_http(local_server):
    """README "Backorders": 1 in stock and a limit of 5; 3 ordered and paid, 2 wait; a parcel asking for them is
    refused; stock received (an adjustment, then a delivery) fills the oldest order first; then it ships whole."""
    api = local_server
    code = new_sku(api, on_hand=1, backorder_limit=5)
    assert api.call("GET", f"/skus/{code}").json()["backorder"] == {"available": 5}
    first, second = place(api, code, quantity=3).json(), place(api, code, quantity=1, user="bob").json()
    assert (first["lines"][0]["backordered"], second["lines"][0]["backordered"]) == (2, 1)
    assert first["lines"][0]["ships_from"] == [{"warehouse": "main", "quantity": 1}]
    assert api.call("POST", f"/_local/pay/{first['order_id']}", user=None).status_code == 200
    deadline = time.monotonic() + 30
    while api.call("GET", f"/orders/{first['order_id']}").json()["status"] != "PAID":
        assert time.monotonic() < deadline, "the order was not paid"
        time.sleep(0.2)
    parcel = {"carrier": "DHL", "tracking_number": "JD0002", "lines": [{"sku": code, "quantity": 3}]}
    refused = api.admin("POST", f"/admin/orders/{first['order_id']}/shipments", json=parcel,
                        headers={"Idempotency-Key": uuid.uuid4().hex})
    assert refused.status_code == 409 and refused.headers["Content-Type"] == "application/problem+json"
    assert refused.json()["skus"] == [{"sku": code, "requested": 3, "unshipped": 3, "backordered": 2}]
    waiting = api.admin("GET", f"/admin/skus/{code}/backorders").json()
    assert [(o["order_id"], o["units"]) for o in waiting["items"]] == [(first["order_id"], 2), (second["order_id"], 1)]

    assert api.admin("POST", f"/admin/skus/{code}/adjustments", json={"delta": 1, "reason": "PO-1"}).status_code == 201
    assert api.call("GET", f"/orders/{first['order_id']}").json()["lines"][0]["backordered"] == 1  # oldest first
    delivery = api.admin("POST", f"/admin/skus/{code}/incoming",
                         json={"warehouse": "main", "quantity": 2, "expected_on": "2099-01-01", "reference": "PO-2"})
    assert delivery.status_code == 201, delivery.text
    assert api.call("GET", f"/orders/{first['order_id']}").json()["lines"][0]["backordered"] == 1  # not yet
    assert api.admin("POST", f"/admin/deliveries/{delivery.json()['id']}/receive", json={}).status_code == 200
    filled = [api.call("GET", f"/orders/{o['order_id']}", user=u).json() for o, u in ((first, "alice"),
                                                                                      (second, "bob"))]
    assert [o["lines"][0]["backordered"] for o in filled] == [0, 0]
    view = api.admin("GET", f"/admin/skus/{code}").json()
    assert (view["backorder_limit"], view["backordered"]) == (5, 0)
    assert api.admin("GET", f"/admin/skus/{code}/backorders").json()["items"] == []
    assert view["levels"] == {"on_hand": 1, "available": 0, "reserved": 1, "sold": 3}  # bob's unpaid unit reserved
    shipped = api.admin("POST", f"/admin/orders/{first['order_id']}/shipments", json={"carrier": "DHL"},
                        headers={"Idempotency-Key": uuid.uuid4().hex})
    assert shipped.status_code == 201, shipped.text
    assert api.call("GET", f"/orders/{first['order_id']}").json()["status"] == "SHIPPED"
