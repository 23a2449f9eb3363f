"""Stock beyond sellable: moves between states, expected deliveries, transfers between warehouses, physical counts.

Every use case here is a set of ledgered movements on stock items (conditional arithmetic on each item it
lowers: `available >= :q`) written in one transaction, with the document it belongs to where there is one
(shop/domain/stock_documents.py: conditional on the document's version, so each step applies once). None of it
is on the order path: operators' paths read first, plan, and write conditionally (docs/stock-operations.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from shop.domain import clock, shards, stock
from shop.domain.errors import InsufficientStock, NotFound, Unprocessable
from shop.domain.skus import Sku
from shop.domain.stock import StockMovement
from shop.domain.stock_documents import (
    ID_PREFIX,
    MAX_DOCUMENT_LINES,
    ON_HAND_STATES,
    RECEIVING_STATES,
    DocumentKind,
    StockDocument,
)
from shop.domain.warehouses import ITEMS_PER_WAREHOUSE, LOCATIONS_PER_STATE, StockState, location, stock_item
from shop.services import catalog, inventory, warehouses
from shop.services.ports import Commit, CommitRejected, Ports, StaleWrite, StockShort
from shop.services.retry import with_retries

T = TypeVar("T")


def document_id(kind: DocumentKind, request_id: str | None) -> str:
    """A new document's id: derived from the request's key when there is one (a retry finds the document)."""
    return ID_PREFIX[kind] + (request_id[:32] if request_id else uuid.uuid4().hex)


def _now() -> str:
    return clock.iso(clock.now())


def _take_from(sku: Sku, place: int, quantity: int, what: str) -> list[tuple[int, int]]:
    """Which items of one location give `quantity` available units (levels just read); 409 when it has fewer."""
    available = {item % ITEMS_PER_WAREHOUSE: sku.shard_levels[item].available
                 for item in sku.items_in(place) if place in sku.locations and item in sku.shard_levels}
    try:
        plan = shards.plan_take(sku.sku, quantity, available, sku.stock_shards if place < LOCATIONS_PER_STATE else 1)
    except InsufficientStock:
        total = sum(max(0, units) for units in available.values())
        raise InsufficientStock(f"{sku.sku}: cannot move {quantity} from {what}, only {total} available",
                                {"shortages": [{"sku": sku.sku, "requested": quantity, "available": total}]}) from None
    return [(place * ITEMS_PER_WAREHOUSE + shard, units) for shard, units in plan]


def _target_item(sku: Sku, place: int) -> int:
    """Where units put into a location go: a live shard of a sellable one, else its one item."""
    shard = shards.pick_shard(sku.stock_shards) if place < LOCATIONS_PER_STATE else 0
    return place * ITEMS_PER_WAREHOUSE + shard


def _committed(ports: Ports, commit: Commit) -> None:
    """Commit operators' movements planned from a read: a guard that failed since means read and plan again."""
    try:
        ports.store.commit(commit)
    except StockShort:
        raise StaleWrite("stock moved while planning") from None
    inventory.announce_stock_state(ports, commit.movements)


def _created(ports: Ports, kind: DocumentKind, doc_id: str,
             make: Callable[[], tuple[StockDocument, list[StockMovement]]]) -> tuple[StockDocument, bool]:
    """Write a new document with its movements; (document, created). A retry of the same request (same id) finds
    the document written the first time and writes nothing (found before planning, since what it moved is gone;
    or, when two copies race, by the conditional write of the new id)."""

    def attempt() -> tuple[StockDocument, bool]:
        existing = ports.store.get_stock_document(kind, doc_id)
        if existing is not None:
            return existing, False
        document, movements = make()
        try:
            _committed(ports, Commit(movements=movements, documents=[(document, None)]))
        except CommitRejected as rejected:
            if "document_new" not in rejected.labels:
                raise
            found = rejected.existing.get("document_new") or ports.store.get_stock_document(document.kind,
                                                                                             document.doc_id)
            if found is None:
                raise StaleWrite("document vanished") from None
            return found, False
        return document, True

    return with_retries(attempt)


