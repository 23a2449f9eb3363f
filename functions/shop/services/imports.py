"""Operators' CSV import of SKUs and stock levels: each row applied through the catalog's own path.

The file is validated whole before this runs (shop/http/imports.py): nothing here is applied from a file
with a bad row. Each row is then `catalog.upsert_sku`, exactly as `PUT /admin/skus/{sku}`: the catalog
entry (conditional on its version), then, when the row sets `on_hand`, one ledgered adjustment computed
from a fresh read (actor: the operator, reason `import`, reference: the file's id), written in the same
transaction as the row's `ImportRowApplied` record, keyed by (file id, line). So:

- a re-posted file applies nothing twice: its applied rows are found (one BatchGetItem per 100 lines) and
  skipped; a row racing its own re-post has its stock commit refused by the record;
- a file cut short (a crash, the time budget) is finished by posting it again: only rows without their
  record are applied. A row cut between its catalog write and its stock commit writes the same catalog
  terms again (harmless), then its stock and record;
- on_hand stays conditional arithmetic: orders racing the import still count.

A row the catalog refuses (a currency change with reserved units, an on_hand below the units reserved) is
reported `failed` with the reason, without its record, and writes nothing (both are checked before the
row's catalog write; only an order reserving units between that check and the stock commit can leave a
failed row with its catalog terms written): fix it and post the file again (a new file id) or apply that
SKU by hand.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from shop.domain import clock
from shop.domain.errors import DomainError, InsufficientStock
from shop.domain.warehouses import MAIN_WAREHOUSE
from shop.services import catalog, warehouses
from shop.services.ports import Ports
from shop.services.records import ImportRowApplied

IMPORT_REASON = "import"
RECORD_DAYS = 30  # a file posted again within this many days applies nothing twice
CHECK_BATCH = 100
WORKERS = 8  # SKUs applied at once (each row is about ten DynamoDB calls, mostly waiting)


@dataclass(frozen=True)
class ImportRow:
    """A validated row: the SKU terms its file gives (columns present; the others keep the SKU's values)."""

    line: int
    sku: str
    terms: dict[str, Any]  # SkuTerms field -> value (price as Money)
    on_hand: int | None = None  # None: stock untouched
    warehouse: str = MAIN_WAREHOUSE  # whose sellable stock on_hand sets


@dataclass
class ImportReport:
    file_id: str
    rows: int
    results: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {status: sum(1 for r in self.results if r["status"] == status)
                for status in ("applied", "skipped", "failed", "pending")}

    def to_dict(self) -> dict[str, Any]:
        counts = self.counts()
        return {"file_id": self.file_id, "rows": self.rows, **counts, "complete": counts["pending"] == 0,
                "results": self.results}


def apply_rows(ports: Ports, file_id: str, rows: list[ImportRow], *, actor: str,
               deadline: float | None = None, workers: int | None = None) -> ImportReport:
    """Apply each row not applied before, until `deadline` (time.monotonic()): rows left are `pending` (post the
    same file again to apply them). Rows of different SKUs are independent (each write is conditional on what
    it read) and run `workers` at a time; a SKU's rows (one per warehouse) run in file order."""
    workers = workers or WORKERS
    done: set[int] = set()
    for start in range(0, len(rows), CHECK_BATCH):
        done |= ports.store.import_rows_applied(file_id, [row.line for row in rows[start:start + CHECK_BATCH]])
    by_sku: dict[str, list[ImportRow]] = {}
    for row in rows:
        by_sku.setdefault(row.sku, []).append(row)

    def apply_sku(sku_rows: list[ImportRow]) -> list[dict[str, Any]]:
        results = []
        for row in sku_rows:
            if row.line in done:
                results.append({**_where(row), "status": "skipped"})
            elif deadline is not None and time.monotonic() > deadline:
                results.append({**_where(row), "status": "pending"})
            else:
                results.append(_apply(ports, file_id, row, actor))
        return results

    if workers > 1 and len(by_sku) > 1:
        with ThreadPoolExecutor(min(workers, len(by_sku))) as pool:
            outcomes = list(pool.map(apply_sku, by_sku.values()))
    else:
        outcomes = [apply_sku(group) for group in by_sku.values()]
    report = ImportReport(file_id, len(rows))
    report.results = sorted((r for group in outcomes for r in group), key=lambda r: r["line"])
    return report


def _where(row: ImportRow) -> dict[str, Any]:
    return {"line": row.line, "sku": row.sku, "warehouse": row.warehouse}


def _apply(ports: Ports, file_id: str, row: ImportRow, actor: str) -> dict[str, Any]:
    try:
        warehouse = warehouses.warehouse_index(ports, row.warehouse)
    except DomainError as refused:  # removed since the file was checked
        return {**_where(row), "status": "failed", "problem": refused.slug,
                "message": refused.detail}
    current = ports.store.get_sku(row.sku)
    reserved = sum(current.shard_levels[i].reserved for i in current.items_in(warehouse)
                   if i in current.shard_levels) if current else 0
    if row.on_hand is not None and row.on_hand < reserved:
        # Refused before any write (the catalog's own check would come after its catalog write).
        return {**_where(row), "status": "failed", "problem": InsufficientStock.slug,
                "message": f"on_hand {row.on_hand} is below the {reserved} units reserved by orders "
                           f"in warehouse {row.warehouse}"}
    terms = {**(current.terms() if current else {}), **row.terms}
    details = catalog.SkuDetails(**terms, on_hand=row.on_hand)
    now = clock.now()
    marker = ImportRowApplied(file_id, row.line, row.sku, clock.iso(now),
                              expires=int(now.timestamp()) + RECORD_DAYS * 24 * 3600)
    try:
        saved, created = catalog.upsert_sku(ports, row.sku, details, actor=actor, reason=IMPORT_REASON,
                                            reference=file_id, record=marker, warehouse=warehouse)
    except DomainError as refused:
        return {**_where(row), "status": "failed", "problem": refused.slug,
                "message": refused.detail}
    held = sum(saved.shard_levels[i].on_hand for i in saved.items_in(warehouse) if i in saved.shard_levels)
    return {**_where(row), "status": "applied", "created": created,
            "on_hand": held}
