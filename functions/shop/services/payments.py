"""Payment use cases: settle a verified provider event exactly once, refund, approve or reject held orders
(the rules that hold an order are in services/risk.py).

Rules: never a paid order without stock, never money kept without an order. A payment that
cannot become a sale (no stock left, order cancelled, a second payment) is refunded through
the provider, and the webhook record says why.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

from shop.domain import clock
from shop.domain.errors import Conflict, InsufficientStock, InvalidTransition, NotFound, Unprocessable
from shop.domain.money import Money
from shop.domain.orders import Order, OrderStatus
from shop.domain.stock import StockMovement
from shop.payments.base import PaymentEvent, PaymentProvider
from shop.services.orders import release_order_lines, sell_order_lines
from shop.services.ports import Commit, CommitRejected, Ports
from shop.services.retry import with_retries
from shop.services.risk import SETTLED, RiskRules

RECORD_TTL_SECONDS = 180 * 24 * 3600


def _record_key(event: PaymentEvent) -> dict[str, str]:
    return {"pk": f"WEBHOOK#{event.provider}#{event.event_id}", "sk": "WEBHOOK"}


def _record(event: PaymentEvent, outcome: str, **detail: Any) -> dict[str, Any]:
    now = clock.now()
    return {**_record_key(event), "entity": "WEBHOOK", "provider": event.provider, "event_id": event.event_id,
            "kind": event.kind, "order_id": event.order_id, "outcome": outcome,
            "amount": event.amount.to_dict() if event.amount else None, "received_at": clock.iso(now),
            "ttl": int(now.timestamp()) + RECORD_TTL_SECONDS, **detail}


def _record_only(ports: Ports, event: PaymentEvent, outcome: str, **detail: Any) -> str:
    try:
        ports.store.commit(Commit(unique_puts=[("webhook", _record(event, outcome, **detail))]))
    except CommitRejected:
        return "duplicate"
    return outcome


def _stable_id(*parts: str) -> str:
    return "rf_" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def process_payment_event(ports: Ports, provider: PaymentProvider, event: PaymentEvent,
                          risk: RiskRules | None = None) -> str:
    """Apply a verified event once. Returns the outcome recorded (or "duplicate")."""
    if ports.store.get_item(_record_key(event)):
        return "duplicate"
    if event.kind != "payment_succeeded":
        return _record_only(ports, event, "ignored")
    order = ports.store.get_order(event.order_id) if event.order_id and event.order_id.startswith("ord_") else None
    if order is None:
        return _record_only(ports, event, "unknown_order")
    if order.payment_provider != event.provider:  # refunds go through the order's provider: never keep this
        return _auto_refund(ports, provider, event, order, f"paid through {event.provider}, the order chose "
                            f"{order.payment_provider}", end_order=False)
    if event.amount != order.total:
        return _hold_for_mismatch(ports, provider, event)
    return _settle(ports, provider, event, risk or RiskRules.from_env())


def _hold_for_mismatch(ports: Ports, provider: PaymentProvider, event: PaymentEvent) -> str:
    def attempt() -> str:
        order = ports.store.get_order(event.order_id)
        received = event.amount.to_dict() if event.amount else None
        detail = {"expected": order.total.to_dict(), "received": received}
        if order.status is not OrderStatus.PENDING_PAYMENT:  # nothing to hold: give the money back
            return _auto_refund(ports, provider, event, order, f"wrong amount for a {order.status.value} order")
        at = clock.iso(clock.now())
        reason = f"amount mismatch: expected {order.total.amount} {order.currency}, received " \
                 f"{event.amount.amount if event.amount else '?'} {event.amount.currency if event.amount else ''}"
        same_currency = bool(event.amount) and event.amount.currency == order.currency
        held = order.transition(OrderStatus.ON_HOLD, at=at, actor=f"provider:{event.provider}", reason=reason,
                                hold_reason=reason, provider_payment_id=event.provider_payment_id,
                                amount_paid=event.amount.amount if same_currency else 0,
                                held_payment={"amount": received, "provider_payment_id": event.provider_payment_id}
                                if received else None)
        try:
            ports.store.commit(Commit(order_update=(order, held),
                                      unique_puts=[("webhook", _record(event, "amount_mismatch_held", **detail))]))
        except CommitRejected:
            return "duplicate"
        ports.events.publish("order.on_hold", {"order_id": order.order_id, "reason": reason})
        return "amount_mismatch_held"

    return with_retries(attempt)


def _settle(ports: Ports, provider: PaymentProvider, event: PaymentEvent, risk: RiskRules) -> str:
    actor = f"provider:{event.provider}"

    def attempt() -> str:
        order = ports.store.get_order(event.order_id)
        if order.payment_status in SETTLED or order.status not in (
                OrderStatus.PENDING_PAYMENT, OrderStatus.EXPIRED, OrderStatus.CANCELLED):
            if order.provider_payment_id == event.provider_payment_id:
                return _record_only(ports, event, "already_paid")
            return _auto_refund(ports, provider, event, order, "second payment for an order already paid or on hold")
        if order.status is OrderStatus.CANCELLED:
            return _auto_refund(ports, provider, event, order, "payment for a cancelled order")
        at = clock.iso(clock.now())
        skus = ports.store.get_skus([line.sku for line in order.lines])
        try:
            movements = sell_order_lines(order, skus, at, actor)
        except InsufficientStock:
            return _auto_refund(ports, provider, event, order, "no stock left for this payment")
        hold = risk.hold_reason(ports, order)
        target = OrderStatus.ON_HOLD if hold else OrderStatus.PAID
        reason = hold or ("late payment, stock taken again" if order.status is OrderStatus.EXPIRED
                          else "payment_received")
        updated = order.transition(target, at=at, actor=actor, reason=reason, payment_status="paid",
                                   amount_paid=event.amount.amount, provider_payment_id=event.provider_payment_id,
                                   hold_reason=hold)
        outcome = "paid_on_hold" if hold else "paid"
        ip_record = risk.ip_payment_record(order, at)
        try:
            ports.store.commit(Commit(movements=movements, order_update=(order, updated),
                                      unique_puts=[("webhook", _record(event, outcome))] + ([ip_record] if ip_record
                                                                                             else [])))
        except CommitRejected:
            return "duplicate"
        ports.events.publish("order.paid", {"order_id": order.order_id, "total": order.total.to_dict(),
                                            "on_hold": bool(hold)})
        return outcome

    return with_retries(attempt)


def _auto_refund(ports: Ports, provider: PaymentProvider, event: PaymentEvent, order: Order, why: str,
                 end_order: bool = True) -> str:
    """Give the money back (idempotently, keyed on the event), and end an unpaid order's reservation."""
    refund_id = _stable_id("auto", event.provider, event.event_id)
    result = provider.refund(order_id=order.order_id, provider_payment_id=event.provider_payment_id or "",
                             amount=event.amount, refund_id=refund_id)
    record = _record(event, "refunded", refund_reason=why, refund_id=refund_id,
                     provider_refund_id=result.provider_refund_id)
    commit = Commit(unique_puts=[("webhook", record)])
    if end_order and order.status is OrderStatus.PENDING_PAYMENT:
        at = clock.iso(clock.now())
        skus = ports.store.get_skus(list(order.reserved_quantities()))
        actor = f"provider:{event.provider}"
        commit.movements = release_order_lines(order, skus, at, actor, "paid_without_stock_refunded")
        commit.order_update = (order, order.transition(OrderStatus.CANCELLED, at=at, actor=actor,
                                                       reason=f"refunded: {why}"))
    try:
        ports.store.commit(commit)
    except CommitRejected:
        return "duplicate"
    ports.events.publish("order.refunded", {"order_id": order.order_id, "amount": event.amount.to_dict(),
                                            "reason": why, "automatic": True})
    if commit.order_update:
        ports.events.publish("order.cancelled", {"order_id": order.order_id, "reason": f"refunded: {why}"})
    return "refunded"


