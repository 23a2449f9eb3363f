"""Refunds and cancellations: the order records the intent, then the provider is called, then the outcome.

Every attempt re-reads the order and re-runs every check on that version (state, what is left to
refund, units left), and commits conditional on it: two refunds, or a cancel and a shipment, can
never both pass on the same version. The provider sees a refund only after the pending entry is
committed, keyed on the entry's stable id, so a retry or the sweeper can finish it without
refunding twice (see docs/payments.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from aws_lambda_powertools import Logger

from shop.domain import clock, refunds
from shop.domain.errors import InvalidTransition
from shop.domain.money import Money
from shop.domain.orders import Order, OrderStatus
from shop.domain.statuses import ACCEPTED_PAYMENT, PaymentStatus, RefundStatus
from shop.domain.stock import StockMovement
from shop.domain.values import Refund
from shop.payments.base import PaymentProvider, ProviderError
from shop.services import inventory
from shop.services.orders import get_order_for, release_order_lines
from shop.services.ports import Commit, Ports
from shop.services.retry import with_retries

logger = Logger(child=True)
ProviderFor = Callable[[str], PaymentProvider]


def refund_order(ports: Ports, provider: PaymentProvider, order_id: str, *, amount: int | None,
                 lines: list[tuple[str, int]] | None, restock: bool, reason: str, key: str, actor: str,
                 cancel: bool = False, customer_id: str | None = None) -> Order:
    """Refund all or part of a paid order (and, with `cancel`, cancel it in the same write).

    Restocked units go back through the restock queue once the intent is committed. If the provider
    cannot be reached the refund stays pending on the order: a retry with the same key, or the
    sweeper, finishes it.
    """
    refund_id = refunds.stable_id(order_id, key)

    def attempt() -> tuple[Order, bool]:
        order = get_order_for(ports, order_id, customer_id)
        if refunds.find(order, refund_id):
            return order, False  # a retry: the intent is recorded, finish what is left below
        updated = with_refund_intent(order, refund_id, provider_name=provider.name, amount=amount, lines=lines,
                                     restock=restock, reason=reason, actor=actor, cancel=cancel)
        updated, released = refunds.release_backorders(updated, at=updated.updated_at, actor=actor)
        ports.store.commit(Commit(movements=released, order_update=(order, updated)))
        unwanted[:] = released
        return updated, True

    unwanted: list[StockMovement] = []
    order, created = with_retries(attempt)
    if created and unwanted:
        inventory.announce_stock_state(ports, unwanted)  # backordered units left the allowance: see backorders.trim
    entry = refunds.find(order, refund_id)
    assert entry is not None
    if created and cancel:
        ports.events.publish("order.cancelled", {"order_id": order_id, "reason": reason,
                                                 "refund": entry.money.to_dict()})
    return settle_refund(ports, lambda name: provider, order, refund_id)  # this refund's own provider


def with_refund_intent(order: Order, refund_id: str, *, provider_name: str, amount: int | None,
                       lines: list[tuple[str, int]] | None, restock: bool, reason: str, actor: str,
                       cancel: bool = False, after_sale_id: str | None = None) -> Order:
    """The order with a pending refund, planned on this version (every check re-run on it); not committed: the
    caller commits it, conditional on `order`'s version, alone or with what else the refund belongs to (an
    after-sales request's transition). `entry_fields` go on the refund entry (e.g. the after_sale_id)."""
    refund = refunds.plan(order, amount=amount, lines=lines, restock=restock, cancel=cancel)
    at = clock.iso(clock.now())
    entry = refunds.new_entry(refund_id, order, refund, reason=reason, at=at, actor=actor,
                              provider=provider_name, provider_payment_id=order.provider_payment_id,
                              captured=refunds.own_captured(order))
    entry = replace(entry, after_sale_id=after_sale_id)
    if refund.amount == 0:  # a cancel after everything was refunded already: only units come back
        entry = replace(entry, status=RefundStatus.SUCCEEDED)
    return refunds.with_intent(order, entry, at=at, actor=actor, reason=reason, cancel=cancel)


def settle_refund(ports: Ports, provider_for: ProviderFor, order: Order, refund_id: str) -> Order:
    """After the intent is committed: its units go to the restock queue (keyed by the refund, so applied once),
    then the provider is called and the outcome recorded (left pending for the sweeper if the provider fails)."""
    entry = refunds.find(order, refund_id)
    assert entry is not None
    send_restocks(ports, order.order_id, entry)
    return _finish_quietly(ports, provider_for, order, refund_id)


def complete_pending_refunds(ports: Ports, provider_for: ProviderFor, order_id: str) -> Order:
    """Call the provider for every refund still pending on the order (the sweeper's job, and a retry's)."""
    order = get_order_for(ports, order_id, None)
    for entry in refunds.pending(order):
        send_restocks(ports, order_id, entry)
        order = _finish_quietly(ports, provider_for, order, entry.refund_id)
    return order


