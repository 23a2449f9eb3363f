"""Presale pools and virtual caps (issue 16) through the HTTP handlers: spot orders never touch presale units,
presale orders take them at payment (refunded when the pool is gone), unsold ones become spot stock only by a
ledgered movement; virtual goods sell against a daily cap (the shop's day) and a total cap and never ship."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shop.domain import clock
from tests.api.test_orders_api import ADDRESS, make_sku
from tests.api.test_payment_webhooks import get, pay, records

pytestmark = pytest.mark.usefixtures("provider_env")

OPEN = {"cap": 3, "starts_at": "2020-01-01T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z", "ships_on": "2099-02-01"}


def order(api, *items, key="k1", user="alice"):
    return api.request("POST", "/orders", user=user, headers={"Idempotency-Key": key},
                       body={"items": [dict(item) for item in items], "shipping_address": ADDRESS,
                             "payment_provider": "sandbox"})


def presale(api, code="PRE", **terms):
    result = api.admin("PUT", f"/admin/skus/{code}/presale", body={**OPEN, **terms})
    assert result.status == 200, result.text
    return result.json()


def admin_view(api, code="PRE"):
    return api.admin("GET", f"/admin/skus/{code}").json()


def pool(api, code="PRE"):
    found = [s for s in admin_view(api, code)["other_states"] if s["state"] == "presale"]
    return {k: found[0][k] for k in ("on_hand", "available", "reserved", "sold")} if found else None


def ledger_sums(api, code):
    entries = api.admin("GET", f"/admin/skus/{code}/ledger?limit=100").json()["items"]
    total = {k: sum(e["delta"][k] for e in entries) for k in ("on_hand", "available", "reserved", "sold")}
    view = admin_view(api, code)
    every = {k: sum(s[k] for s in view["warehouses"] + view["other_states"]) for k in total}
    return total, every, entries


def test_presale_pool_is_apart_from_spot_stock_and_spot_orders_never_touch_it(api):
    make_sku(api, "PRE", on_hand=1)
    shown = presale(api)
    assert shown["presale"]["available"] == 3 and shown["presale_terms"]["cap"] == 3
    public = api.request("GET", "/skus/PRE").json()
    assert public["available"] == 1 and public["kind"] == "physical"
    assert public["presale"] == {"available": 3, "status": "open", "starts_at": OPEN["starts_at"],
                                 "ends_at": OPEN["ends_at"], "ships_on": "2099-02-01"}
    assert order(api, {"sku": "PRE", "quantity": 1}).status == 201  # the one spot unit
    refused = order(api, {"sku": "PRE", "quantity": 1}, key="k2")
    assert refused.status == 409 and refused.json()["shortages"][0]["available"] == 0  # never the presale units
    assert pool(api) == {"on_hand": 3, "available": 3, "reserved": 0, "sold": 0}
    total, every, _ = ledger_sums(api, "PRE")
    assert total == every


def test_presale_order_takes_pool_units_at_payment_and_refunds_when_the_pool_is_gone(api):
    make_sku(api, "PRE", on_hand=0)
    presale(api, cap=2)
    first = order(api, {"sku": "PRE", "quantity": 2, "presale": True})
    assert first.status == 201, first.text
    line = first.json()["lines"][0]
    assert line["presale"] == {"ships_on": "2099-02-01"} and line["virtual"] is False
    second = order(api, {"sku": "PRE", "quantity": 1, "presale": True}, key="k2").json()
    assert pool(api) == {"on_hand": 2, "available": 2, "reserved": 0, "sold": 0}  # nothing locked before payment
    assert pay(api, first.json()).status == 200
    paid = get(api, first.json())
    assert paid["status"] == "PAID" and paid["lines"][0]["presale"] == {"ships_on": "2099-02-01"}
    assert pool(api) == {"on_hand": 0, "available": 0, "reserved": 0, "sold": 2}
    assert pay(api, second).status == 200  # the pool is exhausted: refunded automatically
    assert get(api, second)["status"] == "CANCELLED" and len(records("refunded")) == 1
    assert admin_view(api)["levels"] == {"on_hand": 0, "available": 0, "reserved": 0, "sold": 0}  # spot untouched
    total, every, entries = ledger_sums(api, "PRE")
    assert total == every and {e["state"] for e in entries} == {"presale"}


def test_presale_window_and_flags_are_checked(api):
    make_sku(api, "PRE", on_hand=5)
    make_sku(api, "TEE", on_hand=5)
    presale(api, starts_at="2098-01-01T00:00:00Z")
    upcoming = order(api, {"sku": "PRE", "quantity": 1, "presale": True})
    assert upcoming.status == 422 and upcoming.json()["skus"][0]["reason"] == "presale_upcoming"
    no_presale = order(api, {"sku": "TEE", "quantity": 1, "presale": True}, key="k2")
    assert no_presale.status == 422 and no_presale.json()["skus"][0]["reason"] == "no_presale"
    both = order(api, {"sku": "PRE", "quantity": 1, "presale": True}, {"sku": "PRE", "quantity": 1}, key="k3")
    assert both.status == 422
    bad = api.admin("PUT", "/admin/skus/PRE/presale", body={**OPEN, "ends_at": "2019-01-01T00:00:00Z"})
    assert bad.status == 422
    assert api.admin("PUT", "/admin/skus/NOPE/presale", body=OPEN).status == 404
    assert api.request("PUT", "/admin/skus/PRE/presale", user="alice", body=OPEN).status == 403


def test_release_moves_unsold_presale_units_to_spot_stock_in_one_ledgered_movement(api):
    make_sku(api, "PRE", on_hand=0)
    presale(api, cap=5)
    released = api.admin("POST", "/admin/skus/PRE/presale/release", body={"quantity": 3, "reason": "arrived"},
                         headers={"Idempotency-Key": "rel-1"})
    assert released.status == 201, released.text
    body = released.json()
    assert [(e["state"], e["delta"]["available"]) for e in body["ledger_entries"]] == [("presale", -3), ("sellable", 3)]
    assert body["ledger_entries"][0]["reason"] == "presale_release: arrived"
    again = api.admin("POST", "/admin/skus/PRE/presale/release", body={"quantity": 3, "reason": "arrived"},
                      headers={"Idempotency-Key": "rel-1"})
    assert again.status == 201  # the same request: applied once
    assert pool(api) == {"on_hand": 2, "available": 2, "reserved": 0, "sold": 0}
    view = admin_view(api)
    assert view["levels"]["available"] == 3 and view["presale_terms"]["cap"] == 2
    too_many = api.admin("POST", "/admin/skus/PRE/presale/release", body={"quantity": 3, "reason": "x"})
    assert too_many.status == 409 and too_many.json()["shortages"][0]["available"] == 2
    total, every, _ = ledger_sums(api, "PRE")
    assert total == every


def test_virtual_goods_sell_against_the_daily_cap_per_shop_day_and_never_ship(api, monkeypatch):
    make_sku(api, "CARD", on_hand=0)
    day_one = datetime(2026, 11, 30, 15, 59, tzinfo=UTC)  # 23:59 in Asia/Shanghai
    monkeypatch.setattr(clock, "now", lambda: day_one)
    made = api.admin("PUT", "/admin/skus/CARD/virtual", body={"daily_cap": 2, "total_cap": 3})
    assert made.status == 200, made.text
    assert made.json()["virtual"] == {"daily_cap": 2, "total_cap": 3} and made.json()["kind"] == "virtual"
    assert api.request("GET", "/skus/CARD").json()["available"] == 2  # today's cap is the smaller
    first = order(api, {"sku": "CARD", "quantity": 2})
    assert first.status == 201, first.text
    assert first.json()["lines"][0]["virtual"] is True and first.json()["lines"][0]["ships_from"] == []
    capped = order(api, {"sku": "CARD", "quantity": 1}, key="k2")
    assert capped.status == 409 and capped.json()["type"].endswith("daily-cap-reached"), capped.text
    assert api.request("GET", "/skus/CARD").json()["availability"] == "sold_out"
    assert admin_view(api, "CARD")["available"] == 0  # operators see today's cap too
    monkeypatch.setattr(clock, "now", lambda: datetime(2026, 11, 30, 16, 1, tzinfo=UTC))  # 00:01 the next day
    assert api.request("GET", "/skus/CARD").json()["available"] == 1  # the total cap has one left
    second = order(api, {"sku": "CARD", "quantity": 1}, key="k3")
    assert second.status == 201, second.text
    assert order(api, {"sku": "CARD", "quantity": 1}, key="k4").status == 409  # total cap reached
    assert pay(api, first.json()).status == 200
    paid = get(api, first.json())
    assert (paid["status"], paid["fulfillment_status"]) == ("PAID", "fulfilled")  # nothing to ship
    shipping = api.admin("POST", f"/admin/orders/{paid['order_id']}/shipments", body={})
    assert shipping.status == 409
    cancelled = api.request("POST", f"/orders/{second.json()['order_id']}/cancel")
    assert cancelled.status == 200, cancelled.text
    assert api.request("GET", "/skus/CARD").json()["available"] == 1  # the unit is back on its day and total
    total, every, _ = ledger_sums(api, "CARD")
    assert total == every
    assert api.admin("PUT", "/admin/skus/CARD/virtual", body={}).status == 422  # a cap is needed
    assert api.admin("PUT", "/admin/skus/CARD/presale", body=OPEN).status == 422  # virtual goods have no presale
