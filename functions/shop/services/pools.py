"""Presale pools and virtual caps: stock kept apart from a SKU's spot stock (docs/presale-and-virtual.md).

Both are stock items of the SKU in another state (shop/domain/warehouses.py): the presale pool one item in the
PRESALE state of a warehouse, a virtual SKU's total cap one item in the VIRTUAL state and its daily cap one item
per day of the shop (shop/domain/virtual.py). Every unit moves by conditional arithmetic on its item with its
ledger entry in the same transaction, as spot stock does; a plain spot order touches none of this (no read, no
write: the checks here are pure until a line is presale or virtual).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, NamedTuple

from shop.domain import clock, shards, stock
from shop.domain.errors import Conflict, InsufficientStock, NotFound, Unprocessable
from shop.domain.orders import Order, OrderLine
from shop.domain.presale import PresaleTerms
from shop.domain.skus import MAX_STOCK_ITEMS, Sku, StockLevels, StockPolicy
from shop.domain.stock import StockMovement
from shop.domain.virtual import TOTAL_ITEM, VIRTUAL_LOCATION, VirtualTerms, day_item, is_day_item, local_day
from shop.domain.warehouses import stock_item
from shop.services import adjustments
from shop.services.ports import CapReached, Commit, CommitRejected, Ports, StaleWrite, StockShort
from shop.services.retry import with_retries


class DailyCapReached(InsufficientStock):
    """A virtual SKU sold its daily cap for today (the shop's day): 409 like a shortage of stock."""

    slug, title = "daily-cap-reached", "Daily cap reached"


# ---- the order path (pure until a line is presale or virtual) -----------------------------------------------

def check_order_lines(wanted: dict[str, int], skus: dict[str, Sku], presale: frozenset[str], at: datetime) -> None:
    """A presale line needs the SKU's presale window open now; virtual goods have no presale. 422 otherwise."""
    if not presale:
        return
    refused = []
    for code in wanted:
        if code not in presale:
            continue
        terms = skus[code].presale
        if terms is None or skus[code].virtual is not None:
            refused.append({"sku": code, "reason": "no_presale"})
        elif not terms.is_open(at):
            refused.append({"sku": code, "reason": f"presale_{terms.window_state(at)}", "starts_at": terms.starts_at,
                            "ends_at": terms.ends_at})
    if refused:
        raise Unprocessable("presale not open for these SKUs", {"skus": refused})


def order_line(line: OrderLine, sku: Sku, *, presale: bool) -> OrderLine:
    """A presale line takes its units from the pool at payment (deduct_on_payment on the pool) and says when it
    ships; a virtual line reserves against the caps (whatever the SKU's policy) and never ships."""
    if presale and sku.presale is not None:
        return replace(line, stock_policy=StockPolicy.DEDUCT_ON_PAYMENT, presale_ships_on=sku.presale.ships_on)
    if sku.virtual is not None:
        return replace(line, stock_policy=StockPolicy.RESERVE_ON_ORDER, virtual=True)
    return line


def takes_stock(line: OrderLine, sku: Sku) -> bool:
    """Whether the line takes units from stock items offered like spot stock (a virtual SKU without a total cap
    has none: only its daily cap limits it)."""
    return not line.virtual or bool(sku.sellable_warehouses())


class DayCap(NamedTuple):
    item: int  # the day item
    units: int
    cap: int  # its opening levels, if this order is the day's first


def day_cap_takes(order: Order, skus: dict[str, Sku], at: datetime, time_zone: str,
                  lines: tuple[OrderLine, ...] | None = None) -> dict[str, DayCap]:
    """The day items the order's virtual lines take units from (the shop's day at `at`)."""
    found: dict[str, DayCap] = {}
    for line in order.lines if lines is None else lines:
        terms = skus[line.sku].virtual if line.virtual and line.sku in skus else None
        if terms is not None and terms.daily_cap is not None:
            found[line.sku] = DayCap(day_item(local_day(at, time_zone)), line.quantity, terms.daily_cap)
    return found


def with_day_caps(plan: dict[str, list[tuple[int, int]]], day_caps: dict[str, DayCap]
                  ) -> dict[str, list[tuple[int, int]]]:
    """The plan with each virtual line's day item among the items it takes units from."""
    return {**plan, **{code: [*plan.get(code, []), (cap.item, cap.units)] for code, cap in day_caps.items()}}


def opened(movement: StockMovement, day_caps: dict[str, DayCap]) -> StockMovement:
    """A movement on a day item carries the day's opening levels (the item is written by the day's first order)."""
    cap = day_caps.get(movement.sku)
    return replace(movement, opening=cap.cap) if cap is not None and cap.item == movement.shard else movement


def daily_cap_reached(capped: CapReached, wanted: dict[str, int]) -> DailyCapReached:
    shortages = [{"sku": code, "requested": wanted.get(code, 0), "available": max(0, capped.available.get(code, 0)),
                  "reason": "daily_cap"} for code in sorted(capped.skus)]
    names = ", ".join(f"{s['sku']} ({s['available']} left today)" for s in shortages)
    return DailyCapReached(f"daily cap reached: {names}", {"shortages": shortages})


def presale_layout_skus(order: Order, taking: dict[str, int]) -> set[str]:
    """The SKUs of `taking` whose units come from their presale pool."""
    return {line.sku for line in order.lines if line.presale_ships_on is not None and line.sku in taking}


# ---- operators: terms, caps, release ------------------------------------------------------------------------

def _get(ports: Ports, code: str) -> Sku:
    sku = ports.store.get_sku(code)
    if sku is None:
        raise NotFound(f"no SKU {code}", {"sku": code})
    return sku


def _save_terms(ports: Ports, code: str, change: Any) -> Sku:
    """The catalog entry changed by `change(sku)` (terms, locations), conditional on its version read."""

    def attempt() -> Sku:
        current = _get(ports, code)
        updated = change(current)
        if len(updated.stock_items()) > MAX_STOCK_ITEMS:
            raise Unprocessable(f"{code}: at most {MAX_STOCK_ITEMS} stock items", {"sku": code})
        try:
            ports.store.commit(Commit(sku_put=(replace(updated, updated_at=clock.iso(clock.now())),
                                               ports.store.catalog_version(code))))
        except CommitRejected:
            raise StaleWrite("the SKU changed meanwhile") from None
        return updated

    return with_retries(attempt)


def cap_adjustment(cap: int, levels: StockLevels) -> int:
    """The on_hand change that makes a cap item hold `cap` units in all (cap = sold + reserved + available), never
    taking back more than is available (a cap below what is sold or reserved empties what is left)."""
    return max(cap - levels.sold - levels.on_hand, -max(0, levels.available))


def set_cap(ports: Ports, code: str, item: int, cap: int, *, actor: str, reason: str,
            only_if_exists: bool = False) -> list[StockMovement]:
    """One ledgered adjustment of a cap item (presale pool, total cap, today's day item) to `cap`, computed from a
    fresh read and guarded by the item itself (a racing order only makes it retry)."""

    def attempt() -> list[StockMovement]:
        levels = ports.store.shard_levels({code: [item]})[code].get(item)
        if levels is None and only_if_exists:
            return []
        delta = cap_adjustment(cap, levels or StockLevels())
        if delta == 0:
            return []
        movements = [stock.adjust(code, item, delta, at=clock.iso(clock.now()), actor=actor, reason=reason)]
        try:
            ports.store.commit(Commit(movements=movements))
        except StockShort:
            raise StaleWrite("the cap item moved meanwhile") from None
        return movements

    return with_retries(attempt)


def set_presale(ports: Ports, code: str, terms: PresaleTerms, *, actor: str) -> Sku:
    """Presale terms on the SKU (its pool's location created the first time), then the pool set to the cap."""
    def change(sku: Sku) -> Sku:
        if sku.virtual is not None:
            raise Unprocessable("a virtual SKU has no presale", {"sku": code})
        if sku.presale is not None and sku.presale.warehouse != terms.warehouse:
            pool = sku.shard_levels.get(sku.presale.item, StockLevels())
            if pool.on_hand or pool.sold:
                raise Conflict("the presale pool has units in another warehouse; release them first", {"sku": code})
        places = sku.locations if terms.location in sku.locations else (*sku.locations, terms.location)
        return replace(sku, presale=terms, locations=places)

    _save_terms(ports, code, change)
    set_cap(ports, code, terms.item, terms.cap, actor=actor, reason="presale_cap")
    return _get(ports, code)


def set_virtual(ports: Ports, code: str, terms: VirtualTerms, *, actor: str, time_zone: str) -> Sku:
    """Virtual terms on the SKU: the total cap's item (created the first time) set to the cap, today's day item
    (if the day has begun) to the new daily cap. A virtual SKU sells only against its caps."""
    def change(sku: Sku) -> Sku:
        if sku.presale is not None:
            raise Unprocessable("a SKU with a presale cannot be virtual", {"sku": code})
        places = sku.locations
        if terms.total_cap is not None and VIRTUAL_LOCATION not in places:
            places = (*places, VIRTUAL_LOCATION)
        return replace(sku, virtual=terms, locations=places)

    sku = _save_terms(ports, code, change)
    if VIRTUAL_LOCATION in sku.locations:  # no total cap any more: the item offers nothing
        set_cap(ports, code, TOTAL_ITEM, terms.total_cap or 0, actor=actor, reason="total_cap")
    if terms.daily_cap is not None:
        today = day_item(local_day(clock.now(), time_zone))
        set_cap(ports, code, today, terms.daily_cap, actor=actor, reason="daily_cap", only_if_exists=True)
    return _get(ports, code)


@dataclass(frozen=True)
class Release:
    sku: Sku
    movements: list[StockMovement]


def release_presale(ports: Ports, code: str, quantity: int, *, reason: str, actor: str,
                    request_id: str | None = None) -> Release:
    """Unsold presale units become spot stock: pool -> a live sellable shard of the pool's warehouse, two
    movements in one transaction (guarded `available >= :q` on the pool), once per request id; the presale cap is
    then lowered by as many units (cap = sold + what the pool still offers)."""
    request = request_id or uuid.uuid4().hex

    def attempt() -> list[StockMovement]:
        sku = _get(ports, code)
        if sku.presale is None:
            raise Conflict(f"{code} has no presale", {"sku": code})
        terms = sku.presale
        if terms.warehouse not in sku.locations:
            _save_terms(ports, code, lambda s: replace(s, locations=(*s.locations, terms.warehouse)))
        target = stock_item(terms.warehouse, shards.pick_shard(sku.stock_shards))
        movements = stock.move(code, terms.item, target, quantity, at=clock.iso(clock.now()), actor=actor,
                               reason=f"presale_release: {reason}")
        try:
            applied_before = adjustments.commit_once(ports, code, request, movements)
        except StockShort:
            left = ports.store.shard_levels({code: [terms.item]})[code].get(terms.item, StockLevels()).available
            if left >= quantity:
                raise StaleWrite("the pool moved meanwhile") from None
            raise InsufficientStock(f"{code}: {quantity} to release, {left} unsold in the presale pool",
                                    {"shortages": [{"sku": code, "requested": quantity, "available": left}]}) from None
        if applied_before is not None:
            return applied_before
        _save_terms(ports, code, lambda s: replace(s, presale=replace(s.presale, cap=max(0, s.presale.cap - quantity)))
                    if s.presale else s)
        return movements

    from shop.services import inventory  # inventory sells presale lines through this module

    movements = with_retries(attempt)
    inventory.announce_stock_state(ports, movements)
    return Release(_get(ports, code), movements)


# ---- what storefronts see -----------------------------------------------------------------------------------

def with_today(ports: Ports, sku: Sku, time_zone: str, at: datetime | None = None) -> Sku:
    """A virtual SKU with a daily cap with today's day item among its levels (one read; nothing otherwise)."""
    if sku.virtual is None or sku.virtual.daily_cap is None:
        return sku
    today = day_item(local_day(at or clock.now(), time_zone))
    found = ports.store.shard_levels({sku.sku: [today]})[sku.sku]
    return replace(sku, shard_levels={**sku.shard_levels, today: found.get(today) or StockLevels(
        sku.virtual.daily_cap, sku.virtual.daily_cap, 0, 0)})


def virtual_available(sku: Sku) -> int | None:
    """What a virtual SKU can still sell now: the least of its total cap's and today's available units (None:
    not virtual). Today's is the day item `with_today` added, else the whole daily cap."""
    terms = sku.virtual
    if terms is None:
        return None
    limits = []
    if terms.total_cap is not None:
        limits.append(max(0, sku.levels.available))
    if terms.daily_cap is not None:
        today = [levels.available for item, levels in sku.shard_levels.items() if is_day_item(item)]
        limits.append(max(0, today[-1] if today else terms.daily_cap))
    return min(limits) if limits else 0


def presale_view(sku: Sku, at: datetime | None = None) -> dict[str, Any] | None:
    """The presale a storefront shows, apart from spot availability: units left in the pool, window, ship date."""
    terms = sku.presale
    if terms is None:
        return None
    pool = sku.shard_levels.get(terms.item, StockLevels())
    return {"available": max(0, pool.available), "status": terms.window_state(at or clock.now()),
            "starts_at": terms.starts_at, "ends_at": terms.ends_at, "ships_on": terms.ships_on}
