"""What storefronts are told about a SKU's stock: the shop's availability display setting.

`availability` (in_stock, low_stock, sold_out) always keeps SPEC's meaning: sold out at zero units available,
low stock at or below the SKU's own `low_stock_threshold`, in stock otherwise. The display mode decides only
whether the count itself (`available`) is shown:

- `exact` (the default, SPEC's contract): always the count.
- `only_n_left`: the count only when few are left, at or below the SKU's `low_stock_threshold`, or for a SKU
  without one, the shop-wide AVAILABILITY_ONLY_N_LEFT_THRESHOLD ("only 3 left"); above it, no count (None). A
  sold-out SKU shows 0 (nothing to hide).
- `coarse`: never a count (None): in stock / low / sold out only.

Operators' views always show exact levels; this applies to the public `GET /skus/{sku}` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shop.domain.skus import availability_of


class AvailabilityDisplay(StrEnum):
    EXACT = "exact"
    ONLY_N_LEFT = "only_n_left"
    COARSE = "coarse"


@dataclass(frozen=True)
class DisplayRule:
    """The shop's setting: the mode, and the count below which `only_n_left` shows it for SKUs without a threshold."""

    mode: AvailabilityDisplay = AvailabilityDisplay.EXACT
    only_n_left_threshold: int = 5


EXACT = DisplayRule()


@dataclass(frozen=True)
class ShownAvailability:
    availability: str  # in_stock, low_stock or sold_out
    available: int | None  # None: the count is not shown


def shown_availability(available: int, low_stock_threshold: int | None, rule: DisplayRule = EXACT) -> ShownAvailability:
    """What a storefront sees of a SKU with `available` units (summed over its stock items; negative counts as 0)."""
    count = max(0, available)
    state = availability_of(count, low_stock_threshold)
    if rule.mode is AvailabilityDisplay.EXACT:
        return ShownAvailability(state, count)
    if rule.mode is AvailabilityDisplay.COARSE:
        return ShownAvailability(state, None)
    limit = low_stock_threshold if low_stock_threshold is not None else rule.only_n_left_threshold
    return ShownAvailability(state, count if count <= limit else None)
