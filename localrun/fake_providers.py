"""Offline fakes of each provider's few endpoints, with their documented request and response shapes,
and the providers' own signed webhooks for `POST /_local/pay/{order_id}` (and for tests).

Keys are generated at start; the functions get the matching halves through environment variables,
exactly as they would read them from Secrets Manager when deployed.
"""

from __future__ import annotations

import base64
import html
import json
import secrets
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shop.domain.money import Money
from shop.payments.alipay import CHINA, signing_content
from shop.payments.base import decimal_text, minor_units
from shop.payments.signing import hmac_header, new_rsa_keypair, rsa_sign, rsa_verify

Headers = list[tuple[str, str]]


@dataclass
class ProviderKeys:
    stripe_secret_key: str = "sk_test_local"
    stripe_webhook_secret: str = "whsec_local_dev_secret"
    sandbox_webhook_secret: str = "sandbox_local_secret"
    alipay_platform: tuple[str, str] = field(default_factory=new_rsa_keypair)  # Alipay's own key pair
    alipay_app: tuple[str, str] = field(default_factory=new_rsa_keypair)  # the merchant app's key pair
    wechat_platform: tuple[str, str] = field(default_factory=new_rsa_keypair)
    wechat_merchant: tuple[str, str] = field(default_factory=new_rsa_keypair)
    wechat_platform_serial: str = "5157F09EFDC096DE15EBE81A47057A72"
    wechat_apiv3_key: str = field(default_factory=lambda: secrets.token_hex(16))  # 32 characters
    alipay_app_id: str = "2021000000000000"
    wechat_mch_id: str = "1900000001"
    wechat_app_id: str = "wxlocal0000000000"

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
        params["sign"] = rsa_sign(keys.alipay_platform[0], signing_content(params))
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
        signature = rsa_sign(keys.wechat_platform[0], f"{now}\n{header_nonce}\n".encode() + body + b"\n")
        return [("Content-Type", "application/json"), ("Wechatpay-Timestamp", str(now)),
                ("Wechatpay-Nonce", header_nonce), ("Wechatpay-Signature", signature),
                ("Wechatpay-Serial", keys.wechat_platform_serial)], body
    raise ValueError(f"no fake for provider {provider}")


