"""ShopStack: the whole system. Least privilege: each function gets exactly the calls its code makes."""

from __future__ import annotations

import re

from aws_cdk import Duration, RemovalPolicy, Stack, Tags
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra import grants
from infra.api import STAGE, Api, SignIn
from infra.data import shop_table
from infra.edge import EdgeProtection
from infra.evidence import EvidenceBucket
from infra.fulfilment import Fulfilment
from infra.functions import Functions
from infra.messaging import Messaging
from infra.nag import acknowledge_findings
from infra.notifications import Notifications
from infra.observability import Observability
from infra.reconciliation import DailyReconciliation
from infra.secrets import ProviderSecrets
from shop.manifest import QUEUES, ROUTES, SWEEP_INTERVAL_SECONDS
from shop.payments.registry import PROVIDERS

# The sweeper also finishes refunds a crash left pending: it calls providers and records outcomes.
# Reconciliation reads orders and statements, stores its result, refunds late payments, publishes mismatches.
# The notifier reads orders and preferences, claims each message and writes in-app messages.
READ_WRITE = ("create_order", "orders_api", "admin_api", "payment_webhook", "stock_release", "restock",
              "expiry_sweeper", "reconciliation", "notifier", "courier_poll", "carrier_webhook")
PUBLISHERS = ("create_order", "orders_api", "admin_api", "payment_webhook", "stock_release", "restock",
              "expiry_sweeper", "reconciliation", "courier_poll", "carrier_webhook")
# Fulfilment (docs/fulfilment.md): admin_api books waybills (carrier calls, labels) and starts each parcel's loop;
# courier_poll asks carriers and answers the poll task; carrier_webhook verifies pushes and stops a finished loop.
CARRIER_CALLERS = ("admin_api", "courier_poll", "carrier_webhook")
# create_order asks the restock consumer to rebalance a sharded SKU whose shard it found dry.
RESTOCK_PRODUCERS = ("create_order", "orders_api", "admin_api", "payment_webhook", "expiry_sweeper")
PAYMENT_CALLERS = ("create_order", "orders_api", "admin_api", "payment_webhook", "expiry_sweeper", "reconciliation")
EVIDENCE_UPLOADERS = ("orders_api",)  # POST /orders/{order_id}/after-sales presigns the photo uploads
EVIDENCE_VIEWERS = ("admin_api",)  # operators' views of a request link its photos
# Functions that compute the keyed digest of a phone (shop/adapters/phones.py): placing orders, operators' search.
PHONE_INDEXERS = ("create_order", "orders_api", "admin_api")
WINDOW_OPENERS = ("create_order", "orders_api")  # POST /orders and POST /orders/{order_id}/reorder place orders

