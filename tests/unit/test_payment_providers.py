"""Provider details beyond the signature: whose notification it is, which amount counts, the outbound client."""

from __future__ import annotations

import json
import threading
import time
import types
import urllib.parse
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import stripe

from localrun.fake_providers import ProviderKeys, signed_webhook
from shop.domain.money import Money
from shop.payments import http_client
from shop.payments.alipay import AlipayProvider, notification_content
from shop.payments.base import InvalidWebhook, ProviderError
from shop.payments.signing import hmac_header, rsa_sign
from shop.payments.stripe import StripeProvider
from shop.payments.wechatpay import WechatPayProvider

KEYS = ProviderKeys()
AMOUNT = Money(12345, "CNY")


pytestmark = pytest.mark.usefixtures("provider_env")  # tests/unit/conftest.py, with this module's KEYS


def test_stripe_library_verifies_the_fakes_webhook_and_parses_it_like_we_do():
    headers, body = signed_webhook(KEYS, "stripe", "ord_abc", Money(1999, "EUR"), event_id="evt_9")
    event = stripe.Webhook.construct_event(body.decode(), dict(headers)["Stripe-Signature"],
                                           KEYS.stripe_webhook_secret, tolerance=300)
    ours = StripeProvider().parse_webhook(dict(headers), body)
    assert (event["id"], event["data"]["object"]["metadata"]["order_id"]) == (ours.event_id, ours.order_id)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body.decode(), dict(headers)["Stripe-Signature"], "whsec_other")


def test_stripe_counts_the_amount_received():
    intent = {"id": "pi_1", "amount": 2000, "amount_received": 1500, "currency": "eur",
              "metadata": {"order_id": "ord_x"}}
    body = json.dumps({"id": "evt_r", "type": "payment_intent.succeeded", "data": {"object": intent}}).encode()
    event = StripeProvider().parse_webhook({"Stripe-Signature": hmac_header(KEYS.stripe_webhook_secret, body)}, body)
    assert event.amount == Money(1500, "EUR") and event.provider_payment_id == "pi_1"


@pytest.mark.parametrize("obj", [[1], "x", 7, None])
def test_stripe_events_of_the_wrong_shape_are_400_not_500(obj):
    body = json.dumps({"id": "evt", "type": "payment_intent.succeeded", "data": {"object": obj}}).encode()
    with pytest.raises(InvalidWebhook):
        StripeProvider().parse_webhook({"Stripe-Signature": hmac_header(KEYS.stripe_webhook_secret, body)}, body)


def test_stripe_other_event_types_are_verified_but_ignored():
    body = json.dumps({"id": "evt_c", "type": "payment_intent.created",
                       "data": {"object": {"id": "pi_1", "amount": 5, "currency": "usd"}}}).encode()
    event = StripeProvider().parse_webhook({"Stripe-Signature": hmac_header(KEYS.stripe_webhook_secret, body)}, body)
    assert event.kind == "ignored"


def test_alipay_notification_for_another_app_is_rejected():
    other = ProviderKeys(alipay_platform=KEYS.alipay_platform, alipay_app_id="2099999999999999")
    headers, body = signed_webhook(other, "alipay", "ord_abc", AMOUNT)  # validly signed by Alipay, not for us
    with pytest.raises(InvalidWebhook, match="app_id"):
        AlipayProvider().parse_webhook(dict(headers), body)


