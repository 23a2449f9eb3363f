"""The text of every notification, in Chinese (zh-CN) and English (en): (subject, body) per event and locale.

Placeholders are filled from the event and the order (shop/services/notifications.py `fields`); a field the event
does not carry renders as "-", never as a raw "{name}". SMS uses the body only; in-app messages and e-mail both.
"""

from __future__ import annotations

import string
from typing import Any

from shop.domain.notifications import EN, ZH

Template = tuple[str, str]  # (subject, body)

CUSTOMER: dict[str, dict[str, Template]] = {
    "order.created": {
        ZH: ("订单 {order_number} 已提交", "您的订单 {order_number} 已提交，应付 {total}，请在 {expires_at} 前完成支付。"),
        EN: ("Order {order_number} placed", "Your order {order_number} is placed. Please pay {total} by {expires_at}."),
    },
    "order.paid": {
        ZH: ("订单 {order_number} 支付成功", "您的订单 {order_number} 已支付 {total}，我们会尽快发货。"),
        EN: ("Order {order_number} paid", "We received {total} for order {order_number} and will ship it soon."),
    },
    "order.on_hold": {
        ZH: ("订单 {order_number} 审核中", "您的订单 {order_number} 的付款正在审核，审核完成后会通知您。"),
        EN: ("Order {order_number} under review", "The payment of order {order_number} is being reviewed; "
                                                   "we will tell you when it is done."),
    },
    "order.approved": {
        ZH: ("订单 {order_number} 审核通过", "您的订单 {order_number} 已审核通过，我们会尽快发货。"),
        EN: ("Order {order_number} approved", "Order {order_number} passed review and will ship soon."),
    },
    "order.expired": {
        ZH: ("订单 {order_number} 已过期", "订单 {order_number} 未在支付时限内付款，已自动关闭。"),
        EN: ("Order {order_number} expired", "Order {order_number} was not paid in time and has been closed."),
    },
    "order.cancelled": {
        ZH: ("订单 {order_number} 已取消", "订单 {order_number} 已取消。如已付款，款项将原路退回。"),
        EN: ("Order {order_number} cancelled", "Order {order_number} is cancelled. Anything you paid is refunded "
                                                "to your original payment method."),
    },
    "order.refunded": {
        ZH: ("订单 {order_number} 已退款", "订单 {order_number} 已退款 {amount}，将原路退回。"),
        EN: ("Order {order_number} refunded", "We refunded {amount} for order {order_number} to your original "
                                               "payment method."),
    },
    "order.partially_shipped": {
        ZH: ("订单 {order_number} 部分发货", "订单 {order_number} 的部分商品已由 {carrier} 发出，运单号 {tracking_number}。"),
        EN: ("Part of order {order_number} shipped", "Part of order {order_number} shipped with {carrier}, "
                                                      "tracking number {tracking_number}."),
    },
    "order.shipped": {
        ZH: ("订单 {order_number} 已发货", "订单 {order_number} 已由 {carrier} 发出，运单号 {tracking_number}。"),
        EN: ("Order {order_number} shipped", "Order {order_number} shipped with {carrier}, tracking number "
                                              "{tracking_number}."),
    },
    "order.delivered": {
        ZH: ("订单 {order_number} 已送达", "订单 {order_number} 已送达。如有问题，可在订单页申请售后。"),
        EN: ("Order {order_number} delivered", "Order {order_number} was delivered. Something wrong? Open an "
                                                "after-sales request from the order."),
    },
    "order.completed": {
        ZH: ("订单 {order_number} 已完成", "订单 {order_number} 已完成，感谢您的购买。"),
        EN: ("Order {order_number} completed", "Order {order_number} is complete. Thank you for shopping with us."),
    },
    "parcel.status_changed": {
        ZH: ("包裹状态：{parcel_status}", "订单 {order_number} 的包裹（{carrier} {tracking_number}）：{parcel_status}。"),
        EN: ("Parcel update: {parcel_status}", "Order {order_number}, parcel {carrier} {tracking_number}: "
                                                "{parcel_status}."),
    },
    "after_sale.requested": {
        ZH: ("售后申请已提交", "您对订单 {order_number} 的售后申请 {after_sale_id} 已提交，我们会尽快处理。"),
        EN: ("After-sales request received", "Your after-sales request {after_sale_id} for order {order_number} "
                                              "was received; we will look at it soon."),
    },
    "after_sale.approved": {
        ZH: ("售后申请已通过", "订单 {order_number} 的售后申请 {after_sale_id} 已通过。"),
        EN: ("After-sales request approved", "Your after-sales request {after_sale_id} for order {order_number} "
                                              "was approved."),
    },
    "after_sale.rejected": {
        ZH: ("售后申请未通过", "订单 {order_number} 的售后申请 {after_sale_id} 未通过：{reason}。"),
        EN: ("After-sales request declined", "Your after-sales request {after_sale_id} for order {order_number} "
                                              "was declined: {reason}."),
    },
    "after_sale.received": {
        ZH: ("退货已签收", "我们已收到订单 {order_number} 的退货（售后单 {after_sale_id}）。"),
        EN: ("Return received", "We received the goods you returned for order {order_number} "
                                "(request {after_sale_id})."),
    },
}

