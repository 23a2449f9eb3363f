"""Fulfilment over HTTP against `python -m localrun` (what `make run` starts), with the sandbox carrier: the shipment
books a waybill (tracking number, printable label), the local carrier advances the parcel and pushes it, the order
becomes DELIVERED, then COMPLETED after the confirmation period (3 s here); the courier-poll loop runs meanwhile."""

from __future__ import annotations

import pytest
import requests

from tests.e2e.test_after_sales_http import eventually
from tests.e2e.test_local_api import new_sku, place

pytestmark = pytest.mark.e2e


def test_ship_with_the_sandbox_carrier_then_delivered_then_completed(local_server):
    api = local_server
    code = new_sku(api, on_hand=5)
    order_id = place(api, code, quantity=2).json()["order_id"]
    assert api.call("POST", f"/_local/pay/{order_id}", user=None).status_code == 200
    assert eventually(lambda: api.call("GET", f"/orders/{order_id}").json()["status"] == "PAID")

    shipped = api.admin("POST", f"/admin/orders/{order_id}/shipments", json={"carrier": "sandbox"},
                        headers={"Idempotency-Key": "parcel-1"})
    assert shipped.status_code == 201, shipped.text
    parcel = shipped.json()["shipment"]
    assert parcel["status"] == "label_created" and parcel["tracking_number"].startswith("SBX")
    label = requests.get(parcel["label_url"], timeout=10)  # the presigned GET, served by the local S3
    assert label.status_code == 200 and label.content.startswith(b"%PDF")
    again = api.admin("POST", f"/admin/orders/{order_id}/shipments", json={"carrier": "sandbox"},
                      headers={"Idempotency-Key": "parcel-1"})
    assert again.status_code == 200 and again.json()["shipment"]["tracking_number"] == parcel["tracking_number"]

    number = parcel["tracking_number"]
    assert api.call("POST", f"/_local/carrier/{number}", user=None, json={"status": "teleported"}).status_code == 422
    assert api.call("POST", "/_local/carrier/NOSUCHPARCEL", user=None, json={"status": "delivered"}).status_code == 404
    moved = api.call("POST", f"/_local/carrier/{number}", user=None, json={"status": "in_transit"})
    assert moved.status_code == 200 and moved.json()["callback"]["status"] == 200
    assert api.call("GET", f"/orders/{order_id}").json()["shipments"][0]["status"] == "in_transit"
    # A bad signature on the carrier webhook: 401, nothing changes.
    forged = api.call("POST", "/webhooks/carriers/sandbox", user=None, data=b'{"tracking_number": "x"}',
                      headers={"Content-Type": "application/json", "Sandbox-Signature": "t=1,v1=00"})
    assert forged.status_code == 401

    assert api.call("POST", f"/_local/carrier/{number}", user=None, json={"status": "delivered"}).status_code == 200
    seen = api.call("GET", f"/orders/{order_id}").json()
    assert seen["status"] == "DELIVERED"  # within the push, not at the next poll
    assert [c["status"] for c in seen["shipments"][0]["checkpoints"]] == ["in_transit", "delivered"]
    assert eventually(lambda: api.call("GET", f"/orders/{order_id}").json()["status"] == "COMPLETED", timeout=30)
    history = [h["to"] for h in api.call("GET", f"/orders/{order_id}").json()["history"]]
    assert history[-3:] == ["SHIPPED", "DELIVERED", "COMPLETED"]
