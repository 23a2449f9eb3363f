"""Catalog entries (SKUs) and their stock levels."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from typing import Any

from shop.domain.backorders import BACKORDER_ITEM, BACKORDER_LOCATION
from shop.domain.money import Money
from shop.domain.presale import PresaleTerms
from shop.domain.virtual import VIRTUAL_LOCATION, VirtualTerms
from shop.domain.warehouses import ITEMS_PER_WAREHOUSE, LOCATIONS_PER_STATE

SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_SKU_RE = re.compile(SKU_PATTERN)


def is_valid_sku_code(code: str) -> bool:
    return bool(_SKU_RE.fullmatch(code))  # not match(): its `$` also matches before a final newline


class StockPolicy(str, Enum):  # noqa: UP042 - StrEnum would change str() and format() of the members
    RESERVE_ON_ORDER = "reserve_on_order"
    DEDUCT_ON_PAYMENT = "deduct_on_payment"


@dataclass(frozen=True)
class StockLevels:
    """on_hand = available + reserved; sold counts units that left on_hand through sales."""

    on_hand: int = 0
    available: int = 0
    reserved: int = 0
    sold: int = 0

    def __add__(self, delta: StockLevels) -> StockLevels:
        return StockLevels(
            self.on_hand + delta.on_hand,
            self.available + delta.available,
            self.reserved + delta.reserved,
            self.sold + delta.sold,
        )

    @property
    def is_consistent(self) -> bool:
        return (
            self.on_hand == self.available + self.reserved
            and min(self.on_hand, self.available, self.reserved, self.sold) >= 0
        )

    def to_dict(self) -> dict[str, int]:
        return {"on_hand": self.on_hand, "available": self.available, "reserved": self.reserved, "sold": self.sold}


MAX_STOCK_SHARDS = ITEMS_PER_WAREHOUSE  # per warehouse; a SKU update touches every item in one transaction:
MAX_STOCK_ITEMS = 96  # warehouses x shards of one SKU (a transaction holds 100 items)


@dataclass(frozen=True)
class SkuTerms:
    """What an operator sets on a SKU; the rest of a Sku is its code, stock and history."""

    name: str
    price: Money
    active: bool = True
    stock_policy: StockPolicy = StockPolicy.RESERVE_ON_ORDER
    max_per_order: int | None = None
    low_stock_threshold: int | None = None
    payment_window_seconds: int | None = None  # this SKU's own payment window (bounded by the maximum)
    stock_shards: int = 1  # shards new orders take from (a hot SKU wants more)
    backorder_limit: int = 0  # units that may be sold beyond sellable stock, waiting for it (domain/backorders.py)

    def terms(self) -> dict[str, Any]:
        """These fields by name, to copy onto a Sku with dataclasses.replace."""
        return {name: getattr(self, name) for name in SKU_TERMS}


@dataclass(frozen=True)
class Sku(SkuTerms):
    """A catalog entry. Its stock lives in stock items (shards of a warehouse's stock in one state), each with its
    own levels; `levels` is the sum over its *sellable* items when they were read (zero otherwise: what the shop
    can sell, what availability shows), `shard_levels` each item's, `all_levels` the sum over every item."""

    sku: str = field(kw_only=True)
    shard_items: int = 1  # shards that exist (more than stock_shards after the count was lowered)
    # The locations holding this SKU's stock (shop.domain.warehouses.location: a warehouse in a stock state).
    # A sellable location has `shard_items` items; any other one item.
    locations: tuple[int, ...] = (0,)
    stock_state: str = "in_stock"  # last state announced by a stock event: in_stock, low_stock, sold_out
    # Where a backorder fill starts reading the allowance's ledger (backorders.next_read_from); None: its start.
    backorder_read_from: str | None = None
    presale: PresaleTerms | None = None  # a presale pool apart from spot stock (shop/domain/presale.py)
    virtual: VirtualTerms | None = None  # virtual goods: caps instead of stock (shop/domain/virtual.py)
    levels: StockLevels = StockLevels()
    shard_levels: dict[int, StockLevels] = field(default_factory=dict)
    created_at: str = ""
    updated_at: str = ""

    def stock_items(self) -> list[int]:
        """Every stock item of this SKU (shop.domain.warehouses.stock_item), every location's."""
        return [item for place in self.locations for item in self.items_in(place)]

    def items_in(self, place: int) -> list[int]:
        """The items of one location: a sellable one's shards, else its one item."""
        shards = self.shard_items if place < LOCATIONS_PER_STATE else 1
        return [place * ITEMS_PER_WAREHOUSE + shard for shard in range(shards)]

    def sellable_items(self) -> list[int]:
        return [item for place in self.sellable_warehouses() for item in self.items_in(place)]

    def sellable_warehouses(self) -> tuple[int, ...]:
        """Indexes of the warehouses with sellable stock of this SKU (where spot orders take units). A virtual SKU
        sells its total cap's location instead (none without a total cap: only its daily cap limits it)."""
        if self.virtual is not None:
            return tuple(place for place in self.locations if place == VIRTUAL_LOCATION)
        return tuple(place for place in self.locations if place < LOCATIONS_PER_STATE)

    @property
    def backorder(self) -> StockLevels | None:
        """The backorder allowance's levels (available: may still be backordered; reserved: waiting for stock), when
        the SKU has one (it allowed backorders once)."""
        if BACKORDER_LOCATION not in self.locations:
            return None
        return self.shard_levels.get(BACKORDER_ITEM, StockLevels())

    @property
    def takes_backorders(self) -> bool:
        """Orders may reserve units beyond its sellable stock (shop/domain/backorders.py): a limit, an allowance
        item, and physical goods."""
        return self.backorder_limit > 0 and self.virtual is None and self.backorder is not None

    @property
    def all_levels(self) -> StockLevels:
        """Levels summed over every item read, whatever its state (what the whole ledger sums to)."""
        total = StockLevels()
        for levels in self.shard_levels.values():
            total = total + levels
        return total

    def availability(self) -> str:
        return availability_of(self.levels.available, self.low_stock_threshold)

    def with_shard_levels(self, shard_levels: dict[int, StockLevels]) -> Sku:
        total = StockLevels()
        for item, levels in shard_levels.items():
            place = item // ITEMS_PER_WAREHOUSE
            if place == VIRTUAL_LOCATION if self.virtual is not None else place < LOCATIONS_PER_STATE:  # sellable
                total = total + levels
        return replace(self, levels=total, shard_levels=dict(shard_levels))


SKU_TERMS = tuple(f.name for f in fields(SkuTerms))


def availability_of(available: int, low_stock_threshold: int | None) -> str:
    if available <= 0:
        return "sold_out"
    if low_stock_threshold is not None and available <= low_stock_threshold:
        return "low_stock"
    return "in_stock"
