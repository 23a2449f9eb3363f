"""Risk rules: hold a paid order for an operator (ON_HOLD, with the reason) instead of fulfilling it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from shop.domain import clock
from shop.domain.orders import Order
from shop.domain.statuses import ACCEPTED_PAYMENT
from shop.services.ports import Ports
from shop.services.records import PaidFromAddress
from shop.settings import get_settings

SETTLED = ACCEPTED_PAYMENT  # the order took a payment, refunded since or not


@dataclass(frozen=True)
class RiskRules:
    """Hold (ON_HOLD, for an operator) instead of fulfilling when a customer pays large amounts often,
    or when more than `max_payments_per_ip` orders placed from one address are paid within the window."""

    large_amount: int  # minor units
    max_large_payments: int
    window_seconds: int
    max_payments_per_ip: int = 0  # 0: no per-address rule

    @classmethod
    def from_env(cls) -> RiskRules:
        settings = get_settings()
        return cls(settings.risk_large_amount, settings.risk_max_large_payments, settings.risk_window_seconds,
                   settings.risk_max_payments_per_ip)

    def _ip_hash(self, order: Order) -> str | None:
        if self.max_payments_per_ip <= 0 or not order.client_ip_hash:
            return None
        return order.client_ip_hash

    def ip_payment_record(self, order: Order, at: str) -> PaidFromAddress | None:
        """Written with the payment: one record per paid order under its address, kept for the window."""
        ip_hash = self._ip_hash(order)
        if ip_hash is None:
            return None
        return PaidFromAddress(ip_hash, at, order.order_id,
                               expires=int(clock.now().timestamp()) + self.window_seconds + 3600)

    def hold_reason(self, ports: Ports, order: Order) -> str | None:
        ip_hash = self._ip_hash(order)
        if ip_hash is not None:
            since = clock.iso(clock.now() - timedelta(seconds=self.window_seconds))
            if ports.store.count_paid_from_address(ip_hash, since) >= self.max_payments_per_ip:
                return (f"risk: more than {self.max_payments_per_ip} paid orders from one address "
                        f"within {self.window_seconds} s")
        if order.total.amount < self.large_amount:
            return None
        since = clock.iso(clock.now() - timedelta(seconds=self.window_seconds))
        recent, _ = ports.store.customer_orders(order.customer_id, 100, None)
        large_paid = [o for o in recent if o.order_id != order.order_id and o.created_at >= since
                      and o.payment_status in SETTLED and o.total.amount >= self.large_amount]
        if len(large_paid) + 1 >= self.max_large_payments:
            return (f"risk: {len(large_paid) + 1} payments of at least {self.large_amount} minor units "
                    f"within {self.window_seconds} s by the same customer")
        return None
