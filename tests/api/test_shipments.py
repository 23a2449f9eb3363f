"""Operators record parcels: PAID -> PARTIALLY_SHIPPED -> SHIPPED, never more than was ordered, retries safe."""

from __future__ import annotations

import pytest

from tests.api.test_expiry_and_restock import levels
from tests.api.test_orders_api import make_sku, place
from tests.api.test_payment_webhooks import get, paid_order

pytestmark = pytest.mark.usefixtures("provider_env")


@pytest.fixture
def paid(api):
    make_sku(api, "TEE", on_hand=10)
    make_sku(api, "CAP", on_hand=10)
    return paid_order(api, ("TEE", 3), ("CAP", 1))


def ship(api, order, body, key=None):
    headers = {"Idempotency-Key": key} if key else {}
    return api.admin("POST", f"/admin/orders/{order['order_id']}/shipments", body=body, headers=headers)


def test_parcels_move_the_order_to_partially_shipped_then_shipped(api, paid, monkeypatch):
    from shop.adapters import wiring
    from tests.ddblocal.conftest import Recorder

    recorder = Recorder()
    monkeypatch.setattr(wiring.default_ports(), "events", recorder)
    first = ship(api, paid, {"lines": [{"sku": "TEE", "quantity": 2}], "carrier": "DHL", "tracking_number": "JD0001"},
                 key="parcel-1")
    assert first.status == 201
    body = first.json()
    assert (body["status"], body["fulfillment_status"]) == ("PARTIALLY_SHIPPED", "partial")
    assert body["shipments"][0]["lines"] == [{"sku": "TEE", "quantity": 2}]
    assert body["shipments"][0]["tracking_number"] == "JD0001"
    rest = ship(api, paid, {}, key="parcel-2").json()  # no lines: everything left
    assert (rest["status"], rest["fulfillment_status"]) == ("SHIPPED", "fulfilled")
    assert rest["shipments"][1]["lines"] == [{"sku": "TEE", "quantity": 1}, {"sku": "CAP", "quantity": 1}]
    assert [h["to"] for h in rest["history"]][-2:] == ["PARTIALLY_SHIPPED", "SHIPPED"]
    assert [t for t, _ in recorder.calls] == ["order.partially_shipped", "order.shipped"]
    assert levels(api) == {"on_hand": 7, "available": 7, "reserved": 0, "sold": 3}  # shipping moves no stock
    assert ship(api, paid, {}, key="parcel-3").status == 409  # nothing left
    customer_view = get(api, paid)
    assert customer_view["status"] == "SHIPPED" and len(customer_view["shipments"]) == 2


def test_a_retried_shipment_is_recorded_once(api, paid):
    body = {"lines": [{"sku": "TEE", "quantity": 1}]}
    first, again = ship(api, paid, body, key="p1"), ship(api, paid, body, key="p1")
    assert (first.status, again.status) == (201, 200)
    assert len(again.json()["shipments"]) == 1
    no_key_a, no_key_b = ship(api, paid, body), ship(api, paid, body)  # keyed on content without a header
    assert (no_key_a.status, no_key_b.status) == (201, 200)
    assert sum(l["quantity"] for s in get(api, paid)["shipments"] for l in s["lines"]) == 2


def test_more_than_ordered_unknown_skus_and_unpaid_orders_are_refused(api, paid):
    too_many = ship(api, paid, {"lines": [{"sku": "TEE", "quantity": 4}]}, key="a")
    assert too_many.status == 409 and too_many.json()["skus"] == [{"sku": "TEE", "requested": 4, "unshipped": 3}]
    assert ship(api, paid, {"lines": [{"sku": "HAT", "quantity": 1}]}, key="b").status == 422
    for bad in ({"lines": [{"sku": "TEE", "quantity": 0}]}, {"lines": []}, {"carrier": ""}, {"status": "SHIPPED"},
                {"tracking_number": "<script>"}):
        assert ship(api, paid, bad, key="c").status == 422, bad
    unpaid = place(api, ("CAP", 1), key="k2").json()
    assert ship(api, unpaid, {}, key="d").status == 409
    assert get(api, paid)["status"] == "PAID" and get(api, unpaid)["status"] == "PENDING_PAYMENT"
    assert api.request("POST", f"/admin/orders/{paid['order_id']}/shipments", body={}).status == 403
    assert ship(api, {"order_id": "ord_nope"}, {}, key="e").status == 404


def test_shipped_orders_cannot_be_cancelled_and_refunded_lines_are_not_shipped(api, paid):
    refund = api.admin("POST", f"/admin/orders/{paid['order_id']}/refunds",
                       body={"lines": [{"sku": "CAP", "quantity": 1}]}, headers={"Idempotency-Key": "r1"})
    assert refund.status == 201
    shipped = ship(api, paid, {}, key="all").json()
    assert shipped["status"] == "SHIPPED" and shipped["shipments"][0]["lines"] == [{"sku": "TEE", "quantity": 3}]
    assert api.request("POST", f"/orders/{paid['order_id']}/cancel").status == 409
    assert get(api, paid)["status"] == "SHIPPED"
