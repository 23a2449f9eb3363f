"""RFC 9457 problem details. Clients never see a stack trace."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import Response

PROBLEM_JSON = "application/problem+json"


def problem(status: int, slug: str, title: str, detail: str, headers: dict[str, str] | None = None,
            extra: dict[str, Any] | None = None) -> Response:
    """Extension members (offending fields, SKUs...) never override the standard ones."""
    body = {**(extra or {}), "type": f"/problems/{slug}", "title": title, "status": status, "detail": detail}
    return Response(
        status_code=status,
        content_type=PROBLEM_JSON,
        body=json.dumps(body, separators=(",", ":"), default=str),
        headers=headers or {},
    )


def problem_response(status: int, slug: str, title: str, detail: str) -> dict[str, Any]:
    """A problem as a finished API Gateway proxy response, for use outside a resolver."""
    body = {"type": f"/problems/{slug}", "title": title, "status": status, "detail": detail}
    return {
        "statusCode": status,
        "headers": {"Content-Type": PROBLEM_JSON},
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
    }
