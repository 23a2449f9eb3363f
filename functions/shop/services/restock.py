"""Stock returns (refund with restock, customer returns): sold units come back to available, once per message."""

from __future__ import annotations

from dataclasses import dataclass

from shop.domain import clock, shards, stock
from shop.domain.errors import Conflict, InsufficientStock, NotFound
from shop.services import inventory
from shop.services.ports import Commit, CommitRejected, Ports, StaleWrite, StockShort
from shop.services.records import RestockApplied
from shop.services.retry import with_retries

DEDUPE_TTL_SECONDS = 14 * 24 * 3600


@dataclass(frozen=True)
class RestockRequest:
    message_id: str  # the producer's id: the same return delivered twice is applied once
    sku: str
    quantity: int
    order_id: str | None
    reason: str


def apply_restock(ports: Ports, request: RestockRequest, *, actor: str = "system:restock") -> bool:
    """Returns True if applied now, False if this message was applied before."""

    def attempt() -> bool:
        # Checked first: once applied, the same return may no longer fit the SKU's sold count.
        if ports.store.restock_applied(request.message_id):
            return False
        sku = ports.store.get_sku(request.sku)
        if sku is None:
            raise NotFound(f"no SKU {request.sku}", {"sku": request.sku})
        now = clock.now()
        at = clock.iso(now)
        sold = {n: level.sold for n, level in sku.shard_levels.items()}
        try:  # back to shards that sold at least that many (the guard `sold >= :q` holds there)
            plan = shards.plan_take(request.sku, request.quantity, sold, sku.stock_shards)
        except InsufficientStock:
            raise Conflict(f"{request.sku}: {request.quantity} returned, only {sum(sold.values())} ever sold",
                           {"sku": request.sku}) from None
        movements = [stock.return_sold(request.sku, shard, units, at=at, actor=actor, order_id=request.order_id,
                                       reason=request.reason) for shard, units in plan]
        marker = RestockApplied(request.message_id, request.sku, request.quantity, applied_at=at,
                                expires=int(now.timestamp()) + DEDUPE_TTL_SECONDS)
        try:
            ports.store.commit(Commit(movements=movements, records=[marker]))
        except CommitRejected as rejected:
            if RestockApplied.label in rejected.labels:
                return False
            raise
        except StockShort:
            raise StaleWrite("sold units moved meanwhile") from None
        applied.extend(movements)
        return True

    applied: list[stock.StockMovement] = []
    done = with_retries(attempt)
    inventory.announce_stock_state(ports, applied)
    return done
