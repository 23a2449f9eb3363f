"""Offline fakes of each provider's few endpoints, with their documented request and response shapes,
and the providers' own signed webhooks for `POST /_local/pay/{order_id}` (and for tests).

Keys are generated at start unless the environment gives them (`ProviderKeys.from_env`); the functions get
the matching halves through environment variables, exactly as they would read them from Secrets Manager when
deployed.

The fakes check requests the way each provider does, independently of our own signing code: Alipay's RSA2
request signature with python-alipay-sdk (`alipay`), WeChat Pay's Authorization with wechatpayv3's scheme,
Stripe's key, version header and parameters; each also refuses missing or unknown parameters as documented.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import os
import re
import secrets
import threading
import time
import urllib.parse
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shop.domain.money import Money
from shop.payments.alipay import CHINA
from shop.payments.base import decimal_text, minor_units
from shop.payments.secrets import LOCAL_DEFAULTS
from shop.payments.signing import hmac_header, new_rsa_keypair

Headers = list[tuple[str, str]]
STRIPE_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$")  # 2024-06-20, 2025-03-31.basil
ALIPAY_TIMESTAMP = "%Y-%m-%d %H:%M:%S"

# Environment variables the local run takes as they are (ProviderKeys field for each); the merchant private
# keys (ALIPAY_APP_PRIVATE_KEY, WECHATPAY_MERCHANT_PRIVATE_KEY) are taken too, their public halves derived.
LOCAL_KEY_VARIABLES = {
    "STRIPE_SECRET_KEY": "stripe_secret_key",
    "STRIPE_WEBHOOK_SECRET": "stripe_webhook_secret",
    "SANDBOX_WEBHOOK_SECRET": "sandbox_webhook_secret",
    "ALIPAY_APP_ID": "alipay_app_id",
    "WECHATPAY_MCH_ID": "wechat_mch_id",
    "WECHATPAY_APP_ID": "wechat_app_id",
    "WECHATPAY_MERCHANT_SERIAL": "wechat_merchant_serial",
    "WECHATPAY_APIV3_KEY": "wechat_apiv3_key",
}


def public_half(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@functools.lru_cache(maxsize=16)
def alipay_oracle(app_id: str, signing_private: str, verifying_public: str):
    """python-alipay-sdk's client, used as Alipay itself: it signs with `signing_private` and verifies with
    `verifying_public` (for the fake gateway: Alipay's own private key, the merchant app's public key)."""
    from alipay import AliPay

    return AliPay(appid=app_id, app_private_key_string=signing_private, alipay_public_key_string=verifying_public,
                  sign_type="RSA2")


def alipay_verifies_request(params: Mapping[str, str], app_public: str, app_id: str, alipay_private: str) -> bool:
    """Alipay's gateway check of a request: RSA2 over every parameter but `sign` (sign_type included), sorted,
    raw values, empty ones left out; verified by python-alipay-sdk's own RSA2 verification."""
    content = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sign" and params[k] != "")
    try:
        return alipay_oracle(app_id, alipay_private, app_public)._verify(content, params.get("sign", ""))
    except Exception:  # noqa: BLE001 - not base64, wrong length...: not a valid signature
        return False


def alipay_sign_notification(params: Mapping[str, str], alipay_private: str, app_public: str, app_id: str) -> str:
    """Alipay's signature on an asynchronous notification: over every parameter but `sign` and `sign_type`,
    made by python-alipay-sdk's signer (with Alipay's private key)."""
    unsigned = {k: v for k, v in params.items() if k not in ("sign", "sign_type") and v != ""}
    signed = alipay_oracle(app_id, alipay_private, app_public).sign_data(unsigned)
    return dict(urllib.parse.parse_qsl(signed))["sign"]


def wechat_sign(private_pem: str, message: str) -> str:
    """WeChat Pay's RSA-SHA256 signature, made by wechatpayv3's own signer."""
    from wechatpayv3.utils import load_private_key, rsa_sign

    return rsa_sign(load_private_key(private_pem), message)


