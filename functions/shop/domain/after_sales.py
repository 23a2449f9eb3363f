"""After-sales requests: refund only, or return and refund, on a shipped or delivered order.

A request lives in two places written by one transaction: its own record (evidence, reasons, history,
the operators' listing by status) and a summary on the order (what each open or closed request claims
of the order's units, and `open_after_sales`, the count that holds the order back from COMPLETED). Every
change is conditional on both versions, so two requests can never claim the same units and a request
can never be approved and rejected.

Lifecycle (docs/after-sales.md):
- refund_only:        requested -> approved (money goes back now, through the refund saga: closed)
                      requested -> rejected (closed)
- return_and_refund:  requested -> approved (the customer sends the goods back: still open)
                      approved  -> received (goods arrived: money back and units restocked: closed)
                      requested -> rejected (closed)
A parcel the carrier returns (or the customer refuses at the door) opens an approved return by itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from shop.domain import clock
from shop.domain.errors import Conflict, InvalidTransition, Unprocessable
from shop.domain.orders import Order, OrderStatus, sum_lines
from shop.domain.values import sum_units


class AfterSaleType(str, Enum):  # noqa: UP042 - same choice as OrderStatus
    REFUND_ONLY = "refund_only"
    RETURN_AND_REFUND = "return_and_refund"


class AfterSaleStatus(str, Enum):  # noqa: UP042 - same choice as OrderStatus
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    RECEIVED = "received"


T, St = AfterSaleType, AfterSaleStatus
# Orders a customer may open a request on (after COMPLETED the order is closed; before shipment, cancel it).
REQUESTABLE_ORDER_STATUSES = (OrderStatus.PARTIALLY_SHIPPED, OrderStatus.SHIPPED, OrderStatus.DELIVERED)
MAX_REQUESTS_PER_ORDER = 20  # bounds the summaries an order item carries
MAX_REASON_CHARS = 500
MAX_PHOTOS_ANY_SETTING = 20  # the schema's bound; the shop's own limit is the AFTER_SALES_MAX_PHOTOS setting
PHOTO_TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}  # content type -> key suffix
EVIDENCE_PREFIX = "after-sales/"  # every evidence key starts here; each request has its own prefix below it


class WindowClosed(Conflict):
    slug, title = "after-sales-window-closed", "After-sales window closed"


@dataclass(frozen=True)
class Windows:
    """How long after delivery (or, not delivered yet, after the last parcel left) a request may be opened."""

    days_after_delivery: int = 7
    days_after_shipment: int = 15


@dataclass(frozen=True)
class AfterSale:
    after_sale_id: str
    order_id: str
    customer_id: str
    type: AfterSaleType
    status: AfterSaleStatus
    lines: tuple[tuple[str, int], ...]  # (sku, units)
    reason: str
    created_at: str
    updated_at: str
    photo_keys: tuple[str, ...] = ()  # S3 keys the customer may upload evidence to (one per photo)
    photo_types: tuple[str, ...] = ()  # the content type each key's upload policy requires
    source: str = "customer"  # or "carrier": a returned or refused parcel
    shipment_id: str | None = None  # the parcel a carrier return is about
    request_hash: str | None = None  # fingerprint of the creating request (idempotent retries)
    refund_id: str | None = None  # the refund the request made (order.refunds)
    decision_reason: str | None = None  # an operator's reason for a rejection
    history: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    version: int = 1

    @property
    def is_open(self) -> bool:
        return is_open(self.type, self.status)

    def units(self) -> dict[str, int]:
        return dict(self.lines)

    def summary(self) -> dict[str, Any]:
        """What the order carries of this request."""
        return {"after_sale_id": self.after_sale_id, "type": self.type.value, "status": self.status.value,
                "lines": [{"sku": s, "quantity": q} for s, q in self.lines], "created_at": self.created_at,
                "updated_at": self.updated_at, "refund_id": self.refund_id, "source": self.source,
                "decision_reason": self.decision_reason}

    def moved(self, to: AfterSaleStatus, *, at: str, actor: str, note: str, **changes: Any) -> AfterSale:
        entry = {"at": at, "actor": actor, "from": self.status.value, "to": to.value, "reason": note}
        return replace(self, status=to, updated_at=at, history=self.history + (entry,), version=self.version + 1,
                       **changes)

    def done_by_transition(self, to: AfterSaleStatus) -> bool:
        """This request went through `to` already (a retry of the same transition finds its result)."""
        return any(h.get("to") == to.value for h in self.history)


def is_open(kind: AfterSaleType | str, status: AfterSaleStatus | str) -> bool:
    status = St(status)
    return status is St.REQUESTED or (status is St.APPROVED and T(kind) is T.RETURN_AND_REFUND)


def stable_id(*parts: str) -> str:
    """The request's id: the same creating request (order, key) always names the same request."""
    return "as_" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def return_case_id(order_id: str, shipment_id: str) -> str:
    """The id of the return a parcel that came back opens: one per parcel."""
    return stable_id(order_id, "parcel", shipment_id)


