"""After-sales use cases: a customer opens a request, operators approve, reject or receive the goods.

Every change reads the request and its order, re-runs every check on those versions, and commits the request
and the order together, each conditional on the version read: two requests never claim the same units, an
approval and a rejection never both pass, and `open_after_sales` on the order is exact. Money goes back through
the refund saga (services/refunds.py): the pending refund is part of the same write, the provider is called
after, and a crash leaves a pending refund the sweeper finishes. Returned units go back on sale through the
restock queue, keyed by the refund (applied once however often delivered).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from shop.domain import after_sales as rules
from shop.domain import clock
from shop.domain import refunds as refund_rules
from shop.domain.after_sales import AfterSale, AfterSaleStatus, AfterSaleType
from shop.domain.errors import IdempotencyKeyReused, InvalidTransition, NotFound, Unavailable
from shop.domain.orders import Order
from shop.services.orders import get_order_for, request_fingerprint
from shop.services.ports import Commit, CommitRejected, Ports
from shop.services.refunds import ProviderFor, settle_refund, with_refund_intent
from shop.services.retry import with_retries

St = AfterSaleStatus


@dataclass(frozen=True)
class NewRequest:
    kind: AfterSaleType
    lines: dict[str, int]
    reason: str
    photo_types: list[str]  # one content type per photo (rules.PHOTO_TYPES)


@dataclass(frozen=True)
class Opened:
    sale: AfterSale
    order: Order
    replayed: bool
    uploads: list[dict[str, Any]]


def fingerprint(order_id: str, request: NewRequest) -> str:
    return request_fingerprint({"order_id": order_id, "type": request.kind.value, "lines": sorted(request.lines.items()),
                                "reason": request.reason, "photo_types": request.photo_types})


def open_request(ports: Ports, order_id: str, *, customer_id: str, key: str, request: NewRequest,
                 windows: rules.Windows) -> Opened:
    """Open a request on the customer's own order, once per Idempotency-Key (a retry answers the same request)."""
    after_sale_id = rules.stable_id(order_id, customer_id, key)
    hashed = fingerprint(order_id, request)
    actor = f"customer:{customer_id}"

    def replay(existing: AfterSale, order: Order) -> tuple[AfterSale, Order, bool]:
        if existing.request_hash != hashed:
            raise IdempotencyKeyReused("this Idempotency-Key was used with a different request body; use a new key",
                                       {"after_sale_id": existing.after_sale_id})
        return existing, order, True

    def attempt() -> tuple[AfterSale, Order, bool]:
        order = get_order_for(ports, order_id, customer_id)
        existing = ports.store.get_after_sale(after_sale_id)
        if existing is not None:
            return replay(existing, order)
        if request.photo_types and ports.evidence is None:
            raise Unavailable("evidence uploads are not configured (EVIDENCE_BUCKET)", {"retry_after": 60})
        rules.check_requestable(order, clock.now(), windows)
        rules.check_lines(order, request.lines)
        at = clock.iso(clock.now())
        sale = rules.new_request(order, after_sale_id, kind=request.kind, lines=request.lines, reason=request.reason,
                                 at=at, actor=actor, photo_keys=rules.evidence_keys(after_sale_id, request.photo_types),
                                 photo_types=tuple(request.photo_types), request_hash=hashed)
        updated = rules.opened_on(order, sale, at=at)
        try:
            ports.store.commit(Commit(order_update=(order, updated), after_sale=(sale, None)))
        except CommitRejected as rejected:  # the same request committed concurrently
            stored = ports.store.get_after_sale(after_sale_id)
            if "after_sale_new" in rejected.labels and stored is not None:
                return replay(stored, get_order_for(ports, order_id, customer_id))
            raise
        return sale, updated, False

    sale, order, replayed = with_retries(attempt)
    if not replayed:
        ports.events.publish("after_sale.requested", event_detail(sale))
    uploads = ports.evidence.upload_slots(list(sale.photo_keys), list(sale.photo_types)) \
        if sale.photo_keys and ports.evidence else []
    return Opened(sale, order, replayed, uploads)


def open_return_case(ports: Ports, order_id: str, *, shipment_id: str, reason: str,
                     lines: dict[str, int] | None = None, actor: str = "system:carrier") -> AfterSale | None:
    """A parcel came back (the carrier returned it, or the customer refused it at the door): an approved return of
    the parcel's units, awaiting receipt, opened once per parcel (idempotent by parcel id). None when none of the
    parcel's units can still be returned (refunded or claimed by other requests already). A caller that writes the
    order anyway (a parcel status update) can put the case in its own write instead: `rules.return_case_on`."""
    after_sale_id = rules.return_case_id(order_id, shipment_id)

    def attempt() -> tuple[AfterSale | None, bool]:
        existing = ports.store.get_after_sale(after_sale_id)
        if existing is not None:
            return existing, False
        order = get_order_for(ports, order_id, None)
        if not any(s.shipment_id == shipment_id for s in order.shipments):
            raise NotFound(f"order {order_id} has no shipment {shipment_id}", {"shipment_id": shipment_id})
        at = clock.iso(clock.now())
        opened = rules.return_case_on(order, shipment_id, reason=reason, at=at, actor=actor, lines=lines)
        if opened is None:
            return None, False
        updated, case = opened
        try:
            ports.store.commit(Commit(order_update=(order, replace(updated, updated_at=at, version=order.version + 1)),
                                      after_sale=(case, None)))
        except CommitRejected as rejected:
            if "after_sale_new" in rejected.labels:
                return ports.store.get_after_sale(after_sale_id), False
            raise
        return case, True

    sale, created = with_retries(attempt)
    if created and sale is not None:
        publish_opened(ports, sale)
    return sale


