"""Warehouses (issue 16): operators define them and stock SKUs per warehouse; an order takes each line from
the warehouse nearest its address that holds it, splits a line only when no single one can, and shows where
its units ship from; the SKU's availability sums its warehouses; every movement is ledgered per warehouse."""

from __future__ import annotations

import pytest

from tests.api.test_orders_api import ADDRESS, make_sku
from tests.api.test_payment_webhooks import pay

SHANGHAI = {**ADDRESS, "country": "CN", "region": "Shanghai", "city": "Shanghai"}
BEIJING = {**ADDRESS, "country": "CN", "region": "Beijing", "city": "Beijing"}


def define(api, code, **body):
    result = api.admin("PUT", f"/admin/warehouses/{code}", body={"name": code, "country": "CN", **body})
    assert result.status in (200, 201), result.text
    return result


def stock(api, sku, warehouse, delta):
    result = api.admin("POST", f"/admin/skus/{sku}/adjustments",
                       body={"delta": delta, "reason": "received", "warehouse": warehouse})
    assert result.status == 201, result.text
    return result.json()


def place(api, user, address, quantity, sku="TEE"):
    return api.request("POST", "/orders", user=user, headers={"Idempotency-Key": f"{user}-{quantity}"},
                       body={"items": [{"sku": sku, "quantity": quantity}], "shipping_address": address,
                             "payment_provider": "sandbox"})


def per_warehouse(api, sku="TEE"):
    view = api.admin("GET", f"/admin/skus/{sku}").json()
    return {w["warehouse"]: (w["on_hand"], w["available"], w["reserved"]) for w in view["warehouses"]}, view


def test_operators_define_warehouses_and_list_them(api):
    created = define(api, "sh", serves=["CN:Shanghai"], priority=10, address={"city": "Shanghai"})
    assert created.status == 201
    assert created.json() == {"code": "sh", "name": "sh", "country": "CN", "serves": ["CN:Shanghai"], "priority": 10,
                              "address": {"city": "Shanghai"}, "active": True}
    assert define(api, "sh", serves=["CN:Shanghai", "CN:Jiangsu"]).status == 200  # redefined
    listed = api.admin("GET", "/admin/warehouses").json()["items"]
    assert [w["code"] for w in listed] == ["main", "sh"]
    assert listed[1]["serves"] == ["CN:Shanghai", "CN:Jiangsu"]
    for bad_code, body in (("Bad Code", {"name": "x", "country": "CN"}), ("ok", {"name": "x", "country": "China"}),
                           ("ok", {"name": "x", "country": "CN", "serves": ["CN:a:b"]})):
        refused = api.admin("PUT", f"/admin/warehouses/{bad_code.replace(' ', '%20')}", body=body)
        assert refused.status == 422, refused.text
    assert api.request("GET", "/admin/warehouses", user="alice").status == 403


def test_orders_take_stock_from_the_nearest_warehouse_and_split_only_when_none_holds_the_line(api):
    define(api, "sh", serves=["CN:Shanghai"], priority=10)
    define(api, "bj", serves=["CN:Beijing"], priority=20)
    make_sku(api, "TEE", on_hand=1)  # the main warehouse
    stock(api, "TEE", "sh", 3)
    stock(api, "TEE", "bj", 5)
    levels, view = per_warehouse(api)
    assert levels == {"main": (1, 1, 0), "sh": (3, 3, 0), "bj": (5, 5, 0)}
    assert view["levels"]["available"] == 9  # the SKU's figures sum its warehouses
    assert api.request("GET", "/skus/TEE", user="alice").json()["available"] == 9

    near = place(api, "alice", SHANGHAI, 2)
    assert near.status == 201, near.text
    assert near.json()["lines"][0]["ships_from"] == [{"warehouse": "sh", "quantity": 2}]
    # Shanghai has 1 left: a line of 4 comes whole from Beijing rather than split.
    whole = place(api, "bob", SHANGHAI, 4)
    assert whole.json()["lines"][0]["ships_from"] == [{"warehouse": "bj", "quantity": 4}]
    # Left: sh 1, bj 1, main 1. Nobody holds 3: split, nearest first.
    split = place(api, "carol", BEIJING, 3)
    assert split.status == 201, split.text
    assert split.json()["lines"][0]["ships_from"] == [
        {"warehouse": "bj", "quantity": 1}, {"warehouse": "sh", "quantity": 1}, {"warehouse": "main", "quantity": 1}]
    assert place(api, "dave", BEIJING, 1).status == 409  # sold out everywhere
    levels, _ = per_warehouse(api)
    assert levels == {"main": (1, 0, 1), "sh": (3, 0, 3), "bj": (5, 0, 5)}

    # Cancelling releases the units to the warehouses that held them.
    assert api.request("POST", f"/orders/{whole.json()['order_id']}/cancel", user="bob").status == 200
    levels, _ = per_warehouse(api)
    assert levels == {"main": (1, 0, 1), "sh": (3, 0, 3), "bj": (5, 4, 1)}


