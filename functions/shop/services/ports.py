"""What the use cases need from the outside world. Adapters implement these; tests may fake them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from shop.domain.after_sales import AfterSale
from shop.domain.cart_holds import CartHold
from shop.domain.orders import Order
from shop.domain.skus import Sku, StockLevels
from shop.domain.stock import StockMovement
from shop.domain.stock_documents import DocumentKind, StockDocument
from shop.domain.warehouses import Warehouses
from shop.services.records import (
    AdjustmentApplied,
    IdempotentResponse,
    KeyedRecord,
    RestockApplied,
    WebhookReceipt,
)


class StaleWrite(Exception):
    """A condition on state we read failed, or a concurrent transaction conflicted: re-read and retry."""


class Throttled(Exception):
    """The database is throttling: back off and retry."""


@dataclass
class StockShort(Exception):
    """A stock guard failed at write time (`available >= :q` on the shard tried): read the shards, plan again."""

    skus: set[str]


@dataclass
class CapReached(Exception):
    """A cap item that may not exist yet (`Commit.opening`: a virtual SKU's day) has fewer available units than
    the commit takes: the cap is reached for that day. `available`: SKU -> what the item had, when known."""

    skus: set[str]
    available: dict[str, int] = field(default_factory=dict)


@dataclass
class CommitRejected(Exception):
    """A uniqueness condition failed (a keyed record, the order number, a new order, SKU or after-sales request,
    or the customer's unpaid-holdings cap). `existing`: label -> what was found, when the store read it
    (the `KeyedRecord` for a record's label, `UnpaidHoldings` for "holds")."""

    labels: set[str]
    existing: dict[str, Any] = field(default_factory=dict)


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
    records: list[KeyedRecord] = field(default_factory=list)  # each written once: see services/records.py
    hold_limits: HoldLimits | None = None
    # SKU -> the catalog entry an order was priced from: its shard writes also require the SKU active at
    # that price, so no order reserves a deactivated SKU or charges a changed price.
    catalog_guards: dict[str, Sku] = field(default_factory=dict)
    # An after-sales request, with the version it was read at (None: new, its id must not exist yet).
    after_sale: tuple[AfterSale, int | None] | None = None
    # Stock shards (sku, shard number) this commit must leave at least one available unit on: their guard is
    # `available >= :q + 1`. An order's write planned without reading (services/allocation.py) never empties a
    # shard, so the order that takes a shard's last units is one that read it, and it announces what it saw.
    keep_available: frozenset[tuple[str, int]] = frozenset()
    # Stock documents (deliveries, transfers, counts) as they become, each with the version it was read at
    # (None: new, its id must not exist yet).
    documents: list[tuple[StockDocument, int | None]] = field(default_factory=list)
    # A cart hold as it becomes, with the version it was read at (None: new, its id must not exist yet), and
    # for an order taking its units over, the time before which it must not have expired ("live at").
    cart_hold: tuple[CartHold, int | None] | None = None
    cart_hold_live_at: str | None = None

    def shard_deltas(self) -> dict[tuple[str, int], StockLevels]:
        """The movements summed per stock shard (sku, shard number): each shard is written once."""
        net: dict[tuple[str, int], StockLevels] = {}
        for movement in self.movements:
            key = (movement.sku, movement.shard)
            net[key] = net.get(key, StockLevels()) + movement.delta
        return net

    def openings(self) -> dict[tuple[str, int], int]:
        """Stock items (sku, item) nobody creates beforehand (a virtual SKU's day item, `StockMovement.opening`):
        the first movement writes one with these opening levels (on_hand = available = the value); it is guarded
        as any item after. No catalog copy (active, price) is kept or checked on them; a failed guard raises
        CapReached, not StockShort."""
        return {(m.sku, m.shard): m.opening for m in self.movements if m.opening is not None}

    def holdings_change(self) -> tuple[str, int, dict[str, int]] | None:
        """(customer, change of unpaid orders, change of unpaid units per SKU) the order written here makes to
        its customer's unpaid holdings (`Order.unpaid_holdings` before and after); None if nothing changes."""
        if self.new_order:
            customer = self.new_order.customer_id
            orders, units = self.new_order.unpaid_holdings()
        elif self.order_update:
            before, after = self.order_update
            (was_orders, was_units), (now_orders, now_units) = before.unpaid_holdings(), after.unpaid_holdings()
            customer, orders = after.customer_id, now_orders - was_orders
            units = {s: now_units.get(s, 0) - was_units.get(s, 0) for s in set(was_units) | set(now_units)}
        else:
            return None
        units = {s: q for s, q in units.items() if q}
        return (customer, orders, units) if orders or units else None


class Store(Protocol):
    """The shop's records: catalog entries, stock shards and their ledger, orders (with their unique order
    numbers), customers' unpaid holdings, after-sales requests, keyed records (services/records.py) and daily
    reconciliation results. How each is keyed and stored is the adapter's business (adapters/items.py).

    Reads are consistent (they see every commit that returned) unless `consistent=False` says a recent
    past is good enough. `commit` is the only write of orders and stock, all-or-nothing (see `commit`).
    `tests/fakes/store.py` implements this protocol in memory from these docstrings alone, and
    `tests/services_contract.py` runs the same service tests on it and on DynamoDB Local.
    """

    def get_catalog(self, codes: list[str], *, consistent: bool = True) -> dict[str, Sku]:
        """The catalog entries of these codes that exist (code -> entry), without stock levels."""
        ...

    def get_warehouses(self, *, cached: bool = False) -> Warehouses:
        """The shop's warehouses (the main one always among them) and the registry's version. `cached=True`
        may answer from a copy up to a few seconds old (the order path: ranking only, never stock)."""
        ...

    def save_warehouses(self, warehouses: Warehouses) -> None:
        """Replace the registry, conditional on it still being at `warehouses.version` (raises StaleWrite
        otherwise); the saved registry's version is one more."""
        ...

    def get_catalog_and_response(self, codes: list[str], customer_id: str, key: str, *, consistent: bool = True
                                 ) -> tuple[dict[str, Sku], IdempotentResponse | None]:
        """`get_catalog(codes)` and `idempotent_response(customer_id, key)` in one read."""
        ...

    def shard_levels(self, shards: dict[str, list[int]], *, consistent: bool = True
                     ) -> dict[str, dict[int, StockLevels]]:
        """Levels of the given shards of each SKU (code -> shard numbers); every code asked for is in the
        answer, with the shards that exist."""
        ...

    def get_sku(self, code: str) -> Sku | None:
        """The catalog entry with its stock: every shard's levels (`shard_levels`) and their sum (`levels`)."""
        ...

    def set_stock_state(self, code: str, state: str, expected: str) -> bool:
        """Record the stock state last announced, if it is still `expected`: False (nothing written) if not,
        or if the SKU does not exist."""
        ...

    def advance_backorder_read_from(self, code: str, at: str) -> None:
        """Record where the SKU's next backorder fill starts reading its allowance's ledger (Sku.backorder_read_from),
        if that moves it forward: never back. Nothing if the SKU does not exist."""
        ...

    def catalog_version(self, code: str) -> int | None:
        """The version of the catalog entry (what `Commit.sku_put` is conditional on), None if it does not exist."""
        ...

    def get_order(self, order_id: str) -> Order | None: ...

    # Keyed records (services/records.py) as committed, None if absent.
    def idempotent_response(self, customer_id: str, key: str) -> IdempotentResponse | None: ...

    def webhook_receipt(self, provider: str, event_id: str) -> WebhookReceipt | None: ...

    def restock_applied(self, message_id: str) -> RestockApplied | None: ...

    def adjustment_applied(self, sku: str, request_id: str) -> AdjustmentApplied | None: ...

    def import_rows_applied(self, file_id: str, lines: list[int]) -> set[int]:
        """Which of these lines of an import file have an `ImportRowApplied` record."""
        ...

    def get_stock_document(self, kind: DocumentKind, doc_id: str) -> StockDocument | None:
        """The stock document as last committed (`Commit.documents`), None if absent."""
        ...

    def stock_documents(self, kind: DocumentKind, listed_under: str, limit: int = 100) -> list[StockDocument]:
        """The documents of `kind` whose `listed_under` is that key, by (`list_sort`, doc_id), the first `limit`."""
        ...

    def count_paid_from_address(self, ip_hash: str, since: str) -> int:
        """How many `PaidFromAddress` records of this address have `paid_at` at or after `since`."""
        ...

    def commit(self, commit: Commit) -> None:
        """Apply everything in `commit` atomically, or nothing. A failed condition raises, in this order:

        - `CommitRejected(labels, existing)` if a record that must be new exists: a keyed record (its `label`,
          with the record found in `existing`), `"order_new"` (the order id), `"order_number"` (the new order's
          number is another order's), `"sku_new"` (a SKU created with
          version None), `"after_sale_new"` (an after-sales request created with version None whose id exists),
          or `"holds"` when the new order would pass `hold_limits` (`existing["holds"]` is the
          customer's `UnpaidHoldings`), or `"document_new"` when a new stock document's id exists
          (`existing["document_new"]` is the stored `StockDocument`);
        - `StaleWrite` if what the commit was computed from changed: `order_update`'s order no longer has the
          version and status read (or is gone), the catalog entry is not at `sku_put`'s version, the after-sales
          request is not at `after_sale`'s version (or is gone), a stock document is not at the version given
          with it (or is gone), a ledger entry's movement id was written before,
          the cart hold is not at `cart_hold`'s version (or exists when new), or with `cart_hold_live_at` the
          hold as read is not active or its `expires_at` is not after that time;
        - `CapReached(skus, available)` if the guard of an item in `openings()` failed (its levels, or the opening
          levels if it did not exist yet, hold less than the movements lower);
        - `StockShort(skus)` if a SKU's stock guard failed: the movements of one shard are summed into one
          delta, applied only if the shard exists and every level the delta lowers holds at least that much
          (one unit more of available for a shard in `keep_available`; and, for a SKU in `catalog_guards`,
          the shard's copy of the catalog is active at that price);
        - `Throttled` when the database sheds load (safe to retry: a commit that did apply fails its
          conditions on the retry).

        Applied: each shard's delta (an item of `openings()` that did not exist starts from its opening levels) and
        each movement's ledger entry; the catalog entry at version+1 (1 if
        new) with every shard's copy of active/price (shards created with zero levels); the order (a new one
        with its order number); the customer's unpaid holdings changed by what the order holds unpaid before
        and after (`Order.unpaid_holdings`); the keyed records; the after-sales request (its version as given); the stock documents (theirs as given).
        More than 100 records: `Unprocessable`.
        """
        ...

    # Daily reconciliation: a window of orders by creation time, orders by id, and its result item.
    def orders_created_between(self, created_from: str, created_to: str) -> Iterable[Order]:
        """Every order created from `created_from` to `created_to` (ISO times, both included; `created_to`
        as a prefix), in no particular order."""
        ...

    def orders_by_id(self, order_ids: list[str]) -> list[Order]:
        """The orders of these ids that exist, in no particular order."""
        ...

    def put_reconciliation(self, provider: str, day: date, result: dict[str, Any]) -> None:
        """Write or replace the reconciliation result of one provider's business day, unconditionally."""
        ...

    def get_reconciliation(self, provider: str, day: date) -> dict[str, Any] | None:
        """The result as put (top-level None values may come back absent), None if none ran."""
        ...

    # Reads for the HTTP routes (lists are (page, cursor of the next page or None)) and the sweeper.
    # Listings are newest first by (created_at, order_id); a cursor is opaque, bound to its listing, and
    # an invalid one raises Unprocessable; `limit` is capped at 100.
    def order_id_by_number(self, order_number: str) -> str | None: ...

    def customer_orders(self, customer_id: str, limit: int, cursor: str | None, *,
                        status: str | None = None) -> tuple[list[Order], str | None]:
        """One customer's orders, newest first by (created_at, order_id); only those of `status` when given."""
        ...

    def orders(self, *, status: str | None, customer_id: str | None, created_from: str | None,
               created_to: str | None, limit: int, cursor: str | None,
               phone_digest: str | None = None) -> tuple[list[Order], str | None]:
        """Orders matching every filter given, newest first; created_from/created_to as in
        `orders_created_between`; `phone_digest` matches `Order.phone_digest`. A page with a cursor has orders."""
        ...

    def skus(self, *, states: tuple[str, ...] | None, limit: int, cursor: str | None) -> tuple[list[Sku], str | None]:
        """Catalog entries with their stock (as `get_sku`), by code ascending; only those whose recorded
        `stock_state` is one of `states` when given."""
        ...

    def ledger(self, code: str, limit: int, cursor: str | None, *, items: list[int] | None = None,
               since: str | None = None) -> tuple[list[StockMovement], str | None]:
        """A SKU's stock movements over all its shards (`Sku.stock_items`, or only these `items`: a virtual
        SKU's day item), oldest first by (at, movement_id); only those with `at` >= `since` when given."""
        ...

    def ledger_between(self, code: str, at_from: str | None, at_to: str | None) -> Iterable[StockMovement]:
        """A SKU's stock movements over all its shards with `at` from `at_from` to `at_to` (both included; `at_to`
        as a prefix, as in `orders_created_between`; None: unbounded), oldest first by (at, movement_id), read
        lazily as the caller iterates."""
        ...

    def overdue_pending_order_ids(self, now_iso: str, limit: int = 100) -> list[str]:
        """PENDING_PAYMENT orders whose `expires_at` <= `now_iso`, earliest expiry first."""
        ...

    def pending_refund_order_ids(self, before_iso: str, limit: int = 100) -> list[str]:
        """Orders (not PENDING_PAYMENT) with a refund entry still pending, by the time of their oldest pending
        entry (its `at`, else the order's `updated_at`), those at or before `before_iso`, oldest first."""
        ...

    def completion_due_order_ids(self, now_iso: str, limit: int = 100) -> list[str]:
        """DELIVERED orders with `complete_after` <= `now_iso` and no open after-sales request, earliest first."""
        ...

    def get_cart_hold(self, hold_id: str) -> CartHold | None:
        """The cart hold of this id as last committed (`Commit.cart_hold`), None if absent."""
        ...

    def overdue_cart_hold_ids(self, now_iso: str, limit: int = 100) -> list[str]:
        """Ids of active cart holds whose `expires_at` <= `now_iso`, earliest expiry first."""
        ...

    def get_after_sale(self, after_sale_id: str) -> AfterSale | None:
        """The after-sales request of this id as last committed (`Commit.after_sale`), None if absent."""
        ...

    def after_sales(self, *, status: str | None, limit: int, cursor: str | None) -> tuple[list[AfterSale], str | None]:
        """After-sales requests, newest first by (created_at, after_sale_id); only those of `status` when given.
        Cursors as for orders."""
        ...


class EvidenceUploads(Protocol):
    """Presigned S3 POSTs for customers' evidence photos, and short-lived links for operators to view them."""

    def upload_slots(self, keys: list[str], content_types: list[str]) -> list[dict[str, Any]]:
        """One presigned POST per key, with the content type its policy requires: {url, fields, key, ...}."""
        ...

    def view_urls(self, keys: list[str]) -> list[str]:
        """A short-lived GET link per key."""
        ...


class EventPublisher(Protocol):
    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        """Announce a domain event after its change committed. Never raises: a lost notification is logged and
        counted, never a failed request (the change is already committed)."""
        ...


class PaymentWindows(Protocol):
    def open(self, order_id: str, expires_at: str) -> None:
        """Start the order's payment window, which asks for its expiry at `expires_at`. Once per order (a retry
        starts nothing new); never raises (the sweeper expires an order whose window never started)."""
        ...


class HoldTimers(Protocol):
    def open(self, hold_id: str, expires_at: str) -> None:
        """Ask for the hold's expiry at `expires_at` (the payment-window state machine, its hold branch). Once per
        (hold, expiry): a renewal asks again with the later time, and the earlier timer's message finds the hold
        renewed and does nothing. Never raises (the sweeper releases an overdue hold whose timer never started)."""
        ...


class ReleaseQueue(Protocol):
    def request_release(self, order_id: str, reason: str) -> None:
        """Ask the release consumer to end the order's reservation (it re-checks the order: redelivery is safe)."""
        ...

    def request_hold_release(self, hold_id: str) -> None:
        """Ask the release consumer to release an overdue cart hold (it re-checks the hold: redelivery is safe)."""
        ...


class RestockQueue(Protocol):
    def request_restock(self, message_id: str, sku: str, quantity: int, order_id: str | None,
                        reason: str) -> None:
        """Ask the restock consumer to put `quantity` sold units back on sale, once per `message_id`
        (services/restock.py)."""
        ...

    def request_rebalance(self, sku: str) -> None:
        """Ask the restock consumer to even out the SKU's stock shards (services/inventory.rebalance)."""
        ...


class ParcelTracking(Protocol):
    """The courier-poll loop of each parcel (one Step Functions execution named by the shipment id)."""

    def start(self, order_id: str, shipment_id: str, wait_seconds: int) -> None:
        """Start following the parcel (its first poll after `wait_seconds`). Once per parcel; never raises."""
        ...

    def stop(self, shipment_id: str, cause: str) -> None:
        """End the parcel's loop now (a final status was pushed). Never raises."""
        ...

    def answer(self, task_token: str, output: dict[str, Any]) -> None:
        """Answer a poll task; a token answered or timed out already is not an error."""
        ...


@dataclass
class Ports:
    store: Store
    events: EventPublisher
    windows: PaymentWindows
    release_queue: ReleaseQueue | None = None
    restock_queue: RestockQueue | None = None
    evidence: EvidenceUploads | None = None
    tracking: ParcelTracking | None = None  # the courier-poll executions (None: parcels are not polled)
    hold_timers: HoldTimers | None = None  # cart holds' expiry timers (None: the sweeper alone releases them)
