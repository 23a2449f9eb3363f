"""Signature verification of every provider on the raw body (no AWS, keys generated here)."""

from __future__ import annotations

import json
import time
import urllib.parse

import pytest
import stripe

from localrun.fake_providers import ProviderKeys, signed_webhook
from shop.domain.money import Money
from shop.payments.alipay import AlipayProvider
from shop.payments.base import InvalidWebhook, minor_units
from shop.payments.sandbox import SandboxProvider
from shop.payments.signing import hmac_header, verify_hmac_header
from shop.payments.stripe import StripeProvider
from shop.payments.wechatpay import WechatPayProvider

KEYS = ProviderKeys()
PROVIDERS = {"sandbox": SandboxProvider(), "stripe": StripeProvider(), "alipay": AlipayProvider(),
             "wechatpay": WechatPayProvider()}
AMOUNT = Money(12345, "CNY")


@pytest.fixture(autouse=True)
def provider_env(monkeypatch):
    for key, value in KEYS.function_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PAYMENT_SECRETS_SOURCE", raising=False)


def as_dict(headers):
    return dict(headers)


@pytest.mark.parametrize("name", PROVIDERS)
def test_valid_webhook_is_normalized(name):
    headers, body = signed_webhook(KEYS, name, "ord_abc", AMOUNT, event_id="evt-1", payment_id="pay-1")
    event = PROVIDERS[name].parse_webhook(as_dict(headers), body)
    assert (event.event_id, event.kind, event.order_id, event.amount, event.provider_payment_id) == (
        "evt-1", "payment_succeeded", "ord_abc", AMOUNT, "pay-1")


@pytest.mark.parametrize("name", PROVIDERS)
def test_tampered_body_is_rejected(name):
    headers, body = signed_webhook(KEYS, name, "ord_abc", AMOUNT)
    # WeChat Pay encrypts the order id, so there the visible summary is altered instead.
    tampered = body.replace(b"ord_abc", b"ord_abd") if b"ord_abc" in body else body.replace(b"succeeded", b"Succeeded")
    assert tampered != body
    with pytest.raises(InvalidWebhook):
        PROVIDERS[name].parse_webhook(as_dict(headers), tampered)


@pytest.mark.parametrize("name", PROVIDERS)
def test_wrong_secret_or_key_is_rejected(name):
    other = ProviderKeys(stripe_webhook_secret="whsec_other", sandbox_webhook_secret="other",
                         wechat_platform_serial=KEYS.wechat_platform_serial, wechat_apiv3_key=KEYS.wechat_apiv3_key)
    headers, body = signed_webhook(other, name, "ord_abc", AMOUNT)
    with pytest.raises(InvalidWebhook):
        PROVIDERS[name].parse_webhook(as_dict(headers), body)


@pytest.mark.parametrize("name", ["sandbox", "stripe", "wechatpay"])
@pytest.mark.parametrize("skew", [-302, 302, -3600, 3600])
def test_stale_and_future_timestamps_are_rejected(name, skew):
    # 302, not 301: the whole-second timestamp plus the time the test takes must stay beyond 300 s.
    headers, body = signed_webhook(KEYS, name, "ord_abc", AMOUNT, timestamp=int(time.time()) + skew)
    with pytest.raises(InvalidWebhook, match="tolerance"):
        PROVIDERS[name].parse_webhook(as_dict(headers), body)


@pytest.mark.parametrize("name", ["sandbox", "stripe", "wechatpay"])
@pytest.mark.parametrize("skew", [-290, 290])
def test_timestamps_within_the_tolerance_are_accepted(name, skew):
    headers, body = signed_webhook(KEYS, name, "ord_abc", AMOUNT, timestamp=int(time.time()) + skew)
    assert PROVIDERS[name].parse_webhook(as_dict(headers), body).order_id == "ord_abc"


def test_hmac_tolerance_is_300_seconds_both_ways():
    body, t = b"{}", 1_800_000_000
    header = hmac_header("whsec_x", body, t)
    for now in (t - 300, t + 300):
        verify_hmac_header(header, body, "whsec_x", now=now)
    for now in (t - 301, t + 301):
        with pytest.raises(InvalidWebhook, match="tolerance"):
            verify_hmac_header(header, body, "whsec_x", now=now)


@pytest.mark.parametrize("name", PROVIDERS)
def test_missing_signature_headers_are_rejected(name):
    headers, body = signed_webhook(KEYS, name, "ord_abc", AMOUNT)
    if name == "alipay":  # Alipay signs inside the form
        params = dict(urllib.parse.parse_qsl(body.decode()))
        params.pop("sign")
        body = urllib.parse.urlencode(params).encode()
    bare = {k: v for k, v in headers if k.lower() == "content-type"}
    with pytest.raises(InvalidWebhook):
        PROVIDERS[name].parse_webhook(bare, body)


def test_stripe_library_accepts_our_signatures_and_we_accept_its():
    body = json.dumps({"id": "evt_1", "type": "payment_intent.succeeded"}).encode()
    ours = hmac_header("whsec_test", body)
    assert stripe.WebhookSignature.verify_header(body.decode(), ours, "whsec_test", tolerance=300)
    t = int(time.time())
    theirs = f"t={t},v1=" + stripe.WebhookSignature._compute_signature(f"{t}.{body.decode()}", "whsec_test")
    verify_hmac_header(theirs, body, "whsec_test")


def test_several_v1_signatures_during_secret_rotation():
    body = b'{"id":"evt_1"}'
    old = hmac_header("whsec_old", body).split(",")[1]
    header = hmac_header("whsec_new", body) + "," + old
    verify_hmac_header(header, body, "whsec_new")
    verify_hmac_header(header, body, "whsec_old")
    with pytest.raises(InvalidWebhook):
        verify_hmac_header(header, body, "whsec_third")


def test_wechat_unknown_serial_and_bad_ciphertext():
    headers, body = signed_webhook(KEYS, "wechatpay", "ord_abc", AMOUNT)
    wrong_serial = {**as_dict(headers), "Wechatpay-Serial": "NOT-OURS"}
    with pytest.raises(InvalidWebhook, match="serial"):
        WechatPayProvider().parse_webhook(wrong_serial, body)
    other_key = ProviderKeys(wechat_platform=KEYS.wechat_platform, wechat_platform_serial=KEYS.wechat_platform_serial)
    headers, body = signed_webhook(other_key, "wechatpay", "ord_abc", AMOUNT)  # right signature, wrong APIv3 key
    with pytest.raises(InvalidWebhook, match="decrypt"):
        WechatPayProvider().parse_webhook(as_dict(headers), body)


@pytest.mark.parametrize("text, currency, expected", [("12.34", "CNY", 1234), ("0.01", "USD", 1), ("500", "JPY", 500),
                                                      ("1.234", "KWD", 1234)])
def test_decimal_amounts_become_exact_minor_units(text, currency, expected):
    assert minor_units(text, currency) == expected


@pytest.mark.parametrize("text", ["12.345", "-1", "1e3x", "NaN"])
def test_bad_decimal_amounts_are_rejected(text):
    with pytest.raises(InvalidWebhook):
        minor_units(text, "CNY")


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize("cut", [0, 1, 17, -1])
def test_truncated_and_random_bodies_are_rejected(name, cut):
    headers, body = signed_webhook(KEYS, name, "ord_abc", AMOUNT)
    with pytest.raises(InvalidWebhook):
        PROVIDERS[name].parse_webhook(as_dict(headers), body[:cut] if cut else b"\x00\xff garbage")