# Context parameters and their defaults (cdk.json carries the same values; `-c name=value` overrides them).
# None: the stage decides (STAGE_DEFAULTS).
DEFAULT_CONTEXT: dict[str, object] = {
    # Which copy: names the stack (shop-{stage}) and so every resource in it; several stages live side by side in
    # one account and region. "prod" gets production defaults (STAGE_DEFAULTS); any other name those of "dev".
    "stage": "dev",
    "payment_window_seconds": 900,
    "max_payment_window_seconds": 3600,
    "alarm_email": "",
    # None: the public layer of the Powertools release requirements.txt pins, through its SSM parameter (infra/
    # functions.py). A number names a layer version of AWSLambdaPowertoolsPythonV3-python3XX-arm64 instead.
    "powertools_layer_version": None,
    "enabled_payment_providers": "stripe,alipay,wechatpay",
    # Carriers with an adapter (docs/fulfilment.md); each gets an empty secret to fill in.
    "enabled_carriers": "kuaidi100,aftership",
    "carrier_secret_prefix": "shop/{stage}/carriers/",
    # Courier polling: intervals (seconds, growing while nothing changes), maximum ages; order confirmation period.
    "courier_poll_intervals": "10800,21600,43200,86400",
    "parcel_max_age_seconds": 30 * 24 * 3600,
    "parcel_no_record_seconds": 3 * 24 * 3600,
    "order_confirmation_seconds": 7 * 24 * 3600,
    "payment_secret_prefix": "shop/{stage}/payments/",  # {stage} is filled in: each stage has its own secrets
    "domain_name": "",
    "certificate_arn": "",
    "api_throttle_rate": 100,
    "api_throttle_burst": 200,
    # Per-route throttles (requests per second, burst) of the routes that must not share a bucket.
    "webhook_throttle_rate": 50,
    "webhook_throttle_burst": 100,
    "catalog_throttle_rate": 200,
    "catalog_throttle_burst": 400,
    "order_throttle_rate": 100,
    "order_throttle_burst": 200,
    # AWS WAF web ACL on the API stage (infra/edge.py): prod on, dev off. It costs per web ACL, rule and request.
    "waf": None,
    "waf_order_rate_limit": 300,  # POST /orders per client IP per 5 minutes (WAF's minimum is 10)
    # dev: off, as a table with deletion protection cannot be deleted by the rollback of a failed first create
    # (README: First deploy); prod: on.
    "table_deletion_protection": None,
    "payment_webhook_base_url": "",
    "cors_allowed_origins": "",
    # Customers' sign-in (infra/api.py SignIn): a verified SES identity for Cognito's mail, and OAuth callback
    # URLs (comma-separated) with a hosted UI domain prefix, both optional.
    "cognito_ses_from_email": "",
    "cognito_ses_region": "",
    "cognito_callback_urls": "",
    "cognito_logout_urls": "",
    "cognito_domain_prefix": "",
    "risk_large_amount": 100000,
    "risk_max_large_payments": 3,
    "risk_max_payments_per_ip": 0,
    "risk_window_seconds": 3600,
    "max_unpaid_orders_per_customer": 50,
    "max_unpaid_units_per_sku": 200,
    # Notifications (docs/notifications.md): e-mail from this verified SES identity (empty: no e-mail), SMS through
    # SNS, the operators' topic (optionally subscribed by e-mail) in this language (zh-CN or en).
    "notification_email_from": "",
    "notification_sms": True,
    "operator_email": "",
    "operator_locale": "en",
    # How long the event bus archive keeps every domain event for replay (0: for ever).
    "event_archive_retention_days": 90,
    # Lambda SnapStart for the functions behind API Gateway (README: "Cold start and SnapStart", and its cost).
    "snap_start": False,
    # Safe deployments: the HTTP functions are invoked through an alias that CodeDeploy moves to each new version
    # as a canary (10% for 5 minutes), rolling back when the version's errors alarm (infra/functions.py).
    "canary_deploy": False,
    # Reserved concurrency from the manifest (payment_webhook 20, expiry_sweeper 1): needs an account concurrency
    # quota of at least 100 + their sum (Lambda keeps 100 unreserved), so it is off for new accounts.
    "reserved_concurrency": False,
    # After-sales (docs/after-sales.md): how long after delivery / after the last parcel left a customer may open a
    # request, photos per request and their size, and how long evidence photos are kept.
    "after_sales_days_after_delivery": 7,
    "after_sales_days_after_shipment": 15,
    "after_sales_max_photos": 6,
    "after_sales_photo_max_bytes": 10485760,
    "evidence_expiry_days": 180,
    # Synthesize without build/layer (tests, `make synth`); a deploy needs the layer, so the default refuses.
    "allow_empty_dependency_layer": False,
}


PRODUCTION_STAGES = frozenset({"prod"})
# What differs between a development copy and production, as teams usually set it.
STAGE_DEFAULTS: dict[str, dict[str, object]] = {
    "dev": {"table_deletion_protection": False, "waf": False},
    "prod": {"table_deletion_protection": True, "waf": True},
}
STAGE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")


def stack_name(stage: str) -> str:
    if not STAGE_NAME.match(stage):
        raise ValueError(f"context stage={stage!r}: lower-case letters, digits and '-', at most 20, a letter first")
    return f"shop-{stage}"


