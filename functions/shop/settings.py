"""Runtime settings read from the environment (set by CDK or the local run)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from shop.services.ports import HoldLimits


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


@dataclass(frozen=True)
class Settings:
    table_name: str
    payment_window_seconds: int
    max_payment_window_seconds: int
    state_machine_arn: str
    event_bus_name: str
    stock_release_queue_url: str
    restock_queue_url: str
    idempotency_ttl_seconds: int
    service_name: str
    max_unpaid_orders_per_customer: int  # 0: no cap
    max_unpaid_units_per_sku: int  # per customer; 0: no cap

    def hold_limits(self) -> HoldLimits:
        return HoldLimits(self.max_unpaid_orders_per_customer, self.max_unpaid_units_per_sku)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    window = _int("PAYMENT_WINDOW_SECONDS", 900)
    return Settings(
        table_name=os.environ.get("TABLE_NAME", "shop"),
        payment_window_seconds=window,
        max_payment_window_seconds=max(window, _int("MAX_PAYMENT_WINDOW_SECONDS", 3600)),
        state_machine_arn=os.environ.get("PAYMENT_WINDOW_STATE_MACHINE_ARN", ""),
        event_bus_name=os.environ.get("EVENT_BUS_NAME", ""),
        stock_release_queue_url=os.environ.get("STOCK_RELEASE_QUEUE_URL", ""),
        restock_queue_url=os.environ.get("RESTOCK_QUEUE_URL", ""),
        idempotency_ttl_seconds=_int("IDEMPOTENCY_TTL_SECONDS", 24 * 3600),
        service_name=os.environ.get("POWERTOOLS_SERVICE_NAME", "shop"),
        max_unpaid_orders_per_customer=_int("MAX_UNPAID_ORDERS_PER_CUSTOMER", 50),
        max_unpaid_units_per_sku=_int("MAX_UNPAID_UNITS_PER_SKU", 200),
    )
