"""Small helpers shared by the routers."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types

from shop.domain.errors import Unprocessable
from shop.domain.skus import is_valid_sku_code
from shop.settings import get_settings

DEFAULT_PAGE = 20


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
