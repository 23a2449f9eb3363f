"""Providers by name. Adding one (PayPal...) is a module here and a line below; no order code changes."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from shop.domain.errors import Unavailable, Unprocessable
from shop.domain.orders import Order
from shop.payments.base import PaymentProvider, ProviderError, ProviderNotConfigured

# name -> (module, class). A provider's module (and the cryptography it signs with) loads when the provider is
# first used, not when a handler starts.
_CLASSES: dict[str, tuple[str, str]] = {
    "sandbox": ("shop.payments.sandbox", "SandboxProvider"),
    "stripe": ("shop.payments.stripe", "StripeProvider"),
    "alipay": ("shop.payments.alipay", "AlipayProvider"),
    "wechatpay": ("shop.payments.wechatpay", "WechatPayProvider"),
}


class _Providers(Mapping[str, PaymentProvider]):
    """A read-only dict of one instance per provider, each made on first access."""

    def __init__(self, classes: dict[str, tuple[str, str]]):
        self._classes, self._lock = classes, threading.Lock()
        self._made: dict[str, PaymentProvider] = {}

    def __getitem__(self, name: str) -> PaymentProvider:
        made = self._made.get(name)
        if made is None:
            module, cls = self._classes[name]  # KeyError for an unknown name, as a dict
            with self._lock:
                made = self._made.get(name)
                if made is None:
                    made = self._made[name] = getattr(importlib.import_module(module), cls)()
        return made

    def __contains__(self, name: object) -> bool:  # without loading the provider
        return name in self._classes

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)

    def __repr__(self) -> str:
        return f"PROVIDERS({', '.join(self._classes)})"


PROVIDERS: Mapping[str, PaymentProvider] = _Providers(_CLASSES)

if TYPE_CHECKING:  # loaded by name above, so mypy proves here that each class is a complete PaymentProvider
    from shop.payments.alipay import AlipayProvider
    from shop.payments.sandbox import SandboxProvider
    from shop.payments.stripe import StripeProvider
    from shop.payments.wechatpay import WechatPayProvider

    _SANDBOX: PaymentProvider = SandboxProvider()
    _STRIPE: PaymentProvider = StripeProvider()
    _ALIPAY: PaymentProvider = AlipayProvider()
    _WECHATPAY: PaymentProvider = WechatPayProvider()


def enabled() -> set[str]:
    from shop.settings import get_settings  # pydantic: loaded with the resolver, not by a handler's import

    return set(get_settings().enabled_providers())


def provider(name: str) -> PaymentProvider:
    if name not in PROVIDERS or name not in enabled():
        raise Unprocessable(f"payment provider {name!r} is not available", {"fields": ["payment_provider"]})
    return PROVIDERS[name]


def accepted_currencies(name: str) -> frozenset[str] | None:
    """The currencies provider `name` takes (None: any). `{NAME}_CURRENCIES` (e.g. ALIPAY_CURRENCIES=CNY,USD for a
    cross-border merchant account; `*` for any) overrides what the provider declares."""
    from shop.settings import get_settings

    raw = get_settings().currencies.get(name, "").strip()
    if raw == "*":
        return None
    if raw:
        return frozenset(code.strip().upper() for code in raw.split(",") if code.strip())
    return PROVIDERS[name].currencies


def check_currency(name: str, currency: str) -> None:
    """422 naming the provider and the currency when the provider cannot take it (before any provider call)."""
    accepted = accepted_currencies(name)
    if accepted is not None and currency.upper() not in accepted:
        listed = ", ".join(sorted(accepted)) if len(accepted) <= 10 else f"{len(accepted)} currencies"
        raise Unprocessable(
            f"payment provider {name!r} does not accept {currency} (it takes {listed}); choose another provider",
            {"fields": ["payment_provider"], "payment_provider": name, "currency": currency})


def payment_details(order: Order) -> dict[str, Any]:
    """What the storefront needs to collect payment for `order` (one provider call, keyed on the order id)."""
    chosen = provider(order.payment_provider)
    check_currency(order.payment_provider, order.currency)
    try:
        return chosen.create_payment(order)
    except ProviderNotConfigured:  # a configuration error, not an outage: the HTTP layer answers 503 without a retry hint
        raise
    except ProviderError as error:  # nothing was written: the client can retry with the same key
        raise Unavailable(f"the payment provider is not answering ({error}); retry shortly",
                          {"retry_after": 2}) from None
