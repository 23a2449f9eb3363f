"""Cart holds: stock a storefront holds for a shopper's cart for a while, before the order is placed.

A hold belongs to one customer and one cart (its id derives from both, so a cart id names another
customer's hold never). Its lines hold reserved units on stock shards, exactly as an order's lines do
(`OrderLine.allocations`), and end in exactly one way: `converted` (an order took the units over in its
own transaction), or `released` (the shopper emptied the cart, or the hold expired). Placed again after
that, the same record becomes active again at the next version. Every write is conditional on the
version read (adapters: the hold item), so two writers never both end one hold.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from shop.domain import clock
from shop.domain.errors import Conflict, Unprocessable
from shop.domain.orders import Allocation
from shop.domain.warehouses import Warehouses, warehouse_index_of

MAX_CART_ID_LENGTH = 64
CART_ID_PATTERN = rf"^[A-Za-z0-9_-]{{1,{MAX_CART_ID_LENGTH}}}$"


class HoldStatus(StrEnum):
    ACTIVE = "active"
    CONVERTED = "converted"  # an order took the units over
    RELEASED = "released"  # given back: emptied by the shopper, or expired


class HoldNotActive(Conflict):
    slug, title = "cart-hold-not-active", "Cart hold not active"


class HoldMismatch(Conflict):
    """An order names a cart whose hold holds other lines than the order asks for."""

    slug, title = "cart-hold-mismatch", "Order lines differ from the cart hold"


def hold_id_for(customer_id: str, cart_id: str) -> str:
    """The hold of one customer's cart: a stable id (the record key, the expiry execution's name)."""
    digest = hashlib.blake2b(f"{customer_id}\0{cart_id}".encode(), digest_size=12).hexdigest()
    return f"hold_{digest}"


@dataclass(frozen=True)
class HoldLine:
    sku: str
    quantity: int
    # The stock items (and their warehouses) holding the line's units, as on an order line: releases and
    # conversions go back there, and an order taking the hold over ships from the same warehouses.
    allocations: tuple[Allocation, ...] = ()

    @property
    def plan(self) -> list[tuple[int, int]]:
        """(item, units) of the allocations: the shape the allocation loop plans in."""
        return [(a.item, a.units) for a in self.allocations]


def hold_line(sku: str, quantity: int, parts: list[tuple[int, int]], warehouses: Warehouses | None = None) -> HoldLine:
    """A line holding `parts` (item, units) of the plan, each named with its warehouse as an order line's are."""
    known = warehouses or Warehouses()
    return HoldLine(sku, quantity, tuple(Allocation(item, units, known.code_of(warehouse_index_of(item)))
                                         for item, units in parts))


@dataclass(frozen=True)
class CartHold:
    hold_id: str
    cart_id: str
    customer_id: str
    status: HoldStatus
    lines: tuple[HoldLine, ...]
    created_at: str  # when this term of the hold began (placed while not active)
    updated_at: str
    expires_at: str
    # What ended the hold: the order it became ("converted"), or "released_by_customer" / "expired".
    ended_by: str | None = None
    version: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", HoldStatus(self.status))

    @property
    def active(self) -> bool:
        return self.status is HoldStatus.ACTIVE

    def units(self) -> dict[str, int]:
        """Units held per SKU (none once the hold ended)."""
        return {line.sku: line.quantity for line in self.lines} if self.active else {}

    def overdue(self, now: datetime) -> bool:
        return clock.parse_iso(self.expires_at) <= now

    def live(self, now: datetime) -> bool:
        """Active and not yet expired: an order may take its units over."""
        return self.active and not self.overdue(now)

    def max_expiry(self, max_seconds: int) -> datetime:
        return clock.parse_iso(self.created_at) + timedelta(seconds=max_seconds)

    def placed(self, lines: tuple[HoldLine, ...], *, at: datetime, hold_seconds: int, max_seconds: int) -> CartHold:
        """New lines for this cart: a live hold keeps its term (renewed as `renewed` would, within its
        maximum); an ended or expired one starts a new term."""
        stamp = clock.iso(at)
        if not self.live(at):
            return replace(self, status=HoldStatus.ACTIVE, lines=lines, created_at=stamp, updated_at=stamp,
                           expires_at=clock.iso_after(at, hold_seconds), ended_by=None, version=self.version + 1)
        return replace(self, lines=lines, updated_at=stamp, version=self.version + 1,
                       expires_at=_extended(self, at, hold_seconds, max_seconds))

    def renewed(self, *, at: datetime, hold_seconds: int, max_seconds: int) -> CartHold:
        """Expiry moved to `hold_seconds` from now, never beyond `max_seconds` after the term began."""
        if not self.live(at):
            raise HoldNotActive(f"cart {self.cart_id} holds no stock (it is {self.status.value}"
                                f"{', expired' if self.active else ''}); place the hold again",
                                {"cart_id": self.cart_id, "status": self.status.value})
        return replace(self, updated_at=clock.iso(at), version=self.version + 1,
                       expires_at=_extended(self, at, hold_seconds, max_seconds))

    def ended(self, status: HoldStatus, *, at: datetime, by: str) -> CartHold:
        if not self.active:
            raise HoldNotActive(f"cart {self.cart_id} hold is {self.status.value}", {"cart_id": self.cart_id})
        return replace(self, status=status, updated_at=clock.iso(at), ended_by=by, version=self.version + 1)


def _extended(hold: CartHold, at: datetime, hold_seconds: int, max_seconds: int) -> str:
    wanted = at + timedelta(seconds=hold_seconds)
    latest = hold.max_expiry(max_seconds)
    return max(hold.expires_at, clock.iso(min(wanted, latest)))


def new_hold(customer_id: str, cart_id: str, lines: tuple[HoldLine, ...], *, at: datetime,
             hold_seconds: int) -> CartHold:
    stamp = clock.iso(at)
    return CartHold(hold_id_for(customer_id, cart_id), cart_id, customer_id, HoldStatus.ACTIVE, lines,
                    created_at=stamp, updated_at=stamp, expires_at=clock.iso_after(at, hold_seconds), version=1)


def check_order_lines(hold: CartHold, wanted: dict[str, int]) -> None:
    """An order from a hold asks for exactly the hold's lines (409 naming each SKU that differs)."""
    held = hold.units()
    differs = [{"sku": sku, "held": held.get(sku, 0), "requested": wanted.get(sku, 0)}
               for sku in sorted(set(held) | set(wanted)) if held.get(sku, 0) != wanted.get(sku, 0)]
    if differs:
        raise HoldMismatch(f"the order's lines differ from cart {hold.cart_id}'s hold: order exactly what it "
                           "holds, or change the hold first (POST /carts/{cart_id}/holds)",
                           {"cart_id": hold.cart_id, "skus": differs})


def checked_cart_id(cart_id: str) -> str:
    import re

    if not isinstance(cart_id, str) or not re.fullmatch(CART_ID_PATTERN, cart_id):
        raise Unprocessable(f"cart ids are 1-{MAX_CART_ID_LENGTH} letters, digits, '_' or '-'",
                            {"fields": ["cart_id"]})
    return cart_id
