"""Value objects an order carries: units of a SKU, shipments (parcels), refunds, a held payment.

One shape each, immutable. The DynamoDB record of each is mapped in adapters/items.py, the JSON
views in services/presenters.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class UnitLine:
    """Some units of one SKU (a parcel's content, a refund's units)."""

    sku: str
    quantity: int


def sum_units(lines: Iterable[UnitLine]) -> dict[str, int]:
    """Units per SKU over the lines."""
    total: dict[str, int] = {}
    for line in lines:
        total[line.sku] = total.get(line.sku, 0) + line.quantity
    return total


def unit_lines(units: dict[str, int]) -> tuple[UnitLine, ...]:
    return tuple(UnitLine(sku, quantity) for sku, quantity in units.items())


@dataclass(frozen=True)
class Shipment:
    """One parcel of some of an order's units."""

    shipment_id: str
    lines: tuple[UnitLine, ...]
    carrier: str | None
    tracking_number: str | None
    at: str
    actor: str | None  # who recorded it (None only on parcels recorded before actors were kept)

    def units(self) -> dict[str, int]:
        return sum_units(self.lines)
