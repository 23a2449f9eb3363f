"""An in-memory `Store`, written from the protocol in functions/shop/services/ports.py (its docstrings are the
specification), not from the DynamoDB adapter: records are Python objects in dicts, and `commit` checks every
condition on a snapshot before it changes anything (all-or-nothing), under one lock.

Every record is copied in and out, as a database round trip would: a caller mutating what it read (the dicts
inside an order) never changes the stored record. tests/services_contract.py runs the same service tests on
this store and on DynamoDB Local, which is how this fake is shown faithful.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from shop.domain.after_sales import AfterSale
from shop.domain.cart_holds import CartHold
from shop.domain.errors import Unprocessable
from shop.domain.money import Money
from shop.domain.orders import Order, OrderStatus
from shop.domain.skus import Sku, StockLevels
from shop.domain.stock import StockMovement
from shop.domain.stock_documents import DocumentKind, StockDocument
from shop.domain.warehouses import Warehouses
from shop.services.ports import CapReached, Commit, CommitRejected, StaleWrite, StockShort
from shop.services.records import (
    AdjustmentApplied,
    IdempotentResponse,
    ImportRowApplied,
    KeyedRecord,
    PaidFromAddress,
    RestockApplied,
    UnpaidHoldings,
    WebhookReceipt,
)

MAX_PAGE = 100
MAX_RECORDS_PER_COMMIT = 100
_LEVELS = ("available", "reserved", "sold")


@dataclass(frozen=True)
class _Shard:
    levels: StockLevels
    active: bool
    price: Money


def _order_sort_key(order: Order) -> str:
    return f"{order.created_at}#{order.order_id}"


def _in_created_range(order: Order, created_from: str | None, created_to: str | None) -> bool:
    key = _order_sort_key(order)
    return (not created_from or key >= created_from) and (not created_to or key <= created_to + "\uffff")


def _oldest_pending_refund(order: Order) -> str | None:
    return min((entry.at or order.updated_at for entry in order.refunds if entry.pending), default=None)


class InMemoryStore:
    """A complete `Store` in memory (mypy checks it against the protocol in tests/fakes/__init__.py)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._catalog: dict[str, tuple[Sku, int]] = {}  # code -> (entry without levels, version)
        self._shards: dict[tuple[str, int], _Shard] = {}
        self._warehouses = Warehouses()
        self._ledger: dict[str, StockMovement] = {}  # movement id -> movement
        self._orders: dict[str, Order] = {}
        self._holds: dict[str, UnpaidHoldings] = {}  # customer -> unpaid orders and units per SKU
        self._records: dict[tuple[str, tuple[str, ...]], KeyedRecord] = {}  # (label, identity) -> record
        self._reconciliations: dict[tuple[str, date], dict[str, Any]] = {}
        self._after_sales: dict[str, AfterSale] = {}
        self._documents: dict[tuple[DocumentKind, str], StockDocument] = {}
        self._cart_holds: dict[str, CartHold] = {}
        self.commits = 0  # commits applied (for tests that count writes)

    # ---- catalog and stock -------------------------------------------------

    def get_catalog(self, codes: list[str], *, consistent: bool = True) -> dict[str, Sku]:
        with self._lock:
            return {code: self._catalog[code][0] for code in codes if code in self._catalog}

    def get_warehouses(self, *, cached: bool = False) -> Warehouses:
        with self._lock:
            return self._warehouses

    def save_warehouses(self, warehouses: Warehouses) -> None:
        with self._lock:
            if warehouses.version != self._warehouses.version:
                raise StaleWrite("the warehouses changed since they were read")
            self._warehouses = replace(warehouses, version=warehouses.version + 1)

    def get_catalog_and_response(self, codes: list[str], customer_id: str, key: str, *, consistent: bool = True
                                 ) -> tuple[dict[str, Sku], IdempotentResponse | None]:
        with self._lock:
            return self.get_catalog(codes), self.idempotent_response(customer_id, key)

    def shard_levels(self, shards: dict[str, list[int]], *, consistent: bool = True
                     ) -> dict[str, dict[int, StockLevels]]:
        with self._lock:
            return {code: {n: self._shards[(code, n)].levels for n in numbers if (code, n) in self._shards}
                    for code, numbers in shards.items()}

    def get_sku(self, code: str) -> Sku | None:
        with self._lock:
            if code not in self._catalog:
                return None
            sku = self._catalog[code][0]
            return sku.with_shard_levels(self.shard_levels({code: sku.stock_items()})[code])

    def set_stock_state(self, code: str, state: str, expected: str) -> bool:
        with self._lock:
            if code not in self._catalog:
                return False
            sku, version = self._catalog[code]
            if sku.stock_state != expected:
                return False
            self._catalog[code] = (replace(sku, stock_state=state), version)
            return True

    def advance_backorder_read_from(self, code: str, at: str) -> None:
        with self._lock:
            if code in self._catalog:
                sku, version = self._catalog[code]
                if sku.backorder_read_from is None or sku.backorder_read_from < at:
                    self._catalog[code] = (replace(sku, backorder_read_from=at), version)

    def catalog_version(self, code: str) -> int | None:
        with self._lock:
            return self._catalog[code][1] if code in self._catalog else None

    def ledger(self, code: str, limit: int, cursor: str | None, *, items: list[int] | None = None,
               since: str | None = None) -> tuple[list[StockMovement], str | None]:
        with self._lock:
            if items is None:
                items = self._catalog[code][0].stock_items() if code in self._catalog else [0]
            wanted = set(items)
            movements = [m for m in self._ledger.values()
                         if m.sku == code and m.shard in wanted and (since is None or m.at >= since)]
        return _page(movements, key=lambda m: f"{m.at}#{m.movement_id}", newest_first=False,
                     scope=f"ledger:{code}:{sorted(wanted)}", limit=limit, cursor=cursor)

    def ledger_between(self, code: str, at_from: str | None, at_to: str | None) -> Iterator[StockMovement]:
        with self._lock:
            movements = [m for m in self._ledger.values() if m.sku == code and (at_from is None or m.at >= at_from)
                         and (at_to is None or m.at <= at_to + "\uffff")]
        yield from sorted(movements, key=lambda m: f"{m.at}#{m.movement_id}")

    # ---- orders -------------------------------------------------------------

    def get_order(self, order_id: str) -> Order | None:
        with self._lock:
            order = self._orders.get(order_id)
            return copy.deepcopy(order)

    def orders_by_id(self, order_ids: list[str]) -> list[Order]:
        with self._lock:
            return [copy.deepcopy(self._orders[i]) for i in dict.fromkeys(order_ids) if i in self._orders]

    def orders_created_between(self, created_from: str, created_to: str) -> Iterator[Order]:
        with self._lock:
            found = [copy.deepcopy(o) for o in self._orders.values()
                     if _in_created_range(o, created_from, created_to)]
        yield from found

    def order_id_by_number(self, order_number: str) -> str | None:
        with self._lock:
            return next((o.order_id for o in self._orders.values() if o.order_number == order_number), None)

    def customer_orders(self, customer_id: str, limit: int, cursor: str | None, *,
                        status: str | None = None) -> tuple[list[Order], str | None]:
        return self.orders(status=status, customer_id=customer_id, created_from=None, created_to=None,
                           limit=limit, cursor=cursor, _scope=f"customer:{customer_id}:{status}")

    def orders(self, *, status: str | None, customer_id: str | None, created_from: str | None,
               created_to: str | None, limit: int, cursor: str | None, phone_digest: str | None = None,
               _scope: str | None = None) -> tuple[list[Order], str | None]:
        with self._lock:
            found = [copy.deepcopy(o) for o in self._orders.values()
                     if (status is None or o.status.value == status)
                     and (customer_id is None or o.customer_id == customer_id)
                     and (phone_digest is None or o.phone_digest == phone_digest)
                     and _in_created_range(o, created_from, created_to)]
        scope = _scope or f"orders:{status}:{customer_id}:{phone_digest}"
        return _page(found, key=_order_sort_key, newest_first=True, scope=scope, limit=limit, cursor=cursor)

    def skus(self, *, states: tuple[str, ...] | None, limit: int, cursor: str | None) -> tuple[list[Sku], str | None]:
        with self._lock:
            codes = [code for code, (sku, _) in self._catalog.items() if states is None or sku.stock_state in states]
        found = [sku for sku in (self.get_sku(code) for code in codes) if sku is not None]
        return _page(found, key=lambda sku: sku.sku, newest_first=False, scope=f"skus:{states}", limit=limit,
                     cursor=cursor)

    def overdue_pending_order_ids(self, now_iso: str, limit: int = 100) -> list[str]:
        with self._lock:
            due = sorted((o.expires_at, o.order_id) for o in self._orders.values()
                         if o.status is OrderStatus.PENDING_PAYMENT and o.expires_at <= now_iso)
        return [order_id for _, order_id in due[:max(0, limit)]]

    def pending_refund_order_ids(self, before_iso: str, limit: int = 100) -> list[str]:
        with self._lock:
            due = sorted((since, o.order_id) for o in self._orders.values()
                         if o.status is not OrderStatus.PENDING_PAYMENT
                         and (since := _oldest_pending_refund(o)) is not None and since <= before_iso)
        return [order_id for _, order_id in due[:max(0, limit)]]

    def completion_due_order_ids(self, now_iso: str, limit: int = 100) -> list[str]:
        with self._lock:
            due = sorted((o.complete_after, o.order_id) for o in self._orders.values()
                         if o.status is OrderStatus.DELIVERED and o.complete_after and not o.open_after_sales
                         and o.complete_after <= now_iso)
        return [order_id for _, order_id in due[:max(0, limit)]]

    def get_cart_hold(self, hold_id: str) -> CartHold | None:
        with self._lock:
            return copy.deepcopy(self._cart_holds.get(hold_id))

    def overdue_cart_hold_ids(self, now_iso: str, limit: int = 100) -> list[str]:
        with self._lock:
            due = sorted((h.expires_at, h.hold_id) for h in self._cart_holds.values()
                         if h.active and h.expires_at <= now_iso)
        return [hold_id for _, hold_id in due[:max(0, limit)]]

    def get_after_sale(self, after_sale_id: str) -> AfterSale | None:
        with self._lock:
            return copy.deepcopy(self._after_sales.get(after_sale_id))

    def after_sales(self, *, status: str | None, limit: int, cursor: str | None) -> tuple[list[AfterSale], str | None]:
        with self._lock:
            found = [copy.deepcopy(a) for a in self._after_sales.values() if status is None or a.status.value == status]
        return _page(found, key=lambda a: f"{a.created_at}#{a.after_sale_id}", newest_first=True,
                     scope=f"after_sales:{status}", limit=limit, cursor=cursor)

    # ---- keyed records and reconciliation results ---------------------------

    def _record(self, label: str, *identity: str) -> Any:
        with self._lock:
            return copy.deepcopy(self._records.get((label, identity)))

    def idempotent_response(self, customer_id: str, key: str) -> IdempotentResponse | None:
        return self._record(IdempotentResponse.label, customer_id, key)

    def webhook_receipt(self, provider: str, event_id: str) -> WebhookReceipt | None:
        return self._record(WebhookReceipt.label, provider, event_id)

    def restock_applied(self, message_id: str) -> RestockApplied | None:
        return self._record(RestockApplied.label, message_id)

    def adjustment_applied(self, sku: str, request_id: str) -> AdjustmentApplied | None:
        return self._record(AdjustmentApplied.label, sku, request_id)

    def import_rows_applied(self, file_id: str, lines: list[int]) -> set[int]:
        with self._lock:
            return {line for line in lines if (ImportRowApplied.label, (file_id, str(line))) in self._records}

    def get_stock_document(self, kind: DocumentKind, doc_id: str) -> StockDocument | None:
        with self._lock:
            return copy.deepcopy(self._documents.get((kind, doc_id)))

    def stock_documents(self, kind: DocumentKind, listed_under: str, limit: int = 100) -> list[StockDocument]:
        with self._lock:
            found = [copy.deepcopy(d) for (k, _), d in self._documents.items()
                     if k == kind and d.listed_under == listed_under]
        return sorted(found, key=lambda d: (d.list_sort, d.doc_id))[:max(1, min(limit, MAX_PAGE))]

    def count_paid_from_address(self, ip_hash: str, since: str) -> int:
        with self._lock:
            return sum(1 for r in self._records.values()
                       if isinstance(r, PaidFromAddress) and r.ip_hash == ip_hash and r.paid_at >= since)

    def put_reconciliation(self, provider: str, day: date, result: dict[str, Any]) -> None:
        with self._lock:
            self._reconciliations[(provider, day)] = copy.deepcopy(result)

    def get_reconciliation(self, provider: str, day: date) -> dict[str, Any] | None:
        with self._lock:
            return copy.deepcopy(self._reconciliations.get((provider, day)))

    # ---- the one write path -------------------------------------------------

    def commit(self, commit: Commit) -> None:
        with self._lock:
            deltas = commit.shard_deltas()
            holds = commit.holdings_change()
            records = (len(deltas) + len(commit.movements) + len(commit.records) + 2 * bool(commit.new_order)
                       + bool(commit.order_update) + bool(holds) + bool(commit.after_sale) + len(commit.documents) + bool(commit.cart_hold)
                       + (1 + commit.sku_put[0].shard_items if commit.sku_put else 0))
            if records == 0:
                return
            if records > MAX_RECORDS_PER_COMMIT:
                raise Unprocessable("too many items for one transaction", {"items": records})
            self._check_one_write_per_record(commit, deltas)
            rejected, existing = self._rejected(commit, holds)
            if rejected:
                raise CommitRejected(rejected, existing)
            if self._stale(commit):
                raise StaleWrite("what the commit was computed from changed")
            capped = self._capped(commit, deltas)
            if capped:
                raise CapReached(set(capped), capped)
            short = self._short(commit, deltas)
            if short:
                raise StockShort(short)
            self._apply(commit, deltas, holds)
            self.commits += 1

    def _check_one_write_per_record(self, commit: Commit, deltas: dict[tuple[str, int], StockLevels]) -> None:
        """A transaction writes each record once: two writes of one record is a programming error."""
        shards = list(deltas) + ([(commit.sku_put[0].sku, n) for n in commit.sku_put[0].stock_items()]
                                 if commit.sku_put else [])
        orders = [o.order_id for o in (commit.new_order, commit.order_update and commit.order_update[1]) if o]
        keys = [(record.label, record.identity) for record in commit.records]
        documents = [(d.kind, d.doc_id) for d, _ in commit.documents]
        for written in (shards, orders, keys, [m.movement_id for m in commit.movements], documents):
            if len(written) != len(set(written)):
                raise ValueError(f"a commit writes one record twice: {sorted(map(str, written))}")

    def _rejected(self, commit: Commit, holds: tuple[str, int, dict[str, int]] | None
                  ) -> tuple[set[str], dict[str, Any]]:
        rejected: set[str] = set()
        existing: dict[str, Any] = {}
        for record in commit.records:
            found = self._records.get((record.label, record.identity))
            if found is not None:
                rejected.add(record.label)
                existing[record.label] = copy.deepcopy(found)
        if commit.new_order and commit.new_order.order_id in self._orders:
            rejected.add("order_new")
        if commit.new_order and self.order_id_by_number(commit.new_order.order_number) is not None:
            rejected.add("order_number")
        if commit.sku_put and commit.sku_put[1] is None and commit.sku_put[0].sku in self._catalog:
            rejected.add("sku_new")
        if commit.after_sale and commit.after_sale[1] is None and commit.after_sale[0].after_sale_id in self._after_sales:
            rejected.add("after_sale_new")
            existing["after_sale_new"] = {}
        for document, expected in commit.documents:
            stored = self._documents.get((document.kind, document.doc_id))
            if expected is None and stored is not None:
                rejected.add("document_new")
                existing["document_new"] = copy.deepcopy(stored)
        limits = commit.hold_limits
        if commit.new_order and limits and holds:
            customer, orders, units = holds
            held = self._holds.get(customer, UnpaidHoldings())
            over_orders = bool(limits.max_unpaid_orders) and held.orders >= limits.max_unpaid_orders
            over_units = bool(limits.max_unpaid_units_per_sku) and any(
                held.units.get(sku, 0) + quantity > limits.max_unpaid_units_per_sku
                for sku, quantity in units.items())
            if over_orders or over_units:
                rejected.add("holds")
                existing["holds"] = copy.deepcopy(held)
        return rejected, existing

    def _stale(self, commit: Commit) -> bool:
        if commit.order_update:
            before, _ = commit.order_update
            stored = self._orders.get(before.order_id)
            if stored is None or (stored.version, stored.status) != (before.version, before.status):
                return True
        if commit.sku_put and commit.sku_put[1] is not None:
            sku, version = commit.sku_put
            if self.catalog_version(sku.sku) != version:
                return True
        if commit.after_sale and commit.after_sale[1] is not None:
            sale, version = commit.after_sale
            stored_sale = self._after_sales.get(sale.after_sale_id)
            if stored_sale is None or stored_sale.version != version:
                return True
        for document, expected in commit.documents:
            stored_document = self._documents.get((document.kind, document.doc_id))
            if expected is not None and (stored_document is None or stored_document.version != expected):
                return True
        if commit.cart_hold:
            hold, expected = commit.cart_hold
            stored_hold = self._cart_holds.get(hold.hold_id)
            if (stored_hold is None) != (expected is None) or (stored_hold and stored_hold.version != expected):
                return True
            live_at = commit.cart_hold_live_at
            if stored_hold and live_at and not (stored_hold.active and stored_hold.expires_at > live_at):
                return True
        return any(m.movement_id in self._ledger for m in commit.movements)

    def _opening_levels(self, commit: Commit, key: tuple[str, int]) -> StockLevels:
        opening = commit.openings()[key]
        return self._shards[key].levels if key in self._shards else StockLevels(opening, opening, 0, 0)

    def _capped(self, commit: Commit, deltas: dict[tuple[str, int], StockLevels]) -> dict[str, int]:
        """Items of `commit.opening` (existing, or from their opening levels) that hold less than their delta lowers."""
        capped: dict[str, int] = {}
        for key, delta in deltas.items():
            if key in commit.openings():
                levels = self._opening_levels(commit, key)
                if any(getattr(levels, level) < -getattr(delta, level) for level in _LEVELS if getattr(delta, level) < 0):
                    capped[key[0]] = self._shards[key].levels.available if key in self._shards else 0
        return capped

    def _short(self, commit: Commit, deltas: dict[tuple[str, int], StockLevels]) -> set[str]:
        short: set[str] = set()
        for (code, n), delta in deltas.items():
            if (code, n) in commit.openings():
                continue  # _capped
            shard = self._shards.get((code, n))
            guard = commit.catalog_guards.get(code)
            keep = {"available": 1} if (code, n) in commit.keep_available else {}
            if shard is None or any(getattr(shard.levels, level) < -getattr(delta, level) + keep.get(level, 0)
                                    for level in _LEVELS if getattr(delta, level) < 0):
                short.add(code)
            elif guard is not None and (not shard.active or shard.price != guard.price):
                short.add(code)
        return short

    def _apply(self, commit: Commit, deltas: dict[tuple[str, int], StockLevels],
               holds: tuple[str, int, dict[str, int]] | None) -> None:
        if commit.sku_put:
            sku, version = commit.sku_put
            self._catalog[sku.sku] = (replace(sku, levels=StockLevels(), shard_levels={}), (version or 0) + 1)
            for n in sku.stock_items():
                levels = self._shards[(sku.sku, n)].levels if (sku.sku, n) in self._shards else StockLevels()
                self._shards[(sku.sku, n)] = _Shard(levels, sku.active, sku.price)
        for key, delta in deltas.items():
            if key in commit.openings() and key not in self._shards:  # no catalog copy is kept on an opening item
                self._shards[key] = _Shard(self._opening_levels(commit, key), True, Money(0, "XXX"))
            self._shards[key] = replace(self._shards[key], levels=self._shards[key].levels + delta)
        for movement in commit.movements:
            self._ledger[movement.movement_id] = movement
        for order in (commit.new_order, commit.order_update and commit.order_update[1]):
            if order:
                self._orders[order.order_id] = copy.deepcopy(order)
        if holds:
            customer, orders, units = holds
            held = self._holds.get(customer, UnpaidHoldings())
            self._holds[customer] = UnpaidHoldings(held.orders + orders, {
                code: held.units.get(code, 0) + units.get(code, 0) for code in set(held.units) | set(units)})
        for record in commit.records:
            self._records[(record.label, record.identity)] = copy.deepcopy(record)
        if commit.after_sale:
            self._after_sales[commit.after_sale[0].after_sale_id] = copy.deepcopy(commit.after_sale[0])
        for document, _ in commit.documents:
            self._documents[(document.kind, document.doc_id)] = copy.deepcopy(document)
        if commit.cart_hold:
            self._cart_holds[commit.cart_hold[0].hold_id] = copy.deepcopy(commit.cart_hold[0])


def _page(records: list[Any], *, key: Any, newest_first: bool, scope: str, limit: int,
          cursor: str | None) -> tuple[list[Any], str | None]:
    """One page of `records` sorted by `key` after the cursor's key; the next cursor if more follow."""
    after = _decode_cursor(cursor, scope)
    ordered = sorted(records, key=key, reverse=newest_first)
    if after is not None:
        ordered = [r for r in ordered if (key(r) < after if newest_first else key(r) > after)]
    want = max(1, min(limit, MAX_PAGE))
    page = ordered[:want]
    more = len(ordered) > want
    return page, _encode_cursor(scope, key(page[-1])) if more else None


def _encode_cursor(scope: str, last: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([scope, last]).encode()).decode()


def _decode_cursor(cursor: str | None, scope: str) -> str | None:
    if not cursor:
        return None
    try:
        plain = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        plain = None
    if not (isinstance(plain, list) and len(plain) == 2 and plain[0] == scope and isinstance(plain[1], str)):
        raise Unprocessable("cursor is not valid", {"fields": ["cursor"]})
    return plain[1]
