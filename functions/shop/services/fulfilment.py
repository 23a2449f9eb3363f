"""Fulfilment: parcels of a paid order, their waybills, their courier status, and the order's completion.

Stock is already sold; shipping moves no units. A waybill is booked outside the database, like a refund: the
parcel is recorded first (booking `pending`, conditional on the order's version), the carrier is called with an
idempotency key derived from the parcel id, the outcome is recorded after. A retry of the same request (same
Idempotency-Key, so the same parcel id) finishes a booking that a crash or an outage left pending, and the
carrier answers a repeated key with the same waybill. See docs/fulfilment.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger

from shop.carriers import labels
from shop.carriers import registry as carriers
from shop.carriers.base import Callback, Carrier, CarrierError, ParcelRef
from shop.domain import after_sales as after_sales_rules
from shop.domain import clock
from shop.domain.after_sales import AfterSale
from shop.domain.errors import InvalidTransition, NotFound, Unavailable, Unprocessable
from shop.domain.orders import Order, OrderStatus
from shop.domain.parcels import ParcelTracking, PollPolicy, Tracking, TrackResult, all_delivered
from shop.domain.statuses import BookingStatus, FulfillmentStatus
from shop.domain.values import Shipment
from shop.services.after_sales import publish_opened
from shop.services.orders import get_order_for, request_fingerprint
from shop.services.ports import Commit, Ports
from shop.services.presenters import shipment_view
from shop.services.retry import with_retries
from shop.settings import get_settings

logger = Logger(child=True)


def _shipment(order: Order, shipment_id: str) -> Shipment:
    shipment = order.shipment(shipment_id)
    if shipment is None:
        raise NotFound(f"no shipment {shipment_id} on order {order.order_id}")
    return shipment


def poll_policy() -> PollPolicy:
    return get_settings().poll_policy()


def confirmation_seconds() -> int:
    return get_settings().order_confirmation_seconds


def ship_order(ports: Ports, order_id: str, *, units: dict[str, int] | None, carrier: str | None,
               tracking_number: str | None, key: str, actor: str, carrier_code: str | None = None,
               warehouse: str | None = None) -> tuple[Order, bool]:
    """Record one shipment (every unshipped unit when `units` is None). Returns (order, created).

    The shipment id derives from the order and the request key, so a retried request finds its shipment already
    recorded and changes nothing, except finishing what the first attempt left undone (the booking, the start of
    the parcel's polling). With a carrier that has an adapter, the carrier books the waybill (when no tracking
    number is given) and the parcel is followed (subscription where the carrier pushes, polling always).
    """
    shipment_id = shipment_id_for(order_id, key)
    adapter = carriers.adapter(carrier)
    if adapter is not None:
        if adapter.needs_code and not carrier_code:
            raise Unprocessable(f"carrier {carrier!r} needs carrier_code (the carrier company's code there)",
                                {"fields": ["carrier_code"]})
        if not tracking_number and not adapter.books_waybills:
            raise Unprocessable(f"carrier {carrier!r} issues no waybills: give tracking_number",
                                {"fields": ["tracking_number"]})

    def attempt() -> tuple[Order, bool]:
        order = get_order_for(ports, order_id, None)
        if order.shipment(shipment_id) is not None:
            return order, False
        at = clock.iso(clock.now())
        tracking = (ParcelTracking.started(carrier_code=carrier_code, booked=bool(tracking_number), at=at)
                    if adapter is not None else None)
        updated = order.ship(shipment_id, units, carrier=carrier, tracking_number=tracking_number,
                             at=at, actor=actor, tracking=tracking, warehouse=warehouse)
        ports.store.commit(Commit(order_update=(order, updated)))
        return updated, True

    order, created = with_retries(attempt)
    if adapter is not None:
        order = _finish_booking(ports, adapter, order, shipment_id)
        _follow(ports, adapter, order, _shipment(order, shipment_id))
    tracking = _shipment(order, shipment_id).tracking
    if created or (tracking is not None and tracking.shipped_event is None):
        _announce_shipment(ports, order, shipment_id)
    return get_order_for(ports, order_id, None) if adapter is not None else order, created


def shipment_id_for(order_id: str, key: str) -> str:
    return "shp_" + request_fingerprint([order_id, key])[:24]


def _announce_shipment(ports: Ports, order: Order, shipment_id: str) -> None:
    """order.shipped (or order.partially_shipped) once the parcel has its tracking number, recorded as sent."""
    shipment = _shipment(order, shipment_id)
    event = "order.shipped" if order.fulfillment_status is FulfillmentStatus.FULFILLED else "order.partially_shipped"
    ports.events.publish(event, {"order_id": order.order_id, **shipment_view(shipment)})
    if shipment.tracking is not None:
        _update_tracking(ports, order.order_id, shipment_id, lambda tracking: tracking.announced(event))


def _finish_booking(ports: Ports, adapter: Carrier, order: Order, shipment_id: str) -> Order:
    """Book the waybill of a parcel whose booking is pending; record the tracking number and the label."""
    shipment = _shipment(order, shipment_id)
    if shipment.tracking is None or not shipment.tracking.booking_pending:
        return order
    try:
        booking = adapter.book(order, shipment, idempotency_key=shipment_id)
        label_key = labels.store(order.order_id, shipment_id, booking.label_pdf) if booking.label_pdf else None
    except CarrierError as error:
        message = str(error)[:300]
        _update_tracking(ports, order.order_id, shipment_id, lambda tracking: tracking.booking_failed(message))
        logger.warning("waybill not booked; a retry with the same Idempotency-Key finishes it",
                       extra={"order_id": order.order_id, "shipment_id": shipment_id, "error": message})
        raise Unavailable(f"the carrier did not book the waybill ({message}); retry with the same Idempotency-Key",
                          {"retry_after": 5, "shipment_id": shipment_id}) from None

    def booked(parcel: Shipment) -> Shipment:
        if parcel.tracking is None or not parcel.tracking.booking_pending:
            return parcel  # a concurrent retry recorded it first (the carrier gave it the same waybill)
        return replace(parcel, tracking_number=booking.tracking_number, tracking=parcel.tracking.booked(label_key))

    return _update_shipment(ports, order.order_id, shipment_id, booked)


def _follow(ports: Ports, adapter: Carrier, order: Order, shipment: Shipment) -> None:
    """Subscribe to the carrier's pushes (best effort: polling is the fallback) and start the polling loop."""
    tracking = shipment.tracking
    if tracking is None or tracking.booking is not BookingStatus.BOOKED or not shipment.tracking_number:
        return
    if not tracking.subscribed:
        try:
            adapter.subscribe(_ref(order.order_id, shipment))
            _update_tracking(ports, order.order_id, shipment.shipment_id, ParcelTracking.with_subscription)
        except CarrierError as error:
            logger.warning("carrier subscription failed; the parcel is polled", extra={
                "order_id": order.order_id, "shipment_id": shipment.shipment_id, "error": str(error)[:200]})
    if ports.tracking is not None:
        ports.tracking.start(order.order_id, shipment.shipment_id, poll_policy().interval(0))


