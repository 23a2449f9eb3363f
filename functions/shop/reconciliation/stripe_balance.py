"""Stripe's statement: the balance transactions created in the UTC day
(`GET /v1/balance_transactions?created[gte]=..&created[lt]=..`, 100 a page, `starting_after` to page on),
each with its source and the source's PaymentIntent expanded (`expand[]=data.source`,
`expand[]=data.source.payment_intent`): a Charge names its PaymentIntent (what the order records as
provider_payment_id, whose metadata.order_id we set), a Refund its own id, PaymentIntent and metadata.order_id.

Stripe gives no file summary to check against; the pages are checked instead: every page is followed to
`has_more: false`, and a transaction seen twice fails the run.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from shop.domain import clock
from shop.domain import reconciliation as rc
from shop.domain.reconciliation import BusinessDay, Statement, StatementRow
from shop.payments import http_client
from shop.payments.base import ProviderError
from shop.payments.secrets import provider_secret
from shop.reconciliation.statements import StatementInvalid, StatementUnavailable
from shop.settings import get_settings

PAGE = 100
MAX_PAGES = 2000  # 200,000 transactions a day; beyond that the run fails rather than stop halfway
PAYMENTS = ("charge", "payment")
REFUNDS = ("refund", "payment_refund")
FAILED_REFUNDS = ("refund_failure", "payment_failure_refund")
FEES = ("stripe_fee", "application_fee", "tax_fee")


class StripeBalanceTransactions:
    provider = "stripe"

    def _page(self, day: BusinessDay, after: str | None) -> dict[str, Any]:
        query = [("created[gte]", str(int(day.start.timestamp()))), ("created[lt]", str(int(day.end.timestamp()))),
                 ("limit", str(PAGE)), ("expand[]", "data.source"), ("expand[]", "data.source.payment_intent")
                 ] + ([("starting_after", after)] if after else [])
        settings = get_settings()
        base = settings.stripe_api_base
        key = provider_secret(self.provider, "STRIPE_SECRET_KEY")
        try:
            status, body = http_client.request(
                "GET", f"{base}/v1/balance_transactions?{urllib.parse.urlencode(query)}",
                headers={"Authorization": f"Bearer {key}", "Stripe-Version": settings.stripe_api_version})
        except ProviderError as error:
            raise StatementUnavailable(f"stripe balance_transactions failed: {error}") from None
        if status >= 300:
            raise StatementUnavailable(f"stripe balance_transactions answered {status}")
        try:
            page = json.loads(body)
            assert page.get("object") == "list" and isinstance(page.get("data"), list)
        except (ValueError, AssertionError, AttributeError):
            raise StatementInvalid("stripe balance_transactions answer is not a list") from None
        return page

    def fetch(self, day: BusinessDay) -> Statement:
        seen: dict[str, dict[str, Any]] = {}
        after = None
        for _ in range(MAX_PAGES):
            page = self._page(day, after)
            for txn in page["data"]:
                if not isinstance(txn, dict) or not isinstance(txn.get("id"), str):
                    raise StatementInvalid("stripe balance transaction without an id")
                if txn["id"] in seen:
                    raise StatementInvalid(f"stripe balance transaction {txn['id']} listed twice")
                seen[txn["id"]] = txn
            if not page.get("has_more"):
                return Statement("stripe", day.date, tuple(rows_of(seen.values())), ("pages complete",))
            if not page["data"]:
                raise StatementInvalid("stripe says has_more but sent an empty page")
            after = page["data"][-1]["id"]
        raise StatementUnavailable(f"more than {MAX_PAGES * PAGE} stripe balance transactions in one day")


def _at(txn: Mapping[str, Any]) -> str:
    return clock.iso(datetime.fromtimestamp(int(txn["created"]), UTC))


def rows_of(transactions: Iterable[Mapping[str, Any]]) -> list[StatementRow]:
    """Balance transactions as statement rows. A payment's or refund's amount is the source's (what the
    customer paid, in the order's currency); fees are in the balance's currency."""
    rows: list[StatementRow] = []
    for txn in transactions:
        try:
            rows.extend(_rows_of(txn))
        except (KeyError, TypeError, ValueError) as error:
            raise StatementInvalid(f"stripe balance transaction {txn.get('id')} unreadable: {error}") from None
    return rows


def _rows_of(txn: Mapping[str, Any]) -> list[StatementRow]:
    kind, at = txn["type"], _at(txn)
    source = txn.get("source")
    source = source if isinstance(source, dict) else {"id": source}
    intent = source.get("payment_intent")  # expanded: the PaymentIntent carries the order id we set on it
    intent_id = intent.get("id") if isinstance(intent, dict) else intent
    order_id = (source.get("metadata") or {}).get("order_id") or (
        (intent.get("metadata") or {}).get("order_id") if isinstance(intent, dict) else None)
    balance_currency = str(txn["currency"]).upper()
    amount = int(source["amount"]) if isinstance(source.get("amount"), int) else abs(int(txn["amount"]))
    currency = str(source.get("currency") or txn["currency"]).upper()
    status = rc.SUCCEEDED  # `available` or `pending`: the money moved either way
    if kind in PAYMENTS:
        reference = intent_id or source.get("id") or txn["id"]
        main = StatementRow(rc.PAYMENT, reference, amount, currency, status, at, order_id, note=kind)
    elif kind in REFUNDS + FAILED_REFUNDS:
        failed = kind in FAILED_REFUNDS
        main = StatementRow(rc.REFUND, source.get("id") or txn["id"], amount, currency, rc.FAILED if failed else status,
                            at, order_id, payment_reference=intent_id or source.get("charge"),
                            note=kind)
    elif kind in FEES:
        return [StatementRow(rc.FEE, txn["id"], -int(txn["amount"]), balance_currency, status, at, order_id, note=kind)]
    else:  # payouts, transfers, adjustments (disputes), ...: listed, not reconciled against orders
        return [StatementRow(rc.OTHER, txn["id"], int(txn["amount"]), balance_currency, status, at, order_id, note=kind)]
    rows = [main]
    if txn.get("fee"):
        rows.append(StatementRow(rc.FEE, f"{txn['id']}:fee", int(txn["fee"]), balance_currency, status, at, order_id,
                                 payment_reference=main.reference, note="fee"))
    return rows
