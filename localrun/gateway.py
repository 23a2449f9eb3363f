"""API Gateway stand-in: turns an HTTP request into the REST API proxy event and back.

Routes come from shop.manifest.ROUTES, the same list CDK deploys. The authorizer is
emulated: `X-Local-User` and `X-Local-Groups` become the `sub` and `cognito:groups` claims.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from shop.http.cors import preflight_headers
from shop.http.problems import PROBLEM_JSON, problem_body
from shop.manifest import ROUTES, Route

LOCAL_HEADERS = {"x-local-user", "x-local-groups"}


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _pattern(path: str) -> re.Pattern[str]:
    regex = re.sub(r"\\\{(\w+)\\\}", lambda m: f"(?P<{m.group(1)}>[^/]+)", re.escape(path))
    return re.compile(f"^{regex}$")


_COMPILED = [(route, _pattern(route.path)) for route in ROUTES]


def match(method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
    """(route, path parameters, path exists with another method)."""
    path_known = False
    for route, pattern in _COMPILED:
        found = pattern.match(path)
        if found:
            path_known = True
            if route.method == method:
                return route, {k: unquote(v) for k, v in found.groupdict().items()}, True
    return None, {}, path_known


def problem(status: int, title: str, detail: str, slug: str | None = None) -> HttpResponse:
    """A problem+json answer of the stand-in itself, built as the functions build theirs (shop.http.problems)."""
    body = problem_body(status, slug, title, detail)
    return HttpResponse(status, [("Content-Type", PROBLEM_JSON)], json.dumps(body).encode())


def proxy_event(route: Route, params: dict[str, str], method: str, raw_path: str,
                headers: list[tuple[str, str]], body: bytes, source_ip: str) -> dict[str, Any]:
    parts = urlsplit(raw_path)
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    claims: dict[str, str] = {}
    for name, value in headers:
        if name.lower() == "x-local-user":
            claims["sub"] = value
        elif name.lower() == "x-local-groups":
            claims["cognito:groups"] = value
        else:
            single[name] = value
            multi.setdefault(name, []).append(value)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query_single = {k: v for k, v in query}
    query_multi: dict[str, list[str]] = {}
    for k, v in query:
        query_multi.setdefault(k, []).append(v)
    try:
        text, encoded = (body.decode("utf-8"), False) if body else (None, False)
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    context: dict[str, Any] = {
        "resourcePath": route.path,
        "httpMethod": method,
        "path": parts.path,
        "stage": "local",
        "requestId": str(uuid.uuid4()),
        "requestTimeEpoch": int(time.time() * 1000),
        "accountId": "123456789012",
        "apiId": "local",
        "protocol": "HTTP/1.1",
        "domainName": "127.0.0.1",
        "identity": {"sourceIp": source_ip, "userAgent": single.get("User-Agent", "")},
    }
    if claims.get("sub") and route.auth in ("customer", "admin"):
        context["authorizer"] = {"claims": claims}
    return {
        "resource": route.path,
        "path": parts.path,
        "httpMethod": method,
        "headers": single,
        "multiValueHeaders": multi,
        "queryStringParameters": query_single or None,
        "multiValueQueryStringParameters": query_multi or None,
        "pathParameters": params or None,
        "stageVariables": None,
        "requestContext": context,
        "body": text,
        "isBase64Encoded": encoded,
    }


def to_http(result: dict[str, Any]) -> HttpResponse:
    if "__function_error__" in result or "statusCode" not in result:
        # What API Gateway answers when the integration fails; the detail stays in the server log.
        if result.get("__crashed__"):  # the instance died or timed out and is being replaced: retry soon
            failed = problem(502, "Bad Gateway", "the function's process died and is being replaced; retry")
            return HttpResponse(502, [*failed.headers, ("Retry-After", "1")], failed.body)
        return problem(502, "Bad Gateway", "the function failed; see the server log")
    headers: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, values in (result.get("multiValueHeaders") or {}).items():
        for value in values:
            headers.append((name, str(value)))
        seen.add(name.lower())
    for name, value in (result.get("headers") or {}).items():
        if name.lower() not in seen:
            headers.append((name, str(value)))
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    return HttpResponse(int(result["statusCode"]), headers, raw)


Invoke = Callable[[str, dict[str, Any]], dict[str, Any]]


def handle(invoke: Invoke, method: str, raw_path: str, headers: list[tuple[str, str]], body: bytes,
           source_ip: str) -> HttpResponse:
    path = urlsplit(raw_path).path
    route, params, path_known = match(method, path)
    if method == "OPTIONS" and path_known:  # the preflight: API Gateway answers it without a function
        preflight = preflight_headers(next((v for k, v in headers if k.lower() == "origin"), None))
        if preflight is not None:
            return HttpResponse(204, preflight, b"")
    if route is None:
        if path_known:
            return problem(405, "Method Not Allowed", f"{method} is not supported on {path}")
        return problem(404, "Not Found", f"no route for {method} {path}")
    event = proxy_event(route, params, method, raw_path, headers, body, source_ip)
    return to_http(invoke(route.function, event))
