"""The OpenAPI document of the whole API, generated from every function's routes."""

from __future__ import annotations

from functools import lru_cache

from shop.http.app import API_TITLE, API_VERSION, create_app
from shop.http.routes import admin, catalog, create_order, orders


@lru_cache(maxsize=1)
def openapi_json() -> str:
    # Webhook routes carry provider-specific raw bodies and are documented in the README instead.
    everything = create_app(catalog.router, create_order.router, orders.router, admin.router)
    return everything.get_openapi_json_schema(
        title=API_TITLE,
        version=API_VERSION,
        description="Orders, payments and inventory. Errors are application/problem+json (RFC 9457).",
    )
