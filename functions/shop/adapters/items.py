"""Mapping between domain objects and DynamoDB items (plain dicts, before type encoding)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from shop.adapters.table_schema import INDEX_SHARDS
from shop.domain.after_sales import AfterSale, AfterSaleStatus, AfterSaleType
from shop.domain.cart_holds import CartHold, HoldLine, HoldStatus
from shop.domain.money import Money
from shop.domain.orders import Allocation, HistoryEntry, Order, OrderLine, OrderStatus
from shop.domain.parcels import Checkpoint, ParcelStatus, ParcelTracking
from shop.domain.presale import PresaleTerms
from shop.domain.skus import Sku, StockLevels, StockPolicy
from shop.domain.statuses import BookingStatus, FulfillmentStatus, PaymentStatus, RefundStatus
from shop.domain.stock import StockMovement
from shop.domain.stock_documents import DocumentKind, StockDocument
from shop.domain.values import HeldPayment, Refund, Shipment, UnitLine
from shop.domain.virtual import VirtualTerms
from shop.domain.warehouses import MAIN_WAREHOUSE, Warehouse, Warehouses
from shop.services import records

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def encode(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in item.items() if v is not None}


def decode(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(_deserializer.deserialize(v)) for k, v in item.items()}


def sku_key(code: str) -> dict[str, str]:
    return {"pk": f"SKU#{code}", "sk": "SKU"}


def shard_key(code: str, shard: int) -> dict[str, str]:
    """One stock item of a SKU: its own partition, so shards of a hot SKU spread over partitions."""
    return {"pk": f"STOCK#{code}#{shard}", "sk": "STOCK"}


def ledger_partition(code: str, shard: int) -> str:
    """The ledger of one shard: written at the shard's rate, next to nothing else."""
    return f"LEDGER#{code}#{shard}"


def ledger_key(movement: StockMovement) -> dict[str, str]:
    return {"pk": ledger_partition(movement.sku, movement.shard), "sk": f"{movement.at}#{movement.movement_id}"}


def order_key(order_id: str) -> dict[str, str]:
    return {"pk": f"ORDER#{order_id}", "sk": "ORDER"}


def order_number_key(order_number: str) -> dict[str, str]:
    return {"pk": f"ORDERNO#{order_number}", "sk": "ORDERNO"}


def holds_key(customer_id: str) -> dict[str, str]:
    """A customer's unpaid holdings: `unpaid_orders` and `u#{sku}` reserved units (anti-hoarding caps)."""
    return {"pk": f"CUSTOMER#{customer_id}", "sk": "HOLDS"}


def idempotency_key(customer_id: str, key: str) -> dict[str, str]:
    return {"pk": f"IDEMPOTENCY#{customer_id}#{key}", "sk": "IDEMPOTENCY"}


WAREHOUSES_KEY = {"pk": "WAREHOUSES", "sk": "REGISTRY"}


def warehouses_to_item(registry: Warehouses) -> dict[str, Any]:
    """The shop's warehouses, one record (a handful of them, edited rarely), with its version."""
    return {**WAREHOUSES_KEY, "entity": "WAREHOUSES", "version": registry.version + 1, "warehouses": {
        w.code: {"index": w.index, "name": w.name, "country": w.country, "serves": list(w.serves),
                 "priority": w.priority, "address": w.address, "active": w.active}
        for w in registry.by_code.values()}}


def warehouses_from_item(item: dict[str, Any] | None) -> Warehouses:
    if not item:
        return Warehouses()
    return Warehouses({code: Warehouse(code=code, index=int(w["index"]), name=w["name"], country=w["country"],
                                       serves=tuple(w.get("serves") or ()), priority=int(w.get("priority", 100)),
                                       address=dict(w.get("address") or {}), active=bool(w.get("active", True)))
                       for code, w in (item.get("warehouses") or {}).items()}, int(item.get("version", 0)))


