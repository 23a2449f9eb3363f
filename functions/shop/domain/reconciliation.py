"""Daily reconciliation (对账): a provider's statement for one business day against our payments and refunds.

Pure rules, no I/O. The statement clients (shop/reconciliation/) turn each provider's file into
`StatementRow`s; `records_of` turns an order into the payments and refunds it records; `reconcile`
matches the two and classifies every difference:

- matched: the provider's row and our record agree (reference, amount, currency, status);
- amount_differs: same payment or refund, another amount or currency;
- status_differs: the provider and we disagree on its state: our refund still pending while the
  provider refunded, or the provider took a payment that the order never recorded (a *late payment*
  when the order is CANCELLED or EXPIRED: money kept without an order, to be refunded);
- missing_here: money at the provider with no record here (no such order, or a refund made outside
  the shop);
- missing_at_provider: our payment or refund is not in the provider's statement, although it was
  recorded inside this business day (after the grace period that lets the neighbouring day's file
  carry what happened around midnight);
- duplicate_charge: a further payment at the provider for an order that already records one;
- fee: the provider's fees, summed per currency (not a difference).

Business days are the provider's: Beijing time (UTC+8) for Alipay and WeChat Pay, UTC for Stripe and
the sandbox. A record belongs to the day whose window [start + grace, end + grace) holds its time, so
every record is checked by exactly one day's run; matching itself uses every record of the orders read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

from shop.domain import clock, refunds
from shop.domain.money import Money
from shop.domain.orders import Order, OrderStatus
from shop.domain.statuses import TransactionStatus

CHINA = timezone(timedelta(hours=8), "UTC+08:00")
PROVIDER_TIMEZONES: dict[str, timezone] = {"alipay": CHINA, "wechatpay": CHINA, "stripe": UTC, "sandbox": UTC}

PAYMENT, REFUND, FEE, OTHER = "payment", "refund", "fee", "other"
SUCCEEDED, PENDING, FAILED = TransactionStatus.SUCCEEDED, TransactionStatus.PENDING, TransactionStatus.FAILED

MATCHED = "matched"
AMOUNT_DIFFERS = "amount_differs"
STATUS_DIFFERS = "status_differs"
MISSING_HERE = "missing_here"
MISSING_AT_PROVIDER = "missing_at_provider"
DUPLICATE_CHARGE = "duplicate_charge"
DIFFERENCES = (AMOUNT_DIFFERS, STATUS_DIFFERS, MISSING_HERE, MISSING_AT_PROVIDER, DUPLICATE_CHARGE)
ENDED = (OrderStatus.CANCELLED, OrderStatus.EXPIRED)


# ---- business days -----------------------------------------------------------------------------

@dataclass(frozen=True)
class BusinessDay:
    """One provider's calendar day, as UTC instants [start, end)."""

    provider: str
    date: date
    start: datetime
    end: datetime

    @property
    def timezone(self) -> str:
        return str(PROVIDER_TIMEZONES.get(self.provider, UTC))


def parse_date(text: str) -> date:
    """A business date, YYYY-MM-DD exactly (ValueError otherwise)."""
    if not isinstance(text, str) or len(text) != 10 or text[4] != "-" or text[7] != "-":
        raise ValueError(f"not a date (YYYY-MM-DD): {text!r}")
    return date.fromisoformat(text)


def business_day(provider: str, day: date | str) -> BusinessDay:
    day = parse_date(day) if isinstance(day, str) else day
    zone = PROVIDER_TIMEZONES.get(provider, UTC)
    start = datetime.combine(day, time.min, zone)
    return BusinessDay(provider, day, start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC))


def business_date_of(provider: str, moment: datetime) -> date:
    return moment.astimezone(PROVIDER_TIMEZONES.get(provider, UTC)).date()


def previous_business_date(provider: str, now: datetime) -> date:
    """The last complete business day at `now` (what a daily run after midnight reconciles)."""
    return business_date_of(provider, now) - timedelta(days=1)


