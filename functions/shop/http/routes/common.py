"""Small helpers shared by the routers."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Header

from shop.domain.errors import Unprocessable
from shop.domain.skus import is_valid_sku_code
from shop.settings import get_settings

DEFAULT_PAGE = 20
# Real order ids are "ord_" + 26 base32 characters (shop/domain/ids.py); anything longer, or with other
# characters, is not an id and never reaches DynamoDB (an oversized key is a ValidationException there).
MAX_ORDER_ID_LENGTH = 64
_ORDER_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_ORDER_ID_LENGTH}}}")

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key",
           description="Required. A unique key per intended order (1-255 printable characters, no '#'): a retry "
                       "with the same key and body gets the first answer again (header Idempotent-Replayed: "
                       "true), the same key with another body is 422, no key is 400."),
]


class _MissingKey(Unprocessable):
    status, slug, title = 400, "idempotency-key-missing", "Idempotency-Key header missing"


def validated_key(key: str | None) -> str:
    """The Idempotency-Key of a request that creates an order: required, 1-255 printable characters, no '#'."""
    if key is None or not key.strip():
        raise _MissingKey("the Idempotency-Key header is required")
    if len(key) > 255 or not key.isprintable() or "#" in key:
        raise Unprocessable("Idempotency-Key must be 1-255 printable characters without '#'",
                            {"fields": ["Idempotency-Key"]})
    return key


def checked_order_id(order_id: str) -> str:
    """An order id from a path: 422 when it cannot be one (never echoed back)."""
    if not isinstance(order_id, str) or not _ORDER_ID.fullmatch(order_id):
        raise Unprocessable(f"order ids are 1-{MAX_ORDER_ID_LENGTH} letters, digits, '_' or '-'",
                            {"fields": ["order_id"]})
    return order_id


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON,
                    body=json.dumps(body, separators=(",", ":")), headers=headers or {})


def page(items: list[Any], next_cursor: str | None) -> dict[str, Any]:
    return {"items": items, "next_cursor": next_cursor}


def checked_window(seconds: int | None) -> int | None:
    """A payment window asked for by a request or a SKU: refused (not silently cut) beyond the maximum."""
    maximum = get_settings().max_payment_window_seconds
    if seconds is not None and seconds > maximum:
        raise Unprocessable(f"payment_window_seconds must be at most {maximum}",
                            {"fields": ["payment_window_seconds"], "maximum": maximum})
    return seconds


def checked_sku(code: str) -> str:
    if not is_valid_sku_code(code):
        raise Unprocessable("SKU codes are 1-64 letters, digits, '.', '_' or '-'", {"fields": ["sku"]})
    return code


# Order numbers as issued (e.g. 20261123-7F3K-Q9XD2M), matched case-insensitively.
ORDER_NUMBER_PATTERN = r"^[A-Za-z0-9-]{1,40}$"


def declared_query_only(router: Any, declared: set[str]) -> None:
    """A list's filters are exactly the query parameters its route declares (`declared`, the names in
    its signature): any other one (a misspelt filter, a filter this list does not have) is 422 naming
    it, never silently ignored; so is a declared one given twice (`?status=PAID&status=SHIPPED` would
    otherwise keep one of them). (Explicit names: the router may be included in several resolvers, e.g.
    the OpenAPI document's, so the matched route is not reliably known from it.)"""
    event = router.current_event
    multi = event.multi_value_query_string_parameters or {}
    names = set(multi) | set(event.query_string_parameters or {})
    # Named back (it is the point), but bounded: at most 10 names of 64 characters, unprintable ones replaced.
    unknown = sorted(name[:64] if name[:64].isprintable() else "(unprintable name)" for name in names - declared)[:10]
    if unknown:
        raise Unprocessable(f"unknown query parameter: {', '.join(unknown)} (this list accepts: "
                            f"{', '.join(sorted(declared))})", {"fields": unknown, "allowed": sorted(declared)})
    repeated = sorted(name for name, values in multi.items() if len(values) > 1)
    if repeated:
        raise Unprocessable(f"query parameter given more than once: {', '.join(repeated)}", {"fields": repeated})
