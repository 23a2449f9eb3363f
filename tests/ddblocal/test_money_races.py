"""Issue 10, the table of races: each case as a regression test that forces the interleaving.

The first operation reads the order and is paused right before it commits (see
`money_checks.GatedStore`); the racing operation runs to completion meanwhile; then the first one
goes on with the version it read. Whatever it does next (re-read and re-check, hand over to the
refunding cancel, refuse) must leave the order, the providers' books and the stock consistent.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from shop.domain import clock
from shop.domain.errors import DomainError, Unprocessable
from shop.domain.orders import OrderStatus
from shop.payments.base import ProviderError
from shop.services import fulfilment, payments
from shop.services.orders import expire_order
from tests.ddblocal.money_checks import (
    NO_RISK,
    Books,
    GatedStore,
    QueuedRestocks,
    Webhook,
    complete_pending,
    deliver_restocks,
    money_violations,
    pay,
    place,
    race,
    refunded_total,
    restocked_units,
    run_in_thread,
    stock_up,
    stock_violations,
    succeeded_total,
    wait_until_paused,
)

pytestmark = pytest.mark.ddblocal


class Shop:
    """A gated store on a fresh table, the providers' books and the restock queue."""

    def __init__(self, ports, fakes, monkeypatch):
        self.real = ports.store
        self.gate = GatedStore(self.real)
        ports.store = self.gate
        self.ports = ports
        self.books = Books(fakes, self.real, monkeypatch)
        self.queue = QueuedRestocks()
        ports.restock_queue = self.queue
        self.codes: list[str] = []

    def sku(self, code, on_hand, policy="reserve_on_order"):
        stock_up(self.ports, code, on_hand, policy)
        self.codes.append(code)

    def order(self, customer, key, items, provider, window_seconds=900):
        return place(self.ports, customer, key, items, provider, window_seconds).order_id

    def paid_order(self, customer, key, items, provider):
        order_id = self.order(customer, key, items, provider)
        _, outcome = pay(self.ports, self.books, order_id)
        assert outcome == "paid", outcome
        return order_id

    def get(self, order_id):
        return self.real.get_order(order_id)

    def settle(self, order_ids):
        """What the sweeper and the restock consumer do afterwards: finish pending refunds, apply restocks."""
        for order_id in order_ids:
            complete_pending(self.ports, self.books, order_id)
        deliver_restocks(self.ports, self.queue)

    def check(self, order_ids):
        orders = [self.get(o) for o in order_ids]
        problems = [p for o in orders for p in money_violations(o, self.books, final=True)]
        problems += stock_violations(self.real, self.codes, orders)
        assert problems == [], "\n".join(problems)
        return orders


@pytest.fixture
def shop(ddb_ports, provider_fakes, monkeypatch):
    return Shop(ddb_ports, provider_fakes, monkeypatch)


def refund(shop, order_id, key, *, amount=None, lines=None, restock=False, actor="admin:ops"):
    order = shop.get(order_id)
    return payments.refund_order(shop.ports, shop.books.provider(order.payment_provider), order_id, amount=amount,
                                 lines=lines, restock=restock, reason="operator refund", key=key, actor=actor)


def cancel(shop, order_id, customer="alice"):
    return payments.cancel(shop.ports, shop.books.provider_for, order_id, actor=f"customer:{customer}",
                           reason="cancelled_by_customer", customer_id=customer)


def ship(shop, order_id, key="ship-1"):
    return fulfilment.ship_order(shop.ports, order_id, units=None, carrier=None, tracking_number=None, key=key,
                                 actor="admin:warehouse")


def allowed(box):
    """An operation may lose a race with a domain answer (409/422/503) or a provider error, nothing else."""
    error = box.get("error")
    assert error is None or isinstance(error, (DomainError, ProviderError)), repr(error)
    return error is None


# ---------------------------------------------------------------------------------------------
# cancel races payment


