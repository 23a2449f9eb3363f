"""Stock shards on DynamoDB Local: orders spread over a SKU's shards, the last unit always sells, rebalancing
races orders without harm, the shard count changes while on sale, and the catalog guard on the stock write."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from shop.domain.errors import InsufficientStock, Unprocessable
from shop.domain.money import Money
from shop.services import catalog, inventory
from tests.ddblocal.test_contention import assert_ledger_matches, order, stock_up

pytestmark = pytest.mark.ddblocal


def details(**changes):
    base = dict(name="Hot", price=Money(1500, "USD"), stock_shards=4)
    return catalog.SkuDetails(**{**base, **changes})


def test_orders_spread_over_shards_and_the_last_units_sell_wherever_they_sit(ddb_ports):
    stock_up(ddb_ports, ["HOT"], on_hand=40, shards=4)
    sku = ddb_ports.store.get_sku("HOT")
    assert sorted(l.available for l in sku.shard_levels.values()) == [10, 10, 10, 10]  # evened on creation
    with ThreadPoolExecutor(8) as pool:
        placed = list(pool.map(lambda n: order(ddb_ports, f"c{n}", f"k{n}", [("HOT", 1)]), range(32)))
    used = Counter(shard for p in placed for line in ddb_ports.store.get_order(p.order_id).lines
                   for shard, _, _ in line.allocations)
    assert len(used) >= 3  # random first tries: orders do not queue on one item
    # 8 units left, spread unevenly; an order for more than any one shard holds takes from several.
    left = ddb_ports.store.get_sku("HOT").levels.available
    assert left == 8
    big = order(ddb_ports, "whale", "big", [("HOT", 8)])
    lines = ddb_ports.store.get_order(big.order_id).lines
    assert sum(a.units for a in lines[0].allocations) == 8
    with pytest.raises(InsufficientStock) as sold_out:
        order(ddb_ports, "late", "late", [("HOT", 1)])
    assert sold_out.value.extra["shortages"] == [{"sku": "HOT", "requested": 1, "available": 0}]
    assert assert_ledger_matches(ddb_ports, "HOT").levels.to_dict() == {"on_hand": 40, "available": 0,
                                                                         "reserved": 40, "sold": 0}
    assert ("stock.sold_out", {"sku": "HOT"}) in ddb_ports.events.calls


def test_rebalancing_racing_orders_sells_every_unit_once(ddb_ports):
    stock_up(ddb_ports, ["RB"], on_hand=120, shards=1)
    catalog.upsert_sku(ddb_ports, "RB", details(stock_shards=6), actor="admin:t")  # more shards while on sale
    stop = threading.Event()
    moved = Counter()

    def keep_rebalancing():
        while not stop.is_set():
            moved["moves"] += len(inventory.rebalance(ddb_ports, "RB"))

    def buy(n):
        try:
            return order(ddb_ports, f"c{n}", f"k{n}", [("RB", 1 + n % 3)])
        except InsufficientStock:
            return None

    rebalancers = [threading.Thread(target=keep_rebalancing) for _ in range(2)]
    for t in rebalancers:
        t.start()
    with ThreadPoolExecutor(12) as pool:
        placed = [p for p in pool.map(buy, range(90)) if p]
    stop.set()
    for t in rebalancers:
        t.join()
    sold = sum(line.quantity for p in placed for line in ddb_ports.store.get_order(p.order_id).lines)
    sku = assert_ledger_matches(ddb_ports, "RB")
    assert sold == sku.levels.reserved and sold + sku.levels.available == 120
    assert all(level.available >= 0 for level in sku.shard_levels.values())


def test_fewer_shards_while_on_sale_empties_the_retired_ones(ddb_ports):
    stock_up(ddb_ports, ["DOWN"], on_hand=40, shards=4)
    placed = [order(ddb_ports, f"c{n}", f"k{n}", [("DOWN", 2)]) for n in range(8)]
    catalog.upsert_sku(ddb_ports, "DOWN", details(stock_shards=2), actor="admin:t")
    sku = ddb_ports.store.get_sku("DOWN")
    assert (sku.stock_shards, sku.shard_items) == (2, 4)
    assert all(sku.shard_levels[n].available == 0 for n in (2, 3))  # their free units moved to live shards
    # Reservations on retired shards still end where they are held: cancel them all, then rebalance.
    from shop.services import payments

    for p in placed:
        payments.cancel(ddb_ports, lambda name: None, p.order_id, actor="customer:x", reason="cancelled_by_customer")
    inventory.rebalance(ddb_ports, "DOWN")
    sku = assert_ledger_matches(ddb_ports, "DOWN")
    assert sku.levels.to_dict() == {"on_hand": 40, "available": 40, "reserved": 0, "sold": 0}
    assert all(sku.shard_levels[n].on_hand == 0 for n in (2, 3))
    ledger = ddb_ports.store.ledger("DOWN", 100, None)[0]
    assert any(e.reason == "rebalance" and e.actor == "system:rebalance" for e in ledger)


class PausingCatalogRead:
    """The order reads the catalog, then an operator changes the SKU, then the order writes."""

    def __init__(self, real, between):
        self.real, self.between, self.done = real, between, False

    def __getattr__(self, name):
        return getattr(self.real, name)

    def get_catalog_and_response(self, *args, **kwargs):
        read = self.real.get_catalog_and_response(*args, **kwargs)
        if not self.done:
            self.done = True
            self.between()
        return read


def test_a_price_change_between_read_and_write_reprices_the_order(ddb_ports):
    stock_up(ddb_ports, ["PRICE"], on_hand=5, shards=2)
    ddb_ports.store = PausingCatalogRead(ddb_ports.store, lambda: catalog.upsert_sku(
        ddb_ports, "PRICE", details(price=Money(1700, "USD"), stock_shards=2), actor="admin:t"))
    placed = order(ddb_ports, "alice", "k1", [("PRICE", 1)])
    assert placed.body["total"] == {"amount": 1700, "currency": "USD"}  # never the price the catalog no longer has


def test_a_sku_deactivated_between_read_and_write_is_not_reserved(ddb_ports):
    stock_up(ddb_ports, ["GONE"], on_hand=5, shards=2)
    ddb_ports.store = PausingCatalogRead(ddb_ports.store, lambda: catalog.upsert_sku(
        ddb_ports, "GONE", details(active=False, stock_shards=2), actor="admin:t"))
    with pytest.raises(Unprocessable):
        order(ddb_ports, "alice", "k1", [("GONE", 1)])
    assert ddb_ports.store.get_sku("GONE").levels.reserved == 0


def test_stock_events_are_computed_over_all_shards_and_sent_once(ddb_ports):
    catalog.upsert_sku(ddb_ports, "EVT", details(on_hand=12, low_stock_threshold=4, stock_shards=3), actor="admin:t")
    for n in range(12):
        order(ddb_ports, f"c{n}", f"k{n}", [("EVT", 1)])
    signals = [(kind, detail) for kind, detail in ddb_ports.events.calls if kind.startswith("stock.")]
    assert [kind for kind, _ in signals] == ["stock.low", "stock.sold_out"]
    assert signals[0][1]["available"] <= 4
