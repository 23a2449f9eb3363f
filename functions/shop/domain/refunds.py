"""Refunds as a saga on the order: intent first, then the provider, then the outcome.

A refund is first recorded on the order as a *pending* entry (counted against what may still be
refunded and against the units that may still come back), in one conditional write on the order's
version. Only then is the provider called, with the entry's id as its idempotency key; the outcome
is recorded after. A crash anywhere leaves a pending entry that a retry or the sweeper finishes.

Each entry is a `Refund` (domain/values.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

from shop.domain import stock
from shop.domain.backorders import BACKORDER_ITEM
from shop.domain.errors import InvalidTransition, Unprocessable
from shop.domain.orders import Order, OrderStatus
from shop.domain.statuses import HOLDS_MONEY, PaymentStatus, RefundStatus
from shop.domain.values import Refund, UnitLine, sum_units, unit_lines

PENDING, SUCCEEDED = RefundStatus.PENDING, RefundStatus.SUCCEEDED


def stable_id(*parts: str) -> str:
    """A refund's id, and the provider's idempotency key: the same request always names the same refund."""
    return "rf_" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def find(order: Order, refund_id: str) -> Refund | None:
    return next((r for r in order.refunds if r.refund_id == refund_id), None)


def pending(order: Order) -> list[Refund]:
    return [r for r in order.refunds if r.pending]


def _in_order_currency(order: Order, entry: Refund) -> bool:
    return entry.currency == order.currency


def own_captured(order: Order) -> int:
    """What the order's own accepted payment took: amount_paid also counts payments it refused
    (refunded automatically)."""
    return order.amount_paid - sum(r.amount for r in order.refunds if r.automatic and _in_order_currency(order, r))


def own_refunded(order: Order) -> int:
    """Refunds of the order's own payment, done or pending."""
    return sum(r.amount for r in order.refunds if not r.automatic and _in_order_currency(order, r))


def refundable(order: Order) -> int:
    return own_captured(order) - own_refunded(order)


def restocked_units(order: Order) -> dict[str, int]:
    return sum_units(line for r in order.refunds for line in r.restocked)


def _status_after_refund(order: Order) -> PaymentStatus:
    captured, refunded = own_captured(order), own_refunded(order)
    if captured <= 0:
        return order.payment_status
    if refunded >= captured:
        return PaymentStatus.REFUNDED
    return PaymentStatus.PARTIALLY_REFUNDED if refunded else PaymentStatus.PAID


@dataclass(frozen=True)
class RefundPlan:
    amount: int
    units: dict[str, int]  # units refunded, per SKU
    restocked: dict[str, int]  # units put back on sale, per SKU


def plan(order: Order, *, amount: int | None, lines: list[tuple[str, int]] | None, restock: bool,
         cancel: bool) -> RefundPlan:
    """What a refund request takes from this version of the order, or why it cannot be made."""
    if restock and amount is not None and lines is None:
        raise Unprocessable("a refund by amount cannot restock: say which units come back with `lines`",
                            {"fields": ["restock", "lines"]})
    # A cancel of an order refunded in full already only brings its units back.
    if order.payment_status not in HOLDS_MONEY and not (cancel and order.payment_status is PaymentStatus.REFUNDED):
        raise InvalidTransition(f"order {order.order_id} has no payment left to refund",
                                {"order_id": order.order_id, "payment_status": order.payment_status})
    ordered = {line.sku: line.quantity for line in order.lines}
    refunded_by_line, restocked = order.refunded_units(), restocked_units(order)
    if cancel:
        if order.status not in (OrderStatus.PAID, OrderStatus.ON_HOLD) or order.shipments:
            raise InvalidTransition(f"order {order.order_id} is {order.status.value}"
                                    f"{' with shipments' if order.shipments else ''}; it cannot be cancelled",
                                    {"order_id": order.order_id, "current_status": order.status.value})
        # Nothing has left the warehouse: every unit not yet put back comes back.
        units: dict[str, int] = {s: q - refunded_by_line.get(s, 0) for s, q in ordered.items()}
        back = {s: q - restocked.get(s, 0) for s, q in ordered.items()}
        return RefundPlan(max(0, refundable(order)), _positive(units), _positive(back))
    if lines is None and not restock:
        units = {}
    elif lines is None:  # a full return
        units = {s: q - refunded_by_line.get(s, 0) for s, q in ordered.items()}
    else:
        units = sum_units(UnitLine(s, q) for s, q in lines)
    over = [s for s, q in units.items() if s not in ordered or q < 0 or q + refunded_by_line.get(s, 0) > ordered[s]]
    if over:
        raise Unprocessable("more units than the order has left to refund",
                                {"skus": [{"sku": s, "requested": units[s], "refundable": ordered.get(s, 0)
                                           - refunded_by_line.get(s, 0)} for s in over]})
    units = _positive(units)
    back = dict(units) if restock else {}
    if any(q + restocked.get(s, 0) > ordered[s] for s, q in back.items()):
        raise InvalidTransition("more units than the order sold would come back", {"skus": sorted(back)})
    left = refundable(order)
    due = amount if amount is not None else (
        sum(line.unit_price.amount * units.get(line.sku, 0) for line in order.lines) if lines else left)
    if left <= 0:
        raise InvalidTransition(f"order {order.order_id} has nothing left to refund", {"order_id": order.order_id})
    if due <= 0 or due > left:
        raise Unprocessable(f"refund amount must be between 1 and {left}", {"fields": ["amount"], "refundable": left})
    return RefundPlan(due, units, back)


