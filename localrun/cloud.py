"""The AWS stand-ins: DynamoDB Local for the table, a moto server for Step Functions, SQS,
EventBridge and Secrets Manager. Resources are created from the same definitions CDK deploys."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import boto3
import requests
from moto.server import ThreadedMotoServer

from localrun.call_counter import CountingProxy
from localrun.dynamodb_local import DynamoDBLocal, free_port
from shop.adapters.table_schema import create_table_kwargs
from shop.manifest import EVENT_RULES, FUNCTIONS, QUEUES
from shop.settings import function_environment
from shop.workflows import COURIER_POLL_ASL, PAYMENT_WINDOW_ASL, render

REGION = "us-east-1"
ACCOUNT = "123456789012"
TABLE_NAME = "shop-local"
EVENT_BUS_NAME = "shop-events"
EVIDENCE_BUCKET = "shop-evidence-local"  # after-sales photos: presigned POSTs go straight to moto's S3
EVENTS_TAP_QUEUE = "shop-events-tap"  # a copy of every domain event, for curl and tests to read
# Notifications go to moto's SES and SNS, which keep what was sent: GET /_local/outbox lists it.
EMAIL_FROM = "shop@example.com"
OPERATOR_TOPIC = "shop-operator-notifications"
LABEL_BUCKET = "shop-labels-local"


@dataclass
class LocalCloud:
    payment_window_seconds: int = 900
    dynamodb: DynamoDBLocal | None = None
    moto: ThreadedMotoServer | None = None
    moto_url: str = ""
    queue_urls: dict[str, str] = field(default_factory=dict)
    dlq_urls: dict[str, str] = field(default_factory=dict)
    events_tap_url: str = ""
    state_machine_arn: str = ""
    operator_topic_arn: str = ""
    courier_poll_state_machine_arn: str = ""
    counter: CountingProxy | None = None

    def start(self) -> dict[str, str]:
        """Start the stand-ins, create the resources, return the environment the functions need."""
        base_env = {
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }
        os.environ.update(base_env)
        self.dynamodb = DynamoDBLocal(die_with_parent=True)
        self.dynamodb.start()
        port = free_port()
        # The Step Functions executor runs inside this process and sends its SQS calls to MOTO_PORT.
        os.environ["MOTO_PORT"] = str(port)
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.moto.start()
        self.moto_url = f"http://127.0.0.1:{port}"
        requests.post(f"{self.moto_url}/moto-api/config",
                      json={"stepfunctions": {"execute_state_machine": True}}, timeout=10).raise_for_status()
        self._create_resources()
        dynamodb_url = self.dynamodb.endpoint_url
        if os.environ.get("LOCAL_COUNT_DYNAMODB_CALLS") == "1":
            self.counter = CountingProxy(dynamodb_url)
            dynamodb_url = self.counter.url
        # The settings of the stand-ins, set as CDK sets them (shop.settings.function_environment, from the
        # manifest); the workers run every function, so they get what any function reads.
        local_settings = {
            "table_name": TABLE_NAME,
            "event_bus_name": EVENT_BUS_NAME,
            "evidence_bucket": EVIDENCE_BUCKET,
            "label_bucket": LABEL_BUCKET,
            "courier_poll_state_machine_arn": self.courier_poll_state_machine_arn,
            "notify_email_from": EMAIL_FROM,
            "notify_sms": "on",
            "operator_topic_arn": self.operator_topic_arn,  # OPERATOR_LOCALE, when set, reaches the workers as it is
            "state_machine_arn": self.state_machine_arn,
            "payment_window_seconds": str(self.payment_window_seconds),
            **{spec.setting: self.queue_urls[spec.name] for spec in QUEUES},
        }
        env = {
            **base_env,
            "MOTO_PORT": str(port),
            "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url,
            "POWERTOOLS_METRICS_NAMESPACE": "shop-local",
            **{k: v for name in FUNCTIONS for k, v in function_environment(name, local_settings).items()},
        }
        os.environ.update(env)
        return env

    def client(self, service: str):
        if service == "dynamodb":
            assert self.dynamodb is not None, "start() first"
            endpoint = self.dynamodb.endpoint_url
        else:
            endpoint = self.moto_url
        return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                            aws_access_key_id="local", aws_secret_access_key="local")

    def _create_resources(self) -> None:
        self.client("dynamodb").create_table(**create_table_kwargs(TABLE_NAME))
        s3 = self.client("s3")
        s3.create_bucket(Bucket=EVIDENCE_BUCKET)
        s3.put_bucket_cors(Bucket=EVIDENCE_BUCKET, CORSConfiguration={"CORSRules": [
            {"AllowedMethods": ["POST"], "AllowedOrigins": ["*"], "AllowedHeaders": ["*"], "MaxAgeSeconds": 3000}]})
        sqs = self.client("sqs")
        for spec in QUEUES:
            dlq_url = sqs.create_queue(QueueName=f"shop-{spec.name}-dlq")["QueueUrl"]
            dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            self.dlq_urls[spec.name] = dlq_url
            self.queue_urls[spec.name] = sqs.create_queue(
                QueueName=f"shop-{spec.name}",
                Attributes={
                    "VisibilityTimeout": str(spec.visibility_timeout_s),
                    "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                                 "maxReceiveCount": str(spec.max_receive_count)}),
                },
            )["QueueUrl"]
        definition = render(PAYMENT_WINDOW_ASL, {"StockReleaseQueueUrl": self.queue_urls["stock_release"]})
        self.state_machine_arn = self.client("stepfunctions").create_state_machine(
            name="shop-payment-window",
            definition=definition,
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/shop-payment-window",
            type="STANDARD",
        )["stateMachineArn"]
        # The parcels' courier-status loop: the very ASL file CDK deploys, the queue URL filled in.
        self.courier_poll_state_machine_arn = self.client("stepfunctions").create_state_machine(
            name="shop-courier-poll",
            definition=render(COURIER_POLL_ASL, {"CourierPollQueueUrl": self.queue_urls["courier_poll"]}),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/shop-courier-poll",
            type="STANDARD",
        )["stateMachineArn"]
        self.client("s3").create_bucket(Bucket=LABEL_BUCKET)  # waybill labels (PDF), read by presigned URLs
        events = self.client("events")
        events.create_event_bus(Name=EVENT_BUS_NAME)
        self.events_tap_url = sqs.create_queue(QueueName=EVENTS_TAP_QUEUE)["QueueUrl"]
        tap_arn = sqs.get_queue_attributes(QueueUrl=self.events_tap_url,
                                           AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="all-domain-events", EventBusName=EVENT_BUS_NAME,
                        EventPattern=json.dumps({"source": ["shop"]}))
        events.put_targets(Rule="all-domain-events", EventBusName=EVENT_BUS_NAME,
                           Targets=[{"Id": "tap", "Arn": tap_arn}])
        # The deployed rules (infra/notifications.py), from the same manifest entries: moto's bus delivers
        # matching events to the SQS target, and the queue's poller hands them to the consumer.
        for rule in EVENT_RULES:
            queue_arn = sqs.get_queue_attributes(QueueUrl=self.queue_urls[rule.queue],
                                                 AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            events.put_rule(Name=rule.name, EventBusName=EVENT_BUS_NAME, EventPattern=json.dumps(rule.pattern()))
            events.put_targets(Rule=rule.name, EventBusName=EVENT_BUS_NAME, Targets=[{"Id": rule.queue, "Arn": queue_arn}])
        self.client("ses").verify_email_identity(EmailAddress=EMAIL_FROM)
        self.operator_topic_arn = self.client("sns").create_topic(Name=OPERATOR_TOPIC)["TopicArn"]

    def outbox(self) -> list[dict[str, object]]:
        """What the notifier sent through moto's SES and SNS (this process runs the moto server)."""
        from moto.ses.models import ses_backends
        from moto.sns.models import sns_backends

        ses, sns = ses_backends[ACCOUNT][REGION], sns_backends[ACCOUNT][REGION]
        sent: list[dict[str, object]] = []
        for message in list(ses.sent_messages):
            if hasattr(message, "subject"):
                sent.append({"channel": "email", "message_id": message.id, "to": message.destinations.get("ToAddresses"),
                             "subject": message.subject, "body": message.body})
        for message_id, (phone, text) in list(sns.sms_messages.items()):
            sent.append({"channel": "sms", "message_id": message_id, "to": phone, "body": text})
        topic = sns.topics.get(self.operator_topic_arn)
        for message_id, text, subject, attributes, _ in list(topic.sent_notifications if topic else []):
            kind = (attributes or {}).get("detail_type", {})
            sent.append({"channel": "operators", "message_id": message_id, "to": OPERATOR_TOPIC, "subject": subject,
                         "body": text, "type": kind.get("Value") or kind.get("StringValue")})
        return sent

    def stop(self) -> None:
        """Idempotent: the server calls it on the way out and again at exit."""
        counter, moto, dynamodb = self.counter, self.moto, self.dynamodb
        self.counter = self.moto = None
        try:
            if counter:
                counter.stop()
            if moto:
                moto.stop()
        finally:
            if dynamodb:
                dynamodb.stop()
