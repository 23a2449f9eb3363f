"""Operator routes (group admin): moves between stock states, expected deliveries, transfers, physical counts
(docs/stock-operations.md)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Header

from shop.adapters.wiring import default_ports
from shop.domain.errors import Unprocessable
from shop.domain.stock_documents import DOCUMENT_ID_PATTERN, DocumentKind, StockDocument, state_named
from shop.http.auth import AdminRouter, caller
from shop.http.routes.common import checked_sku, json_response
from shop.http.schemas import CountIn, DeliveryIn, DeliveryReceiptIn, StockMoveIn, TransferIn
from shop.services import orders as order_service
from shop.services import stock_ops
from shop.services.presenters import admin_sku_view, movement_view

router = AdminRouter()  # every route here needs the admin group

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
_DOCUMENT_ID = re.compile(DOCUMENT_ID_PATTERN)
_INTERNAL = {"warehouse_index", "from_index", "to_index"}  # item numbering, not for operators


def document_view(document: StockDocument) -> dict[str, Any]:
    return {"id": document.doc_id, "kind": document.kind.value, "status": document.status,
            **{k: v for k, v in document.body.items() if k not in _INTERNAL},
            "created_at": document.created_at, "updated_at": document.updated_at, "created_by": document.actor}


def _request_id(what: str, key: str | None) -> str | None:
    """Keyed per operator and kind of request: the same key sent again is the same request."""
    return order_service.request_fingerprint([caller(router).sub, what, key]) if key else None


def _checked_id(kind: DocumentKind, doc_id: str) -> str:
    if not _DOCUMENT_ID.fullmatch(doc_id) or not doc_id.startswith(stock_ops.ID_PREFIX[kind]):
        raise Unprocessable(f"not a {kind.value} id", {"fields": [f"{kind.value}_id"]})
    return doc_id


def _document_response(document: StockDocument, created: bool = False):
    return json_response(201 if created else 200, document_view(document))


def _read(kind: DocumentKind, doc_id: str):
    return _document_response(stock_ops.get_document(default_ports(), kind, _checked_id(kind, doc_id)))


@router.post("/admin/skus/<sku>/stock-moves", summary="Move available units between stock states of a warehouse")
def move_stock(sku: str, body: StockMoveIn, idempotency_key: IdempotencyKey = None):
    who = caller(router)
    ports = default_ports()
    saved, movements = stock_ops.move_state(
        ports, checked_sku(sku), warehouse=body.warehouse, from_state=state_named(body.from_state),
        to_state=state_named(body.to_state), quantity=body.quantity, reason=body.reason, reference=body.reference,
        actor=who.actor, request_id=_request_id("stock-move", idempotency_key))
    registry = ports.store.get_warehouses(cached=True)
    return json_response(201, {"sku": admin_sku_view(saved, registry),
                               "ledger_entries": [movement_view(m, registry) for m in movements]})


@router.post("/admin/skus/<sku>/incoming", summary="Record units expected in a warehouse on a date (not sellable)")
def expect_delivery(sku: str, body: DeliveryIn, idempotency_key: IdempotencyKey = None):
    who = caller(router)
    document, created = stock_ops.expect_delivery(
        default_ports(), checked_sku(sku), warehouse=body.warehouse, quantity=body.quantity,
        expected_on=body.expected_on, reference=body.reference, actor=who.actor,
        request_id=_request_id("delivery", idempotency_key))
    return _document_response(document, created)


@router.get("/admin/skus/<sku>/incoming", summary="The SKU's expected deliveries not yet received, by date")
def list_deliveries(sku: str):
    found = stock_ops.open_deliveries(default_ports(), checked_sku(sku))
    return json_response(200, {"items": [document_view(d) for d in found]})


@router.get("/admin/deliveries/<delivery_id>", summary="An expected delivery")
def read_delivery(delivery_id: str):
    return _read(DocumentKind.DELIVERY, delivery_id)


@router.post("/admin/deliveries/<delivery_id>/receive",
             summary="Receive a delivery: its units become sellable (or quality hold); once")
def receive_delivery(delivery_id: str, body: DeliveryReceiptIn):
    who = caller(router)
    return _document_response(stock_ops.receive_delivery(
        default_ports(), _checked_id(DocumentKind.DELIVERY, delivery_id), received=body.received,
        into=state_named(body.to_state), actor=who.actor))


@router.post("/admin/transfers", summary="Dispatch units from one warehouse to another (in transit until received)")
def dispatch_transfer(body: TransferIn, idempotency_key: IdempotencyKey = None):
    who = caller(router)
    document, created = stock_ops.dispatch_transfer(
        default_ports(), from_warehouse=body.from_warehouse, to_warehouse=body.to_warehouse,
        lines=[(line.sku, line.quantity) for line in body.lines], reference=body.reference, actor=who.actor,
        request_id=_request_id("transfer", idempotency_key))
    return _document_response(document, created)


@router.get("/admin/transfers/<transfer_id>", summary="A transfer")
def read_transfer(transfer_id: str):
    return _read(DocumentKind.TRANSFER, transfer_id)


@router.post("/admin/transfers/<transfer_id>/receive", summary="Receive a transfer at its destination; once")
def receive_transfer(transfer_id: str):
    who = caller(router)
    return _document_response(stock_ops.receive_transfer(
        default_ports(), _checked_id(DocumentKind.TRANSFER, transfer_id), actor=who.actor))


@router.post("/admin/counts", summary="Record a physical count (a draft: nothing moves until approved)")
def create_count(body: CountIn, idempotency_key: IdempotencyKey = None):
    who = caller(router)
    document, created = stock_ops.create_count(
        default_ports(), lines=[(line.sku, line.warehouse, line.counted) for line in body.lines],
        reference=body.reference, actor=who.actor, request_id=_request_id("count", idempotency_key))
    return _document_response(document, created)


@router.get("/admin/counts/<count_id>", summary="A physical count")
def read_count(count_id: str):
    return _read(DocumentKind.COUNT, count_id)


@router.post("/admin/counts/<count_id>/approve",
             summary="Approve a count: its differences become ledgered adjustments; once")
def approve_count(count_id: str):
    who = caller(router)
    return _document_response(stock_ops.approve_count(
        default_ports(), _checked_id(DocumentKind.COUNT, count_id), actor=who.actor))
