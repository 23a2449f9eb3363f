"""Cart holds: place (or change), renew, release and expire; the conversion into an order is in services/orders.py.

A hold reserves stock exactly as an order does (available -> reserved, conditional arithmetic on the shard,
through the same allocation loop: the first try needs no read), each movement ledgered with the hold's id as
its `reference`. Every write of the hold is conditional on the version read, and each hold ends exactly once:
released (DELETE, or expiry through the payment-window state machine and the stock_release queue, with the
sweeper as a backstop) or converted (POST /orders with its cart id). See docs/cart-holds.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shop.domain import clock, stock
from shop.domain.cart_holds import CartHold, HoldStatus, hold_id_for, hold_line, new_hold
from shop.domain.errors import Conflict, NotFound, Unprocessable
from shop.domain.skus import Sku, StockPolicy
from shop.services import inventory, warehouses
from shop.services.allocation import take_units
from shop.services.ports import Commit, Ports
from shop.services.retry import with_retries

if TYPE_CHECKING:
    from shop.settings import Settings

# Each SKU of a hold costs up to three items of a 100-item transaction when an order takes it over (shard
# update, two ledger entries), more on several shards; the order, its number, its idempotency record, the
# customer's holdings and the hold take five.
MAX_SKUS_PER_HOLD = 20
ACTOR_EXPIRY = "system:cart_hold"


class HoldNotYetDue(Conflict):
    """An expiry message arrived before the hold's expiry: ask again later."""

    slug, title = "not-yet-due", "Cart hold not yet expired"


@dataclass(frozen=True)
class HoldPolicy:
    hold_seconds: int  # CART_HOLD_SECONDS: how long a hold lasts from its placement or last renewal
    max_seconds: int  # CART_HOLD_MAX_SECONDS: the longest a hold may last from its placement, renewals included

    @classmethod
    def from_settings(cls, settings: Settings) -> HoldPolicy:
        return cls(settings.cart_hold_seconds, settings.cart_hold_max_seconds)


def hold_view(hold: CartHold, policy: HoldPolicy) -> dict:
    """The hold as its customer sees it (no shards)."""
    return {"hold_id": hold.hold_id, "cart_id": hold.cart_id, "status": hold.status.value,
            "lines": [{"sku": line.sku, "quantity": line.quantity} for line in hold.lines],
            "created_at": hold.created_at, "updated_at": hold.updated_at, "expires_at": hold.expires_at,
            "max_expires_at": clock.iso(hold.max_expiry(policy.max_seconds)), "ended_by": hold.ended_by,
            "version": hold.version}


def get_hold_for(ports: Ports, customer_id: str, cart_id: str) -> CartHold:
    """The customer's hold of this cart (someone else's cart id names another hold: theirs is never seen)."""
    hold = ports.store.get_cart_hold(hold_id_for(customer_id, cart_id))
    if hold is None or hold.customer_id != customer_id:
        raise NotFound(f"cart {cart_id} has no hold")
    return hold


def release_movements(hold: CartHold, *, at: str, actor: str, reason: str,
                      skus: set[str] | None = None) -> list[stock.StockMovement]:
    """The hold's reserved units (of `skus`, or all) back to available, on the shards that hold them."""
    return [stock.unhold(line.sku, a.item, a.units, at=at, actor=actor, hold_id=hold.hold_id, reason=reason)
            for line in hold.lines if hold.active and (skus is None or line.sku in skus)
            for a in line.allocations]


def freed_by(movements: list[stock.StockMovement]) -> dict[str, dict[int, int]]:
    """Available units per SKU and shard that these movements give back (a transaction that releases and takes
    in one go may count them: its summed delta on the shard is what the guard sees)."""
    freed: dict[str, dict[int, int]] = {}
    for m in movements:
        if m.delta.available > 0:
            per_shard = freed.setdefault(m.sku, {})
            per_shard[m.shard] = per_shard.get(m.shard, 0) + m.delta.available
    return freed


