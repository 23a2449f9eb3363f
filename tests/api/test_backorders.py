"""Backorders (issue 16) through the HTTP handlers: a SKU sells up to its backorder_limit beyond its stock, the
order line says how many units are backordered, those units wait (reserved on the allowance, paid or not) until
stock arrives, which fills them oldest order first; a cancel or refund releases them without restocking."""

from __future__ import annotations

import json
from datetime import timedelta

import boto3
import pytest

from shop.adapters import wiring
from shop.domain import clock
from shop.domain.values import sum_units
from shop.services import orders as order_service
from tests.api.test_expiry_and_restock import deliver, failed_ids
from tests.api.test_orders_api import make_sku, place
from tests.api.test_payment_webhooks import get, pay

pytestmark = pytest.mark.usefixtures("provider_env")


def admin_view(api, code="TEE"):
    return api.admin("GET", f"/admin/skus/{code}").json()


def allowance(api, code="TEE"):
    found = [s for s in admin_view(api, code)["other_states"] if s["state"] == "backorder"]
    return {k: found[0][k] for k in ("on_hand", "available", "reserved", "sold")} if found else None


def ledger_matches_levels(api, code="TEE"):
    entries = api.admin("GET", f"/admin/skus/{code}/ledger?limit=100").json()["items"]
    total = {k: sum(e["delta"][k] for e in entries) for k in ("on_hand", "available", "reserved", "sold")}
    view = admin_view(api, code)
    every = {k: sum(s[k] for s in view["warehouses"] + view["other_states"]) for k in total}
    return total == every


def line(order, code="TEE"):
    return next(item for item in order["lines"] if item["sku"] == code)


def ship(api, order, **body):
    return api.admin("POST", f"/admin/orders/{order['order_id']}/shipments",
                     body={"carrier": "manual", "tracking_number": "T1", **body})


def test_orders_take_stock_then_backorder_up_to_the_limit_and_say_which_units_wait(api):
    make_sku(api, "TEE", on_hand=2, backorder_limit=3)
    public = api.request("GET", "/skus/TEE").json()
    assert public["available"] == 2 and public["backorder"] == {"available": 3}
    first = place(api, ("TEE", 4))
    assert first.status == 201, first.text
    assert line(first.json())["backordered"] == 2  # two in stock, two waiting
    assert line(first.json())["ships_from"] == [{"warehouse": "main", "quantity": 2}]
    assert allowance(api) == {"on_hand": 3, "available": 1, "reserved": 2, "sold": 0}
    refused = place(api, ("TEE", 2), key="k2")
    assert refused.status == 409
    assert refused.json()["shortages"] == [{"sku": "TEE", "requested": 2, "available": 1, "backorder_available": 1}]
    assert line(place(api, ("TEE", 1), key="k3").json())["backordered"] == 1
    assert api.request("GET", "/skus/TEE").json()["backorder"] == {"available": 0}
    view = admin_view(api)
    assert view["backorder_limit"] == 3 and view["backordered"] == 3 and view["levels"]["available"] == 0
    assert ledger_matches_levels(api)


def test_a_sku_without_a_limit_takes_no_backorders(api):
    make_sku(api, "TEE", on_hand=1)
    assert api.request("GET", "/skus/TEE").json()["backorder"] is None
    assert place(api, ("TEE", 2)).status == 409
    assert allowance(api) is None


def test_backorders_need_a_reserving_physical_sku(api):
    refused = api.admin("PUT", "/admin/skus/TEE", body={"name": "Tee", "price": {"amount": 100, "currency": "USD"},
                                                         "stock_policy": "deduct_on_payment", "backorder_limit": 2})
    assert refused.status == 422 and "backorder_limit" in refused.text
    too_big = api.admin("PUT", "/admin/skus/TEE", body={"name": "Tee", "price": {"amount": 100, "currency": "USD"},
                                                        "backorder_limit": -1})
    assert too_big.status == 422