def test_alipay_notification_signature_covers_sorted_params_without_sign_and_sign_type():
    from shop.payments.alipay import request_content

    params = {"b": "2", "a": "1", "empty": "", "sign_type": "RSA2", "sign": "x"}
    assert notification_content(params) == b"a=1&b=2"
    assert request_content(params) == b"a=1&b=2&sign_type=RSA2"  # requests sign sign_type too
    headers, body = signed_webhook(KEYS, "alipay", "ord_abc", AMOUNT)
    form = dict(urllib.parse.parse_qsl(body.decode()))
    form["sign_type"] = "RSA"  # only RSA2 is accepted, even though sign_type is not signed
    with pytest.raises(InvalidWebhook, match="RSA2"):
        AlipayProvider().parse_webhook(dict(headers), urllib.parse.urlencode(form).encode())
    form["sign_type"] = "RSA2"
    form["total_amount"] = "0.01"  # re-signed by someone holding only the merchant's key: rejected
    form["sign"] = rsa_sign(KEYS.alipay_app[0], notification_content(form))
    with pytest.raises(InvalidWebhook):
        AlipayProvider().parse_webhook(dict(headers), urllib.parse.urlencode(form).encode())


def test_alipay_waiting_and_closed_trades_are_not_payments():
    headers, body = signed_webhook(KEYS, "alipay", "ord_abc", AMOUNT)
    form = dict(urllib.parse.parse_qsl(body.decode()))
    for status, kind in (("WAIT_BUYER_PAY", "ignored"), ("TRADE_CLOSED", "payment_failed"),
                         ("TRADE_FINISHED", "payment_succeeded")):
        form["trade_status"] = status
        form["sign"] = rsa_sign(KEYS.alipay_platform[0], notification_content(form))
        assert AlipayProvider().parse_webhook({}, urllib.parse.urlencode(form).encode()).kind == kind


def test_wechat_notification_for_another_merchant_is_rejected():
    other = ProviderKeys(wechat_platform=KEYS.wechat_platform, wechat_platform_serial=KEYS.wechat_platform_serial,
                         wechat_apiv3_key=KEYS.wechat_apiv3_key, wechat_mch_id="1999999999")
    headers, body = signed_webhook(other, "wechatpay", "ord_abc", AMOUNT)
    with pytest.raises(InvalidWebhook, match="mchid"):
        WechatPayProvider().parse_webhook(dict(headers), body)


class _Flaky(BaseHTTPRequestHandler):
    script: list[int] = []
    seen: list[str] = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).seen.append(self.headers.get("Idempotency-Key", ""))
        status = type(self).script.pop(0) if type(self).script else 200
        if status == 0:  # hang past the client's timeout
            time.sleep(0.5)
            status = 200
        payload = b'{"ok": true}'
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def flaky(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(http_client, "time", types.SimpleNamespace(sleep=lambda _s: None))  # no backoff wait
    monkeypatch.setattr(http_client, "TIMEOUT_S", 0.2)
    _Flaky.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}/x"
    server.shutdown()
    server.server_close()


def test_http_client_retries_5xx_and_timeouts_with_the_same_key(flaky):
    _Flaky.script = [503, 0, 200]
    status, body = http_client.request("POST", flaky, body=b"a=1", headers={"Idempotency-Key": "k1"})
    assert (status, json.loads(body)) == (200, {"ok": True})
    assert _Flaky.seen == ["k1", "k1", "k1"]


def test_http_client_does_not_retry_4xx_and_gives_up_after_bounded_tries(flaky):
    _Flaky.script = [402]
    assert http_client.request("POST", flaky, body=b"")[0] == 402 and len(_Flaky.seen) == 1
    _Flaky.script = [500] * http_client.ATTEMPTS
    with pytest.raises(ProviderError):
        http_client.request("POST", flaky, body=b"")
    assert len(_Flaky.seen) == 1 + http_client.ATTEMPTS


