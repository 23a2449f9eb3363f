"""Issue 12, items 2, 4 and 5 through the real handlers (moto):

- each provider's webhook answers in that provider's documented format, on success and on failure (WeChat Pay
  `{"code": "FAIL", "message": ...}` with a 4xx/5xx, Alipay plain `fail`, Stripe and the sandbox problem+json);
- `POST /orders` with a provider that cannot take the order's currency is a 422 naming both, before any
  provider call and without writing anything;
- an enabled but unconfigured provider is 503 `provider-not-configured` without Retry-After, with the
  `ProviderNotConfigured` metric (provider dimension), at order time and at webhook time.
"""

from __future__ import annotations

import json

import boto3
import pytest

from localrun.fake_providers import ProviderKeys, signed_webhook
from shop.domain.money import Money
from tests.api.conftest import TABLE
from tests.api.test_orders_api import make_sku, place
from tests.api.test_payment_rules import emf_metrics

pytestmark = pytest.mark.usefixtures("provider_env")
KEYS = ProviderKeys()
PROBLEM_JSON = "application/problem+json"
SUCCESS = {
    "sandbox": ("application/json", '{"received":true}'),
    "stripe": ("application/json", '{"received":true}'),
    "alipay": ("text/plain", "success"),
    "wechatpay": ("application/json", '{"code":"SUCCESS","message":"OK"}'),
}


def assert_rejected(result, provider: str, *statuses: int) -> dict | str:
    """The provider's documented failure answer with one of `statuses`; returns the parsed body."""
    assert result.status in statuses, (result.status, result.text[:300])
    content_type = result.headers["content-type"]
    if provider == "alipay":  # Alipay reads the body: anything but "success" is retried; documented: "fail"
        assert (content_type.split(";")[0], result.text) == ("text/plain", "fail")
        return result.text
    body = result.json()
    if provider == "wechatpay":
        assert content_type.startswith("application/json")
        assert body["code"] == "FAIL" and isinstance(body["message"], str) and body["message"]
        assert set(body) == {"code", "message"}
        return body
    assert content_type == PROBLEM_JSON and body["status"] == result.status
    assert {"type", "title", "status", "detail"} <= set(body)
    return body


@pytest.fixture(autouse=True)
def keys_env(provider_env, monkeypatch):
    """This module's keys (pytest may import conftest under another module name, with other generated keys)."""
    for key, value in KEYS.function_env().items():
        monkeypatch.setenv(key, value)


def table_items() -> list[str]:
    items = boto3.client("dynamodb").scan(TableName=TABLE, ConsistentRead=True)["Items"]
    return sorted(json.dumps(item, sort_keys=True) for item in items)


def webhook(api, provider, headers, body):
    return api.request("POST", f"/webhooks/{provider}", user=None, headers=dict(headers), raw=body)


@pytest.fixture
def cny_order(api, monkeypatch):
    """A CNY order placed with the sandbox (no provider call), then notified through every provider."""
    make_sku(api, "CNYTEE", on_hand=5, amount=1999, currency="CNY")
    return place(api, ("CNYTEE", 1), key="cny").json()


@pytest.mark.parametrize("provider", ["sandbox", "stripe", "alipay", "wechatpay"])
def test_each_provider_acknowledges_in_its_own_format(api, cny_order, provider):
    headers, body = signed_webhook(KEYS, provider, cny_order["order_id"], Money(1999, "CNY"),
                                   event_id=f"evt-ok-{provider}")
    result = webhook(api, provider, headers, body)
    assert result.status == 200, result.text
    content_type, text = SUCCESS[provider]
    assert result.headers["content-type"].split(";")[0] == content_type and result.text == text


