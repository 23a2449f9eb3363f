"""Fulfilment: the waybill label bucket, the courier-poll state machine (one execution per parcel) and the carrier
secrets. The queue and the functions come from the manifest like every other."""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, RemovalPolicy, SecretValue, Stack
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.messaging import queue_state_machine
from shop.workflows import COURIER_POLL_ASL, COURIER_POLL_SUBSTITUTIONS

LABEL_RETENTION = Duration.days(180)  # a label is printed at once; kept half a year for disputes, then deleted


class Fulfilment(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, poll_queue: sqs.IQueue, secret_prefix: str,
                 carriers: list[str]):
        super().__init__(scope, construct_id)
        self.labels = s3.Bucket(
            self, "Labels",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=False,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(id="expire-labels", expiration=LABEL_RETENTION,
                                              abort_incomplete_multipart_upload_after=Duration.days(1))],
            # Kept when the stack is deleted (labels of parcels under way), deleted if the first create rolls back.
            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
        )
        # The parcel's loop (sqs:sendMessage.waitForTaskToken sends to the poll queue, nothing else).
        self.state_machine = queue_state_machine(self, "CourierPoll", COURIER_POLL_ASL,
                                                 {"CourierPollQueueUrl": poll_queue.queue_url},
                                                 COURIER_POLL_SUBSTITUTIONS, poll_queue)
        self.secrets = {
            carrier: secretsmanager.Secret(
                self, f"{carrier}-secret", secret_name=f"{secret_prefix}{carrier}",
                description=f"{carrier} keys (JSON object; the keys are listed in docs/fulfilment.md)",
                secret_string_value=SecretValue.unsafe_plain_text("{}"),  # not a secret: an empty object
                removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE)
            for carrier in carriers
        }

    def executions_arn(self) -> str:
        """ARN pattern of this state machine's executions (StopExecution acts on an execution)."""
        stack = Stack.of(self)
        return stack.format_arn(service="states", resource="execution",
                                resource_name=f"{self.state_machine.state_machine_name}:*",
                                arn_format=ArnFormat.COLON_RESOURCE_NAME)