def wechat_verifies_request(method: str, path: str, authorization: str, body: bytes, *, merchant_public: str,
                            mch_id: str, serial: str, now: float | None = None) -> str | None:
    """WeChat Pay's check of a request's `Authorization: WECHATPAY2-SHA256-RSA2048 mchid=...,nonce_str=...,
    signature=...,timestamp=...,serial_no=...`: RSA-SHA256 over "{method}\n{path with query}\n{timestamp}\n
    {nonce}\n{body}\n" with the merchant certificate of that serial, verified by wechatpayv3's rsa_verify (whose
    "{timestamp}\n{nonce}\n{body}\n" takes the method and path as a prefix). None when valid, else why not."""
    from wechatpayv3.utils import load_public_key, rsa_verify

    scheme, _, rest = authorization.partition(" ")
    if scheme != "WECHATPAY2-SHA256-RSA2048":
        return "authorization scheme is not WECHATPAY2-SHA256-RSA2048"
    fields = {}
    for part in rest.split(","):
        key, sep, value = part.strip().partition("=")
        if sep:
            fields[key] = value.strip('"')
    missing = [k for k in ("mchid", "nonce_str", "signature", "timestamp", "serial_no") if not fields.get(k)]
    if missing:
        return f"authorization lacks {', '.join(missing)}"
    if fields["mchid"] != mch_id:
        return "mchid does not match the merchant"
    if fields["serial_no"] != serial:
        return "serial_no is not the merchant certificate's"
    if not fields["timestamp"].isdigit() or abs((time.time() if now is None else now) - int(fields["timestamp"])) > 300:
        return "timestamp is more than 5 minutes off"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "body is not UTF-8"
    if not rsa_verify(f"{method}\n{path}\n{fields['timestamp']}", fields["nonce_str"], text, fields["signature"],
                      load_public_key(merchant_public)):
        return "signature does not verify"
    return None


@dataclass
class ProviderKeys:
    stripe_secret_key: str = LOCAL_DEFAULTS["STRIPE_SECRET_KEY"]
    stripe_webhook_secret: str = LOCAL_DEFAULTS["STRIPE_WEBHOOK_SECRET"]
    sandbox_webhook_secret: str = LOCAL_DEFAULTS["SANDBOX_WEBHOOK_SECRET"]
    alipay_platform: tuple[str, str] = field(default_factory=new_rsa_keypair)  # Alipay's own key pair
    alipay_app: tuple[str, str] = field(default_factory=new_rsa_keypair)  # the merchant app's key pair
    wechat_platform: tuple[str, str] = field(default_factory=new_rsa_keypair)
    wechat_merchant: tuple[str, str] = field(default_factory=new_rsa_keypair)
    wechat_platform_serial: str = "5157F09EFDC096DE15EBE81A47057A72"
    wechat_merchant_serial: str = LOCAL_DEFAULTS["WECHATPAY_MERCHANT_SERIAL"]
    wechat_apiv3_key: str = field(default_factory=lambda: secrets.token_hex(16))  # 32 characters
    alipay_app_id: str = LOCAL_DEFAULTS["ALIPAY_APP_ID"]
    wechat_mch_id: str = LOCAL_DEFAULTS["WECHATPAY_MCH_ID"]
    wechat_app_id: str = LOCAL_DEFAULTS["WECHATPAY_APP_ID"]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProviderKeys:
        """Every secret and merchant key the environment gives (see LOCAL_KEY_VARIABLES), the rest defaulted or
        generated. The providers' own key pairs (Alipay's, WeChat Pay's platform key) are always generated:
        a fake provider signs with its own private key, which no environment has."""
        env = os.environ if environ is None else environ

        def given(name: str) -> str | None:
            return env.get(name) or None

        merchant: dict[str, Any] = {}
        if given("ALIPAY_APP_PRIVATE_KEY"):
            merchant["alipay_app"] = (env["ALIPAY_APP_PRIVATE_KEY"], public_half(env["ALIPAY_APP_PRIVATE_KEY"]))
        if given("WECHATPAY_MERCHANT_PRIVATE_KEY"):
            key = env["WECHATPAY_MERCHANT_PRIVATE_KEY"]
            merchant["wechat_merchant"] = (key, public_half(key))
        plain: dict[str, Any] = {field_name: env[var] for var, field_name in LOCAL_KEY_VARIABLES.items() if given(var)}
        return cls(**plain, **merchant)

    def function_env(self) -> dict[str, str]:
        """What the functions read (from Secrets Manager when deployed): never the providers' private halves."""
        return {
            "STRIPE_SECRET_KEY": self.stripe_secret_key,
            "STRIPE_WEBHOOK_SECRET": self.stripe_webhook_secret,
            "SANDBOX_WEBHOOK_SECRET": self.sandbox_webhook_secret,
            "ALIPAY_APP_ID": self.alipay_app_id,
            "ALIPAY_APP_PRIVATE_KEY": self.alipay_app[0],
            "ALIPAY_PUBLIC_KEY": self.alipay_platform[1],
            "WECHATPAY_MERCHANT_PRIVATE_KEY": self.wechat_merchant[0],
            "WECHATPAY_MERCHANT_SERIAL": self.wechat_merchant_serial,
            "WECHATPAY_PLATFORM_PUBLIC_KEY": self.wechat_platform[1],
            "WECHATPAY_PLATFORM_SERIAL": self.wechat_platform_serial,
            "WECHATPAY_APIV3_KEY": self.wechat_apiv3_key,
            "WECHATPAY_MCH_ID": self.wechat_mch_id,
            "WECHATPAY_APP_ID": self.wechat_app_id,
        }