def refund_order(ports: Ports, provider: PaymentProvider, order_id: str, *, amount: int | None,
                 lines: list[tuple[str, int]] | None, restock: bool, reason: str, key: str, actor: str,
                 cancel: bool = False) -> Order:
    """Refund all or part of a paid order; with restock, the units go back through the restock queue."""
    refund_id = _stable_id(order_id, key)
    order = ports.store.get_order(order_id)
    if order is None:
        raise NotFound(f"no order {order_id}")
    for entry in order.refunds:
        if entry["refund_id"] == refund_id:  # a retry: the refund is made; make sure its units are on their way
            _send_restocks(ports, order_id, entry)
            return order
    if order.payment_status not in ("paid", "partially_refunded"):
        raise InvalidTransition("only paid orders can be refunded", {"payment_status": order.payment_status})
    units = _refund_units(order, lines, restock)
    due = amount if amount is not None else (
        sum(l.unit_price.amount * units.get(l.sku, 0) for l in order.lines) if lines else order.refundable)
    if due <= 0 or due > order.refundable:
        raise Unprocessable(f"refund amount must be between 1 and {order.refundable}", {"fields": ["amount"]})
    result = provider.refund(order_id=order_id, provider_payment_id=order.provider_payment_id or "",
                             amount=Money(due, order.currency), refund_id=refund_id,
                             captured=Money(order.amount_paid, order.currency))

    def attempt() -> Order:
        current = ports.store.get_order(order_id)
        if any(r["refund_id"] == refund_id for r in current.refunds):
            return current
        at = clock.iso(clock.now())
        entry = {"refund_id": refund_id, "amount": due, "lines": [{"sku": s, "quantity": q} for s, q in units.items()],
                 "restock": restock, "reason": reason, "at": at, "actor": actor,
                 "provider_refund_id": result.provider_refund_id}
        refunded = current.amount_refunded + due
        changes = {"refunds": current.refunds + (entry,), "amount_refunded": refunded,
                   "payment_status": "refunded" if refunded >= current.amount_paid else "partially_refunded"}
        if cancel:
            updated = current.transition(OrderStatus.CANCELLED, at=at, actor=actor, reason=reason, **changes)
        else:
            updated = replace(current, updated_at=at, version=current.version + 1, **changes)
        ports.store.commit(Commit(order_update=(current, updated)))
        return updated

    updated = with_retries(attempt)
    # After the commit: if sending fails, the caller's retry (same key) sends again; the restock
    # consumer applies each message id once, so sending twice is harmless.
    _send_restocks(ports, order_id, next(r for r in updated.refunds if r["refund_id"] == refund_id))
    ports.events.publish("order.refunded", {"order_id": order_id, "amount": {"amount": due, "currency": order.currency},
                                            "restock": restock})
    if cancel:
        ports.events.publish("order.cancelled", {"order_id": order_id, "reason": reason})
    return updated


