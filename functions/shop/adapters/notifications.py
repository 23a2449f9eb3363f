"""Notifications in the shop table (claims, in-app inbox, preferences) and the channels: SES e-mail, SNS SMS and
the operators' SNS topic.

Items (pk / sk):
- NOTIFY#{event_id}#{channel}#{recipient} / NOTIFY   the claim of one message: sending, sent, failed (may be
                                                      claimed again), rejected or unknown (ttl)
- INBOX#{sub} / {event time}#{event_id}              one in-app message (ttl), newest first by its sort key
- CUSTOMER#{sub} / NOTIFY_PREFS                      the customer's notification preferences
"""

from __future__ import annotations

import random
import time
from functools import lru_cache
from typing import Any, NoReturn

from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError

from shop.adapters import items as it
from shop.adapters.aws import client
from shop.adapters.dynamo_store import MAX_PAGE, decode_listing_cursor, encode_listing_cursor, listing_scope
from shop.domain.notifications import EMAIL, IN_APP, OPERATORS, SMS, Preferences
from shop.domain.statuses import DeliveryStatus
from shop.services.notifications import Delivery, NotifyPorts, NotSent, Undeliverable
from shop.settings import get_settings

CONDITION_FAILED = "ConditionalCheckFailedException"
CONFLICT_ATTEMPTS = 4  # an in-app message written by two deliveries at once: one transaction conflicts, retries
# Provider answers that mean "not sent, try later" (throttles, transient service faults).
TRANSIENT = frozenset({"Throttling", "ThrottlingException", "ThrottledException", "TooManyRequestsException",
                       "ServiceUnavailable", "ServiceUnavailableException", "InternalFailure", "InternalError",
                       "KMSThrottlingException", "RequestLimitExceeded"})


def claim_key(delivery: Delivery) -> dict[str, str]:
    return {"pk": f"NOTIFY#{delivery.claim_id}", "sk": "NOTIFY"}


def inbox_partition(customer_id: str) -> str:
    return f"INBOX#{customer_id}"


def preferences_key(customer_id: str) -> dict[str, str]:
    return {"pk": f"CUSTOMER#{customer_id}", "sk": "NOTIFY_PREFS"}


