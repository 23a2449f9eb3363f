"""SQS: expire unpaid orders whose payment window ended and release their reserved stock.

Messages come from the payment-window state machine and the expiry sweeper. Cart holds expire here too
(messages with a `hold_id`: services/cart_holds.expire_hold, released once, a renewed hold left alone). Expiry is
PENDING_PAYMENT -> EXPIRED plus the release, in one conditional transaction; an order that
was paid, cancelled or already expired is left alone, so duplicates and races are harmless.
A message that arrives before the window ends is retried later (never dropped); unknown
orders and malformed messages are poison and end in the dead-letter queue.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Literal

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import BaseModel, ConfigDict, Field

from shop.adapters.sqs_batch import PoisonMessage, RetryLater, consume, parse_message
from shop.adapters.wiring import default_ports
from shop.domain.errors import NotFound
from shop.services.cart_holds import HoldNotYetDue, expire_hold
from shop.services.orders import NotYetDue, expire_order

logger = Logger()
metrics = Metrics()
tracer = Tracer()  # X-Ray subsegments for boto3 and provider calls; off outside Lambda


class ReleaseRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    order_id: str = Field(pattern=r"^ord_[a-z0-9]{10,60}$")
    reason: Literal["payment_window_expired", "sweeper"] = "payment_window_expired"


class HoldReleaseRequest(BaseModel):
    """A cart hold's expiry: from its timer (the payment-window machine's hold branch, with the expiry it was
    scheduled for) or from the sweeper (without)."""

    model_config = ConfigDict(extra="ignore")
    hold_id: str = Field(pattern=r"^hold_[a-f0-9]{24}$")
    scheduled_for: str | None = Field(None, max_length=40)
    reason: Literal["cart_hold_expired", "sweeper"] = "cart_hold_expired"


def release(record: SQSRecord) -> None:
    if _is_hold_message(record):
        hold = parse_message(record, HoldReleaseRequest)
        _expire("cart hold", "hold_id", hold.hold_id, hold.reason, "CartHoldsExpired",
                lambda: expire_hold(default_ports(), hold.hold_id, scheduled_for=hold.scheduled_for))
        return
    order = parse_message(record, ReleaseRequest)
    _expire("order", "order_id", order.order_id, order.reason, "OrdersExpired",
            lambda: expire_order(default_ports(), order.order_id))


def _expire(kind: str, key: str, ident: str, via: str, metric: str, run: Callable[[], object | None]) -> None:
    """Run one expiry: an unknown id is poison, one not yet due is retried later, a no-op (paid, converted,
    ended, renewed) is done."""
    logger.set_correlation_id(ident)
    try:
        ended = run()
    except NotFound:
        raise PoisonMessage(f"unknown {kind} {ident}") from None
    except (NotYetDue, HoldNotYetDue) as early:
        raise RetryLater(str(early)) from None
    if ended is not None:
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
        logger.info(f"{kind} expired, stock released", extra={key: ident, "via": via})


def _is_hold_message(record: SQSRecord) -> bool:
    try:
        body = json.loads(record.body or "")
    except ValueError:
        return False  # parse_message calls it poison
    return isinstance(body, dict) and "hold_id" in body


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)  # responses carry addresses
@metrics.log_metrics
def lambda_handler(event: dict, context) -> dict:
    return consume(event, context, release, logger)
