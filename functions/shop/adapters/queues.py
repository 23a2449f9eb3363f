"""SQS producers."""

from __future__ import annotations

import json
import uuid

from shop.adapters.aws import client


class SqsReleaseQueue:
    def __init__(self, queue_url: str):
        self.queue_url = queue_url

    def request_release(self, order_id: str, reason: str) -> None:
        client("sqs").send_message(
            QueueUrl=self.queue_url,
            MessageBody=json.dumps({"order_id": order_id, "reason": reason}),
        )

    def request_hold_release(self, hold_id: str) -> None:
        client("sqs").send_message(QueueUrl=self.queue_url,
                                   MessageBody=json.dumps({"hold_id": hold_id, "reason": "sweeper"}))


class SqsRestockQueue:
    def __init__(self, queue_url: str):
        self.queue_url = queue_url

    def request_restock(self, message_id: str, sku: str, quantity: int, order_id: str | None, reason: str) -> None:
        client("sqs").send_message(
            QueueUrl=self.queue_url,
            MessageBody=json.dumps({"message_id": message_id, "sku": sku, "quantity": quantity,
                                    "order_id": order_id, "reason": reason}),
        )

    def request_rebalance(self, sku: str) -> None:
        """Even out a SKU's shards in the background (the restock consumer applies stock movements)."""
        client("sqs").send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(
            {"kind": "rebalance", "sku": sku, "message_id": f"rebalance-{uuid.uuid4().hex[:12]}"}))
