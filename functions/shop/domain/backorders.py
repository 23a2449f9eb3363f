"""Backorders: a SKU may sell up to `backorder_limit` units more than it has, and the order says which.

The allowance is one stock item of the SKU in the BACKORDER state (shop/domain/warehouses.py), kept like any other:
on_hand = the limit, available = units that may still be backordered, reserved = backordered units waiting for
stock. An order line that finds too few sellable units takes every sellable unit it can and reserves the rest on
this item, in the same transaction and under the same guard (`available >= :q`) as any stock write, so the limit
is never exceeded however many orders race. Those units are the line's `backordered` units.

A backordered unit stays reserved on the allowance (paid or not) until stock arrives: filling it hands the
reservation over to a sellable item (the allowance's reservation is released, the sellable units are reserved
for an unpaid order or sold for a paid one) in one transaction with the order, so the order then ships them like
any other. Until then they cannot ship; cancelling or refunding them releases them from the allowance (they were
never sold, so nothing is restocked). Which orders wait is read from the allowance item's own ledger: allocations
less releases, per order, oldest first.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from shop.domain import clock
from shop.domain.errors import InsufficientStock
from shop.domain.shards import plan_take_ranked
from shop.domain.warehouses import StockState, location, location_of, stock_item

if TYPE_CHECKING:
    from shop.domain.stock import StockMovement  # stock imports skus, which imports this module

BACKORDER_LOCATION = location(0, StockState.BACKORDER)
BACKORDER_ITEM = stock_item(0, 0, StockState.BACKORDER)
MAX_BACKORDER_LIMIT = 1_000_000
# Longer than any write can stay in flight (a Lambda runs 15 minutes at most): a movement's `at` is taken before its
# commit, so one committed after a fill read the ledger is never older than this when the read began.
READ_MARGIN = timedelta(hours=1)


def is_backorder_item(item: int) -> bool:
    return location_of(item) == BACKORDER_LOCATION


def plan_with_backorder(sku: str, quantity: int, available: dict[int, int], ranked_warehouses: tuple[int, ...],
                        live_shards: int, backorder_available: int | None,
                        rng: random.Random | None = None) -> list[tuple[int, int]]:
    """Like `plan_take_ranked` over the sellable items in `available`; when they hold too few and the SKU allows
    backorders (`backorder_available`: what its allowance item had, None: no backorders), every sellable unit and
    the rest from the allowance. InsufficientStock names what could be had in all (sellable + allowance)."""
    try:
        return plan_take_ranked(sku, quantity, available, ranked_warehouses, live_shards, rng)
    except InsufficientStock:
        if backorder_available is None:
            raise
    sellable = sum(max(0, units) for units in available.values())
    allowance = max(0, backorder_available)
    if sellable + allowance < quantity:
        raise InsufficientStock(f"{sku}: {quantity} requested, {sellable} available and {allowance} on backorder",
                                {"shortages": [{"sku": sku, "requested": quantity, "available": sellable + allowance,
                                                "backorder_available": allowance}]})
    plan = plan_take_ranked(sku, sellable, available, ranked_warehouses, live_shards, rng) if sellable else []
    return [*plan, (BACKORDER_ITEM, quantity - sellable)]


def waiting_orders(movements: Iterable[StockMovement]) -> dict[str, int]:
    """From the allowance item's ledger (oldest first): the orders whose backordered units still wait, with how
    many, in the order they were first backordered (first come, first filled)."""
    waiting: dict[str, int] = {}
    for movement in movements:
        if movement.order_id is None or not is_backorder_item(movement.shard):
            continue
        waiting[movement.order_id] = waiting.get(movement.order_id, 0) + movement.delta.reserved
    return {order_id: units for order_id, units in waiting.items() if units > 0}


def first_backordered(movements: Iterable[StockMovement]) -> dict[str, str]:
    """When each order in the allowance's ledger (`movements`, oldest first) first touched it: its first backorder
    when the ledger is read from before it."""
    first: dict[str, str] = {}
    for movement in movements:
        if movement.order_id is not None:
            first.setdefault(movement.order_id, movement.at)
    return first


def next_read_from(movements: Iterable[StockMovement], waiting: Iterable[str], now: datetime) -> str:
    """Where the next fill may start reading the allowance's ledger (`movements`, oldest first, from which the
    orders `waiting` were found): the first backorder of the oldest order that waits, never later than READ_MARGIN
    before `now`. Every order first backordered before that point is settled (filled or released), and a settled
    order never touches the allowance again, so what it left in the ledger can be skipped: a fill's read then grows
    with what waits and what the last hour did, not with the SKU's whole backorder history. Entries of settled
    orders after that point only sum to a release (never a positive count), which `waiting_orders` leaves out."""
    first = first_backordered(movements)
    floor = clock.iso(now - READ_MARGIN)
    return min([floor, *(first[order_id] for order_id in waiting if order_id in first)])
