"""Notification rules without AWS: templates in both languages for every routed event, channels, locale, contacts,
masking."""

from __future__ import annotations

import re

import pytest

from shop.domain import notification_templates as templates
from shop.domain import notifications as rules
from shop.domain.notifications import EMAIL, EN, IN_APP, SMS, ZH, Preferences
from shop.services.notifications import DomainEvent, fields, format_money, format_time

CJK = re.compile(r"[\u4e00-\u9fff]")
SAMPLE = {"order_id": "ord_0123456789abcdef", "order_number": "20261130-7F3K-Q9XD2M", "total": {"amount": 5997,
          "currency": "CNY"}, "amount": {"amount": 1999, "currency": "EUR"}, "reason": "amount mismatch",
          "carrier": "sandbox", "tracking_number": "SB123", "status": "out_for_delivery", "sku": "TEE-1",
          "available": 2, "after_sale_id": "as_1", "type": "return_and_refund", "provider": "alipay",
          "date": "2026-11-29", "category": "missing", "kind": "payment", "provider_amount": 100, "our_amount": 0,
          "action": "refunded", "expires_at": "2026-11-30T10:00:00Z"}


def audiences(detail_type: str) -> list[str]:
    route = rules.ROUTES[detail_type]
    return (["customer"] if route.customer else []) + (["operators"] if route.operators else [])


@pytest.mark.parametrize("detail_type", rules.routed_event_types())
@pytest.mark.parametrize("locale", [ZH, EN])
def test_every_routed_event_renders_in_both_languages(detail_type: str, locale: str) -> None:
    assert audiences(detail_type), detail_type
    for audience in audiences(detail_type):
        event = DomainEvent("e-1", detail_type, "2026-11-30T09:00:00Z", SAMPLE)
        subject, body = templates.render(audience, detail_type, locale, fields(event, None, locale))
        assert subject and body and "{" not in subject + body and "}" not in subject + body
        assert bool(CJK.search(subject + body)) is (locale == ZH), (audience, subject, body)
        # An event carrying nothing renders placeholders as "-", never a KeyError or a raw {name}.
        bare_subject, bare_body = templates.render(audience, detail_type, locale, {})
        assert "{" not in bare_subject + bare_body


def test_templates_exist_for_exactly_the_routed_events() -> None:
    assert set(templates.CUSTOMER) == set(rules.customer_event_types())
    assert set(templates.OPERATOR) == set(rules.operator_event_types())
    assert set(rules.operator_event_types()) == {"stock.low", "stock.sold_out", "order.on_hold", "parcel.stale",
                                                 "after_sale.requested", "reconciliation.mismatch"}
    for table in (templates.CUSTOMER, templates.OPERATOR):
        assert all(set(by_locale) == {ZH, EN} for by_locale in table.values())


def test_event_fields_render_safely() -> None:
    event = DomainEvent("e", "order.refunded", "t", {"amount": {"amount": 1999, "currency": "CNY"},
                                                     "reason": "x" * 5000})
    subject, body = templates.render("customer", "order.refunded", EN, fields(event, None, EN))
    assert "¥19.99" in body and len(body) < 400
    assert format_money({"amount": 500, "currency": "JPY"}) == "¥500"
    assert format_money({"amount": 123456, "currency": "SEK"}) == "SEK 1,234.56"
    assert format_money({"amount": "1", "currency": "EUR"}) == "-"
    assert format_time("2026-11-30T10:04:37.211Z") == "2026-11-30 10:04 UTC" and format_time(None) == "-"


def test_channels_per_event() -> None:
    assert rules.customer_channels("order.paid", {}) == (IN_APP, EMAIL, SMS)
    assert rules.customer_channels("order.created", {}) == (IN_APP, EMAIL)  # no text message for every order
    assert SMS in rules.customer_channels("parcel.status_changed", {"status": "out_for_delivery"})
    assert SMS not in rules.customer_channels("parcel.status_changed", {"status": "in_transit"})
    assert rules.customer_channels("stock.low", {}) == ()
    assert rules.customer_channels("not.routed", {}) == ()


def test_locale_contacts_and_preferences() -> None:
    assert rules.choose_locale(None, "CN") == ZH and rules.choose_locale(None, "tw") == ZH
    assert rules.choose_locale(None, "DE") == EN and rules.choose_locale(EN, "CN") == EN
    assert rules.choose_locale("fr", None) == EN
    assert rules.e164("138 0013 8000", "CN") == "+8613800138000"
    assert rules.e164("+44 (0)20 7946 0958", None) == "+442079460958"  # the trunk "(0)" is not dialled
    assert rules.e164("020 7946 0958", "GB") == "+442079460958"
    assert rules.e164("0049 30 123456", "FR") == "+4930123456"
    assert rules.e164("12345", "XX") is None and rules.e164(None, "CN") is None
    address = {"country": "CN", "phone": "13800138000"}
    assert rules.recipient_for("c", Preferences(), address) == rules.Recipient("c", ZH, None, "+8613800138000")
    chosen = rules.recipient_for("c", Preferences(locale=EN, email="a@b.example", phone="+4915112345678"), address)
    assert (chosen.locale, chosen.email, chosen.phone) == (EN, "a@b.example", "+4915112345678")
    quiet = rules.recipient_for("c", Preferences(email="a@b.example", email_enabled=False, sms_enabled=False), address)
    assert quiet.email is None and quiet.phone is None


def test_masking_never_shows_a_whole_address() -> None:
    assert rules.mask_email("alice@example.com") == "a***@e***.com"
    assert rules.mask_phone("+8613800138000") == "+86*******8000"
    assert rules.mask(SMS, "+8613800138000").endswith("8000") and "138001" not in rules.mask(SMS, "+8613800138000")
    assert rules.mask_email("nonsense") == "***" and rules.mask_phone("12") == "***"
