"""A payment provider in memory, written from `PaymentProvider` (functions/shop/payments/base.py): payments are
notified as `PaymentEvent`s built here (no signature to verify), refunds are kept per refund id (the
provider's idempotency key: the same id refunds once) and can be made to fail, as a provider outage would."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shop.domain.money import Money
from shop.domain.orders import Order
from shop.payments.base import (
    InvalidWebhook,
    PaymentEvent,
    ProviderError,
    RefundResult,
    problem_reject,
)

_numbers = itertools.count(1)


@dataclass
class FakeProvider:
    name: str = "fake"
    currencies: frozenset[str] | None = None
    refunds: dict[str, Money] = field(default_factory=dict)  # refund id -> amount refunded
    calls: int = 0  # refund calls, retries included
    failures_left: int = 0  # the next refund calls that fail (the provider is unreachable)

    def create_payment(self, order: Order) -> dict[str, Any]:
        return {"provider": self.name, "amount": order.total.to_dict(), "pay_url": f"https://pay.test/{order.order_id}"}

    def payment(self, order_id: str, amount: Money, *, payment_id: str | None = None) -> PaymentEvent:
        """The notification of one payment of `amount` for `order_id` (a new event id each time)."""
        n = next(_numbers)
        return PaymentEvent(self.name, f"evt_{n}", "payment_succeeded", order_id, amount, payment_id or f"pay_{n}")

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> PaymentEvent:
        try:
            data = json.loads(body)
            return self.payment(data["order_id"], Money(data["amount"], data["currency"]))
        except (ValueError, KeyError, TypeError):
            raise InvalidWebhook("malformed fake event") from None

    def refund(self, *, order_id: str, provider_payment_id: str, amount: Money, refund_id: str,
               captured: Money | None = None) -> RefundResult:
        self.calls += 1
        if self.failures_left:
            self.failures_left -= 1
            raise ProviderError("injected: the provider did not answer")
        self.refunds.setdefault(refund_id, amount)
        return RefundResult(refund_id, f"re_{refund_id}", "succeeded")

    def refunded(self) -> int:
        return sum(money.amount for money in self.refunds.values())

    def acknowledge(self) -> tuple[int, str, str]:
        return 200, "application/json", "{}"

    def reject(self, status: int, message: str, problem_type: str = "invalid-webhook") -> tuple[int, str, str]:
        return problem_reject(status, message, problem_type)
