"""ShopStack: the whole system. Least privilege: each function gets exactly the calls its code makes."""

from __future__ import annotations

import re

from aws_cdk import Duration, RemovalPolicy, Stack, Tags
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
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
from shop.domain.availability import AvailabilityDisplay
from shop.domain.virtual import zone
from shop.manifest import FUNCTIONS, QUEUES, ROUTES, SWEEP_INTERVAL_SECONDS
from shop.payments.registry import PROVIDERS
from shop.settings import function_environment


def calling(resource: str) -> tuple[str, ...]:
    """The functions whose manifest entry calls `resource`."""
    return tuple(name for name, spec in FUNCTIONS.items() if any(c.resource == resource for c in spec.aws_calls))


PUBLISHERS = calling("event bus")
PAYMENT_CALLERS = calling("provider secrets")  # they call payment providers with the keys kept there
# Powertools' own variables, the same for every function (each also gets POWERTOOLS_SERVICE_NAME, its name).
POWERTOOLS_ENVIRONMENT = {
    "POWERTOOLS_METRICS_NAMESPACE": "shop",
    "LOG_LEVEL": "INFO",
    # Traces must not carry order bodies (addresses): the handlers also say so per decorator.
    "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
}

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
    # The provider of an order that names none; empty: the first of enabled_payment_providers. Never one the stack
    # does not enable (the synthesis stops).
    "default_payment_provider": "",
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
    # Cart holds (docs/cart-holds.md): how long a hold lasts from placement or renewal, and at most in all.
    "cart_hold_seconds": 900,
    "cart_hold_max_seconds": 3600,
    # Notifications (docs/notifications.md): e-mail from this verified SES identity (empty: no e-mail), SMS through
    # SNS, the operators' topic (optionally subscribed by e-mail) in this language (zh-CN or en).
    "notification_email_from": "",
    "notification_sms": True,
    "operator_email": "",
    "operator_locale": "en",
    # What storefronts see of stock (GET /skus/{sku}; shop/domain/availability.py): exact, only_n_left (the count only
    # at or below the SKU's low_stock_threshold, else availability_only_n_left_threshold) or coarse (never a count).
    "availability_display": "exact",
    "availability_only_n_left_threshold": 5,
    # The shop's time zone (IANA name): a virtual SKU's daily cap resets at its midnight (docs/presale-and-virtual.md).
    "shop_time_zone": "Asia/Shanghai",
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


