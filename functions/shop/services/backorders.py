"""Backorders: filling the units orders wait for when stock arrives, and releasing those nobody waits for.

See shop/domain/backorders.py for the model. Filling runs after any movement that puts sellable units of a SKU
with backorders back on sale (a delivery or transfer received, an adjustment, a count, a return, a reservation
released: `inventory.announce_stock_state` calls it), oldest order first, one transaction per order: the order's
line at the version read, the allowance's reservation released and sellable units reserved (unpaid order) or sold
(paid order) in its place, every stock write guarded as usual. An order that finds too little stock takes what
there is; later orders wait (first come, first filled).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_lambda_powertools import Logger

from shop.domain import backorders, clock, stock
from shop.domain.backorders import BACKORDER_ITEM
from shop.domain.errors import InsufficientStock
from shop.domain.orders import Allocation, OrderStatus
from shop.domain.skus import Sku
from shop.domain.warehouses import warehouse_index_of
from shop.services import pools, warehouses
from shop.services.allocation import take_units
from shop.services.ports import Commit, Ports
from shop.services.retry import with_retries

logger = Logger(child=True)
ACTOR = "system:backorders"
MAX_ORDERS_PER_RUN = 50  # a run fills at most this many orders, then asks the restock queue for another run
LEDGER_PAGE = 500
FILLABLE = frozenset({OrderStatus.PENDING_PAYMENT, OrderStatus.ON_HOLD, OrderStatus.PAID, OrderStatus.PARTIALLY_SHIPPED})


def fill(ports: Ports, code: str, *, actor: str = ACTOR) -> list[stock.StockMovement]:
    """Fill the SKU's waiting backorders from its sellable stock, oldest first (then `trim` the allowance they
    left); the movements written."""
    moved = _fill(ports, code, actor=actor)
    return [*moved, *trim(ports, code, actor=actor)] if moved else []


def _fill(ports: Ports, code: str, *, actor: str) -> list[stock.StockMovement]:
    sku = ports.store.get_sku(code)
    if sku is None or sku.levels.available <= 0:
        return []  # nothing is on the shelf to fill backorders with
    moved: list[stock.StockMovement] = []
    began = clock.now()
    read = _waiting_ledger(ports, sku)
    if not read:
        return []
    waiting = list(backorders.waiting_orders(read))
    read_from = backorders.next_read_from(read, waiting, began)
    if read_from > (sku.backorder_read_from or ""):  # the next run skips what only settled orders left
        ports.store.advance_backorder_read_from(code, read_from)
    for order_id in waiting[:MAX_ORDERS_PER_RUN]:
        try:
            moved += fill_order(ports, order_id, code, actor=actor)
        except InsufficientStock:
            return moved  # no sellable unit left: the others wait for the next arrival
    if len(waiting) > MAX_ORDERS_PER_RUN and ports.restock_queue is not None:
        # More wait than one run fills: the restock worker's rebalance message runs the next one (restock/handler.py).
        ports.restock_queue.request_rebalance(code)
    return moved


@dataclass(frozen=True)
class WaitingOrder:
    order_id: str
    units: int  # backordered units of the SKU still waiting
    since: str  # its first backorder of the SKU


def waiting(ports: Ports, sku: Sku) -> list[WaitingOrder]:
    """The orders waiting for the SKU's stock (`sku` as just read), in the order they will be filled (first come,
    first filled): the ledger a fill reads; [] for a SKU without backorders."""
    read = _waiting_ledger(ports, sku)
    first = backorders.first_backordered(read)
    return [WaitingOrder(order_id, units, first[order_id]) for order_id, units in backorders.waiting_orders(read).items()]


def _waiting_ledger(ports: Ports, sku: Sku) -> list[stock.StockMovement]:
    """The allowance's ledger from the SKU's read point, oldest first; nothing to read when no unit waits."""
    if sku.backorder is None or sku.backorder.reserved <= 0:
        return []
    read: list[stock.StockMovement] = []
    cursor: str | None = None
    while True:
        page, cursor = ports.store.ledger(sku.sku, LEDGER_PAGE, cursor, items=[BACKORDER_ITEM],
                                          since=sku.backorder_read_from)
        read += page
        if not cursor:
            return read


def fill_order(ports: Ports, order_id: str, code: str, *, actor: str = ACTOR) -> list[stock.StockMovement]:
    """As many of the order's backordered units of `code` as sellable stock has, handed over in one transaction
    with the order (conditional on its version). InsufficientStock when none is left."""

    def attempt() -> list[stock.StockMovement]:
        order = ports.store.get_order(order_id)
        line = next((line for line in order.lines if line.sku == code), None) if order else None
        if order is None or line is None or not line.backordered or order.status not in FILLABLE:
            return []
        catalog = ports.store.get_catalog([code])
        if code not in catalog:
            return []
        layouts, registry = warehouses.layouts_for(ports, catalog, order.shipping_address)
        unpaid = code in order.reserved_quantities()
        at = clock.iso(clock.now())

        def read_available(codes: list[str]) -> dict[str, dict[int, int]]:
            from shop.services import inventory  # inventory calls this module after arrivals

            return inventory.available_by_shard(ports, {c: catalog[c] for c in codes})

        def commit(plan: dict[str, list[tuple[int, int]]]) -> list[stock.StockMovement]:
            parts = tuple(Allocation(item, units, registry.code_of(warehouse_index_of(item))) for item, units in plan[code])
            filled = sum(part.units for part in parts)
            take = stock.allocate if unpaid else stock.sell_unallocated
            movements = [stock.deallocate(code, BACKORDER_ITEM, filled, at=at, actor=actor, order_id=order_id,
                                          reason="backorder_filled"),
                         *(take(code, part.item, part.units, at=at, actor=actor, order_id=order_id,
                                reason="backorder_filled") for part in parts)]
            updated = order.with_line(line.with_backorder_filled(parts), at=at)
            ports.store.commit(Commit(movements=movements, order_update=(order, updated)))
            return movements

        first_read = read_available([code])  # sizes the fill, and is the allocation loop's first read
        have = sum(max(0, units) for units in first_read[code].values())
        if have <= 0:
            raise InsufficientStock(f"{code}: no sellable unit to fill backorders",
                                    {"shortages": [{"sku": code, "requested": line.backordered, "available": 0}]})
        reads = iter([first_read])
        return take_units({code: min(line.backordered, have)}, layouts, commit=commit, read_first={code},
                          read_available=lambda codes: next(reads, None) or read_available(codes))

    movements = with_retries(attempt)
    if movements:
        filled = sum(m.delta.reserved for m in movements if m.shard == BACKORDER_ITEM) * -1
        logger.info("backorder filled", extra={"order_id": order_id, "sku": code, "units": filled})
        ports.events.publish("order.backorder_filled", {"order_id": order_id, "sku": code, "quantity": filled})
    return movements


def trim(ports: Ports, code: str, *, actor: str = ACTOR) -> list[stock.StockMovement]:
    """After backordered units left the allowance (filled or released): an allowance kept above its limit (lowered
    while more units waited: a cap takes back only available units) goes down to the limit, so the units freed
    beyond it are not offered again. Guarded like any cap change (pools.set_cap: one read of the allowance, no write
    when it holds the limit already): it never takes waiting units."""
    sku = ports.store.get_catalog([code]).get(code)
    if sku is None or sku.backorder is None:
        return []
    return pools.set_cap(ports, code, BACKORDER_ITEM, sku.backorder_limit, actor=actor, reason="backorder_limit",
                         only_if_exists=True)
