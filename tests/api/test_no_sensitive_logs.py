"""Logs carry ids and outcomes, never addresses, phone numbers or provider secrets."""

from __future__ import annotations

from localrun.fake_providers import ProviderKeys, signed_webhook
from shop.domain.money import Money
from tests.api.test_orders_api import make_sku

SECRET_ADDRESS = {"name": "Zelda Quux", "line1": "742 Evergreen Terrace", "city": "Springfield",
                  "postal_code": "49007", "country": "US", "phone": "+1 555 0100 777"}


def test_order_and_payment_logs_hold_no_personal_data_or_secrets(api, capsys, monkeypatch):
    keys = ProviderKeys(sandbox_webhook_secret="sbx-very-secret-value")
    for key, value in keys.function_env().items():
        monkeypatch.setenv(key, value)
    make_sku(api, "TEE", on_hand=5)
    order = api.request("POST", "/orders", body={"items": [{"sku": "TEE", "quantity": 1}],
                                                  "shipping_address": SECRET_ADDRESS, "payment_provider": "sandbox"},
                        headers={"Idempotency-Key": "log-1"}).json()
    headers, body = signed_webhook(keys, "sandbox", order["order_id"], Money(1999, "USD"))
    assert api.request("POST", "/webhooks/sandbox", user=None, headers=dict(headers), raw=body).status == 200
    bad = api.request("POST", "/webhooks/sandbox", user=None, headers={"Sandbox-Signature": "t=1,v1=00"}, raw=body)
    assert bad.status == 401
    logs = capsys.readouterr()
    text = logs.out + logs.err
    assert "WebhookFailures" in text  # logging and metrics output was captured
    for secret in ("Evergreen", "Zelda", "555 0100", "sbx-very-secret-value", "BEGIN PRIVATE KEY"):
        assert secret not in text, secret
