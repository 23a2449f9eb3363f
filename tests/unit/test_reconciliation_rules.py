"""Reconciliation's classification at its edges: what each difference says to an operator, which day reports a
record, what counts as our payment, and the rows that must not match (each test pins a rule that `make mutate`
showed the broader tests in test_reconciliation.py let through)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

import pytest

from shop.domain import reconciliation as rc
from shop.domain.money import Money
from shop.domain.orders import HistoryEntry, OrderStatus
from shop.domain.reconciliation import Difference, StatementRow
from shop.domain.values import HeldPayment
from tests.unit.test_reconciliation import (
    ALIPAY_DAY,
    DAY,
    NOON,
    categories,
    classify,
    order,
    pay_row,
    refund,
    refund_row,
)


def only(outcome) -> Difference:
    assert len(outcome.differences) == 1, outcome.differences
    return outcome.differences[0]


# ---- dates and days --------------------------------------------------------------------------------------------

def test_a_business_date_is_yyyy_mm_dd_and_nothing_else():
    assert rc.parse_date("2026-03-01") == DAY
    for bad in ("2026-W09-7", "2026-03-1 ", None, 20260301):  # an ISO week date is not a business date
        with pytest.raises(ValueError):
            rc.parse_date(bad)  # type: ignore[arg-type]


def test_each_record_is_reported_by_exactly_one_day_with_the_default_grace_of_15_minutes():
    """Alipay's 1 March ends at 16:00 UTC; with the default grace the day answers for [16:15 the day before,
    16:15): a record at 16:15:00 belongs to 2 March, one at 16:14:59.999 to 1 March."""
    def missing(at, day=ALIPAY_DAY):
        placed = order("o", paid_at=at)
        records = rc.records_of(placed)
        outcome = rc.reconcile(rc.Statement("alipay", day.date, ()), day, records, {"o": rc.order_facts(placed)})
        return [d.category for d in outcome.differences]

    assert missing("2026-03-01T16:14:59.999Z") == ["missing_at_provider"]
    assert missing("2026-03-01T16:15:00.000Z") == []
    assert missing("2026-02-28T16:15:00.000Z") == ["missing_at_provider"]  # the first instant of the window
    assert missing("2026-02-28T16:14:59.999Z") == []  # the day before answers for it


def test_without_grace_the_window_is_the_calendar_day_start_included_end_excluded():
    start, end = "2026-02-28T16:00:00.000Z", "2026-03-01T16:00:00.000Z"
    assert categories(classify([], [order("s", paid_at=start)], grace=timedelta(0))) == [
        ("missing_at_provider", "payment", "s")]
    assert classify([], [order("e", paid_at=end)], grace=timedelta(0)).differences == []


# ---- our records -----------------------------------------------------------------------------------------------

def test_a_payment_is_dated_by_the_providers_own_transition():
    approved_first = HistoryEntry("2026-03-01T01:00:00.000Z", "admin:ops", "ON_HOLD", "PAID", "approved")
    provider_cancel = HistoryEntry("2026-03-01T02:00:00.000Z", "provider:alipay", "PENDING_PAYMENT", "CANCELLED", "x")
    provider_paid = HistoryEntry("2026-03-01T03:00:00.000Z", "provider:alipay", "PENDING_PAYMENT", "PAID", "paid")
    placed = replace(order("o"), history=(approved_first, provider_cancel, provider_paid))
    assert [r.at for r in rc.records_of(placed)] == ["2026-03-01T03:00:00.000Z"]
    held = replace(order("h"), history=(HistoryEntry(NOON, "provider:alipay", "PENDING_PAYMENT", "ON_HOLD", "held"),),
                   updated_at="2026-03-02T00:00:00.000Z")
    assert [r.at for r in rc.records_of(held)] == [NOON]
    unknown = replace(order("u"), history=(), updated_at="2026-03-02T00:00:00.000Z")
    assert [r.at for r in rc.records_of(unknown)] == ["2026-03-02T00:00:00.000Z"]  # no provider entry: last change


def test_a_refused_payment_is_recorded_once_with_what_it_took_and_who_took_it():
    given_back = replace(refund("rf_a", 1000, payment="pi_x", automatic=True, captured=1200,
                                at="2026-03-01T05:00:00.000Z"), provider="stripe")
    again = replace(refund("rf_b", 1000, payment="pi_x", automatic=True, at="2026-03-01T06:00:00.000Z"), provider=None)
    no_reference = replace(refund("rf_c", 500, payment=None, automatic=True), provider=None)
    records = rc.records_of(order("o", paid=3500, refunds=[given_back, again, no_reference]))  # 1000 its own
    payments = [(r.provider, r.reference, r.amount, r.at) for r in records if r.kind == rc.PAYMENT]
    assert payments == [("stripe", "pi_x", 1200, "2026-03-01T05:00:00.000Z"), ("alipay", "T-o", 1000, NOON)]
    own_provider = replace(refund("rf_d", 700, payment="T-2", automatic=True), provider=None, captured=None)
    first = rc.records_of(order("p", refunds=[own_provider]))[0]
    assert (first.provider, first.reference, first.amount) == ("alipay", "T-2", 700)  # the order's provider


def test_our_own_payment_is_recorded_only_when_it_took_something():
    assert [(r.reference, r.amount) for r in rc.records_of(order("o", paid=1))] == [("T-o", 1)]
    # Its only payment was refused and given back in full: nothing of the order's own remains.
    given_back = refund("rf_a", 1000, payment="T-o", automatic=True)
    records = rc.records_of(order("o", refunds=[given_back]))
    assert [(r.kind, r.reference, r.amount) for r in records] == [("payment", "T-o", 1000), ("refund", None, 1000)]
    assert rc.records_of(order("n", paid=0)) == []
    assert rc.records_of(replace(order("x", payment=None), amount_paid=1000)) == []  # no reference: nothing to match
    # Held for a wrong amount and rejected while its refund is pending: one payment, the one that arrived.
    held = order("h", OrderStatus.ON_HOLD, paid=0, held=HeldPayment(Money(1350, "CNY"), "T-h"),
                 refunds=[refund("rf_h", 1350, payment="T-h", automatic=True, status="pending",
                                 at="2026-03-01T07:00:00.000Z")])
    payments = [(r.reference, r.amount, r.at) for r in rc.records_of(held) if r.kind == rc.PAYMENT]
    assert payments == [("T-h", 1350, "2026-03-01T07:00:00.000Z")]


def test_refund_records_skip_cancels_without_money_and_date_by_completion():
    nothing = refund("rf_0", 0)  # a cancel after everything was refunded: only units came back
    done = replace(refund("rf_1", 300, provider_refund_id="2026r"), provider=None,
                   completed_at="2026-03-01T09:00:00.000Z")
    elsewhere = replace(refund("rf_2", 100), provider="wechatpay")
    records = [r for r in rc.records_of(order("o", refunds=[nothing, done, elsewhere])) if r.kind == rc.REFUND]
    assert [(r.provider, r.reference, r.merchant_reference, r.at) for r in records] == [
        ("alipay", "2026r", "rf_1", "2026-03-01T09:00:00.000Z"), ("wechatpay", None, "rf_2", NOON)]


def test_order_facts_name_the_payments_only():
    facts = rc.order_facts(order("o", refunds=[refund("rf_1", 300, provider_refund_id="T-o"),
                                               refund("rf_2", 100, provider_refund_id="re_9")]))
    assert facts == rc.OrderFacts("o", OrderStatus.PAID, "alipay", ("T-o",))
    assert rc.order_facts(order("n", payment=None)).payment_references == ()


# ---- matching --------------------------------------------------------------------------------------------------

def test_an_alipay_refund_carries_the_trade_number_and_still_matches_as_a_refund():
    """Alipay's refund answer names the trade (trade_no), so a refund's reference is its payment's."""
    placed = order("o", refunds=[refund("rf_1", 300, payment="T-o", provider_refund_id="T-o")])
    rows = [pay_row("T-o", "o"), StatementRow(rc.REFUND, "T-o", 300, "CNY", rc.SUCCEEDED, NOON, "o",
                                              merchant_reference="rf_1")]
    outcome = classify(rows, [placed])
    assert (outcome.matched, outcome.differences) == (2, [])
    # A refund made in Alipay's dashboard names the same trade but none of our refunds: it is not our payment.
    dashboard = StatementRow(rc.REFUND, "T-o", 200, "CNY", rc.SUCCEEDED, NOON, "o", merchant_reference="2026dash")
    outcome = classify([pay_row("T-o", "o"), dashboard], [order("o")])
    assert outcome.matched == 1 and categories(outcome) == [("missing_here", "refund", "o")]
    paid_the_day_before = order("o", paid_at="2026-02-28T04:00:00.000Z")  # its payment is in that day's file
    alone = classify([dashboard], [paid_the_day_before])
    assert (alone.matched, categories(alone)) == (0, [("missing_here", "refund", "o")])


