"""What the use cases need from the outside world. Adapters implement these; tests may fake them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from shop.domain.orders import Order
from shop.domain.skus import Sku, StockLevels
from shop.domain.stock import StockMovement


class StaleWrite(Exception):
    """A condition on state we read failed, or a concurrent transaction conflicted: re-read and retry."""


class Throttled(Exception):
    """The database is throttling: back off and retry."""


@dataclass
class StockShort(Exception):
    """A stock guard failed at write time (`available >= :q` on the shard tried): read the shards, plan again."""

    skus: set[str]


@dataclass
class CommitRejected(Exception):
    """A uniqueness condition failed (idempotency record, order number, dedupe record)."""

    labels: set[str]
    existing: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class HoldLimits:
    """Caps on what one customer may hold unpaid (0: no cap), checked in the order's own transaction."""

    max_unpaid_orders: int = 0
    max_unpaid_units_per_sku: int = 0


@dataclass
class Commit:
    """Everything one use case writes, applied atomically or not at all.

    The store also keeps each customer's unpaid holdings (orders, units per SKU) in step with every
    order written here, so no transition can forget to give them back; `hold_limits` caps a new order.
    """

    movements: list[StockMovement] = field(default_factory=list)
    new_order: Order | None = None
    order_update: tuple[Order, Order] | None = None  # (as read, as it becomes)
    sku_put: tuple[Sku, int | None] | None = None  # (catalog entry, catalog version read, None if new)
    unique_puts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (label, item)
    hold_limits: HoldLimits | None = None
    # SKU -> the catalog entry an order was priced from: its shard writes also require the SKU active at
    # that price, so no order reserves a deactivated SKU or charges a changed price.
    catalog_guards: dict[str, Sku] = field(default_factory=dict)


class Store(Protocol):
    def get_catalog(self, codes: list[str], *, consistent: bool = True) -> dict[str, Sku]: ...
    def get_catalog_and_item(self, codes: list[str], key: dict[str, str] | None, *, consistent: bool = True
                             ) -> tuple[dict[str, Sku], dict[str, Any] | None]: ...
    def shard_levels(self, shards: dict[str, list[int]], *, consistent: bool = True
                     ) -> dict[str, dict[int, StockLevels]]: ...
    def get_sku(self, code: str) -> Sku | None: ...
    def set_stock_state(self, code: str, state: str, expected: str) -> bool: ...
    def catalog_version(self, code: str) -> int | None: ...
    def get_order(self, order_id: str) -> Order | None: ...
    def get_item(self, key: dict[str, str]) -> dict[str, Any] | None: ...
    def count_items(self, pk: str, sk_from: str) -> int: ...
    def commit(self, commit: Commit) -> None: ...
    # Daily reconciliation: a window of orders by creation time, orders by id, and its result item.
    def orders_created_between(self, created_from: str, created_to: str) -> Iterable[Order]: ...
    def orders_by_id(self, order_ids: list[str]) -> list[Order]: ...
    def put_item(self, item: dict[str, Any]) -> None: ...
    # Reads for the HTTP routes (lists are (page, cursor of the next page or None)) and the sweeper.
    def order_id_by_number(self, order_number: str) -> str | None: ...
    def customer_orders(self, customer_id: str, limit: int, cursor: str | None) -> tuple[list[Order], str | None]: ...
    def orders(self, *, status: str | None, customer_id: str | None, created_from: str | None,
               created_to: str | None, limit: int, cursor: str | None) -> tuple[list[Order], str | None]: ...
    def ledger(self, code: str, limit: int, cursor: str | None) -> tuple[list[StockMovement], str | None]: ...
    def overdue_pending_order_ids(self, now_iso: str, limit: int = 100) -> list[str]: ...
    def pending_refund_order_ids(self, before_iso: str, limit: int = 100) -> list[str]: ...


class EventPublisher(Protocol):
    def publish(self, detail_type: str, detail: dict[str, Any]) -> None: ...


class PaymentWindows(Protocol):
    def open(self, order_id: str, expires_at: str) -> None: ...


class ReleaseQueue(Protocol):
    def request_release(self, order_id: str, reason: str) -> None: ...


class RestockQueue(Protocol):
    def request_restock(self, message_id: str, sku: str, quantity: int, order_id: str | None,
                        reason: str) -> None: ...
    def request_rebalance(self, sku: str) -> None: ...


@dataclass
class Ports:
    store: Store
    events: EventPublisher
    windows: PaymentWindows
    release_queue: ReleaseQueue | None = None
    restock_queue: RestockQueue | None = None
