"""The one list of functions, routes and queues, and of what each function reads and calls.

CDK (infra/) builds API Gateway, Lambdas and queues from it; the local run
(localrun/) dispatches HTTP requests and queue batches with it. Neither keeps a
second copy, so the two runtimes cannot drift.

Per function, `settings` names the shop.settings.Settings fields its code reads and `calls` the AWS calls it
makes, as "service:Operation on resource". From them CDK sets each function's environment and grants its role
exactly those calls (infra/grants.py), the local run sets the same variables, and tests/deploy checks the
synthesized roles against this list. A call on a resource also gives the function the setting that names the
resource (RESOURCE_SETTINGS: the table's name, a queue's URL...). Nothing here imports pydantic or boto3: the
handlers import this module at cold start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from shop.domain.notifications import routed_event_types

Auth = Literal["public", "customer", "admin", "webhook"]


@dataclass(frozen=True)
class Call:
    """One AWS call a function makes on one resource of the stack, e.g. `dynamodb:TransactWriteItems on table`.
    `action` is the API operation as the code calls it (infra/grants.py knows which IAM actions authorize it)."""

    action: str
    resource: str

    @classmethod
    def parse(cls, text: str) -> Call:
        action, sep, resource = text.partition(" on ")
        if not sep or ":" not in action or not resource:
            raise ValueError(f"{text!r}: a call is 'service:Operation on resource'")
        return cls(action, resource)

    def __str__(self) -> str:
        return f"{self.action} on {self.resource}"


@dataclass(frozen=True)
class FunctionSpec:
    name: str  # folder under functions/
    memory_mb: int = 256
    timeout_s: int = 10
    description: str = ""
    reserved_concurrency: int | None = None
    settings: tuple[str, ...] = ()  # shop.settings.Settings fields the code reads (besides RESOURCE_SETTINGS)
    calls: tuple[str, ...] = ()  # "service:Operation on resource"

    @property
    def handler(self) -> str:
        return f"{self.name}.handler.lambda_handler"

    @property
    def aws_calls(self) -> tuple[Call, ...]:
        return tuple(Call.parse(c) for c in self.calls)

    @property
    def all_settings(self) -> tuple[str, ...]:
        """Its own settings and those naming the resources it calls, in a stable order, once each."""
        named = [RESOURCE_SETTINGS[c.resource] for c in self.aws_calls if c.resource in RESOURCE_SETTINGS]
        return tuple(dict.fromkeys([*self.settings, *(s for group in named for s in group)]))


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

    @property
    def setting(self) -> str:
        """The Settings field holding its URL (alias env_var)."""
        return f"{self.name}_queue_url"

    @property
    def resource(self) -> str:
        """Its name in a function's calls: `sqs:SendMessage on restock queue`."""
        return f"{self.name} queue"


# ---- What functions read and call, in groups (a function's entry lists the groups it needs) ----

# The order rules every function that loads or writes orders may apply.
ORDER_SETTINGS = ("payment_window_seconds", "max_payment_window_seconds", "idempotency_ttl_seconds",
                  "max_unpaid_orders_per_customer", "max_unpaid_units_per_sku", "payment_providers_enabled",
                  "default_payment_provider", "order_confirmation_seconds", "shop_time_zone")
# Cart holds (docs/cart-holds.md): placed and renewed by orders_api, taken over by create_order.
CART_HOLD_SETTINGS = ("cart_hold_seconds", "cart_hold_max_seconds")
HTTP_SETTINGS = (*ORDER_SETTINGS, *CART_HOLD_SETTINGS, "cors_allowed_origins")
# Functions that call payment providers: where notifications go, what each provider takes, the risk rules of a
# settlement, and the provider endpoints and keys (the last two set by the local run only; deployed, the keys come
# from the provider secrets).
PAYMENT_SETTINGS = ("payment_webhook_base_url", "notify_urls", "currencies", "provider_keys", "stripe_api_base",
                    "alipay_gateway", "alipay_return_url", "wechatpay_api_base", "risk_large_amount",
                    "risk_max_large_payments", "risk_window_seconds", "risk_max_payments_per_ip")

