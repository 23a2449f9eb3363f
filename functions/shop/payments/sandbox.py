"""The sandbox provider: a local pay URL and HMAC-signed JSON webhooks (Stripe's scheme)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from shop.domain.money import Money
from shop.domain.orders import Order
from shop.payments import base
from shop.payments.secrets import provider_secret
from shop.payments.signing import verify_hmac_header

SIGNATURE_HEADER = "Sandbox-Signature"


KINDS: dict[str, base.EventKind] = {"payment.succeeded": "payment_succeeded", "payment.failed": "payment_failed"}

class SandboxProvider:
    name = "sandbox"
    currencies: frozenset[str] | None = None  # any: it moves no money

    def secret(self) -> str:
        return provider_secret(self.name, "SANDBOX_WEBHOOK_SECRET")

    def create_payment(self, order: Order) -> dict[str, Any]:
        return {"provider": self.name, "amount": order.total.to_dict(), "pay_url": f"/_local/pay/{order.order_id}"}

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> base.PaymentEvent:
        verify_hmac_header(base.header(headers, SIGNATURE_HEADER), body, self.secret())
        try:
            data = json.loads(body)
            kind = KINDS.get(data["type"], "ignored")
            amount = data.get("amount")
            return base.PaymentEvent(
                self.name, str(data["id"])[:128], kind, str(data.get("order_id") or "")[:64] or None,
                (Money(base.minor_amount(amount["amount"]), base.provider_currency(amount["currency"]))
                 if amount else None),
                str(data.get("payment_id") or data["id"])[:128])
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            raise base.InvalidWebhook("malformed sandbox event") from None

    def refund(self, *, order_id: str, provider_payment_id: str, amount: Money, refund_id: str,
               captured: Money | None = None) -> base.RefundResult:
        # Nothing to call: the sandbox keeps no money. The id is stable so retries stay idempotent.
        return base.RefundResult(refund_id, f"sbx_re_{uuid.uuid5(uuid.NAMESPACE_URL, refund_id).hex[:16]}", "succeeded")

    def query(self, order: Order) -> str:
        return "unknown"  # the sandbox keeps no state; its webhook is the only truth

    def acknowledge(self) -> tuple[int, str, str]:
        return 200, "application/json", '{"received":true}'

    def reject(self, status: int, message: str, problem_type: str = "invalid-webhook") -> tuple[int, str, str]:
        return base.problem_reject(status, message, problem_type)
