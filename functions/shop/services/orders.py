"""Order use cases: place, read, cancel, expire, mark paid."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shop.domain import clock, stock
from shop.domain.cart_holds import CartHold, HoldStatus, check_order_lines, hold_id_for
from shop.domain.errors import (
    Conflict,
    IdempotencyKeyReused,
    InsufficientStock,
    NotFound,
    TooManyUnpaid,
    Unprocessable,
)
from shop.domain.ids import new_order_id, new_order_number
from shop.domain.orders import (
    MAX_DISTINCT_SKUS_PER_ORDER,
    MAX_QUANTITY_PER_LINE,
    MAX_UNITS_PER_ORDER,
    HistoryEntry,
    Order,
    OrderLine,
    OrderStatus,
    payment_window_seconds,
)
from shop.domain.skus import Sku
from shop.domain.statuses import PaymentStatus
from shop.services import cart_holds, inventory, pools, warehouses
from shop.services.allocation import take_units
from shop.services.ports import CapReached, Commit, CommitRejected, HoldLimits, Ports, StaleWrite, StockShort
from shop.services.presenters import order_view
from shop.services.records import IdempotentResponse, UnpaidHoldings
from shop.services.retry import with_retries

if TYPE_CHECKING:
    from shop.settings import Settings


class NotYetDue(Conflict):
    """An expiry request arrived before the window ended: ask again later."""

    slug, title = "not-yet-due", "Payment window still open"


@dataclass(frozen=True)
class OrderRequest:
    items: list[tuple[str, int]]  # (sku, quantity) as sent
    shipping_address: dict[str, Any]
    payment_provider: str
    client_ip: str | None = None  # the caller's address (API Gateway sourceIp), for risk rules only
    payment_window_seconds: int | None = None  # asked for by the storefront; bounded by SKUs and the maximum
    phone_digest: str | None = None  # the shipping phone's keyed digest (operators find orders by phone)
    presale: frozenset[str] = frozenset()  # SKUs ordered from their presale pool (shop/domain/presale.py)
    cart_id: str | None = None  # the cart whose hold the order takes over (services/cart_holds.py)


@dataclass(frozen=True)
class PlacedOrder:
    status_code: int
    body: dict[str, Any]
    replayed: bool
    order_id: str


def request_fingerprint(payload: Any) -> str:
    """Same key + same body (as parsed JSON, key order ignored) = same request."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def hash_address(address: str | None) -> str | None:
    """Orders keep a client address only as a hash: enough to count payments per address, no address stored."""
    return hashlib.sha256(address.encode()).hexdigest()[:32] if address else None


def merge_lines(items: list[tuple[str, int]]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for code, quantity in items:
        merged[code] = merged.get(code, 0) + quantity
    too_many = [code for code, q in merged.items() if q > MAX_QUANTITY_PER_LINE]
    if too_many:
        raise Unprocessable(
            f"at most {MAX_QUANTITY_PER_LINE} units of one SKU per order", {"skus": too_many}
        )
    if len(merged) > MAX_DISTINCT_SKUS_PER_ORDER:
        raise Unprocessable(f"at most {MAX_DISTINCT_SKUS_PER_ORDER} different SKUs per order", {"fields": ["items"]})
    if sum(merged.values()) > MAX_UNITS_PER_ORDER:
        raise Unprocessable(f"at most {MAX_UNITS_PER_ORDER} units per order", {"fields": ["items"]})
    return merged


def check_catalog(wanted: dict[str, int], skus: dict[str, Sku]) -> None:
    """Every line must name an active SKU in one currency, within its per-order limit (stock is checked
    by the write itself)."""
    unknown = [code for code in wanted if code not in skus]
    if unknown:
        raise Unprocessable("unknown SKU", {"skus": [{"sku": c, "reason": "unknown"} for c in unknown]})
    inactive = [code for code in wanted if not skus[code].active]
    if inactive:
        raise Unprocessable("SKU not for sale", {"skus": [{"sku": c, "reason": "inactive"} for c in inactive]})
    currencies = sorted({skus[code].price.currency for code in wanted})
    if len(currencies) > 1:
        raise Unprocessable("all lines of an order must share one currency", {"currencies": currencies})
    over = [
        {"sku": c, "reason": "max_per_order", "max_per_order": skus[c].max_per_order, "requested": q}
        for c, q in wanted.items()
        if (limit := skus[c].max_per_order) is not None and q > limit
    ]
    if over:
        raise Unprocessable("quantity above the per-order limit", {"skus": over})


def _too_many_unpaid(limits: HoldLimits | None, holds: UnpaidHoldings) -> TooManyUnpaid:
    limits = limits or HoldLimits()
    held = {sku: units for sku, units in holds.units.items() if units > 0}
    if limits.max_unpaid_orders and holds.orders >= limits.max_unpaid_orders:
        return TooManyUnpaid(f"you have {holds.orders} unpaid orders, the most this shop allows; pay or "
                             "cancel one first", {"max_unpaid_orders": limits.max_unpaid_orders})
    return TooManyUnpaid(f"at most {limits.max_unpaid_units_per_sku} units of one SKU may wait unpaid per customer; "
                         "pay or cancel an order first",
                         {"max_unpaid_units_per_sku": limits.max_unpaid_units_per_sku,
                          "skus": [{"sku": s, "unpaid": q} for s, q in sorted(held.items())]})


def _replay(record: IdempotentResponse, fingerprint: str) -> PlacedOrder:
    if record.request_hash != fingerprint:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used with a different request body; use a new key",
            {"order_id": record.order_id},
        )
    return PlacedOrder(record.status_code, json.loads(record.response), True, record.order_id)