# After-sales requests (docs/after-sales.md): customers open them (orders_api), operators decide (admin_api).
AFTER_SALES_SETTINGS = ("after_sales_max_photos", "after_sales_photo_max_bytes", "after_sales_upload_expires_seconds",
                        "after_sales_days_after_delivery", "after_sales_days_after_shipment")

# Fulfilment (docs/fulfilment.md): carriers, their endpoints and keys (the local run; deployed: the carrier secrets),
# labels, the courier-poll loop.
FULFILMENT_SETTINGS = ("carriers_enabled", "carrier_keys", "carrier_webhook_base_url", "sandbox_carrier_api_base",
                       "kuaidi100_api_base", "kuaidi100_label_api_base", "aftership_api_base", "ship_from_name",
                       "ship_from_phone", "ship_from_address", "courier_poll_intervals", "parcel_max_age_seconds",
                       "parcel_no_record_seconds", "label_url_seconds")

# Every DynamoDB call the store makes (shop/adapters/); TransactWriteItems carries Put and Update actions.
TABLE_CALLS = tuple(f"dynamodb:{op} on table" for op in (
    "GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem", "TransactWriteItems"))
PUBLISH = "events:PutEvents on event bus"
OPEN_PAYMENT_WINDOW = "states:StartExecution on payment window"
SEND_RESTOCK = "sqs:SendMessage on restock queue"  # refunds that restock; a dry shard asks for a rebalance
SEND_RELEASE = "sqs:SendMessage on stock_release queue"
READ_PROVIDER_SECRETS = "secretsmanager:GetSecretValue on provider secrets"
# The key of the phone digests in the order index (shop/adapters/phones.py): placing orders, operators' search.
# Deployed it is read from its secret; locally and in tests PHONE_INDEX_KEY gives it.
READ_PHONE_KEY = "secretsmanager:GetSecretValue on phone index key"
READ_CARRIER_SECRETS = "secretsmanager:GetSecretValue on carrier secrets"


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
        FunctionSpec("create_order", 512, 20, "POST /orders: reserve stock and open the payment window",
                     settings=(*HTTP_SETTINGS, *PAYMENT_SETTINGS, "phone_index_key"),
                     calls=(*TABLE_CALLS, PUBLISH, OPEN_PAYMENT_WINDOW, SEND_RESTOCK, READ_PROVIDER_SECRETS,
                            READ_PHONE_KEY)),
        # reorder places an order (opens its window); cancel refunds a paid order (and restocks); an after-sales
        # request presigns its photo uploads (a presigned POST is only as good as its signer's s3:PutObject)
        FunctionSpec("orders_api", 256, 20, "Customer order reads, cancel and reorder; cart holds",
                     settings=(*HTTP_SETTINGS, *PAYMENT_SETTINGS, *AFTER_SALES_SETTINGS, "phone_index_key"),
                     calls=(*TABLE_CALLS, PUBLISH, OPEN_PAYMENT_WINDOW, SEND_RESTOCK, READ_PROVIDER_SECRETS,
                            READ_PHONE_KEY, "s3:PutObject on evidence bucket")),
        # Its own items only: the SKUs and their stock shards (infra/grants.py: dynamodb:LeadingKeys).
        FunctionSpec("catalog_api", 256, 10, "Public SKU availability and the OpenAPI document",
                     settings=(*HTTP_SETTINGS, "availability_display", "availability_only_n_left_threshold"), calls=("dynamodb:BatchGetItem on catalog items",)),
        FunctionSpec("admin_api", 256, 20, "Operator routes: SKUs, stock adjustments, ledger, orders",
                     settings=(*HTTP_SETTINGS, *PAYMENT_SETTINGS, *AFTER_SALES_SETTINGS, *FULFILMENT_SETTINGS,
                               "phone_index_key", "csv_export_max_rows"),
                     # operators' views of a request link its photos (presigned GETs); the phone search; booking a
                     # waybill calls the carrier, writes its label (and presigns its URL), starts the parcel's loop
                     calls=(*TABLE_CALLS, PUBLISH, SEND_RESTOCK, READ_PROVIDER_SECRETS, READ_PHONE_KEY,
                            "s3:GetObject on evidence bucket", READ_CARRIER_SECRETS, "s3:PutObject on label bucket",
                            "s3:GetObject on label bucket", "states:StartExecution on courier poll")),
        FunctionSpec(
            "payment_webhook", 256, 20, "Verified payment provider webhooks", reserved_concurrency=20,
            settings=(*HTTP_SETTINGS, *PAYMENT_SETTINGS),
            calls=(*TABLE_CALLS, PUBLISH, SEND_RESTOCK, READ_PROVIDER_SECRETS),
        ),
        FunctionSpec("stock_release", 256, 30, "SQS: expire unpaid orders and release their stock",
                     settings=ORDER_SETTINGS, calls=(*TABLE_CALLS, PUBLISH)),
        FunctionSpec("restock", 256, 30, "SQS: apply stock returns idempotently",
                     settings=ORDER_SETTINGS, calls=(*TABLE_CALLS, PUBLISH)),
        # It also finishes refunds a crash left pending: it calls providers and restocks.
        FunctionSpec(
            "expiry_sweeper", 256, 60, "Schedule: re-queue overdue unpaid orders, finish pending refunds", reserved_concurrency=1,
            settings=(*ORDER_SETTINGS, *PAYMENT_SETTINGS, *FULFILMENT_SETTINGS, "sweep_grace_seconds"),
            calls=(*TABLE_CALLS, PUBLISH, SEND_RELEASE, SEND_RESTOCK, READ_PROVIDER_SECRETS),
        ),
        # Above the carrier client's deadline (8 s) with room for the order write and SendTaskSuccess. Asks carriers,
        # records on the order, answers the poll task token.
        FunctionSpec("courier_poll", 256, 30, "SQS: ask a carrier about a parcel, answer the poll task token",
                     settings=(*ORDER_SETTINGS, *FULFILMENT_SETTINGS),
                     calls=(*TABLE_CALLS, PUBLISH, READ_CARRIER_SECRETS, "states:SendTaskSuccess on courier poll")),
        # Verifies pushes, records on the order, stops the parcel's execution on a final status.
        FunctionSpec("carrier_webhook", 256, 20, "Verified carrier push callbacks (parcel status)",
                     settings=(*HTTP_SETTINGS, *FULFILMENT_SETTINGS),
                     calls=(*TABLE_CALLS, PUBLISH, READ_CARRIER_SECRETS,
                            "states:StopExecution on courier poll executions")),
        # Reads orders and statements, stores its result, refunds late payments (restocking nothing), publishes
        # mismatches.
        FunctionSpec(
            "reconciliation", 512, 300, "Schedule: daily reconciliation of provider statements", reserved_concurrency=1,
            settings=(*ORDER_SETTINGS, *PAYMENT_SETTINGS, "reconciliation_grace_seconds",
                      "reconciliation_lookback_days", "stripe_api_version"),
            calls=(*TABLE_CALLS, PUBLISH, READ_PROVIDER_SECRETS),
        ),
        # Waits on SES, SNS and DynamoDB (5 s read timeout, 3 attempts each) for up to three channels per event.
        # Reads orders and preferences, claims each message and writes in-app messages; sends e-mail from the
        # configured sender only, SMS to customers' numbers, and the operators' topic (infra/notifications.py).
        FunctionSpec("notifier", 256, 60, "SQS: render domain events into customer and operator notifications",
                     settings=("notify_email_from", "notify_sms", "operator_locale"),
                     calls=(*TABLE_CALLS, "sns:Publish on operator topic", "sns:Publish on phone numbers",
                            "ses:SendEmail on sender identity")),
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
    Route("POST", "/carts/{cart_id}/holds", "orders_api", "customer"),
    Route("GET", "/carts/{cart_id}/holds", "orders_api", "customer"),
    Route("DELETE", "/carts/{cart_id}/holds", "orders_api", "customer"),
    Route("POST", "/webhooks/{provider}", "payment_webhook", "webhook"),
    Route("POST", "/webhooks/carriers/{carrier}", "carrier_webhook", "webhook"),
    Route("PUT", "/admin/skus/{sku}", "admin_api", "admin"),
    Route("POST", "/admin/skus/{sku}/adjustments", "admin_api", "admin"),
    Route("GET", "/admin/skus/{sku}", "admin_api", "admin"),
    Route("GET", "/admin/skus/{sku}/ledger", "admin_api", "admin"),
    Route("GET", "/admin/skus/{sku}/backorders", "admin_api", "admin"),
    Route("GET", "/admin/orders", "admin_api", "admin"),
    Route("GET", "/admin/orders.csv", "admin_api", "admin"),
    Route("GET", "/admin/skus", "admin_api", "admin"),
    Route("POST", "/admin/imports/skus", "admin_api", "admin"),
    Route("GET", "/admin/skus.csv", "admin_api", "admin"),
    Route("GET", "/admin/stock.csv", "admin_api", "admin"),
    Route("GET", "/admin/ledger.csv", "admin_api", "admin"),
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
    Route("PUT", "/admin/warehouses/{code}", "admin_api", "admin"),
    Route("GET", "/admin/warehouses", "admin_api", "admin"),
    Route("PUT", "/admin/skus/{sku}/presale", "admin_api", "admin"),
    Route("POST", "/admin/skus/{sku}/presale/release", "admin_api", "admin"),
    Route("PUT", "/admin/skus/{sku}/virtual", "admin_api", "admin"),
    Route("POST", "/admin/skus/{sku}/stock-moves", "admin_api", "admin"),
    Route("POST", "/admin/skus/{sku}/incoming", "admin_api", "admin"),
    Route("GET", "/admin/skus/{sku}/incoming", "admin_api", "admin"),
    Route("GET", "/admin/deliveries/{delivery_id}", "admin_api", "admin"),
    Route("POST", "/admin/deliveries/{delivery_id}/receive", "admin_api", "admin"),
    Route("POST", "/admin/transfers", "admin_api", "admin"),
    Route("GET", "/admin/transfers/{transfer_id}", "admin_api", "admin"),
    Route("POST", "/admin/transfers/{transfer_id}/receive", "admin_api", "admin"),
    Route("POST", "/admin/counts", "admin_api", "admin"),
    Route("GET", "/admin/counts/{count_id}", "admin_api", "admin"),
    Route("POST", "/admin/counts/{count_id}/approve", "admin_api", "admin"),
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

