"""Provider amounts: whole, non-negative minor units within MAX_MINOR_UNITS, or the notification is malformed.

Stripe, the sandbox and WeChat Pay send JSON integers of minor units; Alipay sends a decimal string.
A validly signed notification whose amount is negative, fractional, a boolean (JSON true is the int 1
in Python), a string, or beyond the maximum is refused (InvalidWebhook, answered 400) by every provider.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import urllib.parse

import pytest

from localrun.fake_providers import ProviderKeys, signed_webhook
from shop.domain.money import Money
from shop.payments.alipay import AlipayProvider, notification_content
from shop.payments.base import MAX_MINOR_UNITS, InvalidWebhook, minor_amount, minor_units
from shop.payments.sandbox import SandboxProvider
from shop.payments.signing import hmac_header, rsa_sign
from shop.payments.stripe import StripeProvider
from shop.payments.wechatpay import WechatPayProvider

KEYS = ProviderKeys()

# Values of a JSON amount field that are not a whole number of minor units in range.
BAD_JSON_AMOUNTS = [-1, -1999, 19.99, 1999.0, 0.5, True, False, "1999", None, [1999], {"v": 1},
                    MAX_MINOR_UNITS + 1, 10**30]
BAD_DECIMAL_TEXTS = ["-1", "-0.01", "12.345", "1e3", "1E+2", " 12.34", "12.34 ", "+1", "0x10", "١٢", "NaN",
                     "Infinity", "", ".5", "1.", "1" * 5000, str(MAX_MINOR_UNITS // 100 + 1)]


pytestmark = pytest.mark.usefixtures("provider_env")  # tests/unit/conftest.py, with this module's KEYS


# ---- signed notifications with any amount (helpers shared with tests/api/test_hostile_input.py) ----

def sandbox_webhook(amount_value, currency="USD", order_id="ord_abc", keys=KEYS) -> tuple[dict[str, str], bytes]:
    body = json.dumps({"id": f"evt_{secrets.token_hex(6)}", "type": "payment.succeeded", "order_id": order_id,
                       "amount": {"amount": amount_value, "currency": currency},
                       "payment_id": f"sbx_pay_{order_id}"}).encode()
    return {"Sandbox-Signature": hmac_header(keys.sandbox_webhook_secret, body)}, body


def stripe_webhook(fields: dict, order_id="ord_abc", keys=KEYS) -> tuple[dict[str, str], bytes]:
    intent = {"id": f"pi_{secrets.token_hex(6)}", "object": "payment_intent", "amount": 1999,
              "amount_received": 1999, "currency": "usd", "status": "succeeded", "metadata": {"order_id": order_id},
              **fields}
    body = json.dumps({"id": f"evt_{secrets.token_hex(6)}", "object": "event", "type": "payment_intent.succeeded",
                       "data": {"object": intent}}).encode()
    return {"Stripe-Signature": hmac_header(keys.stripe_webhook_secret, body)}, body


def wechat_webhook(amount: dict, order_id="ord_abc", keys=KEYS) -> tuple[dict[str, str], bytes]:
    """A TRANSACTION.SUCCESS notification, encrypted and signed as WeChat Pay does, with this `amount`."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    transaction = {"appid": keys.wechat_app_id, "mchid": keys.wechat_mch_id, "out_trade_no": order_id,
                   "transaction_id": f"4200{secrets.randbelow(10**20)}", "trade_state": "SUCCESS",
                   "trade_type": "NATIVE", "amount": amount}
    nonce = secrets.token_hex(6)
    ciphertext = AESGCM(keys.wechat_apiv3_key.encode()).encrypt(nonce.encode(), json.dumps(transaction).encode(),
                                                                 b"transaction")
    body = json.dumps({"id": secrets.token_hex(8), "resource_type": "encrypt-resource",
                       "event_type": "TRANSACTION.SUCCESS",
                       "resource": {"algorithm": "AEAD_AES_256_GCM", "ciphertext": base64.b64encode(ciphertext).decode(),
                                    "associated_data": "transaction", "nonce": nonce}}).encode()
    now, header_nonce = str(int(time.time())), secrets.token_hex(16)
    signature = rsa_sign(keys.wechat_platform[0], f"{now}\n{header_nonce}\n".encode() + body + b"\n")
    return {"Wechatpay-Timestamp": now, "Wechatpay-Nonce": header_nonce, "Wechatpay-Signature": signature,
            "Wechatpay-Serial": keys.wechat_platform_serial}, body