@dataclass(frozen=True)
class PlaceOrder:
    """One POST /orders (or reorder): who asks, under which Idempotency-Key, for what."""

    customer_id: str
    idempotency_key: str
    request: OrderRequest
    fingerprint: str  # of the request body (request_fingerprint): the same key with another body is refused


@dataclass(frozen=True)
class OrderPolicy:
    """The shop's rules for a new order: its payment window, how long its answer is replayed, the unpaid caps."""

    window_seconds: int  # the default payment window (a SKU may shorten it)
    idempotency_ttl_seconds: int
    max_window_seconds: int | None = None  # the longest window a SKU may set (None: window_seconds)
    hold_limits: HoldLimits = field(default_factory=HoldLimits)
    time_zone: str = "UTC"  # the shop's: a virtual SKU's daily cap counts its calendar days

    @classmethod
    def from_settings(cls, settings: Settings) -> OrderPolicy:
        return cls(settings.payment_window_seconds, settings.idempotency_ttl_seconds,
                   settings.max_payment_window_seconds, settings.hold_limits(), settings.shop_time_zone)


def place_order(ports: Ports, placing: PlaceOrder, policy: OrderPolicy,
                payment_details: Callable[[Order], dict[str, Any]]) -> PlacedOrder:
    """Reserve every line and write the order in one transaction, once per Idempotency-Key.

    `payment_details(order)` says what the client needs to pay (asked of the provider once per request)."""
    placement = _Placement(ports, placing, policy, payment_details, wanted=merge_lines(placing.request.items))
    placed = placement.commit_once()  # read, validate, price, plan allocation, commit; or replay
    if not placed.replayed:
        placement.open_payment_window(placed)
    return placed


ORDER_NUMBER_DRAWS = 3  # a new number after a collision with another order's


