"""Payment use cases: settle a verified provider event exactly once, refund, approve or reject held orders
(the rules that hold an order are in services/risk.py).

Rules: never a paid order without stock, never money kept without an order. A payment that
cannot become a sale (no stock left, order cancelled, a second payment) is recorded on the order
with a pending automatic refund, in the same write as the webhook record; the provider is called
after (services/refunds.py), and the sweeper finishes what a crash left pending.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from shop.domain import clock, refunds
from shop.domain.errors import InsufficientStock, InvalidTransition
from shop.domain.money import Money
from shop.domain.orders import Order, OrderStatus
from shop.domain.statuses import ACCEPTED_PAYMENT, PaymentOutcome, PaymentStatus
from shop.domain.stock import StockMovement
from shop.domain.values import HeldPayment
from shop.payments.base import PaymentEvent, PaymentProvider, ProviderError
from shop.services import inventory
from shop.services.orders import get_order_for, release_order_lines
from shop.services.ports import Commit, CommitRejected, Ports
from shop.services.records import WebhookReceipt
from shop.services.refunds import cancel, complete_pending_refunds, finish_refund, refund_order
from shop.services.retry import with_retries
from shop.services.risk import SETTLED, RiskRules

__all__ = ["approve_held", "cancel", "complete_pending_refunds", "process_payment_event", "refund_order",
           "refund_unrecorded_payment", "reject_held"]
logger = Logger(child=True)

RECORD_TTL_SECONDS = 180 * 24 * 3600


def _recorded(ports: Ports, event: PaymentEvent) -> bool:
    return ports.store.webhook_receipt(event.provider, event.event_id) is not None


def _record(event: PaymentEvent, outcome: PaymentOutcome, **detail: Any) -> WebhookReceipt:
    now = clock.now()
    return WebhookReceipt(provider=event.provider, event_id=event.event_id, kind=event.kind, order_id=event.order_id,
                          outcome=outcome.value, amount=event.amount, received_at=clock.iso(now),
                          expires=int(now.timestamp()) + RECORD_TTL_SECONDS, detail=detail)


def _record_only(ports: Ports, event: PaymentEvent, outcome: PaymentOutcome, **detail: Any) -> PaymentOutcome:
    try:
        ports.store.commit(Commit(records=[_record(event, outcome, **detail)]))
    except CommitRejected:
        return PaymentOutcome.DUPLICATE
    return outcome


def process_payment_event(ports: Ports, provider: PaymentProvider, event: PaymentEvent,
                          risk: RiskRules | None = None) -> PaymentOutcome:
    """Apply a verified event once. Returns the outcome recorded (or "duplicate")."""
    if _recorded(ports, event):
        _finish_refunds_of(ports, event.order_id)  # a redelivery is a chance to finish an automatic refund
        return PaymentOutcome.DUPLICATE
    if event.kind != "payment_succeeded" or event.amount is None:
        return _record_only(ports, event, PaymentOutcome.IGNORED)
    order = ports.store.get_order(event.order_id) if event.order_id and event.order_id.startswith("ord_") else None
    if order is None:
        return _record_only(ports, event, PaymentOutcome.UNKNOWN_ORDER)
    outcome, refund_id = with_retries(lambda: _settle_once(ports, provider, event, risk or RiskRules.from_env()))
    if refund_id:
        try:
            finish_refund(ports, _providers(provider), get_order_for(ports, order.order_id, None), refund_id)
        except ProviderError as error:  # recorded as pending on the order: the sweeper finishes it
            logger.warning("automatic refund left pending", extra={"order_id": event.order_id, "error": str(error)})
            return PaymentOutcome.REFUND_PENDING
    return outcome


def _providers(given: PaymentProvider):
    """Each refund goes back through the provider that took its payment: `given` for its own, the registry's
    for others (a payment through another provider is refunded by that one, never by the order's)."""
    from shop.payments import registry

    return lambda name: given if name == given.name else registry.PROVIDERS[name]


def _finish_refunds_of(ports: Ports, order_id: str | None) -> None:
    order = ports.store.get_order(order_id) if order_id and order_id.startswith("ord_") else None
    if order is not None and refunds.pending(order):
        from shop.payments import registry

        complete_pending_refunds(ports, registry.provider, order.order_id)


def _settle_once(ports: Ports, provider: PaymentProvider, event: PaymentEvent,
                 risk: RiskRules) -> tuple[PaymentOutcome, str | None]:
    """One attempt on one version of the order: decide, then commit that decision with the webhook record.

    Returns (outcome, id of an automatic refund to make now or None).
    """
    assert event.order_id is not None and event.amount is not None  # process_payment_event found the order
    paid = event.amount.amount
    order = get_order_for(ports, event.order_id, None)
    if _refused_before(order, event):  # e.g. refunded by reconciliation before its notification arrived
        return _record_only(ports, event, PaymentOutcome.ALREADY_REFUNDED), None
    if order.payment_provider != event.provider:  # refunds go through the order's provider: never keep this
        return _refuse(ports, event, order, f"paid through {event.provider}, the order chose "
                                            f"{order.payment_provider}")
    held = order.held_payment.provider_payment_id if order.held_payment else None
    if event.provider_payment_id and event.provider_payment_id in (order.provider_payment_id, held):
        # Another notification of a payment the order already has (accepted, or held for review): a
        # provider may notify one payment under several event ids; refunding it again would pay it back twice.
        return _record_only(ports, event, PaymentOutcome.ALREADY_PAID), None
    if event.amount != order.total:
        return _hold_for_mismatch(ports, event, order)
    if order.payment_status in SETTLED or order.status not in (
            OrderStatus.PENDING_PAYMENT, OrderStatus.EXPIRED, OrderStatus.CANCELLED):
        if order.provider_payment_id == event.provider_payment_id:
            return _record_only(ports, event, PaymentOutcome.ALREADY_PAID), None
        return _refuse(ports, event, order, "second payment for an order already paid or on hold")
    if order.status is OrderStatus.CANCELLED:
        return _refuse(ports, event, order, "payment for a cancelled order")
    actor = f"provider:{event.provider}"
    at = clock.iso(clock.now())
    hold = risk.hold_reason(ports, order)
    reason = hold or ("late payment, stock taken again" if order.status is OrderStatus.EXPIRED
                      else "payment_received")
    outcome = PaymentOutcome.PAID_ON_HOLD if hold else PaymentOutcome.PAID
    ip_record = risk.ip_payment_record(order, at)

    def commit(movements: list[StockMovement], selling: Order) -> tuple[PaymentOutcome, str | None]:
        updated = selling.transition(OrderStatus.ON_HOLD if hold else OrderStatus.PAID, at=at, actor=actor,
                                     reason=reason, payment_status=PaymentStatus.PAID,
                                     amount_paid=order.amount_paid + paid,
                                     provider_payment_id=event.provider_payment_id, hold_reason=hold)
        try:
            ports.store.commit(Commit(movements=movements, order_update=(order, updated), records=[
                _record(event, outcome), *([ip_record] if ip_record else [])]))
        except CommitRejected:
            return PaymentOutcome.DUPLICATE, None
        sold.extend(movements)
        return outcome, None

    sold: list[StockMovement] = []
    try:
        result = inventory.sell_order(ports, order, at, actor, commit)
    except InsufficientStock as short:
        inventory.announce_stock_state(ports, [], ran_short={s["sku"] for s in short.extra.get("shortages", [])})
        return _refuse(ports, event, order, "no stock left for this payment", end_order=True)
    if result[0] == outcome:
        inventory.announce_stock_state(ports, sold)
        ports.events.publish("order.paid", {"order_id": order.order_id, "total": order.total.to_dict(),
                                            "on_hold": bool(hold)})
    return result


def _refused_before(order: Order, event: PaymentEvent) -> bool:
    """This payment (same provider and payment id) is on the order already as one it refused, with its automatic
    refund: another notification of it (a retry under a new event id, Alipay's TRADE_FINISHED after
    TRADE_SUCCESS) must not refund it a second time."""
    return bool(event.provider_payment_id) and any(
        r.automatic and r.provider_payment_id == event.provider_payment_id
        and (r.provider or order.payment_provider) == event.provider for r in order.refunds)


def _hold_for_mismatch(ports: Ports, event: PaymentEvent, order: Order) -> tuple[PaymentOutcome, str | None]:
    assert event.amount is not None
    if order.status is not OrderStatus.PENDING_PAYMENT:  # nothing to hold: give the money back
        return _refuse(ports, event, order, f"wrong amount for a {order.status.value} order")
    at = clock.iso(clock.now())
    received = event.amount.to_dict()
    reason = f"amount mismatch: expected {order.total.amount} {order.currency}, received " \
             f"{event.amount.amount} {event.amount.currency}"
    same_currency = event.amount.currency == order.currency
    held = order.transition(OrderStatus.ON_HOLD, at=at, actor=f"provider:{event.provider}", reason=reason,
                            hold_reason=reason, provider_payment_id=event.provider_payment_id,
                            amount_paid=order.amount_paid + (event.amount.amount if same_currency else 0),
                            held_payment=HeldPayment(event.amount, event.provider_payment_id))
    detail = {"expected": order.total.to_dict(), "received": received}
    try:
        ports.store.commit(Commit(order_update=(order, held),
                                  records=[_record(event, PaymentOutcome.AMOUNT_MISMATCH_HELD, **detail)]))
    except CommitRejected:
        return PaymentOutcome.DUPLICATE, None
    ports.events.publish("order.on_hold", {"order_id": order.order_id, "reason": reason})
    return PaymentOutcome.AMOUNT_MISMATCH_HELD, None


def _refuse(ports: Ports, event: PaymentEvent, order: Order, why: str,
            end_order: bool = False) -> tuple[PaymentOutcome, str | None]:
    """A payment the order cannot take: record it on the order with a pending automatic refund (and end an
    unpaid order that cannot be served) together with the webhook record; the provider is called after."""
    assert event.amount is not None
    refund_id = refunds.stable_id("auto", event.provider, event.event_id)
    actor = f"provider:{event.provider}"
    at = clock.iso(clock.now())
    entry = refunds.new_entry(refund_id, order, refunds.RefundPlan(event.amount.amount, {}, {}), reason=why,
                              at=at, actor=actor, provider=event.provider,
                              provider_payment_id=event.provider_payment_id, captured=event.amount.amount,
                              currency=event.amount.currency, automatic=True)
    same_currency = event.amount.currency == order.currency
    ends = end_order and order.status is OrderStatus.PENDING_PAYMENT
    movements = release_order_lines(order, at, actor, "paid_without_stock_refunded") if ends else []
    # An order that never took a payment and has ended shows the money as refunded; a held or paid one
    # keeps its own payment status (the automatic refund is listed beside it).
    ended = ends or order.status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED)
    unpaid = order.payment_status is PaymentStatus.UNPAID
    status = {"payment_status": PaymentStatus.REFUNDED} if ended and unpaid else {}
    updated = refunds.with_intent(order, entry, at=at, actor=actor, reason=f"refunded: {why}", cancel=ends,
                                  received=event.amount.amount if same_currency else 0, **status)
    try:
        ports.store.commit(Commit(movements=movements, order_update=(order, updated), records=[
            _record(event, PaymentOutcome.REFUNDED, refund_reason=why, refund_id=refund_id)]))
    except CommitRejected:
        return PaymentOutcome.DUPLICATE, None
    if ends:
        inventory.announce_stock_state(ports, movements)  # units back on sale: waiting backorders are filled
        ports.events.publish("order.cancelled", {"order_id": order.order_id, "reason": f"refunded: {why}"})
    return PaymentOutcome.REFUNDED, refund_id


