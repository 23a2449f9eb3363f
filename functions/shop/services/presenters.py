"""JSON views of domain objects, as the API returns them."""

from __future__ import annotations

from dataclasses import fields
from enum import Enum
from typing import Any

from shop.domain.after_sales import AfterSale
from shop.domain.availability import EXACT, DisplayRule, shown_availability
from shop.domain.orders import HistoryEntry, Order, OrderStatus
from shop.domain.parcels import ParcelTracking
from shop.domain.skus import Sku, StockLevels
from shop.domain.stock import StockMovement
from shop.domain.values import Refund, Shipment
from shop.domain.virtual import is_day_item
from shop.domain.warehouses import (
    LOCATIONS_PER_STATE,
    StockState,
    Warehouses,
    is_sellable,
    location_of,
    shard_of,
    state_of,
    warehouse_index_of,
)
from shop.services import pools

# What a customer is told about a held order, instead of the risk rule or check that held it.
UNDER_REVIEW = "under_review"
# Actors a customer may see by name: the customer, the payment provider, the system's own jobs.
# Anyone else (operators: "admin:<sub>") is shown as OPERATOR.
CUSTOMER_VISIBLE_ACTORS = ("customer:", "provider:", "system:")
OPERATOR = "operator"
# The refund fields a customer sees. An allow-list: the actor, the operator's note (`reason`), provider
# ids, attempts, errors, restock details and any field added later stay in the admin view.
CUSTOMER_REFUND_FIELDS = ("refund_id", "amount", "currency", "lines", "status", "at", "automatic")


def _customer_actor(actor: Any) -> str:
    return actor if isinstance(actor, str) and actor.startswith(CUSTOMER_VISIBLE_ACTORS) else OPERATOR


def _customer_history_entry(entry: HistoryEntry) -> dict[str, Any]:
    shown = {**entry.to_dict(), "actor": _customer_actor(entry.actor)}
    if entry.to_status == OrderStatus.ON_HOLD.value:
        shown["reason"] = UNDER_REVIEW  # never the rule, threshold or amounts that held it
    return shown


def refund_view(refund: Refund) -> dict[str, Any]:
    """A refund as operators see it: every field."""
    return refund.to_dict()


def _customer_refund(refund: Refund) -> dict[str, Any]:
    full = refund_view(refund)
    return {name: full[name] for name in CUSTOMER_REFUND_FIELDS}


def tracking_view(tracking: ParcelTracking) -> dict[str, Any]:
    """A followed parcel's booking and polling state as operators see it: every attribute but the checkpoints."""
    return {field.name: _plain(getattr(tracking, field.name))
            for field in fields(tracking) if field.name != "checkpoints"}


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def shipment_view(shipment: Shipment, *, for_customer: bool = False) -> dict[str, Any]:
    """A parcel as the API and its events show it (a customer sees operators anonymously)."""
    shown: dict[str, Any] = {"shipment_id": shipment.shipment_id,
                             "lines": [{"sku": line.sku, "quantity": line.quantity} for line in shipment.lines],
                             "carrier": shipment.carrier, "tracking_number": shipment.tracking_number,
                             "at": shipment.at, "warehouse": shipment.warehouse}
    if shipment.actor is not None:  # parcels recorded before actors were kept show none
        shown["actor"] = _customer_actor(shipment.actor) if for_customer else shipment.actor
    # Courier status (docs/fulfilment.md); None for a free-text parcel nobody tracks.
    tracking = shipment.tracking
    shown.update({"status": _plain(tracking.status) if tracking else None,
                  "carrier_code": tracking.carrier_code if tracking else None,
                  "status_changed_at": tracking.status_changed_at if tracking else None,
                  "checkpoints": [{"at": c.at, "status": c.status.value, "description": c.description,
                                   "location": c.location} for c in tracking.checkpoints] if tracking else []})
    if not for_customer and tracking:  # operators also see the booking and polling state
        shown["tracking"] = tracking_view(tracking)
    return shown


def admin_shipment_view(shipment: Shipment) -> dict[str, Any]:
    """A parcel for operators, with its label as a short-lived presigned URL (None without a label)."""
    from shop.carriers.labels import url

    return {**shipment_view(shipment), "label_url": url(shipment.tracking.label_key if shipment.tracking else None)}


