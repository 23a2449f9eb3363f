"""A Powertools resolver with the project's error mapping, logging, metrics and size limits."""

from __future__ import annotations

import base64
import json
import math
import random
import threading
from collections.abc import Callable
from typing import Any, cast

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.router import Router
from aws_lambda_powertools.logging import correlation_paths
from botocore.exceptions import BotoCoreError, ClientError

from shop.domain.errors import DomainError
from shop.http.auth import access_denied
from shop.http.cors import cors_config
from shop.http.problems import problem, problem_response
from shop.manifest import ROUTES
from shop.payments.base import ProviderError, ProviderNotConfigured

logger = Logger()
metrics = Metrics()
# X-Ray subsegments for every AWS SDK call (botocore) and every provider call (http.client, which
# shop/payments/http_client.py uses); off outside Lambda. Patched at import, before any client exists. Only
# these two: patch_all would also import and patch libraries no handler calls (requests, sqlite3, ...).
TRACED_MODULES = ("botocore", "httplib")
tracer = Tracer(patch_modules=TRACED_MODULES)

MAX_BODY_BYTES = 64 * 1024
# Routes whose body is a file, not JSON (method, resource) -> its limit in bytes: the route reads it raw.
FILE_UPLOADS: dict[tuple[str, str], int] = {("POST", "/admin/imports/skus"): 1024 * 1024}
# Who may call each route, from the manifest (CDK puts the same authorizers in front of them).
ROUTE_AUTH = {(route.method, route.path): route.auth for route in ROUTES}
MAX_JSON_DEPTH = 32  # our request bodies nest 4 deep; anything far deeper is hostile
# An invalid request DynamoDB refused (e.g. a key value over its size limit): retrying cannot help.
NOT_RETRYABLE_AWS_CODES = frozenset({"ValidationException"})
API_TITLE = "Shop transaction core"
API_VERSION = "1.0.0"


def _clean_errors(errors: Any) -> list[dict[str, Any]]:
    """Validation errors without echoing the (hostile) input back."""
    cleaned = []
    for error in list(errors)[:50]:
        loc = [str(part) for part in error.get("loc", ())]
        cleaned.append({"field": ".".join(loc[1:]) or ".".join(loc), "location": loc[0] if loc else "",
                        "message": str(error.get("msg", ""))[:300], "type": error.get("type", "")})
    return cleaned


def provider_not_configured(error: ProviderNotConfigured):
    """503 `provider-not-configured` WITHOUT Retry-After: an operator must add the secret or setting first. (The
    `ProviderNotConfigured` metric is counted where it is raised, shop/payments/base.py.)"""
    logger.error("payment provider not configured", extra={"provider": error.provider, "setting": error.setting})
    return problem(503, "provider-not-configured", "Payment provider not configured",
                   f"payment provider {error.provider} is enabled but not configured; choose another provider "
                   "or contact the shop", extra={"provider": error.provider})


def create_app(*routers: Router) -> APIGatewayRestResolver:
    app = APIGatewayRestResolver(enable_validation=True, cors=cors_config())
    for router in routers:
        app.include_router(router)

    @app.exception_handler(DomainError)
    def domain_error(error: DomainError):
        headers = {"Retry-After": str(error.extra.get("retry_after", 1))} if error.status == 503 else None
        if error.status >= 500:
            logger.warning("temporarily unavailable", extra={"detail": error.detail})
        return problem(error.status, error.slug, error.title, error.detail, headers,
                       {k: v for k, v in error.extra.items() if k != "retry_after"})

    @app.exception_handler(ProviderError)
    def provider_error(error: ProviderError):
        if isinstance(error, ProviderNotConfigured):
            return provider_not_configured(error)
        logger.error("payment provider call failed", extra={"error": str(error)})
        return problem(502, "provider-error", "Payment provider error",
                       "the payment provider did not complete the call; retrying with the same request is safe")

    @app.exception_handler([ClientError, BotoCoreError])
    def aws_unavailable(error: Exception):
        code = error.response.get("Error", {}).get("Code", "") if isinstance(error, ClientError) else ""
        if code in NOT_RETRYABLE_AWS_CODES:
            # Never a 503 "retry": the same request would fail the same way. Logged without the
            # message, which may quote the offending input.
            logger.error("AWS refused the request as invalid",
                         extra={"code": code, "operation": getattr(error, "operation_name", "")})
            return problem(422, "invalid-request", "Invalid request",
                           "the request contains a value this service cannot store or look up")
        # A dependency failed after its own retries; every write is conditional and every create is
        # keyed, so the client can safely retry the same request.
        logger.exception("AWS call failed")
        return problem(503, "temporarily-unavailable", "Temporarily unavailable",
                       "a backing service did not answer; retry the same request shortly", {"Retry-After": "2"})

    @app.exception_handler(RequestValidationError)
    def validation_error(error: RequestValidationError):
        return problem(422, "validation-error", "Invalid request", "the request does not match the schema",
                       extra={"errors": _clean_errors(error.errors())})

    @app.exception_handler(NotFoundError)
    def no_route(_error: NotFoundError):
        return problem(404, "not-found", "Not found", "no such resource")

    @app.not_found
    def not_found(_error: Exception):
        return problem(404, "not-found", "Not found", "no such resource")

    @app.exception_handler(Exception)
    def unexpected(error: Exception):
        logger.exception("unhandled error")
        return problem(500, "internal-error", "Internal error",
                       "something went wrong on our side; nothing was charged twice, retry with the same Idempotency-Key")

    return app


