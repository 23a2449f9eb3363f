"""Alarms on what means lost money, stuck stock or unhappy customers, and one dashboard with the same figures.

Rates, not counts, for errors (a single designed 503 is not a page): each function's error rate and p99 duration,
each route's 5xx rate and p99 latency, the API's 5xx rate; counts only where one event already matters (throttles,
dead letters, failed or throttled executions, DynamoDB throttling, events not published)."""

from __future__ import annotations

from typing import cast

from aws_cdk import Duration, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as ddb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.api import STAGE
from shop.adapters import table_schema
from shop.adapters.events import EVENTS_NOT_PUBLISHED
from shop.manifest import FUNCTIONS, ROUTES
from shop.payments.base import NOT_CONFIGURED_METRIC, NOT_CONFIGURED_SERVICE

RELEASE_LAG_SECONDS = 300
NAMESPACE = "shop"
ERROR_RATE_PERCENT = 5  # a function's errors, or a route's 5xx answers, per 100 invocations or requests
ROUTE_LATENCY_P99_MS = 3000  # what a shopper waits at most, 99 times in 100
DURATION_P99_SHARE = 0.8  # a function's p99 duration near its timeout: about to time out


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

        def alarm(name: str, metric: cw.IMetric, threshold: float, description: str, *, periods: int = 1) -> None:
            created = cw.Alarm(self, name, metric=metric, threshold=threshold, evaluation_periods=periods,
                               datapoints_to_alarm=periods,
                               comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                               treat_missing_data=cw.TreatMissingData.NOT_BREACHING, alarm_description=description)
            created.add_alarm_action(action)
            self.alarms.append(created)

        def rate(label: str, part: cw.IMetric, whole: cw.IMetric) -> cw.MathExpression:
            return cw.MathExpression(expression="IF(whole > 0, 100 * part / whole, 0)", label=label,
                                     using_metrics={"part": part, "whole": whole}, period=five_min)

        five_min = Duration.minutes(5)
        # API Gateway's 5XXError is 0 or 1 per request: its average is the share of 5xx answers. Keyed by the
        # API's name, unique per stage (shop-{stage}-api).
        alarm("Api5xx", api.metric_server_error(period=five_min, statistic="Average"), ERROR_RATE_PERCENT / 100,
              f"More than {ERROR_RATE_PERCENT}% of the API's answers were 5xx for 10 minutes", periods=2)
        for name, fn in functions.items():
            alarm(f"{name}-error-rate", rate(f"{name} error %", fn.metric_errors(period=five_min),
                                             fn.metric_invocations(period=five_min)), ERROR_RATE_PERCENT,
                  f"More than {ERROR_RATE_PERCENT}% of {name}'s invocations failed")
            timeout_ms = FUNCTIONS[name].timeout_s * 1000 if name in FUNCTIONS else (fn.timeout.to_milliseconds() if fn.timeout else 3000)  # Lambda's default
            alarm(f"{name}-duration-p99", fn.metric_duration(period=five_min, statistic="p99"),
                  round(DURATION_P99_SHARE * timeout_ms),
                  f"{name}'s p99 duration is near its timeout ({timeout_ms} ms)")
            alarm(f"{name}-throttles", fn.metric_throttles(period=five_min), 1, f"{name} was throttled")
        # Per route (the stage has detailed metrics on: dimensions ApiName, Stage, Resource, Method): one alarm for
        # both the 5xx rate and the p99 latency (metric math), not two: CloudFormation caps a stack at 500
        # resources, and two alarms per route would spend 120 of them.
        for route in ROUTES:
            route_id = f"{route.method}{route.path}".replace("/", "-").replace("{", "").replace("}", "")
            dims = {"ApiName": api.rest_api_name, "Stage": STAGE, "Resource": route.path, "Method": route.method}
            errors = cw.Metric(namespace="AWS/ApiGateway", metric_name="5XXError", statistic="Average",
                               period=five_min, dimensions_map=dims)
            latency = cw.Metric(namespace="AWS/ApiGateway", metric_name="Latency", statistic="p99",
                                period=five_min, dimensions_map=dims)
            alarm(f"Route{route_id}-health", cw.MathExpression(
                expression=f"IF(errors >= {ERROR_RATE_PERCENT / 100} OR latency >= {ROUTE_LATENCY_P99_MS}, 1, 0)",
                using_metrics={"errors": errors, "latency": latency}, period=five_min,
                label=f"{route.method} {route.path} unhealthy"), 1,
                  f"{route.method} {route.path}: more than {ERROR_RATE_PERCENT}% 5xx or p99 latency over "
                  f"{ROUTE_LATENCY_P99_MS} ms", periods=2)
        # DynamoDB throttling, of the table and of each index (an index that cannot keep up throttles table writes).
        table = cast(ddb.ITable, Stack.of(self).node.find_child("Table"))  # infra/data.py shop_table
        table_name = table.table_name
        throttles = {"read": cw.Metric(namespace="AWS/DynamoDB", metric_name="ReadThrottleEvents", statistic="Sum",
                                       period=five_min, dimensions_map={"TableName": table_name}),
                     "write": cw.Metric(namespace="AWS/DynamoDB", metric_name="WriteThrottleEvents", statistic="Sum",
                                        period=five_min, dimensions_map={"TableName": table_name})}
        for i, index in enumerate(table_schema.create_table_kwargs("t")["GlobalSecondaryIndexes"]):
            throttles[f"gsi{i}"] = cw.Metric(namespace="AWS/DynamoDB", metric_name="WriteThrottleEvents", statistic="Sum",
                                             period=five_min, dimensions_map={"TableName": table_name,
                                                                              "GlobalSecondaryIndexName": index["IndexName"]})
        alarm("TableThrottled", cw.MathExpression(expression="+".join(throttles), using_metrics=throttles,
                                                  label="DynamoDB throttle events", period=five_min), 1,
              "DynamoDB throttled reads or writes of the table or an index (on-demand: a partition is over its "
              "limits, or the table's maximum throughput)")
        alarm("PaymentWindowThrottled", state_machine.metric("ExecutionThrottled", period=five_min, statistic="Sum"), 1,
              "Step Functions throttled payment-window executions (StartExecution or state transitions over quota)")
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
