"""The one list of functions, routes and queues.

CDK (infra/) builds API Gateway, Lambdas and queues from it; the local run
(localrun/) dispatches HTTP requests and queue batches with it. Neither keeps a
second copy, so the two runtimes cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from shop.domain.notifications import routed_event_types

Auth = Literal["public", "customer", "admin", "webhook"]


@dataclass(frozen=True)
class FunctionSpec:
    name: str  # folder under functions/
    memory_mb: int = 256
    timeout_s: int = 10
    description: str = ""
    reserved_concurrency: int | None = None

    @property
    def handler(self) -> str:
        return f"{self.name}.handler.lambda_handler"


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # API Gateway template, e.g. /orders/{order_id}
    function: str
    auth: Auth


@dataclass(frozen=True)
class QueueSpec:
    name: str  # logical name; env var <NAME>_QUEUE_URL points at it
    consumer: str  # function name
    batch_size: int = 10
    # 0: six times the consumer's timeout, as AWS advises for queues that feed a Lambda event source mapping
    # (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html): a batch Lambda retries after a
    # throttle is not delivered twice meanwhile.
    visibility_timeout_s: int = 0
    max_receive_count: int = 5  # deliveries before the message goes to the DLQ
    # Concurrent consumer invocations at most (SQS event source maximum concurrency, 2..1000): a burst of
    # expiries after a sale is worked off steadily instead of all at once.
    max_concurrency: int | None = None

    def __post_init__(self) -> None:
        if not self.visibility_timeout_s:
            object.__setattr__(self, "visibility_timeout_s", 6 * FUNCTIONS[self.consumer].timeout_s)

    @property
    def env_var(self) -> str:
        return f"{self.name.upper()}_QUEUE_URL"


# Every domain event is published with this source (shop.adapters.events).
EVENT_SOURCE = "shop"


@dataclass(frozen=True)
class EventRuleSpec:
    """An EventBridge rule on the domain event bus: events of these detail-types go to a queue of QUEUES.
    CDK deploys it (infra/messaging.py) and the local run puts the same rule on moto's bus (localrun/cloud.py)."""

    name: str
    detail_types: tuple[str, ...]
    queue: str

    def pattern(self) -> dict[str, Any]:
        return {"source": [EVENT_SOURCE], "detail-type": list(self.detail_types)}


FUNCTIONS: dict[str, FunctionSpec] = {
    f.name: f
    for f in (
        # Timeouts: above the provider client's deadline (8 s, shop/payments/http_client.py) with room for the
        # DynamoDB and Secrets Manager calls around it, and below API Gateway's 29 s integration timeout.
        FunctionSpec("create_order", 512, 20, "POST /orders: reserve stock and open the payment window"),
        FunctionSpec("orders_api", 256, 20, "Customer order reads, cancel and reorder"),
        FunctionSpec("catalog_api", 256, 10, "Public SKU availability and the OpenAPI document"),
        FunctionSpec("admin_api", 256, 20, "Operator routes: SKUs, stock adjustments, ledger, orders"),
        FunctionSpec(
            "payment_webhook", 256, 20, "Verified payment provider webhooks", reserved_concurrency=20
        ),
        FunctionSpec("stock_release", 256, 30, "SQS: expire unpaid orders and release their stock"),
        FunctionSpec("restock", 256, 30, "SQS: apply stock returns idempotently"),
        FunctionSpec(
            "expiry_sweeper", 256, 60, "Schedule: re-queue overdue unpaid orders, finish pending refunds", reserved_concurrency=1
        ),
        # Above the carrier client's deadline (8 s) with room for the order write and SendTaskSuccess.
        FunctionSpec("courier_poll", 256, 30, "SQS: ask a carrier about a parcel, answer the poll task token"),
        FunctionSpec("carrier_webhook", 256, 20, "Verified carrier push callbacks (parcel status)"),
        FunctionSpec(
            "reconciliation", 512, 300, "Schedule: daily reconciliation of provider statements", reserved_concurrency=1
        ),
        # Waits on SES, SNS and DynamoDB (5 s read timeout, 3 attempts each) for up to three channels per event.
        FunctionSpec("notifier", 256, 60, "SQS: render domain events into customer and operator notifications"),
    )
}