def default_provider(enabled: tuple[str, ...], chosen: str) -> str:
    """The deployed default provider: `chosen`, else the first enabled one; never one the stack refuses."""
    if not enabled:
        raise ValueError("enabled_payment_providers is empty: no order could be paid")
    unknown = set(enabled) - set(PROVIDERS)
    if unknown:
        raise ValueError(f"enabled_payment_providers names unknown providers: {sorted(unknown)}")
    chosen = chosen.strip() or enabled[0]
    if chosen not in enabled:
        raise ValueError(f"default_payment_provider={chosen!r} is not among enabled_payment_providers={enabled}")
    return chosen


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
        # After-sales evidence: orders_api presigns the customers' uploads, admin_api the operators' views.
        evidence = EvidenceBucket(self, "Evidence", cors_origins=[
            o.strip().rstrip("/") for o in str(ctx("cors_allowed_origins")).split(",") if o.strip()],
            expiry_days=int(ctx("evidence_expiry_days")))
        # Fulfilment: the waybill label bucket, the courier-poll state machine, the carrier secrets.
        carrier_prefix = str(ctx("carrier_secret_prefix")).replace("{stage}", stage)
        fulfilment = Fulfilment(self, "Fulfilment", poll_queue=messaging.queues["courier_poll"],
                                secret_prefix=carrier_prefix, carriers=list(_list(ctx("enabled_carriers"))))
        # The key of the phone digests in the order index (never a phone number in a key): generated once, kept.
        phone_key_name = f"shop/{stage}/phone-index-key"
        phone_key = secretsmanager.Secret(
            self, "PhoneIndexKey", secret_name=phone_key_name,
            description="HMAC key of the phone digests in the order index (docs/finding-orders.md)",
            generate_secret_string=secretsmanager.SecretStringGenerator(password_length=64, exclude_punctuation=True),
            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE)
        # Notifications: the rules into the notifier's queue, the operators' topic, what the notifier may send.
        operator_locale = str(ctx("operator_locale"))
        if operator_locale not in ("zh-CN", "en"):
            raise ValueError(f"context operator_locale={operator_locale!r}: zh-CN or en")
        availability_display = str(ctx("availability_display"))
        if availability_display not in set(AvailabilityDisplay):
            raise ValueError(f"context availability_display={availability_display!r}: "
                             f"{', '.join(AvailabilityDisplay)}")
        email_from, sms = str(ctx("notification_email_from")).strip(), _flag(ctx("notification_sms"))
        self.notifications = Notifications(
            self, "Notifications", bus=messaging.bus, queues=messaging.queues,
            dead_letter_queues=messaging.dead_letter_queues, email_from=email_from, sms=sms,
            operator_email=str(ctx("operator_email")).strip())
        # The deployed value of each setting (shop.settings.Settings field) the stack decides; each function gets
        # those its manifest entry reads (shop.settings.function_environment), the others keep their defaults.
        deployed: dict[str, str] = {
            "table_name": table.table_name,
            "state_machine_arn": messaging.state_machine.state_machine_arn,
            "event_bus_name": messaging.bus.event_bus_name,
            "evidence_bucket": evidence.bucket.bucket_name,
            "phone_index_key_secret": phone_key_name,
            "courier_poll_state_machine_arn": fulfilment.state_machine.state_machine_arn,
            "label_bucket": fulfilment.labels.bucket_name,
            "carriers_enabled": str(ctx("enabled_carriers")),
            "carrier_secret_prefix": carrier_prefix,
            "courier_poll_intervals": str(ctx("courier_poll_intervals")),
            "operator_topic_arn": self.notifications.operator_topic.topic_arn,
            "notify_email_from": email_from,
            "notify_sms": "on" if sms else "off",
            "operator_locale": operator_locale,
            "availability_display": availability_display,
            "shop_time_zone": zone(str(ctx("shop_time_zone"))).key,  # an unknown zone fails the synth, not the functions
            **{spec.setting: messaging.queues[spec.name].queue_url for spec in QUEUES},
            "payment_secret_prefix": secret_prefix,
            "payment_secrets_source": "secretsmanager",
            "payment_providers_enabled": str(ctx("enabled_payment_providers")),
            "default_payment_provider": default_provider(_list(ctx("enabled_payment_providers")),
                                                         str(ctx("default_payment_provider") or "")),
            "cors_allowed_origins": str(ctx("cors_allowed_origins")),
            **{name: str(int(ctx(name))) for name in (
                "payment_window_seconds", "max_payment_window_seconds", "max_unpaid_orders_per_customer",
                "max_unpaid_units_per_sku", "risk_large_amount", "risk_max_large_payments", "risk_max_payments_per_ip",
                "risk_window_seconds", "after_sales_days_after_delivery", "after_sales_days_after_shipment",
                "after_sales_max_photos", "after_sales_photo_max_bytes", "parcel_max_age_seconds",
                "parcel_no_record_seconds", "order_confirmation_seconds", "availability_only_n_left_threshold",
                "cart_hold_seconds", "cart_hold_max_seconds")},
        }
        environment = {name: {**POWERTOOLS_ENVIRONMENT, **function_environment(name, deployed)} for name in FUNCTIONS}
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

        # The stack creates each enabled provider's secret, empty: configuring a provider is filling in a value.
        provider_secrets = ProviderSecrets(self, "PaymentSecrets", prefix=secret_prefix,
                                           providers=list(_list(ctx("enabled_payment_providers"))))
        # Each function's role allows exactly the calls its manifest entry declares, on these resources.
        resources = {
            **grants.table_targets(table),
            "event bus": grants.Target((messaging.bus.event_bus_arn,)),
            "payment window": grants.Target((messaging.state_machine.state_machine_arn,)),
            "provider secrets": grants.Target(tuple(s.secret_arn for s in provider_secrets.by_provider.values())),
            "evidence bucket": grants.Target((evidence.objects_arn(),)),  # the after-sales keys, never the bucket
            "phone index key": grants.Target((phone_key.secret_arn,)),
            # Fulfilment: labels/ keys (PutObject to write, GetObject so the URLs presigned are honoured), the
            # courier-poll machine (start; SendTaskSuccess: task tokens are not resources, IAM takes the machine's
            # ARN), its executions (StopExecution), the carrier secrets.
            "label bucket": grants.Target((fulfilment.labels.arn_for_objects("labels/*"),)),
            "courier poll": grants.Target((fulfilment.state_machine.state_machine_arn,)),
            "courier poll executions": grants.Target((fulfilment.executions_arn(),)),
            "carrier secrets": grants.Target(tuple(s.secret_arn for s in fulfilment.secrets.values())),
            **self.notifications.targets,
            **{spec.resource: grants.Target((messaging.queues[spec.name].queue_arn,)) for spec in QUEUES},
        }
        for name, function in FUNCTIONS.items():
            grants.grant_calls(fns[name], function.aws_calls, resources)

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
        for name in FUNCTIONS:
            for variable, value in function_environment(name, {"payment_webhook_base_url": webhook_base,
                                                           "carrier_webhook_base_url": webhook_base}).items():
                fns[name].add_environment(variable, value)
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