@pytest.mark.parametrize("provider", ["sandbox", "stripe", "alipay", "wechatpay"])
def test_each_provider_rejects_in_its_own_format(api, cny_order, provider):
    before = table_items()
    headers, body = signed_webhook(KEYS, provider, cny_order["order_id"], Money(1999, "CNY"))
    tampered = body + (b"&total_amount=0.01" if provider == "alipay" else b" ")  # no longer what was signed
    assert_rejected(webhook(api, provider, headers, tampered), provider, 401)  # signature does not verify
    assert_rejected(webhook(api, provider, {}, b"\xff\xfe not a notification"), provider, 400, 401)
    assert_rejected(webhook(api, provider, headers, b"x" * (70 * 1024)), provider, 413)
    assert table_items() == before


def test_wechat_failure_message_says_why_without_echoing_the_input(api, cny_order):
    headers, body = signed_webhook(KEYS, "wechatpay", cny_order["order_id"], Money(1999, "CNY"))
    headers = [(k, v) for k, v in headers if k != "Wechatpay-Signature"]
    answer = assert_rejected(webhook(api, "wechatpay", headers, body), "wechatpay", 401)
    assert "signature" in answer["message"].lower() and cny_order["order_id"] not in answer["message"]


@pytest.mark.parametrize("provider, key", [("sandbox", "SANDBOX_WEBHOOK_SECRET"),
                                           ("stripe", "STRIPE_WEBHOOK_SECRET"),
                                           ("alipay", "ALIPAY_PUBLIC_KEY"),
                                           ("wechatpay", "WECHATPAY_APIV3_KEY")])
def test_webhook_of_an_unconfigured_provider_is_503_not_configured_in_its_format(api, cny_order, monkeypatch,
                                                                                capsys, provider, key):
    headers, body = signed_webhook(KEYS, provider, cny_order["order_id"], Money(1999, "CNY"))
    monkeypatch.setenv(key, "")  # enabled, but this secret is missing (the local default does not apply: "")
    before = table_items()
    capsys.readouterr()
    result = webhook(api, provider, headers, body)
    answer = assert_rejected(result, provider, 503)
    assert "retry-after" not in result.headers
    if provider in ("sandbox", "stripe"):
        assert answer["type"] == "/problems/provider-not-configured"
    assert key not in result.text  # the setting's name is logged, not told to the caller
    assert ("ProviderNotConfigured", provider) in emf_metrics(capsys.readouterr().out)
    assert table_items() == before


# ---- currencies (item 2) ----

@pytest.mark.parametrize("provider", ["alipay", "wechatpay"])
def test_an_order_in_a_currency_the_provider_cannot_take_is_422_naming_both(api, monkeypatch, provider):
    called = []
    from shop.payments.registry import PROVIDERS

    monkeypatch.setattr(type(PROVIDERS[provider]), "create_payment", lambda self, order: called.append(order))
    make_sku(api, "EURTEE", on_hand=5, currency="EUR")
    before = table_items()
    result = place(api, ("EURTEE", 1), key=f"eur-{provider}", payment_provider=provider)
    assert result.status == 422 and result.headers["content-type"] == PROBLEM_JSON, result.text
    problem = result.json()
    assert problem["fields"] == ["payment_provider"]
    assert (problem["payment_provider"], problem["currency"]) == (provider, "EUR")
    assert provider in problem["detail"] and "EUR" in problem["detail"]
    assert called == [] and table_items() == before  # no provider call, no order, no reservation