def _send_restocks(ports: Ports, order_id: str, entry: dict[str, Any]) -> None:
    if not entry.get("restock") or not entry.get("lines"):
        return
    if ports.restock_queue is None:
        raise RuntimeError("RESTOCK_QUEUE_URL is not configured: refunded units cannot be restocked")
    for line in entry["lines"]:
        ports.restock_queue.request_restock(f"{entry['refund_id']}-{line['sku']}", line["sku"], line["quantity"],
                                            order_id, "refund_restock")


def _refund_units(order: Order, lines: list[tuple[str, int]] | None, restock: bool) -> dict[str, int]:
    """Units being returned: the given lines, or every line when restocking a full refund."""
    ordered = {l.sku: l.quantity for l in order.lines}
    already = order.refunded_units()
    if lines is None:
        lines = [(sku, qty - already.get(sku, 0)) for sku, qty in ordered.items()] if restock else []
    units: dict[str, int] = {}
    for sku, qty in lines:
        units[sku] = units.get(sku, 0) + qty
    for sku, qty in units.items():
        if sku not in ordered or qty < 0 or qty + already.get(sku, 0) > ordered[sku]:
            raise Unprocessable(f"cannot refund {qty} of {sku}", {"skus": [sku]})
    return {s: q for s, q in units.items() if q > 0}


