"""Operators' CSV exports of the catalog, its stock and the ledger (the orders' export is in services/finding.py).

Never a Scan: the catalog is read page by page from its index (gsi3 `SKUS#{m}`, merged by code), each page's
stock items with one BatchGetItem; a ledger is one Query per stock item of a SKU (a shard of a warehouse's stock
in one state; a sort key range of `{at}#{movement_id}`), merged. The ledger of every SKU is therefore one small
Query per SKU and stock item: it is
bounded to LEDGER_EXPORT_MAX_SKUS SKUs per export (beyond, the file ends with `#truncated`: export per SKU with
`?sku=`). Every export stops at `max_rows` rows (CSV_EXPORT_MAX_ROWS) the same way.
"""

from __future__ import annotations

from collections.abc import Iterator

from shop.domain.errors import Unprocessable
from shop.domain.skus import Sku, StockLevels
from shop.domain.warehouses import LOCATIONS_PER_STATE, StockState, location_of
from shop.services.finding import CsvExport, time_bound, write_csv
from shop.services.ports import Ports
from shop.services.presenters import movement_view

PAGE = 100
LEDGER_EXPORT_MAX_SKUS = 1000

# Both importable back (shop/http/imports.py reads these and ignores the read-only ones).
# skus.csv: the terms (importable) and read-only totals over the SKU's sellable stock in every warehouse (the
# import ignores them: stock is set per warehouse, from stock.csv's columns).
SKU_COLUMNS = ("sku", "name", "price", "currency", "active", "stock_policy", "low_stock_threshold", "max_per_order",
               "payment_window_seconds", "stock_shards", "backorder_limit", "total_on_hand", "total_available", "total_reserved",
               "total_sold", "availability", "stock_state", "created_at", "updated_at")
STOCK_COLUMNS = ("sku", "warehouse", "state", "on_hand", "available", "reserved", "sold")
LEDGER_COLUMNS = ("at", "sku", "warehouse", "state", "shard", "movement_id", "actor", "reason", "order_id", "reference",
                  "on_hand", "available", "reserved", "sold")


def all_skus(ports: Ports) -> Iterator[Sku]:
    """Every SKU by code, with its levels, page by page from the catalog index."""
    cursor: str | None = None
    while True:
        found, cursor = ports.store.skus(states=None, limit=PAGE, cursor=cursor)
        yield from found
        if not cursor:
            return


def _blank(value: object) -> object:
    return "" if value is None else value


def skus_csv(ports: Ports, max_rows: int) -> CsvExport:
    """One row per SKU: its terms (the import's columns) and its sellable levels summed over its warehouses."""
    rows = ([s.sku, s.name, s.price.amount, s.price.currency, "true" if s.active else "false", s.stock_policy.value,
             _blank(s.low_stock_threshold), _blank(s.max_per_order), _blank(s.payment_window_seconds), s.stock_shards,
             s.backorder_limit, s.levels.on_hand, s.levels.available, s.levels.reserved, s.levels.sold, s.availability(),
             s.stock_state, s.created_at, s.updated_at] for s in all_skus(ports))
    return write_csv(SKU_COLUMNS, rows, max_rows, f"more SKUs than the export limit of {max_rows} rows")


def stock_csv(ports: Ports, max_rows: int) -> CsvExport:
    """One row per SKU and location (a warehouse's stock in one state: sellable, presale, damaged, ...), its
    levels summed over the location's shards; a SKU's sellable rows sum to its public availability."""
    registry = ports.store.get_warehouses()

    def rows() -> Iterator[list[object]]:
        for sku in all_skus(ports):
            per_location = {place: StockLevels() for place in sku.locations}
            for item, levels in sku.shard_levels.items():
                per_location[location_of(item)] = per_location.get(location_of(item), StockLevels()) + levels
            for place, levels in sorted(per_location.items()):
                yield [sku.sku, registry.code_of(place % LOCATIONS_PER_STATE),
                       StockState(place // LOCATIONS_PER_STATE).name.lower(), *levels.to_dict().values()]

    return write_csv(STOCK_COLUMNS, rows(), max_rows, f"more rows than the export limit of {max_rows} rows")


def ledger_csv(ports: Ports, sku: str | None, at_from: str | None, at_to: str | None, max_rows: int) -> CsvExport:
    """The ledger entries with `at` in [from, to] (ISO dates or times, as the orders' filters), of one SKU or of
    every SKU (by code, each SKU's entries oldest first)."""
    low, high = time_bound(at_from), time_bound(at_to)
    if low and high and low > high + "\uffff":
        raise Unprocessable("'from' must not be after 'to'", {"fields": ["from", "to"]})
    codes: Iterator[str] = iter([sku]) if sku else (s.sku for s in all_skus(ports))
    registry = ports.store.get_warehouses()
    cut = {"skus": False}

    def rows() -> Iterator[list[object]]:
        for count, code in enumerate(codes):
            if count >= LEDGER_EXPORT_MAX_SKUS:
                cut["skus"] = True
                yield ["#truncated", f"more SKUs than {LEDGER_EXPORT_MAX_SKUS} in one ledger export: export "
                                     "them one by one with ?sku="]
                return
            for m in ports.store.ledger_between(code, low, high):
                view = movement_view(m, registry)
                yield [m.at, m.sku, view["warehouse"], view["state"], view["shard"], m.movement_id, m.actor, m.reason,
                       _blank(m.order_id), _blank(m.reference), *m.delta.to_dict().values()]

    export = write_csv(LEDGER_COLUMNS, rows(), max_rows,
                       f"more entries than the export limit of {max_rows} rows; narrow the range with from/to or sku")
    if cut["skus"]:
        return CsvExport(export.text, export.rows - 1, True)
    return export
