"""A Powertools resolver with the project's error mapping, logging, metrics and size limits."""

from __future__ import annotations

from typing import Any, Callable

from aws_lambda_powertools import Logger, Metrics, Tracer
from botocore.exceptions import BotoCoreError, ClientError
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.router import Router
from aws_lambda_powertools.logging import correlation_paths

from shop.domain.errors import DomainError
from shop.http.cors import cors_config
from shop.http.problems import problem, problem_response
from shop.payments.base import ProviderError

logger = Logger()
metrics = Metrics()
tracer = Tracer()  # X-Ray subsegments for boto3 and provider calls; off outside Lambda

MAX_BODY_BYTES = 64 * 1024
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
        logger.error("payment provider call failed", extra={"error": str(error)})
        return problem(502, "provider-error", "Payment provider error",
                       "the payment provider did not complete the call; retrying with the same request is safe")

    @app.exception_handler([ClientError, BotoCoreError])
    def aws_unavailable(error: Exception):
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


def lambda_entry(app: APIGatewayRestResolver, json_only: bool = True) -> Callable[[dict, Any], dict]:
    """The Lambda handler for a resolver: correlation id in logs, metrics flushed, bodies bounded."""

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
    @tracer.capture_lambda_handler(capture_response=False)  # responses carry addresses
    @metrics.log_metrics
    def handler(event: dict, context: Any) -> dict:
        body = event.get("body") or ""
        if len(body) > MAX_BODY_BYTES:
            return problem_response(413, "payload-too-large", "Payload too large",
                                    f"request bodies are limited to {MAX_BODY_BYTES} bytes")
        if json_only and body:
            _as_json_request(event)
        return app.resolve(event, context)

    return handler