@pytest.mark.parametrize("provider", ["sandbox", "stripe"])
@pytest.mark.parametrize("first", ["cancel_first", "payment_first"])
def test_cancel_racing_payment_never_keeps_money_without_goods(shop, provider, first):
    """The owner cancels while the provider's signed payment webhook arrives.

    cancel_first: the cancel read the unpaid order and is paused; the payment settles; the cancel
    commits on the stale version. Seen: PAID -> CANCELLED with the money kept and the unit sold.
    payment_first: the payment read the unpaid order and is paused; the cancel commits; the payment
    must be refunded automatically, visibly on the order (seen: only in the webhook record).
    """
    shop.sku("RACE-P", 5)
    order_id = shop.order("alice", "k1", [("RACE-P", 2)], provider)
    webhook = Webhook(shop.books, provider, order_id, shop.get(order_id).total)
    pay_it = lambda: webhook.deliver(shop.ports, NO_RISK)  # noqa: E731
    cancel_it = lambda: cancel(shop, order_id)  # noqa: E731
    shop.gate.order_id = order_id
    if first == "cancel_first":
        cancelled, paid = race(shop.gate, cancel_it, pay_it)
    else:
        paid, cancelled = race(shop.gate, pay_it, cancel_it)
    assert allowed(paid), paid
    allowed(cancelled)
    shop.settle([order_id])
    order, = shop.check([order_id])
    assert order.amount_paid == order.total.amount  # the payment is on the order, whatever else happened
    if order.status is OrderStatus.CANCELLED:
        assert succeeded_total(order) == order.amount_paid == shop.books.refunded(order_id)
        assert shop.real.get_sku("RACE-P").levels.to_dict() == {"on_hand": 5, "available": 5, "reserved": 0,
                                                                 "sold": 0}
    else:
        assert order.status is OrderStatus.PAID and "error" in cancelled
        assert shop.books.refunded(order_id) == 0 and not order.refunds
        assert shop.real.get_sku("RACE-P").levels.sold == 2


# ---------------------------------------------------------------------------------------------
# cancel races shipment


@pytest.mark.parametrize("first", ["cancel_first", "ship_first"])
def test_cancel_racing_shipment_either_ships_or_refunds_never_both(shop, first):
    """Owner cancel + operator shipment of a paid Stripe order. Seen: cancel 409, shipment 201, order
    SHIPPED with no refund on record, while Stripe had already refunded the full amount."""
    shop.sku("RACE-S", 5)
    order_id = shop.paid_order("alice", "k1", [("RACE-S", 2)], "stripe")
    shop.gate.order_id = order_id
    if first == "cancel_first":
        cancelled, shipped = race(shop.gate, lambda: cancel(shop, order_id), lambda: ship(shop, order_id))
    else:
        shipped, cancelled = race(shop.gate, lambda: ship(shop, order_id), lambda: cancel(shop, order_id))
    shop.settle([order_id])
    order, = shop.check([order_id])
    assert allowed(cancelled) != allowed(shipped), (cancelled, shipped)  # exactly one wins
    if order.status is OrderStatus.SHIPPED:
        assert shop.books.refunded(order_id) == 0, "goods shipped and the money returned"
        assert not order.refunds and "error" in cancelled
    else:
        assert order.status is OrderStatus.CANCELLED and not order.shipments
        assert shop.books.refunded(order_id) == succeeded_total(order) == order.amount_paid


# ---------------------------------------------------------------------------------------------
# concurrent full refunds


@pytest.mark.parametrize("provider", ["sandbox", "stripe"])
def test_four_concurrent_full_refunds_refund_the_payment_once(shop, provider):
    """4 operator refunds `{}` (amount None, lines None) with different Idempotency-Keys, each paused right
    before its commit until all four have read the same version. Seen: 4 x 201 and 4x the payment
    refunded through the sandbox."""
    shop.sku("RACE-R", 5)
    order_id = shop.paid_order("alice", "k1", [("RACE-R", 2)], provider)  # 39.98
    shop.gate.order_id, shop.gate.holders = order_id, 4
    started = [run_in_thread(lambda n=n: refund(shop, order_id, f"op-{n}"), shop.gate) for n in range(4)]
    threads = [t for t, _ in started]
    all_paused = wait_until_paused(shop.gate, threads)
    shop.gate.release.set()
    for t in threads:
        t.join(60)
    outcomes = [box for _, box in started]
    assert all_paused, f"not all four refunds reached their commit together: {outcomes}"
    wins = [box for box in outcomes if allowed(box)]
    shop.settle([order_id])
    order, = shop.check([order_id])
    assert refunded_total(order) == order.amount_paid == 3998
    assert shop.books.refunded(order_id) == 3998, f"providers refunded {shop.books.refunded(order_id)} of 3998"
    assert len(wins) == 1, outcomes


