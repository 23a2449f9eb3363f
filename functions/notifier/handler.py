"""SQS: domain events (delivered by the EventBridge rule of shop.manifest.EVENT_RULES) into notifications.

Each record is one EventBridge event. Messages go out at most once per event, recipient and channel (claims in
the table, shop/services/notifications.py); a channel that certainly failed makes the record fail alone
(batchItemFailures) and it comes back; an event that is not an EventBridge event is poison (dead-letter queue).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import BaseModel, ConfigDict, Field

from shop.adapters.notifications import notify_ports
from shop.adapters.sqs_batch import RetryLater, consume, parse_message
from shop.domain import clock
from shop.manifest import EVENT_SOURCE
from shop.services.notifications import DomainEvent, NotSent, notify

logger = Logger()
ISO_MILLIS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
metrics = Metrics()
tracer = Tracer()  # X-Ray subsegments for boto3 calls; off outside Lambda


class EventBridgeEvent(BaseModel):
    """The envelope EventBridge delivers to an SQS target (the body of each record)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9:_.-]+$")
    detail_type: str = Field(alias="detail-type", min_length=1, max_length=128)
    source: str = Field(pattern=f"^{EVENT_SOURCE}$")
    time: str | float = Field(union_mode="left_to_right")  # ISO 8601; moto's bus sends epoch seconds
    detail: dict[str, Any]

    def iso_time(self) -> str:
        """When the event was published, in milliseconds (the publisher's `published_at`, shop.adapters.events),
        else EventBridge's `time` (whole seconds): the inbox is ordered by it."""
        published = self.detail.get("published_at")
        if isinstance(published, str) and ISO_MILLIS.match(published):
            return published
        if isinstance(self.time, str):
            return self.time[:40]
        return clock.iso(datetime.fromtimestamp(self.time, UTC))


def handle(record: SQSRecord) -> None:
    event = parse_message(record, EventBridgeEvent)
    logger.set_correlation_id(event.id)
    try:
        outcomes = notify(notify_ports(), DomainEvent(event.id, event.detail_type, event.iso_time(), event.detail))
    except NotSent as error:
        metrics.add_metric(name="NotificationsRetried", unit=MetricUnit.Count, value=1)
        raise RetryLater(str(error)) from None
    sent = sum(1 for outcome in outcomes.values() if outcome == "sent")
    if sent:
        metrics.add_metric(name="NotificationsSent", unit=MetricUnit.Count, value=sent)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context) -> dict:
    return consume(event, context, handle, logger)
