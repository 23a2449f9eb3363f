"""Small helpers shared by the routers."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types

from shop.domain.errors import Unprocessable
from shop.domain.skus import is_valid_sku_code

DEFAULT_PAGE = 20


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON,
                    body=json.dumps(body, separators=(",", ":")), headers=headers or {})


def page(items: list[Any], next_cursor: str | None) -> dict[str, Any]:
    return {"items": items, "next_cursor": next_cursor}


def checked_sku(code: str) -> str:
    if not is_valid_sku_code(code):
        raise Unprocessable("SKU codes are 1-64 letters, digits, '.', '_' or '-'", {"fields": ["sku"]})
    return code
