"""The notifier handler with moto (DynamoDB, SES, SNS): what each event sends, at most once, partial batch failures,
and the customer's inbox and preferences over the API."""

from __future__ import annotations

import importlib
import json
import uuid

import boto3
import pytest

from localrun.lambdas import LocalContext
from shop.adapters import aws, notifications, wiring
from shop.services.notifications import NotSent

ACCOUNT, REGION = "123456789012", "us-east-1"
ADDRESS_CN = {"name": "李雷", "line1": "中山路 1 号", "city": "上海", "postal_code": "200000", "country": "CN",
              "phone": "13800138000"}


@pytest.fixture
def notifier(api, monkeypatch):
    boto3.client("ses").verify_email_identity(EmailAddress="shop@example.com")
    topic = boto3.client("sns").create_topic(Name="operators")["TopicArn"]
    monkeypatch.setenv("NOTIFY_EMAIL_FROM", "shop@example.com")
    monkeypatch.setenv("OPERATOR_TOPIC_ARN", topic)
    aws.reset_clients()
    wiring.reset()
    return importlib.import_module("notifier.handler").lambda_handler


def sent():
    from moto.ses.models import ses_backends
    from moto.sns.models import sns_backends

    sns = sns_backends[ACCOUNT][REGION]
    return {"email": [(m.destinations["ToAddresses"][0], m.subject, m.body) for m in ses_backends[ACCOUNT][REGION].sent_messages],
            "sms": list(sns.sms_messages.values()),
            "operators": [(subject, text) for topic in sns.topics.values()
                          for _, text, subject, _, _ in topic.sent_notifications]}


def record(detail_type: str, detail: dict, *, event_id: str | None = None) -> dict:
    body = {"version": "0", "id": event_id or str(uuid.uuid4()), "detail-type": detail_type, "source": "shop",
            "account": ACCOUNT, "time": "2026-11-30T09:00:00Z", "region": REGION, "resources": [], "detail": detail}
    return {"messageId": str(uuid.uuid4()), "receiptHandle": "h", "body": json.dumps(body),
            "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "md5OfBody": "",
            "eventSource": "aws:sqs", "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:shop-notifications",
            "awsRegion": REGION}


def placed_order(api, user="alice", address=ADDRESS_CN) -> dict:
    code = f"SKU-{uuid.uuid4().hex[:6]}"
    assert api.admin("PUT", f"/admin/skus/{code}", body={"name": "Tee", "price": {"amount": 1999, "currency": "CNY"},
                                                         "on_hand": 5}).status in (200, 201)
    placed = api.request("POST", "/orders", user=user, headers={"Idempotency-Key": uuid.uuid4().hex},
                         body={"items": [{"sku": code, "quantity": 1}], "shipping_address": address})
    assert placed.status == 201, placed.text
    return placed.json()


def test_a_paid_order_reaches_inbox_email_and_sms_once_even_when_redelivered(api, notifier):
    assert api.request("PUT", "/me/notification-preferences", body={"email": "alice@example.com"}).status == 200
    order = placed_order(api)
    paid = record("order.paid", {"order_id": order["order_id"], "total": order["total"]})
    assert notifier({"Records": [paid]}, LocalContext("notifier")) == {"batchItemFailures": []}
    out = sent()
    assert [to for to, _, _ in out["email"]] == ["alice@example.com"]
    assert out["sms"] == [("+8613800138000", out["sms"][0][1])] and order["order_number"] in out["sms"][0][1]
    assert "支付成功" in out["email"][0][1] and "¥19.99" in out["email"][0][2]  # a CN address: Chinese
    # SQS redelivers the same record (and a twin arrives in the same batch): nothing is sent again.
    again = dict(paid, messageId=str(uuid.uuid4()))
    assert notifier({"Records": [paid, again]}, LocalContext("notifier")) == {"batchItemFailures": []}
    assert sent() == out
    inbox = api.request("GET", "/me/notifications").json()
    assert [m["type"] for m in inbox["items"]] == ["order.paid"] and inbox["next_cursor"] is None


def test_partial_batch_failure_leaves_only_the_failed_record_and_its_retry_sends_only_what_failed(
        api, notifier, monkeypatch, caplog):
    good, flaky = placed_order(api, user="bob"), placed_order(api, user="carol")
    real_sms = notifications.AwsChannels.send_sms

    def sms_down_for_carol(self, phone, body):
        if flaky["order_number"] in body:
            raise NotSent("Throttling")
        return real_sms(self, phone, body)

    monkeypatch.setattr(notifications.AwsChannels, "send_sms", sms_down_for_carol)
    records = [record("order.paid", {"order_id": good["order_id"]}), record("order.paid", {"order_id": flaky["order_id"]}),
               record("order.shipped", {"order_id": good["order_id"], "carrier": "sf", "tracking_number": "SF1"})]
    result = notifier({"Records": records}, LocalContext("notifier"))
    assert result == {"batchItemFailures": [{"itemIdentifier": records[1]["messageId"]}]}
    assert len(sent()["sms"]) == 2  # bob's paid and shipped
    logged = [vars(r) for r in caplog.records]
    assert any(r.get("to") == "+86*******8000" for r in logged)  # masked in logs, never whole
    assert "13800138000" not in json.dumps(logged, default=str)
    assert len(api.request("GET", "/me/notifications", user="carol").json()["items"]) == 1  # in-app went out

    monkeypatch.setattr(notifications.AwsChannels, "send_sms", real_sms)  # the provider is back
    assert notifier({"Records": [records[1]]}, LocalContext("notifier")) == {"batchItemFailures": []}
    assert [phone for phone, _ in sent()["sms"]] == ["+8613800138000"] * 3
    assert len(api.request("GET", "/me/notifications", user="carol").json()["items"]) == 1  # not twice


