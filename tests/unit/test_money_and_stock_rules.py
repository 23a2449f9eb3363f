"""Where money and stock are decided, the rules a customer or an operator depends on (found by `make mutate`:
each test here fails for a small change of the rule that the other tests let through)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shop.domain import refunds, stock
from shop.domain.errors import InvalidTransition, Unprocessable
from shop.domain.ids import new_order_number
from shop.domain.money import Money
from shop.domain.orders import OrderStatus
from shop.domain.skus import StockLevels
from shop.services.inventory import release_order_lines, sell_reserved_lines
from tests.unit.test_domain import AT, order

S = OrderStatus


def paid(status=S.PAID, lines=(("TEE", 2),), **extra):
    """An order that took its payment (2 x 19.99 EUR by default), its units on shard 0."""
    placed = order(status, lines, payment_status="paid", **extra)
    placed = replace(placed, amount_paid=placed.total.amount, provider_payment_id="pay_1")
    return placed.with_allocations({line.sku: [(0, line.quantity)] for line in placed.lines})


def refunded(placed, amount=None, lines=None, restock=False, cancel=False, key="r1"):
    """`placed` with a refund recorded as the refund saga records it (the provider not called yet)."""
    plan = refunds.plan(placed, amount=amount, lines=lines, restock=restock, cancel=cancel)
    entry = refunds.new_entry(refunds.stable_id(placed.order_id, key), placed, plan, reason="r", at=AT, actor="ops",
                              provider="sandbox", provider_payment_id="pay_1", captured=placed.amount_paid)
    return refunds.with_intent(placed, entry, at=AT, actor="ops", reason="r", cancel=cancel)


# ---- a paid order held for review holds sold units, not a reservation ----

def test_a_paid_order_on_hold_has_sold_its_units_and_releases_none():
    held = paid(S.ON_HOLD)
    assert held.reserved_quantities() == {}
    assert release_order_lines(held, AT, "ops", "cancelled_by_operator") == []  # sold units stay sold
    assert sell_reserved_lines(held, AT, "ops") == []  # and are not sold twice on approval
    assert held.unpaid_holdings() == (0, {})  # nor counted against the customer's unpaid caps


def test_an_unpaid_order_on_hold_keeps_its_reservation_until_decided():
    held = order(S.ON_HOLD).with_allocations({"TEE": [(0, 2)]})  # held for a wrong amount
    assert held.reserved_quantities() == {"TEE": 2}
    assert held.unpaid_holdings() == (1, {"TEE": 2})
    assert [m.delta.reserved for m in release_order_lines(held, AT, "ops", "x")] == [-2]
    assert order(S.PENDING_PAYMENT).unpaid_holdings() == (1, {"TEE": 2})


@pytest.mark.parametrize("status", [S.CANCELLED, S.EXPIRED, S.PAID, S.SHIPPED])
def test_orders_that_are_not_open_hold_nothing_against_the_caps(status):
    assert order(status).unpaid_holdings() == (0, {})


# ---- shipping never sends more than was ordered ----

def test_a_fully_shipped_sku_cannot_ship_again():
    two_skus = paid(lines=(("TEE", 2), ("CAP", 1)))
    tees_sent = two_skus.ship("shp_1", {"TEE": 2}, carrier=None, tracking_number=None, at=AT, actor="ops")
    assert tees_sent.unshipped_units() == {"CAP": 1}
    for extra in ({"TEE": 1}, {"TEE": 1, "CAP": 1}):
        with pytest.raises(InvalidTransition):
            tees_sent.ship("shp_2", extra, carrier=None, tracking_number=None, at=AT, actor="ops")
    done = tees_sent.ship("shp_3", {"CAP": 1}, carrier="DHL", tracking_number="T3", at=AT, actor="ops")
    assert (done.status, done.fulfillment_status) == (S.SHIPPED, "fulfilled")
    with pytest.raises(InvalidTransition):
        done.ship("shp_4", None, carrier=None, tracking_number=None, at=AT, actor="ops")


def test_the_last_units_of_every_sku_complete_the_shipment():
    placed = paid(lines=(("TEE", 2), ("CAP", 1)))
    partial = placed.ship("shp_1", {"TEE": 2}, carrier=None, tracking_number=None, at=AT, actor="ops")
    assert (partial.status, partial.fulfillment_status) == (S.PARTIALLY_SHIPPED, "partial")
    exact = placed.ship("shp_1", {"TEE": 2, "CAP": 1}, carrier=None, tracking_number=None, at=AT, actor="ops")
    assert (exact.status, exact.fulfillment_status, exact.unshipped_units()) == (S.SHIPPED, "fulfilled", {})
    parcel = exact.shipments[-1]
    assert (parcel.shipment_id, parcel.units()) == ("shp_1", {"TEE": 2, "CAP": 1})
    assert exact.history[-1].reason == "shipment shp_1" and exact.version == placed.version + 1


# ---- what may still be refunded ----

def test_what_is_left_to_refund_is_what_was_paid_less_what_was_refunded():
    placed = paid()  # 39.98 EUR paid
    once = refunded(placed, amount=1000)
    assert refunds.refundable(once) == 2998 and once.payment_status == "partially_refunded"
    with pytest.raises(Unprocessable) as too_much:
        refunds.plan(once, amount=2999, lines=None, restock=False, cancel=False)
    assert too_much.value.extra["refundable"] == 2998
    rest = refunded(once, amount=2998, key="r2")
    assert refunds.refundable(rest) == 0 and rest.payment_status == "refunded"
    with pytest.raises(InvalidTransition):
        refunds.plan(rest, amount=1, lines=None, restock=False, cancel=False)


def test_an_empty_parcel_is_refused_and_a_short_one_says_what_is_left():
    placed = paid(lines=(("TEE", 2), ("CAP", 1)))
    with pytest.raises(InvalidTransition):
        placed.ship("shp_0", {}, carrier=None, tracking_number=None, at=AT, actor="ops")
    sent = placed.ship("shp_1", {"TEE": 2}, carrier=None, tracking_number=None, at=AT, actor="ops")
    with pytest.raises(InvalidTransition) as short:
        sent.ship("shp_2", {"TEE": 1, "CAP": 2}, carrier=None, tracking_number=None, at=AT, actor="ops")
    assert short.value.extra["skus"] == [{"sku": "TEE", "requested": 1, "unshipped": 0},
                                         {"sku": "CAP", "requested": 2, "unshipped": 1}]


# ---- stock movements, as the ledger records them ----

def test_a_rebalance_moves_available_units_only():
    out, into = stock.move("TEE", 0, 3, 4, at=AT, actor="ops")
    assert [(m.shard, m.delta, m.reason, m.order_id) for m in (out, into)] == [
        (0, StockLevels(-4, -4, 0, 0), "rebalance", None), (3, StockLevels(4, 4, 0, 0), "rebalance", None)]


def test_the_ledger_says_why_stock_moved():
    reasons = [stock.allocate("T", 0, 1, at=AT, actor="a", order_id="o").reason,
               stock.sell_allocated("T", 0, 1, at=AT, actor="a", order_id="o").reason,
               stock.sell_unallocated("T", 0, 1, at=AT, actor="a", order_id="o").reason]
    assert reasons == ["order_placed", "order_paid", "order_paid"]
    entry = stock.adjust("T", 2, -3, at=AT, actor="admin:ops", reason="shrinkage").to_dict()
    assert {k: entry[k] for k in ("sku", "shard", "at", "actor", "reason", "order_id", "delta")} == {
        "sku": "T", "shard": 2, "at": AT, "actor": "admin:ops", "reason": "shrinkage", "order_id": None,
        "delta": {"on_hand": -3, "available": -3, "reserved": 0, "sold": 0}}
    assert len({stock.adjust("T", 0, 1, at=AT, actor="a", reason="r").to_dict()["movement_id"] for _ in range(50)}) \
        == 50


@pytest.mark.parametrize("delta", [True, False, 1.5, "3", None])
def test_an_adjustment_is_a_whole_number_of_units(delta):
    with pytest.raises(Unprocessable):
        stock.adjust("T", 0, delta, at=AT, actor="a", reason="r")  # type: ignore[arg-type]


# ---- money and order numbers ----

@pytest.mark.parametrize("code", ["EURO", "EU", "eur", "E1R", "", "€UR"])
def test_money_is_in_an_iso_4217_code(code):
    with pytest.raises(ValueError):
        Money(100, code)


def test_order_numbers_use_the_whole_readable_alphabet_for_the_customer_part():
    parts = "".join(new_order_number(f"customer-{n}", AT).split("-")[1] for n in range(300))
    assert set(parts) == set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")  # never I, L, O or U