def signed_webhook(keys: ProviderKeys, provider: str, order_id: str, amount: Money, *,
                   event_id: str | None = None, payment_id: str | None = None,
                   timestamp: int | None = None) -> tuple[Headers, bytes]:
    """A 'payment succeeded' notification exactly as `provider` would send it."""
    now = int(time.time()) if timestamp is None else timestamp
    if provider == "sandbox":
        body = json.dumps({"id": event_id or f"evt_sbx_{uuid.uuid4().hex[:16]}", "type": "payment.succeeded",
                           "order_id": order_id, "amount": amount.to_dict(),
                           "payment_id": payment_id or f"sbx_pay_{order_id}"}).encode()
        return [("Content-Type", "application/json"),
                ("Sandbox-Signature", hmac_header(keys.sandbox_webhook_secret, body, now))], body
    if provider == "stripe":
        intent = {"id": payment_id or f"pi_{uuid.uuid4().hex[:24]}", "object": "payment_intent",
                  "amount": amount.amount, "amount_received": amount.amount, "currency": amount.currency.lower(),
                  "status": "succeeded", "metadata": {"order_id": order_id}}
        body = json.dumps({"id": event_id or f"evt_{uuid.uuid4().hex[:24]}", "object": "event", "api_version":
                           "2024-06-20", "created": now, "type": "payment_intent.succeeded", "livemode": False,
                           "data": {"object": intent}}).encode()
        return [("Content-Type", "application/json"),
                ("Stripe-Signature", hmac_header(keys.stripe_webhook_secret, body, now))], body
    if provider == "alipay":
        params = {"notify_time": datetime.now(CHINA).strftime("%Y-%m-%d %H:%M:%S"), "notify_type": "trade_status_sync",
                  "notify_id": event_id or uuid.uuid4().hex, "app_id": keys.alipay_app_id, "charset": "utf-8",
                  "version": "1.0", "sign_type": "RSA2", "trade_no": payment_id or f"2026{uuid.uuid4().int % 10**20}",
                  "out_trade_no": order_id, "trade_status": "TRADE_SUCCESS", "total_amount": decimal_text(amount)}
        if amount.currency != "CNY":
            params["trans_currency"] = amount.currency
        params["sign"] = alipay_sign_notification(params, keys.alipay_platform[0], keys.alipay_app[1], keys.alipay_app_id)
        return [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")], \
            urllib.parse.urlencode(params).encode()
    if provider == "wechatpay":
        transaction = {"appid": keys.wechat_app_id, "mchid": keys.wechat_mch_id, "out_trade_no": order_id, "transaction_id": payment_id or f"4200{uuid.uuid4().int % 10**24}",
                       "trade_state": "SUCCESS", "trade_type": "NATIVE",
                       "amount": {"total": amount.amount, "payer_total": amount.amount, "currency": amount.currency}}
        nonce = secrets.token_hex(6)
        ciphertext = AESGCM(keys.wechat_apiv3_key.encode()).encrypt(nonce.encode(), json.dumps(transaction).encode(),
                                                                     b"transaction")
        body = json.dumps({"id": event_id or str(uuid.uuid4()), "create_time": datetime.now(CHINA).isoformat(),
                           "resource_type": "encrypt-resource", "event_type": "TRANSACTION.SUCCESS",
                           "summary": "payment succeeded",
                           "resource": {"algorithm": "AEAD_AES_256_GCM", "ciphertext": base64.b64encode(ciphertext)
                                        .decode(), "associated_data": "transaction", "nonce": nonce,
                                        "original_type": "transaction"}}).encode()
        header_nonce = secrets.token_hex(16)
        signature = wechat_sign(keys.wechat_platform[0], f"{now}\n{header_nonce}\n{body.decode()}\n")
        return [("Content-Type", "application/json"), ("Wechatpay-Timestamp", str(now)),
                ("Wechatpay-Nonce", header_nonce), ("Wechatpay-Signature", signature),
                ("Wechatpay-Serial", keys.wechat_platform_serial),
                ("Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA2048")], body
    raise ValueError(f"no fake for provider {provider}")


class FakeProviders:
    """Serves /_fake/{stripe,alipay,wechatpay}/...; answers are remembered per idempotency key."""

    def __init__(self, base_url: str, keys: ProviderKeys | None = None):
        self.base_url = base_url
        self.keys = keys or ProviderKeys()
        self.lock = threading.Lock()
        self.answers: dict[str, tuple[int, dict[str, Any]]] = {}
        self.calls: list[tuple[str, str]] = []
        self.refused: list[tuple[str, str]] = []  # (path, why) of every request the fakes refused
        self.paid: dict[str, Money | None] = {}  # order id -> what the fake's payment took (None: unknown)
        self.refunded: dict[str, int] = {}  # order id -> minor units refunded so far

    def mark_paid(self, order_id: str, amount: Money | None = None) -> None:
        with self.lock:
            self.paid[order_id] = amount

    def payment_id(self, provider: str, order_id: str) -> str | None:
        """The provider's id for the order's payment: for Stripe, the PaymentIntent the order created."""
        if provider != "stripe":
            return None
        with self.lock:
            return next((a["id"] for k, (_, a) in self.answers.items() if k.startswith("stripe:/v1/payment_intents:")
                         and a.get("metadata", {}).get("order_id") == order_id), None)

    def _refund_problem(self, order_id: str | None, amount: int, total: int | None = None) -> str | None:
        """Why the provider would refuse this refund, if the fake knows the payment (else None: accepted)."""
        captured = self.paid.get(order_id or "")
        if captured is None:
            return None
        if total is not None and total != captured.amount:
            return f"total {total} is not the transaction's {captured.amount}"
        if amount <= 0 or self.refunded.get(order_id or "", 0) + amount > captured.amount:
            return f"refund of {amount} exceeds what is left of {captured.amount}"
        return None

    def _refund_made(self, order_id: str | None, amount: int) -> None:
        if order_id:
            self.refunded[order_id] = self.refunded.get(order_id, 0) + amount

    def _refuse(self, path: str, why: str) -> None:
        with self.lock:
            self.refused.append((path, why))

    def function_env(self) -> dict[str, str]:
        return {**self.keys.function_env(),
                "STRIPE_API_BASE": f"{self.base_url}/_fake/stripe",
                "PAYMENT_WEBHOOK_BASE_URL": self.base_url,  # Alipay and WeChat Pay notify_url
                "ALIPAY_GATEWAY": f"{self.base_url}/_fake/alipay/gateway.do",
                "WECHATPAY_API_BASE": f"{self.base_url}/_fake/wechatpay"}

    def respond(self, method: str, path: str, headers: dict[str, str], body: bytes
                ) -> tuple[int, Headers, bytes]:
        """(status, headers, body); WeChat Pay's answers carry its Wechatpay-* signature headers."""
        status, content_type, payload = self.handle(method, path, headers, body)
        sent: Headers = [("Content-Type", content_type)]
        if path.startswith("/_fake/wechatpay/"):
            timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
            signature = wechat_sign(self.keys.wechat_platform[0], f"{timestamp}\n{nonce}\n{payload.decode()}\n")
            sent += [("Wechatpay-Timestamp", timestamp), ("Wechatpay-Nonce", nonce),
                     ("Wechatpay-Signature", signature), ("Wechatpay-Serial", self.keys.wechat_platform_serial),
                     ("Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA2048")]
        return status, sent, payload

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
        lowered = {k.lower(): v for k, v in headers.items()}
        with self.lock:
            self.calls.append((method, path))
        if path.startswith("/_fake/stripe/"):
            return self._stripe(method, path.removeprefix("/_fake/stripe"), lowered, body)
        if method == "GET" and path.startswith("/_fake/alipay/gateway.do"):
            return self._alipay_page(path)
        if method == "POST" and path.split("?")[0] == "/_fake/alipay/gateway.do":
            return self._alipay(path, lowered, body)
        if method in ("GET", "POST") and path.startswith("/_fake/wechatpay/v3/"):
            return self._wechat(path.removeprefix("/_fake/wechatpay"), lowered, body, method)
        return _json(404, {"error": "no such fake endpoint"})

    def _once(self, key: str, make) -> tuple[int, dict[str, Any]]:
        """The first answer for an idempotency key is the answer for every retry (as Stripe documents)."""
        with self.lock:
            if key not in self.answers:
                self.answers[key] = make()
            return self.answers[key]

    # ---- Stripe ----

    def _stripe_error(self, path: str, status: int, message: str, code: str | None = None,
                      param: str | None = None) -> tuple[int, str, bytes]:
        self._refuse(f"/_fake/stripe{path}", message)
        error = {"type": "invalid_request_error", "message": message, **({"code": code} if code else {}),
                 **({"param": param} if param else {})}
        return _json(status, {"error": error})

    def _stripe(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
        """Stripe's checks: the secret key, a valid Stripe-Version, form-encoded parameters that exist and are
        well-formed (an unknown one is `parameter_unknown`, a missing one `parameter_missing`)."""
        path = raw_path.split("?")[0]
        if headers.get("authorization") != f"Bearer {self.keys.stripe_secret_key}":
            return self._stripe_error(path, 401, "Invalid API Key provided")
        version = headers.get("stripe-version")
        if version is not None and not STRIPE_VERSION.match(version):
            return self._stripe_error(path, 400, f"Invalid Stripe API version: {version}", "api_version_invalid")
        if method == "GET" and path.startswith("/v1/payment_intents/"):
            return self._stripe_intent(path.rsplit("/", 1)[-1])
        if method != "POST":
            return self._stripe_error(path, 404, "Unrecognized request URL")
        if body and not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return self._stripe_error(path, 400, "Stripe takes form-encoded parameters")
        try:
            pairs = urllib.parse.parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=bool(body))
        except (UnicodeDecodeError, ValueError):
            return self._stripe_error(path, 400, "Invalid request body")
        form = dict(pairs)
        key = f"stripe:{path}:{headers.get('idempotency-key') or uuid.uuid4()}"
        if path == "/v1/payment_intents":
            allowed = {"amount", "currency", "automatic_payment_methods[enabled]", "description", "customer",
                       "receipt_email", "capture_method", "confirm", "payment_method_types[0]"}
            problem = _stripe_params(form, allowed, required=("amount", "currency"))
            if problem:
                return self._stripe_error(path, 400, *problem)
            if not form["amount"].isdigit() or int(form["amount"]) < 1:
                return self._stripe_error(path, 400, "Invalid positive integer", "parameter_invalid_integer", "amount")
            if not re.fullmatch(r"[a-z]{3}", form["currency"]):
                return self._stripe_error(path, 400, f"Invalid currency: {form['currency']}", "parameter_invalid",
                                          "currency")

            def make():
                pid = f"pi_{uuid.uuid4().hex[:24]}"
                return 200, {"id": pid, "object": "payment_intent", "amount": int(form["amount"]),
                             "currency": form["currency"], "status": "requires_payment_method",
                             "client_secret": f"{pid}_secret_{uuid.uuid4().hex[:24]}",
                             "metadata": {"order_id": form.get("metadata[order_id]")}}
        elif path == "/v1/refunds":
            problem = _stripe_params(form, {"payment_intent", "charge", "amount", "reason"},
                                     one_of=("payment_intent", "charge"))
            if problem:
                return self._stripe_error(path, 400, *problem)
            if "amount" in form and (not form["amount"].isdigit() or int(form["amount"]) < 1):
                return self._stripe_error(path, 400, "Invalid positive integer", "parameter_invalid_integer", "amount")

            def make():
                order_id = form.get("metadata[order_id]")
                amount = int(form["amount"]) if "amount" in form else (self.paid.get(order_id or "") or Money(0, "USD")).amount
                problem = self._refund_problem(order_id, amount)
                if problem:
                    return 400, {"error": {"type": "invalid_request_error", "code": "amount_too_large",
                                           "message": problem}}
                self._refund_made(order_id, amount)
                return 200, {"id": f"re_{uuid.uuid4().hex[:24]}", "object": "refund", "amount": amount,
                             "payment_intent": form.get("payment_intent"), "status": "succeeded"}
        else:
            return self._stripe_error(path, 404, "Unrecognized request URL")
        return _json(*self._once(key, make))

    def _stripe_intent(self, intent_id: str) -> tuple[int, str, bytes]:
        with self.lock:
            intent = next((a for k, (_, a) in self.answers.items()
                           if k.startswith("stripe:/v1/payment_intents:") and a.get("id") == intent_id), None)
            if intent is None:
                return _json(404, {"error": {"type": "invalid_request_error", "code": "resource_missing"}})
            paid = intent["metadata"].get("order_id") in self.paid
        return _json(200, {**intent, "status": "succeeded" if paid else intent["status"]})

    # ---- Alipay ----

    def _alipay_check(self, params: dict[str, str]) -> tuple[str, str, str] | None:
        """Alipay's gateway checks, in its order: (code, sub_code, sub_msg) of the refusal, or None."""
        for name in ("app_id", "method", "charset", "sign_type", "sign", "timestamp", "version"):
            if not params.get(name):
                return "40001", f"isv.missing-{name.replace('_', '-')}", f"missing {name}"
        if params["app_id"] != self.keys.alipay_app_id:
            return "40002", "isv.invalid-app-id", "app_id is not this app"
        if params["sign_type"] != "RSA2":
            return "40002", "isv.invalid-sign-type", "only RSA2"
        if params["charset"].lower() not in ("utf-8", "gbk", "gb2312"):
            return "40002", "isv.invalid-charset", "charset"
        if params["version"] != "1.0":
            return "40002", "isv.invalid-parameter", "version must be 1.0"
        try:
            datetime.strptime(params["timestamp"], ALIPAY_TIMESTAMP)
        except ValueError:
            return "40002", "isv.invalid-timestamp", "timestamp is not yyyy-MM-dd HH:mm:ss"
        if not alipay_verifies_request(params, self.keys.alipay_app[1], self.keys.alipay_app_id,
                                       self.keys.alipay_platform[0]):
            return "40002", "isv.invalid-signature", "the request signature does not verify"
        try:
            biz = json.loads(params.get("biz_content") or "")
        except ValueError:
            return "40002", "isv.invalid-parameter", "biz_content is not JSON"
        if not isinstance(biz, dict):
            return "40002", "isv.invalid-parameter", "biz_content is not a JSON object"
        required = {"alipay.trade.precreate": ("out_trade_no", "total_amount", "subject"),
                    "alipay.trade.page.pay": ("out_trade_no", "total_amount", "subject", "product_code"),
                    "alipay.trade.refund": ("refund_amount",),
                    "alipay.trade.query": ()}.get(params["method"])
        if required is None:
            return "40004", "isv.method-not-supported", "method"  # answered as error_response
        missing = [name for name in required if not biz.get(name)]
        if params["method"] != "alipay.trade.precreate" and params["method"] != "alipay.trade.page.pay" \
                and not (biz.get("out_trade_no") or biz.get("trade_no")):
            missing.append("out_trade_no")
        if missing:
            return "40001", f"isv.missing-{missing[0].replace('_', '-')}", f"missing {', '.join(missing)}"
        for amount in ("total_amount", "refund_amount"):
            if amount in biz and not re.fullmatch(r"\d{1,9}(\.\d{1,2})?", str(biz[amount])):
                return "40002", "isv.invalid-parameter", f"{amount} is not an amount in yuan"
        return None

    def _alipay(self, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
        """Common parameters may come in the query string (the official SDKs) or the form body; both count."""
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(raw_path).query))
        try:
            params.update(urllib.parse.parse_qsl(body.decode("utf-8")))
        except UnicodeDecodeError:
            return _json(200, {"error_response": {"code": "40002", "msg": "Invalid Arguments",
                                                  "sub_code": "isv.invalid-charset"}})
        method = params.get("method", "")
        response_name = method.replace(".", "_") + "_response" if method else "error_response"
        refusal = self._alipay_check(params)
        if refusal:
            code, sub_code, sub_msg = refusal
            self._refuse("/_fake/alipay/gateway.do", f"{sub_code}: {sub_msg}")
            name = "error_response" if sub_code == "isv.method-not-supported" else response_name
            return _json(200, {name: {"code": code, "msg": "Invalid Arguments" if code != "40004" else
                                      "Business Failed", "sub_code": sub_code, "sub_msg": sub_msg}})
        biz = json.loads(params["biz_content"])
        if method == "alipay.trade.precreate":
            answer = {"code": "10000", "msg": "Success", "out_trade_no": biz["out_trade_no"],
                      "qr_code": f"https://qr.alipay.com/fake{uuid.uuid4().hex[:12]}"}
            key = f"alipay:pre:{biz['out_trade_no']}"
        elif method == "alipay.trade.refund":
            key = f"alipay:refund:{biz['out_request_no']}"
            with self.lock:
                if key not in self.answers:  # a retry with the same out_request_no is the same refund
                    captured = self.paid.get(biz["out_trade_no"])
                    amount = minor_units(biz["refund_amount"], captured.currency if captured else "CNY")
                    if self._refund_problem(biz["out_trade_no"], amount):
                        return _json(200, {"alipay_trade_refund_response": {
                            "code": "40004", "msg": "Business Failed", "sub_code": "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"}})
                    self._refund_made(biz["out_trade_no"], amount)
                    self.answers[key] = (200, {"alipay_trade_refund_response": {
                        "code": "10000", "msg": "Success", "out_trade_no": biz["out_trade_no"],
                        "refund_fee": biz["refund_amount"], "fund_change": "Y", "trade_no": uuid.uuid4().hex[:20]}})
            answer = {}  # remembered above
        elif method == "alipay.trade.query":
            if f"alipay:pre:{biz['out_trade_no']}" not in self.answers:
                return _json(200, {"alipay_trade_query_response": {"code": "40004", "msg": "Business Failed",
                                                                   "sub_code": "ACQ.TRADE_NOT_EXIST"}})
            state = "TRADE_SUCCESS" if biz["out_trade_no"] in self.paid else "WAIT_BUYER_PAY"
            return self._alipay_signed("alipay_trade_query_response", {
                "code": "10000", "msg": "Success", "out_trade_no": biz["out_trade_no"], "trade_status": state})
        else:  # page.pay is not a server call: the browser GETs it
            return _json(200, {"error_response": {"code": "40004", "sub_code": "isv.method-not-supported"}})
        _, stored = self._once(key, lambda: (200, {response_name: answer}))
        return self._alipay_signed(response_name, stored[response_name])

    def _alipay_signed(self, name: str, answer: dict[str, Any]) -> tuple[int, str, bytes]:
        """Alipay's answer shape: {"<method>_response": {...}, "sign": RSA2 over that object's exact text}."""
        text = json.dumps(answer, ensure_ascii=False)
        sign = alipay_oracle(self.keys.alipay_app_id, self.keys.alipay_platform[0], self.keys.alipay_app[1]
                             )._sign(text)
        return 200, "application/json;charset=utf-8", \
            f'{{"{name}":{text},"sign":{json.dumps(sign)}}}'.encode()

    def _alipay_page(self, raw_path: str) -> tuple[int, str, bytes]:
        """The cashier page a browser reaches with a signed alipay.trade.page.pay request (GET)."""
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(raw_path).query))
        refusal = self._alipay_check(params)
        if refusal or params.get("method") != "alipay.trade.page.pay":
            why = refusal[1] if refusal else "isv.method-not-supported"
            self._refuse("/_fake/alipay/gateway.do", why)
            return 400, "text/plain; charset=utf-8", why.encode()
        biz = json.loads(params["biz_content"])
        if biz.get("product_code") != "FAST_INSTANT_TRADE_PAY":
            return 400, "text/plain; charset=utf-8", b"isv.invalid-parameter: product_code"
        order_id = html.escape(str(biz.get("out_trade_no")))
        page = (f"<!doctype html><title>Alipay (local fake)</title><p>Order {order_id}: "
                f"{html.escape(str(biz.get('total_amount')))} {html.escape(str(biz.get('trans_currency', 'CNY')))}"
                f"</p><p>Locally, <code>POST /_local/pay/{order_id}</code> pays it.</p>")
        return 200, "text/html; charset=utf-8", page.encode()

    # ---- WeChat Pay ----

    def _wechat_error(self, path: str, status: int, code: str, message: str) -> tuple[int, str, bytes]:
        self._refuse(f"/_fake/wechatpay{path}", f"{code}: {message}")
        return _json(status, {"code": code, "message": message})

    def _wechat(self, path: str, headers: dict[str, str], body: bytes, method: str = "POST"
                ) -> tuple[int, str, bytes]:
        """WeChat Pay's checks: the merchant's Authorization signature (wechatpayv3's scheme), a User-Agent and
        JSON Accept, then the documented parameters of each API."""
        why = wechat_verifies_request(method, path, headers.get("authorization", ""), body,
                                      merchant_public=self.keys.wechat_merchant[1], mch_id=self.keys.wechat_mch_id,
                                      serial=self.keys.wechat_merchant_serial)
        if why:
            return self._wechat_error(path, 401, "SIGN_ERROR", why)
        if not headers.get("user-agent"):
            return self._wechat_error(path, 400, "PARAM_ERROR", "User-Agent is required")
        if "application/json" not in headers.get("accept", "application/json"):
            return self._wechat_error(path, 406, "PARAM_ERROR", "Accept must allow application/json")
        if method == "GET" and path.startswith("/v3/pay/transactions/out-trade-no/"):
            split = urllib.parse.urlsplit(path)
            if dict(urllib.parse.parse_qsl(split.query)).get("mchid") != self.keys.wechat_mch_id:
                return self._wechat_error(path, 400, "PARAM_ERROR", "mchid is required and must be the merchant's")
            order_id = split.path.rsplit("/", 1)[-1]
            if f"wx:pay:{order_id}" not in self.answers:
                return _json(404, {"code": "ORDER_NOT_EXIST", "message": "order does not exist"})
            return _json(200, {"out_trade_no": order_id, "mchid": self.keys.wechat_mch_id,
                               "appid": self.keys.wechat_app_id,
                               "trade_state": "SUCCESS" if order_id in self.paid else "NOTPAY"})
        if method != "POST":
            return self._wechat_error(path, 404, "NOT_FOUND", "no such fake endpoint")
        if not headers.get("content-type", "").startswith("application/json"):
            return self._wechat_error(path, 415, "PARAM_ERROR", "Content-Type must be application/json")
        try:
            payload = json.loads(body)
            if not isinstance(payload, dict):
                raise ValueError("not an object")
        except ValueError:
            return self._wechat_error(path, 400, "PARAM_ERROR", "body is not a JSON object")
        given = payload.get("amount")
        amount = given if isinstance(given, dict) else {}
        if path == "/v3/pay/transactions/native":
            missing = [k for k in ("appid", "mchid", "description", "out_trade_no", "notify_url") if not payload.get(k)]
            if missing or type(amount.get("total")) is not int:
                return self._wechat_error(path, 400, "PARAM_ERROR", f"missing {', '.join(missing or ['amount.total'])}")
            if payload["mchid"] != self.keys.wechat_mch_id or payload["appid"] != self.keys.wechat_app_id:
                return self._wechat_error(path, 400, "PARAM_ERROR", "appid and mchid do not match")
            if amount["total"] < 1 or not 6 <= len(payload["out_trade_no"]) <= 32:
                return self._wechat_error(path, 400, "PARAM_ERROR", "amount.total or out_trade_no out of range")
            return _json(*self._once(f"wx:pay:{payload['out_trade_no']}", lambda: (
                200, {"code_url": f"weixin://wxpay/bizpayurl?pr={uuid.uuid4().hex[:10]}"})))
        if path == "/v3/refund/domestic/refunds":
            if not payload.get("out_refund_no") or not (payload.get("out_trade_no") or payload.get("transaction_id")) \
                    or type(amount.get("refund")) is not int or type(amount.get("total")) is not int \
                    or not amount.get("currency"):
                return self._wechat_error(path, 400, "PARAM_ERROR",
                                          "out_refund_no, out_trade_no and amount.refund/total/currency are required")

            def make():
                order_id = payload["out_trade_no"]
                problem = self._refund_problem(order_id, int(amount["refund"]), int(amount["total"]))
                if problem:
                    return 400, {"code": "PARAM_ERROR", "message": problem}
                self._refund_made(order_id, int(amount["refund"]))
                return 200, {"refund_id": f"5030{uuid.uuid4().int % 10**20}", "out_refund_no": payload["out_refund_no"],
                             "out_trade_no": order_id, "status": "SUCCESS", "amount": amount}
            return _json(*self._once(f"wx:refund:{payload['out_refund_no']}", make))
        return self._wechat_error(path, 404, "NOT_FOUND", "no such fake endpoint")


def _stripe_params(form: Mapping[str, str], allowed: set[str], required: tuple[str, ...] = (),
                   one_of: tuple[str, ...] = ()) -> tuple[str, str, str] | None:
    """(message, code, param) of Stripe's refusal of these form parameters, or None. metadata[...] is free."""
    for name in form:
        if name not in allowed and not re.fullmatch(r"metadata\[[^\[\]]{1,40}\]", name):
            return f"Received unknown parameter: {name}", "parameter_unknown", name
    for name in required:
        if not form.get(name):
            return f"Missing required param: {name}.", "parameter_missing", name
    if one_of and not any(form.get(name) for name in one_of):
        return f"One of {' or '.join(one_of)} is required.", "parameter_missing", one_of[0]
    return None


def _json(status: int, body: dict[str, Any]) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(body).encode()