def test_only_this_providers_records_are_compared():
    elsewhere = order("s", provider="stripe", payment="pi_1")
    assert classify([], [elsewhere]).differences == []


def test_a_row_listed_twice_matches_once():
    twice = classify([pay_row("T-o", "o"), pay_row("T-o", "o", at="2026-03-01T05:00:00.000Z")], [order("o")])
    assert twice.matched == 1 and categories(twice) == [("duplicate_charge", "payment", "o")]
    assert twice.differences[0].detail == "a further payment for an order that records another payment"
    placed = order("o", refunds=[refund("rf_1", 300, payment="T-o")])
    refund_twice = classify([pay_row("T-o", "o"), refund_row("rf_1", "o", 300),
                             refund_row("rf_1", "o", 300, at="2026-03-01T05:00:00.000Z")], [placed])
    assert refund_twice.matched == 2 and categories(refund_twice) == [("missing_here", "refund", "o")]


def test_failed_rows_are_no_money():
    rows = [pay_row("T-o", "o"), StatementRow(rc.PAYMENT, "T-f", 500, "CNY", rc.FAILED, NOON, "o"),
            StatementRow(rc.REFUND, "rf_x", 70, "CNY", rc.FAILED, NOON, "o", merchant_reference="rf_x"),
            refund_row("rf_y", "o", 30)]
    outcome = classify(rows, [order("o")])
    assert outcome.totals["payments"] == {"count": 1, "totals": {"CNY": 1000}}
    assert outcome.totals["refunds"] == {"count": 1, "totals": {"CNY": 30}}
    assert categories(outcome) == [("missing_here", "refund", "o")]  # the succeeded one; the failed: nothing
    assert (outcome.other_rows, rc.Outcome("alipay", DAY).other_rows) == (0, 0)


