"""After-sales under concurrency on DynamoDB Local: racing decisions, concurrent refunds, redelivered restocks.

The race tests force the interleaving: every racer reads the request and its order, then waits at a barrier
right before its commit, so all commit on the same versions; the conditional writes must let exactly one win
and make the others re-read, re-check and refuse.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest

from shop.domain.after_sales import AfterSaleStatus, AfterSaleType, Windows
from shop.domain.errors import DomainError, InvalidTransition
from shop.services import after_sales, fulfilment, refunds
from shop.services.ports import Commit, Ports
from tests.services_contract import PRICE, Shop

pytestmark = pytest.mark.ddblocal
WINDOWS = Windows()


class BarrierStore:
    """The real store, but each racer's first commit waits until every racer has reached its own commit."""

    def __init__(self, real: Any, parties: int):
        self.real = real
        self.barrier = threading.Barrier(parties, timeout=10)
        self.waited: set[int] = set()

    def commit(self, commit: Commit) -> None:
        me = threading.get_ident()
        if me not in self.waited:
            self.waited.add(me)
            try:
                self.barrier.wait()
            except threading.BrokenBarrierError:
                pass  # a racer failed before committing: go on alone
        self.real.commit(commit)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@pytest.fixture
def shop(ddb_ports: Ports, monkeypatch: pytest.MonkeyPatch) -> Shop:
    return Shop(ddb_ports.store, monkeypatch)


def shipped_order(shop: Shop, units: int) -> str:
    shop.sku("A", 50)
    order_id = shop.paid_order([("A", units)])
    fulfilment.ship_order(shop.ports, order_id, units=None, carrier=None, tracking_number=None, key="all",
                          actor="admin:ops")
    return order_id


def open_request(shop: Shop, order_id: str, units: int, key: str,
                 kind: AfterSaleType = AfterSaleType.REFUND_ONLY) -> str:
    request = after_sales.NewRequest(kind=kind, lines={"A": units}, reason="broken", photo_types=[])
    return after_sales.open_request(shop.ports, order_id, customer_id="cus_1", key=key, request=request,
                                    windows=WINDOWS).sale.after_sale_id


def race(shop: Shop, *calls: Any) -> list[Any]:
    """Run the calls at once, each committing only when all have read; their results or DomainErrors."""
    real = shop.ports.store
    shop.ports.store = BarrierStore(real, len(calls))
    results: list[Any] = [None] * len(calls)

    def run(n: int) -> None:
        try:
            results[n] = calls[n]()
        except DomainError as error:
            results[n] = error

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    shop.ports.store = real
    return results


def test_racing_approve_and_reject_exactly_one_wins(shop: Shop) -> None:
    order_id = shipped_order(shop, 6)
    for round_ in range(3):
        sale_id = open_request(shop, order_id, 1, key=f"race-{round_}")
        approve = lambda i=sale_id: after_sales.approve(shop.ports, shop.provider_for, i, actor="admin:ann")  # noqa: E731
        reject = lambda i=sale_id: after_sales.reject(shop.ports, i, actor="admin:bob", reason="no")  # noqa: E731
        results = race(shop, approve, reject) if round_ % 2 == 0 else race(shop, reject, approve)
        won = [r for r in results if not isinstance(r, DomainError)]
        lost = [r for r in results if isinstance(r, DomainError)]
        assert len(won) == 1 and len(lost) == 1 and isinstance(lost[0], InvalidTransition), results
        winner, _ = won[0]
        stored = shop.store.get_after_sale(sale_id)
        assert stored.status is winner.status and stored.version == 2  # one transition, one write
        assert [h["to"] for h in stored.history] == ["requested", winner.status.value]
    order = shop.order(order_id)
    approved = [s for s in order.after_sales if s["status"] == "approved"]
    assert order.open_after_sales == 0 and len(order.after_sales) == 3
    assert shop.provider.refunded() == order.amount_refunded == PRICE * len(approved)
    assert len([e for e in shop.events.of("after_sale.approved")]) == len(approved)
    assert len(shop.events.of("after_sale.rejected")) == 3 - len(approved)


def test_concurrent_approvals_and_an_operator_refund_never_refund_more_than_was_paid(shop: Shop) -> None:
    """Refund only for 2 + 2 + 1 of 5 units, approved at once while an operator refunds 5000 of the order:
    the pending refunds are counted on the version each commits on, so refunded <= paid holds whatever wins."""
    order_id = shipped_order(shop, 5)
    ids = [open_request(shop, order_id, units, key=f"k{units}{n}") for n, units in enumerate((2, 2, 1))]
    provider = shop.provider
    calls = [lambda i=i: after_sales.approve(shop.ports, shop.provider_for, i, actor="admin:ops") for i in ids]
    calls.append(lambda: refunds.refund_order(shop.ports, provider, order_id, amount=5000, lines=None, restock=False,
                                              reason="goodwill", key="op-1", actor="admin:ops"))
    results = race(shop, *calls)
    order = shop.order(order_id)
    paid = 5 * PRICE
    assert order.amount_paid == paid
    own = [r for r in order.refunds if not r.automatic]
    assert all(r.status == "succeeded" for r in own)  # nothing left pending
    assert sum(r.amount for r in own) == order.amount_refunded == provider.refunded() <= paid
    assert len(provider.refunds) == len(own)  # each refund reached the provider once (by its id)
    approved = [r for r in results[:3] if not isinstance(r, DomainError)]
    refused = [r for r in results[:3] if isinstance(r, DomainError)]
    assert len(approved) + len(refused) == 3 and all(e.status in (409, 422) for e in refused)
    for sale, _ in approved:  # each approval's refund is on the order, tagged with its request
        entry = next(r for r in own if r.refund_id == sale.refund_id)
        assert entry.after_sale_id == sale.after_sale_id
    statuses = Counter(s["status"] for s in order.after_sales)
    assert statuses["approved"] == len(approved) and statuses["requested"] == len(refused)
    assert order.open_after_sales == statuses["requested"]


def test_racing_receipts_refund_and_restock_once_and_redelivery_changes_nothing(shop: Shop) -> None:
    order_id = shipped_order(shop, 3)
    sale_id = open_request(shop, order_id, 2, key="ret", kind=AfterSaleType.RETURN_AND_REFUND)
    after_sales.approve(shop.ports, shop.provider_for, sale_id, actor="admin:ops")
    before = shop.levels("A")
    receive = lambda: after_sales.receive(shop.ports, shop.provider_for, sale_id, actor="admin:ops")  # noqa: E731
    results = race(shop, receive, receive)
    assert all(not isinstance(r, DomainError) for r in results), results  # the retry answers the same result
    assert {r[0].status for r in results} == {AfterSaleStatus.RECEIVED}
    assert shop.restocks.sent >= 2  # each call (re)sent the return's restock message
    assert shop.restocks.deliver(shop.ports, twice=True) == 1  # SQS may deliver each copy twice: applied once
    after = shop.levels("A")
    assert (after.available - before.available, before.sold - after.sold) == (2, 2)
    assert shop.ledger_matches_levels("A")
    order = shop.order(order_id)
    assert order.amount_refunded == shop.provider.refunded() == 2 * PRICE and order.open_after_sales == 0
    assert len(shop.events.of("after_sale.received")) == 1
