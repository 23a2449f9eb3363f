"""Stock operations. Each returns a StockMovement: the ledger entry and the new levels.

The persistence layer writes a movement as one conditional update of the SKU
(on the stock_seq it was computed from) plus one ledger item, atomically.
"""

from __future__ import annotations

from dataclasses import dataclass

from shop.domain.errors import Conflict, InsufficientStock, Unprocessable


class InconsistentLevels(Conflict):
    """The change does not fit the levels read: either a bug, or (usually) a read taken while a
    concurrent writer moved the order and the SKU between our two reads."""

    slug, title = "inconsistent-stock", "Stock levels changed meanwhile"
from shop.domain.skus import Sku, StockLevels


@dataclass(frozen=True)
class StockMovement:
    sku: str
    seq: int  # stock_seq of the SKU after this movement
    at: str
    actor: str
    reason: str
    order_id: str | None
    delta: StockLevels
    levels: StockLevels  # resulting levels

    @property
    def expected_seq(self) -> int:
        return self.seq - 1

    def to_dict(self) -> dict:
        return {
            "sku": self.sku,
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "reason": self.reason,
            "order_id": self.order_id,
            "delta": self.delta.to_dict(),
            "levels": self.levels.to_dict(),
        }


def _move(sku: Sku, delta: StockLevels, *, at: str, actor: str, reason: str, order_id: str | None) -> StockMovement:
    levels = sku.levels + delta
    if not levels.is_consistent:
        raise InconsistentLevels(
            f"stock change on {sku.sku} would leave inconsistent levels",
            {"sku": sku.sku, "levels": sku.levels.to_dict(), "delta": delta.to_dict()},
        )
    return StockMovement(sku.sku, sku.stock_seq + 1, at, actor, reason, order_id, delta, levels)


def _require_positive(quantity: int) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise ValueError("quantity must be a positive int")


def allocate(sku: Sku, quantity: int, *, at: str, actor: str, order_id: str, reason: str = "order_placed") -> StockMovement:
    """Reserve units for an order: available -> reserved."""
    _require_positive(quantity)
    if sku.levels.available < quantity:
        raise InsufficientStock(
            f"{sku.sku}: {quantity} requested, {sku.levels.available} available",
            {"shortages": [{"sku": sku.sku, "requested": quantity, "available": sku.levels.available}]},
        )
    return _move(sku, StockLevels(0, -quantity, quantity, 0), at=at, actor=actor, reason=reason, order_id=order_id)


def deallocate(sku: Sku, quantity: int, *, at: str, actor: str, order_id: str, reason: str) -> StockMovement:
    """Release an order's reservation: reserved -> available."""
    _require_positive(quantity)
    return _move(sku, StockLevels(0, quantity, -quantity, 0), at=at, actor=actor, reason=reason, order_id=order_id)


def sell_allocated(sku: Sku, quantity: int, *, at: str, actor: str, order_id: str, reason: str = "order_paid") -> StockMovement:
    """Turn an order's reservation into a sale: reserved leaves on_hand, sold grows."""
    _require_positive(quantity)
    return _move(sku, StockLevels(-quantity, 0, -quantity, quantity), at=at, actor=actor, reason=reason, order_id=order_id)


def sell_unallocated(sku: Sku, quantity: int, *, at: str, actor: str, order_id: str, reason: str = "order_paid") -> StockMovement:
    """Take stock at payment time (deduct_on_payment, or a late payment): available leaves on_hand."""
    _require_positive(quantity)
    if sku.levels.available < quantity:
        raise InsufficientStock(
            f"{sku.sku}: {quantity} requested, {sku.levels.available} available",
            {"shortages": [{"sku": sku.sku, "requested": quantity, "available": sku.levels.available}]},
        )
    return _move(sku, StockLevels(-quantity, -quantity, 0, quantity), at=at, actor=actor, reason=reason, order_id=order_id)


def return_sold(sku: Sku, quantity: int, *, at: str, actor: str, order_id: str | None, reason: str) -> StockMovement:
    """A restocking return: sold units come back to available."""
    _require_positive(quantity)
    return _move(sku, StockLevels(quantity, quantity, 0, -quantity), at=at, actor=actor, reason=reason, order_id=order_id)


def adjust(sku: Sku, delta: int, *, at: str, actor: str, reason: str) -> StockMovement:
    """An operator's correction of on_hand (received goods, shrinkage). Never touches reservations."""
    if isinstance(delta, bool) or not isinstance(delta, int) or delta == 0:
        raise Unprocessable("delta must be a non-zero integer", {"fields": ["delta"]})
    if sku.levels.available + delta < 0:
        raise InsufficientStock(
            f"{sku.sku}: cannot remove {-delta}, only {sku.levels.available} available (reserved units stay reserved)",
            {"shortages": [{"sku": sku.sku, "requested": -delta, "available": sku.levels.available}]},
        )
    return _move(sku, StockLevels(delta, delta, 0, 0), at=at, actor=actor, reason=reason, order_id=None)
