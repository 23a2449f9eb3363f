"""What a verified notification means (found by `make mutate`: each test fails for a small change of the parsing
or verification rule that the other tests let through): which events are payments, which amount and order
they carry, and which headers or forms are refused as unauthenticated (401, never a crash)."""

from __future__ import annotations

import base64
import json
import secrets
import time
import urllib.parse

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from localrun.fake_providers import ProviderKeys
from shop.domain.money import Money
from shop.payments.alipay import AlipayProvider, notification_content, request_content
from shop.payments.base import InvalidWebhook, decimal_text, header, minor_units, provider_currency
from shop.payments.sandbox import SandboxProvider
from shop.payments.signing import hmac_header, rsa_sign, verify_hmac_header
from shop.payments.stripe import StripeProvider
from shop.payments.wechatpay import WechatPayProvider

KEYS = ProviderKeys()


@pytest.fixture(autouse=True)
def provider_env(monkeypatch):
    for key, value in KEYS.function_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PAYMENT_SECRETS_SOURCE", raising=False)


def stripe(event_type: str, obj: dict, event_id: str = "evt_1") -> tuple[dict[str, str], bytes]:
    body = json.dumps({"id": event_id, "object": "event", "type": event_type, "data": {"object": obj}}).encode()
    return {"stripe-signature": hmac_header(KEYS.stripe_webhook_secret, body)}, body


def wechat(event_type: str, transaction: dict, *, timestamp: str | None = None,
           event_id: str = "wx-evt-1") -> tuple[dict[str, str], bytes]:
    """A notification as WeChat Pay sends it: `transaction` encrypted (APIv3 key), the body signed."""
    nonce = secrets.token_hex(6)
    sealed = AESGCM(KEYS.wechat_apiv3_key.encode()).encrypt(nonce.encode(), json.dumps(transaction).encode(), b"tx")
    body = json.dumps({"id": event_id, "event_type": event_type, "resource_type": "encrypt-resource",
                       "resource": {"algorithm": "AEAD_AES_256_GCM", "nonce": nonce, "associated_data": "tx",
                                    "ciphertext": base64.b64encode(sealed).decode()}}).encode()
    stamp, header_nonce = str(int(time.time())) if timestamp is None else timestamp, secrets.token_hex(8)
    signature = rsa_sign(KEYS.wechat_platform[0], f"{stamp}\n{header_nonce}\n".encode() + body + b"\n")
    return {"Wechatpay-Timestamp": stamp, "Wechatpay-Nonce": header_nonce, "Wechatpay-Signature": signature,
            "Wechatpay-Serial": KEYS.wechat_platform_serial}, body


def transaction(**changes) -> dict:
    return {"mchid": KEYS.wechat_mch_id, "out_trade_no": "ord_w", "transaction_id": "4200001",
            "trade_state": "SUCCESS", "amount": {"total": 12345, "payer_total": 12345, "currency": "CNY"}, **changes}


def alipay(**params: str) -> bytes:
    """An Alipay notification form, signed with Alipay's key over what Alipay signs."""
    form = {"notify_id": "ali-1", "app_id": KEYS.alipay_app_id, "out_trade_no": "ord_a", "trade_no": "2026001",
            "trade_status": "TRADE_SUCCESS", "total_amount": "123.45", "sign_type": "RSA2", **params}
    form = {k: v for k, v in form.items() if v is not None}
    form["sign"] = rsa_sign(KEYS.alipay_platform[0], notification_content(form))
    return urllib.parse.urlencode(form).encode()


def refused(parse, *args) -> InvalidWebhook:
    with pytest.raises(InvalidWebhook) as caught:
        parse(*args)
    return caught.value


# ---- WeChat Pay ----

@pytest.mark.parametrize("state", ["NOTPAY", "CLOSED", "PAYERROR", "REFUND", "USERPAYING", None])
def test_a_wechat_transaction_that_did_not_succeed_is_not_a_payment(state):
    tx = transaction(trade_state=state) if state else {k: v for k, v in transaction().items() if k != "trade_state"}
    event = WechatPayProvider().parse_webhook(*wechat("TRANSACTION.SUCCESS", tx))
    assert event.kind == "ignored"