def publish_opened(ports: Ports, sale: AfterSale) -> None:
    """The events of a newly opened request (a carrier's return is approved as it opens)."""
    ports.events.publish("after_sale.requested", event_detail(sale))
    if sale.status is St.APPROVED:
        ports.events.publish("after_sale.approved", event_detail(sale))


def get_request(ports: Ports, after_sale_id: str) -> AfterSale:
    sale = ports.store.get_after_sale(after_sale_id) if after_sale_id.startswith("as_") and len(after_sale_id) < 64 \
        else None
    if sale is None:
        raise NotFound(f"no after-sales request {after_sale_id}")
    return sale


def _refund_intent(order: Order, sale: AfterSale, *, restock: bool, actor: str) -> tuple[Order, str]:
    """The order with the request's refund pending: the units' price, at most what is left to refund."""
    refund_id = refund_rules.stable_id(order.order_id, "after-sale", sale.after_sale_id)
    amount = min(rules.refund_amount(order, sale), refund_rules.refundable(order))
    updated = with_refund_intent(order, refund_id, provider_name=order.payment_provider,
                                 amount=amount if amount > 0 else None, lines=list(sale.lines), restock=restock,
                                 reason=f"after-sales {sale.after_sale_id}", actor=actor,
                                 after_sale_id=sale.after_sale_id)
    return updated, refund_id


def _transition(ports: Ports, after_sale_id: str, to: AfterSaleStatus, *, allowed_from: AfterSaleStatus,
                kinds: tuple[AfterSaleType, ...], actor: str, note: str, refund: bool = False, restock: bool = False,
                **changes: Any) -> tuple[AfterSale, Order, bool]:
    """Move one request `allowed_from` -> `to`, with its order, in one conditional write (and, with `refund`, the
    pending refund of its units). A retry after the transition happened answers its result; any other status
    (the racing transition won) is 409."""

    def attempt() -> tuple[AfterSale, Order, bool]:
        sale = get_request(ports, after_sale_id)
        order = get_order_for(ports, sale.order_id, None)
        if sale.done_by_transition(to):
            return sale, order, False
        if sale.status is not allowed_from or sale.type not in kinds:
            raise InvalidTransition(f"after-sales request {after_sale_id} ({sale.type.value}) is {sale.status.value}; "
                                    f"it cannot become {to.value}",
                                    {"after_sale_id": after_sale_id, "current_status": sale.status.value,
                                     "requested_status": to.value})
        at = clock.iso(clock.now())
        if refund:
            updated, refund_id = _refund_intent(order, sale, restock=restock, actor=actor)
            changes["refund_id"] = refund_id
        else:
            updated = replace(order, updated_at=at, version=order.version + 1)
        moved = sale.moved(to, at=at, actor=actor, note=note, **changes)
        updated = rules.moved_on(updated, sale, moved)
        ports.store.commit(Commit(order_update=(order, updated), after_sale=(moved, sale.version)))
        return moved, updated, True

    return with_retries(attempt)


def approve(ports: Ports, provider_for: ProviderFor, after_sale_id: str, *, actor: str) -> tuple[AfterSale, Order]:
    """requested -> approved. Refund only: the money goes back now. Return and refund: the customer sends the goods;
    the money goes back when they arrive (`received`)."""
    current = get_request(ports, after_sale_id)
    refund_now = current.type is AfterSaleType.REFUND_ONLY
    sale, order, changed = _transition(
        ports, after_sale_id, St.APPROVED, allowed_from=St.REQUESTED, kinds=tuple(AfterSaleType), actor=actor,
        note="refund issued" if refund_now else "awaiting the returned goods", refund=refund_now)
    if sale.refund_id and sale.type is AfterSaleType.REFUND_ONLY:
        order = settle_refund(ports, provider_for, order, sale.refund_id)  # a retry finishes a refund left pending
    if changed:
        ports.events.publish("after_sale.approved", event_detail(sale))
    return sale, order


def reject(ports: Ports, after_sale_id: str, *, actor: str, reason: str) -> tuple[AfterSale, Order]:
    """requested -> rejected, with the operator's reason (shown to the customer)."""
    sale, order, changed = _transition(ports, after_sale_id, St.REJECTED, allowed_from=St.REQUESTED,
                                       kinds=tuple(AfterSaleType), actor=actor, note=reason, decision_reason=reason)
    if changed:
        ports.events.publish("after_sale.rejected", {**event_detail(sale), "reason": sale.decision_reason})
    return sale, order


def receive(ports: Ports, provider_for: ProviderFor, after_sale_id: str, *, actor: str) -> tuple[AfterSale, Order]:
    """approved return -> received: the goods are back. The refund (with its units restocked) is recorded in the
    same write; the restock messages and the provider call follow, and a retry re-sends both safely."""
    sale, order, changed = _transition(ports, after_sale_id, St.RECEIVED, allowed_from=St.APPROVED,
                                       kinds=(AfterSaleType.RETURN_AND_REFUND,), actor=actor,
                                       note="returned goods received", refund=True, restock=True)
    assert sale.refund_id is not None
    order = settle_refund(ports, provider_for, order, sale.refund_id)
    if changed:
        ports.events.publish("after_sale.received", event_detail(sale))
    return sale, order


def event_detail(sale: AfterSale) -> dict[str, Any]:
    return {"after_sale_id": sale.after_sale_id, "order_id": sale.order_id, "customer_id": sale.customer_id,
            "type": sale.type.value, "status": sale.status.value, "source": sale.source,
            "lines": [{"sku": s, "quantity": q} for s, q in sale.lines], "photos": len(sale.photo_keys),
            "refund_id": sale.refund_id, "reason": sale.reason}
