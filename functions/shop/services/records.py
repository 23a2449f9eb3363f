"""The keyed records the use cases write beside orders and stock, in domain terms.

Each is written once (a `Commit.records` entry fails the commit with `CommitRejected` naming its
`label` if the same record exists: that is how a redelivered message, a retried request or a
replayed notification is recognised). Their DynamoDB keys and attributes live in adapters/items.py;
`expires` is the epoch second after which the table may drop the record (its TTL).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from shop.domain.money import Money
from shop.domain.stock import StockMovement


@dataclass(frozen=True)
class IdempotentResponse:
    """The answer of POST /orders under one customer's Idempotency-Key, for replays of the same request."""

    label: ClassVar[str] = "idempotency"
    customer_id: str
    key: str
    request_hash: str  # the request body's fingerprint: the same key with another body is refused
    status_code: int
    response: str  # the JSON body answered
    order_id: str
    created_at: str
    expires: int

    @property
    def identity(self) -> tuple[str, ...]:
        return (self.customer_id, self.key)


@dataclass(frozen=True)
class WebhookReceipt:
    """A verified provider notification, settled once: what it said and what settling it did."""

    label: ClassVar[str] = "webhook"
    provider: str
    event_id: str
    kind: str
    order_id: str | None
    outcome: str
    amount: Money | None
    received_at: str
    expires: int
    detail: dict[str, Any] = field(default_factory=dict)  # e.g. expected/received amounts, the refund made

    @property
    def identity(self) -> tuple[str, ...]:
        return (self.provider, self.event_id)


@dataclass(frozen=True)
class RestockApplied:
    """A stock return applied (one per restock message id)."""

    label: ClassVar[str] = "restock_message"
    message_id: str
    sku: str
    quantity: int
    applied_at: str
    expires: int

    @property
    def identity(self) -> tuple[str, ...]:
        return (self.message_id,)


@dataclass(frozen=True)
class AdjustmentApplied:
    """An operator's stock adjustment applied (one per request id), with the movements it made."""

    label: ClassVar[str] = "adjustment"
    sku: str
    request_id: str
    movements: tuple[StockMovement, ...]
    expires: int

    @property
    def identity(self) -> tuple[str, ...]:
        return (self.sku, self.request_id)


@dataclass(frozen=True)
class ImportRowApplied:
    """One row of an operators' CSV import applied (one per file id and line), written with the row's stock
    movements (or alone when the row moved no stock): a re-posted file skips it."""

    label: ClassVar[str] = "import_row"
    file_id: str  # sha256 of the file's bytes (and of the Idempotency-Key, when one was sent)
    line: int
    sku: str
    applied_at: str
    expires: int

    @property
    def identity(self) -> tuple[str, ...]:
        return (self.file_id, str(self.line))


@dataclass(frozen=True)
class PaidFromAddress:
    """An order paid from a client address (hashed), kept for the risk rule's window."""

    label: ClassVar[str] = "risk_ip"
    ip_hash: str
    paid_at: str
    order_id: str
    expires: int

    @property
    def identity(self) -> tuple[str, ...]:
        return (self.ip_hash, self.paid_at, self.order_id)


KeyedRecord = (IdempotentResponse | WebhookReceipt | RestockApplied | AdjustmentApplied | PaidFromAddress
               | ImportRowApplied)


@dataclass(frozen=True)
class UnpaidHoldings:
    """What one customer holds unpaid: open unpaid orders and reserved units per SKU (the anti-hoarding caps)."""

    orders: int = 0
    units: dict[str, int] = field(default_factory=dict)
