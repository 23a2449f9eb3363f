"""RFC 9457 problem details. Clients never see a stack trace."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import Response

PROBLEM_JSON = "application/problem+json"


def problem_body(status: int, slug: str | None, title: str, detail: str,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """RFC 9457 members; `slug` None: `about:blank` (the HTTP status says it all). Extension members (offending
    fields, SKUs...) never override the standard ones. The local run's API Gateway stand-in answers with it too."""
    kind = f"/problems/{slug}" if slug else "about:blank"
    return {**(extra or {}), "type": kind, "title": title, "status": status, "detail": detail}


def problem(status: int, slug: str, title: str, detail: str, headers: dict[str, str] | None = None,
            extra: dict[str, Any] | None = None) -> Response:
    body = problem_body(status, slug, title, detail, extra)
    return Response(
        status_code=status,
        content_type=PROBLEM_JSON,
        body=json.dumps(body, separators=(",", ":"), default=str),
        headers=headers or {},
    )


def problem_response(status: int, slug: str, title: str, detail: str) -> dict[str, Any]:
    """A problem as a finished API Gateway proxy response, for use outside a resolver."""
    body = problem_body(status, slug, title, detail)
    return {
        "statusCode": status,
        "headers": {"Content-Type": PROBLEM_JSON},
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
    }