def alipay_webhook(total_amount: str, order_id="ord_abc", keys=KEYS) -> tuple[dict[str, str], bytes]:
    headers, body = signed_webhook(keys, "alipay", order_id, Money(1999, "CNY"))
    params = dict(urllib.parse.parse_qsl(body.decode()))
    params["total_amount"] = total_amount
    params["sign"] = rsa_sign(keys.alipay_platform[0], notification_content(params))
    return dict(headers), urllib.parse.urlencode(params).encode()


# ---- the rule itself ----

@pytest.mark.parametrize("value", [0, 1, 1999, MAX_MINOR_UNITS])
def test_whole_minor_units_in_range_are_accepted(value):
    assert minor_amount(value) == value


@pytest.mark.parametrize("value", BAD_JSON_AMOUNTS, ids=repr)
def test_json_amounts_that_are_not_whole_minor_units_in_range_are_malformed(value):
    with pytest.raises(InvalidWebhook):
        minor_amount(value)


@pytest.mark.parametrize("text", BAD_DECIMAL_TEXTS, ids=lambda t: repr(t[:20]))
def test_decimal_texts_that_are_not_plain_non_negative_decimals_are_malformed(text):
    with pytest.raises(InvalidWebhook):
        minor_units(text, "CNY")


# ---- each provider's parser ----

def test_well_formed_amounts_still_parse_for_every_provider():
    assert SandboxProvider().parse_webhook(*sandbox_webhook(1999)).amount == Money(1999, "USD")
    assert StripeProvider().parse_webhook(*stripe_webhook({"amount_received": 1500})).amount == Money(1500, "USD")
    wechat = WechatPayProvider().parse_webhook(*wechat_webhook({"total": 12345, "payer_total": 12345,
                                                                "currency": "CNY"}))
    assert wechat.amount == Money(12345, "CNY")
    assert AlipayProvider().parse_webhook(*alipay_webhook("123.45")).amount == Money(12345, "CNY")


@pytest.mark.parametrize("value", BAD_JSON_AMOUNTS, ids=repr)
def test_sandbox_refuses_bad_amounts(value):
    with pytest.raises(InvalidWebhook):
        SandboxProvider().parse_webhook(*sandbox_webhook(value))


@pytest.mark.parametrize("field", ["amount", "amount_received"])
@pytest.mark.parametrize("value", BAD_JSON_AMOUNTS, ids=repr)
def test_stripe_refuses_bad_amounts_in_amount_and_amount_received(field, value):
    if value is None:
        pytest.skip("an absent amount is not an amount")
    with pytest.raises(InvalidWebhook):
        StripeProvider().parse_webhook(*stripe_webhook({field: value}))


@pytest.mark.parametrize("field", ["total", "payer_total"])
@pytest.mark.parametrize("value", BAD_JSON_AMOUNTS, ids=repr)
def test_wechatpay_refuses_bad_total_and_payer_total(field, value):
    amount = {"total": 1999, "payer_total": 1999, "currency": "CNY", field: value}
    with pytest.raises(InvalidWebhook):
        WechatPayProvider().parse_webhook(*wechat_webhook(amount))


@pytest.mark.parametrize("text", ["-19.99", "19.999", "1e3", "1" * 5000], ids=lambda t: repr(t[:20]))
def test_alipay_refuses_bad_total_amount(text):
    with pytest.raises(InvalidWebhook):
        AlipayProvider().parse_webhook(*alipay_webhook(text))


@pytest.mark.parametrize("currency", ["usdollar", 840, "", None, "U$D"])
def test_stripe_and_sandbox_refuse_currencies_that_are_not_codes(currency):
    with pytest.raises(InvalidWebhook):
        StripeProvider().parse_webhook(*stripe_webhook({"currency": currency}))
    with pytest.raises(InvalidWebhook):
        SandboxProvider().parse_webhook(*sandbox_webhook(1999, currency=currency))


def test_hostile_json_in_a_validly_signed_body_is_malformed_not_a_crash():
    deep = b"[" * 50_000 + b"]" * 50_000
    huge = b'{"id": "evt", "type": "payment.succeeded", "amount": {"amount": ' + b"9" * 5000 + b', "currency": "USD"}}'
    invalid_utf8 = b'{"id": "evt\xff\xfe", "type": "payment.succeeded"}'
    for body in (deep, huge, invalid_utf8):
        with pytest.raises(InvalidWebhook):
            SandboxProvider().parse_webhook({"Sandbox-Signature": hmac_header(KEYS.sandbox_webhook_secret, body)},
                                            body)
        with pytest.raises(InvalidWebhook):
            StripeProvider().parse_webhook({"Stripe-Signature": hmac_header(KEYS.stripe_webhook_secret, body)}, body)