def sku_to_item(sku: Sku) -> dict[str, Any]:
    """The catalog entry (no stock: that lives in the shards)."""
    return {
        **sku_key(sku.sku),
        "entity": "SKU",
        "sku": sku.sku,
        "name": sku.name,
        "price_amount": sku.price.amount,
        "currency": sku.price.currency,
        "active": sku.active,
        "stock_policy": sku.stock_policy.value,
        "max_per_order": sku.max_per_order,
        "low_stock_threshold": sku.low_stock_threshold,
        "payment_window_seconds": sku.payment_window_seconds,
        "stock_shards": sku.stock_shards,
        "backorder_limit": sku.backorder_limit,
        "shard_items": sku.shard_items,
        "locations": list(sku.locations),
        "presale": sku.presale.to_dict() if sku.presale else None,
        "virtual": sku.virtual.to_dict() if sku.virtual else None,
        "stock_state": sku.stock_state,
        "backorder_read_from": sku.backorder_read_from,
        "created_at": sku.created_at,
        "updated_at": sku.updated_at,
        **sku_state_index(sku.sku, sku.stock_state),
    }


def sku_from_item(item: dict[str, Any]) -> Sku:
    return Sku(
        sku=item["sku"],
        name=item["name"],
        price=Money(item["price_amount"], item["currency"]),
        active=bool(item.get("active", True)),
        stock_policy=StockPolicy(item.get("stock_policy", StockPolicy.RESERVE_ON_ORDER.value)),
        max_per_order=item.get("max_per_order"),
        low_stock_threshold=item.get("low_stock_threshold"),
        payment_window_seconds=item.get("payment_window_seconds"),
        stock_shards=item.get("stock_shards", 1),
        backorder_limit=int(item.get("backorder_limit") or 0),
        shard_items=item.get("shard_items", 1),
        locations=tuple(int(w) for w in item.get("locations") or (0,)),
        presale=PresaleTerms.from_dict(item["presale"]) if item.get("presale") else None,
        virtual=VirtualTerms.from_dict(item["virtual"]) if item.get("virtual") else None,
        stock_state=item.get("stock_state", "in_stock"),
        backorder_read_from=item.get("backorder_read_from"),
        created_at=item.get("created_at", ""),
        updated_at=item.get("updated_at", ""),
    )


def shard_levels_from_item(item: dict[str, Any]) -> StockLevels:
    return StockLevels(item.get("on_hand", 0), item.get("available", 0), item.get("reserved", 0), item.get("sold", 0))


def movement_to_item(movement: StockMovement) -> dict[str, Any]:
    return {**ledger_key(movement), "entity": "LEDGER", **movement.to_dict()}


def movement_from_item(item: dict[str, Any]) -> StockMovement:
    return StockMovement(sku=item["sku"], shard=item.get("shard", 0), at=item["at"], actor=item["actor"],
                         reason=item["reason"], order_id=item.get("order_id"), delta=StockLevels(**item["delta"]),
                         movement_id=item.get("movement_id", ""), reference=item.get("reference"))


def _lines_to_record(lines: tuple[UnitLine, ...]) -> list[dict[str, Any]]:
    return [{"sku": line.sku, "quantity": line.quantity} for line in lines]


def _lines_from_record(lines: list[dict[str, Any]] | None) -> tuple[UnitLine, ...]:
    return tuple(UnitLine(line["sku"], line["quantity"]) for line in lines or ())


def shipment_to_record(shipment: Shipment) -> dict[str, Any]:
    """A parcel on the order item: {shipment_id, lines: [{sku, quantity}], carrier, tracking_number, at, actor,
    tracking} (`actor` absent on parcels recorded before actors were kept, `tracking` on free-text parcels)."""
    record: dict[str, Any] = {"shipment_id": shipment.shipment_id, "lines": _lines_to_record(shipment.lines),
                              "carrier": shipment.carrier, "tracking_number": shipment.tracking_number,
                              "at": shipment.at}
    if shipment.actor is not None:
        record["actor"] = shipment.actor
    if shipment.warehouse != MAIN_WAREHOUSE:
        record["warehouse"] = shipment.warehouse
    if shipment.tracking is not None:
        record["tracking"] = parcel_tracking_to_record(shipment.tracking)
    return record


def shipment_from_record(record: dict[str, Any]) -> Shipment:
    return Shipment(shipment_id=record["shipment_id"], lines=_lines_from_record(record.get("lines")),
                    carrier=record.get("carrier"), tracking_number=record.get("tracking_number"),
                    at=record.get("at", ""), actor=record.get("actor"),
                    tracking=parcel_tracking_from_record(record.get("tracking")),
                    warehouse=record.get("warehouse") or MAIN_WAREHOUSE)


