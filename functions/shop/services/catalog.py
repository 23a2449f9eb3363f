"""Catalog and stock use cases for operators: create/update SKUs (with their stock shards), adjust stock."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from shop.domain import clock, shards, stock
from shop.domain.backorders import BACKORDER_ITEM, BACKORDER_LOCATION
from shop.domain.errors import Conflict, InsufficientStock, NotFound, Unprocessable
from shop.domain.skus import MAX_STOCK_ITEMS, Sku, SkuTerms
from shop.domain.skus import StockPolicy as StockPolicy  # callers name it catalog.StockPolicy with SkuDetails
from shop.domain.stock import StockMovement
from shop.domain.warehouses import shard_of, stock_item
from shop.services import adjustments, inventory, pools, warehouses
from shop.services.ports import Commit, CommitRejected, Ports, StaleWrite, StockShort
from shop.services.records import KeyedRecord
from shop.services.retry import with_retries


@dataclass(frozen=True)
class SkuDetails(SkuTerms):
    on_hand: int | None = None  # when given, stock is set to it through a ledgered adjustment


def get_sku(ports: Ports, code: str) -> Sku:
    sku = ports.store.get_sku(code)
    if sku is None:
        raise NotFound(f"no SKU {code}", {"sku": code})
    return sku


def upsert_sku(ports: Ports, code: str, details: SkuDetails, *, actor: str, reason: str | None = None,
               reference: str | None = None, record: KeyedRecord | None = None, warehouse: int = 0
               ) -> tuple[Sku, bool]:
    """Create or replace a SKU's catalog details; returns (sku with its stock, created).

    The catalog entry and every shard's copy of what an order's write checks (active, price) change in
    one transaction, conditional on the catalog version read. A changed shard count takes effect for
    new orders at once; units in shards no longer used are moved to the others (ledgered).

    A new `on_hand` (of `warehouse`, by index: the main one unless given) is one ledgered adjustment (`reason`,
    default initial_stock or on_hand_set, with `reference`). `record` (a keyed record, e.g. an import row's) is written with that adjustment, or alone
    after the catalog write when no stock moves: if it exists already, no stock moves (the change was applied
    before; the catalog write, the same terms again, is harmless)."""

    def attempt() -> tuple[Sku, bool]:
        current = ports.store.get_sku(code)
        version = ports.store.catalog_version(code) if current else None
        at = clock.iso(clock.now())
        if current and current.price.currency != details.price.currency and current.levels.reserved:
            raise Conflict("cannot change the currency of a SKU with reserved units", {"sku": code})
        base = current or Sku(sku=code, name=details.name, price=details.price, created_at=at)
        updated = replace(base, **details.terms(), updated_at=at,
                          shard_items=max(base.shard_items if current else 1, details.stock_shards))
        if details.backorder_limit:
            _check_backorders(updated)
            if BACKORDER_LOCATION not in updated.locations:  # the allowance item is created with the catalog entry
                updated = replace(updated, locations=(*updated.locations, BACKORDER_LOCATION))
        if len(updated.stock_items()) > MAX_STOCK_ITEMS:
            raise Unprocessable(f"{code}: at most {MAX_STOCK_ITEMS} stock items (warehouses x shards); this SKU is "
                                f"in {len(updated.locations)} locations", {"fields": ["stock_shards"]})
        try:
            ports.store.commit(Commit(sku_put=(updated, version)))
        except CommitRejected as rejected:
            if "sku_new" in rejected.labels:  # created concurrently: update it instead
                raise StaleWrite("sku created concurrently") from None
            raise
        return updated, current is None

    saved, created = with_retries(attempt)
    if BACKORDER_LOCATION in saved.locations:  # the allowance holds the limit (units waiting for stock included)
        pools.set_cap(ports, code, BACKORDER_ITEM, saved.backorder_limit, actor=actor, reason="backorder_limit")
    if details.on_hand is not None or record is not None:
        _set_on_hand(ports, code, details.on_hand, actor=actor,
                     reason=reason or ("initial_stock" if created else "on_hand_set"), reference=reference,
                     record=record, warehouse=warehouse)
    if saved.shard_items > 1:  # spread new stock, fill new shards, empty retired ones
        inventory.rebalance(ports, code)
    inventory.record_stock_state(ports, code)
    return get_sku(ports, code), created


def _check_backorders(sku: Sku) -> None:
    """Backorders are units reserved beyond stock when the order is placed, to ship later: a SKU sold at payment
    (deduct_on_payment) or a virtual one (sold against caps) has none."""
    if sku.stock_policy is not StockPolicy.RESERVE_ON_ORDER or sku.virtual is not None:
        raise Unprocessable("backorders need a physical SKU with stock_policy reserve_on_order",
                            {"fields": ["backorder_limit"], "sku": sku.sku})


def _set_on_hand(ports: Ports, code: str, target: int | None, *, actor: str, reason: str, warehouse: int = 0,
                 reference: str | None = None, record: KeyedRecord | None = None) -> None:
    """Move the warehouse's on_hand to `target` by one ledgered adjustment computed from a fresh read: orders
    racing the operator still count (the adjustment is arithmetic, not an overwrite). `record` is written with
    it (alone when nothing moves); when it exists already, nothing is written."""

    def attempt() -> None:
        sku = get_sku(ports, code)
        if target is not None:
            sku = stock_in(ports, sku, warehouse)
        held = sum(sku.shard_levels[i].on_hand for i in sku.items_in(warehouse) if i in sku.shard_levels)
        delta = 0 if target is None else target - held
        if delta == 0 and record is None:
            return
        at = clock.iso(clock.now())
        movements = [stock.adjust(code, item, units, at=at, actor=actor, reason=reason, reference=reference)
                     for item, units in (adjustment_plan(sku, delta, warehouse) if delta else [])]
        try:
            ports.store.commit(Commit(movements=movements, records=[record] if record else []))
        except CommitRejected as rejected:
            if record is None or record.label not in rejected.labels:
                raise
            return  # applied before (a re-posted import row): nothing moves twice
        except StockShort:
            raise StaleWrite("stock moved while setting on_hand") from None
        if movements:
            inventory.announce_stock_state(ports, movements)

    with_retries(attempt)


def adjustment_plan(sku: Sku, delta: int, warehouse: int) -> list[tuple[int, int]]:
    """(item, signed units): units added go to one live shard of the warehouse; units removed come from its
    shards that have them available."""
    if delta > 0:
        return [(stock_item(warehouse, shards.pick_shard(sku.stock_shards)), delta)]
    available = {shard_of(i): sku.shard_levels[i].available for i in sku.items_in(warehouse) if i in sku.shard_levels}
    try:
        return [(stock_item(warehouse, shard), -units)
                for shard, units in shards.plan_take(sku.sku, -delta, available, sku.stock_shards)]
    except InsufficientStock:
        total = sum(max(0, a) for a in available.values())
        raise InsufficientStock(
            f"{sku.sku}: cannot remove {-delta}, only {total} available (reserved units stay reserved)",
            {"shortages": [{"sku": sku.sku, "requested": -delta, "available": total}]}) from None


def stock_in(ports: Ports, sku: Sku, warehouse: int) -> Sku:
    """The SKU with `warehouse` among its stock locations: the first time, the catalog entry gains it and the
    warehouse's items are created (empty, with the price and active copies an order's write checks), before
    any stock is put there. Conditional on the catalog version (StaleWrite: read again)."""
    if warehouse in sku.locations:
        return sku
    stocked = replace(sku, locations=(*sku.locations, warehouse))
    if len(stocked.stock_items()) > MAX_STOCK_ITEMS:
        raise Unprocessable(f"{sku.sku}: at most {MAX_STOCK_ITEMS} stock items (warehouses x shards)",
                            {"fields": ["warehouse"]})
    try:
        ports.store.commit(Commit(sku_put=(stocked, ports.store.catalog_version(sku.sku))))
    except CommitRejected:
        raise StaleWrite("the SKU changed while adding a warehouse") from None
    return stocked


def adjust_stock(ports: Ports, code: str, delta: int, *, reason: str, actor: str,
                 request_id: str | None = None, warehouse: str | None = None) -> tuple[Sku, list[StockMovement]]:
    """One adjustment per request id: a retry after a commit whose answer was lost applies nothing twice.
    Units added go to one live shard of the warehouse (the main one unless named); units removed come from
    its shards that have them available."""
    request = request_id or uuid.uuid4().hex
    index = warehouses.warehouse_index(ports, warehouse)

    def attempt() -> list[StockMovement]:
        at = clock.iso(clock.now())
        stock.adjust(code, 0, delta, at=at, actor=actor, reason=reason)  # validates delta
        sku = get_sku(ports, code)
        sku = stock_in(ports, sku, index) if delta > 0 else sku
        movements = [stock.adjust(code, item, units, at=at, actor=actor, reason=reason)
                     for item, units in adjustment_plan(sku, delta, index)]
        return apply_once(ports, code, request, movements)

    movements = with_retries(attempt)
    return get_sku(ports, code), movements


def apply_once(ports: Ports, code: str, request: str, movements: list[StockMovement]) -> list[StockMovement]:
    """An operator's movements on SKU `code`, planned from a read, written once per request id
    (adjustments.commit_once): a guard that failed since means read and plan again (StaleWrite). The movements
    written now are announced (stock events); a retry of the request gets those it wrote the first time."""
    try:
        applied_before = adjustments.commit_once(ports, code, request, movements)
    except StockShort:
        raise StaleWrite("stock moved while planning") from None
    if applied_before is not None:
        return applied_before
    inventory.announce_stock_state(ports, movements)
    return movements