def test_a_wechat_payment_carries_its_order_amount_and_transaction():
    event = WechatPayProvider().parse_webhook(*wechat("TRANSACTION.SUCCESS", transaction()))
    assert (event.kind, event.order_id, event.amount, event.provider_payment_id, event.event_id) == (
        "payment_succeeded", "ord_w", Money(12345, "CNY"), "4200001", "wx-evt-1")
    no_currency = WechatPayProvider().parse_webhook(*wechat("TRANSACTION.SUCCESS", transaction(amount={"total": 5})))
    assert no_currency.amount == Money(5, "CNY")  # WeChat Pay's domestic currency when it names none
    refund = WechatPayProvider().parse_webhook(*wechat("REFUND.SUCCESS", transaction(amount={"refund": 5})))
    assert (refund.kind, refund.amount) == ("refund_succeeded", None)
    other = WechatPayProvider().parse_webhook(*wechat("TRANSACTION.CLOSED", transaction()))
    assert other.kind == "ignored"
    bare = WechatPayProvider().parse_webhook(*wechat("TRANSACTION.SUCCESS", {"trade_state": "SUCCESS"}))
    assert (bare.order_id, bare.amount, bare.provider_payment_id) == (None, None, None)


@pytest.mark.parametrize("field", ["refund", "payer_refund"])
def test_wechat_refund_amounts_must_be_whole_minor_units(field):
    tx = transaction(amount={"total": 100, field: "100"})
    assert refused(WechatPayProvider().parse_webhook, *wechat("REFUND.SUCCESS", tx)).status == 400


def test_a_wechat_notification_for_another_merchant_is_unauthenticated():
    error = refused(WechatPayProvider().parse_webhook, *wechat("TRANSACTION.SUCCESS", transaction(mchid="1900000002")))
    assert error.status == 401


@pytest.mark.parametrize("stamp", ["", "12a", "²", "1" * 5000, "-5"])
def test_wechat_timestamps_that_are_not_seconds_are_unauthenticated(stamp):
    signed_so = wechat("TRANSACTION.SUCCESS", transaction(), timestamp=stamp)  # even signed as sent
    assert refused(WechatPayProvider().parse_webhook, *signed_so).status == 401


@pytest.mark.parametrize("missing", ["Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature",
                                     "Wechatpay-Serial"])
def test_each_wechat_signature_header_is_required(missing):
    headers, body = wechat("TRANSACTION.SUCCESS", transaction())
    bare = {k: v for k, v in headers.items() if k != missing}
    assert refused(WechatPayProvider().parse_webhook, bare, body).status == 401


def test_a_wechat_resource_that_does_not_decrypt_is_unauthenticated():
    headers, body = wechat("TRANSACTION.SUCCESS", transaction())
    notification = json.loads(body)
    notification["resource"]["associated_data"] = "other"
    tampered = json.dumps(notification).encode()
    stamp, nonce = headers["Wechatpay-Timestamp"], headers["Wechatpay-Nonce"]
    resigned = {**headers, "Wechatpay-Signature": rsa_sign(KEYS.wechat_platform[0],
                                                           f"{stamp}\n{nonce}\n".encode() + tampered + b"\n")}
    assert refused(WechatPayProvider().parse_webhook, resigned, tampered).status == 401


# ---- Stripe ----

MALFORMED_SIGNATURES = ["t=abc,v1=00", "t=²,v1=00", "t=" + "9" * 5000 + ",v1=00", "t=-1,v1=00", "t=1.5,v1=00",
                        "v1=00", "t=1800000000", "t=1800000000,v0=00", "garbage", ",,,", "=", "t=,v1="]


def test_a_missing_signature_header_is_unauthenticated():
    body = b'{"id": "evt_1", "type": "payment_intent.succeeded"}'
    for value in (None, ""):
        assert refused(verify_hmac_header, value, body, "whsec_x").status == 401
    assert refused(StripeProvider().parse_webhook, {}, body).status == 401
    other = hmac_header("whsec_other", body)
    assert refused(verify_hmac_header, other, body, "whsec_x").status == 401
    assert refused(SandboxProvider().parse_webhook, {"Stripe-Signature": "t=1,v1=0"}, body).status == 401


@pytest.mark.parametrize("value", MALFORMED_SIGNATURES, ids=lambda v: v[:24])
def test_malformed_stripe_signature_headers_are_unauthenticated(value):
    body = b'{"id": "evt_1", "type": "payment_intent.succeeded"}'
    assert refused(verify_hmac_header, value, body, "whsec_x", 1_800_000_000).status == 401
    assert refused(StripeProvider().parse_webhook, {"Stripe-Signature": value}, body).status == 401
    assert refused(SandboxProvider().parse_webhook, {"Sandbox-Signature": value}, body).status == 401