def parcel_tracking_to_record(tracking: ParcelTracking) -> dict[str, Any]:
    """A followed parcel's `tracking` map: every attribute written, null when not known (one format)."""
    return {
        "booking": tracking.booking.value, "status": tracking.status.value if tracking.status else None,
        "status_changed_at": tracking.status_changed_at, "tracking_started_at": tracking.tracking_started_at,
        "carrier_code": tracking.carrier_code, "checkpoints": [_checkpoint_to_record(c) for c in tracking.checkpoints],
        "last_checkpoint_at": tracking.last_checkpoint_at, "refused": tracking.refused,
        "stale_reason": tracking.stale_reason, "quiet_polls": tracking.quiet_polls, "polls": tracking.polls,
        "last_polled_at": tracking.last_polled_at, "last_poll_error": tracking.last_poll_error,
        "booking_attempts": tracking.booking_attempts, "booking_error": tracking.booking_error,
        "label_key": tracking.label_key, "subscribed": tracking.subscribed, "shipped_event": tracking.shipped_event}


def parcel_tracking_from_record(record: dict[str, Any] | None) -> ParcelTracking | None:
    """Reads the maps written before this format too: there an attribute not yet set was absent (`polls` before
    the first poll, `booking_error` once booked, `subscribed` until subscribed) or null (`label_key` of a waybill
    booked without a label); both read as not known."""
    if not record:
        return None
    return ParcelTracking(
        # Every map ever written has a booking; one without would be a parcel followed with a given tracking number.
        booking=BookingStatus(record.get("booking") or BookingStatus.BOOKED),
        status=ParcelStatus(record["status"]) if record.get("status") else None,
        status_changed_at=record.get("status_changed_at"), tracking_started_at=record.get("tracking_started_at"),
        carrier_code=record.get("carrier_code"),
        checkpoints=tuple(_checkpoint_from_record(c) for c in record.get("checkpoints") or () if isinstance(c, dict)),
        last_checkpoint_at=record.get("last_checkpoint_at"), refused=bool(record.get("refused")),
        stale_reason=record.get("stale_reason"), quiet_polls=int(record.get("quiet_polls") or 0),
        polls=int(record.get("polls") or 0), last_polled_at=record.get("last_polled_at"),
        last_poll_error=record.get("last_poll_error"), booking_attempts=int(record.get("booking_attempts") or 0),
        booking_error=record.get("booking_error"), label_key=record.get("label_key"),
        subscribed=bool(record.get("subscribed")), shipped_event=record.get("shipped_event"))


def _checkpoint_to_record(checkpoint: Checkpoint) -> dict[str, Any]:
    return {"checkpoint_id": checkpoint.checkpoint_id, "at": checkpoint.at, "status": checkpoint.status.value,
            "description": checkpoint.description, "location": checkpoint.location, "refused": checkpoint.refused,
            "raw_code": checkpoint.raw_code}


def _checkpoint_from_record(record: dict[str, Any]) -> Checkpoint:
    return Checkpoint(at=record["at"], status=ParcelStatus(record["status"]),
                      description=record.get("description") or "", location=record.get("location") or "", refused=bool(record.get("refused")),
                      raw_code=record.get("raw_code") or "", checkpoint_id=record.get("checkpoint_id") or "")


def refund_to_record(refund: Refund) -> dict[str, Any]:
    """A refund on the order item (the attributes written since refunds became a saga): its fields as they are."""
    return refund.to_dict()


def refund_from_record(record: dict[str, Any], order_currency: str) -> Refund:
    """Also reads entries written before the saga: no status (they were recorded once refunded), no
    currency (the order's), `restock: true` instead of the units put back."""
    lines = _lines_from_record(record.get("lines"))
    restocked = (_lines_from_record(record["restocked"]) if "restocked" in record
                 else lines if record.get("restock") else ())
    return Refund(
        refund_id=record["refund_id"], amount=int(record["amount"]), currency=record.get("currency") or order_currency,
        lines=lines, restocked=restocked, reason=record.get("reason", ""), at=record.get("at", ""),
        actor=record.get("actor", ""), automatic=bool(record.get("automatic")),
        status=RefundStatus(record.get("status", RefundStatus.SUCCEEDED)), provider=record.get("provider"),
        provider_payment_id=record.get("provider_payment_id"), captured=record.get("captured"),
        provider_refund_id=record.get("provider_refund_id"), attempts=int(record.get("attempts") or 0),
        last_error=record.get("last_error"), last_attempt_at=record.get("last_attempt_at"),
        completed_at=record.get("completed_at"), after_sale_id=record.get("after_sale_id"))