def test_currencies_per_provider_and_their_settings(api, monkeypatch):
    from shop.payments.registry import PROVIDERS

    for name in ("stripe", "alipay", "wechatpay"):
        monkeypatch.setattr(type(PROVIDERS[name]), "create_payment",
                            lambda self, order, name=name: {"provider": name, "amount": order.total.to_dict()})
    make_sku(api, "EURTEE", on_hand=20, currency="EUR")
    make_sku(api, "CNYTEE", on_hand=20, currency="CNY")
    make_sku(api, "XOFTEE", on_hand=20, currency="XOF")
    outcomes = {}
    for n, (sku, provider) in enumerate([("EURTEE", "stripe"), ("CNYTEE", "stripe"), ("XOFTEE", "stripe"),
                                         ("CNYTEE", "alipay"), ("CNYTEE", "wechatpay"), ("XOFTEE", "sandbox")]):
        outcomes[(sku, provider)] = place(api, (sku, 1), key=f"c{n}", payment_provider=provider).status
    assert outcomes == {("EURTEE", "stripe"): 201, ("CNYTEE", "stripe"): 201, ("XOFTEE", "stripe"): 422,
                        ("CNYTEE", "alipay"): 201, ("CNYTEE", "wechatpay"): 201, ("XOFTEE", "sandbox"): 201}
    # A cross-border Alipay account: ALIPAY_CURRENCIES widens what it takes; STRIPE_CURRENCIES narrows Stripe.
    monkeypatch.setenv("ALIPAY_CURRENCIES", "CNY, eur")
    monkeypatch.setenv("STRIPE_CURRENCIES", "USD")
    assert place(api, ("EURTEE", 1), key="x1", payment_provider="alipay").status == 201
    assert place(api, ("EURTEE", 1), key="x2", payment_provider="stripe").json()["currency"] == "EUR"
    monkeypatch.setenv("SANDBOX_CURRENCIES", "USD")
    assert place(api, ("EURTEE", 1), key="x3", payment_provider="sandbox").status == 422
    monkeypatch.setenv("WECHATPAY_CURRENCIES", "*")
    assert place(api, ("EURTEE", 1), key="x4", payment_provider="wechatpay").status == 201


# ---- provider not configured at order time (item 5) ----

def test_an_order_with_an_unconfigured_provider_is_503_without_retry_hint(api, monkeypatch, capsys):
    make_sku(api, "CNYTEE", on_hand=5, currency="CNY")
    monkeypatch.delenv("ALIPAY_APP_PRIVATE_KEY")
    before = table_items()
    capsys.readouterr()
    result = place(api, ("CNYTEE", 1), key="nc-1", payment_provider="alipay")
    assert result.status == 503 and result.headers["content-type"] == PROBLEM_JSON, result.text
    assert "retry-after" not in result.headers
    problem = result.json()
    assert problem["type"] == "/problems/provider-not-configured" and problem["provider"] == "alipay"
    assert "ALIPAY_APP_PRIVATE_KEY" not in result.text
    printed = capsys.readouterr().out
    assert ("ProviderNotConfigured", "alipay") in emf_metrics(printed)
    (blob,) = [json.loads(line) for line in printed.splitlines() if '"ProviderNotConfigured"' in line
               and line.startswith('{"_aws"')]
    # One alarm per provider covers every function: the service dimension is constant (infra/observability.py).
    assert blob["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["provider", "service"]]
    assert (blob["provider"], blob["service"]) == ("alipay", "payments")
    assert table_items() == before


def test_a_missing_secret_in_secrets_manager_is_not_configured_but_aws_errors_stay_retryable(api, monkeypatch):
    make_sku(api, "TEE", on_hand=5)
    monkeypatch.setenv("PAYMENT_SECRETS_SOURCE", "secretsmanager")
    result = place(api, ("TEE", 1), key="sm-1", payment_provider="stripe")  # no secret shop/payments/stripe
    assert result.status == 503 and result.json()["type"] == "/problems/provider-not-configured"
    assert "retry-after" not in result.headers
    boto3.client("secretsmanager").create_secret(Name="shop/payments/stripe", SecretString="not json")
    assert place(api, ("TEE", 1), key="sm-2", payment_provider="stripe").json()["type"] == \
        "/problems/provider-not-configured"


def test_a_provider_that_does_not_answer_is_still_a_retryable_503(api, monkeypatch):
    """Unreachable (not unconfigured): 503 temporarily-unavailable WITH Retry-After, as before."""
    make_sku(api, "TEE", on_hand=5)
    monkeypatch.setenv("STRIPE_API_BASE", "http://127.0.0.1:9/nothing-listens")
    from shop.payments import http_client

    monkeypatch.setattr(http_client, "ATTEMPTS", 1)
    result = place(api, ("TEE", 1), key="down-1", payment_provider="stripe")
    assert result.status == 503 and result.json()["type"] == "/problems/temporarily-unavailable"
    assert result.headers.get("retry-after")
