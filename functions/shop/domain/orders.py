"""Orders, their lines and their lifecycle."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from typing import NamedTuple

from shop.domain.backorders import is_backorder_item
from shop.domain.errors import InvalidTransition, Unprocessable
from shop.domain.money import Money
from shop.domain.parcels import ParcelTracking
from shop.domain.skus import StockPolicy
from shop.domain.statuses import FulfillmentStatus, PaymentStatus
from shop.domain.values import HeldPayment, Refund, Shipment, sum_units, unit_lines
from shop.domain.warehouses import MAIN_WAREHOUSE, Warehouses, warehouse_index_of


class OrderStatus(str, Enum):  # noqa: UP042 - StrEnum would change str() and format() of the members
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAID = "PAID"
    ON_HOLD = "ON_HOLD"
    PARTIALLY_SHIPPED = "PARTIALLY_SHIPPED"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


S = OrderStatus
ALLOWED_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PENDING_PAYMENT: frozenset({S.PAID, S.ON_HOLD, S.CANCELLED, S.EXPIRED}),
    S.PAID: frozenset({S.PARTIALLY_SHIPPED, S.SHIPPED, S.CANCELLED, S.ON_HOLD}),
    S.ON_HOLD: frozenset({S.PAID, S.CANCELLED}),
    # Each further parcel of a partly shipped order is a transition too (it appends to the history).
    S.PARTIALLY_SHIPPED: frozenset({S.PARTIALLY_SHIPPED, S.SHIPPED}),
    S.SHIPPED: frozenset({S.DELIVERED, S.COMPLETED}),  # the customer may confirm receipt before the carrier
    S.DELIVERED: frozenset({S.COMPLETED}),
    S.COMPLETED: frozenset(),
    S.CANCELLED: frozenset(),
    # A payment that arrives after expiry re-takes stock if it can (held if a risk rule says so).
    S.EXPIRED: frozenset({S.PAID, S.ON_HOLD}),
}

# Statuses in which the order's reserve_on_order lines hold reserved (not yet sold) units
# (an unpaid ON_HOLD order, held because the amount received was wrong, keeps its reservation).
HOLDS_RESERVATION = frozenset({S.PENDING_PAYMENT, S.ON_HOLD})

def payment_window_seconds(*, default: int, maximum: int, requested: int | None = None,
                           sku_windows: tuple[int | None, ...] = ()) -> int:
    """How long an order may stay unpaid: the shop's window (the shortest a SKU sets, else the default,
    never beyond the configured maximum). A request may shorten it, never lengthen it: a longer one
    would let a client hold stock longer than the shop allows."""
    set_by_skus = [w for w in sku_windows if w]
    shop_window = min(min(set_by_skus) if set_by_skus else default, maximum)
    if requested is None:
        return shop_window
    if requested > shop_window:
        raise Unprocessable(f"payment_window_seconds may shorten the payment window, up to {shop_window} s",
                            {"fields": ["payment_window_seconds"], "maximum": shop_window})
    return requested


MAX_LINES_PER_ORDER = 50
# Each distinct SKU costs two items (shard update + ledger entry) of a 100-item transaction, more
# when its units come from several shards; the order, its number, its idempotency record and the
# customer's holdings take four.
MAX_DISTINCT_SKUS_PER_ORDER = 40
MAX_QUANTITY_PER_LINE = 100
MAX_UNITS_PER_ORDER = 1000


class Allocation(NamedTuple):
    """Units of a line held on (reserved or sold from) one stock item, and the warehouse that item is in."""

    item: int
    units: int
    warehouse: str = MAIN_WAREHOUSE


@dataclass(frozen=True)
class OrderLine:
    sku: str
    name: str
    quantity: int
    unit_price: Money
    stock_policy: StockPolicy = StockPolicy.RESERVE_ON_ORDER
    # Which stock items hold this line's units (reserved or sold). Releases, sales and returns go back to
    # the same items, so each item's levels stay exact; the warehouse says where the units ship from.
    allocations: tuple[Allocation, ...] = ()
    # A presale line: its units come from the SKU's presale pool at payment, and ship around this date.
    presale_ships_on: str | None = None
    # A line of virtual goods: sold against the SKU's caps (shop/domain/virtual.py), never shipped.
    virtual: bool = False

    @property
    def line_total(self) -> Money:
        return self.unit_price.times(self.quantity)

    @property
    def reserves_stock(self) -> bool:
        return self.stock_policy is StockPolicy.RESERVE_ON_ORDER

    @property
    def backordered(self) -> int:
        """Units of this line waiting for stock (reserved on the SKU's backorder allowance: domain/backorders.py)."""
        return sum(a.units for a in self.allocations if is_backorder_item(a.item))

    def units_by_warehouse(self) -> dict[str, int]:
        """Where this line's units ship from: warehouse code -> units (backordered units ship from nowhere yet)."""
        found: dict[str, int] = {}
        for allocation in () if self.virtual else self.allocations:  # virtual goods: caps, nothing ships
            if not is_backorder_item(allocation.item):
                found[allocation.warehouse] = found.get(allocation.warehouse, 0) + allocation.units
        return found

    def with_backorder_filled(self, parts: tuple[Allocation, ...]) -> OrderLine:
        """`parts` (units taken from sellable items) replace as many backordered units."""
        filled = sum(a.units for a in parts)
        if not 0 < filled <= self.backordered:
            raise ValueError(f"{self.sku}: {filled} units cannot fill {self.backordered} backordered")
        return replace(self, allocations=_merged(self.allocations, parts, filled))

    def with_backorder_released(self, units: int) -> OrderLine:
        """`units` backordered units no longer wanted (refunded or cancelled before stock came)."""
        if not 0 < units <= self.backordered:
            raise ValueError(f"{self.sku}: cannot release {units} of {self.backordered} backordered units")
        return replace(self, allocations=_merged(self.allocations, (), units))


def _merged(allocations: tuple[Allocation, ...], parts: tuple[Allocation, ...], off_backorder: int
            ) -> tuple[Allocation, ...]:
    """Allocations less `off_backorder` backordered units, plus `parts` (merged into the items already held)."""
    kept: dict[int, Allocation] = {}
    for allocation in (*allocations, *parts):
        units = allocation.units
        if is_backorder_item(allocation.item) and allocation in allocations:
            units, off_backorder = units - min(units, off_backorder), off_backorder - min(units, off_backorder)
        held = kept.get(allocation.item)
        kept[allocation.item] = allocation._replace(units=units + (held.units if held else 0))
    return tuple(a for a in kept.values() if a.units > 0)


@dataclass(frozen=True)
class HistoryEntry:
    at: str
    actor: str
    from_status: str | None
    to_status: str
    reason: str

    def to_dict(self) -> dict:
        return {"at": self.at, "actor": self.actor, "from": self.from_status, "to": self.to_status, "reason": self.reason}


@dataclass(frozen=True)
class Order:
    order_id: str
    order_number: str
    customer_id: str
    status: OrderStatus
    lines: tuple[OrderLine, ...]
    currency: str
    payment_provider: str
    shipping_address: dict
    created_at: str
    updated_at: str
    expires_at: str
    payment_status: PaymentStatus = PaymentStatus.UNPAID
    fulfillment_status: FulfillmentStatus = FulfillmentStatus.UNFULFILLED
    history: tuple[HistoryEntry, ...] = field(default_factory=tuple)
    payment: dict = field(default_factory=dict)  # what the client needs to pay, per provider
    amount_paid: int = 0  # minor units received from the provider
    amount_refunded: int = 0
    provider_payment_id: str | None = None
    refunds: tuple[Refund, ...] = field(default_factory=tuple)
    hold_reason: str | None = None
    client_ip_hash: str | None = None  # the caller's address, hashed: risk rules compare, nobody reads it
    held_payment: HeldPayment | None = None  # a payment that did not match the order, while ON_HOLD
    shipments: tuple[Shipment, ...] = field(default_factory=tuple)  # parcels sent
    # After-sales requests on this order, summarized (shop.domain.after_sales), and how many are open: an open
    # request holds the order back from COMPLETED. Both change only in the request's own transaction.
    after_sales: tuple[dict, ...] = field(default_factory=tuple)
    open_after_sales: int = 0
    # A keyed digest of the shipping phone (shop/adapters/phones.py): the operators' phone lookup key,
    # never the number itself.
    phone_digest: str | None = None
    # When a DELIVERED order completes by itself (the confirmation period after its last parcel was delivered).
    complete_after: str | None = None
    version: int = 1

    def __post_init__(self) -> None:
        # The vocabularies are enums; a status given as its word (a test, an old caller) becomes the member.
        object.__setattr__(self, "payment_status", PaymentStatus(self.payment_status))
        object.__setattr__(self, "fulfillment_status", FulfillmentStatus(self.fulfillment_status))

    @property
    def total(self) -> Money:
        total = Money.zero(self.currency)
        for line in self.lines:
            total = total + line.line_total
        return total

    @property
    def all_virtual(self) -> bool:
        """Nothing to ship: the order is fulfilled once paid."""
        return all(line.virtual for line in self.lines)

    def reserved_quantities(self) -> dict[str, int]:
        """Units this order holds in reservation per SKU, in its current status."""
        if self.status not in HOLDS_RESERVATION or self.payment_status is not PaymentStatus.UNPAID:
            return {}
        return {line.sku: line.quantity for line in self.lines if line.reserves_stock}

    def with_allocations(self, plan: dict[str, list[tuple[int, int]]], warehouses: Warehouses | None = None
                         ) -> Order:
        """The lines of `plan`'s SKUs now hold their units on these stock items (item, units)."""
        known = warehouses or Warehouses()

        def allocations(parts: list[tuple[int, int]]) -> tuple[Allocation, ...]:
            return tuple(Allocation(item, units, known.code_of(warehouse_index_of(item))) for item, units in parts)

        return replace(self, lines=tuple(replace(line, allocations=allocations(plan[line.sku])) if line.sku in plan
                                         else line for line in self.lines))

    def unpaid_holdings(self) -> tuple[int, dict[str, int]]:
        """(1, reserved units per SKU) while the order is open and unpaid, else (0, {}): what counts
        against the customer's caps on unpaid orders."""
        if self.status not in HOLDS_RESERVATION or self.payment_status is not PaymentStatus.UNPAID:
            return 0, {}
        return 1, self.reserved_quantities()

    def refunded_units(self) -> dict[str, int]:
        """Units per SKU that refunds by line took back."""
        return sum_units(line for refund in self.refunds for line in refund.lines)

    def unshipped_units(self) -> dict[str, int]:
        """Units per SKU still to ship: ordered, less shipped, less refunded by line (an after-sales refund is of
        units shipped already: it leaves what is still to ship as it was)."""
        shipped = sum_units(line for shipment in self.shipments for line in shipment.lines)
        refunded = sum_units(line for refund in self.refunds if not refund.after_sale_id for line in refund.lines)
        left = {line.sku: line.quantity - shipped.get(line.sku, 0) - refunded.get(line.sku, 0) for line in self.lines
                if not line.virtual}  # virtual goods are never shipped
        return {sku: qty for sku, qty in left.items() if qty > 0}

    def backordered_units(self) -> dict[str, int]:
        """Units per SKU waiting for stock (domain/backorders.py): they cannot ship yet. An order that ended unpaid
        (cancelled, expired) waits for nothing: its reservations were released, its lines keep them as history."""
        if self.status in (S.CANCELLED, S.EXPIRED):
            return {}
        return {line.sku: line.backordered for line in self.lines if line.backordered}

    def with_line(self, line: OrderLine, *, at: str) -> Order:
        """The order with its line of `line.sku` replaced (a new version, no transition)."""
        return replace(self, lines=tuple(line if old.sku == line.sku else old for old in self.lines), updated_at=at,
                       version=self.version + 1)

    def unshipped_by_warehouse(self) -> dict[str, dict[str, int]]:
        """Units still to ship per warehouse and SKU: held there (the lines' allocations; a line without any
        counts as the main warehouse's) less what parcels from there carried, never more than the SKU has left."""
        left = self.unshipped_units()
        found: dict[str, dict[str, int]] = {}
        for line in self.lines:
            held = line.units_by_warehouse() if line.allocations else {MAIN_WAREHOUSE: line.quantity}
            for code, units in held.items():
                found.setdefault(code, {})[line.sku] = found.get(code, {}).get(line.sku, 0) + units
        for shipment in self.shipments:
            for unit in shipment.lines:
                from_there = found.setdefault(shipment.warehouse, {})
                from_there[unit.sku] = from_there.get(unit.sku, 0) - unit.quantity
        bounded = {code: {sku: min(units, left.get(sku, 0)) for sku, units in per_sku.items()}
                   for code, per_sku in found.items()}
        return {code: {sku: units for sku, units in per_sku.items() if units > 0}
                for code, per_sku in bounded.items() if any(units > 0 for units in per_sku.values())}

    def _ships_from(self, parcel: dict[str, int], warehouse: str | None) -> str:
        """The warehouse a parcel ships from: the one named, else the only one holding units still to ship, else the
        only one holding all of the parcel's units (a parcel is packed in one warehouse: otherwise name it)."""
        holding = self.unshipped_by_warehouse()
        if warehouse is None:
            if len(holding) <= 1:
                return next(iter(holding), MAIN_WAREHOUSE)
            able = [code for code, units in holding.items() if all(units.get(s, 0) >= q for s, q in parcel.items())]
            if len(able) == 1:
                return able[0]
            raise Unprocessable("this order's units ship from several warehouses: name the parcel's warehouse",
                                {"fields": ["warehouse"], "warehouses": sorted(holding)})
        there = holding.get(warehouse, {})
        short = [{"sku": sku, "requested": qty, "unshipped": there.get(sku, 0)}
                 for sku, qty in parcel.items() if qty > there.get(sku, 0)]
        if short:
            raise InvalidTransition(f"warehouse {warehouse} holds fewer of this order's units to ship",
                                    {"warehouse": warehouse, "skus": short})
        return warehouse

    def ship(self, shipment_id: str, units: dict[str, int] | None, *, carrier: str | None,
             tracking_number: str | None, at: str, actor: str, tracking: ParcelTracking | None = None,
             warehouse: str | None = None) -> Order:
        """Record a parcel from one warehouse (every unit still to ship from there when `units` is None): PAID or
        PARTIALLY_SHIPPED -> PARTIALLY_SHIPPED, or SHIPPED once nothing is left."""
        if self.status not in (S.PAID, S.PARTIALLY_SHIPPED):
            raise InvalidTransition(f"order {self.order_id} is {self.status.value}; it cannot be shipped",
                                    {"order_id": self.order_id, "current_status": self.status.value})
        unknown = sorted(set(units or ()) - {line.sku for line in self.lines})
        if unknown:
            raise Unprocessable("these SKUs are not in the order", {"skus": unknown})
        left = self.unshipped_units()
        waiting = self.backordered_units()
        shippable = {sku: units - min(units, waiting.get(sku, 0)) for sku, units in left.items()}
        if units is None and warehouse is not None:
            units = self.unshipped_by_warehouse().get(warehouse, {})
        parcel = dict(units) if units is not None else {sku: q for sku, q in shippable.items() if q > 0}
        if not parcel:
            raise InvalidTransition(f"order {self.order_id} has nothing left to ship" + (
                " until its backordered units are in stock" if waiting else ""),
                {"order_id": self.order_id, "backordered": [{"sku": s, "quantity": q} for s, q in waiting.items()]})
        short = [{"sku": sku, "requested": qty, "unshipped": left.get(sku, 0),
                  **({"backordered": waiting[sku]} if waiting.get(sku) else {})}
                 for sku, qty in parcel.items() if qty > shippable.get(sku, 0)]
        if short:
            raise InvalidTransition(f"order {self.order_id} has fewer units ready to ship", {"skus": short})
        origin = self._ships_from(parcel, warehouse)
        done = all(left[sku] == parcel.get(sku, 0) for sku in left)
        shipment = Shipment(shipment_id, unit_lines(parcel), carrier, tracking_number, at, actor, tracking, origin)
        return self.transition(S.SHIPPED if done else S.PARTIALLY_SHIPPED, at=at, actor=actor,
                               reason=f"shipment {shipment_id}",
                               fulfillment_status=FulfillmentStatus.FULFILLED if done else FulfillmentStatus.PARTIAL,
                               shipments=self.shipments + (shipment,))

    def shipment(self, shipment_id: str) -> Shipment | None:
        return next((s for s in self.shipments if s.shipment_id == shipment_id), None)

    def with_shipment(self, shipment: Shipment, *, at: str) -> Order:
        """The order with one parcel replaced (tracking news, a booked waybill): a new version, no transition."""
        shipments = tuple(shipment if s.shipment_id == shipment.shipment_id else s for s in self.shipments)
        return replace(self, shipments=shipments, updated_at=at, version=self.version + 1)

    def last_transition_to(self, status: OrderStatus) -> HistoryEntry | None:
        return next((h for h in reversed(self.history) if h.to_status == status.value), None)

    def done_by(self, status: OrderStatus, actor: str) -> bool:
        """This order is `status` because `actor` made it so: a retried request finds its own work done."""
        last = self.last_transition_to(status)
        return self.status is status and last is not None and last.actor == actor

    def transition(self, to: OrderStatus, *, at: str, actor: str, reason: str, **changes) -> Order:
        if to not in ALLOWED_TRANSITIONS[self.status]:
            raise InvalidTransition(
                f"order {self.order_id} is {self.status.value}; it cannot become {to.value}",
                {"order_id": self.order_id, "current_status": self.status.value, "requested_status": to.value},
            )
        if to is S.COMPLETED and self.open_after_sales > 0:
            raise InvalidTransition(
                f"order {self.order_id} has an open after-sales request; it completes once that is closed",
                {"order_id": self.order_id, "current_status": self.status.value, "requested_status": to.value,
                 "open_after_sales": self.open_after_sales})
        entry = HistoryEntry(at, actor, self.status.value, to.value, reason)
        if to is S.PAID and self.all_virtual:  # virtual goods: delivered with the payment, nothing to ship
            changes.setdefault("fulfillment_status", FulfillmentStatus.FULFILLED)
        return replace(
            self,
            status=to,
            updated_at=at,
            history=self.history + (entry,),
            version=self.version + 1,
            **changes,
        )


def sum_lines(lines) -> dict[str, int]:
    """Units per SKU over {"sku", "quantity"} dicts (after-sales summaries; value objects use values.sum_units)."""
    total: dict[str, int] = {}
    for line in lines:
        total[line["sku"]] = total.get(line["sku"], 0) + line["quantity"]
    return total