def held_payment_to_record(held: HeldPayment) -> dict[str, Any]:
    """{"amount": {"amount", "currency"}, "provider_payment_id"} on the order item."""
    return {"amount": held.amount.to_dict(), "provider_payment_id": held.provider_payment_id}


def held_payment_from_record(record: dict[str, Any]) -> HeldPayment:
    return HeldPayment(Money(int(record["amount"]["amount"]), record["amount"]["currency"]),
                       record.get("provider_payment_id"))


def index_shard(order_id: str) -> int:
    """The order's (or SKU's) shard of the shop-wide indexes: a hash that is the same in every process
    (unlike Python's salted hash()), so a rewrite of the item keeps it in the same partition."""
    digest = hashlib.blake2b(order_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % INDEX_SHARDS


# ---- index partitions of the listings (the key formats of table_schema's indexes) -------------------

def customer_orders_partition(customer_id: str, status: str | None = None) -> tuple[str, str]:
    """(index, partition) of one customer's orders, or of those in one status: not hot, not sharded."""
    return ("gsi5", f"CUSTOMER#{customer_id}#{status}") if status else ("gsi1", f"CUSTOMER#{customer_id}")


def shop_orders_partitions(status: str | None = None) -> tuple[str, str, list[str]]:
    """(index, listing name, partitions) of every order, or those in one status: sharded, read by fan-out."""
    index, base = ("gsi2", f"STATUS#{status}") if status else ("gsi3", "ORDERS")
    return index, base, [f"{base}#{n}" for n in range(INDEX_SHARDS)]


def phone_orders_partition(phone_digest: str) -> tuple[str, str]:
    return "gsi6", f"PHONE#{phone_digest}"


def sku_list_partitions(state: str | None = None) -> tuple[str, str, list[str]]:
    """(index, listing name, partitions) of the catalog, or of the SKUs in one recorded stock state."""
    index, base = ("gsi2", f"SKUSTATE#{state}") if state else ("gsi3", "SKUS")
    return index, base, [f"{base}#{n}" for n in range(INDEX_SHARDS)]


def sku_state_index(code: str, state: str) -> dict[str, str]:
    """The catalog entry's keys in the SKU lists (gsi3: all, gsi2: by recorded stock state)."""
    shard, sort = index_shard(code), f"SKU#{code}"
    return {"gsi3pk": f"SKUS#{shard}", "gsi3sk": sort, "gsi2pk": f"SKUSTATE#{state}#{shard}", "gsi2sk": sort}


def order_to_item(order: Order) -> dict[str, Any]:
    sort = f"{order.created_at}#{order.order_id}"
    shard = index_shard(order.order_id)
    refund_pending_since = min((r.at or order.updated_at for r in order.refunds if r.pending), default=None)
    return {
        **order_key(order.order_id),
        "entity": "ORDER",
        "order_id": order.order_id,
        "order_number": order.order_number,
        "customer_id": order.customer_id,
        "status": order.status.value,
        "payment_status": order.payment_status.value,
        "fulfillment_status": order.fulfillment_status.value,
        "currency": order.currency,
        "total_amount": order.total.amount,
        "lines": [
            {
                "sku": line.sku,
                "name": line.name,
                "quantity": line.quantity,
                "unit_amount": line.unit_price.amount,
                "stock_policy": line.stock_policy.value,
                "allocations": [{"shard": a.item, "quantity": a.units, "warehouse": a.warehouse}
                                for a in line.allocations] or None,
                **({"presale_ships_on": line.presale_ships_on} if line.presale_ships_on else {}),
                **({"virtual": True} if line.virtual else {}),
            }
            for line in order.lines
        ],
        "payment_provider": order.payment_provider,
        "shipping_address": order.shipping_address,
        "payment": order.payment or None,
        "created_at": order.created_at,
        "updated_at": order.updated_at,
        "expires_at": order.expires_at,
        "history": [h.to_dict() for h in order.history],
        "amount_paid": order.amount_paid,
        "amount_refunded": order.amount_refunded,
        "provider_payment_id": order.provider_payment_id,
        "refunds": [refund_to_record(r) for r in order.refunds] or None,
        "hold_reason": order.hold_reason,
        "client_ip_hash": order.client_ip_hash,
        "held_payment": held_payment_to_record(order.held_payment) if order.held_payment else None,
        "shipments": [shipment_to_record(s) for s in order.shipments] or None,
        "after_sales": list(order.after_sales) or None,
        "open_after_sales": order.open_after_sales,
        "phone_digest": order.phone_digest,
        "complete_after": order.complete_after,
        "version": order.version,
        "gsi1pk": f"CUSTOMER#{order.customer_id}",
        "gsi1sk": sort,
        # Shop-wide indexes: spread over INDEX_SHARDS partition key values (no hot partition).
        "gsi2pk": f"STATUS#{order.status.value}#{shard}",
        "gsi2sk": sort,
        "gsi3pk": f"ORDERS#{shard}",
        "gsi3sk": sort,
        # One customer's orders in one status (the customer's and operators' status filter, exact).
        "gsi5pk": f"CUSTOMER#{order.customer_id}#{order.status.value}",
        "gsi5sk": sort,
        # Sparse gsi6: orders with a phone, keyed by its keyed digest (never the number).
        **({"gsi6pk": f"PHONE#{order.phone_digest}", "gsi6sk": sort} if order.phone_digest else {}),
        # Sparse gsi4, read by the sweeper: unpaid orders by expiry, else orders with a pending
        # refund by the time of the oldest one (an unpaid order has no refunds).
        **({"gsi4pk": f"PENDING_PAYMENT#{shard}", "gsi4sk": f"{order.expires_at}#{order.order_id}"}
           if order.status is OrderStatus.PENDING_PAYMENT else
           {"gsi4pk": f"REFUND_PENDING#{shard}", "gsi4sk": f"{refund_pending_since}#{order.order_id}"}
           if refund_pending_since else
           # A delivered order waiting out its confirmation period, unless an after-sales request is open.
           {"gsi4pk": f"COMPLETION_DUE#{shard}", "gsi4sk": f"{order.complete_after}#{order.order_id}"}
           if order.status is OrderStatus.DELIVERED and order.complete_after and not order.open_after_sales else {}),
    }


def order_from_item(item: dict[str, Any]) -> Order:
    currency = item["currency"]
    return Order(
        order_id=item["order_id"],
        order_number=item["order_number"],
        customer_id=item["customer_id"],
        status=OrderStatus(item["status"]),
        lines=tuple(
            OrderLine(
                sku=line["sku"],
                name=line["name"],
                quantity=line["quantity"],
                unit_price=Money(line["unit_amount"], currency),
                stock_policy=StockPolicy(line.get("stock_policy", StockPolicy.RESERVE_ON_ORDER.value)),
                allocations=tuple(Allocation(int(a["shard"]), int(a["quantity"]), a.get("warehouse") or MAIN_WAREHOUSE)
                                  for a in line.get("allocations") or ()),
                presale_ships_on=line.get("presale_ships_on"),
                virtual=bool(line.get("virtual", False)),
            )
            for line in item["lines"]
        ),
        currency=currency,
        payment_provider=item["payment_provider"],
        shipping_address=item.get("shipping_address", {}),
        created_at=item["created_at"],
        updated_at=item["updated_at"],
        expires_at=item["expires_at"],
        payment_status=PaymentStatus(item.get("payment_status", PaymentStatus.UNPAID)),
        fulfillment_status=FulfillmentStatus(item.get("fulfillment_status", FulfillmentStatus.UNFULFILLED)),
        history=tuple(
            HistoryEntry(h["at"], h["actor"], h.get("from"), h["to"], h["reason"]) for h in item.get("history", [])
        ),
        payment=item.get("payment") or {},
        amount_paid=item.get("amount_paid", 0),
        amount_refunded=item.get("amount_refunded", 0),
        provider_payment_id=item.get("provider_payment_id"),
        refunds=tuple(refund_from_record(r, currency) for r in item.get("refunds") or ()),
        hold_reason=item.get("hold_reason"),
        client_ip_hash=item.get("client_ip_hash"),
        held_payment=held_payment_from_record(item["held_payment"]) if item.get("held_payment") else None,
        shipments=tuple(shipment_from_record(s) for s in item.get("shipments") or ()),
        after_sales=tuple(item.get("after_sales") or ()),
        open_after_sales=int(item.get("open_after_sales") or 0),
        phone_digest=item.get("phone_digest"),
        complete_after=item.get("complete_after"),
        version=item["version"],
    )


def after_sale_key(after_sale_id: str) -> dict[str, str]:
    return {"pk": f"AFTERSALE#{after_sale_id}", "sk": "AFTERSALE"}


AFTER_SALES_BY_STATUS = "AFTERSALES"  # gsi2 partition prefix of the operators' listing (see table_schema)


def after_sale_to_item(sale: AfterSale) -> dict[str, Any]:
    shard = index_shard(sale.after_sale_id)
    sort = f"{sale.created_at}#{sale.after_sale_id}"
    return {
        **after_sale_key(sale.after_sale_id),
        "entity": "AFTERSALE",
        "after_sale_id": sale.after_sale_id,
        "order_id": sale.order_id,
        "customer_id": sale.customer_id,
        "type": sale.type.value,
        "status": sale.status.value,
        "lines": [{"sku": s, "quantity": q} for s, q in sale.lines],
        "reason": sale.reason,
        "created_at": sale.created_at,
        "updated_at": sale.updated_at,
        "photo_keys": list(sale.photo_keys) or None,
        "photo_types": list(sale.photo_types) or None,
        "source": sale.source,
        "shipment_id": sale.shipment_id,
        "request_hash": sale.request_hash,
        "refund_id": sale.refund_id,
        "decision_reason": sale.decision_reason,
        "history": list(sale.history),
        "version": sale.version,
        # The operators' listings share the order indexes under their own partition values, sharded the same way:
        # gsi2 by status, gsi3 all requests; newest first by "{created_at}#{after_sale_id}".
        "gsi2pk": f"{AFTER_SALES_BY_STATUS}#{sale.status.value}#{shard}",
        "gsi2sk": sort,
        "gsi3pk": f"{AFTER_SALES_BY_STATUS}#{shard}",
        "gsi3sk": sort,
    }


def after_sale_from_item(item: dict[str, Any]) -> AfterSale:
    return AfterSale(
        after_sale_id=item["after_sale_id"],
        order_id=item["order_id"],
        customer_id=item["customer_id"],
        type=AfterSaleType(item["type"]),
        status=AfterSaleStatus(item["status"]),
        lines=tuple((line["sku"], int(line["quantity"])) for line in item["lines"]),
        reason=item.get("reason", ""),
        created_at=item["created_at"],
        updated_at=item["updated_at"],
        photo_keys=tuple(item.get("photo_keys") or ()),
        photo_types=tuple(item.get("photo_types") or ()),
        source=item.get("source", "customer"),
        shipment_id=item.get("shipment_id"),
        request_hash=item.get("request_hash"),
        refund_id=item.get("refund_id"),
        decision_reason=item.get("decision_reason"),
        history=tuple(item.get("history") or ()),
        version=int(item["version"]),
    )


# ---- cart holds (domain/cart_holds.py) --------------------------------------------------------------

CART_HOLDS_DUE = "CART_HOLD_DUE"  # gsi4 partitions of active holds by expiry (the sweeper's backstop)


def cart_hold_key(hold_id: str) -> dict[str, str]:
    return {"pk": f"CARTHOLD#{hold_id}", "sk": "CARTHOLD"}


def _allocations_to_record(allocations: tuple[Allocation, ...]) -> list[dict[str, Any]] | None:
    """As on an order line: {shard (the stock item), quantity, warehouse}."""
    return [{"shard": a.item, "quantity": a.units, "warehouse": a.warehouse} for a in allocations] or None


def _allocations_from_record(record: list[dict[str, Any]] | None) -> tuple[Allocation, ...]:
    return tuple(Allocation(int(a["shard"]), int(a["quantity"]), a.get("warehouse") or MAIN_WAREHOUSE)
                 for a in record or ())


def cart_hold_to_item(hold: CartHold) -> dict[str, Any]:
    return {
        **cart_hold_key(hold.hold_id), "entity": "CARTHOLD", "hold_id": hold.hold_id, "cart_id": hold.cart_id,
        "customer_id": hold.customer_id, "status": hold.status.value,
        "lines": [{"sku": line.sku, "quantity": line.quantity, "allocations": _allocations_to_record(line.allocations)}
                  for line in hold.lines],
        "created_at": hold.created_at, "updated_at": hold.updated_at, "expires_at": hold.expires_at,
        "ended_by": hold.ended_by, "version": hold.version,
        # Sparse gsi4 while active, by expiry: the sweeper finds holds whose timer never fired.
        **({"gsi4pk": f"{CART_HOLDS_DUE}#{index_shard(hold.hold_id)}", "gsi4sk": f"{hold.expires_at}#{hold.hold_id}"}
           if hold.active else {}),
    }


def cart_hold_from_item(item: dict[str, Any]) -> CartHold:
    return CartHold(
        hold_id=item["hold_id"], cart_id=item["cart_id"], customer_id=item["customer_id"],
        status=HoldStatus(item["status"]),
        lines=tuple(HoldLine(line["sku"], int(line["quantity"]), _allocations_from_record(line.get("allocations")))
                    for line in item.get("lines") or ()),
        created_at=item["created_at"], updated_at=item["updated_at"], expires_at=item["expires_at"],
        ended_by=item.get("ended_by"), version=int(item["version"]))


# ---- keyed records (services/records.py): written once each, dropped by the table's TTL ------------------

def order_number_to_item(order: Order) -> dict[str, Any]:
    """The order number's uniqueness claim (and lookup by number), written with the new order."""
    return {**order_number_key(order.order_number), "entity": "ORDERNO", "order_id": order.order_id}


def webhook_key(provider: str, event_id: str) -> dict[str, str]:
    return {"pk": f"WEBHOOK#{provider}#{event_id}", "sk": "WEBHOOK"}


def restock_key(message_id: str) -> dict[str, str]:
    return {"pk": f"RESTOCK#{message_id}", "sk": "RESTOCK"}


def adjustment_key(sku: str, request_id: str) -> dict[str, str]:
    return {"pk": f"ADJUSTMENT#{sku}#{request_id}", "sk": "ADJUSTMENT"}


def import_row_key(file_id: str, line: int) -> dict[str, str]:
    return {"pk": f"IMPORT#{file_id}#{line}", "sk": "IMPORT"}


def paid_from_address_partition(ip_hash: str) -> str:
    """Orders paid from one client address, sorted by "{paid_at}#{order_id}"."""
    return f"RISKIP#{ip_hash}"


def reconciliation_key(provider: str, day: date) -> dict[str, str]:
    return {"pk": f"RECON#{provider}#{day.isoformat()}", "sk": "RESULT"}


def record_to_item(record: records.KeyedRecord) -> dict[str, Any]:
    if isinstance(record, records.IdempotentResponse):
        return {**idempotency_key(record.customer_id, record.key), "entity": "IDEMPOTENCY",
                "request_hash": record.request_hash, "status_code": record.status_code, "response": record.response,
                "order_id": record.order_id, "created_at": record.created_at, "ttl": record.expires}
    if isinstance(record, records.WebhookReceipt):
        return {**webhook_key(record.provider, record.event_id), "entity": "WEBHOOK", "provider": record.provider,
                "event_id": record.event_id, "kind": record.kind, "order_id": record.order_id,
                "outcome": record.outcome, "amount": record.amount.to_dict() if record.amount else None,
                "received_at": record.received_at, "ttl": record.expires, **record.detail}
    if isinstance(record, records.RestockApplied):
        return {**restock_key(record.message_id), "entity": "RESTOCK", "sku": record.sku, "quantity": record.quantity,
                "applied_at": record.applied_at, "ttl": record.expires}
    if isinstance(record, records.AdjustmentApplied):
        return {**adjustment_key(record.sku, record.request_id), "entity": "ADJUSTMENT",
                "movements": [m.to_dict() for m in record.movements], "ttl": record.expires}
    if isinstance(record, records.ImportRowApplied):
        return {**import_row_key(record.file_id, record.line), "entity": "IMPORT_ROW", "file_id": record.file_id,
                "line": record.line, "sku": record.sku, "applied_at": record.applied_at, "ttl": record.expires}
    return {"pk": paid_from_address_partition(record.ip_hash), "sk": f"{record.paid_at}#{record.order_id}",
            "entity": "RISK_IP", "order_id": record.order_id, "ttl": record.expires}


def _ttl(item: dict[str, Any]) -> int:
    return int(item.get("ttl") or 0)


def idempotent_response_from_item(item: dict[str, Any], customer_id: str, key: str) -> records.IdempotentResponse:
    return records.IdempotentResponse(customer_id=customer_id, key=key, request_hash=item.get("request_hash", ""),
                                      status_code=int(item["status_code"]), response=item["response"],
                                      order_id=item["order_id"], created_at=item.get("created_at", ""),
                                      expires=_ttl(item))


_WEBHOOK_ATTRIBUTES = {"pk", "sk", "entity", "provider", "event_id", "kind", "order_id", "outcome", "amount",
                       "received_at", "ttl"}


def webhook_receipt_from_item(item: dict[str, Any]) -> records.WebhookReceipt:
    amount = item.get("amount")
    return records.WebhookReceipt(provider=item["provider"], event_id=item["event_id"], kind=item.get("kind", ""),
                                  order_id=item.get("order_id"), outcome=item.get("outcome", ""),
                                  amount=Money(int(amount["amount"]), amount["currency"]) if amount else None,
                                  received_at=item.get("received_at", ""), expires=_ttl(item),
                                  detail={k: v for k, v in item.items() if k not in _WEBHOOK_ATTRIBUTES})


def restock_applied_from_item(item: dict[str, Any], message_id: str) -> records.RestockApplied:
    return records.RestockApplied(message_id=message_id, sku=item.get("sku", ""),
                                  quantity=int(item.get("quantity", 0)), applied_at=item.get("applied_at", ""),
                                  expires=_ttl(item))


def adjustment_applied_from_item(item: dict[str, Any], sku: str, request_id: str) -> records.AdjustmentApplied:
    return records.AdjustmentApplied(sku=sku, request_id=request_id,
                                     movements=tuple(movement_from_item(m) for m in item.get("movements", [])),
                                     expires=_ttl(item))


def holdings_from_item(item: dict[str, Any]) -> records.UnpaidHoldings:
    """`unpaid_orders` and one `u#{sku}` attribute per SKU with reserved units."""
    return records.UnpaidHoldings(int(item.get("unpaid_orders", 0)),
                                  {name.removeprefix("u#"): int(units) for name, units in item.items()
                                   if name.startswith("u#")})


def existing_from_item(item: dict[str, Any], written: records.KeyedRecord | None, label: str) -> Any:
    """What a rejected commit found where it wrote `written` (or, for "holds", the customer's holdings): the
    record found, in domain terms (CommitRejected.existing)."""
    if label == "holds":
        return holdings_from_item(item)
    if label == "document_new":
        return stock_document_from_item(item)
    if isinstance(written, records.IdempotentResponse):
        return idempotent_response_from_item(item, written.customer_id, written.key)
    if isinstance(written, records.WebhookReceipt):
        return webhook_receipt_from_item(item)
    if isinstance(written, records.RestockApplied):
        return restock_applied_from_item(item, written.message_id)
    if isinstance(written, records.AdjustmentApplied):
        return adjustment_applied_from_item(item, written.sku, written.request_id)
    if isinstance(written, (records.PaidFromAddress, records.ImportRowApplied)):
        return replace(written, expires=_ttl(item))
    return item


def stock_document_key(kind: DocumentKind, doc_id: str) -> dict[str, str]:
    return {"pk": f"{kind.value.upper()}#{doc_id}", "sk": kind.value.upper()}


def stock_documents_partition(kind: DocumentKind, listed_under: str) -> str:
    """gsi3 partition of the documents of a kind listed under one key (an open delivery: under its SKU)."""
    return f"OPEN{kind.value.upper()}#{listed_under}"


def stock_document_to_item(document: StockDocument) -> dict[str, Any]:
    listed = ({"gsi3pk": stock_documents_partition(document.kind, document.listed_under),
               "gsi3sk": f"{document.list_sort}#{document.doc_id}"} if document.listed_under else {})
    return {**stock_document_key(document.kind, document.doc_id), "entity": "STOCK_DOCUMENT",
            "kind": document.kind.value, "doc_id": document.doc_id, "status": document.status,
            "version": document.version, "created_at": document.created_at, "updated_at": document.updated_at,
            "actor": document.actor, "body": document.body, "listed_under": document.listed_under,
            "list_sort": document.list_sort, **listed}


def stock_document_from_item(item: dict[str, Any]) -> StockDocument:
    return StockDocument(kind=DocumentKind(item["kind"]), doc_id=item["doc_id"], status=item["status"],
                         version=int(item["version"]), created_at=item.get("created_at", ""),
                         updated_at=item.get("updated_at", ""), actor=item.get("actor", ""),
                         body=dict(item.get("body") or {}), listed_under=item.get("listed_under"),
                         list_sort=item.get("list_sort", ""))


def reconciliation_to_item(provider: str, day: date, result: dict[str, Any]) -> dict[str, Any]:
    return {**reconciliation_key(provider, day), "entity": "RECONCILIATION", **result}


def reconciliation_from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in ("pk", "sk", "entity")}