def test_the_stripe_signature_is_found_whatever_the_header_case_and_spacing():
    body = b'{"id": "evt_1"}'
    signed = hmac_header("whsec_x", body, 1_800_000_000)
    verify_hmac_header(signed.replace(",", " , "), body, "whsec_x", now=1_800_000_000)
    assert header({"STRIPE-SIGNATURE": signed}, "Stripe-Signature") == signed
    assert header({"Other": signed}, "Stripe-Signature") is None


def test_a_stripe_payment_counts_what_was_received_for_the_order_in_the_metadata():
    intent = {"id": "pi_1", "amount": 5000, "amount_received": 4000, "currency": "eur", "metadata": {"order_id": "o1"}}
    event = StripeProvider().parse_webhook(*stripe("payment_intent.succeeded", intent, "evt_" + "x" * 300))
    assert (event.kind, event.order_id, event.amount, event.provider_payment_id) == (
        "payment_succeeded", "o1", Money(4000, "EUR"), "pi_1")
    assert len(event.event_id) == 128
    failed = StripeProvider().parse_webhook(*stripe("payment_intent.payment_failed", intent))
    assert (failed.kind, failed.amount) == ("payment_failed", Money(5000, "EUR"))  # no amount_received unless paid


def test_a_stripe_refund_names_the_payment_it_refunds():
    charge = {"id": "ch_1", "payment_intent": "pi_1", "amount": 5000, "amount_refunded": 5000, "currency": "usd",
              "metadata": {"order_id": "o1"}}
    event = StripeProvider().parse_webhook(*stripe("charge.refunded", charge))
    assert (event.kind, event.provider_payment_id, event.amount) == ("refund_succeeded", "pi_1", Money(5000, "USD"))
    no_metadata = StripeProvider().parse_webhook(*stripe("charge.refunded", {**charge, "metadata": None}))
    assert no_metadata.order_id is None
    assert StripeProvider().parse_webhook(*stripe("payment_intent.created", {"id": "pi_1"})).amount is None


@pytest.mark.parametrize("field", ["amount_received", "amount_refunded", "amount_capturable"])
@pytest.mark.parametrize("event_type", ["payment_intent.succeeded", "payment_intent.payment_failed"])
def test_every_stripe_amount_must_be_whole_minor_units(field, event_type):
    intent = {"id": "pi_1", "amount": 100, "amount_received": 100, "currency": "usd", field: -1}
    assert refused(StripeProvider().parse_webhook, *stripe(event_type, intent)).status == 400


# ---- the sandbox ----

def test_a_sandbox_failure_and_an_event_without_an_order():
    body = json.dumps({"id": "e1", "type": "payment.failed", "amount": {"amount": 5, "currency": "usd"}}).encode()
    event = SandboxProvider().parse_webhook({"Sandbox-Signature": hmac_header(KEYS.sandbox_webhook_secret, body)},
                                            body)
    assert (event.kind, event.order_id, event.amount, event.provider_payment_id) == (
        "payment_failed", None, Money(5, "USD"), "e1")


# ---- Alipay ----

@pytest.mark.parametrize("status, kind", [("TRADE_SUCCESS", "payment_succeeded"), ("TRADE_FINISHED", "payment_succeeded"),
                                          ("TRADE_CLOSED", "payment_failed"), ("WAIT_BUYER_PAY", "ignored")])
def test_alipay_trade_statuses(status, kind):
    event = AlipayProvider().parse_webhook({}, alipay(trade_status=status))
    assert (event.kind, event.order_id, event.amount, event.provider_payment_id, event.event_id) == (
        kind, "ord_a", Money(12345, "CNY"), "2026001", "ali-1")


def test_an_alipay_payment_in_another_currency_is_counted_in_it():
    assert AlipayProvider().parse_webhook({}, alipay(trans_currency="JPY", total_amount="500")).amount == \
        Money(500, "JPY")
    assert AlipayProvider().parse_webhook({}, alipay(currency="USD", total_amount="1.50")).amount == Money(150, "USD")
    assert AlipayProvider().parse_webhook({}, alipay(trade_no="")).provider_payment_id is None


@pytest.mark.parametrize("form", [{"sign_type": "RSA"}, {"sign_type": ""}, {"app_id": "2021000000000001"}])
def test_alipay_notifications_of_another_scheme_or_app_are_unauthenticated(form):
    assert refused(AlipayProvider().parse_webhook, {}, alipay(**form)).status == 401