def refund_unrecorded_payment(ports: Ports, provider: PaymentProvider, event: PaymentEvent, why: str) -> PaymentOutcome:
    """A verified payment that an ended order (CANCELLED or EXPIRED) never recorded, e.g. found by daily
    reconciliation in the provider's statement when its notification never arrived: recorded on the order with
    an automatic refund, exactly as a refused webhook payment is (`_refuse`), and never a sale (the customer may
    have ordered again since). Keyed on the event id like a webhook, so running it again changes nothing.

    Returns "refunded", "refund_pending" (the provider has not confirmed; the sweeper finishes it),
    "duplicate" (done before) or "not_applicable" (the order records the payment by now, or has not ended).
    """
    assert event.amount is not None and event.order_id
    order_id = event.order_id
    if _recorded(ports, event):
        return PaymentOutcome.DUPLICATE

    def attempt() -> tuple[PaymentOutcome, str | None]:
        order = get_order_for(ports, order_id, None)
        recorded = event.provider_payment_id and (order.provider_payment_id == event.provider_payment_id or any(
            r.provider_payment_id == event.provider_payment_id for r in order.refunds))
        if recorded or order.status not in (OrderStatus.CANCELLED, OrderStatus.EXPIRED):
            return PaymentOutcome.NOT_APPLICABLE, None
        return _refuse(ports, event, order, why)

    outcome, refund_id = with_retries(attempt)
    if refund_id:
        try:
            finish_refund(ports, _providers(provider), get_order_for(ports, event.order_id, None), refund_id)
        except ProviderError as error:  # pending on the order: the sweeper finishes it
            logger.warning("automatic refund left pending", extra={"order_id": event.order_id, "error": str(error)})
            return PaymentOutcome.REFUND_PENDING
    return outcome