def test_paid_backordered_units_wait_then_arriving_stock_fills_them_oldest_first(api):
    make_sku(api, "TEE", on_hand=0, backorder_limit=5)
    older = place(api, ("TEE", 2)).json()
    newer = place(api, ("TEE", 2), key="k2", user="bob").json()
    assert pay(api, older).status == 200
    paid = get(api, older)
    assert paid["status"] == "PAID" and line(paid)["backordered"] == 2
    assert allowance(api)["reserved"] == 4  # paid or not, they wait reserved on the allowance
    refused = ship(api, paid)
    assert refused.status == 409 and "backordered" in refused.text  # nothing is in stock to ship yet

    received = api.admin("POST", "/admin/skus/TEE/adjustments", body={"delta": 3, "reason": "goods in"})
    assert received.status == 201, received.text
    filled = get(api, older)
    assert line(filled)["backordered"] == 0 and line(filled)["ships_from"] == [{"warehouse": "main", "quantity": 2}]
    waiting = api.request("GET", f"/orders/{newer['order_id']}", user="bob").json()
    assert line(waiting)["backordered"] == 1  # the one unit left went to the next order in line
    view = admin_view(api)
    assert view["levels"] == {"on_hand": 1, "available": 0, "reserved": 1, "sold": 2}  # paid: sold; unpaid: reserved
    assert allowance(api) == {"on_hand": 5, "available": 4, "reserved": 1, "sold": 0}
    shipped = ship(api, filled)
    assert shipped.status == 201, shipped.text
    assert ledger_matches_levels(api)


def test_a_partly_backordered_paid_order_ships_what_is_in_stock_first(api):
    make_sku(api, "TEE", on_hand=1, backorder_limit=5)
    order = place(api, ("TEE", 3)).json()
    assert pay(api, order).status == 200
    first = ship(api, get(api, order))
    assert first.status == 201, first.text
    assert get(api, order)["status"] == "PARTIALLY_SHIPPED" and line(get(api, order))["backordered"] == 2
    assert ship(api, get(api, order), tracking_number="T2").status == 409
    api.admin("POST", "/admin/skus/TEE/adjustments", body={"delta": 2, "reason": "goods in"})
    assert ship(api, get(api, order), tracking_number="T3").status == 201
    assert get(api, order)["status"] == "SHIPPED"


