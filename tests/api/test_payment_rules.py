"""More webhook and payment rules through the real handlers (moto): secrets from Secrets Manager, raw bodies,
currency mismatches, out-of-order events, per-address risk holds, refunds with restock, metrics."""

from __future__ import annotations

import base64
import importlib
import json

import boto3
import pytest

from localrun.fake_providers import signed_webhook
from localrun.gateway import match, proxy_event
from localrun.lambdas import LocalContext
from shop.domain.money import Money
from shop.payments.signing import hmac_header
from tests.api.conftest import Result
from tests.api.test_expiry_and_restock import deliver, levels
from tests.api.test_orders_api import make_sku, order_body, place
from tests.api.test_payment_webhooks import KEYS, get, pay, records

pytestmark = pytest.mark.usefixtures("provider_env")


@pytest.fixture(autouse=True)
def stripe_offline(monkeypatch):
    """Stripe's API stands still here (the fakes are exercised over HTTP in tests/e2e and tests/ddblocal)."""
    from shop.payments.base import RefundResult
    from shop.payments.stripe import StripeProvider

    refunds = []

    def create_payment(self, order):
        return {"provider": "stripe", "amount": order.total.to_dict(), "payment_intent_id": "pi_1",
                "client_secret": "pi_1_secret_x"}

    def refund(self, *, order_id, provider_payment_id, amount, refund_id, captured=None):
        refunds.append((order_id, provider_payment_id, amount, refund_id))
        return RefundResult(refund_id, "re_1", "succeeded")

    monkeypatch.setattr(StripeProvider, "create_payment", create_payment)
    monkeypatch.setattr(StripeProvider, "refund", refund)
    return refunds


def stripe_event(order, event_type="payment_intent.succeeded", event_id="evt_1", amount=None, secret=None):
    intent = {"id": "pi_1", "object": "payment_intent", "amount": amount or order["total"]["amount"],
              "amount_received": amount or order["total"]["amount"],
              "currency": order["total"]["currency"].lower(), "metadata": {"order_id": order["order_id"]}}
    body = json.dumps({"id": event_id, "type": event_type, "data": {"object": intent}}).encode()
    return {"Stripe-Signature": hmac_header(secret or KEYS.stripe_webhook_secret, body)}, body


def emf_metrics(text: str) -> list[tuple[str, str | None]]:
    """(metric name, provider dimension) from the Embedded Metric Format lines Powertools printed."""
    found = []
    for line in text.splitlines():
        try:
            blob = json.loads(line)
        except ValueError:
            continue
        for directive in (blob.get("_aws") or {}).get("CloudWatchMetrics", []):
            found += [(m["Name"], blob.get("provider")) for m in directive["Metrics"]]
    return found


def test_secrets_come_from_secrets_manager_once_per_container(api, monkeypatch):
    make_sku(api, "TEE", on_hand=5)
    order = place(api, ("TEE", 1), payment_provider="stripe").json()
    monkeypatch.setenv("PAYMENT_SECRETS_SOURCE", "secretsmanager")
    monkeypatch.setenv("PAYMENT_SECRET_PREFIX", "prod/shop/")
    sm = boto3.client("secretsmanager")
    sm.create_secret(Name="prod/shop/stripe", SecretString=json.dumps({"STRIPE_WEBHOOK_SECRET": "whsec_from_sm"}))
    headers, body = stripe_event(order, event_id="evt_env")  # signed with the env var's secret: not trusted
    assert api.request("POST", "/webhooks/stripe", user=None, headers=headers, raw=body).status == 401
    sm.put_secret_value(SecretId="prod/shop/stripe", SecretString=json.dumps({"STRIPE_WEBHOOK_SECRET": "whsec_new"}))
    headers, body = stripe_event(order, event_id="evt_sm", secret="whsec_from_sm")  # cached value still used
    assert api.request("POST", "/webhooks/stripe", user=None, headers=headers, raw=body).status == 200
    assert get(api, order)["status"] == "PAID"


def test_missing_secret_answers_503_and_changes_nothing(api, monkeypatch):
    make_sku(api, "TEE", on_hand=5)
    order = place(api, ("TEE", 1), payment_provider="stripe").json()
    monkeypatch.setenv("PAYMENT_SECRETS_SOURCE", "secretsmanager")
    headers, body = stripe_event(order)
    answer = api.request("POST", "/webhooks/stripe", user=None, headers=headers, raw=body)
    assert answer.status == 503 and answer.headers["content-type"] == "application/problem+json"
    assert get(api, order)["status"] == "PENDING_PAYMENT" and records() == []
    # A secret without the webhook key never falls back to the documented local default.
    boto3.client("secretsmanager").create_secret(Name="shop/payments/stripe",
                                                 SecretString=json.dumps({"STRIPE_SECRET_KEY": "sk_live_x"}))
    headers, body = stripe_event(order, secret="whsec_local_dev_secret")
    assert api.request("POST", "/webhooks/stripe", user=None, headers=headers, raw=body).status == 503
    assert get(api, order)["status"] == "PENDING_PAYMENT" and records() == []
    monkeypatch.delenv("PAYMENT_SECRETS_SOURCE")
    monkeypatch.delenv("ALIPAY_PUBLIC_KEY")  # an environment without the key: 503, the provider retries later
    headers, body = signed_webhook(KEYS, "alipay", order["order_id"], Money(1999, "USD"))
    assert api.request("POST", "/webhooks/alipay", user=None, headers=dict(headers), raw=body).status == 503
    assert get(api, order)["status"] == "PENDING_PAYMENT" and records() == []


