"""Fulfilment: operators record the parcels of a paid order. Stock is already sold; shipping moves no units."""

from __future__ import annotations

from shop.domain import clock
from shop.domain.errors import InvalidTransition
from shop.domain.orders import Order, OrderStatus
from shop.domain.statuses import FulfillmentStatus
from shop.services.orders import get_order_for, request_fingerprint
from shop.services.ports import Commit, Ports
from shop.services.presenters import shipment_view
from shop.services.retry import with_retries


def ship_order(ports: Ports, order_id: str, *, units: dict[str, int] | None, carrier: str | None,
               tracking_number: str | None, key: str, actor: str) -> tuple[Order, bool]:
    """Record one shipment (every unshipped unit when `units` is None). Returns (order, created).

    The shipment id derives from the order and the request key, so a retried request finds its
    shipment already recorded and changes nothing.
    """
    shipment_id = "shp_" + request_fingerprint([order_id, key])[:24]

    def attempt() -> tuple[Order, bool]:
        order = get_order_for(ports, order_id, None)
        if any(s.shipment_id == shipment_id for s in order.shipments):
            return order, False
        updated = order.ship(shipment_id, units, carrier=carrier, tracking_number=tracking_number,
                             at=clock.iso(clock.now()), actor=actor)
        ports.store.commit(Commit(order_update=(order, updated)))
        return updated, True

    updated, created = with_retries(attempt)
    if created:
        event = "order.shipped" if updated.fulfillment_status is FulfillmentStatus.FULFILLED else "order.partially_shipped"
        ports.events.publish(event, {"order_id": order_id, **shipment_view(updated.shipments[-1])})
    return updated, created


def confirm_receipt(ports: Ports, order_id: str, *, customer_id: str, actor: str) -> Order:
    """The customer says the goods arrived: SHIPPED or DELIVERED -> COMPLETED. A retry after a lost answer
    finds the order completed by the same caller and answers it again."""

    def attempt() -> tuple[Order, bool]:
        order = get_order_for(ports, order_id, customer_id)
        if order.done_by(OrderStatus.COMPLETED, actor):
            return order, False
        if order.status not in (OrderStatus.SHIPPED, OrderStatus.DELIVERED):
            raise InvalidTransition(f"order {order_id} is {order.status.value}; only a shipped or delivered order "
                                    "can be confirmed", {"order_id": order_id, "current_status": order.status.value})
        updated = order.transition(OrderStatus.COMPLETED, at=clock.iso(clock.now()), actor=actor,
                                   reason="receipt confirmed by customer")
        ports.store.commit(Commit(order_update=(order, updated)))
        return updated, True

    completed, changed = with_retries(attempt)
    if changed:
        ports.events.publish("order.completed", {"order_id": order_id, "by": "customer"})
    return completed
