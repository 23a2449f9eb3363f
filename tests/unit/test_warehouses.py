"""Warehouses: which one is nearest an address, and how a line's units are taken from them (pure rules)."""

from __future__ import annotations

import random

import pytest

from shop.domain.errors import InsufficientStock, Unprocessable
from shop.domain.money import Money
from shop.domain.shards import first_try, plan_take_ranked
from shop.domain.skus import Sku, StockLevels
from shop.domain.warehouses import (
    MAIN_WAREHOUSE,
    MAX_WAREHOUSES,
    StockState,
    Warehouse,
    Warehouses,
    is_sellable,
    location,
    shard_of,
    state_of,
    stock_item,
    validate_code,
    warehouse_index_of,
)


def registry() -> Warehouses:
    shop = Warehouses()
    for w in (Warehouse("sh", -1, "Shanghai", "CN", serves=("CN:Shanghai", "CN:Jiangsu"), priority=10),
              Warehouse("bj", -1, "Beijing", "CN", serves=("CN",), priority=20),
              Warehouse("gz", -1, "Guangzhou", "CN", priority=5),
              Warehouse("la", -1, "Los Angeles", "US", serves=("US",), priority=1)):
        shop = shop.with_warehouse(w)
    return shop


def codes(shop: Warehouses, ranked: tuple[int, ...]) -> list[str]:
    return [shop.code_of(i) for i in ranked]


def test_item_numbers_keep_the_main_warehouse_as_it_was_and_give_each_other_its_own_range():
    assert stock_item(0, 0) == 0 and stock_item(0, 63) == 63  # the keys a shop without warehouses always had
    assert stock_item(1, 0) == 64 and stock_item(2, 5) == 133
    assert (warehouse_index_of(133), shard_of(133)) == (2, 5)
    with pytest.raises(ValueError):
        stock_item(1, 64)
    with pytest.raises(ValueError):
        stock_item(-1, 0)


def test_new_warehouses_get_the_next_index_and_keep_it_when_redefined():
    shop = registry()
    assert [shop.by_code[c].index for c in ("main", "sh", "bj", "gz", "la")] == [0, 1, 2, 3, 4]
    moved = shop.with_warehouse(Warehouse("bj", 99, "Beijing 2", "CN", priority=1))
    assert moved.by_code["bj"].index == 2 and moved.by_code["bj"].name == "Beijing 2"
    assert Warehouses({}).by_code[MAIN_WAREHOUSE].index == 0  # the main warehouse always exists


def test_a_shop_has_a_bounded_number_of_warehouses_and_codes_are_checked():
    shop = Warehouses()
    for n in range(MAX_WAREHOUSES - 1):
        shop = shop.with_warehouse(Warehouse(f"w{n}", -1, "w", "CN"))
    with pytest.raises(Unprocessable):
        shop.with_warehouse(Warehouse("one-more", -1, "w", "CN"))
    shop.with_warehouse(Warehouse("w0", -1, "renamed", "CN"))  # redefining is not adding
    for bad in ("", "Main", "a b", "x" * 33, "a#1", "a@b"):
        with pytest.raises(Unprocessable):
            validate_code(bad)
    assert validate_code("east-1_b") == "east-1_b"


def test_region_match_first_then_country_then_location_then_priority():
    shop = registry()
    everywhere = (0, 1, 2, 3, 4)
    # Shanghai: the warehouse serving that region, then one serving all of CN, then one in CN, then the rest.
    assert codes(shop, shop.rank(everywhere, "CN", "shanghai ")) == ["sh", "bj", "gz", "la", "main"]
    # Another Chinese region: serving the whole country beats being located there; then priority among the rest.
    assert codes(shop, shop.rank(everywhere, "CN", "Sichuan")) == ["bj", "gz", "sh", "la", "main"]
    assert codes(shop, shop.rank(everywhere, "US", None)) == ["la", "gz", "sh", "bj", "main"]
    assert codes(shop, shop.rank(everywhere, "FR", "Paris")) == ["la", "gz", "sh", "bj", "main"]  # by priority
    assert codes(shop, shop.rank((0, 2), "CN", "Shanghai")) == ["bj", "main"]  # only the SKU's warehouses


def test_an_inactive_warehouse_comes_last_and_an_unknown_index_after_it():
    shop = registry().with_warehouse(Warehouse("sh", -1, "Shanghai", "CN", serves=("CN:Shanghai",), active=False))
    assert codes(shop, shop.rank((1, 2, 9), "CN", "Shanghai")) == ["bj", "sh", "#9"]


def test_the_first_try_writes_to_a_live_shard_of_the_nearest_warehouse():
    rng = random.Random(7)
    tries = {first_try((2, 0), 4, rng) for _ in range(200)}
    assert tries == {128, 129, 130, 131}
    assert first_try((), 1, rng) == 0