# ---------------------------------------------------------------------------------------------
# cancel races a restocking refund


@pytest.mark.parametrize("provider", ["sandbox", "stripe"])
@pytest.mark.parametrize("first", ["refund_first", "cancel_first"])
def test_cancel_racing_restocking_refund_restocks_each_unit_once(shop, provider, first):
    """Owner cancel + operator refund `{"restock": true}` of the same paid 2-unit order, while another
    buyer holds 2 sold units of the SKU. Seen: both succeed, 4 units restocked: `sold` falls below what
    the other buyer holds and 2 phantom units go back on sale."""
    shop.sku("RACE-X", 6)
    order_id = shop.paid_order("alice", "k1", [("RACE-X", 2)], provider)
    other = shop.paid_order("bob", "k2", [("RACE-X", 2)], provider)
    shop.gate.order_id = order_id
    refund_it = lambda: refund(shop, order_id, "op-1", restock=True)  # noqa: E731
    cancel_it = lambda: cancel(shop, order_id)  # noqa: E731
    if first == "refund_first":
        refunded, cancelled = race(shop.gate, refund_it, cancel_it)
    else:
        cancelled, refunded = race(shop.gate, cancel_it, refund_it)
    allowed(refunded), allowed(cancelled)
    shop.settle([order_id, other])
    order, _ = shop.check([order_id, other])
    assert restocked_units(order)["RACE-X"] == 2
    assert succeeded_total(order) == order.amount_paid == shop.books.refunded(order_id) == 3998
    levels = shop.real.get_sku("RACE-X").levels
    assert (levels.sold, levels.available, levels.on_hand) == (2, 4, 4), levels  # bob's 2 units stay sold


# ---------------------------------------------------------------------------------------------
# two partial line refunds with restock


def test_two_line_refunds_with_restock_take_back_at_most_the_units_ordered(shop):
    """2 x `{"lines": [{"sku", "quantity": 2}], "amount": 1 cent, "restock": true}` on a 2-unit Stripe order.
    Seen: both 201, 4 units restocked for a 2-unit order."""
    shop.sku("RACE-L", 5)
    order_id = shop.paid_order("alice", "k1", [("RACE-L", 2)], "stripe")
    shop.gate.order_id = order_id
    first, second = race(shop.gate,
                         lambda: refund(shop, order_id, "line-1", amount=1, lines=[("RACE-L", 2)], restock=True),
                         lambda: refund(shop, order_id, "line-2", amount=1, lines=[("RACE-L", 2)], restock=True))
    assert allowed(second), second
    assert not allowed(first), "both line refunds of the same 2 units succeeded"
    shop.settle([order_id])
    order, = shop.check([order_id])
    assert restocked_units(order)["RACE-L"] == 2 and succeeded_total(order) == 1
    assert shop.books.refunded(order_id) == 1
    assert shop.real.get_sku("RACE-L").levels.to_dict() == {"on_hand": 5, "available": 5, "reserved": 0, "sold": 0}


# ---------------------------------------------------------------------------------------------
# refund requests: what comes back must be said


def test_refund_by_amount_with_restock_and_no_lines_is_422(shop):
    """`{"amount": 1, "restock": true}`: seen restocking every unit of the order, which then could not
    ship. Which units come back must be said (lines): 422, nothing changes, the order still ships."""
    shop.sku("RACE-A", 5)
    order_id = shop.paid_order("alice", "k1", [("RACE-A", 2)], "stripe")
    before = shop.get(order_id)
    with pytest.raises(Unprocessable):
        refund(shop, order_id, "amt-1", amount=1, restock=True)
    after = shop.get(order_id)
    assert after.refunds == () and after.amount_refunded == 0 and after.version == before.version
    assert shop.books.refunded(order_id) == 0 and shop.books.calls_for(order_id) == []
    assert shop.queue.messages == []
    shipped, created = ship(shop, order_id)
    assert created and shipped.status is OrderStatus.SHIPPED
    shop.settle([order_id])
    shop.check([order_id])


