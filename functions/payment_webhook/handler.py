"""POST /webhooks/{provider}: verify the provider's signature on the raw body, then settle exactly once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from shop.domain.errors import DomainError
from shop.domain.statuses import PaymentOutcome
from shop.http.app import create_app, lambda_entry, raw_body
from shop.http.problems import problem
from shop.payments import registry
from shop.payments.base import MAX_WEBHOOK_BYTES, InvalidWebhook, ProviderError, ProviderNotConfigured

if TYPE_CHECKING:  # imported by build_app(), not at init
    from shop.adapters.wiring import default_ports
    from shop.services.payments import process_payment_event

logger = Logger(child=True)
metrics = Metrics()
router = APIGatewayRouter()


def build_app():
    """The resolver, built by the first request (or before a SnapStart snapshot), not at import. The store
    (boto3) and the settlement service load with it: module globals the route uses from then on."""
    global default_ports, process_payment_event
    from shop.adapters.wiring import default_ports
    from shop.services.payments import process_payment_event

    return create_app(router)


def _raw_body() -> bytes | None:
    """The body exactly as the provider sent it; None when the gateway's base64 does not decode."""
    return raw_body(router.current_event)


def _count_failure() -> None:
    metrics.add_metric(name="WebhookFailures", unit=MetricUnit.Count, value=1)


def _reject(handler, status: int, message: str, problem_type: str = "invalid-webhook",
            headers: dict[str, str] | None = None) -> Response:
    """A failure in the provider's own documented format (WeChat Pay {"code": "FAIL", ...}, Alipay `fail`,
    problem+json for Stripe and the sandbox), with the status the provider's retries key on."""
    _count_failure()
    status, content_type, text = handler.reject(status, message, problem_type)
    return Response(status_code=status, content_type=content_type, body=text, headers=headers or {})


def _failure(handler, provider: str, error: Exception, stage: str) -> Response:
    """A failure the route did not foresee, answered in the provider's format: missing configuration (503, no
    Retry-After, its own metric), a provider or AWS error (503, Retry-After), anything else (500)."""
    if isinstance(error, ProviderNotConfigured):
        logger.error("payment provider not configured", extra={"provider": provider, "setting": error.setting})
        return _reject(handler, 503, "payment provider not configured", "provider-not-configured")
    if isinstance(error, ProviderError):
        logger.error(f"provider error while {stage}", extra={"provider": provider, "error": str(error)})
        return _reject(handler, 503, "retry later", "provider-unavailable", {"Retry-After": "30"})
    if isinstance(error, DomainError):  # e.g. busy with concurrent updates: 503, retry shortly
        logger.warning(f"not settled while {stage}", extra={"provider": provider, "detail": error.detail})
        retry = {"Retry-After": str(error.extra.get("retry_after", 1))} if error.status == 503 else None
        return _reject(handler, error.status, error.detail, error.slug, retry)
    if isinstance(error, (ClientError, BotoCoreError)):
        logger.exception(f"AWS call failed while {stage}", extra={"provider": provider})
        return _reject(handler, 503, "retry later", "temporarily-unavailable", {"Retry-After": "2"})
    logger.exception(f"unexpected error while {stage}", extra={"provider": provider})
    return _reject(handler, 500, "internal error", "internal-error")


@router.post("/webhooks/<provider>", include_in_schema=False)
def webhook(provider: str):
    if provider not in registry.PROVIDERS or provider not in registry.enabled():
        return problem(404, "not-found", "Not found", "no such payment provider")
    metrics.add_dimension(name="provider", value=provider)
    handler = registry.PROVIDERS[provider]
    body = _raw_body()
    if body is None:
        return _reject(handler, 400, "the notification could not be read")
    if len(body) > MAX_WEBHOOK_BYTES:
        return _reject(handler, 413, "webhook body too large", "payload-too-large")
    try:
        event = handler.parse_webhook(router.current_event.headers or {}, body)
    # A shape the parser did not foresee, nesting deeper than the JSON parser recurses, or an integer
    # beyond Python's digit limit (ValueError): malformed, never a 500.
    except (ValueError, TypeError, KeyError, IndexError, RecursionError, ArithmeticError) as malformed:
        logger.warning("webhook malformed", extra={"provider": provider, "error": type(malformed).__name__})
        return _reject(handler, 400, "the notification could not be read")
    except InvalidWebhook as invalid:
        logger.warning("webhook rejected", extra={"provider": provider, "reason": str(invalid)})
        return _reject(handler, invalid.status, str(invalid))
    except Exception as error:  # noqa: BLE001 - a key or setting missing, Secrets Manager not answering...
        return _failure(handler, provider, error, "verifying")  # nothing verified, so nothing changes
    try:
        outcome = process_payment_event(default_ports(), handler, event)
    except Exception as error:  # noqa: BLE001 - e.g. an automatic refund could not be made: the provider retries
        return _failure(handler, provider, error, "settling")
    name = "OrdersPaid" if outcome.accepted else (
        "AutomaticRefunds" if outcome is PaymentOutcome.REFUNDED else "WebhookEventsRecorded")
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    logger.info("webhook processed", extra={"provider": provider, "event_id": event.event_id,
                                            "order_id": event.order_id, "outcome": outcome.value})
    status, content_type, text = handler.acknowledge()
    return Response(status_code=status, content_type=content_type, body=text)


_entry = lambda_entry(build_app, json_only=False)


def lambda_handler(event: dict, context) -> dict:
    """The app refuses a body beyond its size limit before any route runs (problem+json); a webhook's refusal
    is re-worded in the provider's format, like every other failure here."""
    answer = _entry(event, context)
    provider = (event.get("pathParameters") or {}).get("provider")
    if answer.get("statusCode") == 413 and provider in registry.PROVIDERS and provider in registry.enabled():
        status, content_type, text = registry.PROVIDERS[provider].reject(413, "webhook body too large",
                                                                         "payload-too-large")
        headers = {k: v for k, v in (answer.get("headers") or {}).items() if k.lower() != "content-type"}
        return {**answer, "statusCode": status, "headers": {**headers, "Content-Type": content_type}, "body": text}
    return answer


lambda_handler.resolver = _entry.resolver  # type: ignore[attr-defined]
