"""Notifications: the EventBridge rules that send domain events to the notifier's queue (shop.manifest.EVENT_RULES,
which the local run puts on its bus too), the operators' SNS topic, and the notifier's exact sending rights."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from shop.manifest import EVENT_RULES


class Notifications(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, bus: events.IEventBus, queues: dict[str, sqs.Queue],
                 dead_letter_queues: dict[str, sqs.Queue], notifier: lambda_.Function, email_from: str,
                 sms: bool, operator_email: str, operator_locale: str):
        super().__init__(scope, construct_id)
        self.rules = [events.Rule(
            self, f"{spec.name}-rule", event_bus=bus, description=f"Domain events for the {spec.queue} queue",
            event_pattern=events.EventPattern(source=spec.pattern()["source"], detail_type=list(spec.detail_types)),
            # Events EventBridge cannot deliver (after its retries) wait in the queue's dead-letter queue.
            targets=[targets.SqsQueue(queues[spec.queue], dead_letter_queue=dead_letter_queues[spec.queue])],
        ) for spec in EVENT_RULES]
        # Encrypted with the AWS-managed SNS key: only the notifier publishes (CloudWatch alarms, which cannot use
        # that key, go to the alarm topic of infra/observability.py).
        self.operator_topic = sns.Topic(
            self, "OperatorNotifications", display_name="Shop operators", enforce_ssl=True,
            master_key=kms.Alias.from_alias_name(self, "SnsManagedKey", "alias/aws/sns"))
        if operator_email:
            self.operator_topic.add_subscription(subs.EmailSubscription(operator_email))
        principal = notifier.grant_principal
        principal.add_to_principal_policy(iam.PolicyStatement(
            actions=["sns:Publish"], resources=[self.operator_topic.topic_arn]))
        stack = Stack.of(self)
        if email_from:
            domain = email_from.rpartition("@")[2]
            # Either identity may be the verified one (the address, or its whole domain); only this sender.
            principal.add_to_principal_policy(iam.PolicyStatement(
                actions=["ses:SendEmail"],
                resources=[stack.format_arn(service="ses", resource="identity", resource_name=name)
                           for name in (email_from, domain)],
                conditions={"StringEquals": {"ses:FromAddress": email_from}}))
        if sms:
            # A direct SMS publish (PhoneNumber, no topic) has no resource ARN to name: IAM only accepts "*".
            # Statement sid lets tests/deploy and cdk-nag recognise it.
            principal.add_to_principal_policy(iam.PolicyStatement(
                sid="SmsToPhoneNumbers", actions=["sns:Publish"], resources=["*"]))
        notifier.add_environment("NOTIFY_EMAIL_FROM", email_from)
        notifier.add_environment("NOTIFY_SMS", "on" if sms else "off")
        notifier.add_environment("OPERATOR_TOPIC_ARN", self.operator_topic.topic_arn)
        notifier.add_environment("OPERATOR_LOCALE", operator_locale)
