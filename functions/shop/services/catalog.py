"""Catalog and stock use cases for operators: create/update SKUs, adjust stock."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from shop.domain import clock, stock
from shop.domain.errors import Conflict, NotFound
from shop.domain.money import Money
from shop.domain.skus import Sku, StockLevels, StockPolicy
from shop.domain.stock import StockMovement
from shop.services.ports import Commit, CommitRejected, Ports, StaleWrite
from shop.services.retry import with_retries


@dataclass(frozen=True)
class SkuDetails:
    name: str
    price: Money
    active: bool = True
    stock_policy: StockPolicy = StockPolicy.RESERVE_ON_ORDER
    max_per_order: int | None = None
    low_stock_threshold: int | None = None
    payment_window_seconds: int | None = None
    on_hand: int | None = None  # when given, stock is set to it through a ledgered adjustment


def _movement_at(ports: Ports, code: str, seq: int) -> StockMovement:
    item = ports.store.get_item({"pk": f"SKU#{code}", "sk": f"LEDGER#{seq:012d}"})
    return StockMovement(sku=code, seq=seq, at=item["at"], actor=item["actor"], reason=item["reason"],
                         order_id=item.get("order_id"), delta=StockLevels(**item["delta"]),
                         levels=StockLevels(**item["levels"]))


def get_sku(ports: Ports, code: str) -> Sku:
    sku = ports.store.get_sku(code)
    if sku is None:
        raise NotFound(f"no SKU {code}", {"sku": code})
    return sku


def upsert_sku(ports: Ports, code: str, details: SkuDetails, *, actor: str) -> tuple[Sku, bool]:
    """Create or replace a SKU's catalog details; returns (sku, created)."""

    def attempt() -> tuple[Sku, bool]:
        current = ports.store.get_sku(code)
        at = clock.iso(clock.now())
        base = current or Sku(sku=code, name=details.name, price=details.price, created_at=at,
                              levels=StockLevels(), stock_seq=0)
        if current and current.price.currency != details.price.currency and current.levels.reserved:
            raise Conflict("cannot change the currency of a SKU with reserved units", {"sku": code})
        updated = replace(
            base,
            name=details.name,
            price=details.price,
            active=details.active,
            stock_policy=details.stock_policy,
            max_per_order=details.max_per_order,
            low_stock_threshold=details.low_stock_threshold,
            payment_window_seconds=details.payment_window_seconds,
            updated_at=at,
        )
        movements: list[StockMovement] = []
        if details.on_hand is not None and details.on_hand != base.levels.on_hand:
            movement = stock.adjust(updated, details.on_hand - base.levels.on_hand, at=at, actor=actor,
                                    reason="on_hand_set" if current else "initial_stock")
            movements.append(movement)
            updated = updated.with_levels(movement.levels, movement.seq, at)
        # The SKU item is written whole (conditional on the seq read); movements add only their ledger entries.
        ports.store.commit(Commit(movements=movements, sku_put=(updated, current.stock_seq if current else None)))
        return updated, current is None

    def attempt_handling_create_race() -> tuple[Sku, bool]:
        try:
            return attempt()
        except CommitRejected as rejected:
            if "sku_new" in rejected.labels:  # created concurrently: update it instead
                raise StaleWrite("sku created concurrently") from None
            raise

    return with_retries(attempt_handling_create_race)


def adjust_stock(ports: Ports, code: str, delta: int, *, reason: str, actor: str,
                 request_id: str | None = None) -> tuple[Sku, StockMovement]:
    """One adjustment per request id: a retry after a commit whose answer was lost applies nothing twice."""
    marker_key = {"pk": f"ADJUSTMENT#{code}#{request_id or uuid.uuid4().hex}", "sk": "ADJUSTMENT"}

    def attempt() -> tuple[Sku, StockMovement]:
        sku = get_sku(ports, code)
        at = clock.iso(clock.now())
        movement = stock.adjust(sku, delta, at=at, actor=actor, reason=reason)
        marker = {**marker_key, "entity": "ADJUSTMENT", "seq": movement.seq,
                  "ttl": int(clock.now().timestamp()) + 7 * 24 * 3600}
        try:
            ports.store.commit(Commit(movements=[movement], unique_puts=[("adjustment", marker)]))
        except CommitRejected as rejected:
            if "adjustment" not in rejected.labels:
                raise
            done = rejected.existing.get("adjustment") or ports.store.get_item(marker_key)
            current = get_sku(ports, code)
            return current, _movement_at(ports, code, int(done["seq"]))
        return sku.with_levels(movement.levels, movement.seq, at), movement

    sku, movement = with_retries(attempt)
    if sku.levels.available == 0:
        ports.events.publish("stock.sold_out", {"sku": code})
    return sku, movement