def _finish_quietly(ports: Ports, provider_for: ProviderFor, order: Order, refund_id: str) -> Order:
    try:
        return finish_refund(ports, provider_for, order, refund_id)
    except ProviderError as error:
        logger.warning("refund left pending", extra={"order_id": order.order_id, "refund_id": refund_id,
                                                     "error": str(error)[:200]})
        return get_order_for(ports, order.order_id, None)


def finish_refund(ports: Ports, provider_for: ProviderFor, order: Order, refund_id: str) -> Order:
    """Provider call (idempotent on refund_id), then the outcome. Raises ProviderError after noting the attempt."""
    entry = refunds.find(order, refund_id)
    if entry is None or not entry.pending:
        return order
    provider = provider_for(entry.provider or order.payment_provider)
    try:
        result = provider.refund(order_id=order.order_id, provider_payment_id=entry.provider_payment_id or "",
                                 amount=entry.money, refund_id=refund_id,
                                 captured=Money(entry.captured or entry.amount, entry.currency))
    except ProviderError as error:
        message = str(error)
        _record(ports, order.order_id, lambda o: refunds.with_failed_attempt(
            o, refund_id, error=message, at=clock.iso(clock.now())))
        raise
    updated, changed = _record(ports, order.order_id, lambda o: refunds.with_outcome(
        o, refund_id, provider_refund_id=result.provider_refund_id, at=clock.iso(clock.now())))
    if changed:
        ports.events.publish("order.refunded", {
            "order_id": order.order_id, "refund_id": refund_id,
            "amount": entry.money.to_dict(), "restock": bool(entry.restocked), "automatic": entry.automatic})
    return updated


def _record(ports: Ports, order_id: str, change: Callable[[Order], Order]) -> tuple[Order, bool]:
    def attempt() -> tuple[Order, bool]:
        current = get_order_for(ports, order_id, None)
        updated = change(current)
        if updated is current:
            return current, False  # recorded already (a concurrent finisher)
        ports.store.commit(Commit(order_update=(current, updated)))
        return updated, True

    return with_retries(attempt)


def send_restocks(ports: Ports, order_id: str, entry: Refund) -> None:
    """One message per SKU, keyed by the refund: the consumer applies each message id once."""
    lines = entry.restocked
    if not lines:
        return
    if ports.restock_queue is None:
        raise RuntimeError("RESTOCK_QUEUE_URL is not configured: refunded units cannot be restocked")
    for line in lines:
        ports.restock_queue.request_restock(f"{entry.refund_id}-{line.sku}", line.sku, line.quantity,
                                            order_id, "refund_restock")


def cancel(ports: Ports, provider_for: ProviderFor, order_id: str, *, actor: str, reason: str,
           customer_id: str | None = None) -> Order:
    """Cancel before shipment: an unpaid order releases its stock at once; a paid one is cancelled
    with a refund of what is left and every unit back on sale. Decided on the version committed to."""

    released: list[StockMovement] = []

    def attempt() -> tuple[Order, str]:
        order = get_order_for(ports, order_id, customer_id)
        if order.done_by(OrderStatus.CANCELLED, actor):
            return order, "done"  # our own earlier request committed; its answer was lost
        if order.status is OrderStatus.PENDING_PAYMENT and order.payment_status is PaymentStatus.UNPAID:
            at = clock.iso(clock.now())
            updated = order.transition(OrderStatus.CANCELLED, at=at, actor=actor, reason=reason)
            movements = release_order_lines(order, at, actor, reason)
            ports.store.commit(Commit(movements=movements, order_update=(order, updated)))
            released[:] = movements
            return updated, "released"
        if order.payment_status in ACCEPTED_PAYMENT and order.status is not OrderStatus.CANCELLED:
            refunds.plan(order, amount=None, lines=None, restock=True, cancel=True)  # 409 if shipped
            return order, "refund"
        raise InvalidTransition(f"order {order_id} is {order.status.value}; it cannot be cancelled",
                                {"order_id": order_id, "current_status": order.status.value})

    order, how = with_retries(attempt)
    if how == "refund":
        return refund_order(ports, provider_for(order.payment_provider), order_id, amount=None, lines=None,
                            restock=True, reason=reason, key="cancel", actor=actor, cancel=True,
                            customer_id=customer_id)
    if how == "done":
        return complete_pending_refunds(ports, provider_for, order_id) if refunds.pending(order) else order
    inventory.announce_stock_state(ports, released)  # units back on sale: stock events, waiting backorders filled
    ports.events.publish("order.cancelled", {"order_id": order_id, "reason": reason, "released": [
        {"sku": line.sku, "quantity": line.quantity} for line in order.lines if line.reserves_stock]})
    return order
