"""Domain events into messages: who gets one, on which channel, in which language, sent at most once.

Each (event id, recipient, channel) is claimed with a conditional put before anything is sent: a redelivered
event (SQS at-least-once, EventBridge retries, an archive replay keeps the event id) or a concurrent duplicate
finds the claim and sends nothing. In-app messages are written with their claim in one transaction. A send that
certainly did not happen (throttled, the provider unreachable) gives the claim back and the message is retried;
one whose outcome is unknown (a timeout after the request left) is never sent again: at most once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from shop.domain import clock
from shop.domain import notification_templates as templates
from shop.domain import notifications as rules
from shop.domain.notifications import EMAIL, IN_APP, OPERATORS, OPERATORS_RECIPIENT, SMS, Preferences
from shop.domain.orders import Order
from shop.domain.statuses import DeliveryStatus

logger = Logger(child=True)
CLAIM_TTL_SECONDS = 90 * 24 * 3600  # longer than the event archive's replay window
INBOX_TTL_SECONDS = 365 * 24 * 3600
# Minor-unit exponent of the currencies without cents (ISO 4217); every other currency has two decimals.
ZERO_DECIMAL = frozenset({"JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XAF", "XOF"})
CURRENCY_SIGNS = {"CNY": "¥", "EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "HKD": "HK$"}


@dataclass(frozen=True)
class DomainEvent:
    event_id: str
    detail_type: str
    time: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class Delivery:
    """One message to one recipient on one channel."""

    event: DomainEvent
    recipient: str  # customer id, or "operators"
    channel: str
    address: str | None  # e-mail, E.164 phone, or None (in-app, operators' topic)
    locale: str
    subject: str
    body: str

    @property
    def claim_id(self) -> str:
        return f"{self.event.event_id}#{self.channel}#{self.recipient}"

    @property
    def notification_id(self) -> str:
        return "ntf_" + hashlib.sha256(self.claim_id.encode()).hexdigest()[:24]

    def inbox_item(self, order_id: str | None) -> dict[str, Any]:
        return {"notification_id": self.notification_id, "type": self.event.detail_type, "subject": self.subject,
                "body": self.body, "locale": self.locale, "order_id": order_id, "created_at": self.event.time,
                "event_id": self.event.event_id}


class NotSent(Exception):
    """The provider certainly did not send it (throttled, unreachable, our request refused before sending):
    the claim is given back and the event retried."""


class Undeliverable(Exception):
    """The provider refused this recipient or message for good (unverified or invalid address, opted out):
    recorded, never retried."""


class NotificationStore(Protocol):
    def preferences(self, customer_id: str) -> Preferences: ...
    def save_preferences(self, customer_id: str, preferences: Preferences) -> None: ...
    def claim(self, delivery: Delivery, *, ttl: int, inbox: dict[str, Any] | None = None) -> bool: ...
    def finish(self, delivery: Delivery, status: DeliveryStatus, detail: str = "") -> None: ...
    def inbox(self, customer_id: str, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]: ...


class Channels(Protocol):
    def send_email(self, to: str, subject: str, body: str) -> str: ...
    def send_sms(self, phone: str, body: str) -> str: ...
    def publish_operators(self, subject: str, body: str, detail_type: str) -> str: ...
    def enabled(self, channel: str) -> bool: ...


class Orders(Protocol):
    def get_order(self, order_id: str) -> Order | None: ...


@dataclass
class NotifyPorts:
    orders: Orders
    store: NotificationStore
    channels: Channels
    operator_locale: str = rules.EN


def format_money(money: Any) -> str:
    """{"amount": 1999, "currency": "CNY"} -> "¥19.99" (CNY 19.99 for currencies without a sign here)."""
    if not isinstance(money, dict) or not isinstance(money.get("amount"), int) or not money.get("currency"):
        return templates.MISSING
    amount, currency = money["amount"], str(money["currency"])
    digits = 0 if currency in ZERO_DECIMAL else 2
    sign = "-" if amount < 0 else ""
    whole, cents = divmod(abs(amount), 10 ** digits) if digits else (abs(amount), 0)
    number = f"{whole:,}" + (f".{cents:0{digits}d}" if digits else "")
    return f"{sign}{CURRENCY_SIGNS[currency]}{number}" if currency in CURRENCY_SIGNS else f"{sign}{currency} {number}"


def format_time(iso: str | None) -> str:
    """2026-11-30T10:04:37.211Z -> "2026-11-30 10:04 UTC" (what a person reads; the inbox keeps the exact time)."""
    if not iso or len(iso) < 16 or iso[10] != "T":
        return templates.MISSING
    return f"{iso[:10]} {iso[11:16]} UTC"


def fields(event: DomainEvent, order: Order | None, locale: str) -> dict[str, Any]:
    """What templates may show: the event's own fields, with the order's number and total, money formatted."""
    detail = event.detail
    shown: dict[str, Any] = {k: v for k, v in detail.items() if isinstance(v, (str, int)) and not isinstance(v, bool)}
    for key in ("total", "amount"):
        if key in detail:
            shown[key] = format_money(detail[key])
    for key in ("provider_amount", "our_amount"):
        if isinstance(detail.get(key), dict):
            shown[key] = format_money(detail[key])
    if order is not None:
        shown.setdefault("order_number", order.order_number)
        shown.setdefault("total", format_money(order.total.to_dict()))
        shown.setdefault("expires_at", format_time(order.expires_at))
        if order.shipments:
            shown.setdefault("carrier", order.shipments[-1].carrier)
            shown.setdefault("tracking_number", order.shipments[-1].tracking_number)
    shown["parcel_status"] = templates.parcel_status_text(rules.parcel_status(detail), locale)
    shown["after_sale_type"] = detail.get("type")
    return shown


def deliveries(ports: NotifyPorts, event: DomainEvent) -> tuple[list[Delivery], str | None]:
    """The messages this event becomes (before dedupe), and the order id they are about."""
    route = rules.ROUTES.get(event.detail_type)
    if route is None:
        return [], None
    order_id = event.detail.get("order_id") if isinstance(event.detail.get("order_id"), str) else None
    order = ports.orders.get_order(order_id) if order_id and order_id.startswith("ord_") else None
    out: list[Delivery] = []
    channels = rules.customer_channels(event.detail_type, event.detail)
    customer_id = order.customer_id if order else event.detail.get("customer_id")
    if channels and isinstance(customer_id, str) and customer_id:
        preferences = ports.store.preferences(customer_id)
        recipient = rules.recipient_for(customer_id, preferences, order.shipping_address if order else None)
        subject, body = templates.render("customer", event.detail_type, recipient.locale,
                                         fields(event, order, recipient.locale))
        addresses = {IN_APP: customer_id, EMAIL: recipient.email, SMS: recipient.phone}
        for channel in channels:
            if addresses[channel] and ports.channels.enabled(channel):
                out.append(Delivery(event, customer_id, channel, None if channel == IN_APP else addresses[channel],
                                    recipient.locale, subject, body))
    elif channels:
        logger.warning("customer event without a known order or customer", extra={
            "event_id": event.event_id, "detail_type": event.detail_type})
    if route.operators and ports.channels.enabled(OPERATORS):
        locale = ports.operator_locale
        subject, body = templates.render("operators", event.detail_type, locale, fields(event, order, locale))
        out.append(Delivery(event, OPERATORS_RECIPIENT, OPERATORS, None, locale, subject, body))
    return out, order_id


def notify(ports: NotifyPorts, event: DomainEvent) -> dict[str, str]:
    """Send what the event becomes; returns {channel/recipient: outcome}. Raises NotSent when a channel must be
    retried (after trying every other one: what was sent stays claimed and is not sent again)."""
    planned, order_id = deliveries(ports, event)
    outcomes: dict[str, str] = {}
    retry: list[str] = []
    now = int(clock.now().timestamp())
    for delivery in planned:
        label = f"{delivery.channel}:{'operators' if delivery.channel == OPERATORS else 'customer'}"
        try:
            outcomes[label] = _deliver(ports, delivery, order_id, now)
        except NotSent as error:
            outcomes[label] = "retry"
            retry.append(f"{delivery.channel}: {error}")
    logger.info("notified", extra={"event_id": event.event_id, "detail_type": event.detail_type, "outcomes": outcomes})
    if retry:
        raise NotSent("; ".join(retry))
    return outcomes


def _deliver(ports: NotifyPorts, delivery: Delivery, order_id: str | None, now: int) -> str:
    if delivery.channel == IN_APP:  # the message is the claim's twin, in the same transaction
        won = ports.store.claim(delivery, ttl=now + CLAIM_TTL_SECONDS, inbox=delivery.inbox_item(order_id))
        return "sent" if won else "duplicate"
    if not ports.store.claim(delivery, ttl=now + CLAIM_TTL_SECONDS):
        return "duplicate"
    masked = rules.mask(delivery.channel, delivery.address)
    try:
        if delivery.channel == EMAIL:
            assert delivery.address
            message_id = ports.channels.send_email(delivery.address, delivery.subject, delivery.body)
        elif delivery.channel == SMS:
            assert delivery.address
            message_id = ports.channels.send_sms(delivery.address, delivery.body)
        else:
            message_id = ports.channels.publish_operators(delivery.subject, delivery.body, delivery.event.detail_type)
    except NotSent as error:
        ports.store.finish(delivery, DeliveryStatus.FAILED, str(error)[:300])  # a retry may claim it again
        logger.warning("notification not sent; will retry", extra={"channel": delivery.channel, "to": masked,
                                                                    "error": str(error)[:300]})
        raise
    except Undeliverable as error:
        ports.store.finish(delivery, DeliveryStatus.REJECTED, str(error)[:300])
        logger.warning("notification refused by the provider", extra={"channel": delivery.channel, "to": masked,
                                                                       "error": str(error)[:300]})
        return "rejected"
    except Exception:  # the outcome is unknown: it may have been sent, so it is never sent again
        ports.store.finish(delivery, DeliveryStatus.UNKNOWN)
        logger.exception("notification outcome unknown; not retried", extra={"channel": delivery.channel,
                                                                              "to": masked})
        return "unknown"
    ports.store.finish(delivery, DeliveryStatus.SENT, message_id)
    return "sent"
