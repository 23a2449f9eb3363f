"""Taking units from a SKU's stock shards without reading them first.

The first try writes to one live shard chosen at random, with no read: concurrent orders spread
over the shards and never wait for each other. Only when a shard's guard fails (it ran short) are
that SKU's shards read, and the units taken from one shard that holds them all, or from several
in the same transaction; the tail of a sale therefore always finds the last units. Shared by
every path that takes available stock (placing an order, a payment that finds no reservation)
and by the capacity model's simulation (tests/unit/test_capacity_model.py).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TypeVar

from shop.domain import shards
from shop.domain.errors import InsufficientStock, Unavailable
from shop.services.ports import StockShort

T = TypeVar("T")
Plan = dict[str, list[tuple[int, int]]]  # sku -> [(shard, units)]
MAX_REPLANS = 8


def take_units(wanted: dict[str, int], live_shards: dict[str, int], *, commit: Callable[[Plan], T],
               read_available: Callable[[list[str]], dict[str, dict[int, int]]],
               rng: random.Random | None = None, read_first: frozenset[str] | set[str] = frozenset()) -> T:
    """Commit a plan taking `wanted` units per SKU; replan the SKUs whose shard ran short from a fresh read.

    `commit(plan)` raises StockShort naming the SKUs whose guard failed; `read_available(skus)` returns
    each SKU's available units per shard. Raises InsufficientStock naming every SKU that is short in all.
    SKUs in `read_first` (e.g. last seen sold out) are read before the first write instead of after it:
    a doomed write costs more than a read, and the sold-out tail of a sale is mostly such requests.
    """
    plan: Plan = {sku: [(shards.pick_shard(live_shards[sku], rng), units)] for sku, units in wanted.items()}
    short_skus = {code for code in wanted if code in read_first}
    for _ in range(MAX_REPLANS):
        if short_skus:
            levels = read_available([code for code in wanted if code in short_skus])
            shortages = []
            for sku in [code for code in wanted if code in short_skus]:  # named in the request's order
                try:
                    plan[sku] = shards.plan_take(sku, wanted[sku], levels.get(sku, {}), live_shards[sku], rng)
                except InsufficientStock as missing:
                    shortages += missing.extra["shortages"]
            unread = [code for code in wanted if code not in short_skus]
            if shortages and unread:  # refused anyway: name every SKU that is short, not only those read
                others = read_available(unread)
                for sku in unread:
                    try:
                        shards.plan_take(sku, wanted[sku], others.get(sku, {}), live_shards[sku], rng)
                    except InsufficientStock as missing:
                        shortages += missing.extra["shortages"]
                order = list(wanted)
                shortages.sort(key=lambda s: order.index(s["sku"]))
            if shortages:
                names = ", ".join(f"{s['sku']} ({s['available']} available)" for s in shortages)
                raise InsufficientStock(f"not enough stock: {names}", {"shortages": shortages}) from None
        try:
            return commit(plan)
        except StockShort as short:
            short_skus = set(short.skus)
    raise Unavailable("stock is moving fast on these SKUs; retry shortly", {"retry_after": 1})
