"""Expiry on time on real Step Functions, which truncates a `Wait` timestamp to the second (moto does not).

The execution input is what the `Wait` state reads; modelled here as Step Functions treats it: the execution
wakes at its timestamp with the milliseconds cut off, and the expiry message is delivered once, at that moment.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import boto3

from shop.adapters import wiring
from shop.adapters.workflows import wake_at
from shop.domain import clock
from tests.api.test_expiry_and_restock import deliver, expire_msg, failed_ids
from tests.api.test_orders_api import make_sku, place
from shop.workflows import PAYMENT_WINDOW_ASL

PLACED_AT = datetime(2026, 11, 23, 10, 15, 42, 731000, tzinfo=timezone.utc)  # milliseconds, as orders have


def truncated(timestamp: str) -> datetime:
    """What Step Functions waits until for a `Wait` timestamp: the time up to seconds, milliseconds cut off."""
    return clock.parse_iso(timestamp).replace(microsecond=0)


def test_wake_time_is_never_before_expiry_and_whole_seconds():
    assert wake_at("2026-11-23T10:30:42.731Z") == "2026-11-23T10:30:43Z"
    assert wake_at("2026-11-23T10:30:42.000Z") == "2026-11-23T10:30:42Z"
    assert wake_at("2026-12-31T23:59:59.001Z") == "2027-01-01T00:00:00Z"


def test_an_execution_woken_at_its_truncated_timestamp_releases_on_the_first_delivery(api, queues, monkeypatch):
    machine = boto3.client("stepfunctions").create_state_machine(
        name="shop-payment-window", definition=PAYMENT_WINDOW_ASL.read_text(),
        roleArn="arn:aws:iam::123456789012:role/shop-payment-window", type="STANDARD")["stateMachineArn"]
    monkeypatch.setenv("PAYMENT_WINDOW_STATE_MACHINE_ARN", machine)
    wiring.reset()
    make_sku(api, "TEE", on_hand=5)
    monkeypatch.setattr(clock, "now", lambda: PLACED_AT)
    order = place(api, ("TEE", 2)).json()
    assert clock.parse_iso(order["expires_at"]).microsecond  # the window ends mid-second

    (execution,) = boto3.client("stepfunctions").list_executions(stateMachineArn=machine)["executions"]
    given = json.loads(boto3.client("stepfunctions").describe_execution(
        executionArn=execution["executionArn"])["input"])
    woken = truncated(given["expires_at"])
    assert woken >= clock.parse_iso(order["expires_at"])  # never before the order is due
    assert (woken - clock.parse_iso(order["expires_at"])).total_seconds() < 1
    # Handing Step Functions `expires_at` itself would have woken the execution early, and the consumer
    # would have answered "not yet due" (a redelivery a visibility timeout later):
    assert truncated(order["expires_at"]) < clock.parse_iso(order["expires_at"])

    monkeypatch.setattr(clock, "now", lambda: woken)  # the message is delivered the moment the Wait ends
    assert failed_ids(deliver("stock_release", expire_msg(order["order_id"]))) == set()
    assert api.request("GET", f"/orders/{order['order_id']}").json()["status"] == "EXPIRED"
