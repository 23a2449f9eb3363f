"""JSON views of domain objects, as the API returns them."""

from __future__ import annotations

from typing import Any

from shop.domain.orders import Order
from shop.domain.skus import Sku
from shop.domain.stock import StockMovement


def order_view(order: Order) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "order_number": order.order_number,
        "status": order.status.value,
        "payment_status": order.payment_status,
        "fulfillment_status": order.fulfillment_status,
        "currency": order.currency,
        "lines": [
            {
                "sku": line.sku,
                "name": line.name,
                "quantity": line.quantity,
                "unit_price": line.unit_price.to_dict(),
                "line_total": line.line_total.to_dict(),
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
        "refunds": list(order.refunds),
        "hold_reason": order.hold_reason,
        "shipments": list(order.shipments),
    }


def admin_order_view(order: Order) -> dict[str, Any]:
    return {**order_view(order), "customer_id": order.customer_id}


def public_sku_view(sku: Sku) -> dict[str, Any]:
    available = max(0, sku.levels.available)
    return {
        "sku": sku.sku,
        "name": sku.name,
        "price": sku.price.to_dict(),
        "available": available,
        "availability": sku.availability(),
        "stock_policy": sku.stock_policy.value,
        "max_per_order": sku.max_per_order,
    }


def admin_sku_view(sku: Sku) -> dict[str, Any]:
    return {
        **public_sku_view(sku),
        "active": sku.active,
        "low_stock_threshold": sku.low_stock_threshold,
        "payment_window_seconds": sku.payment_window_seconds,
        "levels": sku.levels.to_dict(),
        "stock_seq": sku.stock_seq,
        "created_at": sku.created_at,
        "updated_at": sku.updated_at,
    }


def movement_view(movement: StockMovement) -> dict[str, Any]:
    return movement.to_dict()
