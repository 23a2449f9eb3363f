"""Every outgoing provider request, checked against the providers' own libraries as oracles (issue 12, item 1).

Each call is built by our code (captured at shop.payments.http_client, and answered by the local fakes, which
check it too), then:

- Alipay (python-alipay-sdk, `alipay`): the library re-signs our parameters with the same merchant key and must
  produce the same signature (RSA2 PKCS#1 v1.5 is deterministic), its verifier accepts ours, and its own API
  methods build the same method and biz_content. `sign_type` is signed in requests, not in notifications.
- WeChat Pay (wechatpayv3): the library's build_authorization over our method, path, timestamp, nonce and body
  must give our exact Authorization header; its own pay/refund/query send the same path and JSON; and it
  accepts the fake's signed answers and notifications (the scheme our code verifies).
- Stripe (stripe-python): the library, pinned to our API version, sends the same method, URL, form body (byte
  for byte) and the Authorization, Idempotency-Key, Stripe-Version and Content-Type headers we send.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import replace

import pytest
import stripe

from localrun.fake_providers import FakeProviders, ProviderKeys, signed_webhook
from shop.domain.money import Money
from shop.domain.orders import Order, OrderLine, OrderStatus
from shop.payments import http_client
from shop.payments.alipay import AlipayProvider, notification_content, request_content
from shop.payments.stripe import API_VERSION, StripeProvider
from shop.payments.wechatpay import WechatPayProvider

KEYS = ProviderKeys(wechat_merchant_serial="3775B6A45ACD588826D15E583A95F5DD9FB4D8D0")
BASE = "http://fake"
NOTIFY = "https://shop.example/webhooks"


def order(provider: str, currency: str = "CNY", amount: int = 1999, order_id: str = "ord_oracle_000001") -> Order:
    line = OrderLine("TEE", "Tee", 1, Money(amount, currency))
    return Order(order_id, "20261124-AAAA-BBBBBB", "alice", OrderStatus.PENDING_PAYMENT, (line,), currency,
                 provider, {}, "t", "t", "t")


class Sent(list):
    """The captured requests, and the fakes that answered (and checked) them."""

    fakes: FakeProviders


@pytest.fixture
def sent(monkeypatch):
    """Every request our providers send: (method, url, headers, body), answered by the fakes."""
    for key, value in KEYS.function_env().items():
        monkeypatch.setenv(key, value)
    fakes = FakeProviders(BASE, KEYS)
    for key, value in fakes.function_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PAYMENT_WEBHOOK_BASE_URL", "https://shop.example")
    monkeypatch.delenv("PAYMENT_SECRETS_SOURCE", raising=False)
    seen = Sent()

    def exchange(method, url, *, body=None, headers=None):
        seen.append((method, url, dict(headers or {}), body or b""))
        status, answer_headers, answer = fakes.respond(method, url.removeprefix(BASE), dict(headers or {}),
                                                       body or b"")
        return status, {k.lower(): v for k, v in answer_headers}, answer

    monkeypatch.setattr(http_client, "exchange", exchange)
    seen.fakes = fakes
    return seen


def form_of(body: bytes) -> dict[str, str]:
    pairs = urllib.parse.parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=True)
    assert len(dict(pairs)) == len(pairs), "repeated parameter"
    return dict(pairs)


# ---------------------------------------------------------------- Alipay (python-alipay-sdk)

def alipay_library(capture: list | None = None):
    """python-alipay-sdk as the merchant would use it, with our app id, merchant key and Alipay's public key; its
    network call replaced by `capture` (what it would have sent)."""
    from alipay import AliPay

    client = AliPay(appid=KEYS.alipay_app_id, app_notify_url=f"{NOTIFY}/alipay",
                    app_private_key_string=KEYS.alipay_app[0], alipay_public_key_string=KEYS.alipay_platform[1],
                    sign_type="RSA2")
    if capture is not None:
        client.verified_sync_response = lambda data, response_type: capture.append(dict(data)) or {}
    return client


def assert_alipay_signature_is_the_librarys(params: dict[str, str]) -> None:
    library = alipay_library()
    unsigned = {k: v for k, v in params.items() if k != "sign"}
    resigned = form_of(library.sign_data(dict(unsigned)).encode())["sign"]
    assert resigned == params["sign"], "python-alipay-sdk signs these parameters differently"
    # Alipay verifies with the merchant's public key over every parameter but sign, sign_type included.
    from alipay import AliPay

    as_alipay = AliPay(appid=KEYS.alipay_app_id, app_private_key_string=KEYS.alipay_platform[0],
                       alipay_public_key_string=KEYS.alipay_app[1])
    assert as_alipay._verify(request_content(params).decode(), params["sign"])
    assert not as_alipay._verify(notification_content(params).decode(), params["sign"])  # the old bug


ALIPAY_COMMON = {"app_id", "method", "format", "charset", "sign_type", "timestamp", "version", "notify_url",
                 "biz_content", "sign"}


def assert_alipay_common_params(params: dict[str, str], method: str, library_data: dict) -> None:
    assert set(params) - {"return_url"} == ALIPAY_COMMON
    assert (params["app_id"], params["method"], params["charset"], params["sign_type"], params["version"],
            params["format"]) == (KEYS.alipay_app_id, method, "utf-8", "RSA2", "1.0", "JSON")
    assert params["notify_url"] == f"{NOTIFY}/alipay"
    # The library's own request for the same API: the same common parameters (it omits the optional format).
    assert set(library_data) - {"notify_url", "sign"} <= set(params) - {"sign", "format"}
    assert library_data["method"] == method and library_data["sign_type"] == "RSA2"


@pytest.mark.parametrize("currency, amount, total", [("CNY", 1999, "19.99"), ("USD", 500, "5.00")])
def test_alipay_precreate_and_page_pay(sent, monkeypatch, currency, amount, total):
    monkeypatch.setenv("ALIPAY_RETURN_URL", "https://shop.example/return")
    details = AlipayProvider().create_payment(order("alipay", currency, amount))
    assert details["qr_code"].startswith("https://qr.alipay.com/") and sent.fakes.refused == []
    (method, url, headers, body), = sent
    assert (method, url) == ("POST", f"{BASE}/_fake/alipay/gateway.do")
    assert headers["Content-Type"] == "application/x-www-form-urlencoded;charset=utf-8"
    params = form_of(body)
    captured: list[dict] = []
    extra = {"trans_currency": currency} if currency != "CNY" else {}
    alipay_library(captured).api_alipay_trade_precreate(subject="Order 20261124-AAAA-BBBBBB",
                                                        out_trade_no="ord_oracle_000001", total_amount=total,
                                                        **extra)
    assert_alipay_common_params(params, "alipay.trade.precreate", captured[0])
    assert json.loads(params["biz_content"]) == captured[0]["biz_content"]
    assert_alipay_signature_is_the_librarys(params)

    # page.pay: a signed URL for the browser, not a server call. The library's client_api builds the same.
    page = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(details["page_pay_url"]).query))
    assert page["return_url"] == "https://shop.example/return"
    library_page = form_of(alipay_library().api_alipay_trade_page_pay(
        subject="Order 20261124-AAAA-BBBBBB", out_trade_no="ord_oracle_000001", total_amount=total,
        return_url="https://shop.example/return", **extra).encode())
    assert json.loads(page["biz_content"]) == json.loads(library_page["biz_content"])
    assert_alipay_common_params(page, "alipay.trade.page.pay", library_page)
    assert_alipay_signature_is_the_librarys(page)
    status, _, _ = sent.fakes.handle("GET", "/_fake/alipay/gateway.do?" + urllib.parse.urlsplit(
        details["page_pay_url"]).query, {}, b"")
    assert status == 200


def test_alipay_refund_and_query(sent):
    provider = AlipayProvider()
    provider.create_payment(order("alipay"))
    sent.fakes.mark_paid("ord_oracle_000001", Money(1999, "CNY"))
    assert provider.query(order("alipay")) == "succeeded"
    provider.refund(order_id="ord_oracle_000001", provider_payment_id="2026", amount=Money(500, "CNY"),
                    refund_id="rf_oracle_1")
    assert sent.fakes.refused == []
    query, refund = form_of(sent[1][3]), form_of(sent[2][3])
    captured: list[dict] = []
    library = alipay_library(captured)
    library.api_alipay_trade_query(out_trade_no="ord_oracle_000001")
    library.api_alipay_trade_refund(refund_amount="5.00", out_trade_no="ord_oracle_000001",
                                    out_request_no="rf_oracle_1")
    for params, method, library_data in ((query, "alipay.trade.query", captured[0]),
                                         (refund, "alipay.trade.refund", captured[1])):
        assert_alipay_common_params(params, method, library_data)
        assert json.loads(params["biz_content"]) == library_data["biz_content"]
        assert_alipay_signature_is_the_librarys(params)


def test_the_alipay_fake_refuses_requests_signed_without_sign_type_as_alipay_does(sent):
    """The bug of issue 12: a request signed over the parameters without sign_type. The fake (python-alipay-sdk's
    verifier, Alipay's content rule) answers isv.invalid-signature, and so would Alipay."""
    from shop.payments.signing import rsa_sign

    AlipayProvider().create_payment(order("alipay"))
    params = form_of(sent[0][3])
    params["sign"] = rsa_sign(KEYS.alipay_app[0], notification_content(params))
    status, _, answer = sent.fakes.handle("POST", "/_fake/alipay/gateway.do", {},
                                          urllib.parse.urlencode(params).encode())
    assert json.loads(answer)["alipay_trade_precreate_response"]["sub_code"] == "isv.invalid-signature"
    for missing in ("app_id", "timestamp", "version"):
        partial = {k: v for k, v in form_of(sent[0][3]).items() if k != missing}
        _, _, answer = sent.fakes.handle("POST", "/_fake/alipay/gateway.do", {},
                                         urllib.parse.urlencode(partial).encode())
        assert json.loads(answer)["alipay_trade_precreate_response"]["code"] == "40001", missing


def test_alipay_notifications_verify_with_the_library_and_our_parser():
    """Notifications are signed without sign and sign_type: python-alipay-sdk's verify accepts the fake's, as
    does our parser (tests/unit/test_webhook_verification.py covers the refusals)."""
    headers, body = signed_webhook(KEYS, "alipay", "ord_oracle_000001", Money(1999, "CNY"))
    params = form_of(body)
    sign = params.pop("sign")
    assert alipay_library().verify(dict(params), sign)
    params["total_amount"] = "0.01"
    assert not alipay_library().verify(dict(params), sign)


# ---------------------------------------------------------------- WeChat Pay (wechatpayv3)

def wechat_library(capture: list, monkeypatch, notify_url: str | None = f"{NOTIFY}/wechatpay"):
    """wechatpayv3 as a merchant would use it (platform public key mode), its HTTP replaced by `capture`."""
    from wechatpayv3 import WeChatPay, WeChatPayType, core

    class Answer:
        # Not a 2xx, so the library does not verify an answer nobody signed: only the request matters here.
        status_code, text, headers = 400, "{}", {"Content-Type": "application/json"}

    def record(method):
        def call(url, json=None, data=None, headers=None, **_):
            capture.append((method, url, json, dict(headers or {})))
            return Answer()
        return call

    monkeypatch.setattr(core.requests, "post", record("POST"))
    monkeypatch.setattr(core.requests, "get", record("GET"))
    return WeChatPay(wechatpay_type=WeChatPayType.NATIVE, mchid=KEYS.wechat_mch_id, private_key=KEYS.wechat_merchant[0],
                     cert_serial_no=KEYS.wechat_merchant_serial, appid=KEYS.wechat_app_id,
                     apiv3_key=KEYS.wechat_apiv3_key, notify_url=notify_url, public_key=KEYS.wechat_platform[1],
                     public_key_id=KEYS.wechat_platform_serial)


def assert_wechat_authorization_is_the_librarys(method: str, url: str, headers: dict[str, str], body: bytes,
                                                 monkeypatch) -> None:
    """wechatpayv3's build_authorization, at our timestamp and with our nonce, over our exact body: the same
    header, character for character (RSA PKCS#1 v1.5 signatures are deterministic)."""
    from wechatpayv3 import utils

    authorization = headers["Authorization"]
    assert authorization.startswith("WECHATPAY2-SHA256-RSA2048 ")
    fields = dict(part.split("=", 1) for part in authorization.split(" ", 1)[1].split(","))
    fields = {k: v.strip('"') for k, v in fields.items()}
    path = url.removeprefix(f"{BASE}/_fake/wechatpay")
    with monkeypatch.context() as clock:  # the library reads the clock itself: ours, at the time we signed
        clock.setattr(utils.time, "time", lambda: int(fields["timestamp"]))
        expected = utils.build_authorization(path, method, KEYS.wechat_mch_id, KEYS.wechat_merchant_serial,
                                             utils.load_private_key(KEYS.wechat_merchant[0]),
                                             data=body.decode() if body else None, nonce_str=fields["nonce_str"])
    assert authorization == expected
    assert headers["Accept"] == "application/json" and headers.get("User-Agent")
    if body:
        assert headers["Content-Type"] == "application/json"


def test_wechat_native_pay_refund_and_query(sent, monkeypatch):
    provider = WechatPayProvider()
    assert provider.create_payment(order("wechatpay"))["code_url"].startswith("weixin://")
    sent.fakes.mark_paid("ord_oracle_000001", Money(1999, "CNY"))
    assert provider.query(order("wechatpay")) == "succeeded"
    provider.refund(order_id="ord_oracle_000001", provider_payment_id="4200", amount=Money(500, "CNY"),
                    refund_id="rf_oracle_1", captured=Money(1999, "CNY"))
    assert sent.fakes.refused == []
    ours = list(sent)

    captured: list = []
    library = wechat_library(captured, monkeypatch)
    from wechatpayv3 import WeChatPayType

    library.pay(description="Order 20261124-AAAA-BBBBBB", out_trade_no="ord_oracle_000001",
                amount={"total": 1999, "currency": "CNY"}, pay_type=WeChatPayType.NATIVE)
    library.query(out_trade_no="ord_oracle_000001")
    without_notify = wechat_library(captured, monkeypatch, notify_url=None)  # our refunds set no notify_url
    without_notify.refund(out_refund_no="rf_oracle_1", amount={"refund": 500, "total": 1999, "currency": "CNY"},
                          out_trade_no="ord_oracle_000001")
    for (method, url, headers, body), (lib_method, lib_url, lib_json, _) in zip(ours, captured):
        assert (method, url.removeprefix(f"{BASE}/_fake/wechatpay")) == \
            (lib_method, lib_url.removeprefix("https://api.mch.weixin.qq.com")), "another API or path"
        assert (json.loads(body) if body else None) == lib_json
    for method, url, headers, body in ours:
        assert_wechat_authorization_is_the_librarys(method, url, headers, body, monkeypatch)


def test_wechat_fake_answers_and_notifications_verify_with_the_library(sent, monkeypatch):
    """The other direction: what the fake signs (answers, notifications) is what wechatpayv3 verifies, so our
    verification of the same (tests/unit/test_webhook_verification.py) is checked against the same scheme."""
    captured: list = []
    library = wechat_library(captured, monkeypatch)
    status, answer_headers, answer = sent.fakes.respond("POST", "/_fake/wechatpay/v3/pay/transactions/native",
                                                        {}, b"{}")
    assert status == 401  # unsigned: refused, but the refusal is signed like every answer
    assert library._core._verify_signature(dict(answer_headers), answer.decode())
    headers, body = signed_webhook(KEYS, "wechatpay", "ord_oracle_000001", Money(1999, "CNY"))
    result = library.callback(dict(headers), body.decode())
    assert result["resource"]["out_trade_no"] == "ord_oracle_000001"
    tampered = body.replace(b'"TRANSACTION.SUCCESS"', b'"REFUND.SUCCESS"')
    assert library.callback(dict(headers), tampered.decode()) is None


def test_the_wechat_fake_refuses_what_wechat_pay_refuses(sent):
    provider = WechatPayProvider()
    provider.create_payment(order("wechatpay"))
    method, url, headers, body = sent[0]
    path = url.removeprefix(BASE)
    for name, bad in (("signature", {**headers, "Authorization": headers["Authorization"].replace(
                          'signature="', 'signature="AAAA')}),
                      ("mchid", {**headers, "Authorization": headers["Authorization"].replace(
                          KEYS.wechat_mch_id, "1999999999")}),
                      ("scheme", {**headers, "Authorization": "Bearer x"})):
        status, _, answer = sent.fakes.handle(method, path, bad, body)
        assert (status, json.loads(answer)["code"]) == (401, "SIGN_ERROR"), name
    status, _, answer = sent.fakes.handle(method, path, headers, body + b" ")  # body is not what was signed
    assert status == 401


# ---------------------------------------------------------------- Stripe (stripe-python)

class Recorder(stripe.HTTPClient):
    name = "recorder"

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[str, str, dict[str, str], str | None]] = []

    def request(self, method, url, headers, post_data=None):
        self.seen.append((method.upper(), url, dict(headers), post_data))
        return json.dumps({"id": "pi_1", "object": "payment_intent", "client_secret": "s"}), 200, {}

    def close(self):
        pass


