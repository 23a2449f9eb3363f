"""POST /webhooks/carriers/{carrier}: a carrier's push (subscription callback), verified on the raw body, then merged
into the parcel like a poll. A bad signature is 401 and changes nothing."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from aws_lambda_powertools.metrics import MetricUnit

from shop.domain.errors import DomainError
from shop.http.app import create_app, lambda_entry, raw_body
from shop.http.problems import problem

logger = Logger(child=True)
metrics = Metrics()
router = APIGatewayRouter()


def build_app():
    """The resolver, built by the first request (or before a SnapStart snapshot), not at import: the adapters,
    boto3 and the store load with it."""
    return create_app(router)


def _raw_body() -> bytes | None:
    return raw_body(router.current_event)


@router.post("/webhooks/carriers/<carrier>", include_in_schema=False)
def carrier_callback(carrier: str):
    from botocore.exceptions import BotoCoreError, ClientError

    from shop.adapters.wiring import default_ports
    from shop.carriers import registry
    from shop.carriers.base import MAX_CALLBACK_BYTES, InvalidCallback
    from shop.payments.base import ProviderNotConfigured
    from shop.services.fulfilment import receive_callback

    adapter = registry.adapter(carrier)
    if adapter is None:
        return problem(404, "not-found", "Not found", "no such carrier")
    body = _raw_body()
    if body is None:
        return problem(400, "invalid-webhook", "Callback rejected", "the callback could not be read")
    if len(body) > MAX_CALLBACK_BYTES:
        return problem(413, "payload-too-large", "Payload too large", "callback body too large")
    query = {k: v for k, v in (router.current_event.query_string_parameters or {}).items() if isinstance(v, str)}
    try:
        callback = adapter.parse_callback(router.current_event.headers or {}, body, query)
    except InvalidCallback as invalid:
        metrics.add_metric(name="CarrierCallbacksRejected", unit=MetricUnit.Count, value=1)
        logger.warning("carrier callback rejected", extra={"carrier": carrier, "reason": str(invalid)})
        return problem(invalid.status, "invalid-webhook", "Callback rejected", str(invalid))
    except ProviderNotConfigured as error:
        logger.error("carrier not configured", extra={"carrier": carrier, "setting": error.setting})
        return problem(503, "provider-not-configured", "Carrier not configured", "carrier not configured")
    except (ValueError, TypeError, KeyError, IndexError, RecursionError, ArithmeticError):
        return problem(400, "invalid-webhook", "Callback rejected", "the callback could not be read")
    try:
        update = receive_callback(default_ports(), adapter, callback)
    except DomainError as error:
        if error.status >= 500:
            return problem(error.status, error.slug, error.title, error.detail, headers={"Retry-After": "2"})
        logger.warning("carrier callback for no parcel of ours", extra={"carrier": carrier, "detail": error.detail})
        return problem(error.status, error.slug, error.title, error.detail)
    except (ClientError, BotoCoreError):
        logger.exception("AWS call failed while recording a carrier callback", extra={"carrier": carrier})
        return problem(503, "temporarily-unavailable", "Temporarily unavailable", "retry later",
                       headers={"Retry-After": "2"})
    metrics.add_metric(name="CarrierCallbacks", unit=MetricUnit.Count, value=1)
    result = update.result
    logger.info("carrier callback recorded", extra={
        "carrier": carrier, "order_id": callback.order_id, "shipment_id": callback.shipment_id,
        "status": result.status.value if result and result.status else None,
        "new_checkpoints": result.new_checkpoints if result else 0})
    status, content_type, text = adapter.acknowledge()
    return Response(status_code=status, content_type=content_type, body=text)


lambda_handler = lambda_entry(build_app, json_only=False)
