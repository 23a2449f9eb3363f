"""Waybills and courier status (issue 14, fulfilment): Kuaidi100 against its offline fake (localrun/fake_carriers.py,
served on a loopback port), the courier-poll execution in moto, push callbacks through the real handler."""

from __future__ import annotations

import boto3
import pytest

from localrun.fake_carriers import FakeCarriers
from shop.adapters import aws, wiring
from shop.payments import http_client
from shop.services import fulfilment
from shop.workflows import COURIER_POLL_ASL, render
from tests.api.test_orders_api import make_sku
from tests.api.test_payment_webhooks import get, paid_order
from tests.loopback import serve_fakes

pytestmark = pytest.mark.usefixtures("provider_env")


@pytest.fixture
def carriers(api, monkeypatch):
    """The carrier fakes on a loopback port, their keys in the environment, a label bucket and the courier-poll state
    machine (the ASL file) in moto."""
    fakes = FakeCarriers.from_env({})
    server, base = serve_fakes({"fakes": fakes})
    for name, value in fakes.function_env(base).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CARRIER_WEBHOOK_BASE_URL", "https://shop.example")
    monkeypatch.setenv("COURIER_POLL_INTERVALS", "10,20,40")
    boto3.client("s3").create_bucket(Bucket="labels-test")
    monkeypatch.setenv("LABEL_BUCKET", "labels-test")
    queue = boto3.client("sqs").create_queue(QueueName="courier-poll")["QueueUrl"]
    arn = boto3.client("stepfunctions").create_state_machine(
        name="courier-poll", definition=render(COURIER_POLL_ASL, {"CourierPollQueueUrl": queue}),
        roleArn="arn:aws:iam::123456789012:role/sfn")["stateMachineArn"]
    monkeypatch.setenv("COURIER_POLL_STATE_MACHINE_ARN", arn)
    aws.reset_clients()
    wiring.reset()
    yield fakes
    server.shutdown()


@pytest.fixture
def paid(api):
    make_sku(api, "TEE", on_hand=10)
    make_sku(api, "CAP", on_hand=10)
    return paid_order(api, ("TEE", 2), ("CAP", 1))


def ship(api, order, key, **body):
    return api.admin("POST", f"/admin/orders/{order['order_id']}/shipments", body=body,
                     headers={"Idempotency-Key": key})


def push(api, fakes, number, status):
    """The carrier records a scan and pushes it, signed, to our webhook route."""
    found = fakes.advance(number, status)
    assert found is not None
    carrier, path, headers, body = found
    return api.request("POST", path, user=None, headers=dict(headers), raw=body)


def admin_order(api, order):
    return api.admin("GET", f"/admin/orders?order_number={order['order_number']}").json()["items"][0]


def test_split_shipment_whose_parcels_end_differently(api, carriers, paid):
    first = ship(api, paid, "p1", carrier="kuaidi100", carrier_code="shunfeng", lines=[{"sku": "TEE", "quantity": 2}])
    assert first.status == 201, first.text
    parcel = first.json()["shipment"]
    # Booked through Kuaidi100's e-waybill API: the tracking number and a printable label, not typed in.
    assert parcel["tracking_number"].startswith("SF") and parcel["status"] == "label_created"
    # A short-lived presigned GET of the PDF stored in the private bucket.
    assert "Expires=" in parcel["label_url"] or "X-Amz-Expires=300" in parcel["label_url"]
    key = parcel["tracking"]["label_key"]
    assert key in parcel["label_url"]
    assert boto3.client("s3").get_object(Bucket="labels-test", Key=key)["Body"].read().startswith(b"%PDF")
    second = ship(api, paid, "p2", carrier="kuaidi100", carrier_code="zhongtong").json()
    assert second["status"] == "SHIPPED"
    numbers = [parcel["tracking_number"], second["shipment"]["tracking_number"]]
    assert numbers[0] != numbers[1]

    assert push(api, carriers, numbers[0], "in_transit").status == 200
    assert push(api, carriers, numbers[0], "delivered").status == 200
    assert push(api, carriers, numbers[1], "refused").status == 200  # refused at the door: on its way back
    order = get(api, paid)
    assert [s["status"] for s in order["shipments"]] == ["delivered", "returning"]
    assert order["status"] == "SHIPPED"  # not every parcel delivered
    assert [c["status"] for c in order["shipments"][0]["checkpoints"]] == ["in_transit", "delivered"]
    # The refused parcel opened an approved return of its units (after-sales), once.
    assert push(api, carriers, numbers[1], "returned").status == 200
    order = admin_order(api, paid)
    assert [s["status"] for s in order["shipments"]] == ["delivered", "returned"]
    assert order["open_after_sales"] == 1 and len(order["after_sales"]) == 1