def _ref(order_id: str, shipment: Shipment) -> ParcelRef:
    carrier_code = shipment.tracking.carrier_code if shipment.tracking is not None else None
    return ParcelRef(order_id, shipment.shipment_id, shipment.tracking_number or "", carrier_code or "")


def _update_shipment(ports: Ports, order_id: str, shipment_id: str, change: Callable[[Shipment], Shipment]) -> Order:
    """The order with `change` made to one of its parcels (one write conditional on its version; none when
    the change changes nothing)."""

    def attempt() -> Order:
        order = get_order_for(ports, order_id, None)
        shipment = _shipment(order, shipment_id)
        changed = change(shipment)
        if changed == shipment:
            return order
        updated = order.with_shipment(changed, at=clock.iso(clock.now()))
        ports.store.commit(Commit(order_update=(order, updated)))
        return updated

    return with_retries(attempt)


def _update_tracking(ports: Ports, order_id: str, shipment_id: str,
                     change: Callable[[ParcelTracking], ParcelTracking]) -> Order:
    return _update_shipment(ports, order_id, shipment_id, lambda shipment: shipment if shipment.tracking is None
                            else replace(shipment, tracking=change(shipment.tracking)))


# ---- courier status ----


@dataclass(frozen=True)
class ParcelUpdate:
    order: Order
    result: TrackResult | None  # None: the parcel was not found or not tracked
    delivered_now: bool = False
    stale: str | None = None
    return_case: AfterSale | None = None  # opened by this update (a returned or refused parcel), same write