def test_the_ledger_names_the_warehouse_and_sums_to_each_warehouse_levels(api):
    define(api, "sh", serves=["CN:Shanghai"])
    make_sku(api, "TEE", on_hand=2)
    adjusted = stock(api, "TEE", "sh", 4)
    assert adjusted["ledger_entry"]["warehouse"] == "sh" and adjusted["ledger_entry"]["shard"] == 0
    assert place(api, "alice", SHANGHAI, 3).status == 201
    entries = api.admin("GET", "/admin/skus/TEE/ledger").json()["items"]
    sums: dict[str, dict[str, int]] = {}
    for entry in entries:
        into = sums.setdefault(entry["warehouse"], {"on_hand": 0, "available": 0, "reserved": 0})
        for level in into:
            into[level] += entry["delta"][level]
    levels, _ = per_warehouse(api)
    assert {code: (s["on_hand"], s["available"], s["reserved"]) for code, s in sums.items()} == levels
    assert levels == {"main": (2, 2, 0), "sh": (4, 1, 3)}


def test_removing_stock_is_per_warehouse_and_an_unknown_warehouse_is_404(api):
    define(api, "sh")
    make_sku(api, "TEE", on_hand=5)
    stock(api, "TEE", "sh", 2)
    removed = api.admin("POST", "/admin/skus/TEE/adjustments", body={"delta": -3, "reason": "damaged", "warehouse": "sh"})
    assert removed.status == 409, removed.text  # sh holds 2, even though the SKU has 7 in all
    assert removed.json()["shortages"] == [{"sku": "TEE", "requested": 3, "available": 2}]
    stock(api, "TEE", "sh", -2)
    levels, _ = per_warehouse(api)
    assert levels == {"main": (5, 5, 0), "sh": (0, 0, 0)}
    unknown = api.admin("POST", "/admin/skus/TEE/adjustments", body={"delta": 1, "reason": "x", "warehouse": "nowhere"})
    assert unknown.status == 404 and unknown.json()["warehouse"] == "nowhere"


@pytest.mark.usefixtures("provider_env")
def test_a_parcel_ships_from_one_warehouse_and_says_which(api):
    define(api, "sh", serves=["CN:Shanghai"])
    define(api, "bj", serves=["CN:Beijing"])
    make_sku(api, "TEE", on_hand=0)
    stock(api, "TEE", "sh", 2)
    stock(api, "TEE", "bj", 3)
    placed = place(api, "alice", SHANGHAI, 4).json()  # nobody holds 4: 2 from sh, 2 from bj
    assert placed["lines"][0]["ships_from"] == [{"warehouse": "sh", "quantity": 2}, {"warehouse": "bj", "quantity": 2}]
    assert pay(api, placed).status == 200
    path = f"/admin/orders/{placed['order_id']}/shipments"

    unnamed = api.admin("POST", path, body={"carrier": "DHL", "tracking_number": "A1"})
    assert unnamed.status == 422 and unnamed.json()["warehouses"] == ["bj", "sh"]  # one parcel is packed in one place
    too_many = api.admin("POST", path, body={"warehouse": "sh", "lines": [{"sku": "TEE", "quantity": 3}]})
    assert too_many.status == 409, too_many.text
    assert too_many.json()["skus"] == [{"sku": "TEE", "requested": 3, "unshipped": 2}]

    from_sh = api.admin("POST", path, body={"warehouse": "sh", "carrier": "DHL", "tracking_number": "A1"})
    assert from_sh.status == 201, from_sh.text
    parcel = from_sh.json()["shipment"]
    assert parcel["warehouse"] == "sh" and parcel["lines"] == [{"sku": "TEE", "quantity": 2}]
    assert from_sh.json()["status"] == "PARTIALLY_SHIPPED"
    # Only Beijing holds units still to ship: the next parcel needs no warehouse named.
    rest = api.admin("POST", path, body={"carrier": "DHL", "tracking_number": "B2"})
    assert rest.status == 201, rest.text
    assert rest.json()["shipment"]["warehouse"] == "bj" and rest.json()["status"] == "SHIPPED"
    customer = api.request("GET", f"/orders/{placed['order_id']}", user="alice").json()
    assert [(s["warehouse"], s["lines"][0]["quantity"]) for s in customer["shipments"]] == [("sh", 2), ("bj", 2)]
