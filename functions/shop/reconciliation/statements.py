"""The statement interface, its errors, and what every statement client shares.

A `StatementSource` fetches one provider's statement for one business day, verifies it (the
download's hash where the provider gives one, the file against its own summary) and returns it
normalized (`shop.domain.reconciliation.Statement`). It either returns the whole statement or
raises: a statement that does not verify is never returned in part.

The clients sign their requests themselves, as each provider documents, with the same secrets as
the payment providers (`shop.payments.secrets`), and call out through `shop.payments.http_client`.
"""

from __future__ import annotations

import importlib
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Protocol

from shop.domain.reconciliation import BusinessDay, Statement

# Providers with a statement to reconcile. The sandbox keeps no state, so it has none.
STATEMENT_PROVIDERS = ("stripe", "alipay", "wechatpay")
_CLIENTS = {
    "stripe": ("shop.reconciliation.stripe_balance", "StripeBalanceTransactions"),
    "alipay": ("shop.reconciliation.alipay_bill", "AlipayTradeBill"),
    "wechatpay": ("shop.reconciliation.wechat_bill", "WechatTradeBill"),
}
# Download links expire (Alipay: 30 s): an expired one is fetched again, this many times in all.
LINK_ATTEMPTS = 3


class StatementError(Exception):
    """The run cannot use this statement: recorded as a failed run and alarmed, never a partial result."""

    reason = "statement-error"


class StatementUnavailable(StatementError):
    """The provider did not give the statement: unreachable, refused, not generated yet, or its download
    link expired on every attempt."""

    reason = "statement-unavailable"


class StatementInvalid(StatementError):
    """The file does not verify or cannot be read."""

    reason = "statement-invalid"


class HashMismatch(StatementInvalid):
    reason = "hash-mismatch"


class SummaryMismatch(StatementInvalid):
    reason = "summary-mismatch"


class StatementSource(Protocol):
    provider: str

    def fetch(self, day: BusinessDay) -> Statement: ...


def source_for(provider: str) -> StatementSource:
    """The statement client of `provider` (KeyError if it has none)."""
    module, cls = _CLIENTS[provider]
    return getattr(importlib.import_module(module), cls)()


_DECIMAL = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,6})?")


def decimal_amount(text: str, what: str) -> Decimal:
    """A statement's decimal field ('12.34', '-0.27000'), trimmed of the tabs and backticks providers add."""
    cleaned = (text or "").strip().strip("`\t ").strip()
    if not _DECIMAL.fullmatch(cleaned):
        raise StatementInvalid(f"{what} is not a decimal amount: {cleaned[:20]!r}")
    try:
        return Decimal(cleaned)
    except InvalidOperation:  # pragma: no cover - the pattern admits only what Decimal reads
        raise StatementInvalid(f"{what} is not a decimal amount") from None


def to_minor(value: Decimal, what: str, *, exponent: int = 2, rounded: bool = False) -> int:
    """Yuan to fen, exactly; `rounded` for fees that the provider states to a fraction of a fen."""
    scaled = value.scaleb(exponent)
    if rounded:
        return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if scaled != scaled.to_integral_value():
        raise StatementInvalid(f"{what} has more decimals than the currency: {value}")
    return int(scaled)


def minor(text: str, what: str, *, rounded: bool = False) -> int:
    return to_minor(decimal_amount(text, what), what, rounded=rounded)
