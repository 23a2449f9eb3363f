"""Alarms on what means lost money or stuck stock, and one dashboard with the same figures."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from shop.adapters.events import EVENTS_NOT_PUBLISHED
from shop.payments.base import NOT_CONFIGURED_METRIC, NOT_CONFIGURED_SERVICE

RELEASE_LAG_SECONDS = 300
NAMESPACE = "shop"


class Observability(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, api: apigw.RestApi,
                 functions: dict[str, lambda_.Function], queues: dict[str, sqs.Queue],
                 dead_letter_queues: dict[str, sqs.Queue], state_machine: sfn.StateMachine, alarm_email: str,
                 publishers: tuple[str, ...], providers: tuple[str, ...]):
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(self, "Alarms", enforce_ssl=True)
        if alarm_email:
            self.topic.add_subscription(subs.EmailSubscription(alarm_email))
        action = cw_actions.SnsAction(self.topic)
        self.alarms: list[cw.Alarm] = []

        def alarm(name: str, metric: cw.IMetric, threshold: float, description: str) -> None:
            created = cw.Alarm(self, name, metric=metric, threshold=threshold, evaluation_periods=1,
                               comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                               treat_missing_data=cw.TreatMissingData.NOT_BREACHING, alarm_description=description)
            created.add_alarm_action(action)
            self.alarms.append(created)

        five_min = Duration.minutes(5)
        alarm("Api5xx", api.metric_server_error(period=five_min), 1, "The API answered 5xx")
        for name, fn in functions.items():
            alarm(f"{name}-errors", fn.metric_errors(period=five_min), 1, f"{name} failed")
            alarm(f"{name}-throttles", fn.metric_throttles(period=five_min), 1, f"{name} was throttled")
        for name, dlq in dead_letter_queues.items():
            alarm(f"{name}-dlq-depth", dlq.metric_approximate_number_of_messages_visible(period=five_min), 1,
                  f"Messages gave up on {name} and wait in its dead-letter queue")
        alarm("PaymentWindowFailed", state_machine.metric_failed(period=five_min), 1,
              "A payment-window execution failed: the sweeper will expire the order, but look why")
        alarm("StockReleaseLag", queues["stock_release"].metric_approximate_age_of_oldest_message(period=five_min),
              RELEASE_LAG_SECONDS, "Expired orders wait too long for their stock to be released")

        lost = {f"m{i}": cw.Metric(namespace=NAMESPACE, metric_name=EVENTS_NOT_PUBLISHED, statistic="Sum",
                                   period=five_min, dimensions_map={"service": name})
                for i, name in enumerate(publishers)}
        alarm("EventsNotPublished", cw.MathExpression(expression="+".join(lost), using_metrics=lost,
                                                      label="events not published", period=five_min), 1,
              "Committed changes whose domain event could not be put on the bus (the change itself is safe)")

        # An enabled provider missing its secret or setting answers 503 provider-not-configured: not an outage,
        # nothing retries it away. Counted wherever it is raised, with a constant service (shop/payments/base.py).
        unconfigured = {f"p{i}": cw.Metric(namespace=NAMESPACE, metric_name=NOT_CONFIGURED_METRIC, statistic="Sum",
                                           period=five_min,
                                           dimensions_map={"provider": name, "service": NOT_CONFIGURED_SERVICE})
                        for i, name in enumerate(providers)}
        alarm("ProviderNotConfigured", cw.MathExpression(expression="+".join(unconfigured), using_metrics=unconfigured,
                                                         label="provider not configured", period=five_min), 1,
              "An enabled payment provider has no secret or setting: its orders and webhooks answer 503 "
              "provider-not-configured until its secret is filled in")

        def business(name: str, service: str, **dimensions: str) -> cw.Metric:
            return cw.Metric(namespace=NAMESPACE, metric_name=name, statistic="Sum", period=five_min,
                             dimensions_map={"service": service, **dimensions}, label=" ".join([name, *dimensions.values()]))

        # The webhook's metrics carry the provider as a dimension too (Powertools EMF: [provider, service]).
        orders = [business("OrdersCreated", "create_order"), business("OrdersRejectedForStock", "create_order"),
                  business("OrdersExpired", "stock_release")]
        webhooks = [business(name, "payment_webhook", provider=provider)
                    for name in ("OrdersPaid", "WebhookFailures") for provider in providers]
        dashboard = cw.Dashboard(self, "Dashboard")
        dashboard.add_widgets(
            cw.GraphWidget(title="Orders", left=orders, width=12),
            cw.GraphWidget(title="Payments by provider", left=webhooks, width=12),
            cw.GraphWidget(title="API", left=[api.metric_count(period=five_min), api.metric_server_error(period=five_min),
                                              api.metric_client_error(period=five_min)],
                           right=[api.metric_latency(period=five_min)], width=12),
            cw.GraphWidget(title="Lambda errors", left=[fn.metric_errors(period=five_min) for fn in functions.values()],
                           width=12),
            cw.GraphWidget(title="Queues", left=[q.metric_approximate_age_of_oldest_message(period=five_min)
                                                 for q in queues.values()],
                           right=[q.metric_approximate_number_of_messages_visible(period=five_min)
                                  for q in dead_letter_queues.values()], width=12),
            cw.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=24),
        )