def record_tracking(ports: Ports, order_id: str, shipment_id: str, tracking: Tracking | None, *,
                    policy: PollPolicy | None = None, polled: bool = False, now: datetime | None = None
                    ) -> ParcelUpdate:
    """Merge what the carrier said (None: it could not say) into the parcel, in one write conditional on the
    order's version; DELIVERED when every parcel is delivered; stale when too old. Events after the commit."""
    policy = policy or poll_policy()
    moment = now or clock.now()
    at = clock.iso(moment)

    def attempt() -> ParcelUpdate:
        order = get_order_for(ports, order_id, None)
        shipment = order.shipment(shipment_id)
        if shipment is None or shipment.tracking is None:
            return ParcelUpdate(order, None)
        before = shipment.tracking
        result = before.with_news(tracking or Tracking(()), at=at)
        changed = result.tracking
        if polled:
            changed = changed.polled(at=at, answered=tracking is not None, news=result.new_checkpoints > 0)
        started = clock.parse_iso(before.tracking_started_at or shipment.at or at)
        # Only a poll ends a parcel as stale: a push brings news, and may revive a stale parcel.
        stale = changed.stale_reason_at(policy, (moment - started).total_seconds()) if polled else None
        if stale:
            changed = changed.stale_at(at, stale)
        result = TrackResult(changed, result.new_checkpoints, result.previous, changed.status, result.refused)
        if changed == before:
            return ParcelUpdate(order, result)
        updated = order.with_shipment(replace(shipment, tracking=changed), at=at)
        delivered_now = (updated.status is OrderStatus.SHIPPED
                         and all_delivered(s.tracking for s in updated.shipments))
        if delivered_now:
            updated = updated.transition(OrderStatus.DELIVERED, at=at, actor="system:carrier",
                                         reason="every parcel delivered",
                                         complete_after=clock.iso_after(moment, confirmation_seconds()))
        # A parcel coming back opens its return case (after-sales) in this same write: once per parcel, and never
        # a status recorded without its case.
        case = None
        if changed.coming_back:
            opened = after_sales_rules.return_case_on(updated, shipment_id, reason=changed.return_reason, at=at)
            if opened is not None:
                updated, case = opened
        ports.store.commit(Commit(order_update=(order, updated), after_sale=(case, None) if case else None))
        return ParcelUpdate(updated, result, delivered_now, stale, case)

    update = with_retries(attempt)
    _publish(ports, update, shipment_id)
    return update


def _publish(ports: Ports, update: ParcelUpdate, shipment_id: str) -> None:
    result = update.result
    shipment = update.order.shipment(shipment_id)
    if result is None or not result.status_changed or shipment is None:
        return
    detail = {"order_id": update.order.order_id, "shipment_id": shipment_id, "parcel_id": shipment_id,
              "carrier": shipment.carrier, "tracking_number": shipment.tracking_number,
              "status": result.status.value if result.status else None,
              "previous_status": result.previous.value if result.previous else None,
              "refused": result.tracking.refused}
    ports.events.publish("parcel.status_changed", detail)
    if update.stale:
        ports.events.publish("parcel.stale", {**detail, "reason": update.stale})
    if update.return_case is not None:
        publish_opened(ports, update.return_case)
    if update.delivered_now:
        ports.events.publish("order.delivered", {"order_id": update.order.order_id,
                                                 "complete_after": update.order.complete_after})


