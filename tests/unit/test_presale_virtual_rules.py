"""Presale terms and virtual caps as pure rules (shop.domain.presale, shop.domain.virtual): bounds, windows, the
pool's item, day items that never collide and read back as their day (tests/api/test_presale_virtual.py runs the
routes)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from shop.domain import presale, virtual
from shop.domain.errors import Unprocessable
from shop.domain.presale import PresaleTerms
from shop.domain.virtual import VirtualTerms
from shop.domain.warehouses import StockState, is_sellable, location, state_of, stock_item

START, END = "2026-12-01T00:00:00.000Z", "2026-12-08T00:00:00.000Z"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_presale_terms_are_checked_and_read_back_as_written():
    terms = PresaleTerms(500, START, END, "2027-01-15", warehouse=2)
    assert PresaleTerms.from_dict(terms.to_dict()) == terms
    assert terms.to_dict() == {"cap": 500, "starts_at": START, "ends_at": END, "ships_on": "2027-01-15", "warehouse": 2}
    assert PresaleTerms.from_dict({"cap": "7", "starts_at": START, "ends_at": END, "ships_on": "2027-01-15"}) == \
        PresaleTerms(7, START, END, "2027-01-15", 0)
    assert PresaleTerms(0, START, END, "2027-01-15").cap == 0 and PresaleTerms(10**9, START, END, "2027-01-15")
    for bad in ({"cap": -1}, {"cap": 10**9 + 1}, {"cap": True}, {"cap": 1.5}, {"ends_at": START},
                {"ends_at": "2026-11-30T00:00:00.000Z"}, {"starts_at": "2026-12-01T00:00:00"}, {"ships_on": "soon"},
                {"starts_at": "yesterday"}, {"ships_on": None}, {"ends_at": "2026-12-08T00:00:00"}):
        with pytest.raises(Unprocessable):
            PresaleTerms(**{"cap": 5, "starts_at": START, "ends_at": END, "ships_on": "2027-01-15", **bad})


def test_a_presale_window_opens_at_its_start_and_closes_at_its_end():
    terms = PresaleTerms(5, START, END, "2027-01-15")
    before, first, last = at(START) - timedelta(microseconds=1), at(START), at(END) - timedelta(microseconds=1)
    assert [terms.is_open(t) for t in (before, first, last, at(END))] == [False, True, True, False]
    assert [terms.window_state(t) for t in (before, first, last, at(END))] == ["upcoming", "open", "open", "ended"]


def test_the_pool_is_the_warehouses_presale_item_and_its_cap_moves_on_hand():
    terms = PresaleTerms(5, START, END, "2027-01-15", warehouse=1)
    assert terms.location == location(1, StockState.PRESALE) and terms.item == stock_item(1, 0, StockState.PRESALE)
    assert presale.is_pool_item(terms.item) and not is_sellable(terms.item)
    assert not presale.is_pool_item(stock_item(1, 0)) and not presale.is_pool_item(stock_item(1, 0, StockState.SAFETY))
    assert presale.pool_adjustment(100, 0, 0) == 100  # a new pool offers the whole cap
    assert presale.pool_adjustment(100, 30, 60) == 10  # 60 sold, 30 offered: 10 more
    assert presale.pool_adjustment(70, 30, 60) == -20  # lowered: take back what is offered beyond it
    assert presale.pool_adjustment(60, 30, 60) == -30  # down to what was sold
    with pytest.raises(Unprocessable) as below:
        presale.pool_adjustment(59, 30, 60)
    assert below.value.extra == {"fields": ["cap"], "sold": 60}


def test_virtual_caps_need_one_of_two_bounded_numbers():
    assert VirtualTerms.from_dict({"daily_cap": 10}) == VirtualTerms(10, None)
    assert VirtualTerms.from_dict({"daily_cap": None, "total_cap": "3"}) == VirtualTerms(None, 3)
    assert VirtualTerms(0, 10**9).to_dict() == {"daily_cap": 0, "total_cap": 10**9}
    for daily, total in ((None, None), (-1, 5), (5, 10**9 + 1), (True, None), (None, 2.0)):
        with pytest.raises(Unprocessable):
            VirtualTerms(daily, total)  # type: ignore[arg-type]


def test_a_day_item_per_shop_day_reads_back_as_its_day_and_never_meets_another_item():
    first, last = virtual.FIRST_DAY, virtual.LAST_DAY
    assert (first, last) == (date(2020, 1, 1), date(2020, 1, 1) + timedelta(days=(1024 - 64) * 64 - 1))
    days = [first, first + timedelta(days=63), first + timedelta(days=64), date(2026, 12, 1), last]
    items = [virtual.day_item(day) for day in days]
    assert len(set(items)) == len(items) and [virtual.day_of_item(i) for i in items] == days
    assert all(virtual.is_day_item(i) and virtual.is_virtual_item(i) and state_of(i) is StockState.VIRTUAL
               for i in items)
    assert virtual.TOTAL_ITEM == stock_item(0, 0, StockState.VIRTUAL) and virtual.is_virtual_item(virtual.TOTAL_ITEM)
    assert not virtual.is_day_item(virtual.TOTAL_ITEM) and not virtual.is_day_item(stock_item(63, 0, StockState.VIRTUAL))
    assert not virtual.is_virtual_item(stock_item(0, 0)) and not virtual.is_day_item(stock_item(64, 0, StockState.PRESALE))
    for outside in (first - timedelta(days=1), last + timedelta(days=1)):
        with pytest.raises(ValueError):
            virtual.day_item(outside)
    with pytest.raises(ValueError):
        virtual.day_of_item(virtual.TOTAL_ITEM)


def test_the_daily_cap_resets_at_the_shops_midnight():
    late_utc = datetime(2026, 12, 1, 16, 30, tzinfo=UTC)  # 00:30 on 2 December in Shanghai
    assert virtual.local_day(late_utc, "Asia/Shanghai") == date(2026, 12, 2)
    assert virtual.local_day(late_utc, "UTC") == date(2026, 12, 1)
    for bad in ("Mars/Olympus", "", "../etc"):
        with pytest.raises(ValueError):
            virtual.zone(bad)


def test_a_pool_without_a_warehouse_is_the_main_ones_and_the_total_cap_is_in_the_virtual_location():
    from shop.domain.warehouses import location_of

    assert PresaleTerms(5, START, END, "2027-01-15").item == stock_item(0, 0, StockState.PRESALE)
    assert virtual.VIRTUAL_LOCATION == location(0, StockState.VIRTUAL) == location_of(virtual.TOTAL_ITEM)


def test_virtual_goods_are_delivered_with_the_payment_and_never_wait_to_ship():
    from dataclasses import replace

    from shop.domain.orders import OrderStatus
    from tests.unit.test_domain import AT, order

    placed = order(lines=(("CARD", 1), ("TEE", 1)))
    cards = replace(placed, lines=tuple(replace(line, virtual=True) for line in placed.lines))
    paid = cards.transition(OrderStatus.PAID, at=AT, actor="provider:sandbox", reason="paid")
    assert paid.fulfillment_status == "fulfilled" and paid.unshipped_units() == {}
    mixed = replace(placed, lines=(replace(placed.lines[0], virtual=True), placed.lines[1]))
    paid_mixed = mixed.transition(OrderStatus.PAID, at=AT, actor="provider:sandbox", reason="paid")
    assert paid_mixed.fulfillment_status == "unfulfilled" and paid_mixed.unshipped_units() == {"TEE": 1}
    cancelled = cards.transition(OrderStatus.CANCELLED, at=AT, actor="customer:alice", reason="x")
    assert cancelled.fulfillment_status == "unfulfilled"  # only a payment delivers them


def test_a_virtual_sku_sells_its_total_cap_and_its_levels_are_that_caps():
    from shop.domain.money import Money
    from shop.domain.skus import Sku, StockLevels

    day = virtual.day_item(date(2026, 12, 1))
    card = Sku(sku="CARD", name="Card", price=Money(100, "CNY"), virtual=VirtualTerms(10, 500),
               locations=(0, virtual.VIRTUAL_LOCATION))
    assert card.sellable_warehouses() == (virtual.VIRTUAL_LOCATION,) and card.sellable_items() == [virtual.TOTAL_ITEM]
    read = card.with_shard_levels({virtual.TOTAL_ITEM: StockLevels(480, 470, 10, 20), day: StockLevels(10, 7, 3, 0),
                                   0: StockLevels(5, 5, 0, 0)})
    assert read.levels == StockLevels(480, 470, 10, 20)  # the total cap's item only: not the day's, not spot stock
    daily_only = Sku(sku="CARD", name="Card", price=Money(100, "CNY"), virtual=VirtualTerms(10, None), locations=(0,))
    assert daily_only.sellable_warehouses() == ()  # only its daily cap limits it
    spot = Sku(sku="TEE", name="Tee", price=Money(100, "CNY"), locations=(0, virtual.VIRTUAL_LOCATION))
    assert spot.sellable_warehouses() == (0,)