def shipped_units(order: Order) -> dict[str, int]:
    return sum_units(line for shipment in order.shipments for line in shipment.lines)


def claimed_units(order: Order) -> dict[str, int]:
    """Units that requests not rejected claim (open, approved or done)."""
    return sum_lines(line for s in order.after_sales if s["status"] != St.REJECTED.value for line in s["lines"])


def requestable_units(order: Order) -> dict[str, int]:
    """Per SKU: shipped units, less those requests already claim, less units refunded by other refunds
    (an operator's refund by line) when those leave fewer."""
    shipped, claimed = shipped_units(order), claimed_units(order)
    ordered = {line.sku: line.quantity for line in order.lines}
    other_refunds = sum_units(line for r in order.refunds if not r.after_sale_id for line in r.lines)
    left = {sku: min(shipped.get(sku, 0), ordered[sku] - other_refunds.get(sku, 0)) - claimed.get(sku, 0)
            for sku in ordered}
    return {sku: q for sku, q in left.items() if q > 0}


def window_deadline(order: Order, windows: Windows) -> datetime | None:
    """Until when a request may be opened on this order (None: not in a status that allows one)."""
    if order.status is OrderStatus.DELIVERED:
        delivered = order.last_transition_to(OrderStatus.DELIVERED)
        since = delivered.at if delivered else order.updated_at
        return clock.parse_iso(since) + timedelta(days=windows.days_after_delivery)
    if order.status in (OrderStatus.SHIPPED, OrderStatus.PARTIALLY_SHIPPED) and order.shipments:
        last_parcel = max(s.at for s in order.shipments)
        return clock.parse_iso(last_parcel) + timedelta(days=windows.days_after_shipment)
    return None


def check_requestable(order: Order, now: datetime, windows: Windows) -> None:
    deadline = window_deadline(order, windows)
    if order.status not in REQUESTABLE_ORDER_STATUSES or deadline is None:
        raise InvalidTransition(
            f"order {order.order_id} is {order.status.value}; after-sales requests are for shipped or delivered "
            "orders", {"order_id": order.order_id, "current_status": order.status.value})
    if now > deadline:
        raise WindowClosed(f"the after-sales window of order {order.order_id} ended at {clock.iso(deadline)}",
                           {"order_id": order.order_id, "deadline": clock.iso(deadline)})
    if len(order.after_sales) >= MAX_REQUESTS_PER_ORDER:
        raise InvalidTransition(f"order {order.order_id} has {MAX_REQUESTS_PER_ORDER} after-sales requests already",
                                {"order_id": order.order_id})


def check_lines(order: Order, lines: dict[str, int]) -> None:
    ordered = {line.sku for line in order.lines}
    unknown = sorted(set(lines) - ordered)
    if unknown:
        raise Unprocessable("these SKUs are not in the order", {"skus": unknown})
    left = requestable_units(order)
    over = [{"sku": s, "requested": q, "requestable": left.get(s, 0)} for s, q in lines.items() if q > left.get(s, 0)]
    if over:
        raise Unprocessable("more units than were shipped and not yet refunded or requested", {"skus": over})