def test_an_alipay_notification_without_sign_type_is_taken_as_rsa2():
    assert AlipayProvider().parse_webhook({}, alipay(sign_type=None)).kind == "payment_succeeded"


def test_an_rsa_signature_must_verify_and_be_plain_base64():
    form = dict(urllib.parse.parse_qsl(alipay().decode()))
    sign = form["sign"]
    for bad in (sign[:10] + "*" + sign[10:], sign[:-4] + "AAAA", ""):
        body = urllib.parse.urlencode({**form, "sign": bad}).encode()
        assert refused(AlipayProvider().parse_webhook, {}, body).status == 401


@pytest.mark.parametrize("repeat", [b"&total_amount=1.00", b"&out_trade_no=ord_a", b"&sign_type=RSA2"])
def test_an_alipay_field_given_twice_is_unauthenticated(repeat):
    assert refused(AlipayProvider().parse_webhook, {}, alipay() + repeat).status == 401  # even repeated as signed


@pytest.mark.parametrize("body", [b"no-equals-sign", b"a=1&&b=2", b"\xff=1"])
def test_an_alipay_body_that_is_not_a_form_is_malformed(body):
    assert refused(AlipayProvider().parse_webhook, {}, body).status == 400


@pytest.mark.parametrize("missing", ["total_amount", "notify_id", "trade_status", "out_trade_no"])
def test_an_alipay_notification_missing_a_field_is_malformed(missing):
    assert refused(AlipayProvider().parse_webhook, {}, alipay(**{missing: None})).status == 400


def test_what_alipay_signs():
    params = {"b": "2", "a": "1", "sign": "s", "sign_type": "RSA2", "empty": ""}
    assert request_content(params) == b"a=1&b=2&sign_type=RSA2"
    assert notification_content(params) == b"a=1&b=2"


# ---- amounts and currencies ----

@pytest.mark.parametrize("currency, text, minor, written", [
    ("JPY", "1500", 1500, "1500"), ("KRW", "1500", 1500, "1500"), ("VND", "7", 7, "7"), ("CLP", "7", 7, "7"),
    ("ISK", "7", 7, "7"), ("BHD", "1.5", 1500, "1.500"), ("KWD", "0.001", 1, "0.001"), ("OMR", "2", 2000, "2.000"),
    ("JOD", "2", 2000, "2.000"), ("TND", "2", 2000, "2.000"), ("EUR", "2", 200, "2.00"), ("CNY", "0", 0, "0.00")])
def test_each_currency_counts_its_own_minor_units(currency, text, minor, written):
    assert minor_units(text, currency) == minor
    assert decimal_text(Money(minor, currency)) == written  # what Alipay is asked for


def test_decimal_text_writes_minor_units_back_exactly():
    assert [decimal_text(Money(a, c)) for a, c in [(12345, "CNY"), (5, "CNY"), (100, "JPY"), (1234, "KWD")]] == [
        "123.45", "0.05", "100", "1.234"]


def test_amounts_at_the_bound_are_accepted_and_beyond_it_refused():
    for not_text in (1234, None, b"12.34"):  # a provider's JSON where a decimal string belongs
        assert refused(minor_units, not_text, "CNY").status == 400
    assert minor_units("10000000000000.00", "CNY") == 10**15
    assert refused(minor_units, "10000000000000.01", "CNY").status == 400
    assert refused(minor_units, "0.5", "JPY").status == 400


@pytest.mark.parametrize("value, code", [("eur", "EUR"), ("Usd", "USD")])
def test_currencies_are_three_letters_upper_cased(value, code):
    assert provider_currency(value) == code


@pytest.mark.parametrize("value", ["eu", "euro", "é€r", "e1r", "ЕUR", 978])
def test_other_currency_codes_are_malformed(value):
    assert refused(provider_currency, value).status == 400


# ---- bounds on what a sender controls, unknown events, answers without a signature ----