def order_view(order: Order) -> dict[str, Any]:
    """The order as its customer sees it: a held order is under review (not why), operators are
    anonymous, refunds show only what the customer needs. admin_order_view keeps everything."""
    return {
        **_full_order_view(order),
        "history": [_customer_history_entry(entry) for entry in order.history],
        "refunds": [_customer_refund(refund) for refund in order.refunds],
        "hold_reason": UNDER_REVIEW if order.status is OrderStatus.ON_HOLD else None,
        "shipments": [shipment_view(shipment, for_customer=True) for shipment in order.shipments],
        "after_sales": customer_after_sales(order),
    }


def _refund_of(order: Order, refund_id: str | None) -> dict[str, Any] | None:
    entry = next((r for r in order.refunds if refund_id and r.refund_id == refund_id), None)
    return _customer_refund(entry) if entry else None


def customer_after_sales(order: Order) -> list[dict[str, Any]]:
    """The order's after-sales requests as its customer sees them: status, units, and the refund they made."""
    return [{**{k: v for k, v in summary.items() if k != "refund_id"}, "refund": _refund_of(order, summary.get("refund_id"))}
            for summary in order.after_sales]


def after_sale_view(sale: AfterSale, order: Order, *, uploads: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One request as its customer sees it (operators anonymous, the evidence as a count)."""
    shown = {
        "after_sale_id": sale.after_sale_id, "order_id": sale.order_id, "type": sale.type.value,
        "status": sale.status.value, "lines": [{"sku": s, "quantity": q} for s, q in sale.lines],
        "reason": sale.reason, "photos": len(sale.photo_keys), "source": sale.source,
        "decision_reason": sale.decision_reason, "created_at": sale.created_at, "updated_at": sale.updated_at,
        "refund": _refund_of(order, sale.refund_id),
        "history": [{**h, "actor": _customer_actor(h.get("actor"))} for h in sale.history],
    }
    if uploads is not None:
        shown["uploads"] = uploads
    return shown


def admin_after_sale_view(sale: AfterSale, order: Order, photo_urls: list[str] | None = None) -> dict[str, Any]:
    """Everything, with short-lived links to the evidence photos when the bucket is configured."""
    urls: list[str | None] = list(photo_urls) if photo_urls else [None] * len(sale.photo_keys)
    types: list[str | None] = list(sale.photo_types) or [None] * len(sale.photo_keys)
    return {
        **after_sale_view(sale, order),
        "customer_id": sale.customer_id, "shipment_id": sale.shipment_id, "version": sale.version,
        "photos": [{"key": key, "content_type": kind, "url": url}
                   for key, kind, url in zip(sale.photo_keys, types, urls, strict=False)],
        "history": list(sale.history),
        "refund": next((refund_view(r) for r in order.refunds if sale.refund_id and r.refund_id == sale.refund_id),
                       None),
        "order_status": order.status.value, "open_after_sales": order.open_after_sales,
    }


def _full_order_view(order: Order) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "order_number": order.order_number,
        "status": order.status.value,
        "payment_status": order.payment_status.value,
        "fulfillment_status": order.fulfillment_status.value,
        "currency": order.currency,
        "lines": [
            {
                "sku": line.sku,
                "name": line.name,
                "quantity": line.quantity,
                "unit_price": line.unit_price.to_dict(),
                "line_total": line.line_total.to_dict(),
                # Where the line's units are held and ship from (empty until stock is taken for it).
                "ships_from": [{"warehouse": code, "quantity": units}
                               for code, units in line.units_by_warehouse().items()],
                # Units waiting for stock (sold beyond what the shop had: they ship once it arrives).
                "backordered": order.backordered_units().get(line.sku, 0),
                # A presale line ships around this date; virtual goods never ship.
                "presale": {"ships_on": line.presale_ships_on} if line.presale_ships_on else None,
                "virtual": line.virtual,
            }
            for line in order.lines
        ],
        "total": order.total.to_dict(),
        "payment_provider": order.payment_provider,
        "payment": order.payment,
        "shipping_address": order.shipping_address,
        "created_at": order.created_at,
        "updated_at": order.updated_at,
        "expires_at": order.expires_at,
        "history": [entry.to_dict() for entry in order.history],
        "amount_paid": {"amount": order.amount_paid, "currency": order.currency},
        "amount_refunded": {"amount": order.amount_refunded, "currency": order.currency},
        "refunds": [refund_view(refund) for refund in order.refunds],
        "hold_reason": order.hold_reason,
        "shipments": [shipment_view(shipment) for shipment in order.shipments],
        # The same summary shape as the customer's (the OpenAPI OrderOut requires `refund`), with the ids kept.
        "after_sales": [{**summary, "refund": next((refund_view(r) for r in order.refunds
                                                     if summary.get("refund_id") and r.refund_id == summary["refund_id"]),
                                                    None)}
                        for summary in order.after_sales],
        "open_after_sales": order.open_after_sales,
    }


def admin_order_view(order: Order) -> dict[str, Any]:
    return {**_full_order_view(order), "customer_id": order.customer_id, "complete_after": order.complete_after,
            "shipments": [admin_shipment_view(shipment) for shipment in order.shipments]}


def public_sku_view(sku: Sku, display: DisplayRule = EXACT) -> dict[str, Any]:
    """What storefronts see (GET /skus/{sku}): `available` is null when the shop's availability display hides
    the count (shop.domain.availability); operators' views pass nothing and see the exact count. A virtual SKU's
    count is what its caps still allow (today's included: pools.with_today)."""
    virtual = pools.virtual_available(sku)
    shown = shown_availability(sku.levels.available if virtual is None else virtual, sku.low_stock_threshold, display)
    presale = pools.presale_view(sku)
    if presale is not None:  # the presale pool's count follows the same display rule
        presale["available"] = shown_availability(presale["available"], sku.low_stock_threshold, display).available
    return {
        "sku": sku.sku,
        "name": sku.name,
        "price": sku.price.to_dict(),
        "available": shown.available,
        "availability": shown.availability,
        "stock_policy": sku.stock_policy.value,
        "max_per_order": sku.max_per_order,
        "kind": "physical" if sku.virtual is None else "virtual",
        "presale": presale,  # apart from spot availability; None without a presale
        # Units that may still be ordered beyond `available`, to ship once stock arrives (the count follows the
        # display rule); None when the SKU takes no backorders.
        "backorder": {"available": shown_availability(allowance.available, None, display).available}
        if sku.takes_backorders and (allowance := sku.backorder) is not None else None,
    }


def admin_sku_view(sku: Sku, registry: Warehouses | None = None) -> dict[str, Any]:
    known = registry or Warehouses()
    per_location: dict[int, StockLevels] = {place: StockLevels() for place in sku.locations}
    for item, levels in sku.shard_levels.items():
        if is_day_item(item):
            continue  # a virtual SKU's day: shown as its available units (public view)
        per_location[location_of(item)] = per_location.get(location_of(item), StockLevels()) + levels
    sellable = [(place, levels) for place, levels in per_location.items() if place < LOCATIONS_PER_STATE]
    held_back = [(place, levels) for place, levels in per_location.items() if place >= LOCATIONS_PER_STATE]
    return {
        **public_sku_view(sku),
        "active": sku.active,
        "low_stock_threshold": sku.low_stock_threshold,
        "payment_window_seconds": sku.payment_window_seconds,
        "levels": sku.levels.to_dict(),
        # The state last recorded (and announced by stock.low / stock.sold_out): what ?low_stock= filters on;
        # `availability` is computed from the levels just read.
        "stock_state": sku.stock_state,
        "stock_shards": sku.stock_shards,
        "backorder_limit": sku.backorder_limit,
        "backordered": sku.backorder.reserved if sku.backorder else 0,  # units sold and waiting for stock
        "warehouses": [{"warehouse": known.code_of(place), **levels.to_dict()} for place, levels in sellable],
        # Units in other states (presale, safety, damaged, quality hold, incoming, in transit): not sellable.
        "other_states": [{"warehouse": known.code_of(place % LOCATIONS_PER_STATE),
                          "state": StockState(place // LOCATIONS_PER_STATE).name.lower(), **levels.to_dict()}
                         for place, levels in held_back],
        "shards": [{"shard": shard_of(n), "warehouse": known.code_of(warehouse_index_of(n)),
                    "live": shard_of(n) < sku.stock_shards, **levels.to_dict()}
                   for n, levels in sorted(sku.shard_levels.items()) if is_sellable(n)],
        "presale_terms": {**sku.presale.to_dict(), "warehouse": known.code_of(sku.presale.warehouse)}
        if sku.presale else None,
        "virtual": sku.virtual.to_dict() if sku.virtual else None,
        "created_at": sku.created_at,
        "updated_at": sku.updated_at,
    }


def movement_view(movement: StockMovement, registry: Warehouses | None = None) -> dict[str, Any]:
    """A ledger entry; `shard` is the shard within `warehouse`'s stock in `state`."""
    return {**movement.to_dict(), "shard": shard_of(movement.shard),
            "warehouse": (registry or Warehouses()).code_of(warehouse_index_of(movement.shard)),
            "state": state_of(movement.shard).name.lower()}
