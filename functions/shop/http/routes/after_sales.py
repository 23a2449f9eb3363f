"""After-sales routes: customers open and follow requests on their orders; operators list and decide them."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Header, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from shop.adapters.wiring import default_ports
from shop.domain.after_sales import AfterSale, AfterSaleStatus, AfterSaleType, Windows
from shop.domain.errors import Unprocessable
from shop.domain.orders import Order
from shop.http.auth import AdminRouter, caller
from shop.http.routes.common import (
    DEFAULT_PAGE,
    checked_order_id,
    declared_query_only,
    json_response,
    page,
    validated_key,
)
from shop.http.schemas import AfterSaleIn, AfterSaleRejectIn
from shop.payments import registry
from shop.services import after_sales
from shop.services import orders as order_service
from shop.services.presenters import admin_after_sale_view, after_sale_view, customer_after_sales
from shop.settings import get_settings

router = APIGatewayRouter()  # customers (orders_api)
admin_router = AdminRouter()  # operators (admin_api): every route needs the admin group

Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=1024)]
MAX_ID_LENGTH = 64
_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_ID_LENGTH}}}")


def _request(body: AfterSaleIn) -> after_sales.NewRequest:
    settings = get_settings()
    if body.photos > settings.after_sales_max_photos:
        raise Unprocessable(f"at most {settings.after_sales_max_photos} photos per request",
                            {"fields": ["photos"], "maximum": settings.after_sales_max_photos})
    if body.photo_types is not None and len(body.photo_types) != body.photos:
        raise Unprocessable("photo_types names one content type per photo", {"fields": ["photo_types", "photos"]})
    lines = order_service.merge_lines([(line.sku, line.quantity) for line in body.lines])
    return after_sales.NewRequest(kind=AfterSaleType(body.type), lines=lines, reason=body.reason,
                                  photo_types=list(body.photo_types or ["image/jpeg"] * body.photos))


OptionalIdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key",
           description="Optional (1-255 printable characters, no '#'): a retry with the same key and body gets the "
                       "first request again (header Idempotent-Replayed: true), the same key with another body is "
                       "422; without a key every POST opens its own request."),
]


@router.post("/orders/<order_id>/after-sales",
             summary="Open an after-sales request (refund only, or return and refund) with evidence photo uploads")
def open_request(order_id: str, body: AfterSaleIn, idempotency_key: OptionalIdempotencyKey = None):
    who = caller(router)
    order_id = checked_order_id(order_id)
    # Optional (SPEC's after-sales contract names no header): with a key a retry opens no second request;
    # without one every POST opens its own, bounded by the units shipped and not yet claimed.
    key = validated_key(idempotency_key) if idempotency_key is not None else f"auto-{uuid.uuid4().hex}"
    settings = get_settings()
    opened = after_sales.open_request(
        default_ports(), order_id, customer_id=who.sub, key=key, request=_request(body),
        windows=Windows(settings.after_sales_days_after_delivery, settings.after_sales_days_after_shipment))
    headers = {"Location": f"/orders/{order_id}/after-sales"}
    if opened.replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(201, {**after_sale_view(opened.sale, opened.order, uploads=opened.uploads)}, headers)


@router.get("/orders/<order_id>/after-sales", summary="The after-sales requests of one of the caller's orders")
def list_for_order(order_id: str):
    who = caller(router)
    order = order_service.get_order_for(default_ports(), checked_order_id(order_id), who.sub)
    return json_response(200, page(customer_after_sales(order), None))


def _checked_id(after_sale_id: str) -> str:
    """An id from a path: 422 when it cannot be one (never echoed back); 404 when no such request exists."""
    if not _ID.fullmatch(after_sale_id):
        raise Unprocessable(f"after-sales request ids are 1-{MAX_ID_LENGTH} letters, digits, '_' or '-'",
                            {"fields": ["after_sale_id"]})
    return after_sale_id


def _admin_view(sale, order):
    ports = default_ports()
    urls = ports.evidence.view_urls(list(sale.photo_keys)) if ports.evidence and sale.photo_keys else None
    return admin_after_sale_view(sale, order, urls)


@admin_router.get("/admin/after-sales", summary="After-sales requests, newest first, by status")
def list_requests(status: Annotated[AfterSaleStatus | None, Query()] = None, limit: Limit = DEFAULT_PAGE,
                  cursor: Cursor = None):
    declared_query_only(admin_router, {"status", "limit", "cursor"})
    ports = default_ports()
    found, next_cursor = ports.store.after_sales(status=status.value if status else None, limit=limit, cursor=cursor)
    orders = {o.order_id: o for o in ports.store.orders_by_id(sorted({s.order_id for s in found}))} if found else {}
    return json_response(200, page([_admin_view(s, orders[s.order_id]) for s in found if s.order_id in orders],
                                   next_cursor))


@admin_router.get("/admin/after-sales/<after_sale_id>", summary="One after-sales request, with links to its photos")
def read_request(after_sale_id: str):
    ports = default_ports()
    sale = after_sales.get_request(ports, _checked_id(after_sale_id))
    return json_response(200, _admin_view(sale, order_service.get_order_for(ports, sale.order_id, None)))


def _decided(sale_and_order: tuple[AfterSale, Order]):
    """An operator's decision, answered with the request as operators see it."""
    sale, order = sale_and_order
    return json_response(200, _admin_view(sale, order))


@admin_router.post("/admin/after-sales/<after_sale_id>/approve",
                   summary="Approve: refund only refunds now; a return waits for the goods")
def approve(after_sale_id: str):
    actor = caller(admin_router).actor
    return _decided(after_sales.approve(default_ports(), registry.provider, _checked_id(after_sale_id), actor=actor))


@admin_router.post("/admin/after-sales/<after_sale_id>/reject", summary="Reject, with a reason the customer sees")
def reject(after_sale_id: str, body: AfterSaleRejectIn):
    actor = caller(admin_router).actor
    return _decided(after_sales.reject(default_ports(), _checked_id(after_sale_id), actor=actor, reason=body.reason))


@admin_router.post("/admin/after-sales/<after_sale_id>/received",
                   summary="The returned goods arrived: refund, and restock through the restock queue")
def received(after_sale_id: str):
    actor = caller(admin_router).actor
    return _decided(after_sales.receive(default_ports(), registry.provider, _checked_id(after_sale_id), actor=actor))
