"""Warehouses and stock locations at their edges (each test pins a rule `make mutate` showed the broader tests in
test_warehouses.py let through): the implicit main warehouse, nearness without a country or region, the default
priority, the bounds of a registry, which items are sellable."""

from __future__ import annotations

import pytest

from shop.domain import warehouses
from shop.domain.errors import Unprocessable
from shop.domain.money import Money
from shop.domain.skus import Sku, StockLevels
from shop.domain.warehouses import StockState, Warehouse, Warehouses


def test_a_shop_that_defined_no_warehouse_has_the_main_one_at_version_0():
    shop = Warehouses()
    assert shop.version == 0 and list(shop.by_code) == ["main"]
    assert shop.get("main") == Warehouse("main", 0, "Main warehouse", "", (), 1000, {}, True)


def test_nearness_without_a_country_or_region():
    shanghai = Warehouse("sh", 1, "Shanghai", "CN", serves=("CN:Shanghai",))
    assert shanghai.nearness(None, None) == 3 and Warehouses().get("main").nearness("", None) == 3  # type: ignore[union-attr]
    assert shanghai.nearness("cn", None) == 2  # located in the country, serving only one region of it
    blank_region = Warehouse("x", 2, "X", "US", serves=("CN: ",))
    assert blank_region.nearness("CN", None) == 3  # an address without a region matches no region entry


def test_a_region_beats_a_country_beats_a_location_whatever_the_priorities():
    region = Warehouse("r", 1, "R", "US", serves=("CN:Shanghai",), priority=900)
    country = Warehouse("c", 2, "C", "US", serves=("CN",), priority=1)
    located = Warehouse("l", 3, "L", "CN", priority=0)
    shop = Warehouses({"r": region, "c": country, "l": located})
    assert shop.rank((3, 2, 1), "CN", "Shanghai") == (1, 2, 3)
    assert shop.rank((3, 2, 1), "CN", "Beijing") == (2, 3, 1)


def test_an_unprioritised_warehouse_ranks_as_priority_100_and_an_unknown_index_after_every_known_one():
    plain = Warehouse("a", 1, "A", "US")
    explicit = Warehouse("b", 2, "B", "US", priority=100)
    far_inactive = Warehouse("z", 3, "Z", "JP", priority=10**6, active=False)
    shop = Warehouses({"a": plain, "b": explicit, "z": far_inactive})
    assert shop.rank((2, 1), "US", None) == (1, 2)  # equal priority: by code
    assert shop.rank((2, 1), "US", None) == shop.rank((1, 2), "US", None)
    assert shop.rank((9, 3, 0), "US", None) == (0, 3, 9)


def test_a_registry_holds_at_most_32_warehouses_main_included():
    assert warehouses.MAX_WAREHOUSES == 32
    shop = Warehouses()
    for n in range(31):
        shop = shop.with_warehouse(Warehouse(f"w{n}", -1, "w", "CN"))
    assert len(shop.by_code) == 32 and max(w.index for w in shop.by_code.values()) == 31
    with pytest.raises(Unprocessable):
        shop.with_warehouse(Warehouse("w31", -1, "w", "CN"))
    for not_text in (None, 5):
        with pytest.raises(Unprocessable):
            warehouses.validate_code(not_text)  # type: ignore[arg-type]


def test_only_the_sellable_state_is_sellable_and_counts_in_a_skus_levels():
    first_presale = warehouses.stock_item(0, 0, StockState.PRESALE)
    assert first_presale == warehouses.LOCATIONS_PER_STATE * warehouses.ITEMS_PER_WAREHOUSE
    assert warehouses.is_sellable(first_presale - 1) and not warehouses.is_sellable(first_presale)
    presale_main = warehouses.location(0, StockState.PRESALE)
    sku = Sku(sku="TEE", name="Tee", price=Money(1999, "EUR"), shard_items=2, locations=(0, presale_main))
    assert sku.items_in(presale_main) == [first_presale]  # another state: one item
    assert sku.sellable_warehouses() == (0,) and sku.sellable_items() == [0, 1]
    levels = sku.with_shard_levels({0: StockLevels(2, 2, 0, 0), first_presale: StockLevels(5, 5, 0, 0)})
    assert levels.levels == StockLevels(2, 2, 0, 0) and levels.all_levels == StockLevels(7, 7, 0, 0)
    assert Sku(sku="T", name="T", price=Money(1, "EUR")).locations == (0,)  # the main warehouse, sellable
    with pytest.raises(ValueError):
        warehouses.stock_item(0, warehouses.ITEMS_PER_WAREHOUSE)