def test_a_second_payment_is_a_duplicate_even_when_the_first_went_through_another_provider():
    paid_by_card = order("o", provider="stripe", payment="pi_1")
    difference = only(classify([pay_row("T-2", "o")], [paid_by_card]))
    assert (difference.category, difference.reference, difference.order_status) == ("duplicate_charge", "T-2", "PAID")
    assert difference.detail == "a further payment for an order that records pi_1"
    late = classify([pay_row("T-1", "c"), pay_row("T-2", "c", at="2026-03-01T05:00:00.000Z")],
                    [order("c", OrderStatus.CANCELLED, payment=None)])
    assert [d.detail for d in late.differences] == [
        "late payment: the provider took it, the order is CANCELLED and records no payment or refund of it",
        "a further payment for an order that records another payment"]


# ---- what an operator reads ------------------------------------------------------------------------------------

def test_each_difference_says_what_differs():
    currency = only(classify([pay_row("T-o", "o", currency="USD")], [order("o")]))
    assert currency.detail == "currency differs: provider 1000 USD, ours 1000 CNY"
    amount = only(classify([pay_row("T-o", "o", amount=999)], [order("o")]))
    assert amount.detail == "amount differs: provider 999 CNY, ours 1000 CNY"
    pending = order("o", refunds=[refund("rf_1", 300, status="pending", payment="T-o")])
    still = only(classify([pay_row("T-o", "o"), refund_row("rf_1", "o", 300)], [pending]))
    assert (still.category, still.detail) == (
        "status_differs", "the provider refunded; our refund is still pending (the sweeper finishes it)")
    waiting = only(classify([StatementRow(rc.PAYMENT, "T-o", 1000, "CNY", rc.PENDING, NOON, "o")], [order("o")]))
    assert (waiting.category, waiting.detail) == ("status_differs", "provider says pending, ours is succeeded")
    failed = only(classify([pay_row("T-o", "o"), StatementRow(rc.REFUND, "r", 300, "CNY", rc.FAILED, NOON, "o",
                                                              merchant_reference="rf_1")], [pending]))
    assert (failed.category, failed.detail) == ("status_differs", "provider says failed, ours is pending")
    done = order("o", refunds=[refund("rf_1", 300, payment="T-o")])
    reversed_later = only(classify([pay_row("T-o", "o"), refund_row("rf_1", "o", 300),
                                    refund_row("rf_1", "o", 300, at="2026-03-01T05:00:00.000Z", status=rc.FAILED)],
                                   [done]))
    assert (reversed_later.category, reversed_later.detail) == (
        "status_differs", "the provider reports this refund failed; the money went back to our balance")
    assert rc.reconcile(rc.Statement("alipay", DAY, (refund_row("rf_z", "o", 1, status=rc.FAILED),)), ALIPAY_DAY,
                        [], {}).differences == []  # a failed refund we know nothing of: no money moved


