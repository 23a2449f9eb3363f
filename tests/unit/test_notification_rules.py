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


# --- exact values (each pins a rule a mutation run showed untested) -----------------------------------------

# One mobile number per country the shop knows a calling code for, as a customer types it at home.
NATIONAL_MOBILES = [
    ("CN", "138 0013 8000", "+8613800138000"), ("HK", "5123 4567", "+85251234567"),
    ("MO", "6612 3456", "+85366123456"), ("TW", "0912 345 678", "+886912345678"),
    ("SG", "8123 4567", "+6581234567"), ("US", "(212) 555-0123", "+12125550123"),
    ("CA", "416 555 0123", "+14165550123"), ("GB", "07700 900123", "+447700900123"),
    ("IE", "085 123 4567", "+353851234567"), ("DE", "0151 12345678", "+4915112345678"),
    ("FR", "06 12 34 56 78", "+33612345678"), ("ES", "612 345 678", "+34612345678"),
    ("IT", "312 345 6789", "+393123456789"), ("NL", "06 12345678", "+31612345678"),
    ("BE", "0470 12 34 56", "+32470123456"), ("AT", "0664 1234567", "+436641234567"),
    ("CH", "078 123 45 67", "+41781234567"), ("SE", "070-123 45 67", "+46701234567"),
    ("DK", "20 12 34 56", "+4520123456"), ("NO", "412 34 567", "+4741234567"),
    ("FI", "040 1234567", "+358401234567"), ("PL", "512 345 678", "+48512345678"),
    ("PT", "912 345 678", "+351912345678"), ("JP", "090-1234-5678", "+819012345678"),
    ("KR", "010-1234-5678", "+821012345678"), ("AU", "0412 345 678", "+61412345678"),
    ("NZ", "021 123 4567", "+64211234567"),
]


def test_a_national_mobile_gets_its_countrys_calling_code() -> None:
    assert {country for country, _, _ in NATIONAL_MOBILES} == set(rules.CALLING_CODES)
    for country, national, international in NATIONAL_MOBILES:
        assert rules.e164(national, country) == international, country
        assert rules.e164(national, country.lower()) == international, country


def test_numbers_that_cannot_be_e164_get_no_sms() -> None:
    assert rules.e164("0151 12345678", None) is None  # national, no country to take a calling code from
    assert rules.e164("123", "CN") is None  # too short once the code is added
    assert rules.e164("+86 1380013800012345", None) is None  # longer than E.164's 15 digits
    assert rules.e164("+0 123 4567", None) is None  # a calling code never starts with 0
    assert rules.e164("+86 138 0013 8000", "DE") == "+8613800138000"  # an explicit code wins over the country
    no_address = rules.recipient_for("c", Preferences(phone="+4915112345678"), None)
    assert (no_address.locale, no_address.phone) == (EN, "+4915112345678")


def test_locales_and_channels_are_the_documented_values() -> None:
    assert (ZH, EN) == ("zh-CN", "en")  # the values of the preferences API (docs/notifications.md)
    # Stored in every claim key NOTIFY#{event}#{channel}#{recipient}: renaming one re-sends what was sent.
    assert (IN_APP, EMAIL, SMS, rules.OPERATORS, rules.OPERATORS_RECIPIENT) == (
        "in_app", "email", "sms", "operators", "operators")
    assert rules.choose_locale(None, "HK") == rules.choose_locale(None, "MO") == "zh-CN"
    assert rules.choose_locale(None, None) == "en" and rules.choose_locale("zh-CN", "US") == "zh-CN"


def test_parcel_text_messages_only_when_the_customer_has_to_act() -> None:
    for status in ("out_for_delivery", "delivery_failed", "available_for_pickup"):
        assert rules.customer_channels("parcel.status_changed", {"status": status}) == (IN_APP, SMS), status
        assert rules.customer_channels("parcel.status_changed", {"to": status}) == (IN_APP, SMS), status
    for status in ("label_created", "in_transit", "delivered", "returned", "exception", "stale"):
        assert rules.customer_channels("parcel.status_changed", {"status": status}) == (IN_APP,), status
    assert rules.parcel_status({"to": "delivered"}) == "delivered" and rules.parcel_status({}) == ""
    assert rules.parcel_status({"status": 5}) == "" and rules.parcel_status({"status": "", "to": "returned"}) == \
        "returned"


def test_preferences_round_trip_with_both_channels_on_by_default() -> None:
    assert rules.Preferences.from_dict(None) == Preferences() == rules.Preferences.from_dict({})
    assert Preferences().to_dict() == {"locale": None, "email": None, "phone": None, "email_enabled": True,
                                       "sms_enabled": True}
    chosen = Preferences(locale=ZH, email="a@b.example", phone="+8613800138000", email_enabled=False,
                         sms_enabled=False)
    assert rules.Preferences.from_dict(chosen.to_dict()) == chosen
    assert rules.Preferences.from_dict({"email_enabled": False}) == Preferences(email_enabled=False)
    assert rules.Preferences.from_dict({"sms_enabled": False}) == Preferences(sms_enabled=False)


def test_masking_edges() -> None:
    assert rules.mask_email(None) == "***" and rules.mask_email("root@localhost") == "r***@l***"
    assert rules.mask_phone(None) == "***" and rules.mask_phone("") == "***"
    assert rules.mask_phone("+86 138-0013-8000") == "+86*******8000"
    assert rules.mask_phone("13800138000") == "*******8000"  # no calling code: nothing kept in front
    assert rules.mask_phone("1234567") == "***4567" and rules.mask_phone("123456") == "***"
    assert rules.mask_phone("+1234567") == "+12*4567" and rules.mask_phone("+123456") == "***"  # never shown whole
    assert rules.mask(EMAIL, "alice@example.com") == "a***@e***.com"
    assert rules.mask(IN_APP, "cus_1") == "cus_1" and rules.mask(IN_APP, None) == ""


def test_every_parcel_status_reads_in_the_customers_language() -> None:
    from shop.domain.parcels import ParcelStatus

    assert set(templates.PARCEL_STATUS_TEXT) == {s.value for s in ParcelStatus}
    for locale in (ZH, EN):
        texts = [templates.parcel_status_text(s.value, locale) for s in ParcelStatus]
        assert all(texts) and len(set(texts)) == len(texts), locale  # every status its own words
        assert all(bool(CJK.search(t)) is (locale == ZH) for t in texts), texts
    assert templates.parcel_status_text("in_transit", EN) == "in transit"
    assert templates.parcel_status_text("available_for_pickup", ZH) == "待取件"
    assert templates.parcel_status_text("teleported", EN) == "teleported"  # a status we do not know: as it came


def test_each_field_is_cut_at_200_characters_and_an_empty_one_reads_as_a_dash() -> None:
    _, body = templates.render("customer", "order.completed", EN, {"order_number": "9" * 250})
    assert "9" * 200 in body and "9" * 201 not in body
    _, empty = templates.render("customer", "order.completed", EN, {"order_number": ""})
    assert empty.startswith("Order - is complete")
