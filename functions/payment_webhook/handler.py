"""POST /webhooks/{provider}: verify the provider's signature on the raw body, then settle exactly once."""

from __future__ import annotations

import base64

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from aws_lambda_powertools.metrics import MetricUnit

from shop.http.app import create_app, lambda_entry
from shop.http.problems import problem
from shop.payments import registry
from shop.payments.base import MAX_WEBHOOK_BYTES, InvalidWebhook, ProviderError

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
    event = router.current_event
    body = event.raw_event.get("body") or ""
    try:
        return base64.b64decode(body, validate=True) if event.raw_event.get("isBase64Encoded") \
            else body.encode("utf-8")
    except ValueError:  # bad base64, or a lone surrogate in the text
        return None


def _count_failure() -> None:
    metrics.add_metric(name="WebhookFailures", unit=MetricUnit.Count, value=1)


@router.post("/webhooks/<provider>", include_in_schema=False)
def webhook(provider: str):
    if provider not in registry.PROVIDERS or provider not in registry.enabled():
        return problem(404, "not-found", "Not found", "no such payment provider")
    metrics.add_dimension(name="provider", value=provider)
    body = _raw_body()
    if body is None:
        _count_failure()
        return problem(400, "invalid-webhook", "Webhook rejected", "the notification could not be read")
    if len(body) > MAX_WEBHOOK_BYTES:
        _count_failure()
        return problem(413, "payload-too-large", "Payload too large", "webhook body too large")
    handler = registry.PROVIDERS[provider]
    try:
        event = handler.parse_webhook(router.current_event.headers or {}, body)
    # A shape the parser did not foresee, nesting deeper than the JSON parser recurses, or an integer
    # beyond Python's digit limit (ValueError): malformed, never a 500.
    except (ValueError, TypeError, KeyError, IndexError, RecursionError, ArithmeticError) as malformed:
        _count_failure()
        logger.warning("webhook malformed", extra={"provider": provider, "error": type(malformed).__name__})
        return problem(400, "invalid-webhook", "Webhook rejected", "the notification could not be read")
    except InvalidWebhook as invalid:
        _count_failure()
        logger.warning("webhook rejected", extra={"provider": provider, "reason": str(invalid)})
        return problem(invalid.status, "invalid-webhook", "Webhook rejected", str(invalid))
    except ProviderError as error:  # a setting or key is missing: nothing verified, so nothing changes
        _count_failure()
        logger.error("webhook not verifiable", extra={"provider": provider, "error": str(error)})
        return problem(503, "provider-unavailable", "Provider unavailable", "retry later", {"Retry-After": "30"})
    except Exception:  # e.g. Secrets Manager not answering: 503 from the app's handlers, counted here
        _count_failure()
        raise
    try:
        outcome = process_payment_event(default_ports(), handler, event)
    except ProviderError as error:  # an automatic refund could not be made: let the provider retry
        _count_failure()
        logger.error("provider call failed while settling", extra={"provider": provider, "error": str(error)})
        return problem(503, "provider-unavailable", "Provider unavailable", "retry later", {"Retry-After": "30"})
    except Exception:  # answered 503/500 by the app's handlers; counted here, with the provider dimension
        _count_failure()
        raise
    name = "OrdersPaid" if outcome.startswith("paid") else (
        "AutomaticRefunds" if outcome == "refunded" else "WebhookEventsRecorded")
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    logger.info("webhook processed", extra={"provider": provider, "event_id": event.event_id,
                                            "order_id": event.order_id, "outcome": outcome})
    status, content_type, text = handler.acknowledge()
    return Response(status_code=status, content_type=content_type, body=text)


lambda_handler = lambda_entry(build_app, json_only=False)