def test_a_difference_names_the_order_from_the_row_else_from_our_record():
    no_order_on_row = only(classify([pay_row("T-o", None, amount=999)], [order("o")]))
    assert no_order_on_row.order_id == "o"
    named = only(classify([pay_row("T-o", "ord_on_row", amount=999)], [order("o")]))
    assert named.order_id == "ord_on_row"
    pending = order("o", refunds=[refund("rf_1", 300, status="pending", payment="T-o")])
    status = only(classify([pay_row("T-o", "o"), StatementRow(rc.REFUND, "r", 300, "CNY", rc.SUCCEEDED, NOON,
                                                              None, merchant_reference="rf_1")], [pending]))
    assert (status.category, status.order_id) == ("status_differs", "o")
    on_row = only(classify([pay_row("T-o", "o"), StatementRow(rc.REFUND, "r", 300, "CNY", rc.SUCCEEDED, NOON,
                                                              "ord_on_row", merchant_reference="rf_1")], [pending]))
    assert (on_row.category, on_row.order_id) == ("status_differs", "ord_on_row")


def test_money_we_cannot_place_says_whether_the_order_exists():
    outside = only(classify([pay_row("T-o", "o"), refund_row("rf_dash", "o", 50)], [order("o")]))
    assert (outside.detail, outside.order_status) == (
        "a refund at the provider that no order records (made outside the shop?)", "PAID")
    stranger = only(classify([refund_row("rf_x", "ord_nobody", 50)], []))
    assert (stranger.detail, stranger.order_status) == ("a refund at the provider for an order we do not have", None)
    nameless = only(classify([pay_row("T-x", None)], []))
    assert nameless.detail == "money at the provider without an order id"
    unknown = only(classify([pay_row("T-y", "ord_nobody")], []))
    assert unknown.detail == "money at the provider for an order we do not have (ord_nobody)"


def test_missing_at_the_provider_names_our_refund_and_the_orders_status():
    gone = order("o", refunds=[refund("rf_1", 300, payment="T-o")])
    difference = only(classify([pay_row("T-o", "o")], [gone]))
    assert (difference.category, difference.kind, difference.reference, difference.order_status) == (
        "missing_at_provider", "refund", "rf_1", "PAID")
    assert difference.detail == "our refund (succeeded) is not in the provider's statement"
    confirmed = order("o", refunds=[refund("rf_1", 300, payment="T-o", provider_refund_id="2026r")])
    assert only(classify([pay_row("T-o", "o")], [confirmed])).reference == "2026r"
    records = rc.records_of(order("o"))
    without_facts = rc.reconcile(rc.Statement("alipay", DAY, ()), ALIPAY_DAY, records, {})
    assert only(without_facts).order_status is None


def test_a_difference_as_stored_and_sent():
    row = replace(pay_row("T-o", "o", amount=999), note="交易")
    difference = only(classify([row], [order("o")]))
    assert difference.to_dict("alipay", DAY) == {
        "mismatch_id": difference.mismatch_id("alipay", DAY), "category": "amount_differs", "kind": "payment",
        "order_id": "o", "reference": "T-o", "detail": "amount differs: provider 999 CNY, ours 1000 CNY",
        "late_payment": False, "order_status": "PAID",
        "provider": {"amount": {"amount": 999, "currency": "CNY"}, "status": "succeeded", "at": NOON,
                     "reference": "T-o", "type": "交易"},
        "ours": {"amount": {"amount": 1000, "currency": "CNY"}, "status": "succeeded", "at": NOON,
                 "reference": "T-o", "refund_id": None}}
    plain = only(classify([pay_row("T-o", "o", amount=999)], [order("o")]))
    assert plain.to_dict("alipay", DAY)["provider"]["type"] == "payment"  # no provider wording: the kind
    gone = only(classify([], [order("g", refunds=[])]))
    shown = gone.to_dict("alipay", DAY)
    assert shown["provider"] is None and shown["ours"]["reference"] == "T-g"
    refunded = order("o", refunds=[refund("rf_1", 300, payment="T-o")])
    assert only(classify([pay_row("T-o", "o")], [refunded])).to_dict("alipay", DAY)["ours"]["refund_id"] == "rf_1"


def test_mismatch_ids_tell_apart_every_part():
    base = Difference("duplicate_charge", "payment", "T-1", "o1", "x")
    ids = {d.mismatch_id("alipay", DAY) for d in (
        base, replace(base, reference="T-2"), replace(base, order_id="o2"), replace(base, reference=None),
        replace(base, reference="T-1o", order_id="1"), replace(base, category="status_differs"))}
    assert len(ids) == 6
    assert all(re.fullmatch(r"mm_[0-9a-f]{24}", i) for i in ids)
    assert replace(base, order_id=None).mismatch_id("alipay", DAY) != replace(base, order_id="").mismatch_id(
        "stripe", DAY)