def test_base64_bodies_oversized_bodies_and_unknown_or_disabled_providers(api, monkeypatch):
    make_sku(api, "TEE", on_hand=5)
    order = place(api, ("TEE", 1)).json()
    headers, body = signed_webhook(KEYS, "sandbox", order["order_id"], Money(1999, "USD"))
    route, params, _ = match("POST", "/webhooks/sandbox")
    event = proxy_event(route, params, "POST", "/webhooks/sandbox", headers, body, "203.0.113.9")
    event.update(body=base64.b64encode(body).decode(), isBase64Encoded=True)  # as API Gateway sends binary types
    handler = importlib.import_module("payment_webhook.handler").lambda_handler
    assert Result(handler(event, LocalContext("payment_webhook"))).status == 200
    assert get(api, order)["status"] == "PAID"
    big = b"{" + b" " * (70 * 1024) + b"}"
    assert api.request("POST", "/webhooks/sandbox", user=None, raw=big,
                       headers={"Sandbox-Signature": hmac_header(KEYS.sandbox_webhook_secret, big)}).status == 413
    assert api.request("POST", "/webhooks/paypal", user=None, raw=b"{}").status == 404
    monkeypatch.setenv("PAYMENT_PROVIDERS_ENABLED", "sandbox,stripe")
    assert api.request("POST", "/webhooks/alipay", user=None, raw=b"a=b").status == 404
    assert place(api, ("TEE", 1), key="k-ali", payment_provider="alipay").status == 422


def test_failed_then_succeeded_and_failed_after_succeeded(api):
    make_sku(api, "TEE", on_hand=5)
    order = place(api, ("TEE", 1), payment_provider="stripe").json()
    headers, body = stripe_event(order, "payment_intent.payment_failed", "evt_failed")
    assert api.request("POST", "/webhooks/stripe", user=None, headers=headers, raw=body).status == 200
    assert get(api, order)["status"] == "PENDING_PAYMENT"  # the customer may try another card
    headers, body = stripe_event(order, event_id="evt_ok")
    assert api.request("POST", "/webhooks/stripe", user=None, headers=headers, raw=body).status == 200
    headers, body = stripe_event(order, "payment_intent.payment_failed", "evt_failed_late")
    assert api.request("POST", "/webhooks/stripe", user=None, headers=headers, raw=body).status == 200
    got = get(api, order)
    assert (got["status"], got["payment_status"]) == ("PAID", "paid")
    assert sorted(r["outcome"]["S"] for r in records()) == ["ignored", "ignored", "paid"]
    assert levels(api)["sold"] == 1


def test_wrong_currency_is_held_cannot_be_approved_and_reject_gives_it_back(api):
    make_sku(api, "TEE", on_hand=5)
    order = place(api, ("TEE", 1)).json()
    assert pay(api, order, amount=Money(1999, "EUR")).status == 200
    held = get(api, order)
    assert (held["status"], held["payment_status"], held["amount_paid"]["amount"]) == ("ON_HOLD", "unpaid", 0)
    assert held["hold_reason"] == "under_review"  # the customer is not told why
    by_operator = api.admin("GET", f"/admin/orders?order_number={order['order_number']}").json()["items"][0]
    assert "EUR" in by_operator["hold_reason"]
    assert api.admin("POST", f"/admin/orders/{order['order_id']}/approve").status == 409
    rejected = api.admin("POST", f"/admin/orders/{order['order_id']}/reject")
    assert rejected.status == 200, rejected.text
    body = rejected.json()
    assert body["status"] == "CANCELLED"
    assert [(r["amount"], r["currency"]) for r in body["refunds"]] == [(1999, "EUR")]
    assert levels(api) == {"on_hand": 5, "available": 5, "reserved": 0, "sold": 0}


