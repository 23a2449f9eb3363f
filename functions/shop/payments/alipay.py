"""Alipay (open platform, RSA2): precreate QR payments, async notifications, refunds. Gateway: ALIPAY_GATEWAY."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from shop.domain.money import Money
from shop.domain.orders import Order
from shop.payments import base, http_client
from shop.payments.secrets import provider_secret
from shop.payments.signing import rsa_sign, rsa_verify
from shop.settings import get_settings

KINDS: dict[str, base.EventKind] = {"TRADE_SUCCESS": "payment_succeeded", "TRADE_FINISHED": "payment_succeeded",
                                    "TRADE_CLOSED": "payment_failed"}
CHINA = timezone(timedelta(hours=8))


def _content(params: Mapping[str, str], excluded: tuple[str, ...]) -> bytes:
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in excluded and params[k] != "").encode()


def request_content(params: Mapping[str, str]) -> bytes:
    """What a request's RSA2 signature covers: every parameter except `sign` (so `sign_type` IS signed), sorted,
    k=v joined by &, raw (not URL-encoded) values, empty values left out. Alipay's gateway and its SDKs
    (python-alipay-sdk's sign_data, the official Java/PHP SDKs) sign requests this way."""
    return _content(params, ("sign",))


def notification_content(params: Mapping[str, str]) -> bytes:
    """What an asynchronous notification's signature covers: as requests, but without `sign` AND `sign_type`
    (Alipay's rule for verifying its notifications; python-alipay-sdk's verify)."""
    return _content(params, ("sign", "sign_type"))


def verify_response(text: str, name: str, sign: str | None, alipay_public_key: str) -> None:
    """Alipay signs the exact text of `{name}` in its answer: verify that substring, as its SDKs do."""
    try:
        start = text.index("{", text.index(f'"{name}"') + len(name) + 2)
        end = text.rindex("}", 0, text.rindex('"sign"')) + 1
    except ValueError:
        raise base.ProviderError(f"alipay answer to {name} is not signed") from None
    try:
        rsa_verify(alipay_public_key, text[start:end].encode(), sign or "")
    except base.InvalidWebhook:
        raise base.ProviderError(f"alipay answer to {name} does not verify") from None


class AlipayProvider:
    name = "alipay"

    # Domestic Alipay (当面付, 电脑网站支付) settles CNY only; a cross-border account sets ALIPAY_CURRENCIES.
    currencies: frozenset[str] | None = frozenset({"CNY"})

    def _secret(self, key: str) -> str:
        return provider_secret(self.name, key)

    def _gateway(self) -> str:
        return get_settings().alipay_gateway

    def _signed_params(self, method: str, biz: dict[str, Any], **extra: str) -> dict[str, str]:
        """The common request parameters, signed RSA2 with the app's private key."""
        params = {
            "app_id": provider_secret(self.name, "ALIPAY_APP_ID"),
            "method": method, "format": "JSON", "charset": "utf-8", "sign_type": "RSA2", "version": "1.0",
            "timestamp": datetime.now(CHINA).strftime("%Y-%m-%d %H:%M:%S"),
            "notify_url": base.notify_url(self.name),
            "biz_content": json.dumps(biz, separators=(",", ":"), ensure_ascii=False), **extra,
        }
        params["sign"] = rsa_sign(self._secret("ALIPAY_APP_PRIVATE_KEY"), request_content(params))
        return params

    def _call(self, method: str, biz: dict[str, Any]) -> dict[str, Any]:
        params = self._signed_params(method, biz)
        status, body = http_client.request("POST", self._gateway(), body=urllib.parse.urlencode(params).encode(),
                                           headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"})
        name = method.replace(".", "_") + "_response"
        try:
            text = body.decode("utf-8")
            parsed = json.loads(text)
            answer = parsed.get(name) or parsed.get("error_response") or {}  # e.g. isv.invalid-signature
        except (UnicodeDecodeError, ValueError, AttributeError):
            raise base.ProviderError(f"alipay {method} answered {status} without JSON") from None
        if status >= 300 or answer.get("code") != "10000":
            raise base.ProviderError(f"alipay {method} failed: {answer.get('sub_code') or status}")
        verify_response(text, name, parsed.get("sign"), self._secret("ALIPAY_PUBLIC_KEY"))
        return answer

    def create_payment(self, order: Order) -> dict[str, Any]:
        biz = {"out_trade_no": order.order_id, "total_amount": base.decimal_text(order.total),
               "subject": f"Order {order.order_number}"}
        if order.currency != "CNY":
            biz["trans_currency"] = order.currency
        answer = self._call("alipay.trade.precreate", biz)
        # Desktop web: a signed alipay.trade.page.pay request the browser is sent to (no server call needed).
        page = self._signed_params("alipay.trade.page.pay", {**biz, "product_code": "FAST_INSTANT_TRADE_PAY"},
                                   **({"return_url": return_url} if (return_url := get_settings().alipay_return_url)
                                      else {}))
        return {"provider": self.name, "amount": order.total.to_dict(), "qr_code": answer["qr_code"],
                "out_trade_no": order.order_id,
                "page_pay_url": f"{self._gateway()}?{urllib.parse.urlencode(page)}"}

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> base.PaymentEvent:
        try:
            pairs = urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            raise base.InvalidWebhook("notification is not form data") from None
        params = dict(pairs)
        if len(params) != len(pairs) or not params.get("sign"):
            raise base.InvalidWebhook("notification unsigned or with repeated fields", 401)
        if params.get("sign_type", "RSA2") != "RSA2":
            raise base.InvalidWebhook("only RSA2 notifications are accepted", 401)
        rsa_verify(self._secret("ALIPAY_PUBLIC_KEY"), notification_content(params), params["sign"])
        # Alipay: after the signature, check the notification is for this app (else ignore it).
        if params.get("app_id") != provider_secret(self.name, "ALIPAY_APP_ID"):
            raise base.InvalidWebhook("notification is for another app_id", 401)
        try:
            currency = params.get("trans_currency") or params.get("currency") or "CNY"
            amount = Money(base.minor_units(params["total_amount"], currency), currency)
            return base.PaymentEvent(self.name, params["notify_id"][:128], KINDS.get(params["trade_status"], "ignored"),
                                     params["out_trade_no"][:64], amount, params.get("trade_no", "")[:64] or None)
        except KeyError as missing:
            raise base.InvalidWebhook(f"notification lacks {missing}") from None

    def refund(self, *, order_id: str, provider_payment_id: str, amount: Money, refund_id: str,
               captured: Money | None = None) -> base.RefundResult:
        answer = self._call("alipay.trade.refund", {"out_trade_no": order_id,
                                                    "refund_amount": base.decimal_text(amount),
                                                    "out_request_no": refund_id})
        return base.RefundResult(refund_id, answer.get("trade_no", refund_id), "succeeded")

    def query(self, order: Order) -> str:
        try:
            answer = self._call("alipay.trade.query", {"out_trade_no": order.order_id})
        except base.ProviderError as error:
            if "TRADE_NOT_EXIST" in str(error):
                return "pending"
            raise
        return {"TRADE_SUCCESS": "succeeded", "TRADE_FINISHED": "succeeded", "TRADE_CLOSED": "failed"}.get(
            answer.get("trade_status", ""), "pending")

    def acknowledge(self) -> tuple[int, str, str]:
        return 200, "text/plain", "success"

    def reject(self, status: int, message: str, problem_type: str = "invalid-webhook") -> tuple[int, str, str]:
        """Alipay reads the body: anything but `success` (documented: `fail`) and it notifies again later."""
        return status, "text/plain", "fail"