def approve_held(ports: Ports, order_id: str, *, actor: str) -> Order:
    def attempt() -> Order:
        order = ports.store.get_order(order_id)
        if order is None:
            raise NotFound(f"no order {order_id}")
        if order.status is not OrderStatus.ON_HOLD:
            raise InvalidTransition(f"order is {order.status.value}, not ON_HOLD", {"order_id": order_id})
        held = (order.held_payment or {}).get("amount")
        if order.payment_status == "unpaid" and held and held["currency"] != order.currency:
            raise InvalidTransition(f"the payment was made in {held['currency']}, the order is in {order.currency}; "
                                    "reject it to refund the payment", {"order_id": order_id})
        at = clock.iso(clock.now())
        movements: list[StockMovement] = []
        if order.payment_status == "unpaid":  # held for a wrong amount: accepting it sells the reservation
            movements = sell_order_lines(order, ports.store.get_skus([l.sku for l in order.lines]), at, actor)
        updated = order.transition(OrderStatus.PAID, at=at, actor=actor, reason="approved by operator",
                                   payment_status="paid", hold_reason=None, held_payment=None)
        ports.store.commit(Commit(movements=movements, order_update=(order, updated)))
        return updated

    approved = with_retries(attempt)
    ports.events.publish("order.approved", {"order_id": order_id, "total": approved.total.to_dict()})
    return approved


def reject_held(ports: Ports, provider: PaymentProvider, order_id: str, *, actor: str) -> Order:
    order = ports.store.get_order(order_id)
    if order is None:
        raise NotFound(f"no order {order_id}")
    if order.status is not OrderStatus.ON_HOLD:
        raise InvalidTransition(f"order is {order.status.value}, not ON_HOLD", {"order_id": order_id})
    if order.payment_status == "paid":
        return refund_order(ports, provider, order_id, amount=None, lines=None, restock=True,
                            reason="rejected by operator", key="reject", actor=actor, cancel=True)
    held = (order.held_payment or {}).get("amount")
    received = Money(held["amount"], held["currency"]) if held else (
        Money(order.amount_paid, order.currency) if order.amount_paid else None)
    refund = None
    if received and received.amount > 0:  # held unpaid for a wrong amount or currency: give it all back
        refund = provider.refund(order_id=order_id, provider_payment_id=order.provider_payment_id or "",
                                 amount=received, refund_id=_stable_id(order_id, "reject"), captured=received)

    def attempt() -> Order:
        current = ports.store.get_order(order_id)
        if current.status is not OrderStatus.ON_HOLD:
            raise Conflict("order changed meanwhile", {"order_id": order_id})
        at = clock.iso(clock.now())
        skus = ports.store.get_skus(list(current.reserved_quantities()))
        refunds = current.refunds
        if refund is not None:
            refunds += ({"refund_id": refund.refund_id, "amount": received.amount, "currency": received.currency,
                         "lines": [], "restock": False, "reason": "rejected by operator", "at": at, "actor": actor,
                         "provider_refund_id": refund.provider_refund_id},)
        updated = current.transition(OrderStatus.CANCELLED, at=at, actor=actor, reason="rejected by operator",
                                     amount_refunded=current.amount_paid, refunds=refunds)
        ports.store.commit(Commit(movements=release_order_lines(current, skus, at, actor, "cancelled_by_operator"),
                                  order_update=(current, updated)))
        return updated

    rejected = with_retries(attempt)
    ports.events.publish("order.cancelled", {"order_id": order_id, "reason": "rejected by operator",
                                             "refunded": received.to_dict() if refund is not None else None})
    return rejected


def cancel(ports: Ports, provider_for, order_id: str, *, actor: str, reason: str,
           customer_id: str | None = None) -> Order:
    """Cancel before shipment: an unpaid order releases its stock; a paid one is refunded in full and restocked."""
    from shop.services.orders import cancel_order, get_order_for

    order = get_order_for(ports, order_id, customer_id)
    cancel_refund = _stable_id(order_id, "cancel")
    if order.status is OrderStatus.CANCELLED and any(r["refund_id"] == cancel_refund for r in order.refunds):
        return refund_order(ports, provider_for(order.payment_provider), order_id, amount=None, lines=None,
                            restock=True, reason=reason, key="cancel", actor=actor, cancel=True)  # a retry
    paid = order.payment_status in ("paid", "partially_refunded")
    if paid and order.status in (OrderStatus.PAID, OrderStatus.ON_HOLD) and order.fulfillment_status == "unfulfilled":
        return refund_order(ports, provider_for(order.payment_provider), order_id, amount=None, lines=None,
                            restock=True, reason=reason, key="cancel", actor=actor, cancel=True)
    return cancel_order(ports, order_id, actor=actor, reason=reason, customer_id=customer_id)