@dataclass
class _Placement:
    """One POST /orders across its attempts (each attempt re-reads and decides again; see commit_once)."""

    ports: Ports
    placing: PlaceOrder
    policy: OrderPolicy
    payment_details: Callable[[Order], dict[str, Any]]
    wanted: dict[str, int]  # units per SKU, merged and bounded
    # One id for every attempt of this request, so a provider call keyed on it happens once.
    order_id: str = field(default_factory=new_order_id)
    payment: dict[str, Any] | None = None  # what the client needs to pay: asked of the provider once
    consistent_catalog: bool = False  # after a catalog change is seen, read it consistently
    ran_dry: set[str] = field(default_factory=set)  # SKUs where a shard was found short: stock events, rebalancing
    shard_counts: dict[str, int] = field(default_factory=dict)
    moved: list[stock.StockMovement] = field(default_factory=list)

    @property
    def customer_id(self) -> str:
        return self.placing.customer_id

    @property
    def idempotency_key(self) -> str:
        return self.placing.idempotency_key

    @property
    def request(self) -> OrderRequest:
        return self.placing.request

    @property
    def fingerprint(self) -> str:
        return self.placing.fingerprint

    @property
    def actor(self) -> str:
        return f"customer:{self.customer_id}"

    def commit_once(self) -> PlacedOrder:
        """The order committed (or the answer already given to this key), retried on concurrent change; a new
        order number after a collision."""
        for _ in range(ORDER_NUMBER_DRAWS):
            try:
                return with_retries(self._attempt)
            except CommitRejected:  # the order number is another order's: the next attempt draws a new one
                continue
            except InsufficientStock as short:  # a sell-out shows here: the totals were just read
                if isinstance(short, pools.DailyCapReached):
                    raise  # the day's cap, not the SKU's stock
                inventory.announce_stock_state(self.ports, [], ran_short=self.ran_dry, known_available={
                    item["sku"]: item["available"] - item.get("backorder_available", 0)  # sellable units only
                    for item in short.extra.get("shortages", [])})
                raise
        raise Unprocessable("could not allocate a unique order number; retry")

    def _attempt(self) -> PlacedOrder:
        # One read: the catalog and the idempotency record. Eventually consistent is enough: the stock
        # write re-checks that each SKU is active at the price read, and a replay this read missed is
        # caught by the idempotency record's own condition in the same transaction.
        skus, stored = self.ports.store.get_catalog_and_response(list(self.wanted), self.customer_id,
                                                                 self.idempotency_key, consistent=self.consistent_catalog)
        if stored:
            return _replay(stored, self.fingerprint)
        check_catalog(self.wanted, skus)
        hold = self._cart_hold()
        created = clock.now()
        pools.check_order_lines(self.wanted, skus, self.request.presale, created)
        order = self._priced(skus, created)
        try:
            takes = {line.sku: line.quantity for line in order.lines
                     if line.reserves_stock and pools.takes_stock(line, skus[line.sku])}
            return self._allocate_and_commit(order, skus, created, _HoldTakeover.of(hold, order, created, takes))
        except CommitRejected as rejected:
            return self._replay_or_refuse(rejected)
        except CapReached as capped:
            raise pools.daily_cap_reached(capped, self.wanted) from None

    def _cart_hold(self) -> CartHold | None:
        """The active hold of the cart the order names, if any (its lines must be the order's: else 409). A cart
        with no active hold (never held, released, expired and released, converted) changes nothing: the order
        reserves as any other."""
        if not self.request.cart_id:
            return None
        hold = self.ports.store.get_cart_hold(hold_id_for(self.customer_id, self.request.cart_id))
        if hold is None or hold.customer_id != self.customer_id or not hold.active:
            return None
        check_order_lines(hold, self.wanted)
        return hold

    def _priced(self, skus: dict[str, Sku], created: datetime) -> Order:
        """The new order at the catalog's prices, its payment window set, with what the client needs to pay."""
        at = clock.iso(created)
        lines = tuple(pools.order_line(OrderLine(code, skus[code].name, qty, skus[code].price, skus[code].stock_policy),
                                       skus[code], presale=code in self.request.presale)
                      for code, qty in self.wanted.items())
        window = payment_window_seconds(
            default=self.policy.window_seconds, maximum=self.policy.max_window_seconds or self.policy.window_seconds,
            requested=self.request.payment_window_seconds,
            sku_windows=tuple(skus[code].payment_window_seconds for code in self.wanted))
        order = Order(
            order_id=self.order_id, order_number=new_order_number(self.customer_id, at), customer_id=self.customer_id,
            status=OrderStatus.PENDING_PAYMENT, lines=lines, currency=lines[0].unit_price.currency,
            payment_provider=self.request.payment_provider, shipping_address=self.request.shipping_address,
            created_at=at, updated_at=at, expires_at=clock.iso_after(created, window),
            history=(HistoryEntry(at, self.actor, None, OrderStatus.PENDING_PAYMENT.value, "order_placed"),),
            client_ip_hash=hash_address(self.request.client_ip), phone_digest=self.request.phone_digest,
        )
        if self.payment is None:
            self.payment = self.payment_details(order)
        return replace(order, payment=self.payment)

    def _allocate_and_commit(self, order: Order, skus: dict[str, Sku], created: datetime,
                             takeover: _HoldTakeover | None = None) -> PlacedOrder:
        """Plan which stock shards the reserved units come from and commit the order with them, in one
        transaction (with its idempotency record); a shard found short is read and the plan made again.

        With a cart hold (`takeover`), the same transaction ends the hold at the version read: its units become
        the order's reservation (live hold), or go back to available before the order takes its own (a hold
        that expired unreleased); see _HoldTakeover."""
        inherited = takeover.inherited if takeover else {}
        reserving = {line.sku: line.quantity for line in order.lines
                     if line.reserves_stock and pools.takes_stock(line, skus[line.sku]) and line.sku not in inherited}
        day_caps = pools.day_cap_takes(order, skus, created, self.policy.time_zone)  # virtual SKUs' daily caps
        self.shard_counts.update({code: skus[code].stock_shards for code in reserving})
        # The registry names the warehouses of held units too (a hold's lines keep the items they hold).
        layouts, registry = warehouses.layouts_for(self.ports, {code: skus[code] for code in [*reserving, *inherited]},
                                                   order.shipping_address, backorders=True)
        wrote = False
        freed = cart_holds.freed_by(takeover.released) if takeover else {}

        def commit(plan: dict[str, list[tuple[int, int]]]) -> PlacedOrder:
            nonlocal wrote
            taken = pools.with_day_caps(plan, day_caps)
            placed = order.with_allocations({**inherited, **taken}, registry)
            movements = [pools.opened(stock.allocate(code, shard, units, at=order.created_at, actor=self.actor,
                                                     order_id=self.order_id), day_caps)
                         for code, parts in taken.items() for shard, units in parts]
            if takeover:
                movements = takeover.movements(self.order_id, self.actor) + movements
            body = order_view(placed)
            if takeover:
                body["cart_hold"] = takeover.outcome
            record = IdempotentResponse(self.customer_id, self.idempotency_key, request_hash=self.fingerprint,
                                        status_code=201, response=json.dumps(body, separators=(",", ":")),
                                        order_id=self.order_id, created_at=order.created_at,
                                        expires=int(created.timestamp()) + self.policy.idempotency_ttl_seconds)
            wrote = True
            # A SKU's shards not read in this request are written blind: the write leaves a unit on each, so no
            # sell-out goes unseen without a read after it (the last units go to a request that read them).
            blind = frozenset((code, shard) for code, parts in plan.items() if code not in self.ran_dry
                              for shard, _ in parts)
            guarded = {*plan, *inherited}
            try:
                self.ports.store.commit(Commit(movements=movements, new_order=placed, records=[record],
                                               hold_limits=self.policy.hold_limits,
                                               catalog_guards={code: skus[code] for code in guarded},
                                               keep_available=blind, **(takeover.commit_fields() if takeover else {})))
            except StockShort as short:
                if short.skus & set(inherited):  # units held already: only the catalog guard can fail there
                    self.consistent_catalog = True
                    raise StaleWrite("catalog changed since the order was priced") from None
                raise
            self.moved.extend(movements)
            return PlacedOrder(201, body, False, self.order_id)

        def read_available(codes: list[str]) -> dict[str, dict[int, int]]:
            self.ran_dry.update(codes)
            if not wrote:  # read before any write (last seen sold out): the write will check the catalog
                levels = inventory.available_by_shard(self.ports, {code: skus[code] for code in codes}, backorders=True)
            else:
                current = self.ports.store.get_catalog(codes)
                if any(_priced_differently(skus[code], current.get(code)) for code in codes):
                    self.consistent_catalog = True  # the catalog changed since our read: price the order again
                    raise StaleWrite("catalog changed")
                levels = inventory.available_by_shard(self.ports, {code: current[code] for code in codes},
                                                      backorders=True)
            # Units the same transaction releases from an expired hold count: the shard's guard sees the sum.
            return {code: cart_holds.plus(levels.get(code, {}), freed.get(code, {})) for code in codes}

        return take_units(reserving, layouts, commit=commit,
                          read_available=read_available,
                          read_first={code for code in reserving if skus[code].stock_state == "sold_out"})

    def _replay_or_refuse(self, rejected: CommitRejected) -> PlacedOrder:
        """The same request committed concurrently: its answer. Over the unpaid caps: 429. An order-number
        collision is raised again (commit_once draws a new number)."""
        if IdempotentResponse.label in rejected.labels:
            stored = (rejected.existing.get(IdempotentResponse.label)
                      or self.ports.store.idempotent_response(self.customer_id, self.idempotency_key))
            if stored:
                return _replay(stored, self.fingerprint)
        if "holds" in rejected.labels:
            raise _too_many_unpaid(self.policy.hold_limits, rejected.existing.get("holds") or UnpaidHoldings()) from None
        raise rejected

    def open_payment_window(self, placed: PlacedOrder) -> None:
        """After the commit: the payment window's timer, stock events, rebalancing of shards found short, and
        order.created."""
        self.ports.windows.open(placed.order_id, placed.body["expires_at"])
        inventory.announce_stock_state(self.ports, self.moved, ran_short=self.ran_dry, left_stocked=True)
        for code in sorted(code for code in self.ran_dry if self.shard_counts.get(code, 1) > 1):
            if self.ports.restock_queue is not None:
                self.ports.restock_queue.request_rebalance(code)
        self.ports.events.publish("order.created", {
            "order_id": placed.order_id, "order_number": placed.body["order_number"], "total": placed.body["total"],
            "customer_id": self.customer_id})