def test_a_malformed_event_is_poison_and_blocks_nothing(api, notifier):
    order = placed_order(api)
    bad = dict(record("order.paid", {}), body="not json")
    good = record("order.created", {"order_id": order["order_id"]})
    result = notifier({"Records": [bad, good]}, LocalContext("notifier"))
    assert result == {"batchItemFailures": [{"itemIdentifier": bad["messageId"]}]}
    assert [m["type"] for m in api.request("GET", "/me/notifications").json()["items"]] == ["order.created"]


def test_operators_get_stock_held_orders_and_differences_on_their_topic(api, notifier):
    order = placed_order(api)
    events = [record("stock.low", {"sku": "TEE-1", "available": 2}), record("stock.sold_out", {"sku": "TEE-1"}),
              record("order.on_hold", {"order_id": order["order_id"], "reason": "amount mismatch"}),
              record("reconciliation.mismatch", {"provider": "alipay", "date": "2026-11-29", "order_id": "ord_x",
                                                 "category": "missing", "kind": "payment", "action": "refunded"})]
    assert notifier({"Records": events}, LocalContext("notifier")) == {"batchItemFailures": []}
    subjects = [subject for subject, _ in sent()["operators"]]
    assert subjects == ["Low stock: TEE-1", "Sold out: TEE-1", f"Order held for review: {order['order_number']}",
                        "Reconciliation difference: alipay 2026-11-29"]
    # The held order's customer hears of it in the inbox too; operators' events never reach customers' inboxes.
    assert [m["type"] for m in api.request("GET", "/me/notifications").json()["items"]] == ["order.on_hold"]


def test_inbox_is_the_callers_own_newest_first_paginated(api, notifier):
    order = placed_order(api, user="dana")
    other = placed_order(api, user="erin")
    # One second of EventBridge time: the publisher's millisecond `published_at` orders them.
    times = ["2026-11-30T09:00:01.007Z", "2026-11-30T09:00:01.020Z", "2026-11-30T09:00:01.300Z"]
    records = [record(kind, {"order_id": order["order_id"], "published_at": at})
               for kind, at in zip(["order.created", "order.paid", "order.shipped"], times, strict=True)]
    records.append(record("order.created", {"order_id": other["order_id"]}))
    assert notifier({"Records": records}, LocalContext("notifier")) == {"batchItemFailures": []}
    first = api.request("GET", "/me/notifications?limit=2", user="dana").json()
    assert [m["type"] for m in first["items"]] == ["order.shipped", "order.paid"] and first["next_cursor"]
    second = api.request("GET", f"/me/notifications?limit=2&cursor={first['next_cursor']}", user="dana").json()
    assert [m["type"] for m in second["items"]] == ["order.created"] and second["next_cursor"] is None
    assert all(m["order_id"] == order["order_id"] for m in first["items"] + second["items"])
    assert [m["created_at"] for m in first["items"]] == times[:0:-1]
    assert [m["order_id"] for m in api.request("GET", "/me/notifications", user="erin").json()["items"]] == [
        other["order_id"]]
    stolen = api.request("GET", f"/me/notifications?cursor={first['next_cursor']}", user="erin")
    assert stolen.status == 422 and stolen.headers["content-type"] == "application/problem+json"
    assert api.request("GET", "/me/notifications", user=None).status == 401


def test_preferences_validated_and_applied(api, notifier):
    assert api.request("GET", "/me/notification-preferences").json() == {
        "locale": None, "email": None, "phone": None, "email_enabled": True, "sms_enabled": True}
    for bad in ({"email": "not-an-address"}, {"locale": "fr"}, {"phone": "call me"}, {"sms_enabled": "no"},
                {"unknown": 1}):
        answer = api.request("PUT", "/me/notification-preferences", body=bad)
        assert answer.status == 422 and answer.headers["content-type"] == "application/problem+json", bad
    saved = api.request("PUT", "/me/notification-preferences", body={"locale": "en", "phone": "+49 151 1234 5678",
                                                                     "sms_enabled": True})
    assert saved.status == 200 and saved.json()["phone"] == "+4915112345678"
    order = placed_order(api)  # a CN address, but the customer chose English and their own number
    assert notifier({"Records": [record("order.paid", {"order_id": order["order_id"]})]},
                    LocalContext("notifier")) == {"batchItemFailures": []}
    assert sent()["sms"] == [("+4915112345678", sent()["sms"][0][1])]
    assert sent()["sms"][0][1].startswith("We received") and sent()["email"] == []  # no address given: no e-mail
