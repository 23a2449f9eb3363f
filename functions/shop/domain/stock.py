"""Stock operations as deltas on one stock item (a shard of a SKU's stock), and how to choose shards.

A movement is conditional arithmetic, never a write of levels read before: the store applies
`ADD on_hand, available, reserved, sold` with a guard that every level the movement lowers has
at least that much (`available >= :q` to reserve, `reserved >= :q` to sell or release, `sold >= :q`
to restock). Levels stay consistent by construction (every delta keeps on_hand = available +
reserved) and never go negative (the guards), so concurrent movements on one item never conflict
in our code. Each movement is written with its ledger entry (delta, actor, reason, order) in the
same transaction, so the ledger of a SKU always sums to its levels.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from shop.domain.errors import Unprocessable
from shop.domain.skus import StockLevels


@dataclass(frozen=True)
class StockMovement:
    sku: str
    shard: int
    at: str
    actor: str
    reason: str
    order_id: str | None
    delta: StockLevels
    movement_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    reference: str | None = None  # the document behind it: an import file, a delivery, transfer or count, a cart hold
    # For an item nobody creates beforehand (a virtual SKU's day: shop/domain/virtual.py): the levels it opens
    # with (on_hand = available = opening) if this movement is its first. Not part of the ledger entry.
    opening: int | None = field(default=None, compare=False)

    def guards(self) -> dict[str, int]:
        """The least each level must hold for this movement to apply (only levels it lowers)."""
        lowered = {"available": self.delta.available, "reserved": self.delta.reserved, "sold": self.delta.sold}
        return {name: -change for name, change in lowered.items() if change < 0}

    def to_dict(self) -> dict:
        return {"sku": self.sku, "shard": self.shard, "at": self.at, "actor": self.actor, "reason": self.reason,
                "order_id": self.order_id, "delta": self.delta.to_dict(), "movement_id": self.movement_id,
                "reference": self.reference}


def _require_positive(quantity: int) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise ValueError("quantity must be a positive int")


def _movement(sku: str, shard: int, delta: StockLevels, *, at: str, actor: str, reason: str,
              order_id: str | None, reference: str | None = None) -> StockMovement:
    return StockMovement(sku, shard, at, actor, reason, order_id, delta, reference=reference)


def allocate(sku: str, shard: int, quantity: int, *, at: str, actor: str, order_id: str,
             reason: str = "order_placed") -> StockMovement:
    """Reserve units for an order: available -> reserved."""
    _require_positive(quantity)
    return _movement(sku, shard, StockLevels(0, -quantity, quantity, 0), at=at, actor=actor, reason=reason,
                     order_id=order_id)


def deallocate(sku: str, shard: int, quantity: int, *, at: str, actor: str, order_id: str,
               reason: str) -> StockMovement:
    """Release an order's reservation: reserved -> available."""
    _require_positive(quantity)
    return _movement(sku, shard, StockLevels(0, quantity, -quantity, 0), at=at, actor=actor, reason=reason,
                     order_id=order_id)


def hold(sku: str, shard: int, quantity: int, *, at: str, actor: str, hold_id: str,
         reason: str = "cart_hold_placed") -> StockMovement:
    """Reserve units for a cart hold: available -> reserved, owned by the hold (no order yet)."""
    _require_positive(quantity)
    return _movement(sku, shard, StockLevels(0, -quantity, quantity, 0), at=at, actor=actor, reason=reason,
                     order_id=None, reference=hold_id)


def unhold(sku: str, shard: int, quantity: int, *, at: str, actor: str, hold_id: str,
           reason: str) -> StockMovement:
    """A cart hold's reservation ends: reserved -> available (released, or handed to an order, which
    reserves the same units in the same transaction: see `hand_over`)."""
    _require_positive(quantity)
    return _movement(sku, shard, StockLevels(0, quantity, -quantity, 0), at=at, actor=actor, reason=reason,
                     order_id=None, reference=hold_id)


def hand_over(sku: str, shard: int, quantity: int, *, at: str, actor: str, hold_id: str,
              order_id: str) -> list[StockMovement]:
    """A cart hold's units become an order's reservation: two ledger entries (the hold's reservation ends,
    the order's begins) whose deltas cancel, so the shard's levels do not change and every reservation
    still has exactly one owner and one end."""
    reason = "cart_hold_converted"
    return [unhold(sku, shard, quantity, at=at, actor=actor, hold_id=hold_id, reason=reason),
            _movement(sku, shard, StockLevels(0, -quantity, quantity, 0), at=at, actor=actor, reason=reason,
                      order_id=order_id, reference=hold_id)]


def sell_allocated(sku: str, shard: int, quantity: int, *, at: str, actor: str, order_id: str,
                   reason: str = "order_paid") -> StockMovement:
    """Turn an order's reservation into a sale: reserved leaves on_hand, sold grows."""
    _require_positive(quantity)
    return _movement(sku, shard, StockLevels(-quantity, 0, -quantity, quantity), at=at, actor=actor, reason=reason,
                     order_id=order_id)


def sell_unallocated(sku: str, shard: int, quantity: int, *, at: str, actor: str, order_id: str,
                     reason: str = "order_paid") -> StockMovement:
    """Take stock at payment time (deduct_on_payment, or a late payment): available leaves on_hand."""
    _require_positive(quantity)
    return _movement(sku, shard, StockLevels(-quantity, -quantity, 0, quantity), at=at, actor=actor, reason=reason,
                     order_id=order_id)


def return_sold(sku: str, shard: int, quantity: int, *, at: str, actor: str, order_id: str | None,
                reason: str) -> StockMovement:
    """A restocking return: sold units come back to available."""
    _require_positive(quantity)
    return _movement(sku, shard, StockLevels(quantity, quantity, 0, -quantity), at=at, actor=actor, reason=reason,
                     order_id=order_id)


def adjust(sku: str, shard: int, delta: int, *, at: str, actor: str, reason: str,
           reference: str | None = None) -> StockMovement:
    """An operator's correction of on_hand (received goods, shrinkage, a count's difference). Never touches
    reservations."""
    if isinstance(delta, bool) or not isinstance(delta, int) or delta == 0:
        raise Unprocessable("delta must be a non-zero integer", {"fields": ["delta"]})
    return _movement(sku, shard, StockLevels(delta, delta, 0, 0), at=at, actor=actor, reason=reason, order_id=None,
                     reference=reference)


def move(sku: str, source: int, target: int, quantity: int, *, at: str, actor: str,
         reason: str = "rebalance", reference: str | None = None) -> list[StockMovement]:
    """Available units from one item to another: another shard, or another state or warehouse (two movements,
    one transaction)."""
    _require_positive(quantity)
    return [_movement(sku, source, StockLevels(-quantity, -quantity, 0, 0), at=at, actor=actor, reason=reason,
                      order_id=None, reference=reference),
            _movement(sku, target, StockLevels(quantity, quantity, 0, 0), at=at, actor=actor, reason=reason,
                      order_id=None, reference=reference)]