def test_expiry_and_cancel_release_backordered_units_and_a_paid_cancel_restocks_only_sold_units(api, queues,
                                                                                              monkeypatch):
    make_sku(api, "TEE", on_hand=1, backorder_limit=4)
    unpaid = place(api, ("TEE", 2)).json()
    cancelled = api.request("POST", f"/orders/{unpaid['order_id']}/cancel")
    assert cancelled.status == 200, cancelled.text
    assert line(cancelled.json())["backordered"] == 0 and line(get(api, unpaid))["backordered"] == 0  # none waits
    assert allowance(api) == {"on_hand": 4, "available": 4, "reserved": 0, "sold": 0}
    assert admin_view(api)["levels"]["available"] == 1

    expiring = place(api, ("TEE", 2), key="k-exp").json()
    real_now, late = clock.now, clock.parse_iso(expiring["expires_at"]) + timedelta(seconds=1)
    monkeypatch.setattr(clock, "now", lambda: late)
    order_service.expire_order(wiring.default_ports(), expiring["order_id"])
    monkeypatch.setattr(clock, "now", real_now)
    assert get(api, expiring)["status"] == "EXPIRED" and line(get(api, expiring))["backordered"] == 0
    assert allowance(api) == {"on_hand": 4, "available": 4, "reserved": 0, "sold": 0}

    paid = place(api, ("TEE", 3), key="k2").json()
    assert pay(api, paid).status == 200
    assert api.request("POST", f"/orders/{paid['order_id']}/cancel").status == 200
    after = get(api, paid)
    assert after["status"] == "CANCELLED" and line(after)["backordered"] == 0
    stored = wiring.default_ports().store.get_order(paid["order_id"])
    assert sum_units(stored.refunds[0].restocked) == {"TEE": 1}  # only the one unit that was sold comes back
    assert allowance(api) == {"on_hand": 4, "available": 4, "reserved": 0, "sold": 0}
    sent = boto3.client("sqs").receive_message(QueueUrl=queues["restock"], MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"])["quantity"] for m in sent] == [1]
    assert failed_ids(deliver("restock", *(m["Body"] for m in sent))) == set()
    assert admin_view(api)["levels"] == {"on_hand": 1, "available": 1, "reserved": 0, "sold": 0}
    assert ledger_matches_levels(api)


def test_lowering_the_limit_keeps_what_waits_and_stops_new_backorders(api):
    make_sku(api, "TEE", on_hand=0, backorder_limit=3)
    place(api, ("TEE", 2))
    make_sku(api, "TEE", on_hand=0, backorder_limit=1)
    assert allowance(api) == {"on_hand": 2, "available": 0, "reserved": 2, "sold": 0}
    assert place(api, ("TEE", 1), key="k2").status == 409
    make_sku(api, "TEE", on_hand=0, backorder_limit=0)
    assert api.request("GET", "/skus/TEE").json()["backorder"] is None
    assert allowance(api)["reserved"] == 2
    assert ledger_matches_levels(api)


def test_csv_import_sets_and_export_shows_the_backorder_limit(api):
    from tests.api.test_csv_import_export import post, rows

    done = post(api, "sku,name,price,currency,backorder_limit,on_hand\r\nTEE,Tee,1999,USD,4,1\r\n"
                     "MUG,Mug,850,USD,,2\r\n")
    assert done.status == 200, done.text
    assert admin_view(api)["backorder_limit"] == 4 and allowance(api)["available"] == 4
    assert admin_view(api, "MUG")["backorder_limit"] == 0 and allowance(api, "MUG") is None
    assert line(place(api, ("TEE", 3)).json())["backordered"] == 2
    exported = {row["sku"]: row for row in rows(api.admin("GET", "/admin/skus.csv").text)}
    assert (exported["TEE"]["backorder_limit"], exported["MUG"]["backorder_limit"]) == ("4", "0")
    refused = post(api, "sku,stock_policy,backorder_limit\r\nTEE,deduct_on_payment,4\r\n")
    assert refused.json()["results"][0]["status"] == "failed"  # the catalog refuses it, the row fails alone
    kept = post(api, "sku,low_stock_threshold\r\nTEE,1\r\n")  # a file without the column keeps the limit
    assert kept.status == 200 and admin_view(api)["backorder_limit"] == 4


def test_a_fill_that_reaches_its_cap_queues_the_next_round(api, queues, monkeypatch):
    from shop.services import backorders

    monkeypatch.setattr(backorders, "MAX_ORDERS_PER_RUN", 2)
    make_sku(api, "TEE", on_hand=0, backorder_limit=10)
    placed = [place(api, ("TEE", 1), key=f"k{n}").json() for n in range(3)]
    api.admin("POST", "/admin/skus/TEE/adjustments", body={"delta": 5, "reason": "goods in"})
    assert [line(get(api, order))["backordered"] for order in placed] == [0, 0, 1]  # two per round
    sent = boto3.client("sqs").receive_message(QueueUrl=queues["restock"], MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"])["kind"] for m in sent] == ["rebalance"]
    assert failed_ids(deliver("restock", *(m["Body"] for m in sent))) == set()
    assert [line(get(api, order))["backordered"] for order in placed] == [0, 0, 0]
    assert allowance(api)["reserved"] == 0 and admin_view(api)["levels"]["available"] == 2


def test_units_leaving_an_allowance_above_a_lowered_limit_make_room_only_up_to_the_limit(api):
    # Lowered from 4 to 1 while 3 units wait: the allowance keeps them (on_hand 3); as they leave (filled,
    # cancelled unpaid, cancelled paid), it goes down to the limit instead of offering the freed units again.
    make_sku(api, "TEE", on_hand=0, backorder_limit=4)
    filled = place(api, ("TEE", 1)).json()
    unpaid = place(api, ("TEE", 1), key="k2").json()
    paid = place(api, ("TEE", 1), key="k3").json()
    assert pay(api, paid).status == 200
    make_sku(api, "TEE", on_hand=0, backorder_limit=1)
    assert allowance(api) == {"on_hand": 3, "available": 0, "reserved": 3, "sold": 0}
    assert api.admin("POST", "/admin/skus/TEE/adjustments", body={"delta": 1, "reason": "goods in"}).status == 201
    assert line(get(api, filled))["backordered"] == 0
    assert allowance(api) == {"on_hand": 2, "available": 0, "reserved": 2, "sold": 0}
    assert api.request("POST", f"/orders/{unpaid['order_id']}/cancel").status == 200
    assert allowance(api) == {"on_hand": 1, "available": 0, "reserved": 1, "sold": 0}
    assert api.request("POST", f"/orders/{paid['order_id']}/cancel").status == 200
    assert allowance(api) == {"on_hand": 1, "available": 1, "reserved": 0, "sold": 0}  # the limit, no more
    assert api.request("GET", "/skus/TEE").json()["backorder"] == {"available": 1}
    refused = place(api, ("TEE", 2), key="k4")
    assert refused.status == 409 and refused.json()["shortages"][0]["backorder_available"] == 1
    assert ledger_matches_levels(api)


@pytest.mark.parametrize("restock", [False, True])
def test_a_refund_by_line_takes_back_backordered_units_first_and_the_units_in_stock_still_ship(api, queues, restock):
    # 3 paid units: 1 in stock, 2 backordered. Refunding 2 releases the 2 that wait (never sold, nothing to
    # restock): the unit in stock stays the order's and ships now; no arrival is needed, none is consumed.
    make_sku(api, "TEE", on_hand=1, backorder_limit=5)
    order = place(api, ("TEE", 3)).json()
    assert pay(api, order).status == 200
    refunded = api.admin("POST", f"/admin/orders/{order['order_id']}/refunds", headers={"Idempotency-Key": "rf"},
                         body={"lines": [{"sku": "TEE", "quantity": 2}], "restock": restock})
    assert refunded.status in (200, 201), refunded.text
    after = get(api, order)
    assert line(after)["backordered"] == 0 and line(after)["ships_from"] == [{"warehouse": "main", "quantity": 1}]
    stored = wiring.default_ports().store.get_order(order["order_id"])
    assert not stored.refunds[0].restocked  # the sold unit is still to ship: nothing comes back on sale
    assert allowance(api) == {"on_hand": 5, "available": 5, "reserved": 0, "sold": 0}
    assert admin_view(api)["levels"] == {"on_hand": 0, "available": 0, "reserved": 0, "sold": 1}
    shipped = ship(api, get(api, order))
    assert shipped.status == 201, shipped.text
    assert get(api, order)["status"] == "SHIPPED"
    assert ledger_matches_levels(api)


def test_a_cancel_after_a_refund_released_backordered_units_restocks_only_the_units_sold(api, queues):
    make_sku(api, "TEE", on_hand=1, backorder_limit=3)
    make_sku(api, "MUG", on_hand=5)
    order = place(api, ("TEE", 3), ("MUG", 1)).json()  # one TEE in stock, two backordered
    assert pay(api, order).status == 200
    refunded = api.admin("POST", f"/admin/orders/{order['order_id']}/refunds", headers={"Idempotency-Key": "r1"},
                         body={"lines": [{"sku": "TEE", "quantity": 2}], "restock": False})
    assert refunded.status == 201, refunded.text
    assert line(get(api, order))["backordered"] == 0  # the two waiting units released, never sold
    assert api.request("POST", f"/orders/{order['order_id']}/cancel").status == 200
    stored = wiring.default_ports().store.get_order(order["order_id"])
    # The TEE sold comes back (the refund by line restocked nothing); the two released before, never sold, do not.
    assert sum_units(stored.refunds[-1].restocked) == {"TEE": 1, "MUG": 1}
    sent = boto3.client("sqs").receive_message(QueueUrl=queues["restock"], MaxNumberOfMessages=10)["Messages"]
    assert failed_ids(deliver("restock", *(m["Body"] for m in sent))) == set()
    assert admin_view(api)["levels"] == {"on_hand": 1, "available": 1, "reserved": 0, "sold": 0}
    assert allowance(api) == {"on_hand": 3, "available": 3, "reserved": 0, "sold": 0}
    assert ledger_matches_levels(api)


def test_a_fill_that_fails_after_an_arrival_is_queued_and_the_restock_worker_fills_it(api, queues, monkeypatch):
    from shop.services import backorders

    make_sku(api, "TEE", on_hand=0, backorder_limit=3)
    waiting = place(api, ("TEE", 2)).json()
    real_fill = backorders.fill

    def throttled(ports, code, **kwargs):
        raise RuntimeError("ProvisionedThroughputExceededException")

    monkeypatch.setattr(backorders, "fill", throttled)
    received = api.admin("POST", "/admin/skus/TEE/adjustments", body={"delta": 2, "reason": "goods in"})
    assert received.status == 201, received.text  # the arrival itself is committed and answered
    assert line(get(api, waiting))["backordered"] == 2
    sent = boto3.client("sqs").receive_message(QueueUrl=queues["restock"], MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"]) | {"message_id": None} for m in sent] == [
        {"kind": "rebalance", "sku": "TEE", "message_id": None}]
    monkeypatch.setattr(backorders, "fill", real_fill)
    assert failed_ids(deliver("restock", *(m["Body"] for m in sent))) == set()
    assert line(get(api, waiting))["backordered"] == 0
    assert allowance(api)["reserved"] == 0 and admin_view(api)["levels"]["available"] == 0
    assert ledger_matches_levels(api)


def test_a_trim_that_fails_is_queued_and_the_restock_worker_brings_the_allowance_down(api, queues, monkeypatch):
    from shop.services import backorders

    make_sku(api, "TEE", on_hand=0, backorder_limit=3)
    waiting = place(api, ("TEE", 2)).json()
    make_sku(api, "TEE", on_hand=0, backorder_limit=0)  # lowered below what waits: the two stay
    assert allowance(api)["reserved"] == 2
    real_trim = backorders.trim

    def throttled(ports, code, **kwargs):
        raise RuntimeError("ProvisionedThroughputExceededException")

    monkeypatch.setattr(backorders, "trim", throttled)
    cancelled = api.request("POST", f"/orders/{waiting['order_id']}/cancel")
    assert cancelled.status == 200, cancelled.text
    assert allowance(api) == {"on_hand": 2, "available": 2, "reserved": 0, "sold": 0}  # above the limit of 0
    sent = boto3.client("sqs").receive_message(QueueUrl=queues["restock"], MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"])["kind"] for m in sent] == ["rebalance"]
    monkeypatch.setattr(backorders, "trim", real_trim)
    assert failed_ids(deliver("restock", *(m["Body"] for m in sent))) == set()
    assert allowance(api)["on_hand"] == 0
    assert api.request("GET", "/skus/TEE").json()["backorder"] is None  # a limit of 0: no backorders offered
    assert failed_ids(deliver("restock", *(m["Body"] for m in sent))) == set()  # redelivered: nothing more moves
    assert allowance(api)["on_hand"] == 0 and ledger_matches_levels(api)


def test_a_fill_that_cannot_be_queued_either_is_logged_and_the_arrival_still_stands(api, monkeypatch):
    from shop.services import backorders

    make_sku(api, "TEE", on_hand=0, backorder_limit=3)
    waiting = place(api, ("TEE", 1)).json()
    real_fill = backorders.fill

    def throttled(ports, code, **kwargs):
        raise RuntimeError("ProvisionedThroughputExceededException")

    monkeypatch.setattr(backorders, "fill", throttled)  # and no restock queue is configured here
    received = api.admin("POST", "/admin/skus/TEE/adjustments", body={"delta": 1, "reason": "goods in"})
    assert received.status == 201, received.text
    assert admin_view(api)["levels"]["available"] == 1 and line(get(api, waiting))["backordered"] == 1
    monkeypatch.setattr(backorders, "fill", real_fill)
    assert api.admin("POST", "/admin/skus/TEE/adjustments", body={"delta": 1, "reason": "goods in"}).status == 201
    assert line(get(api, waiting))["backordered"] == 0  # the next movement of the SKU fills it


def test_operators_list_the_orders_waiting_for_a_sku_in_the_order_they_will_be_filled(api):
    make_sku(api, "TEE", on_hand=1, backorder_limit=10)
    first = place(api, ("TEE", 3)).json()  # one in stock, two waiting
    second = place(api, ("TEE", 4), key="k2", user="bob").json()
    third = place(api, ("TEE", 1), key="k3", user="carol").json()
    listed = api.admin("GET", "/admin/skus/TEE/backorders")
    assert listed.status == 200, listed.text
    body = listed.json()
    assert (body["sku"], body["backorder_limit"], body["waiting_orders"], body["waiting_units"]) == ("TEE", 10, 3, 7)
    assert [(o["order_id"], o["units"]) for o in body["items"]] == [
        (first["order_id"], 2), (second["order_id"], 4), (third["order_id"], 1)]
    assert body["items"][0]["backordered_at"] == first["created_at"]
    assert [o["order_id"] for o in api.admin("GET", "/admin/skus/TEE/backorders?limit=2").json()["items"]] == [
        first["order_id"], second["order_id"]]
    api.admin("POST", "/admin/skus/TEE/adjustments", body={"delta": 3, "reason": "goods in"})  # first, then 1 of 4
    after = api.admin("GET", "/admin/skus/TEE/backorders").json()
    assert [(o["order_id"], o["units"]) for o in after["items"]] == [(second["order_id"], 3), (third["order_id"], 1)]
    assert after["waiting_units"] == 4 == admin_view(api)["backordered"]


def test_the_waiting_list_answers_clearly_for_other_skus_and_bad_input(api):
    make_sku(api, "CAP", on_hand=1)
    empty = api.admin("GET", "/admin/skus/CAP/backorders").json()
    assert (empty["backorder_limit"], empty["waiting_orders"], empty["items"]) == (0, 0, [])
    assert api.admin("GET", "/admin/skus/NOPE/backorders").status == 404
    assert api.admin("GET", "/admin/skus/CAP/backorders?limit=0").status == 422
    assert api.admin("GET", "/admin/skus/CAP/backorders?cursor=x").status == 422  # undeclared parameter
    assert api.request("GET", "/admin/skus/CAP/backorders").status == 403  # operators only