ROUTES: tuple[Route, ...] = (
    Route("GET", "/openapi.json", "catalog_api", "public"),
    Route("GET", "/skus/{sku}", "catalog_api", "public"),
    Route("POST", "/orders", "create_order", "customer"),
    Route("GET", "/orders", "orders_api", "customer"),
    Route("GET", "/orders/{order_id}", "orders_api", "customer"),
    Route("POST", "/orders/{order_id}/cancel", "orders_api", "customer"),
    Route("POST", "/orders/{order_id}/reorder", "orders_api", "customer"),
    Route("POST", "/orders/{order_id}/confirm-receipt", "orders_api", "customer"),
    Route("POST", "/orders/{order_id}/after-sales", "orders_api", "customer"),
    Route("GET", "/orders/{order_id}/after-sales", "orders_api", "customer"),
    Route("GET", "/me/notifications", "orders_api", "customer"),
    Route("GET", "/me/notification-preferences", "orders_api", "customer"),
    Route("PUT", "/me/notification-preferences", "orders_api", "customer"),
    Route("POST", "/webhooks/{provider}", "payment_webhook", "webhook"),
    Route("POST", "/webhooks/carriers/{carrier}", "carrier_webhook", "webhook"),
    Route("PUT", "/admin/skus/{sku}", "admin_api", "admin"),
    Route("POST", "/admin/skus/{sku}/adjustments", "admin_api", "admin"),
    Route("GET", "/admin/skus/{sku}", "admin_api", "admin"),
    Route("GET", "/admin/skus/{sku}/ledger", "admin_api", "admin"),
    Route("GET", "/admin/orders", "admin_api", "admin"),
    Route("GET", "/admin/orders.csv", "admin_api", "admin"),
    Route("GET", "/admin/skus", "admin_api", "admin"),
    Route("POST", "/admin/orders/{order_id}/cancel", "admin_api", "admin"),
    Route("POST", "/admin/orders/{order_id}/shipments", "admin_api", "admin"),
    Route("POST", "/admin/orders/{order_id}/refunds", "admin_api", "admin"),
    Route("POST", "/admin/orders/{order_id}/approve", "admin_api", "admin"),
    Route("POST", "/admin/orders/{order_id}/reject", "admin_api", "admin"),
    Route("GET", "/admin/reconciliation/{date}", "admin_api", "admin"),
    Route("GET", "/admin/after-sales", "admin_api", "admin"),
    Route("GET", "/admin/after-sales/{after_sale_id}", "admin_api", "admin"),
    Route("POST", "/admin/after-sales/{after_sale_id}/approve", "admin_api", "admin"),
    Route("POST", "/admin/after-sales/{after_sale_id}/reject", "admin_api", "admin"),
    Route("POST", "/admin/after-sales/{after_sale_id}/received", "admin_api", "admin"),
)

QUEUES: tuple[QueueSpec, ...] = (
    QueueSpec("stock_release", consumer="stock_release", max_concurrency=20),
    QueueSpec("restock", consumer="restock", max_concurrency=5),
    QueueSpec("notifications", consumer="notifier", max_concurrency=5),
    # Fed by the courier-poll state machine (waitForTaskToken); a burst of parcels is polled steadily.
    QueueSpec("courier_poll", consumer="courier_poll", max_concurrency=5),
)

# Domain events that reach people: every event type with a notification route goes to the notifier's queue.
EVENT_RULES: tuple[EventRuleSpec, ...] = (
    EventRuleSpec("notifications", routed_event_types(), queue="notifications"),
)

# The sweeper runs on this schedule (EventBridge rule deployed, a timer locally).
SWEEP_INTERVAL_SECONDS = 60

# Daily reconciliation (UTC): 02:30 UTC is 10:30 in Beijing, after Alipay (by 09:00) and WeChat Pay (from 10:00)
# publish the previous day's bills, and 2.5 h after Stripe's UTC day ends. Locally: POST /_local/reconcile/{date}.
RECONCILIATION_SCHEDULE_UTC = {"hour": "2", "minute": "30"}
