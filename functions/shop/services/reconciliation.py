"""Daily reconciliation of one provider and one business day (docs/payments.md, "Daily reconciliation").

1. Fetch the provider's statement for the day, verified (hash, its own summary) and normalized
   (shop/reconciliation/): a statement that does not verify makes a *failed* run, never a partial result.
2. Read our side: the orders created in the day and in the `RECONCILIATION_LOOKBACK_DAYS` before it (the
   admin listing's index, gsi3), plus every order the statement names, whatever its age; each order's
   payments and refunds (shop.domain.reconciliation.records_of).
3. Classify (shop.domain.reconciliation.reconcile).
4. Act only where a rule says so: a payment the provider took for a CANCELLED or EXPIRED order that records
   nothing of it (a late payment whose notification never arrived) is recorded on the order with an
   automatic refund, through the same path a refused webhook payment takes
   (services.payments.refund_unrecorded_payment). Nothing else is changed: the rest is reported.
5. Store the result (`Store.put_reconciliation`: a re-run replaces it) and publish one
   `reconciliation.mismatch` event per difference (at most MAX_EVENTS a run; `mismatch_id` is stable, so
   consumers can drop repeats of a re-run).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from shop.domain import clock
from shop.domain import reconciliation as rc
from shop.domain.errors import NotFound, Unprocessable
from shop.domain.orders import Order
from shop.domain.statuses import PaymentOutcome, ReconciliationStatus
from shop.payments.base import PaymentEvent, PaymentProvider, ProviderError
from shop.reconciliation.statements import STATEMENT_PROVIDERS, StatementError, StatementSource, source_for
from shop.services.ports import Ports
from shop.settings import get_settings

logger = Logger(child=True)
MAX_STORED_DIFFERENCES = 300  # the stored item stays far below DynamoDB's 400 KB; counts are always complete
MAX_EVENTS = 100
_ORDER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # ids in a provider's file are untrusted input


@dataclass(frozen=True)
class ReconciliationSettings:
    grace_seconds: int = 900  # around midnight, a record may sit in the neighbouring day's statement
    lookback_days: int = 30  # orders created this long before the day are read for refunds made on it

    @classmethod
    def from_env(cls) -> ReconciliationSettings:
        settings = get_settings()
        return cls(settings.reconciliation_grace_seconds, settings.reconciliation_lookback_days)


def run(ports: Ports, provider: str, business_date: date | str, *, source: StatementSource | None = None,
        provider_for: Callable[[str], PaymentProvider] | None = None,
        settings: ReconciliationSettings | None = None) -> dict[str, Any]:
    """Reconcile `provider` for `business_date` (in the provider's time zone); returns the stored result."""
    settings = settings or ReconciliationSettings.from_env()
    day = rc.business_day(provider, business_date)
    started = clock.now()
    try:
        statement = (source or source_for(provider)).fetch(day)
    except StatementError as error:
        return _failed(ports, day, error.reason, str(error), started)
    except ProviderError as error:  # a secret or setting missing, or the provider not answering
        reason = "provider-not-configured" if type(error).__name__ == "ProviderNotConfigured" else "provider-error"
        return _failed(ports, day, reason, str(error), started)
    grace = timedelta(seconds=settings.grace_seconds)
    records, facts = _our_side(ports, provider, day, statement, settings)
    outcome = rc.reconcile(statement, day, records, facts, grace)
    actions = _refund_late_payments(ports, provider, day, outcome, provider_for)
    result = _result(day, statement, outcome, actions, started, grace)
    ports.store.put_reconciliation(provider, day.date, result)
    _publish(ports, day, outcome, actions)
    logger.info("reconciled", extra={"provider": provider, "date": day.date.isoformat(), "counts": result["counts"]})
    return result


def results_for(ports: Ports, business_date: str) -> dict[str, Any]:
    """Every provider's stored result for a day: 422 for a date that is not YYYY-MM-DD, 404 when none ran."""
    try:
        day = rc.parse_date(business_date)
    except ValueError:
        raise Unprocessable("the date must be a calendar date, YYYY-MM-DD", {"fields": ["date"]}) from None
    found = []
    for provider in STATEMENT_PROVIDERS:
        stored = ports.store.get_reconciliation(provider, day)
        if stored:  # the store may leave out top-level nulls: put them back
            found.append({"statement": None, "error": None, **stored})
    if not found:
        raise NotFound(f"no reconciliation has run for {day.isoformat()}", {"date": day.isoformat()})
    return {"date": day.isoformat(), "providers": found}


# ---- our side --------------------------------------------------------------------------------------

def _our_side(ports: Ports, provider: str, day: rc.BusinessDay, statement: rc.Statement,
              settings: ReconciliationSettings) -> tuple[list[rc.Record], dict[str, rc.OrderFacts]]:
    named = {row.order_id for row in statement.rows if row.order_id and _ORDER_ID.fullmatch(row.order_id)}
    records: list[rc.Record] = []
    facts: dict[str, rc.OrderFacts] = {}
    seen: set[str] = set()

    def absorb(order: Order) -> None:  # keeps only what classification needs, not the orders themselves
        seen.add(order.order_id)
        mine = [r for r in rc.records_of(order) if r.provider == provider]
        if mine or order.order_id in named:
            facts[order.order_id] = rc.order_facts(order)
            records.extend(mine)

    created_from = clock.iso(day.start - timedelta(days=settings.lookback_days))
    created_to = clock.iso(day.end + timedelta(seconds=settings.grace_seconds))
    for order in ports.store.orders_created_between(created_from, created_to):
        absorb(order)
    older = sorted(named - seen)
    for start in range(0, len(older), 100):
        for order in ports.store.orders_by_id(older[start:start + 100]):
            absorb(order)
    return records, facts


# ---- acting on late payments -----------------------------------------------------------------------

def _refund_late_payments(ports: Ports, provider: str, day: rc.BusinessDay, outcome: rc.Outcome,
                          provider_for: Callable[[str], PaymentProvider] | None) -> dict[str, str]:
    """Late payments are refunded through the automatic-refund path; any other difference is only reported."""
    from shop.services.payments import refund_unrecorded_payment

    if provider_for is None:
        from shop.payments import registry

        provider_for = registry.provider
    actions: dict[str, str] = {}
    for difference in outcome.late_payments:
        row = difference.provider_row
        assert row is not None and difference.order_id
        event = PaymentEvent(provider, f"reconciliation:{row.reference}"[:128], "payment_succeeded",
                             difference.order_id, row.money, row.reference)
        mismatch_id = difference.mismatch_id(provider, day.date)
        try:
            outcome_of_refund = refund_unrecorded_payment(
                ports, provider_for(provider), event,
                f"late payment found by reconciliation of {day.date.isoformat()}: the order is "
                f"{difference.order_status}")
            actions[mismatch_id] = ("refund_requested_before" if outcome_of_refund is PaymentOutcome.DUPLICATE
                                    else outcome_of_refund.value)
        except Exception as error:  # noqa: BLE001 - one order's trouble is reported, the run goes on
            logger.exception("late payment not refunded", extra={"provider": provider, "order_id": difference.order_id})
            actions[mismatch_id] = f"refund_failed: {type(error).__name__}"
    return actions


# ---- the result --------------------------------------------------------------------------------------

def _window(day: rc.BusinessDay) -> dict[str, str]:
    return {"from": clock.iso(day.start), "to": clock.iso(day.end)}


def _result(day: rc.BusinessDay, statement: rc.Statement, outcome: rc.Outcome, actions: dict[str, str],
            started: datetime, grace: timedelta) -> dict[str, Any]:
    differences = []
    for difference in outcome.differences[:MAX_STORED_DIFFERENCES]:
        shown = difference.to_dict(day.provider, day.date)
        shown["action"] = actions.get(shown["mismatch_id"], "reported")
        differences.append(shown)
    return {
        "provider": day.provider, "date": day.date.isoformat(), "timezone": day.timezone,
        "status": ReconciliationStatus.COMPLETED.value,
        "ran_at": clock.iso(started), "window": _window(day), "grace_seconds": int(grace.total_seconds()),
        "statement": {"rows": len(statement.rows), "checks": list(statement.checks), **outcome.totals,
                      "other_rows": outcome.other_rows},
        "counts": outcome.counts(), "differences": differences,
        "differences_truncated": len(outcome.differences) > MAX_STORED_DIFFERENCES, "error": None,
    }


def _failed(ports: Ports, day: rc.BusinessDay, reason: str, detail: str, started: datetime) -> dict[str, Any]:
    """A run that could not use the statement: recorded (replacing an earlier result), no differences at all."""
    logger.error("reconciliation failed", extra={"provider": day.provider, "date": day.date.isoformat(),
                                                 "reason": reason, "detail": detail[:300]})
    result: dict[str, Any] = {"provider": day.provider, "date": day.date.isoformat(), "timezone": day.timezone,
              "status": ReconciliationStatus.FAILED.value,
              "ran_at": clock.iso(started), "window": _window(day), "statement": None, "counts": {},
              "differences": [], "differences_truncated": False, "error": {"reason": reason, "detail": detail[:500]}}
    ports.store.put_reconciliation(day.provider, day.date, result)
    return result


def _publish(ports: Ports, day: rc.BusinessDay, outcome: rc.Outcome, actions: dict[str, str]) -> None:
    for difference in outcome.differences[:MAX_EVENTS]:
        shown = difference.to_dict(day.provider, day.date)
        ports.events.publish("reconciliation.mismatch", {
            "mismatch_id": shown["mismatch_id"], "provider": day.provider, "date": day.date.isoformat(),
            "category": difference.category, "kind": difference.kind, "order_id": difference.order_id,
            "reference": difference.reference, "detail": difference.detail,
            "provider_amount": shown["provider"]["amount"] if shown["provider"] else None,
            "our_amount": shown["ours"]["amount"] if shown["ours"] else None,
            "action": actions.get(shown["mismatch_id"], "reported")})
    if len(outcome.differences) > MAX_EVENTS:
        logger.warning("more differences than events published", extra={
            "provider": day.provider, "differences": len(outcome.differences), "published": MAX_EVENTS})