@dataclass(frozen=True)
class _HoldTakeover:
    """What an order does to the cart hold it names, in its own transaction, conditional on the hold's version.

    A live hold (active, not expired): its units become the order's reservation where the order reserves that
    SKU (`inherited` shards; two ledger entries per shard whose deltas cancel), the rest are released; the hold
    ends `converted`, on condition it is still active and unexpired at commit time. A hold that expired but was
    not yet released: every unit is released and the order takes its own through the allocation loop; the hold
    ends `released`. Either way, if the expiry (or a DELETE, or another order) ended the hold first, this
    commit fails on the version and the next attempt reads the hold ended and reserves like any order: exactly
    one of them ends the hold."""

    hold: CartHold
    after: CartHold
    live_at: str | None  # set when converting: the hold must not have expired by then
    inherited: dict[str, list[tuple[int, int]]]
    released: list[stock.StockMovement]

    @classmethod
    def of(cls, hold: CartHold | None, order: Order, created: datetime, reserving: dict[str, int]
           ) -> _HoldTakeover | None:
        """`reserving`: the units per SKU the order reserves from spot stock (the held units it can take over)."""
        if hold is None:
            return None
        at = clock.iso(created)
        if not hold.live(created):
            return cls(hold, hold.ended(HoldStatus.RELEASED, at=created, by="expired"), None, {},
                       cart_holds.release_movements(hold, at=at, actor=cart_holds.ACTOR_EXPIRY,
                                                    reason="cart_hold_expired"))
        inherited = {line.sku: line.plan for line in hold.lines
                     if line.allocations and sum(a.units for a in line.allocations) == reserving.get(line.sku)}
        released = cart_holds.release_movements(hold, at=at, actor=f"customer:{hold.customer_id}",
                                                reason="cart_hold_converted", skus={line.sku for line in hold.lines
                                                                                   if line.sku not in inherited})
        return cls(hold, hold.ended(HoldStatus.CONVERTED, at=created, by=order.order_id), at, inherited, released)

    @property
    def outcome(self) -> dict[str, str]:
        return {"cart_id": self.hold.cart_id, "hold_id": self.hold.hold_id, "status": self.after.status.value}

    def movements(self, order_id: str, actor: str) -> list[stock.StockMovement]:
        at = self.after.updated_at
        return self.released + [m for sku, parts in self.inherited.items() for shard, units in parts
                                for m in stock.hand_over(sku, shard, units, at=at, actor=actor,
                                                         hold_id=self.hold.hold_id, order_id=order_id)]

    def commit_fields(self) -> dict[str, Any]:
        # Converting: not expired at the moment of the commit (the writer's clock; DynamoDB has none).
        return {"cart_hold": (self.after, self.hold.version),
                "cart_hold_live_at": clock.iso(clock.now()) if self.live_at else None}


