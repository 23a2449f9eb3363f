"""The domain without AWS: money, stock operations and their invariants, the order lifecycle, ids, limits."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shop.domain import stock
from shop.domain.errors import InsufficientStock, InvalidTransition, Unprocessable
from shop.domain.ids import new_order_id, new_order_number
from shop.domain.money import Money
from shop.domain.orders import ALLOWED_TRANSITIONS, Order, OrderLine, OrderStatus
from shop.domain.skus import Sku, StockLevels, StockPolicy
from shop.services.orders import check_catalog, merge_lines, release_order_lines, sell_order_lines, stock_events
from shop.services.ports import StaleWrite

AT = "2026-11-25T10:00:00.000Z"
S = OrderStatus


def sku(code="TEE", available=10, reserved=0, sold=0, **extra) -> Sku:
    levels = StockLevels(available + reserved, available, reserved, sold)
    return Sku(code, code.title(), Money(1999, "EUR"), levels=levels, stock_seq=1, **extra)


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

def test_allocate_moves_available_to_reserved_and_counts_the_ledger_seq():
    movement = stock.allocate(sku(available=5), 2, at=AT, actor="customer:alice", order_id="ord_x")
    assert movement.levels == StockLevels(5, 3, 2, 0)
    assert movement.delta == StockLevels(0, -2, 2, 0)
    assert (movement.seq, movement.expected_seq, movement.reason) == (2, 1, "order_placed")


def test_allocate_names_the_shortage():
    with pytest.raises(InsufficientStock) as short:
        stock.allocate(sku(available=1), 3, at=AT, actor="a", order_id="ord_x")
    assert short.value.extra == {"shortages": [{"sku": "TEE", "requested": 3, "available": 1}]}


def test_sale_release_return_and_adjust():
    held = sku(available=3, reserved=2)
    assert stock.sell_allocated(held, 2, at=AT, actor="a", order_id="o").levels == StockLevels(3, 3, 0, 2)
    assert stock.deallocate(held, 2, at=AT, actor="a", order_id="o", reason="x").levels == StockLevels(5, 5, 0, 0)
    assert stock.sell_unallocated(held, 3, at=AT, actor="a", order_id="o").levels == StockLevels(2, 0, 2, 3)
    sold = sku(available=0, sold=4)
    assert stock.return_sold(sold, 1, at=AT, actor="a", order_id="o", reason="r").levels == StockLevels(1, 1, 0, 3)
    assert stock.adjust(held, -3, at=AT, actor="a", reason="shrinkage").levels == StockLevels(2, 0, 2, 0)


def test_operations_refuse_to_break_the_invariants():
    held = sku(available=3, reserved=2)
    with pytest.raises(stock.InconsistentLevels):
        stock.deallocate(held, 3, at=AT, actor="a", order_id="o", reason="x")  # more than reserved
    with pytest.raises(stock.InconsistentLevels):
        stock.sell_allocated(held, 3, at=AT, actor="a", order_id="o")
    with pytest.raises(stock.InconsistentLevels):
        stock.return_sold(held, 1, at=AT, actor="a", order_id=None, reason="r")  # nothing sold
    with pytest.raises(InsufficientStock):
        stock.adjust(held, -4, at=AT, actor="a", reason="x")  # would eat reserved units
    with pytest.raises(InsufficientStock):
        stock.sell_unallocated(held, 4, at=AT, actor="a", order_id="o")
    for bad in (0, -1, True, 1.0):
        with pytest.raises(ValueError):
            stock.allocate(held, bad, at=AT, actor="a", order_id="o")  # type: ignore[arg-type]
    with pytest.raises(Unprocessable):
        stock.adjust(held, 0, at=AT, actor="a", reason="x")


OPERATIONS = st.lists(st.tuples(st.sampled_from(["allocate", "deallocate", "sell_allocated", "sell_unallocated",
                                                  "return_sold", "adjust"]), st.integers(-5, 5)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(OPERATIONS)
def test_any_sequence_keeps_levels_consistent_and_the_ledger_sums_to_the_levels(operations):
    current = sku(available=5)
    initial = current.levels
    deltas = []
    for name, n in operations:
        try:
            if name == "adjust":
                movement = stock.adjust(current, n, at=AT, actor="a", reason="x")
            elif name in ("deallocate", "return_sold"):
                movement = getattr(stock, name)(current, n, at=AT, actor="a", order_id="o", reason="x")
            else:
                movement = getattr(stock, name)(current, n, at=AT, actor="a", order_id="o")
        except (ValueError, InsufficientStock, stock.InconsistentLevels, Unprocessable):
            continue
        assert movement.seq == current.stock_seq + 1
        current = current.with_levels(movement.levels, movement.seq, AT)
        deltas.append(movement.delta)
        assert current.levels.is_consistent
    total = initial
    for delta in deltas:
        total = total + delta
    assert total == current.levels


def test_availability_and_threshold_events():
    assert sku(available=0).availability() == "sold_out"
    assert sku(available=2, low_stock_threshold=2).availability() == "low_stock"
    assert sku(available=3, low_stock_threshold=2).availability() == "in_stock"
    skus = {"TEE": sku(available=3, low_stock_threshold=2), "CAP": sku("CAP", available=1)}
    movements = [stock.allocate(skus["TEE"], 1, at=AT, actor="a", order_id="o"),
                 stock.allocate(skus["CAP"], 1, at=AT, actor="a", order_id="o")]
    assert stock_events(skus, movements) == [("stock.low", {"sku": "TEE", "available": 2}),
                                             ("stock.sold_out", {"sku": "CAP"})]


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


def test_selling_and_releasing_an_orders_lines():
    skus = {"TEE": sku(available=8, reserved=2)}
    sold = sell_order_lines(order(), skus, AT, "a")
    assert [m.levels for m in sold] == [StockLevels(8, 8, 0, 2)]
    late = sell_order_lines(order(S.EXPIRED), {"TEE": sku(available=10)}, AT, "a")  # reservation already released
    assert [m.levels for m in late] == [StockLevels(8, 8, 0, 2)]
    released = release_order_lines(order(), skus, AT, "a", "payment_window_expired")
    assert [(m.levels, m.reason) for m in released] == [(StockLevels(10, 10, 0, 0), "payment_window_expired")]
    with pytest.raises(StaleWrite):  # levels read before a concurrent change: re-read, never go negative
        release_order_lines(order(), {"TEE": sku(available=10)}, AT, "a", "x")


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
    refunded = replace(paid, refunds=({"lines": [{"sku": "CAP", "quantity": 1}]},))
    assert refunded.unshipped_units() == {"TEE": 3}


def test_catalog_checks_name_every_problem():
    skus = {"TEE": sku(available=1), "OLD": sku("OLD", active=False), "USD": replace(sku("USD"), price=Money(1, "USD")),
            "CAP": sku("CAP", max_per_order=2)}
    cases = [({"NOPE": 1}, Unprocessable, "unknown"), ({"OLD": 1}, Unprocessable, "inactive"),
             ({"TEE": 1, "USD": 1}, Unprocessable, "currencies"), ({"CAP": 3}, Unprocessable, "max_per_order"),
             ({"TEE": 2}, InsufficientStock, "shortages")]
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
