"""`make run` takes provider secrets and keys from the environment (issue 12, item 3): a server started with its
own STRIPE_WEBHOOK_SECRET, SANDBOX_WEBHOOK_SECRET, Stripe key and merchant keys accepts webhooks signed with
those and refuses ones signed with the built-in defaults; the fakes check requests signed with the given keys."""

from __future__ import annotations

import json
import secrets
import time

import pytest

from shop.payments.signing import hmac_header, new_rsa_keypair
from tests.e2e.conftest import start_local_server, stop_local_server
from tests.e2e.test_local_api import new_sku, place

pytestmark = pytest.mark.e2e

ENV = {
    "STRIPE_WEBHOOK_SECRET": f"whsec_from_env_{secrets.token_hex(8)}",  # as `stripe listen` prints one
    "STRIPE_SECRET_KEY": f"sk_test_from_env_{secrets.token_hex(8)}",
    "SANDBOX_WEBHOOK_SECRET": f"sandbox_from_env_{secrets.token_hex(8)}",
    "ALIPAY_APP_ID": "2021000000004242",
    "ALIPAY_APP_PRIVATE_KEY": new_rsa_keypair()[0],
    "ALIPAY_PUBLIC_KEY": new_rsa_keypair()[1],  # Alipay's key: the fake's own replaces it (it signs with its half)
    "WECHATPAY_MCH_ID": "1900004242",
    "WECHATPAY_MERCHANT_SERIAL": "ENVMERCHANTSERIAL",
    "WECHATPAY_MERCHANT_PRIVATE_KEY": new_rsa_keypair()[0],
    "WECHATPAY_APIV3_KEY": secrets.token_hex(16),
}
DEFAULTS = {"stripe": ("Stripe-Signature", "whsec_local_dev_secret"),
            "sandbox": ("Sandbox-Signature", "sandbox_local_secret")}


@pytest.fixture(scope="module")
def env_server(tmp_path_factory):
    proc, api = start_local_server(tmp_path_factory.mktemp("env-server"), **ENV)
    yield api
    stop_local_server(proc)


def _event(provider: str, order: dict, event_id: str) -> bytes:
    amount = order["total"]
    if provider == "stripe":
        intent = {"id": order["payment"]["payment_intent_id"], "object": "payment_intent",
                  "amount": amount["amount"], "amount_received": amount["amount"],
                  "currency": amount["currency"].lower(), "status": "succeeded",
                  "metadata": {"order_id": order["order_id"]}}
        return json.dumps({"id": event_id, "object": "event", "type": "payment_intent.succeeded",
                           "created": int(time.time()), "data": {"object": intent}}).encode()
    return json.dumps({"id": event_id, "type": "payment.succeeded", "order_id": order["order_id"],
                       "amount": amount, "payment_id": f"sbx_{event_id}"}).encode()


@pytest.mark.parametrize("provider, env_secret", [("stripe", "STRIPE_WEBHOOK_SECRET"),
                                                  ("sandbox", "SANDBOX_WEBHOOK_SECRET")])
def test_webhook_signed_with_the_environment_secret_is_accepted_and_the_default_refused(env_server, provider,
                                                                                       env_secret):
    api = env_server
    code = new_sku(api, on_hand=3)
    placed = place(api, code, quantity=1, payment_provider=provider)
    assert placed.status_code == 201, placed.text  # for Stripe: the fake took the key from the environment
    order = placed.json()
    header_name, default_secret = DEFAULTS[provider]
    body = _event(provider, order, f"evt_default_{secrets.token_hex(4)}")
    refused = api.call("POST", f"/webhooks/{provider}", user=None, data=body,
                       headers={header_name: hmac_header(default_secret, body), "Content-Type": "application/json"})
    assert refused.status_code == 401, refused.text
    assert api.call("GET", f"/orders/{order['order_id']}").json()["status"] == "PENDING_PAYMENT"
    body = _event(provider, order, f"evt_env_{secrets.token_hex(4)}")
    accepted = api.call("POST", f"/webhooks/{provider}", user=None, data=body,
                        headers={header_name: hmac_header(ENV[env_secret], body), "Content-Type": "application/json"})
    assert accepted.status_code == 200, accepted.text
    assert api.call("GET", f"/orders/{order['order_id']}").json()["status"] == "PAID"


@pytest.mark.parametrize("provider", ["stripe", "alipay", "wechatpay"])
def test_fakes_check_requests_signed_with_the_merchant_keys_from_the_environment(env_server, provider):
    """The order's provider call is signed with the key from the environment and the fake accepts it; its own
    notification (`/_local/pay`) is signed so that the functions, configured from the environment, accept it."""
    api = env_server
    code = new_sku(api, on_hand=3, **({"price": {"amount": 1999, "currency": "CNY"}} if provider != "stripe" else {}))
    placed = place(api, code, quantity=1, payment_provider=provider)
    assert placed.status_code == 201, placed.text
    paid = api.call("POST", f"/_local/pay/{placed.json()['order_id']}", user=None)
    assert paid.json()["webhook"]["status"] == 200, paid.text
    assert api.call("GET", f"/orders/{placed.json()['order_id']}").json()["status"] == "PAID"


def test_a_domestic_provider_refuses_another_currency_over_http(env_server):
    api = env_server
    code = new_sku(api, on_hand=3)  # EUR
    refused = place(api, code, quantity=1, payment_provider="wechatpay")
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["fields"] == ["payment_provider"]
    assert (problem["payment_provider"], problem["currency"]) == ("wechatpay", "EUR")