def test_polling_against_a_carrier_that_fails_twice_then_answers(api, carriers, paid, monkeypatch):
    monkeypatch.setattr(http_client, "ATTEMPTS", 1)  # one request per poll: the fake's failures reach the poll
    shipped = ship(api, paid, "p1", carrier="kuaidi100", carrier_code="shunfeng").json()
    shipment_id, number = shipped["shipment"]["shipment_id"], shipped["shipment"]["tracking_number"]
    carriers.advance(number, "in_transit")  # scanned at the carrier; no push sent (polling must find it)
    carriers.fail_next(2)
    ports = wiring.default_ports()
    turns = [fulfilment.poll_parcel(ports, paid["order_id"], shipment_id) for _ in range(3)]
    # An outage changes no status and backs off (10 s, then 20 s, then 40 s); the answer resets to the first.
    assert [(t["status"], t["wait_seconds"], t["done"]) for t in turns] == [
        ("label_created", 20, False), ("label_created", 40, False), ("in_transit", 10, False)]
    parcel = admin_order(api, paid)["shipments"][0]
    assert parcel["status"] == "in_transit" and parcel["tracking"]["polls"] == 3
    assert fulfilment.poll_parcel(ports, paid["order_id"], shipment_id)["wait_seconds"] == 20  # quiet again


def test_a_push_ends_the_wait_early_and_a_bad_signature_changes_nothing(api, carriers, paid):
    shipped = ship(api, paid, "p1", carrier="kuaidi100", carrier_code="shunfeng").json()
    shipment_id, number = shipped["shipment"]["shipment_id"], shipped["shipment"]["tracking_number"]
    sfn = boto3.client("stepfunctions")
    arn = sfn.list_executions(stateMachineArn=wiring.default_ports().tracking.state_machine_arn)["executions"]
    assert [(e["name"], e["status"]) for e in arn] == [(shipment_id, "RUNNING")]  # one execution, named by parcel
    before = admin_order(api, paid)

    found = carriers.advance(number, "delivered")
    assert found is not None
    _, path, headers, body = found
    forged = body.replace(b"sign=", b"sign=0")  # a signature that is not Kuaidi100's
    rejected = api.request("POST", path, user=None, headers=dict(headers), raw=forged)
    assert rejected.status == 401 and rejected.headers["content-type"] == "application/problem+json"
    assert admin_order(api, paid) == before  # nothing changed

    accepted = api.request("POST", path, user=None, headers=dict(headers), raw=body)
    assert accepted.status == 200 and accepted.json() == {"result": True, "returnCode": "200", "message": "成功"}
    order = get(api, paid)
    assert order["status"] == "DELIVERED" and order["shipments"][0]["status"] == "delivered"
    (execution,) = sfn.list_executions(stateMachineArn=arn[0]["stateMachineArn"])["executions"]
    assert execution["status"] == "ABORTED"  # the final status ended the loop's wait at once
    # The same push again (the carrier retries): the checkpoint is recorded once.
    again = api.request("POST", path, user=None, headers=dict(headers), raw=body)
    assert again.status == 200 and len(get(api, paid)["shipments"][0]["checkpoints"]) == 1