def _priced_differently(read: Sku, current: Sku | None) -> bool:
    return current is None or not current.active or current.price != read.price


release_order_lines = inventory.release_order_lines


def get_order_for(ports: Ports, order_id: str, customer_id: str | None) -> Order:
    """The order, if it exists and (for a customer) is theirs; otherwise 404 either way."""
    order = ports.store.get_order(order_id) if order_id.startswith("ord_") and len(order_id) < 64 else None
    if order is None or (customer_id is not None and order.customer_id != customer_id):
        raise NotFound(f"no order {order_id}")
    return order


def end_reservation(
    ports: Ports,
    order_id: str,
    *,
    to: OrderStatus,
    actor: str,
    reason: str,
    customer_id: str | None = None,
    only_if_overdue: bool = False,
) -> Order | None:
    """Expire (or cancel) an unpaid order and release its reserved units, in one transaction.

    Returns the updated order, or None when an expiry finds nothing to do (paid, already
    ended, or not yet due), so redelivered expiry messages are harmless.
    """

    released: list[stock.StockMovement] = []

    def attempt() -> Order | None:
        released.clear()
        order = get_order_for(ports, order_id, customer_id)
        last = order.history[-1] if order.history else None
        if order.status is to and last and (last.actor, last.reason) == (actor, reason):
            return order  # our own earlier attempt committed (its answer was lost): done
        if to is OrderStatus.EXPIRED:
            if order.status is not OrderStatus.PENDING_PAYMENT:
                return None
            if only_if_overdue and clock.parse_iso(order.expires_at) > clock.now():
                raise NotYetDue(f"order {order_id} expires at {order.expires_at}", {"order_id": order_id})
        at = clock.iso(clock.now())
        updated = order.transition(to, at=at, actor=actor, reason=reason)
        movements = release_order_lines(order, at, actor, reason)
        ports.store.commit(Commit(movements=movements, order_update=(order, updated)))
        released.extend(movements)
        return updated

    updated = with_retries(attempt)
    inventory.announce_stock_state(ports, released)
    if updated is not None:
        event = "order.expired" if to is OrderStatus.EXPIRED else "order.cancelled"
        ports.events.publish(event, {"order_id": order_id, "reason": reason,
                                     "released": [{"sku": line.sku, "quantity": line.quantity} for line in updated.lines]})
    return updated


