"""CSV import on DynamoDB Local: the same file posted twice at once applies each row once, orders racing an import
still count (on_hand is conditional arithmetic), and a date range of a sharded SKU's ledger reads back merged."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from shop.domain import clock
from shop.http import imports
from shop.services import exports
from shop.services.imports import apply_rows
from tests.ddblocal.test_contention import assert_ledger_matches, order, stock_up

pytestmark = pytest.mark.ddblocal

FILE = ("sku,name,price,currency,stock_shards,on_hand\n"
        + "".join(f"CSV-{n},Item {n},1500,USD,{1 + n % 2},{10 + n}\n" for n in range(6))).encode()


def test_the_same_file_posted_twice_at_once_applies_each_row_once(ddb_ports):
    rows = imports.read_rows(FILE, max_window=3600, existing=ddb_ports.store.get_catalog, warehouses={"main"})
    file_id = imports.file_id(FILE)
    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda _: apply_rows(ddb_ports, file_id, rows, actor="admin:ops"), range(2)))
    assert all(r.counts()["failed"] == 0 and r.counts()["pending"] == 0 for r in reports)
    for n in range(6):
        code = f"CSV-{n}"
        sku = ddb_ports.store.get_sku(code)
        assert sku.levels.on_hand == 10 + n and sku.stock_shards == 1 + n % 2
        entries = [e for e in ddb_ports.store.ledger_between(code, None, None) if e.reason == "import"]
        assert [(e.reference, e.delta.on_hand) for e in entries] == [(file_id, 10 + n)]  # the rest: rebalancing
        assert_ledger_matches(ddb_ports, code)
    again = apply_rows(ddb_ports, file_id, rows, actor="admin:ops")
    assert again.counts()["skipped"] == 6


def test_orders_racing_an_import_still_count(ddb_ports):
    stock_up(ddb_ports, ["CSV-HOT"], on_hand=50, shards=4)
    data = b"sku,name,price,currency,stock_shards,on_hand\nCSV-HOT,Hot,1500,USD,4,40\n"
    rows = imports.read_rows(data, max_window=3600, existing=ddb_ports.store.get_catalog, warehouses={"main"})
    with ThreadPoolExecutor(6) as pool:
        placed = [pool.submit(order, ddb_ports, f"c{n}", f"k{n}", [("CSV-HOT", 1)]) for n in range(10)]
        applied = pool.submit(apply_rows, ddb_ports, imports.file_id(data), rows, actor="admin:ops")
        assert all(f.result().order_id for f in placed)
        assert applied.result().counts()["applied"] == 1
    sku = ddb_ports.store.get_sku("CSV-HOT")
    # The import moved on_hand to 40 from what it read; the orders only reserved (on_hand unchanged by them).
    assert (sku.levels.on_hand, sku.levels.reserved, sku.levels.available) == (40, 10, 30)
    assert_ledger_matches(ddb_ports, "CSV-HOT")
    since = clock.iso(clock.now())[:10]
    export = exports.ledger_csv(ddb_ports, "CSV-HOT", since, None, 1000)
    assert export.rows == len(list(ddb_ports.store.ledger_between("CSV-HOT", since, None))) >= 11
