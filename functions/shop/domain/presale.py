"""Presale: units of a SKU sold before they are in stock, from a pool kept apart from spot stock.

The pool is one stock item in the PRESALE state of a warehouse (shop/domain/warehouses.py); spot orders never
see it (only sellable items are offered to them). An operator sets the terms: a cap (the units the presale
may sell: units sold from the pool plus units still offered), the sale window and the expected ship date. A
presale order takes its units at payment (deduct-on-payment on the pool, through the same allocation loop as
spot stock); a payment finding the pool empty is refunded automatically. Unsold presale units become spot
stock only by an explicit ledgered movement (pool -> a sellable item, one transaction), which lowers the cap
by as many units.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from shop.domain import clock
from shop.domain.errors import Unprocessable
from shop.domain.warehouses import StockState, location, state_of, stock_item

MAX_PRESALE_CAP = 10**9


@dataclass(frozen=True)
class PresaleTerms:
    cap: int
    starts_at: str  # ISO 8601 UTC: orders are accepted from this moment ...
    ends_at: str  # ... until this one (excluded)
    ships_on: str  # the expected ship date, YYYY-MM-DD
    warehouse: int = 0  # the index of the warehouse whose PRESALE location holds the pool

    def __post_init__(self) -> None:
        if isinstance(self.cap, bool) or not isinstance(self.cap, int) or not 0 <= self.cap <= MAX_PRESALE_CAP:
            raise Unprocessable(f"cap is 0 to {MAX_PRESALE_CAP}", {"fields": ["cap"]})
        try:
            start, end = clock.parse_iso(self.starts_at), clock.parse_iso(self.ends_at)
            date.fromisoformat(self.ships_on)
        except (TypeError, ValueError):
            raise Unprocessable("starts_at and ends_at are ISO 8601 times, ships_on a date (YYYY-MM-DD)",
                                {"fields": ["starts_at", "ends_at", "ships_on"]}) from None
        if start.tzinfo is None or end.tzinfo is None:
            raise Unprocessable("starts_at and ends_at need a time zone (Z or an offset)",
                                {"fields": ["starts_at", "ends_at"]})
        if end <= start:
            raise Unprocessable("ends_at must be after starts_at", {"fields": ["ends_at"]})

    @property
    def location(self) -> int:
        return location(self.warehouse, StockState.PRESALE)

    @property
    def item(self) -> int:
        """The pool's one stock item."""
        return stock_item(self.warehouse, 0, StockState.PRESALE)

    def is_open(self, at: datetime) -> bool:
        return clock.parse_iso(self.starts_at) <= at < clock.parse_iso(self.ends_at)

    def window_state(self, at: datetime) -> str:
        """"upcoming", "open" or "ended"."""
        if at < clock.parse_iso(self.starts_at):
            return "upcoming"
        return "open" if at < clock.parse_iso(self.ends_at) else "ended"

    def to_dict(self) -> dict:
        return {"cap": self.cap, "starts_at": self.starts_at, "ends_at": self.ends_at, "ships_on": self.ships_on,
                "warehouse": self.warehouse}

    @classmethod
    def from_dict(cls, raw: dict) -> PresaleTerms:
        return cls(int(raw["cap"]), raw["starts_at"], raw["ends_at"], raw["ships_on"], int(raw.get("warehouse", 0)))


def is_pool_item(item: int) -> bool:
    return state_of(item) is StockState.PRESALE


def pool_adjustment(cap: int, pool_on_hand: int, pool_sold: int) -> int:
    """The on_hand change that makes the pool offer `cap` units in all: cap = sold + on_hand. Negative when the
    cap is lowered (only available units can be taken back: the caller's guard says so)."""
    if cap < pool_sold:
        raise Unprocessable(f"cap {cap} is below the {pool_sold} presale units already sold",
                            {"fields": ["cap"], "sold": pool_sold})
    return cap - pool_sold - pool_on_hand