def test_refund_by_lines_with_restock_goes_through_the_queue_once(api, queues):
    make_sku(api, "TEE", on_hand=5)
    order = place(api, ("TEE", 3)).json()
    pay(api, order)
    path = f"/admin/orders/{order['order_id']}/refunds"
    body = {"lines": [{"sku": "TEE", "quantity": 2}], "restock": True, "reason": "returned"}
    first = api.admin("POST", path, body=body, headers={"Idempotency-Key": "ret-1"})
    again = api.admin("POST", path, body=body, headers={"Idempotency-Key": "ret-1"})
    assert first.status == again.status == 201, first.text
    assert again.json()["amount_refunded"] == {"amount": 2 * 1999, "currency": "USD"}
    assert again.json()["payment_status"] == "partially_refunded" and len(again.json()["refunds"]) == 1
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=queues["restock"], MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 2  # sent again by the retry; the consumer applies each message id once
    assert deliver("restock", *[m["Body"] for m in messages])["batchItemFailures"] == []
    assert levels(api) == {"on_hand": 4, "available": 4, "reserved": 0, "sold": 1}
    too_many = api.admin("POST", path, body={"lines": [{"sku": "TEE", "quantity": 2}]},
                         headers={"Idempotency-Key": "ret-2"})
    assert too_many.status == 422  # only one unit is left to return


def _place_from(ip: str, key: str, user: str = "alice"):
    route, params, _ = match("POST", "/orders")
    payload = json.dumps(order_body(("TEE", 1))).encode()
    event = proxy_event(route, params, "POST", "/orders", [("Idempotency-Key", key), ("X-Local-User", user)],
                        payload, ip)
    handler = importlib.import_module("create_order.handler").lambda_handler
    return Result(handler(event, LocalContext("create_order"))).json()


def test_too_many_paid_orders_from_one_address_are_held(api, monkeypatch, capsys):
    monkeypatch.setenv("RISK_MAX_PAYMENTS_PER_IP", "2")
    make_sku(api, "TEE", on_hand=10)
    same = [_place_from("198.51.100.7", f"k{i}", user=f"user{i}") for i in range(3)]
    other = _place_from("192.0.2.1", "k-other", user="user9")
    for order in same + [other]:
        assert pay(api, order).status == 200
    seen = [api.request("GET", f"/orders/{o['order_id']}", user=f"user{i}").json() for i, o in enumerate(same)]
    assert [o["status"] for o in seen] == ["PAID", "PAID", "ON_HOLD"] and seen[2]["hold_reason"] == "under_review"
    by_operator = api.admin("GET", f"/admin/orders?order_number={seen[2]['order_number']}").json()["items"][0]
    assert "address" in by_operator["hold_reason"]
    assert api.request("GET", f"/orders/{other['order_id']}", user="user9").json()["status"] == "PAID"
    items = boto3.client("dynamodb").scan(TableName="shop-api-tests")["Items"]
    assert not any("198.51.100.7" in json.dumps(i) for i in items)  # orders and risk items keep only a hash
    assert "198.51.100.7" not in capsys.readouterr().out  # never logged


def test_metrics_count_payments_and_failures_by_provider(api, capsys):
    make_sku(api, "TEE", on_hand=5)
    order = place(api, ("TEE", 1), payment_provider="stripe").json()
    headers, body = stripe_event(order, event_id="evt_m")
    assert api.request("POST", "/webhooks/stripe", user=None, headers={"Stripe-Signature": "t=1,v1=0"},
                       raw=body).status == 401
    assert api.request("POST", "/webhooks/stripe", user=None, headers=headers, raw=body).status == 200
    metrics = emf_metrics(capsys.readouterr().out)
    assert ("WebhookFailures", "stripe") in metrics and ("OrdersPaid", "stripe") in metrics


def test_a_payment_through_another_provider_is_refunded_and_the_order_left_alone(api, stripe_offline):
    make_sku(api, "TEE", on_hand=5)
    order = place(api, ("TEE", 1)).json()  # the order chose the sandbox
    headers, body = stripe_event(order, event_id="evt_stray")
    assert api.request("POST", "/webhooks/stripe", user=None, headers=headers, raw=body).status == 200
    assert api.request("POST", "/webhooks/stripe", user=None, headers=headers, raw=body).status == 200
    assert [(o, p, a) for o, p, a, _ in stripe_offline] == [(order["order_id"], "pi_1", Money(1999, "USD"))]
    assert get(api, order)["status"] == "PENDING_PAYMENT" and levels(api)["reserved"] == 1
    assert "paid through stripe" in records("refunded")[0]["refund_reason"]["S"]
    assert pay(api, order).status == 200 and get(api, order)["status"] == "PAID"  # its own payment still counts


def test_a_notification_shape_the_parser_did_not_foresee_is_400_not_500(api, monkeypatch):
    from shop.payments.sandbox import SandboxProvider

    def surprised(self, headers, body):
        raise TypeError("unexpected shape")

    monkeypatch.setattr(SandboxProvider, "parse_webhook", surprised)
    answer = api.request("POST", "/webhooks/sandbox", user=None, raw=b'{"id": 1}')
    assert answer.status == 400 and answer.json()["type"].endswith("invalid-webhook")
    assert "Traceback" not in answer.text
