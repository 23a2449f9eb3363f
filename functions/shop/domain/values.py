"""Value objects an order carries: units of a SKU, shipments (parcels), refunds, a held payment.

One shape each, immutable. The DynamoDB record of each is mapped in adapters/items.py, the JSON
views in services/presenters.py (a refund's record and its operator view are both Refund.to_dict()).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shop.domain.money import Money
from shop.domain.parcels import ParcelTracking
from shop.domain.statuses import RefundStatus


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
    # A parcel followed through a carrier adapter (shop.domain.parcels, shop.services.fulfilment): its status,
    # checkpoints, waybill booking and polling state. None: a free-text parcel nobody follows.
    tracking: ParcelTracking | None = None
    warehouse: str = "main"  # where the parcel ships from (shop.domain.warehouses)

    def units(self) -> dict[str, int]:
        return sum_units(self.lines)


@dataclass(frozen=True)
class Refund:
    """Money given back on an order (see domain/refunds.py for the saga that records it).

    Recorded first as a pending intent, counted against what may still be refunded; SUCCEEDED once the
    provider confirmed it. `automatic`: a payment the order refused, given back (it is not a refund of the
    order's own payment). `currency` is the refunded money's (an automatic refund may give back a payment
    made in another currency than the order's).
    """

    refund_id: str
    amount: int  # minor units of `currency`
    currency: str
    lines: tuple[UnitLine, ...] = ()  # units refunded
    restocked: tuple[UnitLine, ...] = ()  # units put back on sale
    reason: str = ""
    at: str = ""
    actor: str = ""
    automatic: bool = False
    status: RefundStatus = RefundStatus.SUCCEEDED
    provider: str | None = None  # the provider that took the payment (None: the order's)
    provider_payment_id: str | None = None
    captured: int | None = None  # what the payment refunded took (providers that need it)
    provider_refund_id: str | None = None
    attempts: int = 0
    last_error: str | None = None
    last_attempt_at: str | None = None
    completed_at: str | None = None
    after_sale_id: str | None = None  # the after-sales request this refund settles

    @property
    def pending(self) -> bool:
        return self.status is RefundStatus.PENDING

    @property
    def money(self) -> Money:
        return Money(self.amount, self.currency)

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON values (units as {"sku", "quantity"} objects); after_sale_id and the saga's
        last_attempt_at and completed_at only once set."""
        shown: dict[str, Any] = {
            "refund_id": self.refund_id, "amount": self.amount, "currency": self.currency,
            "lines": [{"sku": line.sku, "quantity": line.quantity} for line in self.lines],
            "restocked": [{"sku": line.sku, "quantity": line.quantity} for line in self.restocked],
            "reason": self.reason, "at": self.at, "actor": self.actor, "automatic": self.automatic,
            "status": self.status.value, "provider": self.provider, "provider_payment_id": self.provider_payment_id,
            "captured": self.captured, "provider_refund_id": self.provider_refund_id, "attempts": self.attempts,
            "last_error": self.last_error}
        optional = {"after_sale_id": self.after_sale_id, "last_attempt_at": self.last_attempt_at,
                    "completed_at": self.completed_at}
        return {**shown, **{name: value for name, value in optional.items() if value is not None}}


@dataclass(frozen=True)
class HeldPayment:
    """A payment that did not match its order (amount or currency), kept while the order is ON_HOLD so that
    approving it can accept it, or rejecting it give it back."""

    amount: Money  # what arrived
    provider_payment_id: str | None