# The settings that name each resource a function may call (by the resource's name in `calls`).
RESOURCE_SETTINGS: dict[str, tuple[str, ...]] = {
    "table": ("table_name",),
    "catalog items": ("table_name",),
    "event bus": ("event_bus_name",),
    "payment window": ("state_machine_arn",),
    "provider secrets": ("payment_secrets_source", "payment_secret_prefix"),
    "evidence bucket": ("evidence_bucket",),
    "operator topic": ("operator_topic_arn",),
    "phone index key": ("phone_index_key_secret",),
    "label bucket": ("label_bucket",),
    "courier poll": ("courier_poll_state_machine_arn",),
    "courier poll executions": ("courier_poll_state_machine_arn",),
    "carrier secrets": ("carrier_secret_prefix",),  # after-sales photos (its after-sales/ keys: infra/evidence.py)
    **{spec.resource: (spec.setting,) for spec in QUEUES},
}

# The sweeper runs on this schedule (EventBridge rule deployed, a timer locally).
SWEEP_INTERVAL_SECONDS = 60

# Daily reconciliation (UTC): 02:30 UTC is 10:30 in Beijing, after Alipay (by 09:00) and WeChat Pay (from 10:00)
# publish the previous day's bills, and 2.5 h after Stripe's UTC day ends. Locally: POST /_local/reconcile/{date}.
RECONCILIATION_SCHEDULE_UTC = {"hour": "2", "minute": "30"}