def test_a_line_comes_whole_from_the_nearest_warehouse_that_holds_it():
    available = {0: 50, 64: 2, 65: 1, 128: 10}
    assert plan_take_ranked("TEE", 3, available, (1, 2, 0), 2) == [(64, 2), (65, 1)]  # nearest holds 3: split shards
    assert plan_take_ranked("TEE", 4, available, (1, 2, 0), 2) == [(128, 4)]  # nearest cannot: next that can
    assert plan_take_ranked("TEE", 40, available, (1, 2, 0), 1) == [(0, 40)]


def test_a_line_is_split_over_warehouses_only_when_none_holds_it_all():
    available = {0: 5, 64: 3, 128: 4}
    assert plan_take_ranked("TEE", 10, available, (1, 2, 0), 1) == [(64, 3), (128, 4), (0, 3)]
    # Warehouses the SKU has stock in but the ranking left out still count, after the ranked ones.
    assert plan_take_ranked("TEE", 12, available, (2,), 1) == [(128, 4), (0, 5), (64, 3)]
    with pytest.raises(InsufficientStock) as short:
        plan_take_ranked("TEE", 13, available, (1, 2, 0), 1)
    assert short.value.extra["shortages"] == [{"sku": "TEE", "requested": 13, "available": 12}]
    with pytest.raises(ValueError):
        plan_take_ranked("TEE", 0, available, (0,), 1)


def test_a_stock_state_is_part_of_the_item_number_and_only_sellable_items_count_as_the_skus_levels():
    damaged = stock_item(2, 0, StockState.DAMAGED)
    assert damaged == (3 * 1024 + 2) * 64
    assert (warehouse_index_of(damaged), state_of(damaged), shard_of(damaged)) == (2, StockState.DAMAGED, 0)
    assert state_of(stock_item(5, 3)) is StockState.SELLABLE and is_sellable(stock_item(5, 3))
    assert not is_sellable(damaged)
    with pytest.raises(ValueError):
        location(1024)
    sku = Sku(sku="TEE", name="Tee", price=Money(100, "EUR"), shard_items=2,
              locations=(0, 1, location(0, StockState.DAMAGED), location(1, StockState.SAFETY)))
    assert sku.sellable_warehouses() == (0, 1)
    assert sku.sellable_items() == [0, 1, 64, 65]
    assert sku.stock_items() == [0, 1, 64, 65, 3 * 1024 * 64, (2 * 1024 + 1) * 64]  # other states: one item each
    read = sku.with_shard_levels({0: StockLevels(5, 4, 1, 0), 64: StockLevels(2, 2, 0, 3),
                                  3 * 1024 * 64: StockLevels(7, 7, 0, 0)})
    assert read.levels == StockLevels(7, 6, 1, 3)  # what the shop can sell
    assert read.all_levels == StockLevels(14, 13, 1, 3)  # what the ledger sums to
    assert read.availability() == "in_stock"


def test_a_parcel_is_packed_in_one_warehouse():
    from shop.domain.errors import InvalidTransition
    from shop.domain.orders import OrderStatus
    from tests.unit.test_domain import order

    shop = registry()  # sh = 1, bj = 2
    paid = order(OrderStatus.PAID, lines=(("TEE", 3), ("CAP", 1)), payment_status="paid").with_allocations(
        {"TEE": [(64, 2), (128, 1)], "CAP": [(0, 1)]}, shop)
    assert paid.unshipped_by_warehouse() == {"sh": {"TEE": 2}, "bj": {"TEE": 1}, "main": {"CAP": 1}}
    with pytest.raises(Unprocessable) as unnamed:
        paid.ship("p1", None, carrier=None, tracking_number=None, at="t", actor="ops")
    assert unnamed.value.extra["warehouses"] == ["bj", "main", "sh"]
    # Lines only one warehouse can carry need no name; lines two could carry do.
    only_sh = paid.ship("p1", {"TEE": 2}, carrier=None, tracking_number=None, at="t", actor="ops")
    assert only_sh.shipments[-1].warehouse == "sh"
    with pytest.raises(Unprocessable):  # sh and bj both hold a TEE still to ship
        paid.ship("p2", {"TEE": 1}, carrier=None, tracking_number=None, at="t", actor="ops")
    with pytest.raises(InvalidTransition) as short:
        only_sh.ship("p2", {"TEE": 1}, carrier=None, tracking_number=None, at="t", actor="ops", warehouse="sh")
    assert short.value.extra["skus"] == [{"sku": "TEE", "requested": 1, "unshipped": 0}]
    # Named without lines: every unit still to ship from there.
    from_main = only_sh.ship("p3", None, carrier=None, tracking_number=None, at="t", actor="ops", warehouse="main")
    assert [(u.sku, u.quantity) for u in from_main.shipments[-1].lines] == [("CAP", 1)]
    last = from_main.ship("p4", None, carrier=None, tracking_number=None, at="t", actor="ops")
    assert last.shipments[-1].warehouse == "bj" and last.status is OrderStatus.SHIPPED
    assert last.unshipped_by_warehouse() == {}
