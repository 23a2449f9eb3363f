"""Where money and stock are decided, the rules a customer or an operator depends on (found by `make mutate`:
each test here fails for a small change of the rule that the other tests let through)."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from shop.domain import refunds, stock
from shop.domain.errors import InsufficientStock, InvalidTransition, Unprocessable
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
    assert (once.version, once.updated_at) == (placed.version + 1, AT)  # one conditional write
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


# ---- refunds: how much, which units, which come back ----

def automatic(placed, amount, currency="EUR", key="auto"):
    """`placed` with a payment it refused given back (e.g. a second payment): not a refund of its own payment."""
    entry = refunds.new_entry(refunds.stable_id("auto", key), placed, refunds.RefundPlan(amount, {}, {}),
                              reason="second payment", at=AT, actor="provider:sandbox", provider="sandbox",
                              provider_payment_id="pay_2", captured=amount, currency=currency, automatic=True)
    return refunds.with_intent(placed, entry, at=AT, actor="provider:sandbox", reason="refunded",
                               received=amount if currency == placed.currency else 0)


def test_a_refund_by_lines_costs_their_price_and_may_bring_them_back():
    placed = paid(lines=(("TEE", 2), ("CAP", 1)))
    by_line = refunds.plan(placed, amount=None, lines=[("TEE", 1), ("CAP", 1)], restock=True, cancel=False)
    assert (by_line.amount, by_line.units, by_line.restocked) == (3998, {"TEE": 1, "CAP": 1}, {"TEE": 1, "CAP": 1})
    kept = refunds.plan(placed, amount=None, lines=[("TEE", 1)], restock=False, cancel=False)
    assert (kept.amount, kept.units, kept.restocked) == (1999, {"TEE": 1}, {})
    chosen = refunds.plan(placed, amount=500, lines=[("TEE", 1)], restock=False, cancel=False)
    assert (chosen.amount, chosen.units) == (500, {"TEE": 1})  # a price agreed with the customer
    whole = refunds.plan(placed, amount=None, lines=None, restock=False, cancel=False)
    assert (whole.amount, whole.units, whole.restocked) == (5997, {}, {})
    returned = refunds.plan(placed, amount=None, lines=None, restock=True, cancel=False)
    assert (returned.amount, returned.units, returned.restocked) == (5997, {"TEE": 2, "CAP": 1}, {"TEE": 2, "CAP": 1})


def test_units_refunded_once_cannot_be_refunded_or_restocked_again():
    once = refunded(paid(lines=(("TEE", 2), ("CAP", 1))), lines=[("TEE", 1)], restock=True)
    assert once.refunded_units() == {"TEE": 1} and refunds.restocked_units(once) == {"TEE": 1}
    with pytest.raises(Unprocessable) as over:
        refunds.plan(once, amount=None, lines=[("TEE", 2)], restock=False, cancel=False)
    assert over.value.extra["skus"] == [{"sku": "TEE", "requested": 2, "refundable": 1}]
    for bad in ([("HAT", 1)], [("TEE", -1)]):
        with pytest.raises(Unprocessable):
            refunds.plan(once, amount=None, lines=bad, restock=False, cancel=False)
    rest = refunds.plan(once, amount=None, lines=None, restock=True, cancel=False)  # the rest comes back
    assert (rest.units, rest.restocked) == ({"TEE": 1, "CAP": 1}, {"TEE": 1, "CAP": 1})
    last = refunds.plan(once, amount=None, lines=[("TEE", 1)], restock=True, cancel=False)
    assert last.restocked == {"TEE": 1}


def test_a_refund_by_amount_cannot_restock_and_an_unpaid_order_has_nothing_to_refund():
    with pytest.raises(Unprocessable):
        refunds.plan(paid(), amount=100, lines=None, restock=True, cancel=False)
    with pytest.raises(InvalidTransition):
        refunds.plan(order(), amount=100, lines=None, restock=False, cancel=False)
    for bad in (0, -5):
        with pytest.raises(Unprocessable):
            refunds.plan(paid(), amount=bad, lines=None, restock=False, cancel=False)
    assert refunds.plan(paid(), amount=3998, lines=None, restock=False, cancel=False).amount == 3998


def test_a_cancel_refunds_what_is_left_and_brings_back_every_unit_not_yet_back():
    placed = paid(lines=(("TEE", 2), ("CAP", 1)))
    plan = refunds.plan(placed, amount=None, lines=None, restock=False, cancel=True)
    assert (plan.amount, plan.units, plan.restocked) == (5997, {"TEE": 2, "CAP": 1}, {"TEE": 2, "CAP": 1})
    partly = refunded(placed, amount=None, lines=[("TEE", 1)], restock=True)
    rest = refunds.plan(partly, amount=None, lines=None, restock=False, cancel=True)
    assert (rest.amount, rest.units, rest.restocked) == (3998, {"TEE": 1, "CAP": 1}, {"TEE": 1, "CAP": 1})
    cancelled = refunded(placed, cancel=True)
    assert (cancelled.status, cancelled.payment_status, refunds.refundable(cancelled)) == (S.CANCELLED, "refunded", 0)
    all_back = refunded(placed, amount=None, lines=None, restock=False)  # refunded in full, units kept
    only_units = refunds.plan(all_back, amount=None, lines=None, restock=False, cancel=True)
    assert (only_units.amount, only_units.restocked) == (0, {"TEE": 2, "CAP": 1})
    held = paid(S.ON_HOLD)
    assert refunds.plan(held, amount=None, lines=None, restock=False, cancel=True).amount == 3998
    sent = placed.ship("shp_1", {"TEE": 1}, carrier=None, tracking_number=None, at=AT, actor="ops")
    for not_cancellable in (sent, paid(S.SHIPPED), replace(paid(), shipments=sent.shipments)):
        with pytest.raises(InvalidTransition):
            refunds.plan(not_cancellable, amount=None, lines=None, restock=False, cancel=True)


def test_a_refused_payment_given_back_is_not_a_refund_of_the_order():
    placed = paid()  # 39.98 EUR
    twice = automatic(placed, 3998)  # a second payment of the same amount, given back
    assert (twice.amount_paid, refunds.own_captured(twice), refunds.refundable(twice)) == (7996, 3998, 3998)
    assert (twice.status, twice.payment_status) == (S.PAID, "paid")  # the order's own payment is untouched
    elsewhere = automatic(placed, 500, currency="USD", key="usd")  # in another currency: not counted here
    assert (elsewhere.amount_paid, refunds.own_captured(elsewhere)) == (3998, 3998)
    own = refunded(twice, amount=1000)
    assert (refunds.own_refunded(own), refunds.refundable(own), own.payment_status) == (
        1000, 2998, "partially_refunded")


def test_a_refund_counts_as_refunded_once_the_provider_confirms_it():
    once = refunded(paid(), amount=1000)
    entry = refunds.pending(once)[0]
    assert once.amount_refunded == 0 and refunds.find(once, entry.refund_id) == entry
    failed = refunds.with_failed_attempt(once, entry.refund_id, error="x" * 500, at=AT)
    again = refunds.find(failed, entry.refund_id)
    assert again is not None and (again.pending, again.attempts, len(again.last_error or "")) == (True, 1, 200)
    assert failed.version == once.version + 1
    done = refunds.with_outcome(failed, entry.refund_id, provider_refund_id="re_1", at=AT)
    assert (done.amount_refunded, refunds.pending(done), done.version) == (1000, [], failed.version + 1)
    assert refunds.find(done, entry.refund_id).provider_refund_id == "re_1"  # type: ignore[union-attr]
    for late in (refunds.with_outcome(done, entry.refund_id, provider_refund_id="re_1", at=AT),
                 refunds.with_failed_attempt(done, entry.refund_id, error="late", at=AT),
                 refunds.with_outcome(done, "rf_unknown", provider_refund_id="re_2", at=AT),
                 refunds.with_failed_attempt(done, "rf_unknown", error="x", at=AT)):
        assert late == done  # confirmed once: counted once
    foreign = automatic(paid(), 500, currency="USD", key="usd")
    given_back = refunds.pending(foreign)[0]
    confirmed = refunds.with_outcome(foreign, given_back.refund_id, provider_refund_id="re_3", at=AT)
    assert confirmed.amount_refunded == 0 and not refunds.pending(confirmed)  # USD is not the order's money


def test_refund_ids_name_the_request():
    assert refunds.stable_id("ord_1", "k") == refunds.stable_id("ord_1", "k") != refunds.stable_id("ord_1", "j")
    assert re.fullmatch(r"rf_[0-9a-f]{24}", refunds.stable_id("ord_1", "k"))


# ---- the limits an order is placed within ----

def test_order_limits_are_inclusive():
    from shop.domain.orders import MAX_DISTINCT_SKUS_PER_ORDER, MAX_QUANTITY_PER_LINE, MAX_UNITS_PER_ORDER
    from shop.services.orders import merge_lines

    assert (MAX_QUANTITY_PER_LINE, MAX_DISTINCT_SKUS_PER_ORDER, MAX_UNITS_PER_ORDER) == (100, 40, 1000)

    assert merge_lines([("TEE", 100)]) == {"TEE": 100}  # 100 units of one SKU
    assert len(merge_lines([(f"S{i}", 1) for i in range(40)])) == 40  # 40 different SKUs
    assert sum(merge_lines([(f"S{i}", 100) for i in range(10)]).values()) == 1000  # 1000 units in all
    for too_much in ([("TEE", 101)], [(f"S{i}", 1) for i in range(41)], [(f"S{i}", 100) for i in range(10)] + [
            ("S10", 1)]):
        with pytest.raises(Unprocessable):
            merge_lines(too_much)


def test_a_request_may_ask_for_exactly_the_shop_window():
    from shop.domain.orders import payment_window_seconds

    assert payment_window_seconds(default=900, maximum=3600, requested=900) == 900
    assert payment_window_seconds(default=900, maximum=3600, requested=1, sku_windows=(0, 600)) == 1
    assert payment_window_seconds(default=900, maximum=3600, sku_windows=(0, None)) == 900  # 0: no window set


def test_cancelling_a_free_order_refunds_nothing_and_says_so():
    free = paid()
    free = replace(free, lines=tuple(replace(line, unit_price=Money(0, "EUR")) for line in free.lines), amount_paid=0)
    cancelled = refunded(free, cancel=True)
    assert (cancelled.status, cancelled.payment_status, cancelled.refunds[-1].amount) == (S.CANCELLED, "paid", 0)


def test_an_order_without_money_to_give_back_says_why():
    full = refunded(paid(), amount=None)
    for without_money, cancel in ((order(), False), (order(), True), (full, False)):
        with pytest.raises(InvalidTransition) as refused:
            refunds.plan(without_money, amount=None, lines=None, restock=False, cancel=cancel)
        assert refused.value.extra["payment_status"] == without_money.payment_status


def test_statuses_read_as_words_become_the_members():
    from shop.domain.statuses import FulfillmentStatus, PaymentStatus

    read = order(S.PAID, payment_status="refunded", fulfillment_status="partial")
    assert (read.payment_status, read.fulfillment_status) == (PaymentStatus.REFUNDED, FulfillmentStatus.PARTIAL)
    assert read.payment_status is PaymentStatus.REFUNDED and read.fulfillment_status is FulfillmentStatus.PARTIAL


# ---- SKU codes, shard bounds and stock levels ----

def test_sku_codes_are_1_to_64_safe_characters_starting_with_a_letter_or_digit():
    from shop.domain.skus import is_valid_sku_code

    for good in ("T", "TEE-1", "tee.red_XL", "9" + "a" * 63):
        assert is_valid_sku_code(good), good
    for bad in ("", "-TEE", ".TEE", "TEE 1", "TEE/1", "T" * 65, "TÉE", "TEE\n"):
        assert not is_valid_sku_code(bad), bad


def test_a_sku_spreads_over_1_to_64_shards():
    from pydantic import ValidationError

    from shop.domain.skus import MAX_STOCK_SHARDS
    from shop.http.schemas import SkuIn

    assert MAX_STOCK_SHARDS == 64
    body = {"name": "Tee", "price": {"amount": 1999, "currency": "EUR"}}
    assert SkuIn.model_validate(body).stock_shards == 1
    assert SkuIn.model_validate({**body, "stock_shards": 64}).stock_shards == 64
    for shards in (0, 65):
        with pytest.raises(ValidationError):
            SkuIn.model_validate({**body, "stock_shards": shards})


def test_a_new_sku_is_in_stock_on_one_shard_and_levels_are_consistent_only_when_they_add_up():
    from shop.domain.skus import Sku

    new = Sku(sku="TEE", name="Tee", price=Money(1999, "EUR"))
    assert (new.stock_shards, new.shard_items, new.stock_state) == (1, 1, "in_stock")
    assert StockLevels(5, 3, 2, 7).is_consistent and StockLevels().is_consistent
    assert not StockLevels(5, 3, 1, 0).is_consistent  # on_hand is not available + reserved
    assert not StockLevels(1, 2, -1, 0).is_consistent  # adds up, but a negative reservation
    assert not StockLevels(0, 0, 0, -1).is_consistent


# ---- refunds at their edges ----

def test_every_unit_of_a_line_may_be_refunded_and_a_refusal_says_how_many_are_left():
    placed = paid(lines=(("TEE", 2), ("CAP", 1)))
    whole_line = refunds.plan(placed, amount=None, lines=[("TEE", 2)], restock=True, cancel=False)
    assert (whole_line.amount, whole_line.units, whole_line.restocked) == (3998, {"TEE": 2}, {"TEE": 2})
    zero = refunds.plan(placed, amount=None, lines=[("TEE", 0), ("CAP", 1)], restock=False, cancel=False)
    assert (zero.amount, zero.units) == (1999, {"CAP": 1})  # a line of no units refunds nothing of it
    with pytest.raises(Unprocessable) as over:
        refunds.plan(placed, amount=None, lines=[("TEE", 3), ("HAT", 1)], restock=False, cancel=False)
    assert over.value.extra["skus"] == [{"sku": "TEE", "requested": 3, "refundable": 2},
                                        {"sku": "HAT", "requested": 1, "refundable": 0}]


def test_a_cancel_after_a_line_was_refunded_in_full_leaves_that_line_out():
    placed = paid(lines=(("TEE", 2), ("CAP", 1)))
    cap_back = refunded(placed, lines=[("CAP", 1)], restock=True)
    rest = refunds.plan(cap_back, amount=None, lines=None, restock=False, cancel=True)
    assert (rest.amount, rest.units, rest.restocked) == (3998, {"TEE": 2}, {"TEE": 2})


def test_the_last_minor_unit_can_be_refunded_and_then_nothing_is_left():
    placed = paid()  # 39.98 EUR
    one_cent_left = refunded(placed, amount=3997)
    assert refunds.refundable(one_cent_left) == 1 and one_cent_left.payment_status == "partially_refunded"
    last = refunds.plan(one_cent_left, amount=None, lines=None, restock=False, cancel=False)
    assert last.amount == 1
    assert refunds.plan(placed, amount=1, lines=None, restock=False, cancel=False).amount == 1
    all_gone = refunded(one_cent_left, amount=1, key="r2")
    assert all_gone.payment_status == "refunded"
    penny = replace(paid(), amount_paid=1)  # a payment of one minor unit, refunded in full
    assert refunded(penny, amount=1).payment_status == "refunded"


def test_a_paid_order_of_nothing_has_nothing_to_refund():
    free = paid()
    free = replace(free, lines=tuple(replace(line, unit_price=Money(0, "EUR")) for line in free.lines), amount_paid=0)
    for amount in (None, 1):
        with pytest.raises(InvalidTransition):  # 409 nothing left, not 422 a wrong amount
            refunds.plan(free, amount=amount, lines=None, restock=False, cancel=False)


def test_a_request_carries_at_most_50_lines_of_at_most_100_units():
    from pydantic import ValidationError

    from shop.domain.orders import MAX_LINES_PER_ORDER, MAX_QUANTITY_PER_LINE
    from shop.http.schemas import CreateOrderIn

    assert (MAX_LINES_PER_ORDER, MAX_QUANTITY_PER_LINE) == (50, 100)
    address = {"name": "A", "line1": "1 Road", "city": "Berlin", "postal_code": "10115", "country": "DE"}
    lines = [{"sku": f"S{i}", "quantity": 1} for i in range(50)]
    assert len(CreateOrderIn.model_validate({"items": lines, "shipping_address": address}).items) == 50
    assert CreateOrderIn.model_validate({"items": [{"sku": "T", "quantity": 100}], "shipping_address": address})
    for too_much in (lines + [{"sku": "S50", "quantity": 1}], [{"sku": "T", "quantity": 101}]):
        with pytest.raises(ValidationError):
            CreateOrderIn.model_validate({"items": too_much, "shipping_address": address})


# ---- parcels and history on the order ----

def test_a_parcel_update_replaces_that_parcel_only_in_a_new_version():
    from shop.domain.values import Shipment

    sent = paid(lines=(("TEE", 2),)).ship("shp_1", {"TEE": 1}, carrier="DHL", tracking_number="1", at=AT, actor="a")
    sent = sent.ship("shp_2", None, carrier="DHL", tracking_number="2", at=AT, actor="a")
    later = "2026-11-26T08:00:00.000Z"
    booked = replace(sent.shipments[1], tracking_number="JD0002")
    updated = sent.with_shipment(booked, at=later)
    assert updated.shipments == (sent.shipments[0], booked)
    assert (updated.version, updated.updated_at, updated.status) == (sent.version + 1, later, sent.status)
    assert sent.with_shipment(Shipment("shp_9", (), None, None, AT, "a"), at=later).shipments == sent.shipments


def test_a_retry_finds_its_own_transition_only():
    from shop.domain.orders import HistoryEntry

    paid_order = order().transition(S.PAID, at=AT, actor="provider:sandbox", reason="paid")
    assert paid_order.done_by(S.PAID, "provider:sandbox") and not paid_order.done_by(S.PAID, "provider:stripe")
    assert not paid_order.done_by(S.CANCELLED, "provider:sandbox")
    assert not order(S.PAID).done_by(S.PAID, "provider:sandbox")  # PAID, but no history says who made it so
    cancelled = paid_order.transition(S.CANCELLED, at=AT, actor="customer:alice", reason="changed my mind")
    assert not cancelled.done_by(S.PAID, "provider:sandbox")  # it was, but it is not PAID any more
    assert cancelled.last_transition_to(S.PAID) == paid_order.history[-1]
    assert cancelled.last_transition_to(S.EXPIRED) is None
    twice = replace(cancelled, history=cancelled.history + (HistoryEntry(AT, "x", "A", "PAID", "again"),))
    assert twice.last_transition_to(S.PAID).reason == "again"  # type: ignore[union-attr]  # the latest


def test_refund_ids_keep_their_parts_apart():
    assert refunds.stable_id("ord_1", "k1") != refunds.stable_id("ord_1k", "1")


# ---- shards: where an order takes its units, how stock is evened out ----

def test_an_order_takes_a_whole_line_from_one_live_shard_when_one_holds_it():
    import random

    from shop.domain import shards

    rng = random.Random(3)
    # Exactly enough on one shard: that shard alone; shard 2 is retired (2 live shards), so never chosen while a
    # live one can give it all.
    assert {tuple(shards.plan_take("T", 4, {0: 4, 1: 3, 2: 9}, 2, rng)) for _ in range(50)} == {((0, 4),)}
    assert {tuple(shards.plan_take("T", 2, {0: 4, 1: 3, 2: 9}, 2, rng)) for _ in range(100)} == {((0, 2),), ((1, 2),)}
    assert shards.plan_take("T", 5, {0: 4, 1: 3, 2: 9}, 2, rng) == [(2, 5)]  # only the retired one can
    assert {shards.pick_shard(0, rng) for _ in range(20)} == {0}  # no live shard known: the first


def test_an_order_split_over_shards_takes_the_fullest_first_and_every_last_unit():
    from shop.domain import shards

    assert shards.plan_take("T", 6, {2: 2, 0: 2, 1: 2}, 3) == [(0, 2), (1, 2), (2, 2)]  # all of it, equal: by shard
    assert shards.plan_take("T", 5, {0: 2, 1: 3, 2: 2}, 3) == [(1, 3), (0, 2)]
    assert shards.plan_take("T", 2, {0: -1, 1: 1, 2: 1}, 3) == [(1, 1), (2, 1)]  # a negative level gives nothing
    with pytest.raises(InsufficientStock) as short:
        shards.plan_take("T", 3, {0: -5, 1: 1, 2: 1}, 3)
    assert short.value.extra["shortages"] == [{"sku": "T", "requested": 3, "available": 2}]
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError):
            shards.plan_take("T", bad, {0: 5}, 1)  # type: ignore[arg-type]


def test_a_rebalance_plan_is_exact_gives_the_remainder_to_the_first_shards_and_empties_retired_ones():
    from shop.domain import shards

    # 17 units over 3 live shards: 6, 6, 5; retired shard 3 gives all it has, the fullest giver first.
    assert shards.plan_rebalance({0: 0, 1: 10, 2: 2, 3: 5}, 3) == [(3, 0, 5), (1, 0, 1), (1, 2, 3)]
    assert shards.plan_rebalance({0: 0, 1: 0, 2: 7}, 3) == [(2, 0, 3), (2, 1, 2)]
    assert shards.plan_rebalance({0: 1, 1: 4}, 0) == [(1, 0, 4)]  # no live count: everything on shard 0
    assert shards.plan_rebalance({0: -2, 1: 4}, 2) == [(1, 0, 2)]  # a negative level counts as none
    assert shards.plan_rebalance({0: 3, 1: 3, 2: 0}, 2) == []  # even already, the retired shard empty


def test_a_seeded_pick_repeats_and_an_unseeded_one_stays_in_range():
    import random

    from shop.domain import shards

    first = [shards.pick_shard(8, random.Random(5)) for _ in range(20)]
    assert first == [shards.pick_shard(8, random.Random(5)) for _ in range(20)]
    sequence = random.Random(11)
    picks = [shards.plan_take("T", 1, {0: 3, 1: 3, 2: 3}, 3, sequence)[0][0] for _ in range(20)]
    again = random.Random(11)
    assert picks == [shards.plan_take("T", 1, {0: 3, 1: 3, 2: 3}, 3, again)[0][0] for _ in range(20)]
    assert {shards.pick_shard(4) for _ in range(100)} <= {0, 1, 2, 3}
    assert shards.plan_take("T", 1, {0: 3}, 1) == [(0, 1)]


def test_rebalance_moves_exactly_what_each_shard_lacks_from_the_fullest_givers():
    from shop.domain import shards

    # 7 units from a retired shard over 3 empty live ones: 3, 2, 2 (the remainder to the first).
    assert shards.plan_rebalance({0: 0, 1: 0, 2: 0, 3: 7}, 3) == [(3, 0, 3), (3, 1, 2), (3, 2, 2)]
    # A single unit to move; a live shard missing from the levels read holds nothing.
    assert shards.plan_rebalance({0: 0, 1: 2}, 2) == [(1, 0, 1)]
    assert shards.plan_rebalance({1: 2}, 2) == [(1, 0, 1)]
    assert shards.plan_rebalance({1: 6}, 3) == [(1, 0, 2), (1, 2, 2)]
    # An empty retired shard gives nothing, whatever order the levels come in.
    assert shards.plan_rebalance({2: 0, 0: 0, 1: 1}, 2) == [(1, 0, 1)]
    # The fullest giver first; the neediest taker first; a filled taker takes no more.
    assert shards.plan_rebalance({0: 0, 1: 10, 2: 2, 3: 3}, 3) == [(1, 0, 5), (3, 2, 3)]
    assert shards.plan_rebalance({0: 3, 1: 4, 2: 0, 3: 5}, 3) == [(3, 2, 4), (3, 0, 1)]
    assert shards.plan_rebalance({0: 0, 1: 0, 2: 2, 3: 2}, 2) == [(2, 0, 2), (3, 1, 2)]


def test_a_line_split_over_warehouses_takes_every_unit_of_each_in_turn():
    from shop.domain.shards import plan_take_ranked

    # The nearest warehouse (1) holds only 1 unit: it gives it, the next gives the rest.
    assert plan_take_ranked("T", 6, {0: 5, 64: 1}, (1, 0), 1) == [(64, 1), (0, 5)]
    # Everything taken before the last warehouse: nothing asked of it.
    assert plan_take_ranked("T", 10, {0: 5, 64: 3, 128: 4, 192: 1}, (1, 2, 0), 1) == [(64, 3), (128, 4), (0, 3)]
    # A warehouse whose items hold nothing cannot serve the line.
    assert plan_take_ranked("T", 1, {0: 0, 64: 2}, (0, 1), 1) == [(64, 1)]
    assert plan_take_ranked("T", 1, {0: 1}, (0,), 1) == [(0, 1)]
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError):
            plan_take_ranked("T", bad, {0: 5}, (0,), 1)  # type: ignore[arg-type]
        with pytest.raises(ValueError):  # even with no stock anywhere to try
            plan_take_ranked("T", bad, {}, (), 1)  # type: ignore[arg-type]


def test_a_ledger_entry_as_recorded():
    adjusted = stock.adjust("TEE", 2, 5, at=AT, actor="admin:ops", reason="delivery")
    entry = stock.adjust("TEE", 2, 5, at=AT, actor="admin:ops", reason="delivery", reference="import-7")
    assert adjusted.reference is None
    adjusted = entry
    assert entry.to_dict() == {"sku": "TEE", "shard": 2, "at": AT, "actor": "admin:ops", "reason": "delivery",
                               "order_id": None, "delta": {"on_hand": 5, "available": 5, "reserved": 0, "sold": 0},
                               "movement_id": adjusted.movement_id, "reference": "import-7"}


def test_a_refund_is_found_by_its_id_and_lines_with_an_agreed_amount_may_come_back():
    placed = paid(lines=(("TEE", 2), ("CAP", 1)))
    twice = refunded(refunded(placed, amount=100, key="a"), amount=200, key="b")
    first, second = twice.refunds
    assert refunds.find(twice, second.refund_id) is second and refunds.find(twice, first.refund_id) is first
    assert refunds.find(twice, "rf_other") is None
    agreed = refunds.plan(placed, amount=500, lines=[("TEE", 1)], restock=True, cancel=False)
    assert (agreed.amount, agreed.units, agreed.restocked) == (500, {"TEE": 1}, {"TEE": 1})
    with pytest.raises(Unprocessable):  # a negative line is refused even beside a good one
        refunds.plan(placed, amount=None, lines=[("TEE", -1), ("CAP", 1)], restock=False, cancel=False)
