"""Providers by name. Adding one (PayPal...) is a module here and a line below; no order code changes."""

from __future__ import annotations

import os
from typing import Any

from shop.domain.errors import Unavailable, Unprocessable
from shop.domain.orders import Order
from shop.payments.alipay import AlipayProvider
from shop.payments.base import PaymentProvider, ProviderError
from shop.payments.sandbox import SandboxProvider
from shop.payments.stripe import StripeProvider
from shop.payments.wechatpay import WechatPayProvider

PROVIDERS: dict[str, PaymentProvider] = {p.name: p for p in (SandboxProvider(), StripeProvider(), AlipayProvider(),
                                                              WechatPayProvider())}


def enabled() -> set[str]:
    return {n.strip() for n in os.environ.get("PAYMENT_PROVIDERS_ENABLED", ",".join(PROVIDERS)).split(",") if n.strip()}


def provider(name: str) -> PaymentProvider:
    if name not in PROVIDERS or name not in enabled():
        raise Unprocessable(f"payment provider {name!r} is not available", {"fields": ["payment_provider"]})
    return PROVIDERS[name]


def payment_details(order: Order) -> dict[str, Any]:
    """What the storefront needs to collect payment for `order` (one provider call, keyed on the order id)."""
    try:
        return provider(order.payment_provider).create_payment(order)
    except ProviderError as error:  # nothing was written: the client can retry with the same key
        raise Unavailable(f"the payment provider is not answering ({error}); retry shortly",
                          {"retry_after": 2}) from None