def place_hold(ports: Ports, customer_id: str, cart_id: str, items: list[tuple[str, int]],
               policy: HoldPolicy) -> CartHold:
    """Hold the cart's lines: a new hold, or the cart's live hold changed to these lines (SKUs whose quantity
    changed are released and taken again, in the same transaction; unchanged ones keep their units)."""
    from shop.services.orders import check_catalog, merge_lines

    wanted = merge_lines(items)
    if len(wanted) > MAX_SKUS_PER_HOLD:
        raise Unprocessable(f"at most {MAX_SKUS_PER_HOLD} different SKUs per cart hold", {"fields": ["items"]})
    moved: list[stock.StockMovement] = []
    ran_dry: set[str] = set()
    actor = f"customer:{customer_id}"

    def attempt() -> CartHold:
        moved.clear()
        skus = ports.store.get_catalog(list(wanted), consistent=False)
        check_catalog(wanted, skus)
        current = ports.store.get_cart_hold(hold_id_for(customer_id, cart_id))
        if current is not None and current.customer_id != customer_id:  # a digest collision: never another's
            raise Conflict("this cart id cannot be used; choose another", {"cart_id": cart_id})
        now = clock.now()
        at = clock.iso(now)
        live = current is not None and current.live(now)
        kept = {line.sku: line for line in current.lines} if current is not None and live else {}
        unchanged = {sku for sku, line in kept.items() if wanted.get(sku) == line.quantity}
        # Released: the lines of a live hold that changed or went; all of an active hold that expired (its
        # expiry message finds it ended and does nothing).
        released = (release_movements(current, at=at, actor=actor, reason="cart_hold_changed",
                                      skus=set(kept) - unchanged) if live and current else
                    release_movements(current, at=at, actor=ACTOR_EXPIRY, reason="cart_hold_expired")
                    if current is not None and current.active else [])
        reserving = {sku: q for sku, q in wanted.items() if sku not in unchanged and _reserves(skus[sku])}
        hold_id = hold_id_for(customer_id, cart_id)
        freed = freed_by(released)
        # A cart has no address yet: the SKU's warehouses in their priority order.
        layouts, registry = warehouses.layouts_for(ports, {code: skus[code] for code in reserving}, None)

        def commit(plan: dict[str, list[tuple[int, int]]]) -> CartHold:
            lines = tuple(kept[sku] if sku in unchanged else hold_line(sku, q, plan.get(sku, []), registry)
                          for sku, q in wanted.items())
            if current is None:
                after = new_hold(customer_id, cart_id, lines, at=now, hold_seconds=policy.hold_seconds)
            else:
                after = current.placed(lines, at=now, hold_seconds=policy.hold_seconds, max_seconds=policy.max_seconds)
            taken = [stock.hold(sku, shard, units, at=at, actor=actor, hold_id=hold_id)
                     for sku, parts in plan.items() for shard, units in parts]
            # Shards not read in this request are written blind and keep a unit (as orders do: inventory docs).
            blind = frozenset((code, item) for code, parts in plan.items() if code not in ran_dry for item, _ in parts)
            ports.store.commit(Commit(movements=released + taken,
                                      cart_hold=(after, current.version if current else None),
                                      catalog_guards={sku: skus[sku] for sku in plan}, keep_available=blind))
            moved.extend(released + taken)
            return after

        def read_available(codes: list[str]) -> dict[str, dict[int, int]]:
            ran_dry.update(codes)
            levels = inventory.available_by_shard(ports, {code: skus[code] for code in codes})
            return {code: plus(levels.get(code, {}), freed.get(code, {})) for code in codes}

        return take_units(reserving, layouts, commit=commit,
                          read_available=read_available,
                          read_first={code for code in reserving if skus[code].stock_state == "sold_out"})

    hold = with_retries(attempt)
    inventory.announce_stock_state(ports, moved, ran_short=ran_dry)
    _open_timer(ports, hold)
    return hold


