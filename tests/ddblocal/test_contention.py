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


def one_unit_orders(ports, code, regions):
    """attempt(n): customer n orders one unit of `code` to regions[n % len(regions)]; None when sold out."""

    def attempt(n):
        request = OrderRequest(items=[(code, 1)], shipping_address=regions[n % len(regions)], payment_provider="sandbox")
        try:
            return place_order(ports, PlaceOrder(f"c{n}", f"k{n}", request, request_fingerprint({"n": n})),
                               OrderPolicy(900, 3600), lambda o: {})
        except InsufficientStock:
            return None

    return attempt


def ledger_entries(ports, code):
    entries, cursor = [], None
    while True:
        page, cursor = ports.store.ledger(code, 100, cursor)
        entries += page
        if not cursor:
            return entries


def assert_ledger_matches(ports, code):
    sku = ports.store.get_sku(code)
    entries = ledger_entries(ports, code)
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
    attempt = one_unit_orders(ddb_ports, "SPREAD", [ADDRESS, {**ADDRESS, "region": "East"},
                                                      {**ADDRESS, "country": "CN", "region": "Shanghai"}])

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


def test_orders_race_transfers_state_moves_and_a_count_without_overselling(ddb_ports):
    """120 orders from two regions race an operator who receives a transfer (main -> cn, dispatched just before), moves
    units to damaged (east) and approves a count (main): no order takes units that were not sellable, every item
    stays consistent and its ledger sums to its levels, units in every state add up to what was stocked plus the
    count's difference, and the transfer and the count apply exactly once."""
    from shop.domain.stock_documents import DocumentKind
    from shop.domain.warehouses import StockState, Warehouse
    from shop.services import stock_ops, warehouses

    warehouses.define_warehouse(ddb_ports, Warehouse("east", -1, "East", "US", serves=("US:East",)))
    warehouses.define_warehouse(ddb_ports, Warehouse("cn", -1, "Shanghai", "CN", serves=("CN",)))
    stock_up(ddb_ports, ["OPS"], on_hand=20, shards=2)
    catalog.adjust_stock(ddb_ports, "OPS", 15, reason="received", actor="admin:test", warehouse="east")
    attempt = one_unit_orders(ddb_ports, "OPS", [{**ADDRESS, "region": "East"},
                                                 {**ADDRESS, "country": "CN", "region": "Shanghai"}])

    # Dispatched before the race (the orders could otherwise take main's units first, and the test would depend on
    # the machine's speed); received while the orders run.
    sent, _ = stock_ops.dispatch_transfer(ddb_ports, from_warehouse="main", to_warehouse="cn",
                                          lines=[("OPS", 6)], reference=None, actor="admin:t", request_id="t")

    def operator():
        done = {"transfer": sent.doc_id}
        try:
            stock_ops.move_state(ddb_ports, "OPS", warehouse="east", from_state=StockState.SELLABLE,
                                 to_state=StockState.DAMAGED, quantity=2, reason="dropped", reference=None,
                                 actor="admin:t")
            done["damaged"] = 2
        except InsufficientStock:
            pass
        count, _ = stock_ops.create_count(ddb_ports, lines=[("OPS", "main", 12)], reference=None, actor="admin:t")
        for _ in range(2):  # a retried receipt applies nothing twice
            stock_ops.receive_transfer(ddb_ports, done["transfer"], actor="admin:t")
        try:
            approved = stock_ops.approve_count(ddb_ports, count.doc_id, actor="admin:t")
            stock_ops.approve_count(ddb_ports, count.doc_id, actor="admin:t")
            done["count"] = approved.body["lines"][0]["difference"]
        except InsufficientStock:  # more reserved in main than counted at that moment
            pass
        return done

    with ThreadPoolExecutor(THREADS) as pool:
        operating = pool.submit(operator)
        placed = [p for p in pool.map(attempt, range(120)) if p]
        done = operating.result()
    sku = assert_ledger_matches(ddb_ports, "OPS")
    assert all(levels.is_consistent for levels in sku.shard_levels.values())
    assert sku.levels.reserved == len(placed)  # every accepted unit is reserved on a sellable item
    assert sku.all_levels.on_hand == 35 + done.get("count", 0)  # nothing appeared or vanished but the count
    per_state = Counter()
    for item, levels in sku.shard_levels.items():
        per_state[(item // 64) // 1024] += levels.on_hand
    assert per_state[StockState.IN_TRANSIT] == 0 and per_state[StockState.DAMAGED] == done.get("damaged", 0)
    transfer = ddb_ports.store.get_stock_document(DocumentKind.TRANSFER, done["transfer"])
    assert transfer.status == "received"
    moved = [e for e in ledger_entries(ddb_ports, "OPS") if e.reference == transfer.doc_id]
    assert sum(e.delta.on_hand for e in moved) == 0
    assert sorted(e.delta.on_hand for e in moved if e.reason == "transfer_received") == [-6, 6]  # received once
