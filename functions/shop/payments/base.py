"""The provider interface: create a payment, verify and normalize a webhook, refund."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, Protocol

from shop.domain.money import Money
from shop.domain.orders import Order

PaymentState = Literal["succeeded", "pending", "failed", "unknown"]
EventKind = Literal["payment_succeeded", "payment_failed", "refund_succeeded", "ignored"]
MAX_WEBHOOK_BYTES = 64 * 1024
# ISO 4217 minor-unit exponents that are not 2.
_EXPONENTS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3}


class InvalidWebhook(Exception):
    """Missing, malformed or unverifiable: answered 4xx, nothing changes."""

    def __init__(self, reason: str, status: int = 400):
        super().__init__(reason)
        self.status = status


class ProviderError(Exception):
    """The provider could not be reached or refused; callers retry or answer 502/503."""


class ProviderNotConfigured(ProviderError):
    """An enabled provider lacks a secret, key or setting: a configuration error, not an outage. Answered 503
    `provider-not-configured` without Retry-After (retrying cannot help until someone configures it), counted
    as the `ProviderNotConfigured` metric (alarmed in infra/observability.py)."""

    def __init__(self, provider: str, setting: str):
        super().__init__(f"payment provider {provider} is not configured: {setting} is missing")
        self.provider, self.setting = provider, setting
        count_not_configured(provider)  # wherever it is raised: orders, webhooks, refunds, sweeps


# Dimensions of the ProviderNotConfigured metric: the provider, and one constant service whichever function
# counted it, so that one alarm per provider covers them all (infra/observability.py).
NOT_CONFIGURED_METRIC = "ProviderNotConfigured"
NOT_CONFIGURED_SERVICE = "payments"


def count_not_configured(provider: str) -> None:
    """One `ProviderNotConfigured` (dimensions provider, service=payments) in its own EMF line."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    with single_metric(name=NOT_CONFIGURED_METRIC, unit=MetricUnit.Count, value=1,
                       default_dimensions={"provider": provider, "service": NOT_CONFIGURED_SERVICE}):
        pass


@dataclass(frozen=True)
class PaymentEvent:
    provider: str
    event_id: str
    kind: EventKind
    order_id: str | None
    amount: Money | None
    provider_payment_id: str | None


@dataclass(frozen=True)
class RefundResult:
    refund_id: str
    provider_refund_id: str
    status: str


class PaymentProvider(Protocol):
    """What the core calls on a provider (the providers' own `query` is not part of it: nothing calls it).
    mypy checks every provider in registry.py against it."""

    name: str

    def create_payment(self, order: Order) -> dict[str, Any]: ...

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> PaymentEvent: ...

    def refund(self, *, order_id: str, provider_payment_id: str, amount: Money, refund_id: str,
               captured: Money | None = None) -> RefundResult:
        """Refund `amount` of the payment; `refund_id` is the provider's idempotency key (same id, one refund).

        `captured` is what the original payment took (WeChat Pay requires it with every refund);
        None means `amount` is the whole payment."""
        ...

    def acknowledge(self) -> tuple[int, str, str]:
        """(status, content type, body) of the provider's documented "received" answer."""
        ...

    def reject(self, status: int, message: str, problem_type: str = "invalid-webhook") -> tuple[int, str, str]:
        """(status, content type, body) of the provider's documented failure answer; `status` is 4xx/5xx."""
        ...

    # Currencies the provider accepts by default (None: any); `{NAME}_CURRENCIES` overrides (registry.py).
    currencies: frozenset[str] | None


MAX_MINOR_UNITS = 10**15  # far above any order total; bounds what a notification may claim
# A provider's decimal amount: plain ASCII digits with an optional fraction. No sign, exponent, spaces,
# other scripts' digits or NaN/Infinity (Decimal would accept all of those).
_DECIMAL_TEXT = re.compile(r"[0-9]{1,20}(\.[0-9]{1,6})?")


def minor_units(decimal_text: str, currency: str) -> int:
    """'12.34' CNY -> 1234, exactly (no float ever touches money)."""
    if not isinstance(decimal_text, str) or not _DECIMAL_TEXT.fullmatch(decimal_text):
        raise InvalidWebhook("amount is not a decimal")
    try:
        value = Decimal(decimal_text)
    except InvalidOperation:
        raise InvalidWebhook("amount is not a decimal") from None
    if not value.is_finite():
        raise InvalidWebhook("amount is not a finite decimal")
    scaled = value.scaleb(_EXPONENTS.get(currency, 2))
    if scaled != scaled.to_integral_value() or scaled < 0:
        raise InvalidWebhook("amount has too many decimals")
    if scaled > MAX_MINOR_UNITS:
        raise InvalidWebhook("amount out of range")
    return int(scaled)


def minor_amount(value: Any) -> int:
    """An amount a provider sends as a JSON integer of minor units (Stripe's `amount`, WeChat Pay's
    `amount.total`, the sandbox's `amount.amount`): a whole number from 0 to MAX_MINOR_UNITS.
    Refused as malformed: negatives, floats (even 100.0: the provider never sends them), strings, and
    booleans (JSON true is the int 1 in Python)."""
    if type(value) is not int or not 0 <= value <= MAX_MINOR_UNITS:
        raise InvalidWebhook("amount is not a whole number of minor units within range")
    return value


def provider_currency(value: Any) -> str:
    """A currency as a provider writes it ('eur' for Stripe): three ASCII letters, upper-cased."""
    if not isinstance(value, str) or len(value) != 3 or not value.isascii() or not value.isalpha():
        raise InvalidWebhook("currency is not an ISO 4217 code")
    return value.upper()


def decimal_text(money: Money) -> str:
    exponent = _EXPONENTS.get(money.currency, 2)
    return str(Decimal(money.amount).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent)))


def notify_url(provider: str) -> str:
    """Where the provider sends its notifications: `{PROVIDER}_NOTIFY_URL`, else
    `{PAYMENT_WEBHOOK_BASE_URL}/webhooks/{provider}`. Never guessed: a payment whose notification
    would go nowhere is not created."""
    from shop.settings import get_settings  # pydantic: loaded with the resolver, not by a handler's import

    settings = get_settings()
    explicit = settings.notify_urls.get(provider)
    if explicit:
        return explicit
    base = settings.payment_webhook_base_url.rstrip("/")
    if not base:
        raise ProviderNotConfigured(provider, f"PAYMENT_WEBHOOK_BASE_URL (or {provider.upper()}_NOTIFY_URL)")
    return f"{base}/webhooks/{provider}"


def header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def problem_reject(status: int, message: str, problem_type: str = "invalid-webhook") -> tuple[int, str, str]:
    """A webhook failure as RFC 9457 problem+json, for providers that look only at the status (Stripe, sandbox)."""
    titles = {"invalid-webhook": "Webhook rejected", "payload-too-large": "Payload too large",
              "provider-unavailable": "Provider unavailable", "provider-not-configured": "Provider not configured",
              "temporarily-unavailable": "Temporarily unavailable", "internal-error": "Internal error"}
    from shop.http.problems import PROBLEM_JSON, problem_body  # the API's own problem shape; loaded when answering

    body = problem_body(status, problem_type, titles.get(problem_type, "Webhook rejected"), message)
    return status, PROBLEM_JSON, json.dumps(body, separators=(",", ":"))
