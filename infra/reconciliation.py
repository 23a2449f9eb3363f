"""Daily reconciliation: the schedule that runs it and the alarms that take its failures and differences to
operators (the same SNS topic as every other alarm)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from constructs import Construct

from shop.manifest import RECONCILIATION_SCHEDULE_UTC

NAMESPACE = "shop"
# (metric the function emits, what the alarm says)
ALARMS = {
    "ReconciliationFailed": "A provider's statement could not be reconciled (download, hash or summary check failed)",
    "ReconciliationDifferences": "Daily reconciliation found differences: GET /admin/reconciliation/{date}",
}


class DailyReconciliation(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, function: lambda_.IFunction, topic: sns.ITopic):
        super().__init__(scope, construct_id)
        self.rule = events.Rule(self, "Schedule", schedule=events.Schedule.cron(**RECONCILIATION_SCHEDULE_UTC),
                                targets=[targets.LambdaFunction(function)])
        self.alarms: list[cw.Alarm] = []
        for name, description in ALARMS.items():
            metric = cw.Metric(namespace=NAMESPACE, metric_name=name, statistic="Sum", period=Duration.hours(1),
                               dimensions_map={"service": "reconciliation"})
            alarm = cw.Alarm(self, name, metric=metric, threshold=1, evaluation_periods=1,
                             comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                             treat_missing_data=cw.TreatMissingData.NOT_BREACHING, alarm_description=description)
            alarm.add_alarm_action(cw_actions.SnsAction(topic))
            self.alarms.append(alarm)
