"""ShopStack: the whole system. Least privilege: each function gets exactly the calls its code makes."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_event_sources as sources
from constructs import Construct

from infra.api import Api
from infra.data import shop_table
from infra.functions import Functions
from infra.messaging import Messaging
from infra.nag import acknowledge_findings
from infra.observability import Observability
from shop.manifest import QUEUES, SWEEP_INTERVAL_SECONDS

READ_WRITE = ("create_order", "orders_api", "admin_api", "payment_webhook", "stock_release", "restock")
PUBLISHERS = ("create_order", "orders_api", "admin_api", "payment_webhook", "stock_release", "restock")
RESTOCK_PRODUCERS = ("orders_api", "admin_api", "payment_webhook")
PAYMENT_CALLERS = ("create_order", "orders_api", "admin_api", "payment_webhook")


class ShopStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        ctx = self.node.try_get_context
        table = shop_table(self, deletion_protection=bool(ctx("table_deletion_protection")))
        messaging = Messaging(self, "Messaging")
        secret_prefix = str(ctx("payment_secret_prefix") or "shop/payments/")
        environment = {
            "TABLE_NAME": table.table_name,
            "PAYMENT_WINDOW_SECONDS": str(ctx("payment_window_seconds") or 900),
            "MAX_PAYMENT_WINDOW_SECONDS": str(ctx("max_payment_window_seconds") or 3600),
            "PAYMENT_WINDOW_STATE_MACHINE_ARN": messaging.state_machine.state_machine_arn,
            "EVENT_BUS_NAME": messaging.bus.event_bus_name,
            "POWERTOOLS_METRICS_NAMESPACE": "shop",
            "LOG_LEVEL": "INFO",
            "PAYMENT_PROVIDERS_ENABLED": str(ctx("enabled_payment_providers") or "sandbox"),
            "PAYMENT_SECRET_PREFIX": secret_prefix,
            "PAYMENT_SECRETS_SOURCE": "secretsmanager",
            **{spec.env_var: messaging.queues[spec.name].queue_url for spec in QUEUES},
        }
        fns = Functions(self, "Functions", environment=environment,
                        layer_version=int(ctx("powertools_layer_version") or 27)).by_name

        for name in READ_WRITE:
            table.grant_read_write_data(fns[name])
        for name in ("catalog_api", "expiry_sweeper"):
            table.grant_read_data(fns[name])
        for name in PUBLISHERS:
            messaging.bus.grant_put_events_to(fns[name])
        for name in RESTOCK_PRODUCERS:
            messaging.queues["restock"].grant_send_messages(fns[name])
        messaging.queues["stock_release"].grant_send_messages(fns["expiry_sweeper"])
        messaging.state_machine.grant_start_execution(fns["create_order"])
        secrets_arn = self.format_arn(service="secretsmanager", resource="secret",
                                      resource_name=f"{secret_prefix}*",
                                      arn_format=__import__("aws_cdk").ArnFormat.COLON_RESOURCE_NAME)
        for name in PAYMENT_CALLERS:
            fns[name].add_to_role_policy(iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"],
                                                             resources=[secrets_arn]))

        for spec in QUEUES:
            fns[spec.consumer].add_event_source(sources.SqsEventSource(
                messaging.queues[spec.name], batch_size=spec.batch_size, report_batch_item_failures=True))
        events.Rule(self, "SweepSchedule", schedule=events.Schedule.rate(Duration.seconds(SWEEP_INTERVAL_SECONDS)),
                    targets=[targets.LambdaFunction(fns["expiry_sweeper"])])

        api = Api(self, "Api", functions=fns, throttle_rate=int(ctx("api_throttle_rate") or 100),
                  throttle_burst=int(ctx("api_throttle_burst") or 200), domain_name=str(ctx("domain_name") or ""),
                  certificate_arn=str(ctx("certificate_arn") or ""))
        Observability(self, "Observability", api=api.rest_api, functions=fns, queues=messaging.queues,
                      dead_letter_queues=messaging.dead_letter_queues, state_machine=messaging.state_machine,
                      alarm_email=str(ctx("alarm_email") or ""))
        self.table, self.messaging, self.functions, self.api = table, messaging, fns, api
        acknowledge_findings(self)
