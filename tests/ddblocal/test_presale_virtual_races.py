"""Presale pools and virtual caps under concurrency on DynamoDB Local (issue 16).

- A virtual cap crossed by concurrent orders at midnight: orders race on both sides of the shop's midnight
  (Asia/Shanghai); each day's item sells exactly its cap, never more, and an order of the first day cancelled
  after midnight gives its unit back to the first day, not the second.
- Concurrent payments of presale orders on a small pool: exactly the pool is sold, the rest refused, spot stock
  untouched; every item's ledger sums to its levels.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from shop.domain import clock
from shop.domain.errors import InsufficientStock
from shop.domain.money import Money
from shop.domain.orders import OrderStatus
from shop.domain.presale import PresaleTerms
from shop.domain.virtual import VirtualTerms, day_item, local_day
from shop.services import catalog, pools
from shop.services.orders import (
    OrderPolicy,
    OrderRequest,
    PlaceOrder,
    end_reservation,
    mark_paid,
    place_order,
    request_fingerprint,
)
from tests.ddblocal.test_contention import ADDRESS, assert_ledger_matches

pytestmark = pytest.mark.ddblocal
ZONE = "Asia/Shanghai"
MIDNIGHT = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)  # 00:00 on 1 December in Shanghai
DAILY_CAP = 7
ATTEMPTS_PER_DAY = 30


def place(ports, key, items, presale=frozenset()):
    request = OrderRequest(items=items, shipping_address=ADDRESS, payment_provider="sandbox", presale=presale)
    return place_order(ports, PlaceOrder(f"c-{key}", key, request, request_fingerprint({"items": items, "k": key})),
                       OrderPolicy(900, 3600, time_zone=ZONE), lambda o: {})


def day_ledger(ports, code, item):
    entries, cursor = [], None
    while True:
        page, cursor = ports.store.ledger(code, 100, cursor, items=[item])
        entries += page
        if not cursor:
            return entries


def test_a_virtual_cap_crossed_by_concurrent_orders_at_midnight_sells_exactly_the_cap_each_day(ddb_ports,
                                                                                                 monkeypatch):
    catalog.upsert_sku(ddb_ports, "CARD", catalog.SkuDetails(name="Top-up", price=Money(1000, "CNY")), actor="admin:t")
    pools.set_virtual(ddb_ports, "CARD", VirtualTerms(daily_cap=DAILY_CAP), actor="admin:t", time_zone=ZONE)
    local = threading.local()  # each order's own clock: just before or just after the shop's midnight
    monkeypatch.setattr(clock, "now", lambda: getattr(local, "now", MIDNIGHT))
    before, after = MIDNIGHT - timedelta(milliseconds=5), MIDNIGHT + timedelta(milliseconds=5)
    days = {before: local_day(before, ZONE), after: local_day(after, ZONE)}
    assert days[before] != days[after]
    plans = [(f"k{n}", before if n % 2 else after) for n in range(2 * ATTEMPTS_PER_DAY)]

    def attempt(plan):
        key, at = plan
        local.now = at
        try:
            return at, place(ddb_ports, key, [("CARD", 1)])
        except InsufficientStock as short:
            assert isinstance(short, pools.DailyCapReached)
            return at, None

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(attempt, plans))

    accepted = Counter(at for at, placed in outcomes if placed is not None)
    assert accepted == {before: DAILY_CAP, after: DAILY_CAP}  # exactly the cap on each day, never more
    for day in days.values():
        item = day_item(day)
        levels = ddb_ports.store.shard_levels({"CARD": [item]})["CARD"][item]
        assert (levels.on_hand, levels.available, levels.reserved, levels.sold) == (DAILY_CAP, 0, DAILY_CAP, 0)
        entries = day_ledger(ddb_ports, "CARD", item)
        assert len(entries) == DAILY_CAP and sum(e.delta.reserved for e in entries) == DAILY_CAP

    # An order of the first day cancelled after midnight gives its unit back to the first day only.
    first_day_order = next(placed for at, placed in outcomes if placed is not None and at == before)
    local.now = after
    end_reservation(ddb_ports, first_day_order.order_id, to=OrderStatus.CANCELLED, actor="customer:t",
                    reason="cancelled_by_customer")
    first, second = day_item(days[before]), day_item(days[after])
    now = ddb_ports.store.shard_levels({"CARD": [first, second]})["CARD"]
    assert (now[first].available, now[second].available) == (1, 0)
    local.now = before - timedelta(seconds=1)
    assert place(ddb_ports, "again", [("CARD", 1)]).status_code == 201  # the first day sells its unit again
    with pytest.raises(pools.DailyCapReached):
        local.now = after + timedelta(seconds=1)
        place(ddb_ports, "again-2", [("CARD", 1)])
    for item in (first, second):  # each day item: opening levels plus its ledger
        levels = ddb_ports.store.shard_levels({"CARD": [item]})["CARD"][item]
        totals = Counter()
        for entry in day_ledger(ddb_ports, "CARD", item):
            totals.update(entry.delta.to_dict())
        assert levels.is_consistent
        assert (levels.on_hand - totals["on_hand"], levels.available - totals["available"]) == (DAILY_CAP, DAILY_CAP)
        assert (levels.reserved, levels.sold) == (totals["reserved"], totals["sold"])


def test_concurrent_presale_payments_sell_exactly_the_pool(ddb_ports):
    catalog.upsert_sku(ddb_ports, "PRE", catalog.SkuDetails(name="Pre", price=Money(500, "USD"), on_hand=3),
                       actor="admin:t")
    pools.set_presale(ddb_ports, "PRE", PresaleTerms(4, "2020-01-01T00:00:00Z", "2099-01-01T00:00:00Z", "2099-02-01"),
                      actor="admin:t")
    orders = [place(ddb_ports, f"p{n}", [("PRE", 1)], presale=frozenset({"PRE"})) for n in range(10)]
    spot = place(ddb_ports, "spot", [("PRE", 3)])  # the spot units: never the pool's

    def pay(placed):
        try:
            return mark_paid(ddb_ports, placed.order_id, actor="provider:t") is not None
        except InsufficientStock:
            return False

    with ThreadPoolExecutor(10) as pool:
        paid = list(pool.map(pay, orders))
    assert sum(paid) == 4
    sku = assert_ledger_matches(ddb_ports, "PRE")  # every item's ledger sums to its levels
    terms = sku.presale
    assert sku.shard_levels[terms.item].to_dict() == {"on_hand": 0, "available": 0, "reserved": 0, "sold": 4}
    assert sku.levels.to_dict() == {"on_hand": 3, "available": 0, "reserved": 3, "sold": 0}  # the spot order's
    assert spot.status_code == 201
