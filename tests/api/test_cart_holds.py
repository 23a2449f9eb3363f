"""Cart holds through the real handlers (moto): place, change, renew, release, expire (timer and sweeper), and
POST /orders taking a hold over (docs/cart-holds.md)."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import boto3
import pytest

from shop.adapters import wiring
from shop.domain import clock
from shop.workflows import PAYMENT_WINDOW_ASL, render
from tests.api.test_expiry_and_restock import deliver, failed_ids, ledger_reasons, levels
from tests.api.test_orders_api import make_sku, place


def hold(api, cart, *lines, user="alice"):
    return api.request("POST", f"/carts/{cart}/holds", user=user,
                       body={"items": [{"sku": s, "quantity": q} for s, q in lines]})


def later(monkeypatch, seconds):
    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() + timedelta(seconds=seconds))


def hold_msg(hold_id, scheduled_for=None):
    return json.dumps({"hold_id": hold_id, "reason": "cart_hold_expired",
                       **({"scheduled_for": scheduled_for} if scheduled_for else {})})


def test_a_hold_reserves_its_lines_and_the_ledger_names_it(api):
    make_sku(api, "TEE", on_hand=10)
    made = hold(api, "cart-1", ("TEE", 3))
    assert made.status == 201, made.text
    body = made.json()
    assert body["status"] == "active" and body["lines"] == [{"sku": "TEE", "quantity": 3}]
    seconds = (clock.parse_iso(body["expires_at"]) - clock.parse_iso(body["created_at"])).total_seconds()
    assert seconds == 900  # CART_HOLD_SECONDS by default
    assert (clock.parse_iso(body["max_expires_at"]) - clock.parse_iso(body["created_at"])).total_seconds() == 3600
    assert levels(api) == {"on_hand": 10, "available": 7, "reserved": 3, "sold": 0}
    entry = api.admin("GET", "/admin/skus/TEE/ledger").json()["items"][-1]
    assert (entry["reason"], entry["order_id"], entry["reference"]) == ("cart_hold_placed", None, body["hold_id"])
    assert api.request("GET", "/carts/cart-1/holds").json() == body
    assert api.request("GET", "/carts/cart-1/holds", user="bob").status == 404  # someone else's cart: not found


def test_changing_the_lines_moves_only_the_difference_and_short_stock_is_409(api):
    make_sku(api, "TEE", on_hand=5)
    make_sku(api, "MUG", on_hand=5)
    hold(api, "c", ("TEE", 2), ("MUG", 1))
    changed = hold(api, "c", ("TEE", 4))  # MUG left out: released; TEE 2 -> 4
    assert changed.status == 200 and changed.json()["lines"] == [{"sku": "TEE", "quantity": 4}]
    assert levels(api, "TEE")["reserved"] == 4 and levels(api, "MUG")["reserved"] == 0
    short = hold(api, "c", ("TEE", 6))
    assert short.status == 409 and short.json()["shortages"] == [{"sku": "TEE", "requested": 6, "available": 5}]
    assert levels(api, "TEE")["reserved"] == 4  # nothing changed
    same = hold(api, "c", ("TEE", 4))  # the same lines again (a retry): nothing moves
    assert same.status == 200 and levels(api, "TEE") == {"on_hand": 5, "available": 1, "reserved": 4, "sold": 0}
    assert ledger_reasons(api, "MUG") == ["initial_stock", "cart_hold_placed", "cart_hold_changed"]


def test_validation_and_limits(api):
    make_sku(api, "TEE", on_hand=500, max_per_order=2)
    make_sku(api, "OFF", on_hand=5, active=False)
    assert hold(api, "c", ("TEE", 3)).json()["skus"][0]["reason"] == "max_per_order"
    assert hold(api, "c", ("OFF", 1)).status == 422
    assert hold(api, "c", ("NOPE", 1)).status == 422
    assert hold(api, "bad cart!", ("TEE", 1)).status == 422
    assert hold(api, "x" * 65, ("TEE", 1)).status == 422
    assert api.request("POST", "/carts/c/holds", body={"items": []}).status == 422
    assert api.request("POST", "/carts/c/holds", body={"items": [{"sku": "TEE", "quantity": 0}]}).status == 422
    assert api.request("POST", "/carts/c/holds", body={"items": [{"sku": "TEE", "quantity": 1}],
                                                       "price": 1}).status == 422
    assert api.request("POST", "/carts/c/holds", user=None, body={"items": []}).status == 401
    assert api.request("POST", "/carts/c/holds", body={"renew": True}).status == 404  # never held
    assert levels(api)["reserved"] == 0


def test_renew_extends_within_the_maximum_then_409_once_ended(api, monkeypatch):
    monkeypatch.setenv("CART_HOLD_MAX_SECONDS", "1500")
    wiring.reset()
    make_sku(api, "TEE", on_hand=5)
    first = hold(api, "c", ("TEE", 1)).json()
    later(monkeypatch, 500)
    renewed = api.request("POST", "/carts/c/holds", body={"renew": True}).json()
    assert first["expires_at"] < renewed["expires_at"] < renewed["max_expires_at"]
    assert renewed["version"] == first["version"] + 1
    later(monkeypatch, 500)  # 1000 s after placement: capped at 1500 s
    capped = api.request("POST", "/carts/c/holds", body={"renew": True}).json()
    assert capped["expires_at"] == capped["max_expires_at"] == clock.iso(
        clock.parse_iso(first["created_at"]) + timedelta(seconds=1500))
    released = api.request("DELETE", "/carts/c/holds")
    assert released.status == 200 and released.json()["status"] == "released"
    assert released.json()["ended_by"] == "released_by_customer"
    again = api.request("POST", "/carts/c/holds", body={"renew": True})
    assert again.status == 409 and again.json()["type"] == "/problems/cart-hold-not-active"
    assert api.request("DELETE", "/carts/c/holds").json()["version"] == released.json()["version"]  # idempotent
    assert levels(api) == {"on_hand": 5, "available": 5, "reserved": 0, "sold": 0}


def test_an_order_takes_the_hold_over_without_moving_stock(api):
    make_sku(api, "TEE", on_hand=5)
    held = hold(api, "c", ("TEE", 2)).json()
    order = place(api, ("TEE", 2), cart_id="c")
    assert order.status == 201, order.text
    body = order.json()
    assert body["cart_hold"] == {"cart_id": "c", "hold_id": held["hold_id"], "status": "converted"}
    assert levels(api) == {"on_hand": 5, "available": 3, "reserved": 2, "sold": 0}  # reserved once, not twice
    converted = api.request("GET", "/carts/c/holds").json()
    assert converted["status"] == "converted" and converted["ended_by"] == body["order_id"]
    entries = api.admin("GET", "/admin/skus/TEE/ledger").json()["items"]
    handover = [(e["reason"], e["order_id"], e["delta"]["reserved"]) for e in entries
                if e["reason"] == "cart_hold_converted"]
    assert sorted(handover, key=str) == sorted([("cart_hold_converted", None, -2),
                                                ("cart_hold_converted", body["order_id"], 2)], key=str)
    replay = place(api, ("TEE", 2), cart_id="c")  # same key and body: the same answer
    assert replay.json() == body and replay.headers.get("idempotent-replayed") == "true"
    # The order's reservation ends like any other's: cancelling releases it.
    assert api.request("POST", f"/orders/{body['order_id']}/cancel").status == 200
    assert levels(api) == {"on_hand": 5, "available": 5, "reserved": 0, "sold": 0}


def test_order_lines_must_match_the_hold(api):
    make_sku(api, "TEE", on_hand=5)
    make_sku(api, "MUG", on_hand=5)
    hold(api, "c", ("TEE", 2))
    differs = place(api, ("TEE", 1), ("MUG", 1), cart_id="c")
    assert differs.status == 409 and differs.json()["type"] == "/problems/cart-hold-mismatch"
    assert differs.json()["skus"] == [{"sku": "MUG", "held": 0, "requested": 1},
                                      {"sku": "TEE", "held": 2, "requested": 1}]
    assert levels(api, "TEE")["reserved"] == 2 and api.request("GET", "/carts/c/holds").json()["status"] == "active"
    # Another customer's order naming this cart id names their own (empty) cart: a plain order.
    other = place(api, ("TEE", 1), cart_id="c", user="bob", key="bob-1")
    assert other.status == 201 and "cart_hold" not in other.json()


def test_an_expired_unreleased_hold_is_released_by_the_order_that_names_it(api, monkeypatch):
    make_sku(api, "TEE", on_hand=2)
    hold(api, "c", ("TEE", 2))
    later(monkeypatch, 901)  # expired; its timer has not fired yet
    order = place(api, ("TEE", 2), cart_id="c")  # every unit is held by the expired hold: freed in the same write
    assert order.status == 201, order.text
    assert order.json()["cart_hold"]["status"] == "released"
    assert levels(api) == {"on_hand": 2, "available": 0, "reserved": 2, "sold": 0}
    assert api.request("GET", "/carts/c/holds").json()["ended_by"] == "expired"


def test_expiry_message_releases_once_and_a_renewed_hold_is_left_alone(api, queues, monkeypatch):
    make_sku(api, "TEE", on_hand=5)
    first = hold(api, "c", ("TEE", 2)).json()
    from shop.adapters.workflows import wake_at

    early = deliver("stock_release", hold_msg(first["hold_id"], wake_at(first["expires_at"])))
    assert len(failed_ids(early)) == 1  # its own timer, early: retried later, nothing released
    later(monkeypatch, 300)
    renewed = api.request("POST", "/carts/c/holds", body={"renew": True}).json()
    later(monkeypatch, 650)  # past the first expiry, before the renewed one
    stale = deliver("stock_release", hold_msg(first["hold_id"], wake_at(first["expires_at"])))
    assert failed_ids(stale) == set() and levels(api)["reserved"] == 2  # renewed: the old timer does nothing
    later(monkeypatch, 400)  # past the renewed expiry
    for _ in range(2):  # redelivered: released once
        assert failed_ids(deliver("stock_release", hold_msg(renewed["hold_id"], wake_at(renewed["expires_at"])))) == set()
    assert levels(api) == {"on_hand": 5, "available": 5, "reserved": 0, "sold": 0}
    assert ledger_reasons(api) == ["initial_stock", "cart_hold_placed", "cart_hold_expired"]
    got = api.request("GET", "/carts/c/holds").json()
    assert (got["status"], got["ended_by"]) == ("released", "expired")
    assert len(failed_ids(deliver("stock_release", hold_msg("hold_" + "0" * 24)))) == 1  # unknown: poison
    late_order = place(api, ("TEE", 2), cart_id="c")  # after expiry: a plain order
    assert late_order.status == 201 and "cart_hold" not in late_order.json()


def test_the_sweeper_queues_overdue_holds(api, queues, monkeypatch):
    make_sku(api, "TEE", on_hand=5)
    held = hold(api, "c", ("TEE", 1)).json()
    hold(api, "d", ("TEE", 1))
    api.request("DELETE", "/carts/d/holds")
    later(monkeypatch, 1000)
    from expiry_sweeper.handler import lambda_handler as sweep
    from localrun.lambdas import LocalContext

    assert sweep({}, LocalContext("expiry_sweeper"))["holds_requeued"] == 1  # the released one is not swept
    sqs = boto3.client("sqs")
    (message,) = sqs.receive_message(QueueUrl=queues["stock_release"], MaxNumberOfMessages=10)["Messages"]
    assert json.loads(message["Body"]) == {"hold_id": held["hold_id"], "reason": "sweeper"}
    assert failed_ids(deliver("stock_release", message["Body"])) == set()
    assert levels(api)["reserved"] == 0


def test_the_hold_timer_runs_on_the_payment_window_state_machine(api, queues, monkeypatch):
    from moto.core.config import default_user_config

    monkeypatch.setitem(default_user_config, "stepfunctions", {"execute_state_machine": True})  # run the ASL
    machine = boto3.client("stepfunctions").create_state_machine(
        name="shop-payment-window", definition=render(PAYMENT_WINDOW_ASL, {"StockReleaseQueueUrl": queues["stock_release"]}),
        roleArn="arn:aws:iam::123456789012:role/shop-payment-window", type="STANDARD")["stateMachineArn"]
    monkeypatch.setenv("PAYMENT_WINDOW_STATE_MACHINE_ARN", machine)
    monkeypatch.setenv("CART_HOLD_SECONDS", "1")
    wiring.reset()
    make_sku(api, "TEE", on_hand=5)
    held = hold(api, "c", ("TEE", 2)).json()
    hold(api, "c", ("TEE", 2))  # the same hold again (renewed within the same second or the next): no error
    sfn = boto3.client("stepfunctions")
    executions = sfn.list_executions(stateMachineArn=machine)["executions"]
    assert executions and all(e["name"].startswith(held["hold_id"] + "-") for e in executions)
    given = json.loads(sfn.describe_execution(executionArn=executions[-1]["executionArn"])["input"])
    assert set(given) == {"hold_id", "expires_at"}
    # The machine's hold branch sends the expiry to the stock_release queue once the Wait is over.
    got = boto3.client("sqs").receive_message(QueueUrl=queues["stock_release"], WaitTimeSeconds=5,
                                              MaxNumberOfMessages=1).get("Messages", [])
    assert got and json.loads(got[0]["Body"]) == {"hold_id": held["hold_id"], "scheduled_for": given["expires_at"],
                                                  "reason": "cart_hold_expired"}
    # Moto runs each execution on its own thread, which outlives the test unless waited for: a Wait still running
    # would send its message into the next test's queue (same name, fresh moto state).
    deadline = time.monotonic() + 15
    while any(e["status"] == "RUNNING" for e in sfn.list_executions(stateMachineArn=machine)["executions"]):
        assert time.monotonic() < deadline, "a payment-window execution never finished"
        time.sleep(0.2)