def local_time(provider: str, text: str) -> str:
    """A provider's wall-clock time ('2026-01-02 10:00:05', its own time zone) as ISO 8601 UTC."""
    naive = datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S")
    return clock.iso(naive.replace(tzinfo=PROVIDER_TIMEZONES.get(provider, UTC)))


# ---- both sides, normalized ------------------------------------------------------------------

@dataclass(frozen=True)
class StatementRow:
    """One line of a provider's statement. Amounts are positive minor units (a fee row: positive is a fee
    charged, negative a fee given back)."""

    kind: str  # payment | refund | fee | other
    reference: str  # the provider's id: trade_no / transaction_id / PaymentIntent; refund id; transaction id
    amount: int
    currency: str
    status: str  # succeeded | pending | failed
    at: str  # ISO 8601 UTC
    order_id: str | None = None  # out_trade_no / metadata.order_id
    payment_reference: str | None = None  # a refund's (or fee's) payment
    merchant_reference: str | None = None  # a refund's out_request_no / out_refund_no: our refund id
    note: str = ""  # the provider's own type, for operators

    @property
    def money(self) -> Money:
        return Money(self.amount, self.currency)


@dataclass(frozen=True)
class Statement:
    provider: str
    date: date
    rows: tuple[StatementRow, ...]
    checks: tuple[str, ...] = ()  # what was verified (hash, summary), for the stored result


@dataclass(frozen=True)
class Record:
    """A payment or refund as one of our orders records it."""

    kind: str  # payment | refund
    provider: str
    order_id: str
    reference: str | None  # provider_payment_id; for refunds provider_refund_id
    amount: int
    currency: str
    status: str  # succeeded | pending
    at: str
    merchant_reference: str | None = None  # refunds: our refund id (the provider's idempotency key)
    payment_reference: str | None = None  # refunds: the payment refunded

    @property
    def money(self) -> Money:
        return Money(self.amount, self.currency)


@dataclass(frozen=True)
class OrderFacts:
    """What classification needs to know about an order the statement names."""

    order_id: str
    status: OrderStatus
    payment_provider: str
    payment_references: tuple[str, ...]  # every payment the order records, any provider


def _payment_time(order: Order) -> str:
    for entry in order.history:
        if entry.actor.startswith("provider:") and entry.to_status in (OrderStatus.PAID.value,
                                                                       OrderStatus.ON_HOLD.value):
            return entry.at
    return order.updated_at


def records_of(order: Order) -> list[Record]:
    """Every payment and refund the order records.

    Payments: the order's own (`provider_payment_id`: what it took, or the held payment of a wrong
    amount) and each payment it refused (an automatic refund entry names the payment and what it took).
    Refunds: every refund entry with an amount, pending or succeeded.
    """
    found: dict[str, Record] = {}
    for entry in order.refunds:
        reference = entry.provider_payment_id
        if entry.automatic and reference and reference not in found:
            found[reference] = Record(PAYMENT, entry.provider or order.payment_provider, order.order_id,
                                      reference, int(entry.captured or entry.amount), entry.currency, SUCCEEDED,
                                      entry.at)
    own = order.provider_payment_id
    if own and own not in found:
        money = order.held_payment.amount if order.held_payment else Money(refunds.own_captured(order), order.currency)
        if money.amount > 0:
            found[own] = Record(PAYMENT, order.payment_provider, order.order_id, own, money.amount, money.currency,
                                SUCCEEDED, _payment_time(order))
    records = list(found.values())
    for entry in order.refunds:
        if not entry.amount:
            continue  # a cancel of an order refunded already: nothing reached the provider
        status = PENDING if entry.pending else SUCCEEDED
        records.append(Record(REFUND, entry.provider or order.payment_provider, order.order_id,
                              entry.provider_refund_id, entry.amount, entry.currency, status,
                              entry.completed_at or entry.at, merchant_reference=entry.refund_id,
                              payment_reference=entry.provider_payment_id))
    return records


