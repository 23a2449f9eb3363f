"""Operator routes (group admin): SKUs, stock adjustments, the ledger, orders, reconciliation."""

from __future__ import annotations

import time
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Header, Query

from shop.adapters.phones import MIN_DIGITS, phone_digest
from shop.adapters.wiring import default_ports
from shop.domain import clock
from shop.domain.errors import DomainError, Unprocessable
from shop.domain.money import Money
from shop.domain.orders import OrderStatus
from shop.domain.skus import SKU_PATTERN
from shop.http import imports
from shop.http.app import raw_body
from shop.http.auth import AdminRouter, caller
from shop.http.routes.common import (
    DEFAULT_PAGE,
    ORDER_NUMBER_PATTERN,
    checked_order_id,
    checked_sku,
    checked_window,
    declared_query_only,
    json_response,
    page,
)
from shop.http.schemas import AdjustmentIn, RefundIn, ShipmentIn, SkuIn
from shop.payments import registry
from shop.services import backorders, catalog, exports, finding, fulfilment, payments, pools
from shop.services import imports as import_service
from shop.services import orders as order_service
from shop.services import warehouses as warehouse_service
from shop.services.presenters import admin_order_view, admin_sku_view, movement_view
from shop.settings import get_settings

router = AdminRouter()  # every route here needs the admin group

Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=1024)]
# A date or an ISO 8601 UTC time; compared with created_at as text, which sorts chronologically.
# A time may carry Z or an offset (+08:00; a '+' sent unencoded arrives as a space and is read as '+').
ISO_TIME = (r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
            r"(T([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?(Z|[+ -]([01]\d|2[0-3]):[0-5]\d)?)?$")
IsoTime = Annotated[str | None, Query(pattern=ISO_TIME)]
PHONE_PATTERN = r"^[0-9+() .-]{1,32}$"


class UnsupportedMediaType(DomainError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


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
        backorder_limit=body.backorder_limit,
    )
    ports = default_ports()
    saved, created = catalog.upsert_sku(ports, checked_sku(sku), details, actor=who.actor)
    return json_response(201 if created else 200, admin_sku_view(saved, ports.store.get_warehouses(cached=True)))


@router.post("/admin/skus/<sku>/adjustments", summary="Change on_hand by delta, with a reason")
def adjust(sku: str, body: AdjustmentIn,
           idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None):
    who = caller(router)  # admin: the router requires it for every route
    request_id = order_service.request_fingerprint([who.sub, idempotency_key]) if idempotency_key else None
    ports = default_ports()
    saved, movements = catalog.adjust_stock(ports, checked_sku(sku), body.delta, reason=body.reason,
                                           actor=who.actor, request_id=request_id, warehouse=body.warehouse)
    registry = ports.store.get_warehouses()
    entries = [movement_view(m, registry) for m in movements]
    return json_response(201, {"sku": admin_sku_view(saved, registry), "ledger_entry": entries[0],
                               "ledger_entries": entries})


@router.get("/admin/skus/<sku>", summary="A SKU with its stock levels, per warehouse and per shard")
def read_sku(sku: str):
    ports = default_ports()
    found = pools.with_today(ports, catalog.get_sku(ports, checked_sku(sku)), get_settings().shop_time_zone)
    return json_response(200, admin_sku_view(found, ports.store.get_warehouses()))


@router.get("/admin/skus/<sku>/ledger", summary="The SKU's stock movements, oldest first")
def ledger(sku: str, limit: Limit = DEFAULT_PAGE, cursor: Cursor = None):
    declared_query_only(router, {"limit", "cursor"})
    ports = default_ports()
    catalog.get_sku(ports, checked_sku(sku))
    entries, next_cursor = ports.store.ledger(sku, limit, cursor)
    registry = ports.store.get_warehouses(cached=True)
    return json_response(200, page([movement_view(e, registry) for e in entries], next_cursor))


@router.get("/admin/skus/<sku>/backorders", summary="The orders waiting for the SKU's backordered units, first come "
                                                    "first (the order they will be filled in)")
