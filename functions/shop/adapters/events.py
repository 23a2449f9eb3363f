"""Domain events on EventBridge. Publishing happens after the commit and never fails the request:
a lost notification is logged and counted, never a lost order."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from shop.adapters.aws import client
from shop.domain import clock
from shop.manifest import EVENT_SOURCE
from shop.settings import get_settings

logger = Logger(child=True)
SOURCE = EVENT_SOURCE
EVENTS_NOT_PUBLISHED = "EventsNotPublished"


class EventBridgePublisher:
    def __init__(self, bus_name: str):
        self.bus_name = bus_name

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        if not self.bus_name:
            logger.debug("no event bus configured", extra={"detail_type": detail_type})
            return
        try:
            result = client("events").put_events(Entries=[{
                "Source": SOURCE,
                "DetailType": detail_type,
                # EventBridge's own `time` has whole seconds: consumers that order events (the in-app inbox) use this.
                "Detail": json.dumps({**detail, "published_at": clock.iso(clock.now())}, separators=(",", ":")),
                "EventBusName": self.bus_name,
            }])
            if result.get("FailedEntryCount"):
                logger.error("event not published", extra={"detail_type": detail_type,
                                                             "entries": result.get("Entries")})
                _count_lost_event()
        except Exception:  # noqa: BLE001 - notification loss must not fail a committed change
            logger.exception("event publishing failed", extra={"detail_type": detail_type})
            _count_lost_event()


def _count_lost_event() -> None:
    """EventsNotPublished{service}: an alarm watches it, so a lost notification is seen, not just logged."""
    with single_metric(name=EVENTS_NOT_PUBLISHED, unit=MetricUnit.Count, value=1) as metric:
        metric.add_dimension(name="service", value=get_settings().service_name)
