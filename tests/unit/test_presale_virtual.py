"""Pure rules of presale pools and virtual caps (shop/domain/presale.py, shop/domain/virtual.py, pools)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from shop.domain.errors import Unprocessable
from shop.domain.money import Money
from shop.domain.orders import OrderLine
from shop.domain.presale import PresaleTerms, is_pool_item
from shop.domain.skus import Sku, StockLevels, StockPolicy
from shop.domain.virtual import (
    FIRST_DAY,
    LAST_DAY,
    TOTAL_ITEM,
    VIRTUAL_LOCATION,
    VirtualTerms,
    day_item,
    day_of_item,
    is_day_item,
    is_virtual_item,
    local_day,
)
from shop.domain.warehouses import StockState, is_sellable, state_of, warehouse_index_of
from shop.services import pools

TERMS = PresaleTerms(5, "2026-01-01T00:00:00Z", "2026-02-01T00:00:00+08:00", "2026-03-01")


def test_presale_terms_are_validated_and_the_window_is_half_open():
    assert TERMS.window_state(datetime(2025, 12, 31, 23, 59, tzinfo=UTC)) == "upcoming"
    assert TERMS.is_open(datetime(2026, 1, 1, tzinfo=UTC))
    assert TERMS.is_open(datetime(2026, 1, 31, 15, 59, 59, tzinfo=UTC))
    assert TERMS.window_state(datetime(2026, 1, 31, 16, 0, tzinfo=UTC)) == "ended"  # +08:00 midnight, excluded
    for bad in ({"cap": -1}, {"cap": True}, {"ends_at": "2025-01-01T00:00:00Z"}, {"ships_on": "soon"},
                {"starts_at": "2026-01-01T00:00:00"}):
        raw = {**TERMS.to_dict(), **bad}
        with pytest.raises(Unprocessable):
            PresaleTerms(raw["cap"], raw["starts_at"], raw["ends_at"], raw["ships_on"])
    assert PresaleTerms.from_dict(TERMS.to_dict()) == TERMS


def test_the_pool_is_one_presale_item_of_its_warehouse_never_sellable():
    pool = PresaleTerms(1, TERMS.starts_at, TERMS.ends_at, TERMS.ships_on, warehouse=3)
    assert state_of(pool.item) is StockState.PRESALE and warehouse_index_of(pool.item) == 3
    assert is_pool_item(pool.item) and not is_sellable(pool.item) and pool.item // 64 == pool.location


def test_cap_adjustment_sets_sold_plus_offered_to_the_cap_never_taking_back_more_than_available():
    assert pools.cap_adjustment(10, StockLevels(0, 0, 0, 0)) == 10
    assert pools.cap_adjustment(10, StockLevels(4, 4, 0, 3)) == 3  # 3 sold + 4 offered -> 7 offered
    assert pools.cap_adjustment(5, StockLevels(4, 4, 0, 3)) == -2
    assert pools.cap_adjustment(1, StockLevels(4, 1, 3, 3)) == -1  # reserved units stay: only the available one
    assert pools.cap_adjustment(7, StockLevels(4, 4, 0, 3)) == 0


def test_virtual_terms_need_a_cap():
    assert VirtualTerms(daily_cap=0).total_cap is None
    for bad in ({}, {"daily_cap": -1}, {"total_cap": 10**10}, {"daily_cap": True}):
        with pytest.raises(Unprocessable):
            VirtualTerms(**bad)
    assert VirtualTerms.from_dict({"daily_cap": 3, "total_cap": None}) == VirtualTerms(3, None)


def test_day_items_are_distinct_per_shop_day_virtual_and_never_a_warehouse():
    assert day_of_item(day_item(FIRST_DAY)) == FIRST_DAY and day_of_item(day_item(LAST_DAY)) == LAST_DAY
    days = [date(2026, 11, 30), date(2026, 12, 1), date(2027, 1, 1), date(2099, 12, 31)]
    items = [day_item(d) for d in days]
    assert len(set(items)) == len(items) and [day_of_item(i) for i in items] == days
    assert all(is_day_item(i) and is_virtual_item(i) and warehouse_index_of(i) >= 64 for i in items)
    assert not is_day_item(TOTAL_ITEM) and is_virtual_item(TOTAL_ITEM) and TOTAL_ITEM // 64 == VIRTUAL_LOCATION
    with pytest.raises(ValueError):
        day_item(date(2019, 12, 31))
    with pytest.raises(ValueError):
        day_of_item(TOTAL_ITEM)


def test_the_local_day_turns_at_the_shops_midnight():
    before, after = datetime(2026, 11, 30, 15, 59, 59, tzinfo=UTC), datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    assert (local_day(before, "Asia/Shanghai"), local_day(after, "Asia/Shanghai")) == (date(2026, 11, 30),
                                                                                       date(2026, 12, 1))
    assert local_day(after, "UTC") == date(2026, 11, 30)
    with pytest.raises(ValueError):
        local_day(after, "Mars/Olympus")


def sku(**extra):
    return Sku(sku="S", name="S", price=Money(100, "CNY"), **extra)


def test_order_lines_of_presale_and_virtual_skus():
    line = OrderLine("S", "S", 2, Money(100, "CNY"))
    presale = pools.order_line(line, sku(presale=TERMS), presale=True)
    assert (presale.stock_policy, presale.presale_ships_on, presale.reserves_stock) == (
        StockPolicy.DEDUCT_ON_PAYMENT, "2026-03-01", False)
    assert pools.order_line(line, sku(presale=TERMS), presale=False) == line  # a spot line of the same SKU
    virtual_sku = sku(virtual=VirtualTerms(daily_cap=3), stock_policy=StockPolicy.DEDUCT_ON_PAYMENT)
    virtual = pools.order_line(line, virtual_sku, presale=False)
    assert virtual.virtual and virtual.reserves_stock and not pools.takes_stock(virtual, virtual_sku)
    capped = sku(virtual=VirtualTerms(3, 10), locations=(0, VIRTUAL_LOCATION))
    assert capped.sellable_warehouses() == (VIRTUAL_LOCATION,) and pools.takes_stock(virtual, capped)
    assert capped.with_shard_levels({TOTAL_ITEM: StockLevels(4, 4, 0, 0), 0: StockLevels(9, 9, 0, 0)}).levels == \
        StockLevels(4, 4, 0, 0)  # a virtual SKU offers its total cap, not spot stock


def test_presale_lines_are_checked_against_the_window():
    skus = {"S": sku(presale=TERMS), "T": sku()}
    pools.check_order_lines({"S": 1, "T": 1}, skus, frozenset(), datetime(2020, 1, 1, tzinfo=UTC))  # no presale
    pools.check_order_lines({"S": 1}, skus, frozenset({"S"}), datetime(2026, 1, 2, tzinfo=UTC))
    for wanted, presale, reason in (({"S": 1}, {"S"}, "presale_ended"), ({"T": 1}, {"T"}, "no_presale")):
        with pytest.raises(Unprocessable) as refused:
            pools.check_order_lines(wanted, skus, frozenset(presale), datetime(2026, 6, 1, tzinfo=UTC))
        assert refused.value.extra["skus"][0]["reason"] == reason


def test_virtual_availability_is_the_least_of_the_caps():
    both = sku(virtual=VirtualTerms(3, 10), locations=(0, VIRTUAL_LOCATION))
    assert pools.virtual_available(both.with_shard_levels({TOTAL_ITEM: StockLevels(10, 10, 0, 0)})) == 3
    today = day_item(date(2026, 11, 30))
    assert pools.virtual_available(both.with_shard_levels({TOTAL_ITEM: StockLevels(2, 2, 0, 0),
                                                           today: StockLevels(3, 3, 0, 0)})) == 2
    assert pools.virtual_available(both.with_shard_levels({TOTAL_ITEM: StockLevels(9, 9, 0, 0),
                                                           today: StockLevels(3, 1, 2, 0)})) == 1
    assert pools.virtual_available(sku()) is None