def waiting_backorders(sku: str, limit: Limit = DEFAULT_PAGE):
    declared_query_only(router, {"limit"})
    ports = default_ports()
    found = catalog.get_sku(ports, checked_sku(sku))
    waiting = backorders.waiting(ports, found)
    return json_response(200, {
        "sku": found.sku, "backorder_limit": found.backorder_limit, "waiting_orders": len(waiting),
        "waiting_units": sum(order.units for order in waiting),
        "items": [{"order_id": order.order_id, "units": order.units, "backordered_at": order.since}
                  for order in waiting[:limit]]})


# The filters of the operators' order list and CSV export (combine freely; each answered by an index).
StatusFilter = Annotated[OrderStatus | None, Query(description="Only orders in this status")]
CustomerFilter = Annotated[str | None, Query(min_length=1, max_length=128, description="The customer's id (sub)")]
FromFilter = Annotated[str | None, Query(alias="from", pattern=ISO_TIME,
                                         description="Created at or after (ISO 8601 date, or time with Z or an offset)")]
ToFilter = Annotated[str | None, Query(alias="to", pattern=ISO_TIME,
                                       description="Created at or before (a date: that whole day; a time "
                                                   "to the precision given: 10:30 is the whole minute)")]
OrderNumberFilter = Annotated[str | None, Query(pattern=ORDER_NUMBER_PATTERN, description="The order with this number")]
PhoneFilter = Annotated[str | None, Query(
    pattern=PHONE_PATTERN, description="The shipping phone (matched on its last 9 digits, through a keyed digest: "
                                       "no phone number is stored in an index key)")]
ORDER_FILTERS = {"status", "customer", "from", "to", "order_number", "phone"}


def _filters(status: OrderStatus | None, customer: str | None, created_from: str | None, created_to: str | None,
             order_number: str | None, phone: str | None) -> finding.OrderFilters:
    digest = phone_digest(phone) if phone else None
    if phone and digest is None:
        raise Unprocessable(f"phone must have at least {MIN_DIGITS} digits", {"fields": ["phone"]})
    return finding.OrderFilters(status=status, customer_id=customer, created_from=created_from,
                                created_to=created_to, order_number=order_number, phone_digest=digest)


@router.get("/admin/orders", summary="Orders, newest first, filtered (status, customer, from, to, order_number, phone)")
def list_orders(
    status: StatusFilter = None,
    customer: CustomerFilter = None,
    created_from: FromFilter = None,
    created_to: ToFilter = None,
    order_number: OrderNumberFilter = None,
    phone: PhoneFilter = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
):
    declared_query_only(router, ORDER_FILTERS | {"limit", "cursor"})
    filters = _filters(status, customer, created_from, created_to, order_number, phone)
    found, next_cursor = finding.find_orders(default_ports(), filters, limit, cursor)
    return json_response(200, page([admin_order_view(o) for o in found], next_cursor))


@router.get("/admin/orders.csv", summary="The filtered orders as CSV (same filters; at most CSV_EXPORT_MAX_ROWS rows)")
def export_orders(
    status: StatusFilter = None,
    customer: CustomerFilter = None,
    created_from: FromFilter = None,
    created_to: ToFilter = None,
    order_number: OrderNumberFilter = None,
    phone: PhoneFilter = None,
):
    declared_query_only(router, ORDER_FILTERS)
    filters = _filters(status, customer, created_from, created_to, order_number, phone)
    return csv_response("orders", finding.export_orders_csv(default_ports(), filters, get_settings().csv_export_max_rows))


def csv_response(name: str, export: finding.CsvExport) -> Response:
    """An export as an attachment named `{name}-{UTC time}.csv`, with its row count and whether it was cut."""
    stamp = clock.iso(clock.now()).replace(":", "").replace("-", "")[:15]
    return Response(status_code=200, content_type="text/csv; charset=utf-8", body=export.text, headers={
        "Content-Disposition": f'attachment; filename="{name}-{stamp}.csv"',
        "X-Export-Rows": str(export.rows),
        "X-Export-Truncated": "true" if export.truncated else "false",
        "Cache-Control": "no-store",
    })


# ---- CSV import and exports of the catalog, stock and ledger (docs/inventory.md) ----

