"""Build the real adapters from settings, once per container."""

from __future__ import annotations

from functools import lru_cache

from shop.adapters.dynamo_store import DynamoShopStore
from shop.adapters.events import EventBridgePublisher
from shop.adapters.evidence import S3Evidence
from shop.adapters.queues import SqsReleaseQueue, SqsRestockQueue
from shop.adapters.workflows import StepFunctionsHoldTimers, StepFunctionsParcelTracking, StepFunctionsPaymentWindows
from shop.services.ports import Ports
from shop.settings import clear_cache, get_settings


@lru_cache(maxsize=1)
def default_ports() -> Ports:
    settings = get_settings()
    return Ports(
        store=DynamoShopStore(settings.table_name),
        events=EventBridgePublisher(settings.event_bus_name),
        windows=StepFunctionsPaymentWindows(settings.state_machine_arn),
        release_queue=SqsReleaseQueue(settings.stock_release_queue_url) if settings.stock_release_queue_url else None,
        restock_queue=SqsRestockQueue(settings.restock_queue_url) if settings.restock_queue_url else None,
        evidence=S3Evidence(settings.evidence_bucket, max_bytes=settings.after_sales_photo_max_bytes,
                            expires_seconds=settings.after_sales_upload_expires_seconds)
        if settings.evidence_bucket else None,
        tracking=StepFunctionsParcelTracking(settings.courier_poll_state_machine_arn),
        hold_timers=StepFunctionsHoldTimers(settings.state_machine_arn),
    )


def reset() -> None:
    from shop.adapters.notifications import notify_ports

    default_ports.cache_clear()
    notify_ports.cache_clear()
    clear_cache()
