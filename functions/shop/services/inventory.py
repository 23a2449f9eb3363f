"""Stock movements of an order's lines, stock events over all shards, and rebalancing between shards.

Releases, sales and returns go to the shards the order's lines hold their units on (recorded on
the line), so no read precedes them. Taking *available* units (placing an order, a payment that
finds no reservation) goes through services/allocation.py.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TypeVar

from aws_lambda_powertools import Logger

from shop.domain import clock, shards, stock
from shop.domain.backorders import BACKORDER_ITEM, BACKORDER_LOCATION, is_backorder_item
from shop.domain.orders import Order
from shop.domain.skus import Sku, availability_of
from shop.domain.warehouses import LOCATIONS_PER_STATE, is_sellable, stock_item, warehouse_index_of
from shop.services import pools, warehouses
from shop.services.allocation import StockLayout, take_units
from shop.services.ports import CapReached, Commit, Ports, StaleWrite, StockShort
from shop.services.retry import with_retries
from shop.settings import get_settings

T = TypeVar("T")
logger = Logger(child=True)


def release_order_lines(order: Order, at: str, actor: str, reason: str) -> list[stock.StockMovement]:
    """The order's reservation goes back to available, on the shards that hold it."""
    held = order.reserved_quantities()
    return [stock.deallocate(line.sku, shard, units, at=at, actor=actor, order_id=order.order_id, reason=reason)
            for line in order.lines if line.sku in held for shard, units, _ in line.allocations]


def sell_reserved_lines(order: Order, at: str, actor: str) -> list[stock.StockMovement]:
    """The order's reserved units become sales, on the shards that hold them."""
    held = order.reserved_quantities()
    return [stock.sell_allocated(line.sku, shard, units, at=at, actor=actor, order_id=order.order_id)
            for line in order.lines if line.sku in held for shard, units, _ in line.allocations
            if not is_backorder_item(shard)]  # backordered units stay reserved until stock comes (backorders.py)


def sell_order(ports: Ports, order: Order, at: str, actor: str,
               commit: Callable[[list[stock.StockMovement], Order], T]) -> T:
    """The order's units become sales: reserved ones on the shards holding them; the others (a
    deduct_on_payment line, a late payment after the reservation ended) are taken from available
    units through the allocation loop. `commit(movements, order with its lines' shards)` writes them
    with whatever else the caller commits. Raises InsufficientStock when the units are gone."""
    held = order.reserved_quantities()
    from_reservation = sell_reserved_lines(order, at, actor)
    lines = tuple(line for line in order.lines if line.sku not in held)
    if not lines:
        return commit(from_reservation, order)
    catalog = ports.store.get_catalog([line.sku for line in lines], consistent=False)
    # A presale line takes from its SKU's pool; a virtual one from its caps (its day's: the day of the payment).
    taking = {line.sku: line.quantity for line in lines if line.sku not in catalog
              or pools.takes_stock(line, catalog[line.sku])}
    day_caps = pools.day_cap_takes(order, catalog, clock.parse_iso(at), get_settings().shop_time_zone, lines) \
        if any(line.virtual for line in lines) else {}
    presale = pools.presale_layout_skus(order, taking)
    layouts, registry = warehouses.layouts_for(ports, catalog, order.shipping_address)
    layouts.update({code: StockLayout((terms.location,), 1) for code in presale if (terms := catalog[code].presale)})

    def commit_plan(plan: dict[str, list[tuple[int, int]]]) -> T:
        plan = pools.with_day_caps(plan, day_caps)
        taken = [pools.opened(stock.sell_unallocated(code, shard, units, at=at, actor=actor, order_id=order.order_id),
                              day_caps) for code, parts in plan.items() for shard, units in parts]
        return commit(from_reservation + taken, order.with_allocations(plan, registry))

    def read_available(codes: list[str]) -> dict[str, dict[int, int]]:
        return available_by_shard(ports, ports.store.get_catalog(codes), presale=presale)

    try:
        return take_units(taking, {code: layouts.get(code, StockLayout()) for code in taking},
                          commit=commit_plan, read_available=read_available)
    except CapReached as capped:
        raise pools.daily_cap_reached(capped, taking) from None


