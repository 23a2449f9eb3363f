"""The OpenAPI document of the whole API, generated from every function's routes.

Powertools derives paths, parameters and request bodies from the routes; this module adds
what it cannot know: our response bodies and the problem+json error responses.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from pydantic import BaseModel

from shop.http import responses as r
from shop.http.app import API_TITLE, API_VERSION, create_app
from shop.http.problems import PROBLEM_JSON
from shop.http.routes import (
    admin,
    after_sales,
    carts,
    catalog,
    create_order,
    me,
    orders,
    presale,
    stock_ops,
    warehouses,
)

# (method, path) -> (success status, response model)
SUCCESS: dict[tuple[str, str], tuple[int, type[BaseModel]]] = {
    ("get", "/skus/{sku}"): (200, r.SkuOut),
    ("post", "/orders"): (201, r.OrderOut),
    ("get", "/orders"): (200, r.OrderPage),
    ("get", "/orders/{order_id}"): (200, r.OrderOut),
    ("post", "/orders/{order_id}/cancel"): (200, r.OrderOut),
    ("post", "/orders/{order_id}/reorder"): (201, r.OrderOut),
    ("post", "/orders/{order_id}/confirm-receipt"): (200, r.OrderOut),
    ("put", "/admin/skus/{sku}"): (200, r.AdminSkuOut),
    ("get", "/admin/skus/{sku}"): (200, r.AdminSkuOut),
    ("post", "/admin/skus/{sku}/adjustments"): (201, r.AdjustmentOut),
    ("get", "/admin/skus/{sku}/ledger"): (200, r.LedgerPage),
    ("get", "/admin/skus/{sku}/backorders"): (200, r.BackorderWaitingOut),
    ("get", "/admin/orders"): (200, r.AdminOrderPage),
    ("get", "/admin/orders.csv"): (200, r.OrdersCsv),
    ("get", "/admin/skus"): (200, r.AdminSkuPage),
    ("post", "/admin/imports/skus"): (200, r.ImportOut),
    ("get", "/admin/skus.csv"): (200, r.SkusCsv),
    ("get", "/admin/stock.csv"): (200, r.StockCsv),
    ("get", "/admin/ledger.csv"): (200, r.LedgerCsv),
    ("post", "/admin/orders/{order_id}/cancel"): (200, r.AdminOrderOut),
    ("post", "/admin/orders/{order_id}/refunds"): (201, r.AdminOrderOut),
    ("post", "/admin/orders/{order_id}/shipments"): (201, r.AdminOrderOut),
    ("post", "/admin/orders/{order_id}/approve"): (200, r.AdminOrderOut),
    ("post", "/admin/orders/{order_id}/reject"): (200, r.AdminOrderOut),
    ("get", "/admin/reconciliation/{date}"): (200, r.ReconciliationOut),
    ("post", "/orders/{order_id}/after-sales"): (201, r.AfterSaleOut),
    ("get", "/orders/{order_id}/after-sales"): (200, r.AfterSalePage),
    ("get", "/admin/after-sales"): (200, r.AdminAfterSalePage),
    ("get", "/admin/after-sales/{after_sale_id}"): (200, r.AdminAfterSaleOut),
    ("post", "/admin/after-sales/{after_sale_id}/approve"): (200, r.AdminAfterSaleOut),
    ("post", "/admin/after-sales/{after_sale_id}/reject"): (200, r.AdminAfterSaleOut),
    ("post", "/admin/after-sales/{after_sale_id}/received"): (200, r.AdminAfterSaleOut),
    ("get", "/me/notifications"): (200, r.NotificationPage),
    ("get", "/me/notification-preferences"): (200, r.NotificationPreferencesOut),
    ("put", "/me/notification-preferences"): (200, r.NotificationPreferencesOut),
    ("put", "/admin/warehouses/{code}"): (200, r.WarehouseOut),
    ("get", "/admin/warehouses"): (200, r.WarehouseList),
    ("put", "/admin/skus/{sku}/presale"): (200, r.AdminSkuOut),
    ("post", "/admin/skus/{sku}/presale/release"): (201, r.PresaleReleaseOut),
    ("put", "/admin/skus/{sku}/virtual"): (200, r.AdminSkuOut),
    ("post", "/admin/skus/{sku}/stock-moves"): (201, r.StockMoveOut),
    ("post", "/admin/skus/{sku}/incoming"): (201, r.StockDocumentOut),
    ("get", "/admin/skus/{sku}/incoming"): (200, r.StockDocumentList),
    ("get", "/admin/deliveries/{delivery_id}"): (200, r.StockDocumentOut),
    ("post", "/admin/deliveries/{delivery_id}/receive"): (200, r.StockDocumentOut),
    ("post", "/admin/transfers"): (201, r.StockDocumentOut),
    ("get", "/admin/transfers/{transfer_id}"): (200, r.StockDocumentOut),
    ("post", "/admin/transfers/{transfer_id}/receive"): (200, r.StockDocumentOut),
    ("post", "/admin/counts"): (201, r.StockDocumentOut),
    ("get", "/admin/counts/{count_id}"): (200, r.StockDocumentOut),
    ("post", "/admin/counts/{count_id}/approve"): (200, r.StockDocumentOut),
    ("post", "/carts/{cart_id}/holds"): (201, r.CartHoldOut),
    ("get", "/carts/{cart_id}/holds"): (200, r.CartHoldOut),
    ("delete", "/carts/{cart_id}/holds"): (200, r.CartHoldOut),
}
# Success bodies that are not JSON.
CONTENT_TYPES = {("get", "/admin/orders.csv"): "text/csv", ("get", "/admin/skus.csv"): "text/csv",
                 ("get", "/admin/stock.csv"): "text/csv", ("get", "/admin/ledger.csv"): "text/csv"}
# Request bodies that are files, not JSON (Powertools sees no body parameter on their routes).
FILE_BODIES = {("post", "/admin/imports/skus"): (
    "text/csv", "A header row (sku required; name, price, currency required for new SKUs; warehouse, active, "
                "stock_policy, low_stock_threshold, max_per_order, payment_window_seconds, stock_shards, on_hand "
                "optional), one SKU and warehouse per row (docs/inventory.md)")}
# 201 when created, 200 when it existed (a replaced SKU, a retried shipment)
ALSO_OK = {("put", "/admin/skus/{sku}"), ("post", "/admin/orders/{order_id}/shipments"),
           ("put", "/admin/warehouses/{code}"), ("post", "/admin/skus/{sku}/incoming"), ("post", "/admin/transfers"),
           ("post", "/admin/counts"), ("post", "/carts/{cart_id}/holds")}
ERRORS = {400: "Bad request", 401: "Not signed in", 403: "Not allowed", 404: "Not found", 409: "Conflict",
          413: "Payload too large", 415: "Unsupported media type", 422: "Invalid request", 502: "Payment provider error",
          503: "Busy or provider unavailable, retry"}


def _schema_ref(model: type[BaseModel], components: dict[str, Any]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def document_responses(doc: dict[str, Any]) -> dict[str, Any]:
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    problem = _schema_ref(r.Problem, components)
    for path, operations in doc.get("paths", {}).items():
        for method, operation in operations.items():
            documented: dict[str, Any] = {}
            if (method, path) in SUCCESS:
                status, model = SUCCESS[(method, path)]
                content_type = CONTENT_TYPES.get((method, path), "application/json")
                ok = {"description": "OK", "content": {content_type: {"schema": _schema_ref(model, components)}}}
                documented[str(status)] = ok
                if (method, path) in ALSO_OK:
                    documented["201" if status == 200 else "200"] = ok
            for status, description in ERRORS.items():
                documented[str(status)] = {"description": description,
                                           "content": {PROBLEM_JSON: {"schema": problem}}}
            operation["responses"] = documented
            if (method, path) in FILE_BODIES:
                media_type, description = FILE_BODIES[(method, path)]
                operation["requestBody"] = {"required": True, "description": description,
                                            "content": {media_type: {"schema": {"type": "string"}}}}
    # Powertools' own validation error shapes: our errors are problem+json, and nothing refers to these.
    for unused in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        components.pop(unused, None)
    return doc


@lru_cache(maxsize=1)
def openapi_json() -> str:
    # Webhook routes carry provider-specific raw bodies and are documented in the README instead.
    everything = create_app(catalog.router, create_order.router, orders.router, after_sales.router, me.router,
                            admin.router, after_sales.admin_router, warehouses.router, presale.router,
                            stock_ops.router, carts.router)
    generated = json.loads(everything.get_openapi_json_schema(
        title=API_TITLE,
        version=API_VERSION,
        description="Orders, payments and inventory. Errors are application/problem+json (RFC 9457).",
    ))
    return json.dumps(document_responses(generated), separators=(",", ":"))