def _positive(units: dict[str, int]) -> dict[str, int]:
    return {s: q for s, q in units.items() if q > 0}


def new_entry(refund_id: str, order: Order, refund: RefundPlan, *, reason: str, at: str, actor: str,
              provider: str, provider_payment_id: str | None, captured: int, currency: str | None = None,
              automatic: bool = False) -> Refund:
    return Refund(refund_id=refund_id, amount=refund.amount, currency=currency or order.currency,
                  lines=unit_lines(refund.units), restocked=unit_lines(refund.restocked), reason=reason, at=at,
                  actor=actor, automatic=automatic, status=PENDING, provider=provider,
                  provider_payment_id=provider_payment_id, captured=captured)


def with_intent(order: Order, entry: Refund, *, at: str, actor: str, reason: str,
                cancel: bool = False, received: int = 0, **changes: Any) -> Order:
    """The order with a pending refund (and, for a cancel, CANCELLED in the same write).

    `received` is money that arrived for the order and is being given back right away (a payment
    the order could not accept): it counts in amount_paid, so the order shows money in and out.
    """
    updated = replace(order, refunds=order.refunds + (entry,), amount_paid=order.amount_paid + received, **changes)
    if not entry.automatic:
        updated = replace(updated, payment_status=_status_after_refund(updated))
    if cancel:
        return updated.transition(OrderStatus.CANCELLED, at=at, actor=actor, reason=reason)
    return replace(updated, updated_at=at, version=order.version + 1)


def with_outcome(order: Order, refund_id: str, *, provider_refund_id: str, at: str) -> Order:
    """The provider confirmed the refund: it counts in amount_refunded."""
    entry = find(order, refund_id)
    if entry is None or not entry.pending:
        return order
    done = replace(entry, status=SUCCEEDED, provider_refund_id=provider_refund_id, completed_at=at, last_error=None)
    refunds = tuple(done if r is entry else r for r in order.refunds)
    counted = entry.amount if _in_order_currency(order, entry) else 0
    return replace(order, refunds=refunds, amount_refunded=order.amount_refunded + counted, updated_at=at,
                   version=order.version + 1)


def with_failed_attempt(order: Order, refund_id: str, *, error: str, at: str) -> Order:
    """The provider call failed or its answer was lost: still pending, retried later."""
    entry = find(order, refund_id)
    if entry is None or not entry.pending:
        return order
    tried = replace(entry, attempts=entry.attempts + 1, last_error=error[:200], last_attempt_at=at)
    refunds = tuple(tried if r is entry else r for r in order.refunds)
    return replace(order, refunds=refunds, updated_at=at, version=order.version + 1)


def release_backorders(order: Order, *, at: str, actor: str) -> tuple[Order, list[stock.StockMovement]]:
    """`order` with a refund just planned as its last entry (not committed yet: a refund by line or one that
    cancels): the backordered units nobody waits for any more are released from the allowance
    (domain/backorders.py) in the same write, and taken out of the refund's restocked units (they were never sold:
    nothing comes back on sale). A refund by line takes back waiting units first: the units in stock stay the
    order's, to ship (never more wait than is left to ship). Nor does a refund restock units released by an earlier
    one: never more than the line sold (units on stock items) less what earlier refunds restocked."""
    *earlier, entry = order.refunds
    refunded = sum_units(entry.lines)
    left = {} if order.status is OrderStatus.CANCELLED else order.unshipped_units()
    waiting = {line.sku: line.backordered for line in order.lines if line.backordered}  # a cancel's too
    wanted = {sku: max(min(units, refunded.get(sku, 0)), units - left.get(sku, 0)) for sku, units in waiting.items()}
    released = {sku: units for sku, units in wanted.items() if units > 0}
    lines = tuple(line.with_backorder_released(released[line.sku]) if line.sku in released else line
                  for line in order.lines)
    restocked, restocked_before = sum_units(entry.restocked), sum_units(r for e in earlier for r in e.restocked)
    # A line sold the units its warehouses hold (backordered ones, waiting or released, never were sold).
    room = {line.sku: sum(line.units_by_warehouse().values()) - restocked_before.get(line.sku, 0) for line in lines
            if line.reserves_stock and not (line.virtual or line.presale_ships_on)}
    kept = {sku: min(units - released.get(sku, 0), room.get(sku, units)) for sku, units in restocked.items()}
    if not released and kept == restocked:
        return order, []
    entry = replace(entry, restocked=unit_lines({sku: units for sku, units in kept.items() if units > 0}))
    movements = [stock.deallocate(sku, BACKORDER_ITEM, units, at=at, actor=actor, order_id=order.order_id,
                                  reason="backorder_cancelled") for sku, units in released.items()]
    return replace(order, lines=lines, refunds=(*earlier, entry)), movements
