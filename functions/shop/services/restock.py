"""Stock returns (refund with restock, customer returns): sold units come back to available, once per message."""

from __future__ import annotations

from dataclasses import dataclass

from shop.domain import clock, stock
from shop.domain.errors import NotFound
from shop.services.ports import Commit, CommitRejected, Ports
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

    marker_key = {"pk": f"RESTOCK#{request.message_id}", "sk": "RESTOCK"}

    def attempt() -> bool:
        # Checked first: once applied, the same return may no longer fit the SKU's sold count.
        if ports.store.get_item(marker_key):
            return False
        sku = ports.store.get_sku(request.sku)
        if sku is None:
            raise NotFound(f"no SKU {request.sku}", {"sku": request.sku})
        now = clock.now()
        at = clock.iso(now)
        movement = stock.return_sold(sku, request.quantity, at=at, actor=actor, order_id=request.order_id,
                                     reason=request.reason)
        marker = {**marker_key, "entity": "RESTOCK",
                  "sku": request.sku, "quantity": request.quantity, "applied_at": at,
                  "ttl": int(now.timestamp()) + DEDUPE_TTL_SECONDS}
        try:
            ports.store.commit(Commit(movements=[movement], unique_puts=[("restock_message", marker)]))
        except CommitRejected as rejected:
            if "restock_message" in rejected.labels:
                return False
            raise
        return True

    return with_retries(attempt)