def expire_order(ports: Ports, order_id: str, *, reason: str = "payment_window_expired") -> Order | None:
    return end_reservation(ports, order_id, to=OrderStatus.EXPIRED, actor="system:payment_window",
                           reason=reason, only_if_overdue=True)


def mark_paid(ports: Ports, order_id: str, *, actor: str, reason: str = "payment_received") -> Order | None:
    """PENDING_PAYMENT (or EXPIRED, if stock allows) -> PAID, turning the order's units into sales.

    Returns None if the order was already paid (a duplicate), raises InsufficientStock when a late
    payment finds no stock left (the caller refunds), InvalidTransition for other states.
    """

    def attempt() -> Order | None:
        order = get_order_for(ports, order_id, None)
        if order.payment_status is PaymentStatus.PAID or order.status is OrderStatus.PAID:
            return None
        at = clock.iso(clock.now())

        def commit(movements: list[stock.StockMovement], selling: Order) -> Order:
            updated = selling.transition(OrderStatus.PAID, at=at, actor=actor, reason=reason, payment_status=PaymentStatus.PAID)
            ports.store.commit(Commit(movements=movements, order_update=(order, updated)))
            sold.extend(movements)
            return updated

        return inventory.sell_order(ports, order, at, actor, commit)

    sold: list[stock.StockMovement] = []
    updated = with_retries(attempt)
    inventory.announce_stock_state(ports, sold)  # deduct-on-payment and late payments take available units
    if updated is not None:
        ports.events.publish("order.paid", {"order_id": order_id, "total": updated.total.to_dict()})
    return updated