def _with_summary(order: Order, sale: AfterSale, *, opened: int) -> Order:
    """The order with this request's summary added or replaced, and its open count moved by `opened`."""
    summaries = [s for s in order.after_sales if s["after_sale_id"] != sale.after_sale_id]
    index = next((i for i, s in enumerate(order.after_sales) if s["after_sale_id"] == sale.after_sale_id),
                 len(summaries))
    summaries.insert(index, sale.summary())
    return replace(order, after_sales=tuple(summaries), open_after_sales=max(0, order.open_after_sales + opened))


def opened_on(order: Order, sale: AfterSale, *, at: str) -> Order:
    """The order as it records a new request (one write, conditional on the version read)."""
    return replace(_with_summary(order, sale, opened=1 if sale.is_open else 0), updated_at=at,
                   version=order.version + 1)


def moved_on(order: Order, before: AfterSale, after: AfterSale) -> Order:
    """The order (already the next version, or not) with the request's new status; closing it frees the order."""
    opened = int(after.is_open) - int(before.is_open)
    return _with_summary(order, after, opened=opened)


def new_request(order: Order, after_sale_id: str, *, kind: AfterSaleType, lines: dict[str, int], reason: str,
                at: str, actor: str, photo_keys: tuple[str, ...] = (), photo_types: tuple[str, ...] = (),
                request_hash: str | None = None, source: str = "customer", shipment_id: str | None = None,
                status: AfterSaleStatus = St.REQUESTED) -> AfterSale:
    history: tuple[dict[str, Any], ...] = (
        {"at": at, "actor": actor, "from": None, "to": St.REQUESTED.value, "reason": reason},)
    if status is not St.REQUESTED:
        history += ({"at": at, "actor": actor, "from": St.REQUESTED.value, "to": status.value,
                     "reason": "opened by the carrier's return"},)
    return AfterSale(after_sale_id=after_sale_id, order_id=order.order_id, customer_id=order.customer_id,
                     type=kind, status=status, lines=tuple(sorted(lines.items())), reason=reason, created_at=at,
                     updated_at=at, photo_keys=photo_keys, photo_types=photo_types, source=source,
                     shipment_id=shipment_id, request_hash=request_hash, history=history)


def refund_amount(order: Order, sale: AfterSale) -> int:
    """What the request's units cost the customer (catalog price on the order)."""
    prices = {line.sku: line.unit_price.amount for line in order.lines}
    return sum(prices[sku] * units for sku, units in sale.lines)


def evidence_keys(after_sale_id: str, content_types: list[str]) -> tuple[str, ...]:
    """One S3 key per photo, under the request's own prefix."""
    return tuple(f"{EVIDENCE_PREFIX}{after_sale_id}/{n}.{PHOTO_TYPES[kind]}" for n, kind in enumerate(content_types, 1))


def return_case_on(order: Order, shipment_id: str, *, reason: str, at: str, actor: str = "system:carrier",
                   lines: dict[str, int] | None = None) -> tuple[Order, AfterSale] | None:
    """A parcel that came back (returned by the carrier, refused at the door) opens an approved return of its units
    (clipped to what can still be claimed), no window check. Returns the order with the case counted (same version:
    the caller's write bumps it) and the case to commit with it (`Commit.after_sale=(case, None)`), or None when
    the parcel is unknown, its case exists, or none of its units can still come back."""
    after_sale_id = return_case_id(order.order_id, shipment_id)
    parcel = next((s for s in order.shipments if s.shipment_id == shipment_id), None)
    if parcel is None or any(s["after_sale_id"] == after_sale_id for s in order.after_sales):
        return None
    left = requestable_units(order)
    wanted = lines if lines is not None else parcel.units()
    units = {sku: n for sku, q in wanted.items() if (n := min(q, left.get(sku, 0))) > 0}
    if not units:
        return None
    case = new_request(order, after_sale_id, kind=T.RETURN_AND_REFUND, lines=units, reason=reason, at=at, actor=actor,
                       source="carrier", shipment_id=shipment_id, status=St.APPROVED)
    return _with_summary(order, case, opened=1), case
