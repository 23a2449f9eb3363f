"""Provider selection. The sandbox provider pays through the local server's /_local/pay/{order_id}."""

from __future__ import annotations

from typing import Any

from shop.domain.orders import Order


def payment_details(order: Order) -> dict[str, Any]:
    """What the storefront needs to collect payment for `order`."""
    return {
        "provider": order.payment_provider,
        "amount": order.total.to_dict(),
        "pay_url": f"/_local/pay/{order.order_id}",
    }
