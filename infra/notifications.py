"""Notifications: the EventBridge rules that send domain events to the notifier's queue (shop.manifest.EVENT_RULES,
which the local run puts on its bus too), the operators' SNS topic, and the resources the notifier's sending rights name."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.grants import Target
from shop.manifest import EVENT_RULES


class Notifications(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, bus: events.IEventBus, queues: dict[str, sqs.Queue],
                 dead_letter_queues: dict[str, sqs.Queue], email_from: str, sms: bool, operator_email: str):
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
        stack = Stack.of(self)
        # What the notifier's manifest calls name (infra/grants.py grants exactly those): the operators' topic; SMS
        # to phone numbers, a direct publish with no topic and so no resource ARN (IAM only accepts "*"; the sid
        # lets tests/deploy and cdk-nag recognise it); e-mail from the configured sender only (either identity may
        # be the verified one: the address, or its whole domain). Without a sender or with SMS off: no right.
        domain = email_from.rpartition("@")[2]
        self.targets = {
            "operator topic": Target((self.operator_topic.topic_arn,)),
            "phone numbers": Target(("*",) if sms else (), sid="SmsToPhoneNumbers"),
            "sender identity": Target(
                tuple(stack.format_arn(service="ses", resource="identity", resource_name=name)
                      for name in (email_from, domain)) if email_from else (),
                conditions={"StringEquals": {"ses:FromAddress": email_from}}),
        }