CSV_TYPES = ("text/csv", "application/csv", "text/plain")
IMPORT_TIME_BUDGET_SECONDS = 12.0  # of the function's 20 s: rows left are `pending`, and posting the file again


@router.post("/admin/imports/skus",
             summary="Import SKUs and stock levels from a CSV file (text/csv body, at most 1 MiB and 5,000 rows): "
                     "validated whole first, then applied row by row, once per file")
def import_skus(idempotency_key: Annotated[str | None, Header(
        alias="Idempotency-Key", max_length=200,
        description="Optional: the same bytes with a new key are applied again (without: once per file)")] = None):
    who = caller(router)  # admin: the router requires it for every route
    event = router.current_event
    media_type = (event.headers.get("content-type") or "").split(";")[0].strip().lower()
    if media_type not in CSV_TYPES:
        raise UnsupportedMediaType(f"send the file as text/csv (got {media_type[:64] or 'no Content-Type'})")
    data = raw_body(event)
    if data is None:
        raise Unprocessable("the body is not text", {"fields": ["body"]})
    ports = default_ports()
    rows = imports.read_rows(data, max_window=get_settings().max_payment_window_seconds,
                             existing=ports.store.get_catalog,
                             warehouses={w.code for w in warehouse_service.list_warehouses(ports)})
    report = import_service.apply_rows(ports, imports.file_id(data, idempotency_key), rows, actor=who.actor,
                                       deadline=time.monotonic() + IMPORT_TIME_BUDGET_SECONDS)
    return json_response(200, report.to_dict())


@router.get("/admin/skus.csv", summary="Every SKU with its terms and stock levels as CSV (importable back)")
def export_skus():
    declared_query_only(router, set())
    return csv_response("skus", exports.skus_csv(default_ports(), get_settings().csv_export_max_rows))


@router.get("/admin/stock.csv", summary="Every SKU's stock levels as CSV")
def export_stock():
    declared_query_only(router, set())
    return csv_response("stock", exports.stock_csv(default_ports(), get_settings().csv_export_max_rows))


@router.get("/admin/ledger.csv", summary="Ledger entries of a date range (one SKU or all) as CSV, oldest first per SKU")
def export_ledger(
    sku: Annotated[str | None, Query(pattern=SKU_PATTERN, description="Only this SKU's entries")] = None,
    created_from: Annotated[str | None, Query(alias="from", pattern=ISO_TIME,
                                              description="Entries at or after (ISO 8601 date, or time)")] = None,
    created_to: Annotated[str | None, Query(alias="to", pattern=ISO_TIME,
                                            description="Entries at or before (a date: that whole day)")] = None,
):
    declared_query_only(router, {"sku", "from", "to"})
    ports = default_ports()
    if sku:
        catalog.get_sku(ports, sku)
    export = exports.ledger_csv(ports, sku, created_from, created_to, get_settings().csv_export_max_rows)
    return csv_response(f"ledger-{sku}" if sku else "ledger", export)


@router.get("/admin/skus", summary="SKUs by code with their stock levels; low_stock=true: at or below threshold or sold out")
def list_skus(
    low_stock: Annotated[bool | None, Query(description="true: low-stock and sold-out SKUs; false: the others")] = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
):
    declared_query_only(router, {"low_stock", "limit", "cursor"})
    states = None if low_stock is None else finding.LOW_STOCK_STATES if low_stock else finding.IN_STOCK_STATES
    found, next_cursor = default_ports().store.skus(states=states, limit=limit, cursor=cursor)
    registry = default_ports().store.get_warehouses(cached=True)
    return json_response(200, page([admin_sku_view(s, registry) for s in found], next_cursor))


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
                                           tracking_number=body.tracking_number, key=key, actor=who.actor,
                                           carrier_code=body.carrier_code, warehouse=body.warehouse)
    shipment_id = fulfilment.shipment_id_for(order_id, key)
    view = admin_order_view(order)
    shipment = next(s for s in view["shipments"] if s["shipment_id"] == shipment_id)
    return json_response(201 if created else 200, {**view, "shipment": shipment})


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