def get_document(ports: Ports, kind: DocumentKind, doc_id: str) -> StockDocument:
    found = ports.store.get_stock_document(kind, doc_id)
    if found is None:
        raise NotFound(f"no {kind.value} {doc_id}", {kind.value: doc_id})
    return found


def _closed(ports: Ports, kind: DocumentKind, doc_id: str,
            step: Callable[[StockDocument], tuple[StockDocument, list[StockMovement]]]) -> StockDocument:
    """Apply a document's one step (its movements with the closed document, conditional on the version read).
    Already closed: nothing is applied again, the document is answered as it is (a retry is safe)."""

    def attempt() -> StockDocument:
        document = get_document(ports, kind, doc_id)
        if not document.is_open:
            return document
        closed, movements = step(document)
        _committed(ports, Commit(movements=movements, documents=[(closed, document.version)]))
        return closed

    return with_retries(attempt)


# ---- moves between states ------------------------------------------------------------------------------------

def move_state(ports: Ports, code: str, *, warehouse: str | None, from_state: StockState, to_state: StockState,
               quantity: int, reason: str, reference: str | None, actor: str,
               request_id: str | None = None) -> tuple[Sku, list[StockMovement]]:
    """Move available units of one warehouse between on-hand states (sellable, safety, damaged, quality hold):
    conditional on the source items, both sides and their ledger entries in one transaction, once per request."""
    for name, state in (("from_state", from_state), ("to_state", to_state)):
        if state not in ON_HAND_STATES:
            raise Unprocessable(f"{name}: units move by hand between sellable, safety, damaged and quality_hold",
                                {"fields": [name]})
    if from_state == to_state:
        raise Unprocessable("from_state and to_state are the same", {"fields": ["to_state"]})
    index = warehouses.warehouse_index(ports, warehouse)
    request = request_id or uuid.uuid4().hex

    def attempt() -> list[StockMovement]:
        at = _now()
        target = location(index, to_state)
        sku = catalog.stock_in(ports, catalog.get_sku(ports, code), target)
        into = _target_item(sku, target)
        movements = [m for item, units in _take_from(sku, location(index, from_state), quantity,
                                                     f"{warehouse or 'main'} {from_state.name.lower()}")
                     for m in stock.move(code, item, into, units, at=at, actor=actor, reason=reason,
                                         reference=reference)]
        return catalog.apply_once(ports, code, request, movements)

    movements = with_retries(attempt)
    return catalog.get_sku(ports, code), movements


# ---- expected deliveries -------------------------------------------------------------------------------------

def expect_delivery(ports: Ports, code: str, *, warehouse: str | None, quantity: int, expected_on: str,
                    reference: str | None, actor: str, request_id: str | None = None) -> tuple[StockDocument, bool]:
    """Record units expected in a warehouse on a date: they wait in its INCOMING item (not sellable), ledgered
    with the delivery's id; (delivery, created)."""
    index = warehouses.warehouse_index(ports, warehouse)
    doc_id = document_id(DocumentKind.DELIVERY, request_id)

    def make() -> tuple[StockDocument, list[StockMovement]]:
        at = _now()
        place = location(index, StockState.INCOMING)
        catalog.stock_in(ports, catalog.get_sku(ports, code), place)
        document = StockDocument(
            kind=DocumentKind.DELIVERY, doc_id=doc_id, status="expected", version=1, created_at=at, updated_at=at,
            actor=actor, listed_under=code, list_sort=expected_on,
            body={"sku": code, "warehouse": warehouse or "main", "warehouse_index": index, "quantity": quantity,
                  "expected_on": expected_on, "reference": reference})
        return document, [stock.adjust(code, stock_item(index, 0, StockState.INCOMING), quantity, at=at, actor=actor,
                                       reason="delivery_expected", reference=doc_id)]

    return _created(ports, DocumentKind.DELIVERY, doc_id, make)


