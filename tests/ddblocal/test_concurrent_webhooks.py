"""The same payment webhook delivered 20 times at once (DynamoDB Local): exactly one effect."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from shop.domain.money import Money
from shop.payments.base import PaymentEvent
from shop.payments.sandbox import SandboxProvider
from shop.services.payments import process_payment_event
from shop.services.risk import RiskRules
from tests.ddblocal.test_contention import assert_ledger_matches, order, stock_up

pytestmark = pytest.mark.ddblocal
NO_RISK = RiskRules(large_amount=10**12, max_large_payments=99, window_seconds=1)


def test_concurrent_duplicate_webhooks_have_one_effect(ddb_ports):
    stock_up(ddb_ports, ["HOOK-1"], on_hand=10)
    placed = order(ddb_ports, "alice", "k", [("HOOK-1", 3)])
    event = PaymentEvent("sandbox", "evt-dup", "payment_succeeded", placed.order_id, Money(4500, "USD"), "pay-1")
    with ThreadPoolExecutor(20) as pool:
        outcomes = Counter(pool.map(lambda _: process_payment_event(ddb_ports, SandboxProvider(), event, NO_RISK),
                                    range(20)))
    assert outcomes["paid"] == 1 and outcomes["duplicate"] == 19, outcomes
    sku = assert_ledger_matches(ddb_ports, "HOOK-1")
    assert (sku.levels.sold, sku.levels.reserved, sku.levels.available) == (3, 0, 7)
    # A different event for the same payment (a provider sending two event types) is recorded, not applied.
    again = PaymentEvent("sandbox", "evt-other", "payment_succeeded", placed.order_id, Money(4500, "USD"), "pay-1")
    assert process_payment_event(ddb_ports, SandboxProvider(), again, NO_RISK) == "already_paid"
    # A second, different payment for the same order is refunded, never kept.
    second = PaymentEvent("sandbox", "evt-second", "payment_succeeded", placed.order_id, Money(4500, "USD"), "pay-2")
    assert process_payment_event(ddb_ports, SandboxProvider(), second, NO_RISK) == "refunded"
    assert assert_ledger_matches(ddb_ports, "HOOK-1").levels.sold == 3
