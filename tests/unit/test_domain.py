"""The domain without AWS: money, stock operations and their invariants, the order lifecycle, ids, limits."""

from __future__ import annotations

import random
import re
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shop.domain import shards, stock
from shop.domain.errors import InsufficientStock, InvalidTransition, Unprocessable
from shop.domain.ids import new_order_id, new_order_number
from shop.domain.money import Money
from shop.domain.orders import ALLOWED_TRANSITIONS, Order, OrderLine, OrderStatus
from shop.domain.skus import Sku, StockLevels, StockPolicy
from shop.domain.values import Refund, UnitLine
from shop.services.inventory import release_order_lines, sell_reserved_lines
from shop.services.orders import check_catalog, merge_lines

AT = "2026-11-25T10:00:00.000Z"
S = OrderStatus


def sku(code="TEE", available=10, reserved=0, sold=0, **extra) -> Sku:
    levels = StockLevels(available + reserved, available, reserved, sold)
    return Sku(sku=code, name=code.title(), price=Money(1999, "EUR"), **extra).with_shard_levels({0: levels})


def order(status=S.PENDING_PAYMENT, lines=(("TEE", 2),), **extra) -> Order:
    return Order("ord_x", "20261125-AAAA-BBBBBB", "alice", status,
                 tuple(OrderLine(c, c, q, Money(1999, "EUR")) for c, q in lines), "EUR", "sandbox", {}, AT, AT, AT,
                 **extra)


# --- money -----------------------------------------------------------------------------------------

def test_money_is_integer_minor_units_in_one_currency():
    assert Money(1999, "EUR").times(3) + Money(3, "EUR") == Money(6000, "EUR")
    with pytest.raises(TypeError):
        Money(19.99, "EUR")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money(True, "EUR")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Money(1, "eur")
    with pytest.raises(ValueError):
        Money(1, "EUR") + Money(1, "USD")


def test_order_total_is_the_sum_of_catalog_prices():
    assert order(lines=(("TEE", 2), ("CAP", 1))).total == Money(5997, "EUR")


# --- stock operations ------------------------------------------------------------------------------

def apply(levels: StockLevels, movement: stock.StockMovement) -> StockLevels:
    """What the store does: the delta is added only if every guard holds (else the write is refused)."""
    if any(getattr(levels, name) < need for name, need in movement.guards().items()):
        raise InsufficientStock("guard failed")
    return levels + movement.delta


def test_movements_are_deltas_with_guards_on_what_they_lower():
    allocate = stock.allocate("TEE", 3, 2, at=AT, actor="customer:alice", order_id="ord_x")
    assert (allocate.shard, allocate.delta, allocate.guards()) == (3, StockLevels(0, -2, 2, 0), {"available": 2})
    assert stock.deallocate("TEE", 0, 2, at=AT, actor="a", order_id="o", reason="x").guards() == {"reserved": 2}
    assert stock.sell_allocated("TEE", 0, 2, at=AT, actor="a", order_id="o").guards() == {"reserved": 2}
    assert stock.sell_unallocated("TEE", 0, 2, at=AT, actor="a", order_id="o").guards() == {"available": 2}
    assert stock.return_sold("TEE", 0, 1, at=AT, actor="a", order_id="o", reason="r").guards() == {"sold": 1}
    assert stock.adjust("TEE", 0, 5, at=AT, actor="a", reason="delivery").guards() == {}
    assert stock.adjust("TEE", 0, -5, at=AT, actor="a", reason="shrinkage").guards() == {"available": 5}
    assert allocate.movement_id != stock.allocate("TEE", 3, 2, at=AT, actor="a", order_id="o").movement_id


def test_sale_release_return_and_adjust():
    held = StockLevels(5, 3, 2, 0)
    assert apply(held, stock.sell_allocated("T", 0, 2, at=AT, actor="a", order_id="o")) == StockLevels(3, 3, 0, 2)
    assert apply(held, stock.deallocate("T", 0, 2, at=AT, actor="a", order_id="o", reason="x")) == StockLevels(5, 5, 0, 0)
    assert apply(held, stock.sell_unallocated("T", 0, 3, at=AT, actor="a", order_id="o")) == StockLevels(2, 0, 2, 3)
    assert apply(StockLevels(0, 0, 0, 4), stock.return_sold("T", 0, 1, at=AT, actor="a", order_id="o", reason="r")) \
        == StockLevels(1, 1, 0, 3)
    assert apply(held, stock.adjust("T", 0, -3, at=AT, actor="a", reason="shrinkage")) == StockLevels(2, 0, 2, 0)