def receive_delivery(ports: Ports, doc_id: str, *, received: int | None, into: StockState,
                     actor: str) -> StockDocument:
    """The delivery arrived: `received` units (all expected by default) move from INCOMING to sellable (or quality
    hold); units expected but not received leave INCOMING (ledgered `delivery_short`). Exactly once."""
    if into not in RECEIVING_STATES:
        raise Unprocessable("a delivery is received into sellable or quality_hold", {"fields": ["to_state"]})

    def step(document: StockDocument) -> tuple[StockDocument, list[StockMovement]]:
        body = document.body
        code, index, expected = body["sku"], int(body["warehouse_index"]), int(body["quantity"])
        units = expected if received is None else received
        if units > expected:
            raise Unprocessable(f"{units} received but {expected} expected: record the extra units as an adjustment",
                                {"fields": ["received"]})
        at = _now()
        target = location(index, into)
        sku = catalog.stock_in(ports, catalog.get_sku(ports, code), target)
        incoming = stock_item(index, 0, StockState.INCOMING)
        movements = stock.move(code, incoming, _target_item(sku, target), units, at=at, actor=actor,
                               reason="delivery_received", reference=doc_id) if units else []
        if units < expected:
            movements.append(stock.adjust(code, incoming, units - expected, at=at, actor=actor,
                                          reason="delivery_short", reference=doc_id))
        return document.closed(at=at, actor=actor, received=units, received_into=into.name.lower()), movements

    return _closed(ports, DocumentKind.DELIVERY, doc_id, step)


def open_deliveries(ports: Ports, code: str) -> list[StockDocument]:
    catalog.get_sku(ports, code)
    return ports.store.stock_documents(DocumentKind.DELIVERY, code)


# ---- transfers -----------------------------------------------------------------------------------------------

