"""WeChat Pay API v3: Native (QR) payments, signed and encrypted notifications, refunds. Base: WECHATPAY_API_BASE."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shop.domain.money import Money
from shop.domain.orders import Order
from shop.payments import base, http_client
from shop.payments.secrets import provider_secret
from shop.payments.signing import rsa_sign, rsa_verify, within_tolerance
from shop.settings import get_settings

KINDS: dict[str, base.EventKind] = {"TRANSACTION.SUCCESS": "payment_succeeded", "REFUND.SUCCESS": "refund_succeeded"}
USER_AGENT = "shop-core/1.0 (python)"  # WeChat Pay APIv3 asks every request for one


def decrypt_resource(resource: Mapping[str, str], api_v3_key: str) -> dict[str, Any]:
    try:
        plain = AESGCM(api_v3_key.encode()).decrypt(resource["nonce"].encode(),
                                                     base64.b64decode(resource["ciphertext"]),
                                                     resource.get("associated_data", "").encode())
        return json.loads(plain)
    except (InvalidTag, KeyError, ValueError, TypeError, RecursionError):
        raise base.InvalidWebhook("resource does not decrypt", 401) from None


class WechatPayProvider:
    name = "wechatpay"
    # The domestic Native API takes amount.currency CNY only. WECHATPAY_CURRENCIES can widen it, but WeChat
    # Pay's cross-border merchants use another API (/v3/global/...), which this adapter does not speak.
    currencies: frozenset[str] | None = frozenset({"CNY"})

    def _secret(self, key: str) -> str:
        return provider_secret(self.name, key)

    def _call(self, path: str, payload: dict[str, Any] | None, method: str = "POST") -> dict[str, Any]:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False) if payload is not None else ""
        timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
        message = f"{method}\n{path}\n{timestamp}\n{nonce}\n{body}\n".encode()
        signature = rsa_sign(self._secret("WECHATPAY_MERCHANT_PRIVATE_KEY"), message)
        authorization = (f'WECHATPAY2-SHA256-RSA2048 mchid="{self._secret("WECHATPAY_MCH_ID")}",'
                         f'nonce_str="{nonce}",signature="{signature}",timestamp="{timestamp}",'
                         f'serial_no="{self._secret("WECHATPAY_MERCHANT_SERIAL")}"')
        api_base = get_settings().wechatpay_api_base
        status, answer_headers, answer = http_client.exchange(
            method, api_base + path, body=body.encode() or None,
            headers={"Authorization": authorization, "Content-Type": "application/json", "Accept": "application/json",
                     "User-Agent": USER_AGENT})
        if status >= 300:
            raise base.ProviderError(f"wechatpay {path.split('?')[0]} answered {status}")
        try:  # WeChat Pay signs its answers as it signs notifications: check before trusting a code_url
            self._verify_signature(answer_headers, answer)
            return json.loads(answer or b"{}")
        except (base.InvalidWebhook, ValueError) as error:
            raise base.ProviderError(f"wechatpay {path.split('?')[0]} answer rejected: {error}") from None

    def _verify_signature(self, headers: Mapping[str, str], body: bytes) -> None:
        """Wechatpay-Signature: RSA-SHA256 over "{timestamp}\\n{nonce}\\n{body}\\n", platform key of that serial."""
        timestamp, nonce = base.header(headers, "Wechatpay-Timestamp"), base.header(headers, "Wechatpay-Nonce")
        signature, serial = base.header(headers, "Wechatpay-Signature"), base.header(headers, "Wechatpay-Serial")
        if not (timestamp and nonce and signature and serial):
            raise base.InvalidWebhook("Wechatpay-* signature headers missing", 401)
        if not within_tolerance(timestamp):
            raise base.InvalidWebhook("signature timestamp malformed or outside the tolerance", 401)
        if serial != self._secret("WECHATPAY_PLATFORM_SERIAL"):
            raise base.InvalidWebhook("unknown platform certificate serial", 401)
        rsa_verify(self._secret("WECHATPAY_PLATFORM_PUBLIC_KEY"), f"{timestamp}\n{nonce}\n".encode() + body + b"\n",
                   signature)

    def create_payment(self, order: Order) -> dict[str, Any]:
        answer = self._call("/v3/pay/transactions/native", {
            "appid": self._secret("WECHATPAY_APP_ID"),
            "mchid": self._secret("WECHATPAY_MCH_ID"),
            "description": f"Order {order.order_number}", "out_trade_no": order.order_id,
            "notify_url": base.notify_url(self.name),
            "amount": {"total": order.total.amount, "currency": order.currency},
        })
        return {"provider": self.name, "amount": order.total.to_dict(), "code_url": answer["code_url"]}

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> base.PaymentEvent:
        self._verify_signature(headers, body)
        try:
            notification = json.loads(body)
            transaction = decrypt_resource(notification["resource"], self._secret("WECHATPAY_APIV3_KEY"))
            mchid = self._secret("WECHATPAY_MCH_ID")
            if str(transaction.get("mchid", mchid)) != mchid:
                raise base.InvalidWebhook("notification is for another mchid", 401)
            kind = KINDS.get(notification["event_type"], "ignored")
            if kind == "payment_succeeded" and transaction.get("trade_state") != "SUCCESS":
                kind = "ignored"
            amount = transaction.get("amount") or {}
            # WeChat Pay amounts are JSON integers of fen (minor units): any other value is malformed.
            for field in ("total", "payer_total", "refund", "payer_refund"):
                if field in amount:
                    base.minor_amount(amount[field])
            money = Money(amount["total"], base.provider_currency(amount.get("currency", "CNY"))) \
                if "total" in amount else None
            return base.PaymentEvent(self.name, str(notification["id"])[:128], kind,
                                     str(transaction.get("out_trade_no", ""))[:64] or None, money,
                                     str(transaction.get("transaction_id", ""))[:64] or None)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            raise base.InvalidWebhook("malformed wechatpay notification") from None

    def refund(self, *, order_id: str, provider_payment_id: str, amount: Money, refund_id: str,
               captured: Money | None = None) -> base.RefundResult:
        answer = self._call("/v3/refund/domestic/refunds", {
            "out_trade_no": order_id, "out_refund_no": refund_id,
            # amount.total is the original transaction's amount (WeChat rejects a partial refund otherwise).
            "amount": {"refund": amount.amount, "total": (captured or amount).amount, "currency": amount.currency}})
        return base.RefundResult(refund_id, answer.get("refund_id", refund_id), answer.get("status", "PROCESSING"))

    def query(self, order: Order) -> str:
        mchid = self._secret("WECHATPAY_MCH_ID")
        answer = self._call(f"/v3/pay/transactions/out-trade-no/{order.order_id}?mchid={mchid}", None, "GET")
        return {"SUCCESS": "succeeded", "CLOSED": "failed", "PAYERROR": "failed"}.get(
            answer.get("trade_state", ""), "pending")

    def acknowledge(self) -> tuple[int, str, str]:
        return 200, "application/json", '{"code":"SUCCESS","message":"OK"}'

    def reject(self, status: int, message: str, problem_type: str = "invalid-webhook") -> tuple[int, str, str]:
        """WeChat Pay's documented failure answer: a 4xx/5xx with {"code": "FAIL", "message": ...}; it retries."""
        return status, "application/json", json.dumps({"code": "FAIL", "message": message[:200]},
                                                      separators=(",", ":"), ensure_ascii=False)