def test_refund_by_lines_restocks_exactly_those_lines(shop):
    shop.sku("RACE-B1", 5)
    shop.sku("RACE-B2", 5)
    order_id = shop.paid_order("alice", "k1", [("RACE-B1", 2), ("RACE-B2", 1)], "stripe")
    updated = refund(shop, order_id, "lines-1", lines=[("RACE-B1", 1)], restock=True)
    shop.settle([order_id])
    order, = shop.check([order_id])
    assert dict(restocked_units(order)) == {"RACE-B1": 1}
    assert updated.amount_refunded in (0, 1999) and succeeded_total(order) == 1999 == shop.books.refunded(order_id)
    assert shop.real.get_sku("RACE-B1").levels.sold == 1 and shop.real.get_sku("RACE-B2").levels.sold == 1
    shipped, _ = ship(shop, order_id)  # what was not refunded still ships
    assert shipped.shipments[-1].units() == {"RACE-B1": 1, "RACE-B2": 1}


# ---------------------------------------------------------------------------------------------
# retried cancels, automatic refunds on the order


@pytest.mark.parametrize("paid", [False, True])
def test_a_cancel_retried_after_it_succeeded_answers_the_cancelled_order(shop, paid):
    shop.sku("RACE-C", 5)
    order_id = (shop.paid_order if paid else shop.order)("alice", "k1", [("RACE-C", 1)], "sandbox")
    first = cancel(shop, order_id)
    again = cancel(shop, order_id)  # the client's answer was lost: it retries
    assert first.status is again.status is OrderStatus.CANCELLED
    shop.settle([order_id])
    shop.check([order_id])


@pytest.mark.parametrize("case", ["after_cancel", "after_expiry_sold_out", "second_payment",
                                  "deduct_on_payment_sold_out", "wrong_provider"])
def test_every_automatic_refund_is_on_the_order(shop, case, monkeypatch):
    """A payment that cannot become a sale is refunded automatically, and the order shows it: amount_paid
    counts it, a refund entry marked automatic, amount_refunded once it succeeded."""
    policy = "deduct_on_payment" if case == "deduct_on_payment_sold_out" else "reserve_on_order"
    shop.sku("AUTO-1", 2, policy)
    order_id = shop.order("alice", "k1", [("AUTO-1", 2)], "stripe", window_seconds=0)
    if case == "after_cancel":
        cancel(shop, order_id)
    elif case == "after_expiry_sold_out":
        real_now = clock.now
        monkeypatch.setattr(clock, "now", lambda: real_now() + timedelta(seconds=5))
        assert expire_order(shop.ports, order_id).status is OrderStatus.EXPIRED
        shop.paid_order("bob", "k2", [("AUTO-1", 2)], "stripe")  # the released units are sold to someone else
    elif case == "second_payment":
        pay(shop.ports, shop.books, order_id)
    elif case == "deduct_on_payment_sold_out":
        shop.paid_order("bob", "k2", [("AUTO-1", 2)], "stripe")
    _, outcome = pay(shop.ports, shop.books, order_id, provider="alipay" if case == "wrong_provider" else None)
    shop.settle([order_id])
    order = shop.get(order_id)
    automatic = [e for e in order.refunds if e.automatic]
    assert len(automatic) == 1, (outcome, order.refunds)
    assert automatic[0].amount == order.total.amount
    assert order.amount_paid == shop.books.taken[order_id], "the refused payment is not counted on the order"
    shop.check([order_id])


