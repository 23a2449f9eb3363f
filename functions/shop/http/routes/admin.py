"""Operator routes (group admin): SKUs, stock adjustments, the ledger, orders, reconciliation."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Header, Query

from shop.adapters.wiring import default_ports
from shop.domain.errors import Unprocessable
from shop.domain.money import Money
from shop.domain.orders import OrderStatus
from shop.http.auth import AdminRouter, caller
from shop.http.routes.common import (
    DEFAULT_PAGE,
    checked_order_id,
    checked_sku,
    checked_window,
    json_response,
    page,
)
from shop.http.schemas import AdjustmentIn, RefundIn, ShipmentIn, SkuIn
from shop.payments import registry
from shop.services import catalog, fulfilment, payments
from shop.services import orders as order_service
from shop.services.presenters import admin_order_view, admin_sku_view, movement_view

router = AdminRouter()  # every route here needs the admin group

Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=1024)]
# A date or an ISO 8601 UTC time; compared with created_at as text, which sorts chronologically.
ISO_TIME = r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(T([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?Z?)?$"
IsoTime = Annotated[str | None, Query(pattern=ISO_TIME)]


@router.put("/admin/skus/<sku>", summary="Create or replace a SKU (name, price, policy, thresholds, on_hand)")
def put_sku(sku: str, body: SkuIn):
    who = caller(router)  # admin: the router requires it for every route
    details = catalog.SkuDetails(
        name=body.name,
        price=Money(body.price.amount, body.price.currency),
        active=body.active,
        stock_policy=body.stock_policy,
        max_per_order=body.max_per_order,
        low_stock_threshold=body.low_stock_threshold,
        on_hand=body.on_hand,
        payment_window_seconds=checked_window(body.payment_window_seconds),
        stock_shards=body.stock_shards,
    )
    saved, created = catalog.upsert_sku(default_ports(), checked_sku(sku), details, actor=who.actor)
    return json_response(201 if created else 200, admin_sku_view(saved))


@router.post("/admin/skus/<sku>/adjustments", summary="Change on_hand by delta, with a reason")
def adjust(sku: str, body: AdjustmentIn,
           idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None):
    who = caller(router)  # admin: the router requires it for every route
    request_id = order_service.request_fingerprint([who.sub, idempotency_key]) if idempotency_key else None
    saved, movements = catalog.adjust_stock(default_ports(), checked_sku(sku), body.delta, reason=body.reason,
                                           actor=who.actor, request_id=request_id)
    entries = [movement_view(m) for m in movements]
    return json_response(201, {"sku": admin_sku_view(saved), "ledger_entry": entries[0], "ledger_entries": entries})


@router.get("/admin/skus/<sku>", summary="A SKU with its stock levels")
def read_sku(sku: str):
    return json_response(200, admin_sku_view(catalog.get_sku(default_ports(), checked_sku(sku))))


@router.get("/admin/skus/<sku>/ledger", summary="The SKU's stock movements, oldest first")
def ledger(sku: str, limit: Limit = DEFAULT_PAGE, cursor: Cursor = None):
    ports = default_ports()
    catalog.get_sku(ports, checked_sku(sku))
    entries, next_cursor = ports.store.ledger(sku, limit, cursor)
    return json_response(200, page([movement_view(e) for e in entries], next_cursor))


@router.get("/admin/orders", summary="Orders, newest first, filtered")
def list_orders(
    status: Annotated[OrderStatus | None, Query()] = None,
    customer: Annotated[str | None, Query(max_length=128)] = None,
    created_from: Annotated[str | None, Query(alias="from", pattern=ISO_TIME)] = None,
    created_to: Annotated[str | None, Query(alias="to", pattern=ISO_TIME)] = None,
    order_number: Annotated[str | None, Query(max_length=40)] = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
):
    ports = default_ports()
    if created_from and created_to and created_from > created_to:
        raise Unprocessable("'from' must not be after 'to'", {"fields": ["from", "to"]})
    if order_number:
        order_id = ports.store.order_id_by_number(order_number)
        order = ports.store.get_order(order_id) if order_id else None
        return json_response(200, page([admin_order_view(order)] if order else [], None))
    found, next_cursor = ports.store.orders(
        status=status.value if status else None, customer_id=customer, created_from=created_from,
        created_to=created_to, limit=limit, cursor=cursor,
    )
    return json_response(200, page([admin_order_view(o) for o in found], next_cursor))


@router.post("/admin/orders/<order_id>/cancel", summary="Cancel an order before shipment (paid: refunded in full)")
def cancel(order_id: str):
    who = caller(router)  # admin: the router requires it for every route
    order_id = checked_order_id(order_id)
    order = payments.cancel(default_ports(), registry.provider, order_id, actor=who.actor,
                            reason="cancelled_by_operator")
    return json_response(200, admin_order_view(order))


@router.post("/admin/orders/<order_id>/refunds", summary="Refund all or part of a paid order, optionally restocking")
def refund(order_id: str, body: RefundIn,
           idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None):
    who = caller(router)  # admin: the router requires it for every route
    order_id = checked_order_id(order_id)
    ports = default_ports()
    order = order_service.get_order_for(ports, order_id, None)
    if body.amount and body.amount.currency != order.currency:
        raise Unprocessable("refund currency must be the order's", {"fields": ["amount.currency"]})
    # Without a key, the refund is keyed on its content: an identical retry cannot refund twice.
    key = idempotency_key or order_service.request_fingerprint(body.model_dump())
    updated = payments.refund_order(
        ports, registry.provider(order.payment_provider), order_id,
        amount=body.amount.amount if body.amount else None,
        lines=[(line.sku, line.quantity) for line in body.lines] if body.lines else None,
        restock=body.restock, reason=body.reason, key=key, actor=who.actor)
    return json_response(201, admin_order_view(updated))


@router.post("/admin/orders/<order_id>/shipments", summary="Record a parcel of a paid order (all that is left by default)")
def ship(order_id: str, body: ShipmentIn,
         idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None):
    who = caller(router)  # admin: the router requires it for every route
    order_id = checked_order_id(order_id)
    units = order_service.merge_lines([(line.sku, line.quantity) for line in body.lines]) if body.lines else None
    # Without a key, the shipment is keyed on its content: an identical retry records one parcel.
    key = idempotency_key or order_service.request_fingerprint(body.model_dump())
    order, created = fulfilment.ship_order(default_ports(), order_id, units=units, carrier=body.carrier,
                                           tracking_number=body.tracking_number, key=key, actor=who.actor)
    return json_response(201 if created else 200, admin_order_view(order))


@router.post("/admin/orders/<order_id>/approve", summary="Release a held order for fulfilment")
def approve(order_id: str):
    who = caller(router)  # admin: the router requires it for every route
    order_id = checked_order_id(order_id)
    return json_response(200, admin_order_view(payments.approve_held(default_ports(), order_id, actor=who.actor)))


@router.get("/admin/reconciliation/<date>", summary="Daily reconciliation: each provider's result for a business day")
def reconciliation(date: str):
    """`date` is the provider's business day (Beijing time for Alipay and WeChat Pay, UTC for Stripe)."""
    from shop.services.reconciliation import results_for

    return json_response(200, results_for(default_ports(), date))


@router.post("/admin/orders/<order_id>/reject", summary="Reject a held order: refund and cancel")
def reject(order_id: str):
    who = caller(router)  # admin: the router requires it for every route
    order_id = checked_order_id(order_id)
    ports = default_ports()
    order = order_service.get_order_for(ports, order_id, None)
    rejected = payments.reject_held(ports, registry.provider(order.payment_provider), order_id, actor=who.actor)
    return json_response(200, admin_order_view(rejected))