OPERATOR: dict[str, dict[str, Template]] = {
    "stock.low": {
        ZH: ("库存不足：{sku}", "SKU {sku} 库存不足，仅剩 {available} 件可售。"),
        EN: ("Low stock: {sku}", "SKU {sku} is low on stock: {available} left to sell."),
    },
    "stock.sold_out": {
        ZH: ("已售罄：{sku}", "SKU {sku} 已售罄。"),
        EN: ("Sold out: {sku}", "SKU {sku} is sold out."),
    },
    "order.on_hold": {
        ZH: ("订单待审核：{order_number}", "订单 {order_number}（{order_id}）待审核：{reason}。"),
        EN: ("Order held for review: {order_number}", "Order {order_number} ({order_id}) is held for review: "
                                                       "{reason}."),
    },
    "parcel.stale": {
        ZH: ("包裹长时间无更新：{tracking_number}", "订单 {order_number} 的包裹 {carrier} {tracking_number} 长时间无物流更新，"
                                          "请联系承运商。"),
        EN: ("Stale parcel: {tracking_number}", "Parcel {carrier} {tracking_number} of order {order_number} has "
                                                 "had no carrier update for too long: contact the carrier."),
    },
    "after_sale.requested": {
        ZH: ("新售后申请：{order_number}", "订单 {order_number} 有新的售后申请 {after_sale_id}（{after_sale_type}）：{reason}。"),
        EN: ("New after-sales request: {order_number}", "Order {order_number} has a new after-sales request "
                                                         "{after_sale_id} ({after_sale_type}): {reason}."),
    },
    "reconciliation.mismatch": {
        ZH: ("对账差异：{provider} {date}", "{provider} {date} 对账差异（{category}/{kind}）：订单 {order_id}，"
                                        "渠道金额 {provider_amount}，我方金额 {our_amount}，处理：{action}。"),
        EN: ("Reconciliation difference: {provider} {date}", "{provider} {date} reconciliation difference "
                                                             "({category}/{kind}): order {order_id}, provider "
                                                             "amount {provider_amount}, ours {our_amount}, "
                                                             "action: {action}."),
    },
}

# Parcel statuses (the carriers' one vocabulary) as customers read them.
PARCEL_STATUS_TEXT: dict[str, dict[str, str]] = {
    "label_created": {ZH: "已下单", EN: "label created"},
    "in_transit": {ZH: "运输中", EN: "in transit"},
    "out_for_delivery": {ZH: "派送中", EN: "out for delivery"},
    "delivery_failed": {ZH: "派送失败", EN: "delivery failed"},
    "available_for_pickup": {ZH: "待取件", EN: "ready for pickup"},
    "delivered": {ZH: "已签收", EN: "delivered"},
    "returning": {ZH: "退回中", EN: "being returned"},
    "returned": {ZH: "已退回", EN: "returned"},
    "exception": {ZH: "异常", EN: "exception"},
    "stale": {ZH: "长时间无更新", EN: "no recent update"},
}
MISSING = "-"
MAX_FIELD_CHARS = 200  # an event field never makes a message long (SMS segments cost money)


class _Fields(dict):
    def __missing__(self, key: str) -> str:
        return MISSING


def _render(text: str, fields: dict[str, Any]) -> str:
    safe = _Fields({k: (MISSING if v in (None, "") else str(v)[:MAX_FIELD_CHARS]) for k, v in fields.items()})
    return string.Formatter().vformat(text, (), safe)


def render(audience: str, detail_type: str, locale: str, fields: dict[str, Any]) -> tuple[str, str]:
    """(subject, body) of `detail_type` for `audience` ("customer" or "operators") in `locale`. KeyError when
    there is no template: every routed event has one in both languages (tests check it)."""
    table = CUSTOMER if audience == "customer" else OPERATOR
    subject, body = table[detail_type][locale]
    return _render(subject, fields), _render(body, fields)


def parcel_status_text(status: str, locale: str) -> str:
    return PARCEL_STATUS_TEXT.get(status, {}).get(locale, status)