def approve_held(ports: Ports, order_id: str, *, actor: str) -> Order:
    def attempt() -> tuple[Order, bool]:
        order = get_order_for(ports, order_id, None)
        last = order.last_transition_to(OrderStatus.PAID)
        if order.done_by(OrderStatus.PAID, actor) and last and last.from_status == OrderStatus.ON_HOLD.value:
            return order, False  # our own earlier approval committed; its answer was lost
        if order.status is not OrderStatus.ON_HOLD:
            raise InvalidTransition(f"order is {order.status.value}, not ON_HOLD", {"order_id": order_id})
        held = order.held_payment.amount if order.held_payment else None
        if order.payment_status is PaymentStatus.UNPAID and held and held.currency != order.currency:
            raise InvalidTransition(f"the payment was made in {held.currency}, the order is in {order.currency}; "
                                    "reject it to refund the payment", {"order_id": order_id})
        at = clock.iso(clock.now())

        def commit(movements: list[StockMovement], selling: Order) -> tuple[Order, bool]:
            updated = selling.transition(OrderStatus.PAID, at=at, actor=actor, reason="approved by operator",
                                         payment_status=PaymentStatus.PAID, hold_reason=None, held_payment=None)
            ports.store.commit(Commit(movements=movements, order_update=(order, updated)))
            sold.extend(movements)
            return updated, True

        if order.payment_status is PaymentStatus.UNPAID:  # held for a wrong amount: accepting it sells the reservation
            return inventory.sell_order(ports, order, at, actor, commit)
        return commit([], order)

    sold: list[StockMovement] = []
    approved, changed = with_retries(attempt)
    if changed:
        inventory.announce_stock_state(ports, sold)  # deduct-on-payment lines take their units now
        ports.events.publish("order.approved", {"order_id": order_id, "total": approved.total.to_dict()})
    return approved