def poll_parcel(ports: Ports, order_id: str, shipment_id: str, *, now: datetime | None = None) -> dict[str, Any]:
    """One turn of the parcel's loop: ask the carrier, record, and say how long to wait before the next turn.

    Returns the state machine's next input: {order_id, shipment_id, wait_seconds, done, status}. An outage
    changes no status: the turn counts as quiet (the interval grows) and the next turn tries again."""
    policy = poll_policy()
    try:
        order = get_order_for(ports, order_id, None)
    except NotFound:
        return _turn(order_id, shipment_id, None, done=True, wait_seconds=0)
    shipment = order.shipment(shipment_id)
    adapter = carriers.adapter(shipment.carrier) if shipment is not None else None
    if shipment is None or shipment.tracking is None or adapter is None or shipment.tracking.terminal:
        return _turn(order_id, shipment_id, shipment.tracking if shipment is not None else None, done=True,
                     wait_seconds=0)
    tracking: Tracking | None
    try:
        tracking = adapter.query(_ref(order_id, shipment))
    except CarrierError as error:
        logger.warning("carrier did not answer; polled again later", extra={
            "order_id": order_id, "shipment_id": shipment_id, "error": str(error)[:200]})
        tracking = None
    update = record_tracking(ports, order_id, shipment_id, tracking, policy=policy, polled=True, now=now)
    latest = (update.order.shipment(shipment_id) or shipment).tracking or shipment.tracking
    return _turn(order_id, shipment_id, latest, done=latest.terminal, wait_seconds=latest.next_poll_in(policy))


def _turn(order_id: str, shipment_id: str, tracking: ParcelTracking | None, *, done: bool,
          wait_seconds: int) -> dict[str, Any]:
    """The polling loop's next input (the courier-poll state machine's `$`): done, or wait and poll again."""
    status = tracking.status if tracking is not None else None
    return {"order_id": order_id, "shipment_id": shipment_id, "wait_seconds": wait_seconds, "done": done,
            "status": status.value if status else None}


def receive_callback(ports: Ports, adapter: Carrier, callback: Callback) -> ParcelUpdate:
    """A verified push: the same merge as a poll. A final status ends the parcel's loop now (its Wait ends
    early); other news resets the polling interval to the first one (docs/fulfilment.md)."""
    if not callback.order_id or not callback.shipment_id:
        raise Unprocessable("the callback names no parcel of ours", {"fields": ["order_id", "shipment_id"]})
    order = get_order_for(ports, callback.order_id, None)
    shipment = order.shipment(callback.shipment_id)
    if shipment is None or shipment.carrier != adapter.name or \
            (shipment.tracking_number or "") != callback.tracking_number:
        raise NotFound("no such parcel")
    update = record_tracking(ports, callback.order_id, callback.shipment_id, callback.tracking)
    current = update.order.shipment(callback.shipment_id)
    tracking = current.tracking if current is not None else None
    if tracking is not None and tracking.final and ports.tracking is not None:
        ports.tracking.stop(callback.shipment_id, f"final status {tracking.status} pushed by the carrier")
    return update


# ---- completion ----


def complete_if_due(ports: Ports, order_id: str, *, now: datetime | None = None) -> Order | None:
    """DELIVERED -> COMPLETED once the confirmation period is over and no after-sales request is open
    (`open_after_sales`, kept by after-sales). None when it is not (yet) due."""
    at = clock.iso(now or clock.now())

    def attempt() -> Order | None:
        order = get_order_for(ports, order_id, None)
        if order.status is not OrderStatus.DELIVERED or not order.complete_after or order.complete_after > at:
            return None
        if order.open_after_sales:
            return None
        updated = order.transition(OrderStatus.COMPLETED, at=at, actor="system:confirmation",
                                   reason="confirmation period over")
        ports.store.commit(Commit(order_update=(order, updated)))
        return updated

    completed = with_retries(attempt)
    if completed is not None:
        ports.events.publish("order.completed", {"order_id": order_id, "by": "system"})
    return completed


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