def test_a_held_payment_notified_again_is_not_refunded_twice(ddb_ports, provider_fakes):
    """A wrong-amount payment holds the order; the provider notifies the same payment again under a new event
    id; the operator rejects: the payment is refunded once, by the reject."""
    from localrun.fake_providers import signed_webhook
    from shop.domain.money import Money
    from shop.payments.registry import PROVIDERS
    from shop.services import catalog, payments
    from shop.services.risk import RiskRules
    from tests.ddblocal.test_contention import order as place

    catalog.upsert_sku(ddb_ports, "HELD", catalog.SkuDetails(name="H", price=Money(1999, "USD"), on_hand=3),
                       actor="admin:t")
    placed = place(ddb_ports, "alice", "k1", [("HELD", 1)])
    ddb_ports.restock_queue = type("Q", (), {"request_restock": lambda *a: None})()
    no_risk = RiskRules(large_amount=10**12, max_large_payments=99, window_seconds=1)
    provider = PROVIDERS["sandbox"]
    for event_id in ("evt-a", "evt-b"):  # one payment (same payment id), two notifications
        headers, body = signed_webhook(provider_fakes.keys, "sandbox", placed.order_id, Money(2000, "USD"),
                                       event_id=event_id, payment_id="pay-held")
        payments.process_payment_event(ddb_ports, provider, provider.parse_webhook(dict(headers), body), no_risk)
    held = ddb_ports.store.get_order(placed.order_id)
    assert held.status.value == "ON_HOLD" and held.refunds == ()
    rejected = payments.reject_held(ddb_ports, provider, placed.order_id, actor="admin:ops")
    assert [(r.amount, r.status) for r in rejected.refunds] == [(2000, "succeeded")]
    assert rejected.amount_paid == rejected.amount_refunded == 2000


def test_finishing_a_reject_refunds_each_payment_through_the_provider_that_took_it(ddb_ports, provider_fakes,
                                                                                   monkeypatch):
    """An order held for a wrong amount also got a payment through another provider, whose automatic refund is
    still pending; the reject finishes every pending refund: each through its own provider, never the order's."""
    from localrun.fake_providers import signed_webhook
    from shop.domain.money import Money
    from shop.payments.base import ProviderError
    from shop.payments.registry import PROVIDERS
    from shop.services import catalog, payments
    from shop.services.risk import RiskRules
    from tests.ddblocal.test_contention import order as place

    catalog.upsert_sku(ddb_ports, "TWO", catalog.SkuDetails(name="T", price=Money(1999, "USD"), on_hand=3),
                       actor="admin:t")
    placed = place(ddb_ports, "alice", "k1", [("TWO", 1)])  # the order chose sandbox
    no_risk = RiskRules(large_amount=10**12, max_large_payments=99, window_seconds=1)
    calls = []
    for name in ("sandbox", "stripe"):
        real = type(PROVIDERS[name]).refund.__get__(PROVIDERS[name])

        def refund(real=real, name=name, **kw):
            calls.append((name, kw["provider_payment_id"]))
            if name == "stripe" and len(calls) == 1:
                raise ProviderError("stripe is down for a moment")
            if name == "stripe":
                from shop.payments.base import RefundResult
                return RefundResult(kw["refund_id"], "re_x", "succeeded")
            return real(**kw)
        monkeypatch.setattr(PROVIDERS[name], "refund", refund, raising=False)
    stripe_headers, stripe_body = signed_webhook(provider_fakes.keys, "stripe", placed.order_id, Money(1999, "USD"),
                                                 event_id="evt_stripe", payment_id="pi_other")
    sandbox_headers, sandbox_body = signed_webhook(provider_fakes.keys, "sandbox", placed.order_id,
                                                   Money(2000, "USD"), event_id="evt_held", payment_id="pay_held")
    for name, headers, body in (("stripe", stripe_headers, stripe_body), ("sandbox", sandbox_headers, sandbox_body)):
        provider = PROVIDERS[name]
        payments.process_payment_event(ddb_ports, provider, provider.parse_webhook(dict(headers), body), no_risk)
    rejected = payments.reject_held(ddb_ports, PROVIDERS["sandbox"], placed.order_id, actor="admin:ops")
    assert all(r.status == "succeeded" for r in rejected.refunds) and len(rejected.refunds) == 2
    assert ("sandbox", "pi_other") not in calls  # the Stripe payment never refunded through the sandbox
    assert [c for c in calls if c[1] == "pi_other"] == [("stripe", "pi_other")] * 2  # failed once, then done