class DynamoNotificationStore:
    def __init__(self, table_name: str):
        self.table = table_name
        self.db = client("dynamodb")

    def preferences(self, customer_id: str) -> Preferences:
        got = self.db.get_item(TableName=self.table, Key=it.encode(preferences_key(customer_id)), ConsistentRead=True)
        return Preferences.from_dict(it.decode(got["Item"]) if "Item" in got else None)

    def save_preferences(self, customer_id: str, preferences: Preferences) -> None:
        self.db.put_item(TableName=self.table, Item=it.encode({
            **preferences_key(customer_id), "entity": "NOTIFY_PREFS", **preferences.to_dict()}))

    def claim(self, delivery: Delivery, *, ttl: int, inbox: dict[str, Any] | None = None) -> bool:
        """True if this call owns the message now: nobody claimed it, or an earlier claim certainly failed."""
        claim = {**claim_key(delivery), "entity": "NOTIFY", "status": DeliveryStatus.SENDING, "channel": delivery.channel,
                 "detail_type": delivery.event.detail_type, "event_id": delivery.event.event_id, "ttl": ttl}
        if inbox is None:
            try:
                self.db.put_item(TableName=self.table, Item=it.encode(claim),
                                 ConditionExpression="attribute_not_exists(pk) OR #status = :failed",
                                 ExpressionAttributeNames={"#status": "status"},
                                 ExpressionAttributeValues=it.encode({":failed": DeliveryStatus.FAILED}))
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == CONDITION_FAILED:
                    return False
                raise
            return True
        message = {"pk": inbox_partition(delivery.recipient), "sk": f"{delivery.event.time}#{delivery.event.event_id}",
                   "entity": "INBOX", **inbox, "ttl": ttl}
        reasons: list[str | None] = []
        for attempt in range(CONFLICT_ATTEMPTS):
            try:
                self.db.transact_write_items(TransactItems=[
                    {"Put": {"TableName": self.table, "Item": it.encode({**claim, "status": DeliveryStatus.SENT}),
                             "ConditionExpression": "attribute_not_exists(pk)"}},
                    {"Put": {"TableName": self.table, "Item": it.encode(message),
                             "ConditionExpression": "attribute_not_exists(pk)"}},
                ])
                return True
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise
                reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
                if "ConditionalCheckFailed" in reasons:
                    return False
                time.sleep(0.05 * (attempt + 1) * random.random())  # a concurrent twin: it wins or we do
        raise NotSent(f"inbox write cancelled: {reasons}")  # the record comes back and finds the twin's claim

    def finish(self, delivery: Delivery, status: DeliveryStatus, detail: str = "") -> None:
        self.db.update_item(TableName=self.table, Key=it.encode(claim_key(delivery)),
                            UpdateExpression="SET #status = :status, outcome = :detail",
                            ExpressionAttributeNames={"#status": "status"},
                            ExpressionAttributeValues=it.encode({":status": status, ":detail": detail or "-"}))

    def inbox(self, customer_id: str, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """The customer's messages, newest first; the cursor is the last sort key of the page."""
        partition = inbox_partition(customer_id)
        scope = listing_scope("inbox", partition)
        last = decode_listing_cursor(cursor, scope)
        want = max(1, min(limit, MAX_PAGE))
        request: dict[str, Any] = {
            "TableName": self.table, "ScanIndexForward": False, "Limit": want + 1,
            "KeyConditionExpression": "pk = :pk" + (" AND sk < :last" if last else ""),
            "ExpressionAttributeValues": it.encode({":pk": partition, **({":last": last} if last else {})}),
        }
        got = self.db.query(**request)
        found = [it.decode(raw) for raw in got.get("Items", [])]
        page, more = found[:want], len(found) > want or ("LastEvaluatedKey" in got and len(found) >= want)
        next_cursor = encode_listing_cursor(scope, page[-1]["sk"]) if more and page else None
        keys = ("notification_id", "type", "subject", "body", "locale", "order_id", "created_at")
        return [{k: item.get(k) for k in keys} for item in page], next_cursor


def _raise_for(error: Exception) -> NoReturn:
    """Provider errors as the service reads them: NotSent (retry), Undeliverable (never), else unknown."""
    if isinstance(error, (ConnectTimeoutError, EndpointConnectionError)):  # the request never arrived
        raise NotSent(type(error).__name__) from error
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in TRANSIENT or status == 429 or status >= 500:
            raise NotSent(code or str(status)) from error
        raise Undeliverable(code or str(status)) from error  # 4xx: this request will never succeed
    raise error


class AwsChannels:
    """E-mail through SES (from a verified identity), SMS through SNS, operators' messages on an SNS topic.
    A channel without its setting (no sender address, no topic, SMS off) is disabled."""

    def __init__(self, email_from: str, operator_topic_arn: str, sms_enabled: bool):
        self.email_from, self.operator_topic_arn, self.sms_enabled = email_from, operator_topic_arn, sms_enabled

    def enabled(self, channel: str) -> bool:
        return {IN_APP: True, EMAIL: bool(self.email_from), SMS: self.sms_enabled,
                OPERATORS: bool(self.operator_topic_arn)}.get(channel, False)

    def send_email(self, to: str, subject: str, body: str) -> str:
        try:
            sent = client("ses").send_email(
                Source=self.email_from, Destination={"ToAddresses": [to]},
                Message={"Subject": {"Data": subject, "Charset": "UTF-8"},
                         "Body": {"Text": {"Data": body, "Charset": "UTF-8"}}})
        except Exception as error:  # noqa: BLE001 - classified: retry, never, or unknown
            _raise_for(error)
        return str(sent["MessageId"])

    def send_sms(self, phone: str, body: str) -> str:
        try:
            sent = client("sns").publish(PhoneNumber=phone, Message=body, MessageAttributes={
                "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"}})
        except Exception as error:  # noqa: BLE001
            _raise_for(error)
        return str(sent["MessageId"])

    def publish_operators(self, subject: str, body: str, detail_type: str) -> str:
        # SNS subjects must be ASCII, under 100 characters: a Chinese subject goes on the message's first line.
        ascii_subject = subject if subject.isascii() and len(subject) < 100 else None
        message = body if ascii_subject else f"{subject}\n\n{body}"
        try:
            sent = client("sns").publish(
                TopicArn=self.operator_topic_arn, Message=message, **({"Subject": ascii_subject} if ascii_subject else {}),
                # Subscribers may filter on it (a subscription filter policy on detail_type).
                MessageAttributes={"detail_type": {"DataType": "String", "StringValue": detail_type}})
        except Exception as error:  # noqa: BLE001
            _raise_for(error)
        return str(sent["MessageId"])


@lru_cache(maxsize=1)
def notify_ports() -> NotifyPorts:
    """The notifier's adapters from the settings (NOTIFY_EMAIL_FROM, NOTIFY_SMS, OPERATOR_TOPIC_ARN,
    OPERATOR_LOCALE: shop.settings)."""
    from shop.adapters.wiring import default_ports

    settings = get_settings()
    return NotifyPorts(
        orders=default_ports().store,
        store=DynamoNotificationStore(settings.table_name),
        channels=AwsChannels(email_from=settings.notify_email_from, operator_topic_arn=settings.operator_topic_arn,
                             sms_enabled=settings.sms_enabled()),
        operator_locale=settings.operator_locale,
    )
