"""Event source mappings and schedules, locally: SQS pollers and the expiry sweeper's timer."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import boto3

from shop.manifest import QueueSpec

log = logging.getLogger("localrun")
Invoke = Callable[[str, dict[str, Any]], dict[str, Any]]


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The batch event Lambda's SQS event source mapping sends."""
    return {"Records": [{
        "messageId": m["MessageId"],
        "receiptHandle": m["ReceiptHandle"],
        "body": m["Body"],
        "attributes": m.get("Attributes", {}),
        "messageAttributes": m.get("MessageAttributes", {}),
        "md5OfBody": m.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1",
    } for m in messages]}


class Health:
    """What a poller or a timer last did, for GET /_local/health."""

    def __init__(self) -> None:
        self.last_ok: float | None = None
        self.last_error: str | None = None
        self.failures_in_a_row = 0

    def ok(self) -> None:
        self.last_ok, self.failures_in_a_row = time.time(), 0

    def failed(self, error: Exception) -> None:
        self.last_error = f"{type(error).__name__}: {error}"
        self.failures_in_a_row += 1

    def status(self, alive: bool) -> dict[str, Any]:
        return {"status": "ok" if alive else "down", "last_ok": self.last_ok, "last_error": self.last_error,
                "failures_in_a_row": self.failures_in_a_row}


class QueuePoller(threading.Thread):
    """Receives batches and deletes what the handler did not report in batchItemFailures.

    Failed messages become visible again after `retry_delay_s` (Lambda waits the queue's
    visibility timeout; locally it is shortened so redrive to the DLQ happens in seconds).
    """

    def __init__(self, spec: QueueSpec, queue_url: str, invoke: Invoke, sqs: Any, retry_delay_s: int):
        super().__init__(name=f"poller-{spec.name}", daemon=True)
        self.spec, self.queue_url, self.invoke, self.sqs = spec, queue_url, invoke, sqs
        self.retry_delay_s = retry_delay_s
        self.queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"]
        self.stopping = threading.Event()
        self.health = Health()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.poll_once()
                self.health.ok()
            except Exception as error:  # noqa: BLE001 - keep polling, like the event source mapping does
                log.exception("poller %s failed", self.spec.name)
                self.health.failed(error)
                time.sleep(1)

    def status(self) -> dict[str, Any]:
        return self.health.status(self.is_alive())

    def poll_once(self) -> int:
        got = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=self.spec.batch_size,
                                       WaitTimeSeconds=1, AttributeNames=["All"], MessageAttributeNames=["All"])
        messages = got.get("Messages", [])
        if not messages:
            return 0
        result = self.invoke(self.spec.consumer, sqs_event(messages, self.queue_arn))
        if "__function_error__" in result:
            failed = {m["MessageId"] for m in messages}
            log.warning("consumer %s failed: %s", self.spec.consumer, result["__function_error__"])
        else:
            failed = {f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])}
        for m in messages:
            if m["MessageId"] in failed:
                self.sqs.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"],
                                                   VisibilityTimeout=self.retry_delay_s)
            else:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
        return len(messages)


class Schedule(threading.Thread):
    """Invokes a function with an EventBridge scheduled event every `interval_s`."""

    def __init__(self, function: str, interval_s: float, invoke: Invoke):
        super().__init__(name=f"schedule-{function}", daemon=True)
        self.function, self.interval_s, self.invoke = function, interval_s, invoke
        self.stopping = threading.Event()
        self.health = Health()

    def status(self) -> dict[str, Any]:
        return {**self.health.status(self.is_alive()), "interval_s": self.interval_s}

    def run(self) -> None:
        while not self.stopping.wait(self.interval_s):
            try:
                result = self.invoke(self.function, {
                    "version": "0", "id": f"local-{time.time_ns()}", "detail-type": "Scheduled Event",
                    "source": "aws.events", "account": "123456789012", "region": "us-east-1",
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "resources": [], "detail": {},
                })
                if "__function_error__" in result:
                    raise RuntimeError(result["__function_error__"])
                self.health.ok()
            except Exception as error:  # noqa: BLE001 - the next tick runs anyway, as EventBridge's would
                log.exception("scheduled %s failed", self.function)
                self.health.failed(error)


def make_sqs_client(endpoint: str) -> Any:
    return boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="local", aws_secret_access_key="local")