def renew_hold(ports: Ports, customer_id: str, cart_id: str, policy: HoldPolicy) -> CartHold:
    """The live hold's expiry moved to CART_HOLD_SECONDS from now, never past CART_HOLD_MAX_SECONDS from its
    placement (409 when it is not live: released, converted or expired)."""

    def attempt() -> CartHold:
        hold = get_hold_for(ports, customer_id, cart_id)
        renewed = hold.renewed(at=clock.now(), hold_seconds=policy.hold_seconds, max_seconds=policy.max_seconds)
        ports.store.commit(Commit(cart_hold=(renewed, hold.version)))
        return renewed

    hold = with_retries(attempt)
    _open_timer(ports, hold)
    return hold


def release_hold(ports: Ports, customer_id: str, cart_id: str) -> CartHold:
    """The shopper empties the cart: the hold's units go back on sale (an ended hold is answered as it is)."""
    hold = get_hold_for(ports, customer_id, cart_id)
    return end_hold(ports, hold.hold_id, actor=f"customer:{customer_id}", reason="cart_hold_released",
                    by="released_by_customer") or get_hold_for(ports, customer_id, cart_id)


def expire_hold(ports: Ports, hold_id: str, *, scheduled_for: str | None = None) -> CartHold | None:
    """The expiry of a hold (its timer's message, or the sweeper's): released if it is active and overdue.

    None when there is nothing to do: the hold ended already, or it was renewed after the timer that sent
    `scheduled_for` started (the renewal's own timer comes later). Raises HoldNotYetDue when its own
    timer came early (the message is retried), NotFound for an unknown hold."""
    from shop.adapters.workflows import wake_at  # the timer's own rounding of expires_at

    hold = ports.store.get_cart_hold(hold_id)
    if hold is None:
        raise NotFound(f"no cart hold {hold_id}")
    if not hold.active:
        return None
    if not hold.overdue(clock.now()):
        if scheduled_for is not None and wake_at(hold.expires_at) != scheduled_for:
            return None  # renewed (or placed again) since: a later timer expires it
        raise HoldNotYetDue(f"hold {hold_id} expires at {hold.expires_at}", {"hold_id": hold_id})
    return end_hold(ports, hold_id, actor=ACTOR_EXPIRY, reason="cart_hold_expired", by="expired",
                    only_if_overdue=True)


def end_hold(ports: Ports, hold_id: str, *, actor: str, reason: str, by: str,
             only_if_overdue: bool = False) -> CartHold | None:
    """Release an active hold (units back to available, the hold `released`), once: conditional on the version
    read, so a concurrent order that takes the units over, or another release, makes this one find it ended.
    None when it is not active (or, with `only_if_overdue`, no longer overdue: renewed meanwhile)."""
    moved: list[stock.StockMovement] = []

    def attempt() -> CartHold | None:
        moved.clear()
        hold = ports.store.get_cart_hold(hold_id)
        now = clock.now()
        if hold is None or not hold.active or (only_if_overdue and not hold.overdue(now)):
            return None
        at = clock.iso(now)
        movements = release_movements(hold, at=at, actor=actor, reason=reason)
        ended = hold.ended(HoldStatus.RELEASED, at=now, by=by)
        ports.store.commit(Commit(movements=movements, cart_hold=(ended, hold.version)))
        moved.extend(movements)
        return ended

    ended = with_retries(attempt)
    inventory.announce_stock_state(ports, moved)
    if ended is not None:
        ports.events.publish("cart_hold.released", {"hold_id": ended.hold_id, "cart_id": ended.cart_id,
                                                    "customer_id": ended.customer_id, "reason": reason,
                                                    "released": [{"sku": line.sku, "quantity": line.quantity}
                                                                 for line in ended.lines]})
    return ended


def _open_timer(ports: Ports, hold: CartHold) -> None:
    if ports.hold_timers is not None and hold.active:
        ports.hold_timers.open(hold.hold_id, hold.expires_at)


def _reserves(sku: Sku) -> bool:
    """deduct_on_payment SKUs hold nothing (SPEC), nor do virtual goods (caps, not stock): their lines are kept,
    with no units."""
    return sku.stock_policy is StockPolicy.RESERVE_ON_ORDER and sku.virtual is None


def plus(levels: dict[int, int], freed: dict[int, int]) -> dict[int, int]:
    return {shard: levels.get(shard, 0) + freed.get(shard, 0) for shard in set(levels) | set(freed)}

