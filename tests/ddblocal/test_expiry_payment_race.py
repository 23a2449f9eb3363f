"""Expiry and payment of the same order, concurrently, 200 times, on DynamoDB Local: exactly one wins."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from shop.domain import clock
from shop.services import orders as order_service
from tests.ddblocal.test_contention import assert_ledger_matches, order, stock_up

pytestmark = pytest.mark.ddblocal
ROUNDS = 200


@pytest.mark.parametrize("shards, rounds", [(1, ROUNDS), (3, ROUNDS // 2)])
def test_expiry_and_payment_race(ddb_ports, monkeypatch, shards, rounds):
    stock_up(ddb_ports, ["RACE-1", "RACE-2"], on_hand=rounds * 2, shards=shards)
    placed = [order(ddb_ports, f"c{n}", f"k{n}", [("RACE-1", 1), ("RACE-2", 1)]) for n in range(rounds)]
    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() + timedelta(seconds=3600))  # every window is over

    outcomes = []

    errors = []

    def pay(order_id):
        try:
            outcomes.append(("paid", order_id, order_service.mark_paid(ddb_ports, order_id, actor="provider:t")))
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(repr(error))

    def expire(order_id):
        try:
            outcomes.append(("expired", order_id, order_service.expire_order(ddb_ports, order_id)))
        except Exception as error:  # noqa: BLE001
            errors.append(repr(error))

    for p in placed:
        racers = [threading.Thread(target=pay, args=(p.order_id,)),
                  threading.Thread(target=expire, args=(p.order_id,))]
        for t in racers:
            t.start()
        for t in racers:
            t.join()

    assert errors == []  # found: a stale order read once made the expiry crash instead of retrying
    entries, cursor = [], None
    while True:
        page, cursor = ddb_ports.store.ledger("RACE-1", 100, cursor)
        entries += page
        if not cursor:
            break
    history = {}
    for e in entries:
        if e.order_id:
            history.setdefault(e.order_id, []).append((e.reason, e.delta.reserved, e.delta.sold))
    payment_first = expiry_first = 0
    for p in placed:
        steps = sorted(history[p.order_id])  # entries of one millisecond may list in either order
        # The reservation ends exactly once: sold by the payment, or released by the expiry (after
        # which the late payment takes free stock, never the released reservation twice).
        if steps == sorted([("order_placed", 1, 0), ("order_paid", -1, 1)]):
            payment_first += 1
        else:
            assert steps == sorted([("order_placed", 1, 0), ("payment_window_expired", -1, 0), ("order_paid", 0, 1)]), \
                steps
            expiry_first += 1
        assert ddb_ports.store.get_order(p.order_id).status.value == "PAID"
    assert payment_first + expiry_first == rounds
    print(f"payment won {payment_first} times, expiry won {expiry_first} times")
    for code in ("RACE-1", "RACE-2"):
        sku = assert_ledger_matches(ddb_ports, code)
        assert (sku.levels.reserved, sku.levels.sold, sku.levels.available) == (0, rounds, rounds)
