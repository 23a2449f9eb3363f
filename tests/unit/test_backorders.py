"""Backorders without AWS (shop/domain/backorders.py): how an order line takes every sellable unit and then the
SKU's allowance, which orders wait for stock (first come, first filled), and what order lines and orders do with
backordered units (they wait on the allowance, never ship from a warehouse, are filled or released)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from pydantic import ValidationError

from shop.domain import clock, refunds, stock
from shop.domain.backorders import (
    BACKORDER_ITEM,
    BACKORDER_LOCATION,
    MAX_BACKORDER_LIMIT,
    is_backorder_item,
    next_read_from,
    plan_with_backorder,
    waiting_orders,
)
from shop.domain.errors import InsufficientStock, InvalidTransition
from shop.domain.money import Money
from shop.domain.orders import Allocation, Order, OrderLine, OrderStatus
from shop.domain.skus import Sku, SkuTerms, StockLevels, StockPolicy
from shop.domain.values import sum_units
from shop.domain.warehouses import StockState, location, stock_item
from shop.http.schemas import SkuIn
from tests.unit.test_money_and_stock_rules import paid, refunded

AT = "2026-11-30T10:00:00.000Z"
SH, BJ = stock_item(1, 0), stock_item(2, 0)  # sellable items of two more warehouses (indexes 1 and 2)
ON_BACKORDER = Allocation(BACKORDER_ITEM, 2)


def plan(quantity: int, available: dict[int, int], allowance: int | None, ranked: tuple[int, ...] = (0,),
         shards: int = 1) -> list[tuple[int, int]]:
    return plan_with_backorder("TEE", quantity, available, ranked, shards, allowance, random.Random(7))


def shortage(quantity: int, available: dict[int, int], allowance: int | None) -> list[dict]:
    with pytest.raises(InsufficientStock) as refused:
        plan(quantity, available, allowance)
    assert refused.value.status == 409
    return refused.value.extra["shortages"]


def line(*allocations: Allocation, quantity: int | None = None, code: str = "TEE", **extra) -> OrderLine:
    units = sum(a.units for a in allocations)
    return OrderLine(code, code.title(), units if quantity is None else quantity, Money(1000, "EUR"),
                     allocations=allocations, **extra)


def order(*lines: OrderLine, status: OrderStatus = OrderStatus.PAID) -> Order:
    return Order("ord_b", "20261130-AAAA-BBBBBB", "alice", status, lines, "EUR", "sandbox", {}, AT, AT, AT)


def ship(placed: Order, units: dict[str, int] | None = None, warehouse: str | None = None) -> Order:
    return placed.ship("shp_1", units, carrier="manual", tracking_number="T1", at=AT, actor="admin:ops",
                       warehouse=warehouse)


# --- the allowance item ------------------------------------------------------------------------------

def test_the_allowance_is_one_stock_item_of_the_main_warehouse_in_the_backorder_state():
    assert BACKORDER_LOCATION == location(0, StockState.BACKORDER)
    assert BACKORDER_ITEM == stock_item(0, 0, StockState.BACKORDER) == 8 * 1024 * 64  # its key in the store
    assert is_backorder_item(BACKORDER_ITEM)
    for other in (0, 5, SH, stock_item(0, 0, StockState.INCOMING), stock_item(0, 0, StockState.PRESALE),
                  stock_item(1, 0, StockState.BACKORDER)):
        assert not is_backorder_item(other), other


def test_a_sku_has_an_allowance_once_it_allowed_backorders_and_the_limit_is_bounded():
    tee = Sku(sku="TEE", name="Tee", price=Money(1000, "EUR"))
    assert tee.backorder is None  # never allowed backorders: no allowance item
    # SkuTerms' default: a SKU created without a limit (PUT, or a CSV import without the column) takes none.
    assert tee.backorder_limit == 0 and SkuTerms("Tee", Money(1000, "EUR")).terms()["backorder_limit"] == 0
    allowing = Sku(sku="TEE", name="Tee", price=Money(1000, "EUR"), backorder_limit=3,
                   locations=(0, BACKORDER_LOCATION))
    assert allowing.backorder == StockLevels()  # not read yet
    levels = StockLevels(3, 1, 2, 0)
    assert allowing.with_shard_levels({0: StockLevels(), BACKORDER_ITEM: levels}).backorder == levels
    body = {"name": "Tee", "price": {"amount": 1000, "currency": "EUR"}}
    assert SkuIn.model_validate(body).backorder_limit == 0  # none unless asked for
    assert SkuIn.model_validate({**body, "backorder_limit": 1_000_000}).backorder_limit == MAX_BACKORDER_LIMIT
    for bad in (-1, 1_000_001, True, "3", 2.0):
        with pytest.raises(ValidationError):
            SkuIn.model_validate({**body, "backorder_limit": bad})


# --- plan_with_backorder -----------------------------------------------------------------------------

def test_enough_sellable_stock_takes_nothing_from_the_allowance():
    assert plan(2, {0: 3}, 5) == [(0, 2)]
    assert plan(3, {0: 3}, 5) == [(0, 3)]
    assert plan(2, {0: 3}, None) == [(0, 2)]


def test_short_stock_takes_every_sellable_unit_and_the_rest_from_the_allowance():
    assert plan(5, {0: 1, 1: 2, 2: 0}, 4, shards=3) == [(1, 2), (0, 1), (BACKORDER_ITEM, 2)]
    assert plan(7, {0: 1, 1: 2, 2: 0}, 4, shards=3) == [(1, 2), (0, 1), (BACKORDER_ITEM, 4)]  # the whole allowance
    assert plan(4, {0: 3, 1: -1}, 2, shards=2) == [(0, 3), (BACKORDER_ITEM, 1)]  # a negative read counts as none


def test_without_sellable_stock_the_whole_line_is_backordered():
    assert plan(3, {0: 0}, 3) == [(BACKORDER_ITEM, 3)]
    assert plan(1, {}, 1) == [(BACKORDER_ITEM, 1)]
    assert plan(2, {0: -2, 1: 0}, 5, shards=2) == [(BACKORDER_ITEM, 2)]


def test_an_allowance_too_small_refuses_naming_all_that_could_be_had():
    assert shortage(6, {0: 2, 1: 0}, 3) == [{"sku": "TEE", "requested": 6, "available": 5, "backorder_available": 3}]
    assert shortage(3, {0: 2}, 0) == [{"sku": "TEE", "requested": 3, "available": 2, "backorder_available": 0}]
    # An allowance read below zero (the limit lowered under waiting units) offers nothing.
    assert shortage(3, {0: 2}, -4) == [{"sku": "TEE", "requested": 3, "available": 2, "backorder_available": 0}]
    assert shortage(1, {}, 0) == [{"sku": "TEE", "requested": 1, "available": 0, "backorder_available": 0}]


def test_a_sku_without_backorders_gets_the_plain_shortage():
    assert shortage(3, {0: 2}, None) == [{"sku": "TEE", "requested": 3, "available": 2}]
    with pytest.raises(ValueError):
        plan(0, {0: 2}, 5)  # a line takes at least one unit


def test_the_sellable_part_follows_the_warehouse_ranking():
    available = {0: 0, SH: 2, BJ: 3}
    assert plan(3, available, 5, ranked=(1, 2, 0)) == [(BJ, 3)]  # the nearest holding the whole line
    assert plan(4, available, 5, ranked=(2, 1, 0)) == [(BJ, 3), (SH, 1)]  # split, nearest first: no backorder
    assert plan(7, available, 5, ranked=(2, 1, 0)) == [(BJ, 3), (SH, 2), (BACKORDER_ITEM, 2)]
    assert plan(7, available, 5, ranked=(1, 2, 0)) == [(SH, 2), (BJ, 3), (BACKORDER_ITEM, 2)]


# --- waiting_orders ----------------------------------------------------------------------------------

def reserve(order_id: str, units: int, item: int = BACKORDER_ITEM) -> stock.StockMovement:
    return stock.allocate("TEE", item, units, at=AT, actor="customer:x", order_id=order_id)


def release(order_id: str, units: int, reason: str = "backorder_filled") -> stock.StockMovement:
    return stock.deallocate("TEE", BACKORDER_ITEM, units, at=AT, actor="system:backorders", order_id=order_id,
                            reason=reason)


def test_waiting_orders_are_read_from_the_allowance_ledger_first_come_first_filled():
    ledger = [
        stock.adjust("TEE", BACKORDER_ITEM, 5, at=AT, actor="admin:ops", reason="backorder_limit"),
        reserve("ord_b", 3),
        reserve("ord_a", 4, item=0),  # its units in stock: not waiting
        reserve("ord_a", 1),
        reserve("ord_c", 2),
        stock.hold("TEE", BACKORDER_ITEM, 2, at=AT, actor="customer:x", hold_id="hold_1"),  # no order
        release("ord_b", 2),  # partly filled
        release("ord_c", 2, reason="backorder_cancelled"),  # nothing left: no longer waits
        release("ord_d", 1),  # released more than this part of the ledger reserved
        reserve("ord_e", 2),
        stock.deallocate("TEE", 0, 4, at=AT, actor="system:expiry", order_id="ord_e", reason="expired"),  # elsewhere
    ]
    waiting = waiting_orders(ledger)
    assert waiting == {"ord_b": 1, "ord_a": 1, "ord_e": 2}
    assert list(waiting) == ["ord_b", "ord_a", "ord_e"]  # by first backorder, not by id or size
    assert waiting_orders(iter(ledger)) == waiting  # one pass over a page iterator
    assert waiting_orders([]) == {}
    assert waiting_orders([reserve("ord_f", 1), reserve("ord_f", 1)]) == {"ord_f": 2}


def test_the_next_fill_reads_from_the_first_backorder_of_the_oldest_order_that_waits_at_most_an_hour_back():
    def at(minute: int) -> str:
        return f"2026-11-30T{8 + minute // 60:02d}:{minute % 60:02d}:00.000Z"

    def entry(movement: stock.StockMovement, minute: int) -> stock.StockMovement:
        return replace(movement, at=at(minute))

    ledger = [entry(stock.adjust("TEE", BACKORDER_ITEM, 5, at=AT, actor="admin:ops", reason="backorder_limit"), 0),
              entry(reserve("ord_a", 2), 10), entry(reserve("ord_b", 1), 20), entry(reserve("ord_b", 1), 30),
              entry(release("ord_a", 2), 40), entry(reserve("ord_c", 1), 50)]
    now = clock.parse_iso(at(240))
    waiting = waiting_orders(ledger)
    assert list(waiting) == ["ord_b", "ord_c"]
    assert next_read_from(ledger, waiting, now) == at(20)  # ord_b's first backorder; ord_a is settled
    assert next_read_from(ledger, ["ord_c"], now) == at(50)
    assert next_read_from(ledger, [], now) == at(180)  # nothing waits: an hour before now (READ_MARGIN)
    assert next_read_from(ledger, waiting, clock.parse_iso(at(70))) == at(10)  # never later than an hour back
    assert next_read_from(ledger, ["ord_z"], now) == at(180)  # an order not in what was read sets no point
    # Read from that point, the ledger finds the same waiting orders: ord_a's entries before it are all skipped,
    # and a settled order's release after it counts for nothing.
    assert waiting_orders(m for m in ledger if m.at >= at(20)) == waiting
    assert waiting_orders(m for m in ledger if m.at >= at(40)) == {"ord_c": 1}  # (too late a point would lose ord_b)


# --- order lines -------------------------------------------------------------------------------------

def test_a_line_says_how_many_units_wait_and_ships_only_the_others():
    partly = line(Allocation(0, 1), Allocation(SH, 2, "sh"), Allocation(BACKORDER_ITEM, 3))
    assert partly.backordered == 3 and partly.quantity == 6
    assert partly.units_by_warehouse() == {"main": 1, "sh": 2}  # the allowance is in no warehouse's hands
    assert line(Allocation(0, 2), Allocation(1, 1)).backordered == 0
    assert line(ON_BACKORDER).units_by_warehouse() == {}
    assert line(Allocation(0, 2)).units_by_warehouse() == {"main": 2}


def test_filling_replaces_backordered_units_by_sellable_ones_merged_into_the_items_held():
    partly = line(Allocation(0, 1), Allocation(SH, 2, "sh"), Allocation(BACKORDER_ITEM, 3))
    whole = partly.with_backorder_filled((Allocation(0, 2), Allocation(BJ, 1, "bj")))
    assert whole.allocations == (Allocation(0, 3), Allocation(SH, 2, "sh"), Allocation(BJ, 1, "bj"))
    assert whole.backordered == 0 and whole.units_by_warehouse() == {"main": 3, "sh": 2, "bj": 1}
    some = partly.with_backorder_filled((Allocation(SH, 1, "sh"),))
    assert some.allocations == (Allocation(0, 1), Allocation(SH, 3, "sh"), Allocation(BACKORDER_ITEM, 2))
    assert some.backordered == 2 and some.quantity == partly.quantity
    assert line(ON_BACKORDER).with_backorder_filled((Allocation(1, 1),)).allocations == (
        Allocation(BACKORDER_ITEM, 1), Allocation(1, 1))
    for bad in ((), (Allocation(0, 4),), (Allocation(0, 2), Allocation(1, 2))):
        with pytest.raises(ValueError):
            partly.with_backorder_filled(bad)
    with pytest.raises(ValueError):
        line(Allocation(0, 2)).with_backorder_filled((Allocation(0, 1),))  # nothing is backordered


def test_releasing_backordered_units_leaves_the_units_in_stock():
    partly = line(Allocation(0, 1), Allocation(BACKORDER_ITEM, 3))
    assert partly.with_backorder_released(1).allocations == (Allocation(0, 1), Allocation(BACKORDER_ITEM, 2))
    assert partly.with_backorder_released(3).allocations == (Allocation(0, 1),)
    assert partly.with_backorder_released(3).quantity == 4  # the line's quantity is the refund's business
    for bad in (0, -1, 4):
        with pytest.raises(ValueError):
            partly.with_backorder_released(bad)


# --- orders ------------------------------------------------------------------------------------------

def test_an_order_lists_its_backordered_units_and_replaces_a_filled_line_in_a_new_version():
    tee, hat = line(Allocation(0, 1), Allocation(BACKORDER_ITEM, 2)), line(Allocation(0, 1), code="HAT")
    placed = order(tee, hat)
    assert placed.backordered_units() == {"TEE": 2}
    filled = placed.with_line(tee.with_backorder_filled((Allocation(0, 2),)), at="2026-12-01T00:00:00.000Z")
    assert filled.backordered_units() == {} and filled.lines[1] == hat
    assert filled.lines[0].allocations == (Allocation(0, 3),)
    assert (filled.version, filled.updated_at, filled.status) == (2, "2026-12-01T00:00:00.000Z", OrderStatus.PAID)
    assert filled.history == placed.history  # no transition
    for ended in (OrderStatus.CANCELLED, OrderStatus.EXPIRED):  # released: the lines keep them as history only
        assert order(tee, status=ended).backordered_units() == {}
    for waiting in (OrderStatus.PENDING_PAYMENT, OrderStatus.ON_HOLD, OrderStatus.PARTIALLY_SHIPPED):
        assert order(tee, status=waiting).backordered_units() == {"TEE": 2}


def test_a_default_parcel_carries_only_the_units_in_stock():
    placed = order(line(Allocation(0, 1), Allocation(BACKORDER_ITEM, 2)), line(Allocation(0, 1), code="HAT"))
    shipped = ship(placed)
    assert sum_units(shipped.shipments[0].lines) == {"TEE": 1, "HAT": 1}
    assert shipped.status is OrderStatus.PARTIALLY_SHIPPED and shipped.backordered_units() == {"TEE": 2}
    assert shipped.unshipped_units() == {"TEE": 2} and shipped.unshipped_by_warehouse() == {}
    filled = shipped.with_line(shipped.lines[0].with_backorder_filled((Allocation(0, 2),)), at=AT)
    assert filled.unshipped_by_warehouse() == {"main": {"TEE": 2}}
    done = ship(filled)
    assert done.status is OrderStatus.SHIPPED and sum_units(done.shipments[-1].lines) == {"TEE": 2}


def test_a_parcel_asking_for_backordered_units_is_refused():
    placed = order(line(Allocation(0, 1), Allocation(BACKORDER_ITEM, 2)))
    with pytest.raises(InvalidTransition) as refused:
        ship(placed, {"TEE": 2})
    assert refused.value.status == 409
    assert refused.value.extra == {"skus": [{"sku": "TEE", "requested": 2, "unshipped": 3, "backordered": 2}]}
    assert sum_units(ship(placed, {"TEE": 1}).shipments[0].lines) == {"TEE": 1}
    with pytest.raises(InvalidTransition) as beyond:  # more than ordered: no backordered units named
        ship(order(line(Allocation(0, 1), code="HAT"), line(Allocation(0, 1), Allocation(BACKORDER_ITEM, 1))),
             {"HAT": 2})
    assert beyond.value.extra == {"skus": [{"sku": "HAT", "requested": 2, "unshipped": 1}]}


def test_nothing_ships_while_every_unit_left_is_backordered():
    waiting = order(line(ON_BACKORDER), line(Allocation(0, 1), Allocation(BACKORDER_ITEM, 1), code="HAT"))
    assert waiting.unshipped_by_warehouse() == {"main": {"HAT": 1}}
    partly = ship(waiting)
    for attempt in ({}, {"warehouse": "main"}):
        with pytest.raises(InvalidTransition) as refused:
            ship(partly, **attempt)
        assert refused.value.status == 409 and "backordered" in refused.value.detail
        assert refused.value.extra == {"order_id": "ord_b", "backordered": [{"sku": "TEE", "quantity": 2},
                                                                            {"sku": "HAT", "quantity": 1}]}


def test_a_fully_backordered_line_is_held_by_no_warehouse():
    waiting = order(line(ON_BACKORDER))
    assert waiting.unshipped_units() == {"TEE": 2}
    assert waiting.unshipped_by_warehouse() == {}  # not "main holds 2": nothing is there to pack
    no_allocations = order(line(quantity=2, stock_policy=StockPolicy.DEDUCT_ON_PAYMENT))
    assert no_allocations.unshipped_by_warehouse() == {"main": {"TEE": 2}}  # taken at payment, in main


# ---- a refund releases the backordered units nobody waits for, and restocks only units that were sold ----

def _one_in_stock_two_waiting():
    return paid(lines=(("TEE", 3),)).with_allocations({"TEE": [(0, 1), (BACKORDER_ITEM, 2)]})


def _refund(placed, **kwargs):
    return refunds.release_backorders(refunded(placed, **kwargs), at=AT, actor="ops")


def test_a_refund_by_line_releases_waiting_units_first_and_restocks_none_of_them():
    placed = _one_in_stock_two_waiting()
    assert placed.lines[0].backordered == 2
    after, movements = _refund(placed, lines=[("TEE", 2)], restock=True)
    assert [(m.shard, m.delta.available, m.delta.reserved, m.reason) for m in movements] == [
        (BACKORDER_ITEM, 2, -2, "backorder_cancelled")]
    assert after.lines[0].backordered == 0 and after.unshipped_units() == {"TEE": 1}  # the unit in stock ships
    assert after.refunds[-1].restocked == ()  # the released units were never sold


def test_a_refund_that_cancels_releases_every_waiting_unit_and_restocks_only_the_sold_one():
    after, movements = _refund(_one_in_stock_two_waiting(), lines=[("TEE", 3)], restock=True, cancel=True)
    assert after.status is OrderStatus.CANCELLED
    assert [(m.shard, m.delta.reserved) for m in movements] == [(BACKORDER_ITEM, -2)]
    assert sum_units(after.refunds[-1].restocked) == {"TEE": 1}


def test_a_refund_by_amount_leaves_the_waiting_units_waiting():
    placed = _one_in_stock_two_waiting()
    after, movements = _refund(placed, amount=100)
    assert movements == [] and after.lines[0].backordered == 2


def test_a_cancel_after_a_refund_released_waiting_units_restocks_only_what_was_sold_and_not_yet_restocked():
    first, _ = _refund(_one_in_stock_two_waiting(), lines=[("TEE", 2)], restock=True)
    after, movements = _refund(first, lines=[("TEE", 1)], restock=True, cancel=True, key="r2")
    assert movements == []  # nothing waits any more
    assert sum_units(after.refunds[-1].restocked) == {"TEE": 1}


def test_an_order_without_backorders_is_left_as_the_refund_made_it():
    placed = paid()
    intent = refunded(placed, lines=[("TEE", 1)], restock=True)
    after, movements = refunds.release_backorders(intent, at=AT, actor="ops")
    assert after is intent and movements == []


def test_a_refund_by_line_without_restock_releases_the_waiting_units_too():
    after, movements = _refund(_one_in_stock_two_waiting(), lines=[("TEE", 1)])
    assert [(m.shard, m.delta.reserved) for m in movements] == [(BACKORDER_ITEM, -1)]  # one of the two
    assert after.lines[0].backordered == 1 and after.refunds[-1].restocked == ()


def test_a_second_refund_releases_by_its_own_lines():
    by_amount, released = _refund(_one_in_stock_two_waiting(), amount=100)
    assert released == []
    after, movements = _refund(by_amount, lines=[("TEE", 1)], key="r2")
    assert [(m.shard, m.delta.reserved) for m in movements] == [(BACKORDER_ITEM, -1)]
    assert after.lines[0].backordered == 1


def test_a_cancel_restocks_only_sold_units_that_earlier_refunds_did_not_restock():
    two_in_stock_one_waiting = paid(lines=(("TEE", 3),)).with_allocations({"TEE": [(0, 2), (BACKORDER_ITEM, 1)]})
    first, released = _refund(two_in_stock_one_waiting, lines=[("TEE", 2)], restock=True)
    assert [m.delta.reserved for m in released] == [-1] and sum_units(first.refunds[-1].restocked) == {"TEE": 1}
    after, movements = _refund(first, restock=True, cancel=True, key="r2")  # the plan asks 2 back: 1 is left sold
    assert movements == []
    assert [sum_units(r.restocked) for r in after.refunds] == [{"TEE": 1}, {"TEE": 1}]  # the first one untouched


def test_lines_that_hold_no_stock_keep_the_units_their_refund_restocks():
    placed = _one_in_stock_two_waiting()
    mug = replace(placed.lines[0], sku="MUG", quantity=2, allocations=(), stock_policy=StockPolicy.DEDUCT_ON_PAYMENT)
    placed = replace(placed, lines=(placed.lines[0], mug), amount_paid=placed.amount_paid + 2000)
    after, movements = _refund(placed, lines=[("TEE", 2), ("MUG", 2)], restock=True)
    assert [(m.sku, m.delta.reserved) for m in movements] == [("TEE", -2)]
    assert sum_units(after.refunds[-1].restocked) == {"MUG": 2}  # the released tees were never sold


def test_a_virtual_line_without_stock_items_keeps_the_units_its_refund_restocks():
    placed = _one_in_stock_two_waiting()
    card = replace(placed.lines[0], sku="CARD", quantity=2, allocations=(), virtual=True)  # uncapped: no stock item
    placed = replace(placed, lines=(placed.lines[0], card), amount_paid=placed.amount_paid + 2000)
    after, movements = _refund(placed, lines=[("TEE", 2), ("CARD", 2)], restock=True)
    assert [(m.sku, m.delta.reserved) for m in movements] == [("TEE", -2)]
    assert sum_units(after.refunds[-1].restocked) == {"CARD": 2}
