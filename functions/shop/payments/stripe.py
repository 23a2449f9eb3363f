"""Stripe: PaymentIntents, Stripe-Signature webhooks, refunds. Base URL: STRIPE_API_BASE."""

from __future__ import annotations

import json
import os
import urllib.parse
from typing import Any, Mapping

from shop.domain.money import Money
from shop.domain.orders import Order
from shop.payments import http_client
from shop.payments.base import (
    InvalidWebhook,
    PaymentEvent,
    ProviderError,
    RefundResult,
    header,
    minor_amount,
    provider_currency,
)
from shop.payments.secrets import provider_secret
from shop.payments.signing import verify_hmac_header

KINDS = {"payment_intent.succeeded": "payment_succeeded", "payment_intent.payment_failed": "payment_failed",
         "charge.refunded": "refund_succeeded"}


class StripeProvider:
    name = "stripe"

    def _base(self) -> str:
        return os.environ.get("STRIPE_API_BASE", "https://api.stripe.com")

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {provider_secret(self.name, 'STRIPE_SECRET_KEY', 'sk_test_local')}"}

    def _call(self, path: str, params: dict[str, str], idempotency_key: str) -> dict[str, Any]:
        status, body = http_client.request(
            "POST", f"{self._base()}{path}", body=urllib.parse.urlencode(params).encode(),
            headers={"Authorization": f"Bearer {provider_secret(self.name, 'STRIPE_SECRET_KEY', 'sk_test_local')}",
                     "Content-Type": "application/x-www-form-urlencoded", "Idempotency-Key": idempotency_key})
        if status >= 300:
            raise ProviderError(f"stripe {path} answered {status}")
        return json.loads(body)

    def create_payment(self, order: Order) -> dict[str, Any]:
        intent = self._call("/v1/payment_intents", {
            "amount": str(order.total.amount), "currency": order.currency.lower(),
            "metadata[order_id]": order.order_id, "automatic_payment_methods[enabled]": "true",
        }, idempotency_key=f"pi-{order.order_id}")
        return {"provider": self.name, "amount": order.total.to_dict(), "payment_intent_id": intent["id"],
                "client_secret": intent["client_secret"]}

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> PaymentEvent:
        secret = provider_secret(self.name, "STRIPE_WEBHOOK_SECRET", "whsec_local_dev_secret")
        verify_hmac_header(header(headers, "Stripe-Signature"), body, secret)
        try:
            event = json.loads(body)
            obj = event["data"]["object"]
            kind = KINDS.get(event["type"], "ignored")
            order_id = (obj.get("metadata") or {}).get("order_id")
            payment_id = obj.get("payment_intent") if kind == "refund_succeeded" else obj.get("id")
            # Stripe amounts are JSON integers of minor units: any other value in any of them is malformed.
            for field in ("amount", "amount_received", "amount_refunded", "amount_capturable"):
                if obj.get(field) is not None:
                    minor_amount(obj[field])
            # A succeeded PaymentIntent: what was received is the truth; other objects carry `amount`.
            received = obj.get("amount_received") if kind == "payment_succeeded" else None
            received = obj.get("amount") if received is None else received
            amount = Money(minor_amount(received), provider_currency(obj["currency"])) if received is not None \
                else None
            return PaymentEvent(self.name, str(event["id"])[:128], kind, order_id, amount, payment_id)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            raise InvalidWebhook("malformed stripe event") from None

    def refund(self, *, order_id: str, provider_payment_id: str, amount: Money, refund_id: str,
               captured: Money | None = None) -> RefundResult:
        refund = self._call("/v1/refunds", {"payment_intent": provider_payment_id, "amount": str(amount.amount),
                                            "metadata[order_id]": order_id}, idempotency_key=refund_id)
        return RefundResult(refund_id, refund["id"], refund.get("status", "pending"))

    def query(self, order: Order) -> str:
        intent_id = order.payment.get("payment_intent_id")
        if not intent_id:
            return "unknown"
        status, body = http_client.request("GET", f"{self._base()}/v1/payment_intents/{intent_id}",
                                           headers=self._auth())
        if status >= 300:
            raise ProviderError(f"stripe payment_intents/{intent_id} answered {status}")
        state = json.loads(body).get("status")
        return {"succeeded": "succeeded", "canceled": "failed"}.get(state, "pending")

    def acknowledge(self) -> tuple[int, str, str]:
        return 200, "application/json", '{"received":true}'