def reject_held(ports: Ports, provider: PaymentProvider, order_id: str, *, actor: str) -> Order:
    """Refund what a held order received and cancel it (releasing or restocking its units)."""
    reason = "rejected by operator"
    refund_id = refunds.stable_id(order_id, "reject")

    def attempt() -> tuple[Order, str]:
        order = get_order_for(ports, order_id, None)
        if order.done_by(OrderStatus.CANCELLED, actor) and order.history[-1].reason == reason:
            return order, "done"
        if order.status is not OrderStatus.ON_HOLD:
            raise InvalidTransition(f"order is {order.status.value}, not ON_HOLD", {"order_id": order_id})
        if order.payment_status in ACCEPTED_PAYMENT:  # held by a risk rule: a refunding cancel
            return order, "refund"
        # Held unpaid for a wrong amount or currency: give back all of what arrived, release the reservation.
        held = order.held_payment.amount if order.held_payment else Money(refunds.own_captured(order), order.currency)
        at = clock.iso(clock.now())
        changes: dict[str, Any] = {"hold_reason": None}
        if held.amount > 0:
            entry = refunds.new_entry(refund_id, order, refunds.RefundPlan(held.amount, {}, {}), reason=reason,
                                      at=at, actor=actor, provider=order.payment_provider,
                                      provider_payment_id=order.provider_payment_id, captured=held.amount,
                                      currency=held.currency, automatic=True)
            updated = refunds.with_intent(order, entry, at=at, actor=actor, reason=reason, cancel=True,
                                          payment_status=PaymentStatus.REFUNDED, **changes)
        else:
            updated = order.transition(OrderStatus.CANCELLED, at=at, actor=actor, reason=reason, **changes)
        movements = release_order_lines(order, at, actor, "cancelled_by_operator")
        ports.store.commit(Commit(movements=movements, order_update=(order, updated)))
        released[:] = movements
        return updated, "rejected"

    released: list[StockMovement] = []
    order, how = with_retries(attempt)
    if how == "refund":
        return refund_order(ports, provider, order_id, amount=None, lines=None, restock=True, reason=reason,
                            key="reject", actor=actor, cancel=True)
    if how == "rejected":
        inventory.announce_stock_state(ports, released)  # units back on sale: waiting backorders are filled
        ports.events.publish("order.cancelled", {"order_id": order_id, "reason": reason})
    return complete_pending_refunds(ports, _providers(provider), order_id) if refunds.pending(order) else order