def _as_json_request(event: dict) -> None:
    """This API speaks JSON only: a body sent as form data or with no type (curl -d) is read as JSON."""
    for field in ("headers", "multiValueHeaders"):
        headers = event.get(field) or {}
        for name in [n for n in headers if n.lower() == "content-type"]:
            del headers[name]
    event.setdefault("headers", {})
    event["headers"] = {**(event["headers"] or {}), "Content-Type": "application/json"}
    if event.get("multiValueHeaders") is not None:
        event["multiValueHeaders"]["Content-Type"] = ["application/json"]


def _no_constant(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


def _tame(value: Any) -> bool:
    """Nested at most MAX_JSON_DEPTH deep, finite numbers, strings that are valid Unicode (no lone
    surrogates, which json accepts as \\udXXX escapes but nothing downstream can encode)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return False
        if isinstance(item, dict):
            stack.extend((k, depth) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(item, float) and not math.isfinite(item):
            return False
    return True


def _malformed_json_body(event: dict) -> dict | None:
    """A JSON request body must decode (base64 when flagged, UTF-8) and parse as tame JSON; otherwise
    the request is answered 400 here, before any route sees it. A base64 body is handed on decoded."""
    body = event.get("body") or ""
    try:
        text = base64.b64decode(body, validate=True).decode("utf-8") if event.get("isBase64Encoded") else body
        # ValueError covers bad base64, invalid UTF-8, bad JSON and integers beyond Python's digit limit.
        parsed = json.loads(text, parse_constant=_no_constant)
        tame = _tame(parsed)
    except (ValueError, RecursionError):
        tame = False
    if not tame:
        return problem_response(400, "malformed-body", "Malformed request body",
                                "the request body is not well-formed JSON (UTF-8, finite numbers, "
                                f"at most {MAX_JSON_DEPTH} levels deep)")
    if event.get("isBase64Encoded"):
        event["body"], event["isBase64Encoded"] = text, False
    return None


def _snapstart_hooks() -> tuple[Callable[[Callable], Any], Callable[[Callable], Any]] | None:
    """Lambda's runtime hooks (snapshot-restore-py, in the Python managed runtimes); None elsewhere. They run only
    when the function version is published with SnapStart (CDK context snap_start)."""
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:
        return None
    return register_before_snapshot, register_after_restore


_HOOKS = _snapstart_hooks()
if _HOOKS:
    # Environments restored from one snapshot would otherwise share the `random` module's state (retry
    # jitter, shard picks). Ids and secrets come from `secrets` (os.urandom), which is not snapshotted.
    _HOOKS[1](random.seed)


def lambda_entry(app: APIGatewayRestResolver | Callable[[], APIGatewayRestResolver],
                 json_only: bool = True) -> Callable[[dict, Any], dict]:
    """The Lambda handler for a resolver: correlation id in logs, metrics flushed, bodies bounded.

    Given a function that builds the resolver instead, the handler builds it once, on the first request, so the
    init phase imports only logging, metrics and tracing; the routes, their pydantic models, the services and
    boto3 load with the resolver (bench/cold_start.py shows both costs). With SnapStart the resolver is built
    before the snapshot instead, so restored environments start with it. `handler.resolver()` returns it."""
    built: list[APIGatewayRestResolver] = [cast(APIGatewayRestResolver, app)] if hasattr(app, "resolve") else []
    lock = threading.Lock()

    def resolver() -> APIGatewayRestResolver:
        if not built:
            with lock:
                if not built:
                    built.append(cast(Callable[[], APIGatewayRestResolver], app)())  # not a resolver: its factory
        return built[0]

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
    @tracer.capture_lambda_handler(capture_response=False)  # responses carry addresses
    @metrics.log_metrics
    def handler(event: dict, context: Any) -> dict:
        denied = access_denied(event, ROUTE_AUTH.get((event.get("httpMethod") or "", event.get("resource") or ""), "public"))
        if denied is not None:  # before validation: a stranger learns nothing about the route's schema
            return problem_response(denied.status, denied.slug, denied.title, denied.detail)
        body = event.get("body") or ""
        upload = FILE_UPLOADS.get((event.get("httpMethod") or "", event.get("resource") or ""))
        limit = upload or MAX_BODY_BYTES
        # A base64 body is 4/3 the bytes it carries (the file route checks the decoded size exactly).
        if len(body) > (limit * 4 // 3 + 4 if upload and event.get("isBase64Encoded") else limit):
            return problem_response(413, "payload-too-large", "Payload too large",
                                    f"request bodies are limited to {limit} bytes")
        if json_only and body and not upload:
            malformed = _malformed_json_body(event)
            if malformed is not None:
                return malformed
            _as_json_request(event)
        return resolver().resolve(event, context)

    handler.resolver = resolver
    if _HOOKS and not built:
        _HOOKS[0](resolver)
    return handler


def raw_body(event: Any) -> bytes | None:
    """A webhook's body exactly as its sender sent it (signatures are over these bytes); None when the gateway's
    base64 does not decode or the text holds a lone surrogate."""
    body = event.raw_event.get("body") or ""
    try:
        return base64.b64decode(body, validate=True) if event.raw_event.get("isBase64Encoded") \
            else body.encode("utf-8")
    except ValueError:
        return None
