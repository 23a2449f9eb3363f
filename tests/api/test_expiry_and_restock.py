"""Issue 3 consumers on moto: stock_release, restock and the expiry sweeper, fed real SQS batch events."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest

from localrun.lambdas import LocalContext
from localrun.workers import sqs_event
from shop.adapters import wiring
from shop.domain import clock
from shop.services import orders as order_service
from tests.api.test_orders_api import make_sku, place


def deliver(function: str, *bodies: str, ids: list[str] | None = None) -> dict:
    import importlib

    messages = [{"MessageId": (ids or [])[i] if ids else str(uuid.uuid4()), "ReceiptHandle": "rh", "Body": body,
                 "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"}}
                for i, body in enumerate(bodies)]
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    handler = importlib.import_module(f"{function}.handler").lambda_handler
    try:
        return handler(sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:q"), LocalContext(function))
    except BatchProcessingError:  # Powertools fails the whole invocation when every record failed
        return {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in messages]}


def expire_msg(order_id: str) -> str:
    return json.dumps({"order_id": order_id, "reason": "payment_window_expired"})


def failed_ids(result: dict) -> set[str]:
    return {f["itemIdentifier"] for f in result["batchItemFailures"]}


def levels(api, code="TEE"):
    return api.admin("GET", f"/admin/skus/{code}").json()["levels"]


def ledger_reasons(api, code="TEE"):
    return [e["reason"] for e in api.admin("GET", f"/admin/skus/{code}/ledger").json()["items"]]


@pytest.fixture
def due_now(monkeypatch):
    monkeypatch.setenv("PAYMENT_WINDOW_SECONDS", "0")
    wiring.reset()


def test_unpaid_order_expires_and_its_stock_returns(api, queues, due_now):
    make_sku(api, "TEE", on_hand=5)
    order = place(api, ("TEE", 2)).json()
    assert failed_ids(deliver("stock_release", expire_msg(order["order_id"]))) == set()
    got = api.request("GET", f"/orders/{order['order_id']}").json()
    assert got["status"] == "EXPIRED" and got["history"][-1]["reason"] == "payment_window_expired"
    assert levels(api) == {"on_hand": 5, "available": 5, "reserved": 0, "sold": 0}
    assert ledger_reasons(api) == ["initial_stock", "order_placed", "payment_window_expired"]


def test_duplicate_deliveries_release_once(api, queues, due_now):
    make_sku(api, "TEE", on_hand=5)
    order = place(api, ("TEE", 2)).json()
    body = expire_msg(order["order_id"])
    assert failed_ids(deliver("stock_release", body, body, body)) == set()
    assert failed_ids(deliver("stock_release", body)) == set()
    assert ledger_reasons(api).count("payment_window_expired") == 1
    assert levels(api)["available"] == 5


def test_paid_order_is_not_expired(api, queues, due_now):
    make_sku(api, "TEE", on_hand=5)
    order = place(api, ("TEE", 2)).json()
    order_service.mark_paid(wiring.default_ports(), order["order_id"], actor="provider:test")
    assert failed_ids(deliver("stock_release", expire_msg(order["order_id"]))) == set()
    assert api.request("GET", f"/orders/{order['order_id']}").json()["status"] == "PAID"
    assert levels(api) == {"on_hand": 3, "available": 3, "reserved": 0, "sold": 2}


def test_cancelled_order_releases_once(api, queues, due_now):
    make_sku(api, "TEE", on_hand=5)
    order = place(api, ("TEE", 2)).json()
    api.request("POST", f"/orders/{order['order_id']}/cancel")
    assert failed_ids(deliver("stock_release", expire_msg(order["order_id"]))) == set()
    assert api.request("GET", f"/orders/{order['order_id']}").json()["status"] == "CANCELLED"
    assert ledger_reasons(api) == ["initial_stock", "order_placed", "cancelled_by_customer"]


def test_early_expiry_message_is_retried_not_dropped(api, queues):
    make_sku(api, "TEE", on_hand=5)
    order = place(api, ("TEE", 1)).json()  # a 900 s window
    result = deliver("stock_release", expire_msg(order["order_id"]), ids=["early"])
    assert failed_ids(result) == {"early"}
    assert api.request("GET", f"/orders/{order['order_id']}").json()["status"] == "PENDING_PAYMENT"


def test_poison_messages_fail_alone(api, queues, due_now):
    make_sku(api, "TEE", on_hand=5)
    order = place(api, ("TEE", 1)).json()
    result = deliver("stock_release", "{not json", json.dumps({"reason": "sweeper"}),
                     expire_msg("ord_" + "a" * 26), expire_msg(order["order_id"]), "x" * 20000,
                     ids=["bad-json", "no-order-id", "unknown-order", "good", "huge"])
    assert failed_ids(result) == {"bad-json", "no-order-id", "unknown-order", "huge"}
    assert api.request("GET", f"/orders/{order['order_id']}").json()["status"] == "EXPIRED"


def test_restock_applies_once_per_message(api, queues, due_now):
    make_sku(api, "TEE", on_hand=5)
    order = place(api, ("TEE", 3)).json()
    order_service.mark_paid(wiring.default_ports(), order["order_id"], actor="provider:test")
    body = json.dumps({"message_id": "refund-1-TEE", "sku": "TEE", "quantity": 2, "order_id": order["order_id"],
                       "reason": "refund_restock"})
    assert failed_ids(deliver("restock", body, body)) == set()
    assert failed_ids(deliver("restock", body)) == set()
    assert levels(api) == {"on_hand": 4, "available": 4, "reserved": 0, "sold": 1}
    too_many = json.dumps({"message_id": "refund-2", "sku": "TEE", "quantity": 5, "order_id": None,
                           "reason": "refund_restock"})
    bad = json.dumps({"message_id": "x", "sku": "TEE", "quantity": "2", "reason": "r"})
    assert failed_ids(deliver("restock", too_many, bad, ids=["too-many", "bad"])) == {"too-many", "bad"}


def test_sweeper_expires_orders_whose_window_never_started(api, queues, monkeypatch):
    # StartExecution fails (the state machine does not exist): the order is still placed, and only
    # the sweeper is left to expire it.
    monkeypatch.setenv("PAYMENT_WINDOW_STATE_MACHINE_ARN",
                       "arn:aws:states:us-east-1:123456789012:stateMachine:missing")
    wiring.reset()
    make_sku(api, "TEE", on_hand=5)
    placed = place(api, ("TEE", 2))
    assert placed.status == 201
    order = placed.json()
    assert boto3.client("stepfunctions").list_state_machines()["stateMachines"] == []
    import expiry_sweeper.handler as sweeper

    assert sweeper.lambda_handler({}, LocalContext("expiry_sweeper"))["requeued"] == 0  # not due yet
    later = clock.parse_iso(order["expires_at"])
    from datetime import timedelta

    monkeypatch.setattr(clock, "now", lambda: later + timedelta(seconds=31))
    assert sweeper.lambda_handler({}, LocalContext("expiry_sweeper"))["requeued"] == 1
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=queues["stock_release"], MaxNumberOfMessages=10)["Messages"]
    assert failed_ids(deliver("stock_release", *[m["Body"] for m in messages])) == set()
    assert api.request("GET", f"/orders/{order['order_id']}").json()["status"] == "EXPIRED"
    assert levels(api)["available"] == 5
    # Only unpaid orders are in the sweeper's index: an expired one is not found again.
    assert sweeper.lambda_handler({}, LocalContext("expiry_sweeper"))["requeued"] == 0