def order_facts(order: Order) -> OrderFacts:
    return OrderFacts(order.order_id, order.status, order.payment_provider,
                      tuple(r.reference for r in records_of(order) if r.kind == PAYMENT and r.reference))


# ---- classification ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Difference:
    category: str
    kind: str  # payment | refund
    reference: str | None
    order_id: str | None
    detail: str
    provider_row: StatementRow | None = None
    record: Record | None = None
    order_status: str | None = None
    late_payment: bool = False  # provider success for a CANCELLED/EXPIRED order that records nothing of it

    def mismatch_id(self, provider: str, day: date) -> str:
        """Stable across re-runs: consumers of reconciliation.mismatch can drop repeats."""
        key = "|".join([provider, day.isoformat(), self.category, self.kind, self.reference or "",
                        self.order_id or ""])
        return "mm_" + hashlib.sha256(key.encode()).hexdigest()[:24]

    def to_dict(self, provider: str, day: date) -> dict[str, Any]:
        row, record = self.provider_row, self.record
        return {
            "mismatch_id": self.mismatch_id(provider, day), "category": self.category, "kind": self.kind,
            "order_id": self.order_id, "reference": self.reference, "detail": self.detail,
            "late_payment": self.late_payment, "order_status": self.order_status,
            "provider": None if row is None else {"amount": row.money.to_dict(), "status": row.status, "at": row.at,
                                                  "reference": row.reference, "type": row.note or row.kind},
            "ours": None if record is None else {"amount": record.money.to_dict(), "status": record.status,
                                                 "at": record.at, "reference": record.reference,
                                                 "refund_id": record.merchant_reference},
        }


@dataclass
class Outcome:
    provider: str
    date: date
    matched: int = 0
    differences: list[Difference] = field(default_factory=list)
    totals: dict[str, dict[str, Any]] = field(default_factory=dict)  # payments / refunds / fees at the provider
    other_rows: int = 0

    def counts(self) -> dict[str, int]:
        counts = {MATCHED: self.matched, **{category: 0 for category in DIFFERENCES}}
        for difference in self.differences:
            counts[difference.category] += 1
        return counts

    @property
    def late_payments(self) -> list[Difference]:
        return [d for d in self.differences if d.late_payment]


def _totals(rows: Iterable[StatementRow]) -> dict[str, Any]:
    count, sums = 0, dict[str, Any]()
    for row in rows:
        count += 1
        sums[row.currency] = sums.get(row.currency, 0) + row.amount
    return {"count": count, "totals": dict(sorted(sums.items()))}


def _compare(row: StatementRow, record: Record, facts: OrderFacts | None) -> Difference | None:
    kind = row.kind
    status = facts.status.value if facts else None
    if row.currency != record.currency or row.amount != record.amount:
        what = "currency" if row.currency != record.currency else "amount"
        return Difference(AMOUNT_DIFFERS, kind, row.reference, row.order_id or record.order_id,
                          f"{what} differs: provider {row.amount} {row.currency}, "
                          f"ours {record.amount} {record.currency}", row, record, status)
    if row.status != record.status:
        if record.status == PENDING and row.status == SUCCEEDED:
            detail = "the provider refunded; our refund is still pending (the sweeper finishes it)"
        else:
            detail = f"provider says {row.status}, ours is {record.status}"
        return Difference(STATUS_DIFFERS, kind, row.reference, row.order_id or record.order_id, detail, row, record,
                          status)
    return None


