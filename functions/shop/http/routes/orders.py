"""Customer order routes: list, read, cancel, reorder, confirm receipt."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from shop.adapters.phones import phone_digest
from shop.adapters.wiring import default_ports
from shop.domain.orders import OrderStatus
from shop.http.auth import caller
from shop.http.routes.common import (
    DEFAULT_PAGE,
    ORDER_NUMBER_PATTERN,
    IdempotencyKey,
    checked_order_id,
    declared_query_only,
    json_response,
    page,
    validated_key,
)
from shop.http.schemas import ReorderIn
from shop.payments import registry
from shop.payments.registry import payment_details
from shop.services import finding, fulfilment, payments
from shop.services import orders as order_service
from shop.services.presenters import order_view
from shop.settings import get_settings

router = APIGatewayRouter()

Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=1024)]


@router.get("/orders", summary="The caller's orders, newest first; by order number, by status, or both")
def list_orders(
    status: Annotated[OrderStatus | None, Query(description="Only orders in this status")] = None,
    order_number: Annotated[str | None, Query(pattern=ORDER_NUMBER_PATTERN,
                                              description="The order with this number (one or none)")] = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
):
    who = caller(router)
    declared_query_only(router, {"status", "order_number", "limit", "cursor"})
    ports = default_ports()
    if order_number:  # unique: one item or none, never a cursor; someone else's order is not found
        order = finding.order_by_number(ports, order_number)
        found = [order] if order and order.customer_id == who.sub and status in (None, order.status) else []
        return json_response(200, page([order_view(o) for o in found], None))
    found, next_cursor = ports.store.customer_orders(who.sub, limit, cursor, status=status.value if status else None)
    return json_response(200, page([order_view(o) for o in found], next_cursor))


@router.get("/orders/<order_id>", summary="One of the caller's orders")
def get_order(order_id: str):
    who = caller(router)
    order_id = checked_order_id(order_id)
    return json_response(200, order_view(order_service.get_order_for(default_ports(), order_id, who.sub)))


@router.post("/orders/<order_id>/cancel", summary="Cancel before shipment: unpaid, the stock is released at once; paid, refunded in full and restocked")
def cancel_order(order_id: str):
    who = caller(router)
    order_id = checked_order_id(order_id)
    order = payments.cancel(default_ports(), registry.provider, order_id, actor=who.actor,
                            reason="cancelled_by_customer", customer_id=who.sub)
    return json_response(200, order_view(order))


@router.post("/orders/<order_id>/reorder", summary="A new order with the same lines, checked again")
def reorder(
    order_id: str,
    body: ReorderIn | None = None,
    idempotency_key: IdempotencyKey = None,
):
    who = caller(router)
    order_id = checked_order_id(order_id)
    # Required, and checked like POST /orders: a retried reorder must not place a second order.
    key = validated_key(idempotency_key)
    ports = default_ports()
    original = order_service.get_order_for(ports, order_id, who.sub)
    body = body or ReorderIn()
    request = order_service.OrderRequest(
        items=[(line.sku, line.quantity) for line in original.lines],
        shipping_address=body.shipping_address.model_dump(exclude_none=True) if body.shipping_address
        else original.shipping_address,
        payment_provider=body.payment_provider or original.payment_provider,
        client_ip=router.current_event.request_context.identity.source_ip,
        presale=frozenset(line.sku for line in original.lines if line.presale_ships_on),
    )
    request = replace(request, phone_digest=phone_digest(request.shipping_address.get("phone")))
    settings = get_settings()
    fingerprint = order_service.request_fingerprint({"reorder_of": order_id, **body.model_dump()})
    placed = order_service.place_order(ports, order_service.PlaceOrder(who.sub, key, request, fingerprint),
                                       order_service.OrderPolicy.from_settings(settings), payment_details)
    if placed.replayed:
        return json_response(placed.status_code, placed.body, {"Idempotent-Replayed": "true"})
    return json_response(placed.status_code, placed.body, {"Location": f"/orders/{placed.order_id}"})


@router.post("/orders/<order_id>/confirm-receipt", summary="Confirm the goods arrived: SHIPPED or DELIVERED -> COMPLETED")
def confirm_receipt(order_id: str):
    who = caller(router)
    order = fulfilment.confirm_receipt(default_ports(), checked_order_id(order_id), customer_id=who.sub,
                                       actor=who.actor)
    return json_response(200, order_view(order))