class FakeProviders:
    """Serves /_fake/{stripe,alipay,wechatpay}/...; answers are remembered per idempotency key."""

    def __init__(self, base_url: str, keys: ProviderKeys | None = None):
        self.base_url = base_url
        self.keys = keys or ProviderKeys()
        self.lock = threading.Lock()
        self.answers: dict[str, tuple[int, dict[str, Any]]] = {}
        self.calls: list[tuple[str, str]] = []
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
        if amount <= 0 or self.refunded.get(order_id, 0) + amount > captured.amount:
            return f"refund of {amount} exceeds what is left of {captured.amount}"
        return None

    def _refund_made(self, order_id: str | None, amount: int) -> None:
        if order_id:
            self.refunded[order_id] = self.refunded.get(order_id, 0) + amount

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
            signature = rsa_sign(self.keys.wechat_platform[0], f"{timestamp}\n{nonce}\n".encode() + payload + b"\n")
            sent += [("Wechatpay-Timestamp", timestamp), ("Wechatpay-Nonce", nonce),
                     ("Wechatpay-Signature", signature), ("Wechatpay-Serial", self.keys.wechat_platform_serial)]
        return status, sent, payload

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
        lowered = {k.lower(): v for k, v in headers.items()}
        with self.lock:
            self.calls.append((method, path))
        if method == "GET" and path.startswith("/_fake/stripe/v1/payment_intents/"):
            return self._stripe_intent(path.rsplit("/", 1)[-1], lowered)
        if method == "GET" and path.startswith("/_fake/wechatpay/v3/"):
            return self._wechat(path.removeprefix("/_fake/wechatpay"), lowered, body, "GET")
        if method == "POST" and path.startswith("/_fake/stripe/v1/"):
            return self._stripe(path.removeprefix("/_fake/stripe"), lowered, body)
        if method == "GET" and path.startswith("/_fake/alipay/gateway.do"):
            return self._alipay_page(path)
        if method == "POST" and path == "/_fake/alipay/gateway.do":
            return self._alipay(body)
        if method == "POST" and path.startswith("/_fake/wechatpay/v3/"):
            return self._wechat(path.removeprefix("/_fake/wechatpay"), lowered, body)
        return _json(404, {"error": "no such fake endpoint"})

    def _once(self, key: str, make) -> tuple[int, dict[str, Any]]:
        """The first answer for an idempotency key is the answer for every retry (as Stripe documents)."""
        with self.lock:
            if key not in self.answers:
                self.answers[key] = make()
            return self.answers[key]

    def _stripe(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
        if headers.get("authorization") != f"Bearer {self.keys.stripe_secret_key}":
            return _json(401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}})
        form = dict(urllib.parse.parse_qsl(body.decode()))
        key = f"stripe:{path}:{headers.get('idempotency-key') or uuid.uuid4()}"
        if path == "/v1/payment_intents":
            def make():
                pid = f"pi_{uuid.uuid4().hex[:24]}"
                return 200, {"id": pid, "object": "payment_intent", "amount": int(form["amount"]),
                             "currency": form["currency"], "status": "requires_payment_method",
                             "client_secret": f"{pid}_secret_{uuid.uuid4().hex[:24]}",
                             "metadata": {"order_id": form.get("metadata[order_id]")}}
        elif path == "/v1/refunds":
            def make():
                order_id, amount = form.get("metadata[order_id]"), int(form["amount"])
                problem = self._refund_problem(order_id, amount)
                if problem:
                    return 400, {"error": {"type": "invalid_request_error", "code": "amount_too_large",
                                           "message": problem}}
                self._refund_made(order_id, amount)
                return 200, {"id": f"re_{uuid.uuid4().hex[:24]}", "object": "refund", "amount": amount,
                             "payment_intent": form.get("payment_intent"), "status": "succeeded"}
        else:
            return _json(404, {"error": {"message": "Unrecognized request URL"}})
        return _json(*self._once(key, make))

    def _stripe_intent(self, intent_id: str, headers: dict[str, str]) -> tuple[int, str, bytes]:
        if headers.get("authorization") != f"Bearer {self.keys.stripe_secret_key}":
            return _json(401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}})
        with self.lock:
            intent = next((a for k, (_, a) in self.answers.items()
                           if k.startswith("stripe:/v1/payment_intents:") and a.get("id") == intent_id), None)
            if intent is None:
                return _json(404, {"error": {"type": "invalid_request_error", "code": "resource_missing"}})
            paid = intent["metadata"].get("order_id") in self.paid
        return _json(200, {**intent, "status": "succeeded" if paid else intent["status"]})

    def _alipay(self, body: bytes) -> tuple[int, str, bytes]:
        params = dict(urllib.parse.parse_qsl(body.decode()))
        try:
            rsa_verify(self.keys.alipay_app[1], signing_content(params), params.get("sign", ""))
        except Exception:  # noqa: BLE001 - Alipay answers an invalid signature with a business error
            return _json(200, {"error_response": {"code": "40002", "sub_code": "isv.invalid-signature"}})
        biz = json.loads(params.get("biz_content") or "{}")
        method = params.get("method", "")
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
        else:
            return _json(200, {"error_response": {"code": "40004", "sub_code": "isv.method-not-supported"}})
        response_name = method.replace(".", "_") + "_response"
        _, stored = self._once(key, lambda: (200, {response_name: answer}))
        return self._alipay_signed(response_name, stored[response_name])

    def _alipay_signed(self, name: str, answer: dict[str, Any]) -> tuple[int, str, bytes]:
        """Alipay's answer shape: {"<method>_response": {...}, "sign": RSA2 over that object's exact text}."""
        text = json.dumps(answer, ensure_ascii=False)
        sign = rsa_sign(self.keys.alipay_platform[0], text.encode())
        return 200, "application/json;charset=utf-8", \
            f'{{"{name}":{text},"sign":{json.dumps(sign)}}}'.encode()

    def _alipay_page(self, raw_path: str) -> tuple[int, str, bytes]:
        """The cashier page a browser reaches with a signed alipay.trade.page.pay request (GET)."""
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(raw_path).query))
        try:
            rsa_verify(self.keys.alipay_app[1], signing_content(params), params.get("sign", ""))
            biz = json.loads(params["biz_content"])
        except Exception:  # noqa: BLE001
            return 400, "text/plain; charset=utf-8", b"invalid-signature"
        order_id = html.escape(str(biz.get("out_trade_no")))
        page = (f"<!doctype html><title>Alipay (local fake)</title><p>Order {order_id}: "
                f"{html.escape(str(biz.get('total_amount')))} {html.escape(str(biz.get('trans_currency', 'CNY')))}"
                f"</p><p>Locally, <code>POST /_local/pay/{order_id}</code> pays it.</p>")
        return 200, "text/html; charset=utf-8", page.encode()

    def _wechat(self, path: str, headers: dict[str, str], body: bytes, method: str = "POST"
                ) -> tuple[int, str, bytes]:
        auth = headers.get("authorization", "")
        fields = dict(part.split("=", 1) for part in auth.removeprefix("WECHATPAY2-SHA256-RSA2048 ").split(",")
                      if "=" in part)
        fields = {k: v.strip('"') for k, v in fields.items()}
        try:
            message = f"{method}\n{path}\n{fields['timestamp']}\n{fields['nonce_str']}\n".encode()
            rsa_verify(self.keys.wechat_merchant[1], message + body + b"\n", fields["signature"])
        except Exception:  # noqa: BLE001
            return _json(401, {"code": "SIGN_ERROR", "message": "signature verification failed"})
        if method == "GET" and path.startswith("/v3/pay/transactions/out-trade-no/"):
            order_id = path.split("?")[0].rsplit("/", 1)[-1]
            if f"wx:pay:{order_id}" not in self.answers:
                return _json(404, {"code": "ORDER_NOT_EXIST", "message": "order does not exist"})
            return _json(200, {"out_trade_no": order_id,
                               "trade_state": "SUCCESS" if order_id in self.paid else "NOTPAY"})
        payload = json.loads(body)
        if path == "/v3/pay/transactions/native":
            return _json(*self._once(f"wx:pay:{payload['out_trade_no']}", lambda: (
                200, {"code_url": f"weixin://wxpay/bizpayurl?pr={uuid.uuid4().hex[:10]}"})))
        if path == "/v3/refund/domestic/refunds":
            def make():
                order_id, amount = payload["out_trade_no"], payload["amount"]
                problem = self._refund_problem(order_id, int(amount["refund"]), int(amount["total"]))
                if problem:
                    return 400, {"code": "PARAM_ERROR", "message": problem}
                self._refund_made(order_id, int(amount["refund"]))
                return 200, {"refund_id": f"5030{uuid.uuid4().int % 10**20}", "out_refund_no": payload["out_refund_no"],
                             "out_trade_no": order_id, "status": "SUCCESS", "amount": amount}
            return _json(*self._once(f"wx:refund:{payload['out_refund_no']}", make))
        return _json(404, {"code": "NOT_FOUND", "message": "no such fake endpoint"})


def _json(status: int, body: dict[str, Any]) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(body).encode()