def reconcile(statement: Statement, day: BusinessDay, records: Iterable[Record], facts: Mapping[str, OrderFacts],
              grace: timedelta = timedelta(minutes=15)) -> Outcome:
    """Classify every row of `statement` and every record of ours that the day is responsible for.

    `records` are this provider's payments and refunds of the orders read (any day: matching is by
    reference); `facts` describe the orders the statement names. Never changes anything.
    """
    provider = statement.provider
    outcome = Outcome(provider, day.date)
    rows = list(statement.rows)
    ours = [r for r in records if r.provider == provider]
    payments = {r.reference: r for r in ours if r.kind == PAYMENT and r.reference}
    refunds_by_id = {r.merchant_reference: r for r in ours if r.kind == REFUND and r.merchant_reference}
    refunds_by_reference = {r.reference: r for r in ours if r.kind == REFUND and r.reference}
    used: set[int] = set()
    paid_orders: set[str] = set()  # orders a payment row of the provider was accounted to so far

    outcome.totals = {
        "payments": _totals(r for r in rows if r.kind == PAYMENT and r.status != FAILED),
        "refunds": _totals(r for r in rows if r.kind == REFUND and r.status != FAILED),
        "fees": _totals(r for r in rows if r.kind == FEE),
    }
    outcome.other_rows = sum(1 for r in rows if r.kind not in (PAYMENT, REFUND, FEE))

    def settle(row: StatementRow, record: Record) -> None:
        used.add(id(record))
        difference = _compare(row, record, facts.get(record.order_id))
        if difference is None:
            outcome.matched += 1
        else:
            outcome.differences.append(difference)

    unmatched_payments: list[StatementRow] = []
    for row in sorted(rows, key=lambda r: (r.at, r.reference)):
        if row.kind == PAYMENT:
            record = payments.get(row.reference)
            if record is not None and id(record) not in used:
                settle(row, record)
                paid_orders.add(record.order_id)
            elif row.status != FAILED:
                unmatched_payments.append(row)
        elif row.kind == REFUND:
            record = refunds_by_id.get(row.merchant_reference or "") or refunds_by_reference.get(row.reference)
            if record is not None and id(record) not in used:
                settle(row, record)
            elif record is not None and row.status == FAILED:  # Stripe: refund_failure after the refund
                outcome.differences.append(Difference(
                    STATUS_DIFFERS, REFUND, row.reference, record.order_id,
                    "the provider reports this refund failed; the money went back to our balance", row, record))
            elif row.status != FAILED:
                known = facts.get(row.order_id or "")
                outcome.differences.append(Difference(
                    MISSING_HERE, REFUND, row.reference, row.order_id,
                    "a refund at the provider that no order records (made outside the shop?)" if known
                    else "a refund at the provider for an order we do not have", row,
                    order_status=known.status.value if known else None))

    for row in unmatched_payments:
        known = facts.get(row.order_id or "")
        if known is None:
            outcome.differences.append(Difference(
                MISSING_HERE, PAYMENT, row.reference, row.order_id,
                f"money at the provider for an order we do not have ({row.order_id})" if row.order_id
                else "money at the provider without an order id", row))
            continue
        others = [ref for ref in known.payment_references if ref != row.reference]
        if others or known.order_id in paid_orders:
            outcome.differences.append(Difference(
                DUPLICATE_CHARGE, PAYMENT, row.reference, known.order_id,
                f"a further payment for an order that records {', '.join(others) or 'another payment'}", row,
                order_status=known.status.value))
        elif known.status in ENDED:
            outcome.differences.append(Difference(
                STATUS_DIFFERS, PAYMENT, row.reference, known.order_id,
                f"late payment: the provider took it, the order is {known.status.value} and records no "
                "payment or refund of it", row, order_status=known.status.value, late_payment=True))
        else:
            outcome.differences.append(Difference(
                STATUS_DIFFERS, PAYMENT, row.reference, known.order_id,
                f"the provider took a payment the order ({known.status.value}) has not recorded", row,
                order_status=known.status.value))
        paid_orders.add(known.order_id)

    start, end = day.start + grace, day.end + grace
    for record in sorted(ours, key=lambda r: (r.at, r.order_id)):
        if id(record) in used or not start <= clock.parse_iso(record.at) < end:
            continue
        outcome.differences.append(Difference(
            MISSING_AT_PROVIDER, record.kind, record.reference or record.merchant_reference, record.order_id,
            f"our {record.kind} ({record.status}) is not in the provider's statement", record=record,
            order_status=facts[record.order_id].status.value if record.order_id in facts else None))
    return outcome
