"""Taking units from a SKU's stock items without reading them first.

The first try writes to one live shard of the nearest warehouse holding the SKU, chosen at random, with
no read: concurrent orders spread over the shards and never wait for each other. Only when a shard's guard fails (it ran short) are
that SKU's items read (every warehouse), and the units taken from the nearest warehouse that holds
them all, within it from one shard that holds them all or from several, in the same transaction (a
line is split over warehouses only when no single one can serve it); the tail of a sale therefore always finds the last units. Shared by
every path that takes available stock (placing an order, a payment that finds no reservation)
and by the capacity model's simulation (tests/unit/test_capacity_model.py).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from shop.domain import backorders, shards
from shop.domain.errors import InsufficientStock, Unavailable
from shop.services.ports import StockShort

T = TypeVar("T")
Plan = dict[str, list[tuple[int, int]]]  # sku -> [(stock item, units)]
MAX_REPLANS = 8


@dataclass(frozen=True)
class StockLayout:
    """Where one SKU's units may come from: its warehouses (indexes) nearest first, and how many shards of
    each take new orders."""

    ranked_warehouses: tuple[int, ...] = (0,)
    live_shards: int = 1
    # The SKU allows backorders here (placing an order): when its items read hold too few, the rest is reserved
    # on its backorder allowance, whose available units the read includes (shop/domain/backorders.py).
    backorders: bool = False


def take_units(wanted: dict[str, int], layouts: dict[str, StockLayout], *, commit: Callable[[Plan], T],
               read_available: Callable[[list[str]], dict[str, dict[int, int]]],
               rng: random.Random | None = None, read_first: frozenset[str] | set[str] = frozenset()) -> T:
    """Commit a plan taking `wanted` units per SKU; replan the SKUs whose shard ran short from a fresh read.

    `commit(plan)` raises StockShort naming the SKUs whose guard failed; `read_available(skus)` returns
    each SKU's available units per stock item. Raises InsufficientStock naming every SKU that is short in all.
    SKUs in `read_first` (e.g. last seen sold out) are read before the first write instead of after it:
    a doomed write costs more than a read, and the sold-out tail of a sale is mostly such requests.
    """
    plan: Plan = {sku: [(shards.first_try(layouts[sku].ranked_warehouses, layouts[sku].live_shards, rng), units)]
                  for sku, units in wanted.items()}
    short_skus = {code for code in wanted if code in read_first}
    for _ in range(MAX_REPLANS):
        if short_skus:
            levels = read_available([code for code in wanted if code in short_skus])
            shortages = []
            for sku in [code for code in wanted if code in short_skus]:  # named in the request's order
                try:
                    plan[sku] = _plan(sku, wanted[sku], levels.get(sku, {}), layouts[sku], rng)
                except InsufficientStock as missing:
                    shortages += missing.extra["shortages"]
            unread = [code for code in wanted if code not in short_skus]
            if shortages and unread:  # refused anyway: name every SKU that is short, not only those read
                others = read_available(unread)
                for sku in unread:
                    try:
                        _plan(sku, wanted[sku], others.get(sku, {}), layouts[sku], rng)
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


def _plan(sku: str, quantity: int, available: dict[int, int], layout: StockLayout,
          rng: random.Random | None) -> list[tuple[int, int]]:
    if not layout.backorders:
        return shards.plan_take_ranked(sku, quantity, available, layout.ranked_warehouses, layout.live_shards, rng)
    stocked = {item: units for item, units in available.items() if not backorders.is_backorder_item(item)}
    allowance = sum(units for item, units in available.items() if backorders.is_backorder_item(item))
    return backorders.plan_with_backorder(sku, quantity, stocked, layout.ranked_warehouses, layout.live_shards,
                                          allowance, rng)