def test_alipay_answers_are_verified_and_page_pay_is_signed(monkeypatch):
    from localrun.fake_providers import FakeProviders
    from shop.domain.orders import Order, OrderLine, OrderStatus
    from shop.domain.skus import StockPolicy
    from shop.payments import alipay as alipay_module

    fakes = FakeProviders("http://fake", KEYS)
    tamper = {"on": False}

    def request(method, url, *, body=None, headers=None):
        status, _, answer = fakes.handle("POST", "/_fake/alipay/gateway.do", dict(headers or {}), body)
        return status, answer.replace(b"https://qr.alipay.com/", b"https://evil.example/") if tamper["on"] else answer

    monkeypatch.setattr(alipay_module.http_client, "request", request)
    line = OrderLine("TEE", "Tee", 1, Money(1999, "CNY"), StockPolicy.RESERVE_ON_ORDER)
    order = Order("ord_ali", "20261124-AAAA-BBBBBB", "alice", OrderStatus.PENDING_PAYMENT, (line,), "CNY",
                  "alipay", {}, "t", "t", "t")
    details = AlipayProvider().create_payment(order)
    assert details["qr_code"].startswith("https://qr.alipay.com/")
    page = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(details["page_pay_url"]).query))
    assert page["method"] == "alipay.trade.page.pay" and json.loads(page["biz_content"])["total_amount"] == "19.99"
    status, _, _ = fakes.handle("GET", "/_fake/alipay/gateway.do?" + urllib.parse.urlsplit(
        details["page_pay_url"]).query, {}, b"")
    assert status == 200  # the (fake) cashier accepts the merchant's signature
    tamper["on"] = True
    with pytest.raises(ProviderError, match="does not verify"):
        AlipayProvider().create_payment(replace(order, order_id="ord_ali2"))


def test_wechat_answers_are_verified_before_a_code_url_is_trusted(monkeypatch):
    from localrun.fake_providers import FakeProviders
    from shop.domain.orders import Order, OrderLine, OrderStatus
    from shop.payments import wechatpay as wechat_module

    fakes = FakeProviders("http://fake", KEYS)
    mode = {"tamper": None}

    def exchange(method, url, *, body=None, headers=None):
        status, sent, answer = fakes.respond(method, "/_fake/wechatpay" + url.split("/_fake/wechatpay", 1)[1],
                                             dict(headers or {}), body or b"")
        sent = {k.lower(): v for k, v in sent}
        if mode["tamper"] == "body":
            answer = answer.replace(b"weixin://", b"https://evil.example/")
        elif mode["tamper"] == "unsigned":
            sent = {"content-type": "application/json"}
        return status, sent, answer

    monkeypatch.setenv("WECHATPAY_API_BASE", "http://fake/_fake/wechatpay")
    monkeypatch.setattr(wechat_module.http_client, "exchange", exchange)
    line = OrderLine("TEE", "Tee", 1, Money(1999, "CNY"))
    order = Order("ord_wx", "20261124-AAAA-BBBBBB", "alice", OrderStatus.PENDING_PAYMENT, (line,), "CNY",
                  "wechatpay", {}, "t", "t", "t")
    assert WechatPayProvider().create_payment(order)["code_url"].startswith("weixin://")
    for tamper, n in (("body", 2), ("unsigned", 3)):
        mode["tamper"] = tamper
        with pytest.raises(ProviderError, match="answer rejected"):
            WechatPayProvider().create_payment(replace(order, order_id=f"ord_wx{n}"))


def test_notification_urls_come_from_settings_never_a_guess(monkeypatch):
    from shop.payments.base import notify_url

    assert notify_url("wechatpay") == "https://shop.example/webhooks/wechatpay"
    monkeypatch.setenv("ALIPAY_NOTIFY_URL", "https://hooks.example/alipay")
    assert notify_url("alipay") == "https://hooks.example/alipay"
    monkeypatch.delenv("PAYMENT_WEBHOOK_BASE_URL")
    with pytest.raises(ProviderError, match="PAYMENT_WEBHOOK_BASE_URL"):
        notify_url("wechatpay")


def test_amounts_that_are_not_finite_decimals_are_refused():
    from shop.payments.base import minor_units

    assert minor_units("12.34", "CNY") == 1234 and minor_units("500", "JPY") == 500
    for bad in ("Infinity", "-Infinity", "NaN", "sNaN", "1e400000", "-1", "0.001", "abc"):
        with pytest.raises(InvalidWebhook):
            minor_units(bad, "CNY")