def available_by_shard(ports: Ports, catalog: dict[str, Sku], *, presale: set[str] | frozenset[str] = frozenset(),
                       backorders: bool = False) -> dict[str, dict[int, int]]:
    """Available units per stock item offered to orders: sellable ones (a virtual SKU's total cap), or the presale
    pool for the SKUs in `presale`; with `backorders`, the backorder allowance of SKUs that allow them."""
    def offered(code: str, sku: Sku) -> list[int]:
        if code in presale and sku.presale:
            return [sku.presale.item]
        return sku.sellable_items() + ([BACKORDER_ITEM] if backorders and sku.takes_backorders else [])

    levels = ports.store.shard_levels({code: offered(code, sku) for code, sku in catalog.items()})
    return {code: {n: level.available for n, level in per_shard.items()} for code, per_shard in levels.items()}


def announce_stock_state(ports: Ports, movements: list[stock.StockMovement], catalog: dict[str, Sku] | None = None,
                         *, ran_short: frozenset[str] | set[str] = frozenset(),
                         known_available: dict[str, int] | None = None, left_stocked: bool = False) -> None:
    """stock.low / stock.sold_out when a SKU's available units over all its shards cross its threshold or
    zero; each state change is recorded on the catalog entry (conditionally) and announced once.

    The order path reads no shard for this unless it has reason to: a SKU is looked at whole when a
    shard ran short during the request (`ran_short`: that is how a sell-out shows), when its recorded
    state is not in_stock (units came back), or when a shard the change touched shows no more than its
    share of the SKU's low-stock threshold (zero without one: a shard it took units from is empty; one cheap
    read). `left_stocked` says the caller's writes kept an available unit on every shard they took from,
    except on SKUs in `ran_short` (placement: a write planned without a read is guarded by
    `Commit.keep_available`, so the order that takes a shard's last unit is one that ran short and read it):
    a SKU without threshold then needs no probe at all, and its sell-out is still announced by the request
    that took the last unit, with no delay. Every path that moves stock calls this after its commit: placement,
    payment (reserved and deduct-on-payment lines, late payments that take units again), approval of a held
    order, operators' adjustments and on_hand changes, expiry and cancellation releases, restocks. Only
    crossings downwards are announced (in_stock -> low_stock, anything -> sold_out); units coming back record
    the state silently."""
    codes = sorted({m.sku for m in movements} | set(ran_short))
    if not codes:
        return
    catalog = {**ports.store.get_catalog(codes, consistent=False), **(catalog or {})}
    # Sellable units came back on sale (an arrival, a release, a return): backorders waiting for them go first. So
    # does an order that just backordered units: stock may have arrived (and its fill found no one waiting) after
    # the order read none; fill reads the SKU's levels first and stops there when nothing is on the shelf.
    arrived = sorted({m.sku for m in movements if (m.delta.available > 0 and is_sellable(m.shard)
                                                   or m.delta.reserved > 0 and is_backorder_item(m.shard))
                      and (sku := catalog.get(m.sku)) is not None and BACKORDER_LOCATION in sku.locations})
    # Backordered units released from an allowance (an order cancelled or expired, a refund): one kept above a
    # lowered limit goes down to it (fill does so after filling).
    left = sorted({m.sku for m in movements if m.delta.available > 0 and is_backorder_item(m.shard)})
    if arrived or left:
        movements = [*movements, *_fill_backorders(ports, arrived, left)]
    for code in codes:
        sku = catalog.get(code)
        if sku is None:
            continue
        if sku.stock_state == "in_stock" and code not in ran_short:
            # Without a threshold only a sell-out is news: a shard this change took units from that is now empty
            # (the last units sold by an order that did not run short, an adjustment, a deduct-on-payment sale).
            if sku.low_stock_threshold is None:
                if left_stocked:
                    continue  # no shard emptied: no read
                touched = sorted({m.shard for m in movements if m.sku == code and m.delta.available < 0})
                near = 0
            else:
                touched = sorted({m.shard for m in movements if m.sku == code})
                near = -(-sku.low_stock_threshold // max(1, sku.stock_shards))
            if not touched:
                continue
            probe = ports.store.shard_levels({code: touched}, consistent=False)[code]
            if not any(level.available <= near for level in probe.values()):
                continue
        if known_available is not None and code in known_available:  # just read whole by the caller
            total = known_available[code]
            state = availability_of(total, sku.low_stock_threshold)
            if state == sku.stock_state:
                continue  # nothing new to announce: no read at all (the sold-out tail of a sale)
        else:
            shard_view = ports.store.shard_levels({code: sku.sellable_items()})[code]
            total = sum(max(0, level.available) for level in shard_view.values())
            state = availability_of(total, sku.low_stock_threshold)
        current = ports.store.get_catalog([code]).get(code)
        if current is None or current.stock_state == state:
            continue
        if ports.store.set_stock_state(code, state, current.stock_state):
            if state == "sold_out":
                ports.events.publish("stock.sold_out", {"sku": code})
            elif state == "low_stock" and current.stock_state == "in_stock":
                ports.events.publish("stock.low", {"sku": code, "available": total})


def _fill_backorders(ports: Ports, arrived: list[str], left: list[str]) -> list[stock.StockMovement]:
    """Fill what waits for the `arrived` SKUs (services/backorders.py: a fill that moved units trims after itself);
    bring the allowances of the others in `left` back to their limits. The units' own movement is committed already,
    so a failure here is never raised to the caller: the SKU is handed to the restock queue, whose rebalance message
    fills and trims again (SQS redelivers it until it succeeds, then dead-letters it). Only if that send fails too do
    the backorders wait for the next movement of the SKU (logged)."""
    from shop.services import backorders  # it takes units through this module

    done: list[stock.StockMovement] = []
    for code in sorted({*arrived, *left}):
        try:
            filled = backorders.fill(ports, code) if code in arrived else []
            done += filled or (backorders.trim(ports, code) if code in left else [])
        except Exception:  # noqa: BLE001 - see above
            logger.exception("backorders not filled or trimmed; queued for the restock worker", extra={"sku": code})
            _queue_backorder_retry(ports, code)
    return done


def _queue_backorder_retry(ports: Ports, code: str) -> None:
    try:
        if ports.restock_queue is None:
            raise RuntimeError("no restock queue configured")
        ports.restock_queue.request_rebalance(code)
    except Exception:  # noqa: BLE001 - the caller's movement is committed; the next one of this SKU tries again
        logger.exception("backorder retry not queued; waiting for the next movement", extra={"sku": code})


def record_stock_state(ports: Ports, code: str) -> None:
    """After a catalog edit (a new SKU, a changed threshold), record the stock state its levels are in,
    without an event (no stock moved): the operators' low-stock list (GET /admin/skus) reads it."""
    for _ in range(3):  # lost to a concurrent stock event: read again
        current = ports.store.get_sku(code)
        if current is None:
            return
        state = availability_of(current.levels.available, current.low_stock_threshold)
        if state == current.stock_state or ports.store.set_stock_state(code, state, current.stock_state):
            return


def rebalance(ports: Ports, code: str, *, actor: str = "system:rebalance") -> list[stock.StockMovement]:
    """Even out available units over the live shards of each warehouse and empty retired ones, as ledgered moves. Each
    move is conditional arithmetic on its source (`available >= :q`), so racing orders are never hurt:
    a move that no longer fits is planned again from a fresh read."""

    def attempt() -> list[stock.StockMovement]:
        sku = ports.store.get_catalog([code]).get(code)
        if sku is None:
            return []
        available = available_by_shard(ports, {code: sku})[code]
        at = clock.iso(clock.now())
        movements = []
        for index in sku.sellable_warehouses():  # units never change warehouse here: within each, over its shards
            if index >= LOCATIONS_PER_STATE:
                continue  # a virtual SKU's total cap: one item
            base = stock_item(index, 0)
            within = {item - base: units for item, units in available.items() if warehouse_index_of(item) == index}
            movements += [m for source, target, units in shards.plan_rebalance(within, sku.stock_shards)
                          for m in stock.move(code, base + source, base + target, units, at=at, actor=actor)]
        if movements:
            try:
                ports.store.commit(Commit(movements=movements[:98]))
            except StockShort:
                raise StaleWrite("a shard moved while rebalancing") from None
        return movements

    return with_retries(attempt)


def plan_for(ports: Ports, catalog: dict[str, Sku], wanted: dict[str, int], rng: random.Random | None = None
             ) -> dict[str, list[tuple[int, int]]]:
    """A plan from a fresh read of the shards (for operators' paths, where a read costs nothing)."""
    available = available_by_shard(ports, {code: catalog[code] for code in wanted})
    return {code: shards.plan_take(code, units, available[code], catalog[code].stock_shards, rng)
            for code, units in wanted.items()}
