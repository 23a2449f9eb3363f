"""Stripe: PaymentIntents, Stripe-Signature webhooks, refunds. Base URL: STRIPE_API_BASE."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

from shop.domain.money import Money
from shop.domain.orders import Order
from shop.payments import base, http_client
from shop.payments.secrets import provider_secret
from shop.payments.signing import verify_hmac_header
from shop.settings import get_settings

# The API version every request pins (Stripe-Version), so an upgrade of the account's default version in the
# Dashboard cannot change what our calls get back. A documented version (docs.stripe.com/upgrades); webhook
# payloads follow the version set on the webhook endpoint, which should be this one too.
API_VERSION = "2024-06-20"
# Stripe's presentment currencies (docs.stripe.com/currencies) whose minor unit Stripe counts as we do
# (base.py _EXPONENTS). Left out: the zero-decimal ones we count in hundredths (BIF, DJF, GNF, KMF, MGA, PYG,
# RWF, UGX, VUV, XAF, XOF, XPF) and ISK (Stripe wants it two-decimal): an amount would be off by 100.
# STRIPE_CURRENCIES overrides the list (registry.py).
CURRENCIES = frozenset("""
    USD AED ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BMD BND BOB BRL BSD BWP BYN BZD CAD CDF CHF CLP
    CNY COP CRC CVE CZK DKK DOP DZD EGP ETB EUR FJD FKP GBP GEL GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR JMD
    JOD JPY KES KGS KHR KRW KWD KYD KZT LAK LBP LKR LRD LSL MAD MDL MKD MMK MNT MOP MUR MVR MWK MXN MYR MZN NAD
    NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SEK SGD SHP SLE SOS SRD SZL THB
    TJS TND TOP TRY TTD TWD TZS UAH UYU UZS VND WST XCD YER ZAR ZMW""".split())
KINDS: dict[str, base.EventKind] = {"payment_intent.succeeded": "payment_succeeded",
                                    "payment_intent.payment_failed": "payment_failed",
                                    "charge.refunded": "refund_succeeded"}


class StripeProvider:
    name = "stripe"
    currencies: frozenset[str] | None = CURRENCIES

    def _base(self) -> str:
        return get_settings().stripe_api_base

    def _headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        """What every call carries, as the stripe library sends it: bearer key, pinned version, and for POSTs
        form encoding and the idempotency key."""
        headers = {"Authorization": f"Bearer {provider_secret(self.name, 'STRIPE_SECRET_KEY')}",
                   "Stripe-Version": API_VERSION}
        if idempotency_key is not None:
            headers.update({"Content-Type": "application/x-www-form-urlencoded", "Idempotency-Key": idempotency_key})
        return headers

    def _call(self, path: str, params: dict[str, str], idempotency_key: str) -> dict[str, Any]:
        """POST form-encoded parameters; nested ones flattened as the library does (`metadata[order_id]`)."""
        # Brackets left readable, byte for byte what stripe-python sends (tests/unit/test_provider_requests.py).
        form = urllib.parse.urlencode(params).replace("%5B", "[").replace("%5D", "]")
        status, body = http_client.request("POST", f"{self._base()}{path}", body=form.encode(),
                                           headers=self._headers(idempotency_key))
        if status >= 300:
            raise base.ProviderError(f"stripe {path} answered {status}")
        return json.loads(body)

    def create_payment(self, order: Order) -> dict[str, Any]:
        intent = self._call("/v1/payment_intents", {
            "amount": str(order.total.amount), "currency": order.currency.lower(),
            "metadata[order_id]": order.order_id, "automatic_payment_methods[enabled]": "true",
        }, idempotency_key=f"pi-{order.order_id}")
        return {"provider": self.name, "amount": order.total.to_dict(), "payment_intent_id": intent["id"],
                "client_secret": intent["client_secret"]}

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> base.PaymentEvent:
        secret = provider_secret(self.name, "STRIPE_WEBHOOK_SECRET")
        verify_hmac_header(base.header(headers, "Stripe-Signature"), body, secret)
        try:
            event = json.loads(body)
            obj = event["data"]["object"]
            kind = KINDS.get(event["type"], "ignored")
            order_id = (obj.get("metadata") or {}).get("order_id")
            payment_id = obj.get("payment_intent") if kind == "refund_succeeded" else obj.get("id")
            # Stripe amounts are JSON integers of minor units: any other value in any of them is malformed.
            for field in ("amount", "amount_received", "amount_refunded", "amount_capturable"):
                if obj.get(field) is not None:
                    base.minor_amount(obj[field])
            # A succeeded PaymentIntent: what was received is the truth; other objects carry `amount`.
            received = obj.get("amount_received") if kind == "payment_succeeded" else None
            received = obj.get("amount") if received is None else received
            amount = (Money(base.minor_amount(received), base.provider_currency(obj["currency"]))
                      if received is not None else None)
            return base.PaymentEvent(self.name, str(event["id"])[:128], kind, order_id, amount, payment_id)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            raise base.InvalidWebhook("malformed stripe event") from None

    def refund(self, *, order_id: str, provider_payment_id: str, amount: Money, refund_id: str,
               captured: Money | None = None) -> base.RefundResult:
        refund = self._call("/v1/refunds", {"payment_intent": provider_payment_id, "amount": str(amount.amount),
                                            "metadata[order_id]": order_id}, idempotency_key=refund_id)
        return base.RefundResult(refund_id, refund["id"], refund.get("status", "pending"))

    def query(self, order: Order) -> str:
        intent_id = order.payment.get("payment_intent_id")
        if not intent_id:
            return "unknown"
        status, body = http_client.request("GET", f"{self._base()}/v1/payment_intents/{intent_id}",
                                           headers=self._headers())
        if status >= 300:
            raise base.ProviderError(f"stripe payment_intents/{intent_id} answered {status}")
        state = json.loads(body).get("status")
        return {"succeeded": "succeeded", "canceled": "failed"}.get(state, "pending")

    def acknowledge(self) -> tuple[int, str, str]:
        return 200, "application/json", '{"received":true}'

    def reject(self, status: int, message: str, problem_type: str = "invalid-webhook") -> tuple[int, str, str]:
        """Stripe looks only at the status (a 4xx/5xx is retried for up to three days): problem+json."""
        return base.problem_reject(status, message, problem_type)
