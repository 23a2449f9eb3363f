"""SQS: expire unpaid orders whose payment window ended and release their reserved stock.

Messages come from the payment-window state machine and the expiry sweeper. Expiry is
PENDING_PAYMENT -> EXPIRED plus the release, in one conditional transaction; an order that
was paid, cancelled or already expired is left alone, so duplicates and races are harmless.
A message that arrives before the window ends is retried later (never dropped); unknown
orders and malformed messages are poison and end in the dead-letter queue.
"""

from __future__ import annotations

from typing import Literal

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import BaseModel, ConfigDict, Field

from shop.adapters.sqs_batch import PoisonMessage, RetryLater, consume, parse_message
from shop.adapters.wiring import default_ports
from shop.domain.errors import NotFound
from shop.services.orders import NotYetDue, expire_order

logger = Logger()
metrics = Metrics()
tracer = Tracer()  # X-Ray subsegments for boto3 and provider calls; off outside Lambda


class ReleaseRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    order_id: str = Field(pattern=r"^ord_[a-z0-9]{10,60}$")
    reason: Literal["payment_window_expired", "sweeper"] = "payment_window_expired"


def release(record: SQSRecord) -> None:
    request = parse_message(record, ReleaseRequest)
    logger.set_correlation_id(request.order_id)
    try:
        expired = expire_order(default_ports(), request.order_id)
    except NotFound:
        raise PoisonMessage(f"unknown order {request.order_id}") from None
    except NotYetDue as early:
        raise RetryLater(str(early)) from None
    if expired is not None:
        metrics.add_metric(name="OrdersExpired", unit=MetricUnit.Count, value=1)
        logger.info("order expired, stock released", extra={"order_id": request.order_id, "via": request.reason})


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)  # responses carry addresses
@metrics.log_metrics
def lambda_handler(event: dict, context) -> dict:
    return consume(event, context, release, logger)
