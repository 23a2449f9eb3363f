"""Cart holds over HTTP against `python -m localrun` (CART_HOLD_SECONDS=3): the README's flow, and a hold released
by its timer on the local payment-window state machine and the stock-release worker."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.e2e.test_local_api import ADDRESS, levels, new_sku

pytestmark = pytest.mark.e2e


def test_hold_then_order_from_the_cart(local_server):
    api = local_server
    code = new_sku(api, on_hand=3)
    cart = f"cart-{uuid.uuid4().hex[:8]}"
    held = api.call("POST", f"/carts/{cart}/holds", json={"items": [{"sku": code, "quantity": 2}]})
    assert held.status_code == 201, held.text
    assert levels(api, code)["reserved"] == 2
    body = {"cart_id": cart, "items": [{"sku": code, "quantity": 2}], "shipping_address": ADDRESS,
            "payment_provider": "sandbox"}
    placed = api.call("POST", "/orders", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert placed.status_code == 201, placed.text
    assert placed.json()["cart_hold"]["status"] == "converted"
    assert levels(api, code) == {"on_hand": 3, "available": 1, "reserved": 2, "sold": 0}
    gone = api.call("DELETE", f"/carts/{cart}/holds")  # converted already: answered as it is, nothing released
    assert gone.status_code == 200 and gone.json()["status"] == "converted"
    assert levels(api, code)["reserved"] == 2


def test_an_unrenewed_hold_is_released_by_its_timer(local_server):
    api = local_server
    code = new_sku(api, on_hand=3)
    cart = f"cart-{uuid.uuid4().hex[:8]}"
    assert api.call("POST", f"/carts/{cart}/holds", json={"items": [{"sku": code, "quantity": 3}]}).status_code == 201
    assert api.call("GET", f"/skus/{code}").json()["available"] == 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and levels(api, code)["reserved"]:
        time.sleep(0.5)
    assert levels(api, code) == {"on_hand": 3, "available": 3, "reserved": 0, "sold": 0}
    hold = api.call("GET", f"/carts/{cart}/holds").json()
    assert (hold["status"], hold["ended_by"]) == ("released", "expired")
    assert api.call("POST", f"/carts/{cart}/holds", json={"renew": True}).status_code == 409
