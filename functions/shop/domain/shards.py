"""Choosing stock shards: where an order takes its units, and how stock is evened out between shards.

Pure functions over levels already known; the store applies the resulting movements as conditional
arithmetic (see shop/domain/stock.py).
"""

from __future__ import annotations

import random

from shop.domain.errors import InsufficientStock
from shop.domain.warehouses import ITEMS_PER_WAREHOUSE, location_of


def pick_shard(live_shards: int, rng: random.Random | None = None) -> int:
    """Where an order first tries to take its units: any live shard, at random, so orders spread out."""
    return (rng or random).randrange(max(1, live_shards))


def plan_take(sku: str, quantity: int, available: dict[int, int], live_shards: int,
              rng: random.Random | None = None) -> list[tuple[int, int]]:
    """Which shards give `quantity` units, from levels just read: one shard that holds them all if
    any (live ones first, at random), else the fullest first. Raises InsufficientStock when all
    shards together hold fewer: the last unit of a SKU can always be sold, wherever it sits."""
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise ValueError("quantity must be a positive int")
    total = sum(max(0, a) for a in available.values())
    if total < quantity:
        raise InsufficientStock(f"{sku}: {quantity} requested, {total} available",
                                {"shortages": [{"sku": sku, "requested": quantity, "available": total}]})
    whole = [s for s, a in available.items() if a >= quantity]
    if whole:
        live = [s for s in whole if s < live_shards] or whole
        return [((rng or random).choice(live), quantity)]
    plan, left = [], quantity
    for shard, units in sorted(available.items(), key=lambda kv: (-kv[1], kv[0])):
        take = min(units, left)
        if take > 0:
            plan.append((shard, take))
            left -= take
        if not left:
            break
    return plan


def plan_rebalance(available: dict[int, int], live_shards: int) -> list[tuple[int, int, int]]:
    """Moves (source, target, quantity) that even out available units over the live shards and empty
    retired ones (shards at or beyond `live_shards`, left when the shard count was lowered)."""
    live = list(range(max(1, live_shards)))
    total = sum(max(0, a) for a in available.values())
    share, extra = divmod(total, len(live))
    want = {s: share + (1 if i < extra else 0) for i, s in enumerate(live)}
    surplus = {s: max(0, a) - want.get(s, 0) for s, a in available.items()}
    givers = sorted(((s, q) for s, q in surplus.items() if q > 0), key=lambda kv: -kv[1])
    takers = sorted(((s, -want[s] + max(0, available.get(s, 0))) for s in live
                     if want[s] > max(0, available.get(s, 0))), key=lambda kv: kv[1])
    moves = []
    takers_left = [[s, -q] for s, q in takers]  # units each taker still needs
    for source, units in givers:
        for slot in takers_left:
            if not units:
                break
            if slot[1] <= 0:
                continue
            quantity = min(units, slot[1])
            moves.append((source, slot[0], quantity))
            slot[1] -= quantity
            units -= quantity
    return moves


def first_try(ranked_warehouses: tuple[int, ...], live_shards: int, rng: random.Random | None = None) -> int:
    """The stock item an order first writes to, without a read: a random live shard of the nearest warehouse."""
    return (ranked_warehouses[0] if ranked_warehouses else 0) * ITEMS_PER_WAREHOUSE + pick_shard(live_shards, rng)


def plan_take_ranked(sku: str, quantity: int, available: dict[int, int], ranked_warehouses: tuple[int, ...],
                     live_shards: int, rng: random.Random | None = None) -> list[tuple[int, int]]:
    """Which stock items give `quantity` units, from levels just read (item -> available units), with the
    SKU's warehouses (locations: a presale pool, a virtual cap) nearest first: the nearest warehouse that holds them all, else the nearest ones in turn
    (a line is split over warehouses only when no single one can serve it). Within a warehouse: `plan_take`.
    Raises InsufficientStock when all warehouses together hold fewer."""
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise ValueError("quantity must be a positive int")
    order = list(ranked_warehouses) + sorted({location_of(i) for i in available} - set(ranked_warehouses))
    per_warehouse: dict[int, dict[int, int]] = {w: {} for w in order}
    for item, units in available.items():
        per_warehouse[location_of(item)][item % ITEMS_PER_WAREHOUSE] = units

    def total(warehouse: int) -> int:
        return sum(max(0, a) for a in per_warehouse[warehouse].values())

    def items_of(warehouse: int, units: int) -> list[tuple[int, int]]:
        plan = plan_take(sku, units, per_warehouse[warehouse], live_shards, rng)
        return [(warehouse * ITEMS_PER_WAREHOUSE + shard, taken) for shard, taken in plan]

    whole = next((w for w in order if total(w) >= quantity), None)
    if whole is not None:
        return items_of(whole, quantity)
    everything = sum(total(w) for w in order)
    if everything < quantity:
        raise InsufficientStock(f"{sku}: {quantity} requested, {everything} available",
                                {"shortages": [{"sku": sku, "requested": quantity, "available": everything}]})
    plan, left = [], quantity
    for warehouse in order:
        take = min(total(warehouse), left)
        if take > 0:
            plan += items_of(warehouse, take)
            left -= take
    return plan
