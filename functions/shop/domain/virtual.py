"""Virtual goods (top-up cards, courses): sold against a daily cap and/or a total cap, never shipped.

Both caps are stock items of the SKU in the VIRTUAL state (shop/domain/warehouses.py), so an order takes,
releases and sells their units with the same conditional arithmetic and ledger as any stock:

- the total cap is one item (`TOTAL_ITEM`) whose on_hand the operator sets to `total_cap - sold`, offered to
  orders like sellable stock (it *is* the SKU's sellable stock);
- the daily cap is one item per day of the shop's time zone (`day_item`), which nobody creates: the first order
  of the day writes it with `available = on_hand = daily_cap` as its opening levels (`Commit.opening`), in the
  same conditional update that takes its units (`attribute_not_exists` or `available >= :q`). No read, no job
  at midnight: a new local date is a new item. The order line records the day item it used, so an expiry or a
  cancellation gives the units back to that day, whatever day it is then.

A day item's levels are its opening levels plus its ledger; every SPEC rule holds on it. Its number keeps the
VIRTUAL state and uses warehouse indexes no warehouse gets (MAX_WAREHOUSES is 32): 64 + the day's number // 64,
the day's number % 64 as the shard (about 168 years of days).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shop.domain.errors import Unprocessable
from shop.domain.warehouses import (
    ITEMS_PER_WAREHOUSE,
    LOCATIONS_PER_STATE,
    StockState,
    location,
    location_of,
    stock_item,
    warehouse_index_of,
)

MAX_VIRTUAL_CAP = 10**9
VIRTUAL_LOCATION = location(0, StockState.VIRTUAL)
TOTAL_ITEM = stock_item(0, 0, StockState.VIRTUAL)
FIRST_DAY = date(2020, 1, 1)
_DAY_SLOTS_FROM = 64  # warehouse indexes of day items: 64..1023 (no warehouse gets one)
LAST_DAY = FIRST_DAY + timedelta(days=(LOCATIONS_PER_STATE - _DAY_SLOTS_FROM) * ITEMS_PER_WAREHOUSE - 1)


@dataclass(frozen=True)
class VirtualTerms:
    """At least one cap; None: no such cap."""

    daily_cap: int | None = None
    total_cap: int | None = None

    def __post_init__(self) -> None:
        for name in ("daily_cap", "total_cap"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or not 0 <= value <= MAX_VIRTUAL_CAP):
                raise Unprocessable(f"{name} is 0 to {MAX_VIRTUAL_CAP}", {"fields": [name]})
        if self.daily_cap is None and self.total_cap is None:
            raise Unprocessable("a virtual SKU needs a daily_cap, a total_cap or both",
                                {"fields": ["daily_cap", "total_cap"]})

    def to_dict(self) -> dict:
        return {"daily_cap": self.daily_cap, "total_cap": self.total_cap}

    @classmethod
    def from_dict(cls, raw: dict) -> VirtualTerms:
        def number(name: str) -> int | None:
            return None if raw.get(name) is None else int(raw[name])

        return cls(number("daily_cap"), number("total_cap"))


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def local_day(at: datetime, time_zone: str) -> date:
    """The shop's calendar day at this moment (the daily cap resets at the shop's midnight)."""
    return at.astimezone(zone(time_zone)).date()


def day_item(day: date) -> int:
    """The stock item counting one day's units against the daily cap."""
    number = (day - FIRST_DAY).days
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"no day item for {day}")
    return stock_item(_DAY_SLOTS_FROM + number // ITEMS_PER_WAREHOUSE, number % ITEMS_PER_WAREHOUSE,
                      StockState.VIRTUAL)


def is_day_item(item: int) -> bool:
    return location_of(item) // LOCATIONS_PER_STATE == StockState.VIRTUAL and \
        warehouse_index_of(item) >= _DAY_SLOTS_FROM


def day_of_item(item: int) -> date:
    if not is_day_item(item):
        raise ValueError(f"{item} is not a day item")
    return FIRST_DAY + timedelta(days=(warehouse_index_of(item) - _DAY_SLOTS_FROM) * ITEMS_PER_WAREHOUSE
                                 + item % ITEMS_PER_WAREHOUSE)


def is_virtual_item(item: int) -> bool:
    """A cap item (total or day): no units to ship from it."""
    return location_of(item) // LOCATIONS_PER_STATE == StockState.VIRTUAL
