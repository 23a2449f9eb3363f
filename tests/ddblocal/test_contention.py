"""Flash-sale contention against DynamoDB Local: the official engine, with real transactions."""

from __future__ import annotations

import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from shop.domain.errors import InsufficientStock
from shop.domain.money import Money
from shop.services import catalog
from shop.services.orders import OrderPolicy, OrderRequest, PlaceOrder, place_order, request_fingerprint

pytestmark = pytest.mark.ddblocal

ADDRESS = {"name": "Ada", "line1": "1 Loop", "city": "Localhost", "postal_code": "12345", "country": "US"}
STOCK = 50
ATTEMPTS = 520
THREADS = 32


def stock_up(ports, codes, on_hand=STOCK, shards=1):
    for code in codes:
        catalog.upsert_sku(ports, code, catalog.SkuDetails(name=code, price=Money(1500, "USD"), on_hand=on_hand,
                                                           stock_shards=shards), actor="admin:test")


def order(ports, customer, key, items):
    request = OrderRequest(items=items, shipping_address=ADDRESS, payment_provider="sandbox")
    return place_order(ports, PlaceOrder(customer, key, request, request_fingerprint({"items": items})),
                       OrderPolicy(900, 3600), lambda o: {})


def assert_ledger_matches(ports, code):
    sku = ports.store.get_sku(code)
    entries, cursor = [], None
    while True:
        page, cursor = ports.store.ledger(code, 100, cursor)
        entries += page
        if not cursor:
            break
    assert len({e.movement_id for e in entries}) == len(entries), "a movement listed twice"
    assert [(e.at, e.movement_id) for e in entries] == sorted((e.at, e.movement_id) for e in entries)  # oldest first
    for shard, levels in sku.shard_levels.items():  # each shard keeps the invariants, and its ledger sums to it
        assert levels.is_consistent, (shard, levels)
        totals = Counter()
        for e in entries:
            if e.shard == shard:
                totals.update(e.delta.to_dict())
        assert {k: totals[k] for k in ("on_hand", "available", "reserved", "sold")} == levels.to_dict(), shard
    assert {e.shard for e in entries} <= set(sku.shard_levels)
    return sku


@pytest.mark.parametrize("shards", [1, 4])
def test_500_concurrent_orders_never_oversell(ddb_ports, shards):
    codes = ["FLASH-A", "FLASH-B"]
    stock_up(ddb_ports, codes, shards=shards)
    rng = random.Random(20261124)
    plans = []
    for n in range(ATTEMPTS):
        chosen = rng.sample(codes, rng.choice([1, 2]))
        plans.append((f"shopper-{n % 97}", f"key-{n}", [(c, rng.randint(1, 3)) for c in chosen]))

    def attempt(plan):
        customer, key, items = plan
        try:
            return "accepted", order(ddb_ports, customer, key, items)
        except InsufficientStock as short:
            return "rejected", short.extra["shortages"]
        except Exception as error:  # a 5xx in HTTP terms: must never happen
            return "error", repr(error)

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(attempt, plans))

    errors = [detail for kind, detail in outcomes if kind == "error"]
    assert errors == []
    accepted_units = Counter()
    for (kind, placed), (_, _, items) in zip(outcomes, plans):
        if kind == "accepted":
            accepted_units.update(dict(items))
            stored = ddb_ports.store.get_order(placed.order_id)
            assert stored is not None and stored.status.value == "PENDING_PAYMENT"
    for code in codes:
        assert accepted_units[code] == STOCK, f"{code}: accepted {accepted_units[code]} units of {STOCK}"
        sku = assert_ledger_matches(ddb_ports, code)
        assert sku.levels.available == 0
        assert sku.levels.reserved == STOCK
        assert sku.levels.on_hand == STOCK
    rejected = [detail for kind, detail in outcomes if kind == "rejected"]
    assert rejected and all(s["available"] < s["requested"] for shortages in rejected for s in shortages)


def test_twenty_parallel_requests_with_one_key_create_one_order(ddb_ports):
    stock_up(ddb_ports, ["IDEM-1"], on_hand=10)
    items = [("IDEM-1", 2)]
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda _: order(ddb_ports, "alice", "same-key", items), range(20)))
    assert len({r.order_id for r in results}) == 1
    assert all(r.status_code == 201 and r.body == results[0].body for r in results)
    assert sum(not r.replayed for r in results) == 1
    sku = assert_ledger_matches(ddb_ports, "IDEM-1")
    assert (sku.levels.available, sku.levels.reserved) == (8, 2)


def test_replay_survives_stock_running_out(ddb_ports):
    stock_up(ddb_ports, ["LAST-1"], on_hand=1)
    first = order(ddb_ports, "bob", "k1", [("LAST-1", 1)])
    again = order(ddb_ports, "bob", "k1", [("LAST-1", 1)])
    assert again.replayed and again.body == first.body
    with pytest.raises(InsufficientStock):
        order(ddb_ports, "carol", "k1", [("LAST-1", 1)])  # same key, other customer: a new request


def test_concurrent_orders_from_two_regions_sell_each_warehouse_exactly_once(ddb_ports):
    """Three warehouses (main, east, cn; 2 shards each) hold 20 + 15 + 15 units; 160 orders from three regions
    race: exactly 50 accepted, every warehouse and shard ends at zero available and never below, each order's
    units come from the warehouses its lines name, and each item's ledger sums to its levels."""
    from shop.domain.warehouses import Warehouse
    from shop.services import warehouses

    warehouses.define_warehouse(ddb_ports, Warehouse("east", -1, "East", "US", serves=("US:East",)))
    warehouses.define_warehouse(ddb_ports, Warehouse("cn", -1, "Shanghai", "CN", serves=("CN",)))
    stock_up(ddb_ports, ["SPREAD"], on_hand=20, shards=2)
    for code in ("east", "cn"):
        catalog.adjust_stock(ddb_ports, "SPREAD", 15, reason="received", actor="admin:test", warehouse=code)
    regions = [ADDRESS, {**ADDRESS, "region": "East"}, {**ADDRESS, "country": "CN", "region": "Shanghai"}]

    def attempt(n):
        request = OrderRequest(items=[("SPREAD", 1)], shipping_address=regions[n % 3], payment_provider="sandbox")
        try:
            return place_order(ddb_ports, PlaceOrder(f"c{n}", f"k{n}", request, request_fingerprint({"n": n})),
                               OrderPolicy(900, 3600), lambda o: {})
        except InsufficientStock:
            return None

    with ThreadPoolExecutor(THREADS) as pool:
        placed = [p for p in pool.map(attempt, range(160)) if p]
    assert len(placed) == 50
    sku = assert_ledger_matches(ddb_ports, "SPREAD")
    assert sku.levels.available == 0 and sku.levels.reserved == 50 and len(sku.shard_levels) == 6
    shipped_from = Counter()
    for p in placed:
        line = ddb_ports.store.get_order(p.order_id).lines[0]
        shipped_from.update({a.warehouse: a.units for a in line.allocations})
    assert shipped_from == {"main": 20, "east": 15, "cn": 15}
