"""The payment window: the default, a SKU's own window, a request's, and the configured maximum."""

from __future__ import annotations

from shop.domain import clock
from tests.api.test_orders_api import make_sku, order_body


def seconds_open(order: dict) -> float:
    return (clock.parse_iso(order["expires_at"]) - clock.parse_iso(order["created_at"])).total_seconds()


def place(api, key, *lines, **extra):
    return api.request("POST", "/orders", body=order_body(*lines, **extra), headers={"Idempotency-Key": key})


def test_sku_and_request_windows_within_the_maximum(api, monkeypatch):
    monkeypatch.setenv("MAX_PAYMENT_WINDOW_SECONDS", "3600")
    make_sku(api, "TEE", on_hand=10)
    made_to_order = make_sku(api, "SUIT", on_hand=10, payment_window_seconds=1800)
    assert made_to_order["payment_window_seconds"] == 1800
    assert seconds_open(place(api, "a", ("TEE", 1)).json()) == 900  # PAYMENT_WINDOW_SECONDS
    assert seconds_open(place(api, "b", ("TEE", 1), ("SUIT", 1)).json()) == 1800
    assert seconds_open(place(api, "c", ("TEE", 1), payment_window_seconds=600).json()) == 600  # shorter: fine
    assert seconds_open(place(api, "d", ("SUIT", 1), payment_window_seconds=1200).json()) == 1200
    longer = place(api, "c2", ("TEE", 1), payment_window_seconds=3000)  # never longer than the shop's window
    assert longer.status == 422 and longer.json()["maximum"] == 900
    assert place(api, "d2", ("SUIT", 1), payment_window_seconds=3000).json()["maximum"] == 1800
    too_long = place(api, "e", ("TEE", 1), payment_window_seconds=7200)
    assert too_long.status == 422 and too_long.json()["maximum"] == 3600
    assert place(api, "f", ("TEE", 1), payment_window_seconds=5).status == 422
    sku_too_long = api.admin("PUT", "/admin/skus/GOWN", body={"name": "Gown", "price": {"amount": 1, "currency": "USD"},
                                                             "payment_window_seconds": 7200})
    assert sku_too_long.status == 422