def test_a_sku_keeps_to_96_stock_items_so_one_transaction_updates_them_all():
    from shop.domain.skus import MAX_STOCK_ITEMS, availability_of

    assert MAX_STOCK_ITEMS == 96  # DynamoDB: 100 items per transaction, 4 kept for the SKU, ledger, order, key
    assert availability_of(1, None) == "in_stock" and availability_of(0, None) == "sold_out"
    assert availability_of(1, 1) == "low_stock" and availability_of(2, 1) == "in_stock"


def test_accepted_payments_are_the_ones_holding_or_having_held_money():
    from shop.domain.statuses import ACCEPTED_PAYMENT, PaymentStatus

    assert ACCEPTED_PAYMENT == {PaymentStatus.PAID, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED}


def test_where_an_orders_units_still_ship_from():
    from dataclasses import replace

    from shop.domain.orders import OrderStatus
    from shop.domain.values import Refund, Shipment, UnitLine
    from tests.unit.test_domain import order
    from tests.unit.test_warehouses import registry

    assert Shipment("s", (), None, None, "t", "a").warehouse == "main"  # parcels recorded before warehouses
    unallocated = order(OrderStatus.PAID, lines=(("TEE", 2),), payment_status="paid")
    assert unallocated.unshipped_by_warehouse() == {"main": {"TEE": 2}}  # a line holding no item: the main one's
    shop = registry()  # sh = 1, bj = 2
    paid = order(OrderStatus.PAID, lines=(("TEE", 3), ("CAP", 1)), payment_status="paid").with_allocations(
        {"TEE": [(64, 3)], "CAP": [(128, 1)]}, shop)
    # One tee asked for: only sh holds tees, bj holds none (a SKU a warehouse does not hold counts as 0 there).
    one = paid.ship("p1", {"TEE": 1}, carrier=None, tracking_number=None, at="t", actor="ops")
    assert one.shipments[-1].warehouse == "sh" and one.shipment("p1") == one.shipments[-1]
    assert one.shipment("p9") is None and one.shipment(one.shipments[0].shipment_id) is one.shipments[0]
    rest_of_sh = one.ship("p2", None, carrier=None, tracking_number=None, at="t", actor="ops", warehouse="sh")
    assert rest_of_sh.unshipped_by_warehouse() == {"bj": {"CAP": 1}}  # sh is done: not listed, not even empty
    # Units refunded by line are not to ship from anywhere.
    refunded = replace(paid, refunds=(Refund("rf", 1999, "EUR", lines=(UnitLine("TEE", 3),)),))
    assert refunded.unshipped_by_warehouse() == {"bj": {"CAP": 1}}


def test_a_warehouse_lists_only_the_skus_it_still_has_to_ship():
    from shop.domain.orders import OrderStatus
    from tests.unit.test_domain import order
    from tests.unit.test_warehouses import registry

    paid = order(OrderStatus.PAID, lines=(("TEE", 3), ("CAP", 1)), payment_status="paid").with_allocations(
        {"TEE": [(64, 3)], "CAP": [(64, 1)]}, registry())
    tees_gone = paid.ship("p1", {"TEE": 3}, carrier=None, tracking_number=None, at="t", actor="ops", warehouse="sh")
    assert tees_gone.unshipped_by_warehouse() == {"sh": {"CAP": 1}}