def test_guards_refuse_what_would_break_the_invariants():
    held = StockLevels(5, 3, 2, 0)
    for movement in (stock.deallocate("T", 0, 3, at=AT, actor="a", order_id="o", reason="x"),  # more than reserved
                     stock.sell_allocated("T", 0, 3, at=AT, actor="a", order_id="o"),
                     stock.return_sold("T", 0, 1, at=AT, actor="a", order_id=None, reason="r"),  # nothing sold
                     stock.adjust("T", 0, -4, at=AT, actor="a", reason="x"),  # would eat reserved units
                     stock.sell_unallocated("T", 0, 4, at=AT, actor="a", order_id="o")):
        with pytest.raises(InsufficientStock):
            apply(held, movement)
    for bad in (0, -1, True, 1.0):
        with pytest.raises(ValueError):
            stock.allocate("T", 0, bad, at=AT, actor="a", order_id="o")  # type: ignore[arg-type]
    with pytest.raises(Unprocessable):
        stock.adjust("T", 0, 0, at=AT, actor="a", reason="x")


OPERATIONS = st.lists(st.tuples(st.sampled_from(["allocate", "deallocate", "sell_allocated", "sell_unallocated",
                                                  "return_sold", "adjust", "move"]), st.integers(-5, 5),
                                st.integers(0, 3), st.integers(0, 3)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(OPERATIONS)
def test_any_sequence_over_shards_keeps_each_consistent_and_the_ledger_sums_to_the_levels(operations):
    shard_levels = {n: StockLevels(5, 5, 0, 0) for n in range(4)}
    initial = StockLevels(20, 20, 0, 0)
    ledger = []
    for name, n, shard, other in operations:
        try:
            if name == "adjust":
                movements = [stock.adjust("T", shard, n, at=AT, actor="a", reason="x")]
            elif name == "move":
                movements = stock.move("T", shard, other, n, at=AT, actor="a") if shard != other else []
            elif name in ("deallocate", "return_sold"):
                movements = [getattr(stock, name)("T", shard, n, at=AT, actor="a", order_id="o", reason="x")]
            else:
                movements = [getattr(stock, name)("T", shard, n, at=AT, actor="a", order_id="o")]
            after = dict(shard_levels)
            for movement in movements:  # all or nothing, like one transaction
                after[movement.shard] = apply(after[movement.shard], movement)
        except (ValueError, InsufficientStock, Unprocessable):
            continue
        shard_levels = after
        ledger += movements
        assert all(levels.is_consistent for levels in shard_levels.values())
    total = initial
    for movement in ledger:
        total = total + movement.delta
    assert total == Sku(sku="T", name="T", price=Money(1, "EUR")).with_shard_levels(shard_levels).levels


def test_shard_plans_take_from_one_shard_when_one_can_else_from_the_fullest():
    rng = random.Random(7)
    assert shards.plan_take("T", 3, {0: 1, 1: 5, 2: 3}, 3, rng) in ([(1, 3)], [(2, 3)])
    assert shards.plan_take("T", 7, {0: 1, 1: 5, 2: 3}, 3, rng) == [(1, 5), (2, 2)]
    assert shards.plan_take("T", 1, {0: 0, 1: 0, 5: 1}, 2, rng) == [(5, 1)]  # the last unit, in a retired shard
    with pytest.raises(InsufficientStock) as short:
        shards.plan_take("T", 10, {0: 1, 1: 5, 2: 3}, 3, rng)
    assert short.value.extra == {"shortages": [{"sku": "T", "requested": 10, "available": 9}]}
    assert {shards.pick_shard(4, rng) for _ in range(200)} == {0, 1, 2, 3}


def test_rebalance_evens_live_shards_and_empties_retired_ones():
    moves = shards.plan_rebalance({0: 0, 1: 10, 2: 2, 3: 5}, 3)
    after = {0: 0, 1: 10, 2: 2, 3: 5}
    for source, target, units in moves:
        assert units > 0 and after[source] >= units
        after[source] -= units
        after[target] += units
    assert after[3] == 0 and sorted(after[n] for n in range(3)) == [5, 6, 6]
    assert shards.plan_rebalance({0: 4, 1: 4}, 2) == []


def test_availability():
    assert sku(available=0).availability() == "sold_out"
    assert sku(available=2, low_stock_threshold=2).availability() == "low_stock"
    assert sku(available=3, low_stock_threshold=2).availability() == "in_stock"


# --- orders ----------------------------------------------------------------------------------------

def test_transitions_follow_the_lifecycle_and_append_history():
    paid = order().transition(S.PAID, at=AT, actor="provider:sandbox", reason="payment_received")
    assert (paid.status, paid.version, paid.history[-1].to_dict()) == (
        S.PAID, 2, {"at": AT, "actor": "provider:sandbox", "from": "PENDING_PAYMENT", "to": "PAID",
                    "reason": "payment_received"})
    for final in (S.CANCELLED, S.COMPLETED):
        assert not ALLOWED_TRANSITIONS[final]
    with pytest.raises(InvalidTransition):
        paid.transition(S.EXPIRED, at=AT, actor="system", reason="late")
    with pytest.raises(InvalidTransition):
        order(S.CANCELLED).transition(S.PAID, at=AT, actor="a", reason="x")


def test_only_unpaid_orders_hold_a_reservation():
    assert order().reserved_quantities() == {"TEE": 2}
    assert order(S.PAID, payment_status="paid").reserved_quantities() == {}
    assert order(S.EXPIRED).reserved_quantities() == {}
    deducted = replace(order(), lines=(OrderLine("TEE", "Tee", 2, Money(1, "EUR"), StockPolicy.DEDUCT_ON_PAYMENT),))
    assert deducted.reserved_quantities() == {}


def test_releasing_and_selling_go_to_the_shards_holding_the_lines():
    placed = order().with_allocations({"TEE": [(2, 1), (5, 1)]})
    released = release_order_lines(placed, AT, "a", "payment_window_expired")
    assert [(m.shard, m.delta, m.reason) for m in released] == [
        (2, StockLevels(0, 1, -1, 0), "payment_window_expired"), (5, StockLevels(0, 1, -1, 0), "payment_window_expired")]
    assert [(m.shard, m.delta) for m in sell_reserved_lines(placed, AT, "a")] == [
        (2, StockLevels(-1, 0, -1, 1)), (5, StockLevels(-1, 0, -1, 1))]
    assert release_order_lines(replace(placed, status=S.EXPIRED), AT, "a", "x") == []  # holds nothing any more


def test_shipping_a_paid_order_in_parcels():
    paid = order(S.PAID, lines=(("TEE", 3), ("CAP", 1)), payment_status="paid")
    first = paid.ship("shp_1", {"TEE": 2}, carrier="DHL", tracking_number="1", at=AT, actor="admin:ops")
    assert (first.status, first.fulfillment_status, first.unshipped_units()) == (
        S.PARTIALLY_SHIPPED, "partial", {"TEE": 1, "CAP": 1})
    done = first.ship("shp_2", None, carrier=None, tracking_number=None, at=AT, actor="admin:ops")
    assert (done.status, done.fulfillment_status, done.unshipped_units()) == (S.SHIPPED, "fulfilled", {})
    with pytest.raises(InvalidTransition):
        first.ship("shp_3", {"TEE": 2}, carrier=None, tracking_number=None, at=AT, actor="a")
    with pytest.raises(Unprocessable):
        paid.ship("shp_4", {"HAT": 1}, carrier=None, tracking_number=None, at=AT, actor="a")
    with pytest.raises(InvalidTransition):
        order().ship("shp_5", None, carrier=None, tracking_number=None, at=AT, actor="a")
    refunded = replace(paid, refunds=(Refund("rf_1", 500, "USD", lines=(UnitLine("CAP", 1),)),))
    assert refunded.unshipped_units() == {"TEE": 3}


def test_catalog_checks_name_every_problem():
    skus = {"TEE": sku(available=1), "OLD": sku("OLD", active=False), "USD": replace(sku("USD"), price=Money(1, "USD")),
            "CAP": sku("CAP", max_per_order=2)}
    cases = [({"NOPE": 1}, Unprocessable, "unknown"), ({"OLD": 1}, Unprocessable, "inactive"),
             ({"TEE": 1, "USD": 1}, Unprocessable, "currencies"), ({"CAP": 3}, Unprocessable, "max_per_order")]
    for wanted, error, mention in cases:
        with pytest.raises(error) as raised:
            check_catalog(wanted, skus)
        assert mention in str(raised.value.extra), wanted
    check_catalog({"TEE": 1, "CAP": 2}, skus)


def test_line_limits():
    assert merge_lines([("TEE", 1), ("TEE", 2), ("CAP", 1)]) == {"TEE": 3, "CAP": 1}
    with pytest.raises(Unprocessable):
        merge_lines([("TEE", 60), ("TEE", 60)])
    with pytest.raises(Unprocessable):
        merge_lines([(f"S{i}", 1) for i in range(49)])


# --- ids -------------------------------------------------------------------------------------------

def test_order_ids_are_unguessable_and_numbers_readable():
    ids = {new_order_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(re.fullmatch(r"ord_[a-z2-7]{26}", i) for i in ids)
    number = new_order_number("alice", AT)
    assert re.fullmatch(r"20261125-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{6}", number)
    assert number[:13] == new_order_number("alice", AT)[:13] != new_order_number("bob", AT)[:13]


def test_payment_window_rules():
    from shop.domain.orders import payment_window_seconds as window

    assert window(default=900, maximum=3600) == 900
    assert window(default=900, maximum=3600, sku_windows=(None, 1800, 2400)) == 1800  # the shortest SKU window
    assert window(default=900, maximum=3600, requested=300, sku_windows=(1800,)) == 300  # a request may shorten it
    for longer in ({"requested": 1000}, {"requested": 1801, "sku_windows": (1800,)}):  # ...never lengthen it
        with pytest.raises(Unprocessable) as refused:
            window(default=900, maximum=3600, **longer)
        assert refused.value.extra["maximum"] == longer.get("sku_windows", (900,))[0]
    assert window(default=900, maximum=1200, sku_windows=(1800,)) == 1200  # the maximum lowered later


# --- refusals ----------------------------------------------------------------------------------------

def test_each_refusal_has_its_documented_status_and_problem_type():
    """A storefront branches on `type` (RFC 9457): tests/api/test_problem_types.py checks them through the handlers;
    here every domain error at once, including the ones no API test provokes cheaply."""
    from shop.domain import errors
    from shop.domain.after_sales import WindowClosed
    from shop.http.problems import problem_body

    expected = {
        errors.Unauthorized: (401, "/problems/unauthorized"), errors.Forbidden: (403, "/problems/forbidden"),
        errors.NotFound: (404, "/problems/not-found"), errors.Conflict: (409, "/problems/conflict"),
        errors.InsufficientStock: (409, "/problems/insufficient-stock"),
        errors.InvalidTransition: (409, "/problems/invalid-transition"),
        errors.TooManyUnpaid: (429, "/problems/unpaid-limit"),
        errors.Unprocessable: (422, "/problems/invalid-request"),
        errors.IdempotencyKeyReused: (422, "/problems/idempotency-key-reused"),
        errors.Unavailable: (503, "/problems/temporarily-unavailable"),
        WindowClosed: (409, "/problems/after-sales-window-closed"),
    }
    for kind, (status, problem_type) in expected.items():
        error = kind("why", {"sku": "TEE"})
        body = problem_body(error.status, error.slug, error.title, error.detail, error.extra)
        assert (body["status"], body["type"], body["detail"], body["sku"]) == (status, problem_type, "why", "TEE"), kind


def test_times_are_iso_8601_utc_with_a_z_to_the_millisecond():
    from datetime import UTC, datetime, timedelta, timezone

    from shop.domain import clock

    beijing = datetime(2026, 3, 1, 8, 30, 5, 123456, tzinfo=timezone(timedelta(hours=8)))
    assert clock.iso(beijing) == "2026-03-01T00:30:05.123Z"
    assert clock.parse_iso("2026-03-01T00:30:05.123Z") == datetime(2026, 3, 1, 0, 30, 5, 123000, tzinfo=UTC)
    assert clock.iso_after(datetime(2026, 3, 1, tzinfo=UTC), 90) == "2026-03-01T00:01:30.000Z"
    assert clock.now().tzinfo is UTC


def test_a_new_order_has_been_paid_nothing_holds_no_request_and_says_where_units_ship_from():
    from shop.domain import refunds
    from shop.domain.orders import Allocation

    placed = order()
    assert (placed.amount_paid, refunds.refundable(placed), placed.open_after_sales) == (0, 0, 0)
    delivered = order(S.DELIVERED, payment_status="paid")
    assert delivered.transition(S.COMPLETED, at=AT, actor="customer:alice", reason="received").status is S.COMPLETED
    line = replace(placed.lines[0], quantity=5, allocations=(Allocation(0, 2), Allocation(1, 1),
                                                             Allocation(64, 2, "sh")))
    assert line.units_by_warehouse() == {"main": 3, "sh": 2}
    assert Money(1999, "EUR").to_dict() == {"amount": 1999, "currency": "EUR"}