def test_a_senders_long_ids_are_cut_to_their_stored_bounds():
    """Event ids become idempotency keys and order ids key lookups: 128 and 64 characters at most."""
    body = json.dumps({"id": "e" * 200, "type": "payment.succeeded", "order_id": "o" * 100,
                       "payment_id": "p" * 200, "amount": {"amount": 5, "currency": "EUR"}}).encode()
    sandbox = SandboxProvider().parse_webhook({"Sandbox-Signature": hmac_header(KEYS.sandbox_webhook_secret, body)},
                                              body)
    assert (sandbox.event_id, sandbox.order_id, sandbox.provider_payment_id) == ("e" * 128, "o" * 64, "p" * 128)
    ali = AlipayProvider().parse_webhook({}, alipay(notify_id="n" * 200, out_trade_no="o" * 100, trade_no="t" * 100))
    assert (ali.event_id, ali.order_id, ali.provider_payment_id) == ("n" * 128, "o" * 64, "t" * 64)
    assert AlipayProvider().parse_webhook({}, alipay(trade_no=None)).provider_payment_id is None
    headers, signed = wechat("TRANSACTION.SUCCESS", transaction(out_trade_no="o" * 100, transaction_id="t" * 100))
    wx = WechatPayProvider().parse_webhook(headers, signed)
    assert (wx.order_id, wx.provider_payment_id) == ("o" * 64, "t" * 64)


def test_an_event_the_shop_does_not_know_is_ignored_not_refused():
    body = json.dumps({"id": "e1", "type": "payment.disputed", "order_id": "ord_1"}).encode()
    event = SandboxProvider().parse_webhook({"Sandbox-Signature": hmac_header(KEYS.sandbox_webhook_secret, body)},
                                            body)
    assert (event.kind, event.order_id, event.amount) == ("ignored", "ord_1", None)
    for event_type, kind in (("TRANSACTION.SUCCESS", "payment_succeeded"), ("REFUND.SUCCESS", "refund_succeeded"),
                             ("REFUND.ABNORMAL", "ignored")):
        assert WechatPayProvider().parse_webhook(*wechat(event_type, transaction())).kind == kind, event_type


def test_a_wechat_signature_under_an_unknown_platform_serial_is_unauthenticated():
    headers, body = wechat("TRANSACTION.SUCCESS", transaction())
    other_serial = {**headers, "Wechatpay-Serial": "5157F09EFDC096DE15EBE81A47057A72" + "00"}
    assert refused(WechatPayProvider().parse_webhook, other_serial, body).status == 401  # signed by the right key


def test_a_wechat_resource_without_associated_data_decrypts():
    from shop.payments.wechatpay import decrypt_resource

    nonce = secrets.token_hex(6)
    sealed = AESGCM(KEYS.wechat_apiv3_key.encode()).encrypt(nonce.encode(), b'{"trade_state": "SUCCESS"}', None)
    resource = {"algorithm": "AEAD_AES_256_GCM", "nonce": nonce, "ciphertext": base64.b64encode(sealed).decode()}
    assert decrypt_resource(resource, KEYS.wechat_apiv3_key) == {"trade_state": "SUCCESS"}


def test_an_alipay_answer_without_a_signature_is_a_provider_error_not_a_crash():
    from shop.payments.alipay import verify_response
    from shop.payments.base import ProviderError

    inner = '{"code":"10000","msg":"Success","trade_no":"2026001"}'
    sign = rsa_sign(KEYS.alipay_platform[0], inner.encode())
    text = f'{{"alipay_trade_query_response":{inner},"sign":"{sign}"}}'
    verify_response(text, "alipay_trade_query_response", sign, KEYS.alipay_platform[1])
    for bad_sign in (None, "", sign[:-4] + "AAAA"):
        with pytest.raises(ProviderError):
            verify_response(text, "alipay_trade_query_response", bad_sign, KEYS.alipay_platform[1])
    with pytest.raises(ProviderError):
        verify_response(inner, "alipay_trade_query_response", sign, KEYS.alipay_platform[1])


def test_a_wechat_amount_is_in_the_currency_it_names():
    event = WechatPayProvider().parse_webhook(*wechat("TRANSACTION.SUCCESS",
                                                      transaction(amount={"total": 500, "currency": "HKD"})))
    assert event.amount == Money(500, "HKD")


def test_a_wechat_refund_notification_carries_no_trade_state_and_is_a_refund():
    refund = {"mchid": KEYS.wechat_mch_id, "out_trade_no": "ord_w", "transaction_id": "4200001",
              "out_refund_no": "rf_1", "refund_status": "SUCCESS", "amount": {"total": 100, "refund": 100}}
    event = WechatPayProvider().parse_webhook(*wechat("REFUND.SUCCESS", refund, event_id="w" * 200))
    assert (event.kind, event.order_id, event.event_id) == ("refund_succeeded", "ord_w", "w" * 128)