def test_all_parcels_delivered_completes_the_order_after_the_confirmation_period(api, carriers, paid, monkeypatch):
    import expiry_sweeper.handler as sweeper
    from localrun.lambdas import LocalContext

    monkeypatch.setenv("ORDER_CONFIRMATION_SECONDS", "3600")
    shipped = ship(api, paid, "p1", carrier="sandbox").json()
    number = shipped["shipment"]["tracking_number"]
    assert push(api, carriers, number, "delivered").status == 200
    order = admin_order(api, paid)
    assert order["status"] == "DELIVERED" and order["complete_after"] > order["updated_at"]
    sweeper.lambda_handler({}, LocalContext("expiry_sweeper"))
    assert get(api, paid)["status"] == "DELIVERED"  # the period is not over

    monkeypatch.setenv("ORDER_CONFIRMATION_SECONDS", "0")
    other = paid_order(api, ("TEE", 1), key="k2")
    number = ship(api, other, "o1", carrier="sandbox").json()["shipment"]["tracking_number"]
    assert push(api, carriers, number, "delivered").status == 200
    done = sweeper.lambda_handler({}, LocalContext("expiry_sweeper"))
    assert done["orders_completed"] == 1
    completed = get(api, other)
    assert completed["status"] == "COMPLETED" and completed["history"][-1]["reason"] == "confirmation period over"
    assert get(api, paid)["status"] == "DELIVERED"


def test_maximum_age_ends_the_loop_as_stale_and_tells_operators(api, carriers, paid, monkeypatch):
    from datetime import timedelta

    from shop.domain import clock
    from tests.ddblocal.conftest import Recorder

    shipped = ship(api, paid, "p1", carrier="kuaidi100", carrier_code="shunfeng").json()
    shipment_id = shipped["shipment"]["shipment_id"]
    ports = wiring.default_ports()
    recorder = Recorder()
    monkeypatch.setattr(ports, "events", recorder)
    soon = fulfilment.poll_parcel(ports, paid["order_id"], shipment_id, now=clock.now() + timedelta(days=2))
    assert (soon["status"], soon["done"]) == ("label_created", False)
    # 3 days (PARCEL_NO_RECORD_SECONDS) without a single scan: stale, the loop ends, operators are told.
    late = fulfilment.poll_parcel(ports, paid["order_id"], shipment_id, now=clock.now() + timedelta(days=3, seconds=1))
    assert (late["status"], late["done"]) == ("stale", True)
    stale = [detail for kind, detail in recorder.calls if kind == "parcel.stale"]
    assert len(stale) == 1 and stale[0]["reason"] == "no_record" and stale[0]["previous_status"] == "label_created"
    assert fulfilment.poll_parcel(ports, paid["order_id"], shipment_id)["done"] is True  # nothing polled any more


def test_the_courier_poll_consumer_answers_its_task_and_reports_poison(api, carriers, paid):
    import json

    import courier_poll.handler as consumer
    from localrun.lambdas import LocalContext
    from localrun.workers import sqs_event

    shipped = ship(api, paid, "p1", carrier="kuaidi100", carrier_code="shunfeng").json()
    good = {"MessageId": "m1", "ReceiptHandle": "r1", "Body": json.dumps({
        "task_token": "token-of-a-finished-task", "order_id": paid["order_id"],
        "shipment_id": shipped["shipment"]["shipment_id"]})}
    poison = {"MessageId": "m2", "ReceiptHandle": "r2", "Body": json.dumps({"order_id": "x"})}
    answer = consumer.lambda_handler(sqs_event([good, poison], "arn:aws:sqs:us-east-1:123456789012:q"),
                                     LocalContext("courier_poll"))
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    assert admin_order(api, paid)["shipments"][0]["tracking"]["polls"] == 1
