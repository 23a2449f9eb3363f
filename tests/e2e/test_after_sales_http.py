"""After-sales over HTTP against `python -m localrun` (what `make run` starts): evidence photos go straight to the
local S3 (moto) through the presigned POST, operators approve, reject and receive a return, the restock queue's
consumer puts returned units back on sale, and an open request holds the order back from COMPLETED."""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from tests.e2e.test_local_api import levels, new_sku, place

pytestmark = pytest.mark.e2e
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


def eventually(check, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def ask(api, order_id, kind, sku, quantity, **extra):
    body = {"type": kind, "lines": [{"sku": sku, "quantity": quantity}], "reason": "seam split", **extra}
    return api.call("POST", f"/orders/{order_id}/after-sales", json=body,
                    headers={"Idempotency-Key": uuid.uuid4().hex})


def test_after_sales_approve_reject_and_return_over_http(local_server):
    api = local_server
    code = new_sku(api, on_hand=5)
    order = place(api, code, quantity=3).json()
    order_id = order["order_id"]
    assert api.call("POST", f"/_local/pay/{order_id}", user=None).status_code == 200
    assert eventually(lambda: api.call("GET", f"/orders/{order_id}").json()["status"] == "PAID")
    assert api.admin("POST", f"/admin/orders/{order_id}/shipments", json={}).status_code == 201
    assert levels(api, code) == {"on_hand": 2, "available": 2, "reserved": 0, "sold": 3}

    # Refund only, with a photo uploaded by the "browser" straight to S3, then approved: money back now.
    opened = ask(api, order_id, "refund_only", code, 1, photos=1, photo_types=["image/png"])
    assert opened.status_code == 201, opened.text
    sale = opened.json()
    (upload,) = sale["uploads"]
    stored = requests.post(upload["url"], data=upload["fields"], files={"file": ("torn.png", PNG, "image/png")},
                           timeout=10)
    assert stored.status_code == 204, stored.text
    seen = api.admin("GET", f"/admin/after-sales/{sale['after_sale_id']}").json()
    (photo,) = seen["photos"]
    assert photo["key"] == upload["key"] and requests.get(photo["url"], timeout=10).content == PNG
    assert api.call("POST", f"/orders/{order_id}/confirm-receipt").status_code == 409  # open request
    approved = api.admin("POST", f"/admin/after-sales/{sale['after_sale_id']}/approve")
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert api.admin("POST", f"/admin/after-sales/{sale['after_sale_id']}/approve").status_code == 200  # retry
    assert api.admin("POST", f"/admin/after-sales/{sale['after_sale_id']}/reject",
                     json={"reason": "too late"}).status_code == 409
    refunded = api.call("GET", f"/orders/{order_id}").json()
    assert refunded["amount_refunded"] == {"amount": 1999, "currency": "EUR"}
    assert refunded["after_sales"][0]["refund"]["status"] == "succeeded"

    # Rejected, with the reason the customer then reads.
    rejected_id = ask(api, order_id, "return_and_refund", code, 1).json()["after_sale_id"]
    assert api.admin("POST", f"/admin/after-sales/{rejected_id}/reject", json={}).status_code == 422
    rejected = api.admin("POST", f"/admin/after-sales/{rejected_id}/reject", json={"reason": "worn"})
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    listed = api.call("GET", f"/orders/{order_id}/after-sales").json()["items"]
    assert [(s["status"], s["decision_reason"]) for s in listed][1] == ("rejected", "worn")

    # A return: approved (goods on their way back), received (refund, and the unit back on sale once).
    return_id = ask(api, order_id, "return_and_refund", code, 2).json()["after_sale_id"]
    queue = api.admin("GET", "/admin/after-sales?status=requested").json()["items"]
    assert return_id in [s["after_sale_id"] for s in queue]
    assert api.admin("POST", f"/admin/after-sales/{return_id}/approve").json()["refund"] is None
    for _ in range(2):  # a retried receipt: the same refund, the same restock messages (applied once)
        received = api.admin("POST", f"/admin/after-sales/{return_id}/received")
        assert received.status_code == 200 and received.json()["status"] == "received"
    assert eventually(lambda: levels(api, code) == {"on_hand": 4, "available": 4, "reserved": 0, "sold": 1})
    time.sleep(1.5)  # any duplicate restock would have landed by now
    assert levels(api, code) == {"on_hand": 4, "available": 4, "reserved": 0, "sold": 1}
    final = api.call("GET", f"/orders/{order_id}").json()
    assert final["amount_refunded"] == {"amount": 3 * 1999, "currency": "EUR"} and final["payment_status"] == "refunded"
    assert ask(api, order_id, "refund_only", code, 1).status_code == 422  # nothing shipped is left to claim
    done = api.call("POST", f"/orders/{order_id}/confirm-receipt")  # every request closed
    assert done.status_code == 200 and done.json()["status"] == "COMPLETED"


def test_a_parcel_refused_at_the_door_opens_a_return_over_http(local_server):
    """The sandbox carrier pushes `refused` (returning to the sender): the parcel's status update opens an approved
    return of its units in the same write; the order cannot complete until the goods are received."""
    api = local_server
    code = new_sku(api, on_hand=5)
    order_id = place(api, code, quantity=2).json()["order_id"]
    assert api.call("POST", f"/_local/pay/{order_id}", user=None).status_code == 200
    assert eventually(lambda: api.call("GET", f"/orders/{order_id}").json()["status"] == "PAID")
    shipped = api.admin("POST", f"/admin/orders/{order_id}/shipments", json={"carrier": "sandbox"})
    assert shipped.status_code == 201, shipped.text
    number = shipped.json()["shipments"][-1]["tracking_number"]
    assert api.call("POST", f"/_local/carrier/{number}", user=None, json={"status": "refused"}).status_code == 200

    def opened():
        cases = api.call("GET", f"/orders/{order_id}/after-sales").json()["items"]
        return cases[0] if cases else None

    case = eventually(opened)
    assert case and (case["source"], case["type"], case["status"]) == ("carrier", "return_and_refund", "approved")
    assert case["lines"] == [{"sku": code, "quantity": 2}]
    assert api.call("POST", f"/_local/carrier/{number}", user=None, json={"status": "returned"}).status_code == 200
    time.sleep(1.5)
    assert len(api.call("GET", f"/orders/{order_id}/after-sales").json()["items"]) == 1  # once per parcel
    assert api.call("POST", f"/orders/{order_id}/confirm-receipt").status_code == 409
    received = api.admin("POST", f"/admin/after-sales/{case['after_sale_id']}/received")
    assert received.status_code == 200 and received.json()["refund"]["amount"] == 2 * 1999
    assert eventually(lambda: levels(api, code) == {"on_hand": 5, "available": 5, "reserved": 0, "sold": 0})
