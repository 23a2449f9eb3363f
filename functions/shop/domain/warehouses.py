"""Warehouses: where a SKU's stock is kept, and which one serves an order.

A SKU's stock is spread over stock items, each with its own levels (on_hand = available + reserved) and its
own ledger. An item belongs to one *location*, a warehouse and a stock state (sellable, presale, safety,
damaged, ...), and is one of that location's shards:

    location = state * LOCATIONS_PER_STATE + warehouse.index
    item = location * ITEMS_PER_WAREHOUSE + shard

The main warehouse has index 0 and sellable is state 0, so a shop that never defines another warehouse or
state keeps the item numbers (and keys) it always had, and every stock movement stays conditional arithmetic
on one item. Only sellable items are offered to spot orders; units change state only by ledgered movements
between items. A SKU's figures are the sums over its items.

An order takes each line from the warehouse nearest its shipping address that holds all of the line's units
(`rank`: one that serves the address's region, then one serving the whole country, then one located in the
country; then by priority), and splits a line over several warehouses only when no single one holds it
(`shop.domain.shards.plan_take_ranked`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any

from shop.domain.errors import Unprocessable

MAIN_WAREHOUSE = "main"
ITEMS_PER_WAREHOUSE = 64  # shards a warehouse may hold of one SKU (MAX_STOCK_SHARDS)
MAX_WAREHOUSES = 32
WAREHOUSE_CODE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
_CODE_RE = re.compile(WAREHOUSE_CODE_PATTERN)


LOCATIONS_PER_STATE = 1024  # warehouse indexes per stock state (MAX_WAREHOUSES is far below)


class StockState(IntEnum):
    """What the units of a stock item may be used for. Only SELLABLE units are offered to spot orders; the
    number is part of the item number, so it never changes for a state."""

    SELLABLE = 0
    PRESALE = 1
    SAFETY = 2  # kept back, never sold, shown as unavailable
    DAMAGED = 3  # on hand, not sellable
    QUALITY_HOLD = 4  # on hand, awaiting quality control
    INCOMING = 5  # expected deliveries (not yet on hand in the warehouse)
    IN_TRANSIT = 6  # dispatched by a transfer, not yet received
    VIRTUAL = 7  # caps of virtual goods
    # A SKU's backorder allowance (one item, main warehouse's location): available = units that may still be
    # backordered, reserved = backordered units waiting for stock (shop/domain/backorders.py).
    BACKORDER = 8


def location(warehouse_index: int, state: StockState = StockState.SELLABLE) -> int:
    """A warehouse's stock in one state: the unit that items (shards) belong to."""
    if not 0 <= warehouse_index < LOCATIONS_PER_STATE:
        raise ValueError(f"no warehouse index {warehouse_index}")
    return int(state) * LOCATIONS_PER_STATE + warehouse_index


def stock_item(warehouse_index: int, shard: int, state: StockState = StockState.SELLABLE) -> int:
    """The number of one stock item: a shard of a SKU's stock in one warehouse and state."""
    if not 0 <= shard < ITEMS_PER_WAREHOUSE or warehouse_index < 0:
        raise ValueError(f"no stock item for warehouse {warehouse_index}, shard {shard}")
    return location(warehouse_index, state) * ITEMS_PER_WAREHOUSE + shard


def location_of(item: int) -> int:
    return item // ITEMS_PER_WAREHOUSE


def warehouse_index_of(item: int) -> int:
    return location_of(item) % LOCATIONS_PER_STATE


def state_of(item: int) -> StockState:
    return StockState(location_of(item) // LOCATIONS_PER_STATE)


def is_sellable(item_or_location_item: int) -> bool:
    return location_of(item_or_location_item) < LOCATIONS_PER_STATE


def shard_of(item: int) -> int:
    return item % ITEMS_PER_WAREHOUSE


@dataclass(frozen=True)
class Warehouse:
    """A place stock is kept and shipped from. `serves`: ISO country codes ("CN") or country:region pairs
    ("CN:Shanghai") it ships to first; `priority`: lower is preferred among equally near ones."""

    code: str
    index: int
    name: str
    country: str
    serves: tuple[str, ...] = ()
    priority: int = 100
    address: dict[str, Any] = field(default_factory=dict)
    active: bool = True

    def nearness(self, country: str | None, region: str | None) -> int:
        """0: serves the address's region; 1: serves its whole country; 2: located in its country; 3: other."""
        country = (country or "").upper()
        wanted_region = f"{country}:{(region or '').strip().casefold()}"
        served = {entry.split(":", 1)[0].upper() + (":" + entry.split(":", 1)[1].strip().casefold()
                                                      if ":" in entry else "") for entry in self.serves}
        if region and wanted_region in served:
            return 0
        if country in served:
            return 1
        if country and self.country.upper() == country:
            return 2
        return 3


MAIN = Warehouse(code=MAIN_WAREHOUSE, index=0, name="Main warehouse", country="", priority=1000)


def validate_code(code: str) -> str:
    if not isinstance(code, str) or not _CODE_RE.match(code):
        raise Unprocessable("a warehouse code is 1-32 lowercase letters, digits, '-' or '_'", {"fields": ["code"]})
    return code


@dataclass(frozen=True)
class Warehouses:
    """Every warehouse of the shop, by code (the main one always among them), and the registry's version."""

    by_code: dict[str, Warehouse] = field(default_factory=lambda: {MAIN_WAREHOUSE: MAIN})
    version: int = 0

    def __post_init__(self) -> None:
        if MAIN_WAREHOUSE not in self.by_code:
            object.__setattr__(self, "by_code", {MAIN_WAREHOUSE: MAIN, **self.by_code})

    def get(self, code: str) -> Warehouse | None:
        return self.by_code.get(code)

    def by_index(self, index: int) -> Warehouse | None:
        return next((w for w in self.by_code.values() if w.index == index), None)

    def code_of(self, index: int) -> str:
        found = self.by_index(index)
        return found.code if found else f"#{index}"

    def with_warehouse(self, warehouse: Warehouse) -> Warehouses:
        """Defined or redefined; a new one gets the next free index (an index is never reused)."""
        current = self.by_code.get(warehouse.code)
        if current is None and len(self.by_code) >= MAX_WAREHOUSES:
            raise Unprocessable(f"a shop has at most {MAX_WAREHOUSES} warehouses", {"fields": ["code"]})
        # MAX_WAREHOUSES keeps every index far below LOCATIONS_PER_STATE: item numbers never collide.
        index = current.index if current else max(w.index for w in self.by_code.values()) + 1
        return Warehouses({**self.by_code, warehouse.code: replace(warehouse, index=index)}, self.version)

    def rank(self, indexes: tuple[int, ...], country: str | None, region: str | None) -> tuple[int, ...]:
        """These warehouses (indexes) nearest first for an address: nearness, then priority, then code.
        Inactive warehouses come last (their stock is still counted, and taken only when nothing else has it)."""
        def key(index: int) -> tuple[int, int, int, str]:
            found = self.by_index(index)
            if found is None:
                return (1, 3, 10**9, f"#{index}")
            return (0 if found.active else 1, found.nearness(country, region), found.priority, found.code)

        return tuple(sorted(indexes, key=key))