def route_throttles(limits: dict[str, tuple[int, int]]) -> dict[tuple[str, str], tuple[int, int]]:
    """(method, path) -> (rate, burst): webhooks, the public catalog reads and order placement, from the manifest."""
    out: dict[tuple[str, str], tuple[int, int]] = {}
    for route in ROUTES:
        if route.auth == "webhook":
            out[(route.method, route.path)] = limits["webhook"]
        elif route.auth == "public" and route.method == "GET":
            out[(route.method, route.path)] = limits["catalog"]
        elif route.function == "create_order" or route.path.endswith("/reorder"):
            out[(route.method, route.path)] = limits["order"]
    return out


def _list(value: object) -> tuple[str, ...]:
    return tuple(v.strip() for v in str(value or "").split(",") if v.strip())


def _flag(value: object) -> bool:
    # `-c name=false` arrives as the string "false".
    return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")


class ShopStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, stage: str = "dev", **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.stage = stage
        self.production = stage in PRODUCTION_STAGES
        stage_defaults = STAGE_DEFAULTS["prod" if self.production else "dev"]

        def ctx(name: str):
            value = self.node.try_get_context(name)
            value = DEFAULT_CONTEXT[name] if value is None else value
            return stage_defaults.get(name) if value is None else value

        # Cost allocation tags (activate them once in the Billing console): every resource says which app and stage.
        Tags.of(self).add("app", "shop-core")
        Tags.of(self).add("stage", stage)

        table = shop_table(self, deletion_protection=_flag(ctx("table_deletion_protection")))
        messaging = Messaging(self, "Messaging", archive_retention_days=int(ctx("event_archive_retention_days")))
        secret_prefix = str(ctx("payment_secret_prefix")).replace("{stage}", stage)
        carrier_prefix = str(ctx("carrier_secret_prefix")).replace("{stage}", stage)
        fulfilment = Fulfilment(self, "Fulfilment", poll_queue=messaging.queues["courier_poll"],
                                secret_prefix=carrier_prefix, carriers=list(_list(ctx("enabled_carriers"))))
        environment = {
            "TABLE_NAME": table.table_name,
            "PAYMENT_WINDOW_SECONDS": str(int(ctx("payment_window_seconds"))),
            "MAX_PAYMENT_WINDOW_SECONDS": str(int(ctx("max_payment_window_seconds"))),
            "MAX_UNPAID_ORDERS_PER_CUSTOMER": str(int(ctx("max_unpaid_orders_per_customer"))),
            "MAX_UNPAID_UNITS_PER_SKU": str(int(ctx("max_unpaid_units_per_sku"))),
            "PAYMENT_WINDOW_STATE_MACHINE_ARN": messaging.state_machine.state_machine_arn,
            "EVENT_BUS_NAME": messaging.bus.event_bus_name,
            "POWERTOOLS_METRICS_NAMESPACE": "shop",
            "LOG_LEVEL": "INFO",
            "CORS_ALLOWED_ORIGINS": str(ctx("cors_allowed_origins")),
            # Traces must not carry order bodies (addresses): the handlers also say so per decorator.
            "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
            "PAYMENT_PROVIDERS_ENABLED": str(ctx("enabled_payment_providers")),
            "PAYMENT_SECRET_PREFIX": secret_prefix,
            "PAYMENT_SECRETS_SOURCE": "secretsmanager",
            "RISK_LARGE_AMOUNT": str(int(ctx("risk_large_amount"))),
            "RISK_MAX_LARGE_PAYMENTS": str(int(ctx("risk_max_large_payments"))),
            "RISK_MAX_PAYMENTS_PER_IP": str(int(ctx("risk_max_payments_per_ip"))),
            "RISK_WINDOW_SECONDS": str(int(ctx("risk_window_seconds"))),
            **{spec.env_var: messaging.queues[spec.name].queue_url for spec in QUEUES},
            "COURIER_POLL_STATE_MACHINE_ARN": fulfilment.state_machine.state_machine_arn,
            "LABEL_BUCKET": fulfilment.labels.bucket_name,
            "CARRIERS_ENABLED": str(ctx("enabled_carriers")),
            "CARRIER_SECRET_PREFIX": carrier_prefix,
            "COURIER_POLL_INTERVALS": str(ctx("courier_poll_intervals")),
            "PARCEL_MAX_AGE_SECONDS": str(int(ctx("parcel_max_age_seconds"))),
            "PARCEL_NO_RECORD_SECONDS": str(int(ctx("parcel_no_record_seconds"))),
            "ORDER_CONFIRMATION_SECONDS": str(int(ctx("order_confirmation_seconds"))),
        }
        # SnapStart (opt-in) for the functions API Gateway invokes; queue consumers and the sweeper stay as they are.
        http_functions = frozenset(route.function for route in ROUTES)
        functions = Functions(self, "Functions", environment=environment,
                              layer_version=None if ctx("powertools_layer_version") in (None, "") else
                              int(ctx("powertools_layer_version")),
                              snap_start=http_functions if _flag(ctx("snap_start")) else frozenset(),
                              reserved_concurrency=_flag(ctx("reserved_concurrency")),
                              canary=http_functions if _flag(ctx("canary_deploy")) else frozenset(),
                              allow_empty_dependency_layer=_flag(ctx("allow_empty_dependency_layer")))
        fns = functions.by_name

        # Exactly the calls the code makes (infra/grants.py), not CDK's broader grant_* sets.
        for name in READ_WRITE:
            grants.table_read_write(table, fns[name])
        grants.catalog_read(table, fns["catalog_api"])
        for name in PUBLISHERS:
            messaging.bus.grant_put_events_to(fns[name])
        for name in RESTOCK_PRODUCERS:
            grants.send_messages(messaging.queues["restock"], fns[name])
        grants.send_messages(messaging.queues["stock_release"], fns["expiry_sweeper"])
        for name in WINDOW_OPENERS:
            messaging.state_machine.grant_start_execution(fns[name])
        # The stack creates each enabled provider's secret, empty: configuring a provider is filling in a value.
        provider_secrets = ProviderSecrets(self, "PaymentSecrets", prefix=secret_prefix,
                                           providers=list(_list(ctx("enabled_payment_providers"))))
        for name in PAYMENT_CALLERS:
            provider_secrets.grant_read(fns[name])
        # The key of the phone digests in the order index (never a phone number in a key): generated once, kept.
        phone_key_name = f"shop/{stage}/phone-index-key"
        phone_key = secretsmanager.Secret(
            self, "PhoneIndexKey", secret_name=phone_key_name,
            description="HMAC key of the phone digests in the order index (docs/finding-orders.md)",
            generate_secret_string=secretsmanager.SecretStringGenerator(password_length=64, exclude_punctuation=True),
            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE)
        for name in PHONE_INDEXERS:
            fns[name].add_environment("PHONE_INDEX_KEY_SECRET", phone_key_name)
            fns[name].add_to_role_policy(iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"],
                                                             resources=[phone_key.secret_arn]))
        for name in CARRIER_CALLERS:
            fulfilment.grant_secrets(fns[name])
        fulfilment.grant_labels_write(fns["admin_api"])
        fulfilment.grant_start(fns["admin_api"])
        fulfilment.grant_answer(fns["courier_poll"])
        fulfilment.grant_stop(fns["carrier_webhook"])

        # After-sales evidence: orders_api presigns the customers' uploads, admin_api the operators' views.
        evidence = EvidenceBucket(self, "Evidence", cors_origins=[
            o.strip().rstrip("/") for o in str(ctx("cors_allowed_origins")).split(",") if o.strip()],
            expiry_days=int(ctx("evidence_expiry_days")))
        after_sales_env = {
            "EVIDENCE_BUCKET": evidence.bucket.bucket_name,
            "AFTER_SALES_DAYS_AFTER_DELIVERY": str(int(ctx("after_sales_days_after_delivery"))),
            "AFTER_SALES_DAYS_AFTER_SHIPMENT": str(int(ctx("after_sales_days_after_shipment"))),
            "AFTER_SALES_MAX_PHOTOS": str(int(ctx("after_sales_max_photos"))),
            "AFTER_SALES_PHOTO_MAX_BYTES": str(int(ctx("after_sales_photo_max_bytes"))),
        }
        for name in EVIDENCE_UPLOADERS + EVIDENCE_VIEWERS:
            for key, value in after_sales_env.items():
                fns[name].add_environment(key, value)
        for name in EVIDENCE_UPLOADERS:
            evidence.grant_presign_upload(fns[name])
        for name in EVIDENCE_VIEWERS:
            evidence.grant_presign_view(fns[name])

        operator_locale = str(ctx("operator_locale"))
        if operator_locale not in ("zh-CN", "en"):
            raise ValueError(f"context operator_locale={operator_locale!r}: zh-CN or en")
        self.notifications = Notifications(
            self, "Notifications", bus=messaging.bus, queues=messaging.queues,
            dead_letter_queues=messaging.dead_letter_queues, notifier=fns["notifier"],
            email_from=str(ctx("notification_email_from")).strip(), sms=_flag(ctx("notification_sms")),
            operator_email=str(ctx("operator_email")).strip(), operator_locale=operator_locale)
        for spec in QUEUES:
            fns[spec.consumer].add_event_source(sources.SqsEventSource(
                messaging.queues[spec.name], batch_size=spec.batch_size, report_batch_item_failures=True,
                max_concurrency=spec.max_concurrency))
        events.Rule(self, "SweepSchedule", schedule=events.Schedule.rate(Duration.seconds(SWEEP_INTERVAL_SECONDS)),
                    targets=[targets.LambdaFunction(fns["expiry_sweeper"])])

        api = Api(self, "Api", name_prefix=self.stack_name, functions=functions.invoke_targets, throttle_rate=int(ctx("api_throttle_rate")),
                  throttle_burst=int(ctx("api_throttle_burst")), domain_name=str(ctx("domain_name")),
                  certificate_arn=str(ctx("certificate_arn")),
                  cors_origins=[o.strip().rstrip("/") for o in str(ctx("cors_allowed_origins")).split(",") if o.strip()],
                  production=self.production, sign_in=SignIn(
                      ses_from_email=str(ctx("cognito_ses_from_email")).strip(),
                      ses_region=str(ctx("cognito_ses_region")).strip(),
                      callback_urls=_list(ctx("cognito_callback_urls")), logout_urls=_list(ctx("cognito_logout_urls")),
                      domain_prefix=str(ctx("cognito_domain_prefix")).strip()),
                  route_throttles=route_throttles({kind: (int(ctx(f"{kind}_throttle_rate")), int(ctx(f"{kind}_throttle_burst")))
                                                   for kind in ("webhook", "catalog", "order")}))
        if _flag(ctx("waf")):
            EdgeProtection(self, "Edge", stage=api.rest_api.deployment_stage, stage_name=STAGE, name_prefix=self.stack_name,
                           order_rate_limit=int(ctx("waf_order_rate_limit")))
        # Alipay and WeChat Pay take the notification URL in each request (Alipay: refunds and queries too). Built from the API id
        # (not `api.url`, whose stage depends on the functions) so the functions may read it without a cycle.
        webhook_base = str(ctx("payment_webhook_base_url")).rstrip("/") or (
            f"https://{domain}/{STAGE}" if (domain := str(ctx("domain_name"))) else
            f"https://{api.rest_api.rest_api_id}.execute-api.{self.region}.{self.url_suffix}/{STAGE}")
        for name in PAYMENT_CALLERS:
            fns[name].add_environment("PAYMENT_WEBHOOK_BASE_URL", webhook_base)
        # Kuaidi100 takes the callback URL in each subscription, which admin_api makes when it books a waybill.
        fns["admin_api"].add_environment("CARRIER_WEBHOOK_BASE_URL", webhook_base)
        alarm_email = str(ctx("alarm_email")).strip()
        if stage != "dev" and not alarm_email:
            raise ValueError(f"stage {stage!r} needs someone to page: give `-c alarm_email=...` (only dev may have "
                             "alarms without a subscriber)")
        observability = Observability(
            self, "Observability", api=api.rest_api, functions=fns, queues=messaging.queues,
            dead_letter_queues=messaging.dead_letter_queues, state_machine=messaging.state_machine,
            alarm_email=alarm_email, publishers=PUBLISHERS, providers=tuple(PROVIDERS))
        DailyReconciliation(self, "Reconciliation", function=fns["reconciliation"], topic=observability.topic)
        self.table, self.messaging, self.functions, self.api = table, messaging, fns, api
        self.evidence = evidence
        self.fulfilment = fulfilment
        acknowledge_findings(self)