HEADERS_COMPARED = ("Authorization", "Stripe-Version", "Idempotency-Key", "Content-Type")


def test_stripe_requests_are_what_the_stripe_library_sends(sent):
    provider = StripeProvider()
    details = provider.create_payment(order("stripe", "EUR"))
    sent.fakes.mark_paid("ord_oracle_000001", Money(1999, "EUR"))
    assert provider.query(replace(order("stripe", "EUR"), payment=details)) == "succeeded"
    provider.refund(order_id="ord_oracle_000001", provider_payment_id=details["payment_intent_id"],
                    amount=Money(500, "EUR"), refund_id="rf_oracle_1")
    assert sent.fakes.refused == []

    recorder = Recorder()
    client = stripe.StripeClient(KEYS.stripe_secret_key, base_addresses={"api": f"{BASE}/_fake/stripe"},
                                 stripe_version=API_VERSION, http_client=recorder)
    client.v1.payment_intents.create(params={"amount": 1999, "currency": "eur",
                                             "metadata": {"order_id": "ord_oracle_000001"},
                                             "automatic_payment_methods": {"enabled": True}},
                                     options={"idempotency_key": "pi-ord_oracle_000001"})
    client.v1.payment_intents.retrieve(details["payment_intent_id"])
    client.v1.refunds.create(params={"payment_intent": details["payment_intent_id"], "amount": 500,
                                     "metadata": {"order_id": "ord_oracle_000001"}},
                             options={"idempotency_key": "rf_oracle_1"})
    assert len(sent) == len(recorder.seen) == 3
    for (method, url, headers, body), (lib_method, lib_url, lib_headers, lib_body) in zip(sent, recorder.seen):
        assert (method, url) == (lib_method, lib_url)
        assert (body or b"").decode() == (lib_body or ""), "form encoding differs from stripe-python's"
        assert {h: headers.get(h) for h in HEADERS_COMPARED} == {h: lib_headers.get(h) for h in HEADERS_COMPARED}
    assert all(headers["Stripe-Version"] == API_VERSION for _, _, headers, _ in sent)


def test_the_stripe_fake_refuses_what_stripe_refuses(sent):
    StripeProvider().create_payment(order("stripe", "EUR"))
    _, url, headers, body = sent[0]
    path = url.removeprefix(BASE)
    cases = {
        "key": ({**headers, "Authorization": "Bearer sk_test_wrong"}, body, 401),
        "version": ({**headers, "Stripe-Version": "latest-please"}, body, 400),
        "unknown parameter": (headers, body + b"&colour=red", 400),
        "missing amount": (headers, b"currency=eur", 400),
        "bad amount": (headers, body.replace(b"amount=1999", b"amount=19.99"), 400),
    }
    for name, (bad_headers, bad_body, status) in cases.items():
        assert sent.fakes.handle("POST", path, bad_headers, bad_body)[0] == status, name


def test_order_with_stripe_pins_the_version_even_for_reads(sent):
    details = StripeProvider().create_payment(order("stripe", "USD"))
    paid = replace(order("stripe", "USD"), payment=details)
    StripeProvider().query(paid)
    assert [h.get("Stripe-Version") for _, _, h, _ in sent] == [API_VERSION, API_VERSION]