def _checked_lines(lines: list[tuple[str, int]]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for code, quantity in lines:
        merged[code] = merged.get(code, 0) + quantity
    if not 1 <= len(merged) <= MAX_DOCUMENT_LINES:
        raise Unprocessable(f"1 to {MAX_DOCUMENT_LINES} SKUs per document", {"fields": ["lines"]})
    return merged


def dispatch_transfer(ports: Ports, *, from_warehouse: str, to_warehouse: str, lines: list[tuple[str, int]],
                      reference: str | None, actor: str, request_id: str | None = None) -> tuple[StockDocument, bool]:
    """Units leave `from_warehouse`'s sellable items for the IN_TRANSIT item of `to_warehouse` (they belong to the
    destination while on their way, and are sold by neither), with the transfer record, in one transaction."""
    if from_warehouse == to_warehouse:
        raise Unprocessable("a transfer goes between two warehouses", {"fields": ["to_warehouse"]})
    source, destination = (warehouses.warehouse_index(ports, from_warehouse),
                           warehouses.warehouse_index(ports, to_warehouse))
    wanted = _checked_lines(lines)
    doc_id = document_id(DocumentKind.TRANSFER, request_id)

    def make() -> tuple[StockDocument, list[StockMovement]]:
        at = _now()
        movements: list[StockMovement] = []
        in_transit = location(destination, StockState.IN_TRANSIT)
        for code, quantity in wanted.items():
            sku = catalog.get_sku(ports, code)
            for place in (in_transit, location(destination)):  # the items the units pass through and end in
                sku = catalog.stock_in(ports, sku, place)
            movements += [m for item, units in _take_from(sku, location(source), quantity, f"{from_warehouse} sellable")
                          for m in stock.move(code, item, _target_item(sku, in_transit), units, at=at, actor=actor,
                                              reason="transfer_dispatched", reference=doc_id)]
        document = StockDocument(
            kind=DocumentKind.TRANSFER, doc_id=doc_id, status="dispatched", version=1, created_at=at, updated_at=at,
            actor=actor, body={"from_warehouse": from_warehouse, "to_warehouse": to_warehouse,
                               "from_index": source, "to_index": destination, "reference": reference,
                               "lines": [{"sku": code, "quantity": quantity} for code, quantity in wanted.items()]})
        return document, movements

    return _created(ports, DocumentKind.TRANSFER, doc_id, make)


def receive_transfer(ports: Ports, doc_id: str, *, actor: str) -> StockDocument:
    """The transfer arrived: its units move from the destination's IN_TRANSIT item to its sellable items. Exactly
    once (conditional on the transfer's version; a retry answers the received transfer)."""

    def step(document: StockDocument) -> tuple[StockDocument, list[StockMovement]]:
        at = _now()
        destination = int(document.body["to_index"])
        lines = document.body["lines"]
        entries = ports.store.get_catalog([line["sku"] for line in lines])
        movements = [m for line in lines
                     for m in stock.move(line["sku"], stock_item(destination, 0, StockState.IN_TRANSIT),
                                         _target_item(entries[line["sku"]], location(destination)), int(line["quantity"]),
                                         at=at, actor=actor, reason="transfer_received", reference=doc_id)]
        return document.closed(at=at, actor=actor, received_at=at), movements

    return _closed(ports, DocumentKind.TRANSFER, doc_id, step)


# ---- physical counts -----------------------------------------------------------------------------------------

def create_count(ports: Ports, *, lines: list[tuple[str, str, int]], reference: str | None, actor: str,
                 request_id: str | None = None) -> tuple[StockDocument, bool]:
    """A draft count: counted units per (SKU, warehouse). Nothing moves until it is approved."""
    keys = [(code, warehouse) for code, warehouse, _ in lines]
    if len(set(keys)) != len(keys):
        raise Unprocessable("each SKU and warehouse is counted once per count", {"fields": ["lines"]})
    if not 1 <= len(lines) <= MAX_DOCUMENT_LINES:
        raise Unprocessable(f"1 to {MAX_DOCUMENT_LINES} lines per count", {"fields": ["lines"]})
    for code, warehouse, _ in lines:
        warehouses.warehouse_index(ports, warehouse)
        catalog.get_sku(ports, code)
    doc_id = document_id(DocumentKind.COUNT, request_id)

    def make() -> tuple[StockDocument, list[StockMovement]]:
        at = _now()
        return StockDocument(
            kind=DocumentKind.COUNT, doc_id=doc_id, status="draft", version=1, created_at=at, updated_at=at,
            actor=actor, body={"reference": reference, "lines": [
                {"sku": code, "warehouse": warehouse, "counted": counted} for code, warehouse, counted in lines]}), []

    return _created(ports, DocumentKind.COUNT, doc_id, make)


def approve_count(ports: Ports, doc_id: str, *, actor: str) -> StockDocument:
    """Turn a count's differences into ledgered adjustments: for each line, counted minus the on_hand of the
    warehouse's sellable items as read at approval, added to or removed from them (removing only available
    units: 409 when reserved units would have to go), with the approved count, in one transaction. Exactly once."""

    def step(document: StockDocument) -> tuple[StockDocument, list[StockMovement]]:
        at = _now()
        movements: list[StockMovement] = []
        applied: list[dict[str, Any]] = []
        for line in document.body["lines"]:
            code, index = line["sku"], warehouses.warehouse_index(ports, line["warehouse"])
            sku = catalog.get_sku(ports, code)
            on_hand = sum(sku.shard_levels[i].on_hand for i in sku.items_in(index)
                          if index in sku.locations and i in sku.shard_levels)
            difference = int(line["counted"]) - on_hand
            if difference > 0:
                sku = catalog.stock_in(ports, sku, index)
            if difference:
                movements += [stock.adjust(code, item, units, at=at, actor=actor, reason="count_difference",
                                           reference=doc_id)
                              for item, units in catalog.adjustment_plan(sku, difference, index)]
            applied.append({**line, "on_hand": on_hand, "difference": difference})
        return document.closed(at=at, actor=actor, lines=applied, approved_at=at), movements

    return _closed(ports, DocumentKind.COUNT, doc_id, step)
