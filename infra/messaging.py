"""Queues (with dead-letter queues), the domain event bus and the payment-window state machine."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import grants
from shop.manifest import QUEUES, QueueSpec
from shop.workflows import PAYMENT_WINDOW_ASL, PAYMENT_WINDOW_SUBSTITUTIONS

DLQ_RETENTION = Duration.days(14)
# Every domain event is archived, so consumers added later (or a fixed one) can replay what they missed:
# https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-archive.html. Retention: context
# event_archive_retention_days (infra/stack.py; 0 keeps events for ever).


def queue_state_machine(scope: Construct, name: str, asl: Path, substitutions: dict[str, str],
                        expected: Iterable[str], queue: sqs.IQueue) -> sfn.StateMachine:
    """A standard state machine from the very ASL file the local run executes (only `substitutions` filled in:
    exactly the names the file expects), traced, logging every execution to its own log group, allowed only
    sqs:SendMessage on `queue` (what its SQS integration sends, nothing else)."""
    assert set(substitutions) == set(expected)
    log_group = logs.LogGroup(scope, f"{name}Logs", retention=logs.RetentionDays.ONE_MONTH,
                              removal_policy=RemovalPolicy.DESTROY)
    machine = sfn.StateMachine(
        scope, name,
        state_machine_type=sfn.StateMachineType.STANDARD,
        definition_body=sfn.DefinitionBody.from_file(str(asl)),
        definition_substitutions=substitutions,
        tracing_enabled=True,
        logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
    )
    grants.send_messages(queue, machine)
    return machine


class Messaging(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, archive_retention_days: int = 90):
        super().__init__(scope, construct_id)
        self.queues: dict[str, sqs.Queue] = {}
        self.dead_letter_queues: dict[str, sqs.Queue] = {}
        for spec in QUEUES:
            self._queue(spec)
        self.bus = events.EventBus(self, "DomainEvents", event_bus_name=None)
        self.archive = self.bus.archive("DomainEventsArchive", description="Every domain event, for replay",
                                        event_pattern=events.EventPattern(account=[Stack.of(self).account]),
                                        retention=Duration.days(archive_retention_days)
                                        if archive_retention_days else None)
        self.state_machine = self._payment_window()

    def _queue(self, spec: QueueSpec) -> None:
        dlq = sqs.Queue(self, f"{spec.name}-dlq", encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
                        retention_period=DLQ_RETENTION)
        queue = sqs.Queue(
            self, spec.name,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=Duration.seconds(spec.visibility_timeout_s),
            dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=spec.max_receive_count),
        )
        self.queues[spec.name], self.dead_letter_queues[spec.name] = queue, dlq

    def _payment_window(self) -> sfn.StateMachine:
        release_queue = self.queues["stock_release"]
        return queue_state_machine(self, "PaymentWindow", PAYMENT_WINDOW_ASL,
                                   {"StockReleaseQueueUrl": release_queue.queue_url}, PAYMENT_WINDOW_SUBSTITUTIONS,
                                   release_queue)
