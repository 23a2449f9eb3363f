"""Who hears of which domain event, on which channel, in which language (pure rules, no AWS).

Customers hear of their orders on up to three channels: the in-app inbox (always), e-mail (when they gave an
address in their notification preferences) and SMS (to the preferences' phone, else the phone of the order's
shipping address). Operators hear of stock, held orders, stale parcels, after-sales requests and reconciliation
differences on their SNS topic. docs/notifications.md has the table in words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

IN_APP, EMAIL, SMS, OPERATORS = "in_app", "email", "sms", "operators"
CUSTOMER_CHANNELS = (IN_APP, EMAIL, SMS)
ZH, EN = "zh-CN", "en"
LOCALES = (ZH, EN)
# Shipping countries whose customers get Chinese by default (without a locale in their preferences).
CHINESE_COUNTRIES = frozenset({"CN", "HK", "MO", "TW"})
OPERATORS_RECIPIENT = "operators"


@dataclass(frozen=True)
class EventRoute:
    customer: tuple[str, ...] = ()  # the customer's channels this event goes out on (empty: not to customers)
    operators: bool = False  # also (or only) to the operators' topic


ROUTES: dict[str, EventRoute] = {
    "order.created": EventRoute((IN_APP, EMAIL)),
    "order.paid": EventRoute((IN_APP, EMAIL, SMS)),
    "order.on_hold": EventRoute((IN_APP,), operators=True),
    "order.approved": EventRoute((IN_APP, EMAIL)),
    "order.expired": EventRoute((IN_APP, EMAIL)),
    "order.cancelled": EventRoute((IN_APP, EMAIL)),
    "order.refunded": EventRoute((IN_APP, EMAIL, SMS)),
    "order.partially_shipped": EventRoute((IN_APP, EMAIL)),
    "order.shipped": EventRoute((IN_APP, EMAIL, SMS)),
    "order.delivered": EventRoute((IN_APP, EMAIL)),
    "order.completed": EventRoute((IN_APP,)),
    "parcel.status_changed": EventRoute((IN_APP, SMS)),  # SMS only for the statuses below
    "parcel.stale": EventRoute((), operators=True),
    "after_sale.requested": EventRoute((IN_APP,), operators=True),
    "after_sale.approved": EventRoute((IN_APP, EMAIL)),
    "after_sale.rejected": EventRoute((IN_APP, EMAIL)),
    "after_sale.received": EventRoute((IN_APP,)),
    "stock.low": EventRoute((), operators=True),
    "stock.sold_out": EventRoute((), operators=True),
    "reconciliation.mismatch": EventRoute((), operators=True),
}
# Parcel changes worth a text message: the customer has to be there or act.
SMS_PARCEL_STATUSES = frozenset({"out_for_delivery", "delivery_failed", "available_for_pickup"})


def routed_event_types() -> tuple[str, ...]:
    """Every detail-type the EventBridge rules send to the notifier (manifest.EVENT_RULES)."""
    return tuple(sorted(ROUTES))


def customer_event_types() -> tuple[str, ...]:
    return tuple(sorted(t for t, r in ROUTES.items() if r.customer))


def operator_event_types() -> tuple[str, ...]:
    return tuple(sorted(t for t, r in ROUTES.items() if r.operators))


def parcel_status(detail: dict[str, Any]) -> str:
    value = detail.get("status") or detail.get("to") or ""
    return value if isinstance(value, str) else ""


def customer_channels(detail_type: str, detail: dict[str, Any]) -> tuple[str, ...]:
    route = ROUTES.get(detail_type)
    if route is None:
        return ()
    if detail_type == "parcel.status_changed" and parcel_status(detail) not in SMS_PARCEL_STATUSES:
        return tuple(c for c in route.customer if c != SMS)
    return route.customer


@dataclass(frozen=True)
class Preferences:
    """What a customer set through PUT /me/notification-preferences (all optional)."""

    locale: str | None = None
    email: str | None = None
    phone: str | None = None
    email_enabled: bool = True
    sms_enabled: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"locale": self.locale, "email": self.email, "phone": self.phone,
                "email_enabled": self.email_enabled, "sms_enabled": self.sms_enabled}

    @classmethod
    def from_dict(cls, item: dict[str, Any] | None) -> Preferences:
        item = item or {}
        return cls(locale=item.get("locale"), email=item.get("email"), phone=item.get("phone"),
                   email_enabled=bool(item.get("email_enabled", True)), sms_enabled=bool(item.get("sms_enabled", True)))


@dataclass(frozen=True)
class Recipient:
    customer_id: str
    locale: str
    email: str | None
    phone: str | None  # E.164


def choose_locale(preferred: str | None, country: str | None) -> str:
    """The preferences' locale, else Chinese for shipping addresses in mainland China, Hong Kong, Macao and
    Taiwan, else English."""
    if preferred in LOCALES:
        return preferred
    return ZH if (country or "").upper() in CHINESE_COUNTRIES else EN


# Country calling codes for numbers given without one (E.164 needs it); others must include "+".
CALLING_CODES = {"CN": "86", "HK": "852", "MO": "853", "TW": "886", "SG": "65", "US": "1", "CA": "1", "GB": "44",
                 "IE": "353", "DE": "49", "FR": "33", "ES": "34", "IT": "39", "NL": "31", "BE": "32", "AT": "43",
                 "CH": "41", "SE": "46", "DK": "45", "NO": "47", "FI": "358", "PL": "48", "PT": "351", "JP": "81",
                 "KR": "82", "AU": "61", "NZ": "64"}
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


def e164(phone: str | None, country: str | None) -> str | None:
    """The number in E.164 (what SNS sends SMS to), or None when it cannot be made one."""
    if not phone:
        return None
    digits = re.sub(r"[^0-9]", "", phone.replace("(0)", ""))  # "+44 (0)20 ...": the trunk 0 is not dialled
    if phone.strip().startswith("+"):
        candidate = "+" + digits
    elif digits.startswith("00"):
        candidate = "+" + digits[2:]
    else:
        code = CALLING_CODES.get((country or "").upper())
        if code is None:
            return None
        candidate = f"+{code}{digits.lstrip('0')}"
    return candidate if _E164.match(candidate) else None


def recipient_for(customer_id: str, preferences: Preferences, shipping_address: dict[str, Any] | None) -> Recipient:
    address = shipping_address or {}
    country = address.get("country")
    phone = e164(preferences.phone, country) or e164(address.get("phone"), country)
    return Recipient(customer_id=customer_id, locale=choose_locale(preferences.locale, country),
                     email=preferences.email if preferences.email_enabled else None,
                     phone=phone if preferences.sms_enabled else None)


def mask_email(email: str | None) -> str:
    """a***@e***.com: enough to tell addresses apart in a log, not enough to write to them."""
    if not email or "@" not in email:
        return "***"
    local, _, domain = email.partition("@")
    host, dot, tld = domain.rpartition(".")
    return f"{local[:1]}***@{(host or tld)[:1]}***{dot}{tld if host else ''}"


def mask_phone(phone: str | None) -> str:
    """+86*******8000: the country code and the last four digits."""
    if not phone:
        return "***"
    digits = re.sub(r"[^0-9+]", "", phone)
    keep = 3 if digits.startswith("+") else 0
    hidden = len(digits) - keep - 4  # a short number is hidden whole, never shown whole
    return digits[:keep] + "*" * hidden + digits[-4:] if len(digits) > 6 and hidden > 0 else "***"


def mask(channel: str, address: str | None) -> str:
    return mask_email(address) if channel == EMAIL else mask_phone(address) if channel == SMS else address or ""
