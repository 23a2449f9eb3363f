"""After-sales over the HTTP handlers (moto): customers open requests with presigned evidence uploads, operators
approve, reject and receive returns; money goes back through the refund saga; an open request blocks COMPLETED."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta

import boto3
import pytest

from shop.adapters import aws, wiring
from shop.domain import clock
from tests.api.test_expiry_and_restock import deliver, failed_ids, levels
from tests.api.test_orders_api import make_sku, place
from tests.api.test_payment_webhooks import get, paid_order

pytestmark = pytest.mark.usefixtures("provider_env")
BUCKET = "shop-evidence-tests"


@pytest.fixture
def evidence(api, queues, monkeypatch):
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("EVIDENCE_BUCKET", BUCKET)
    aws.reset_clients()
    wiring.reset()
    return BUCKET


@pytest.fixture
def events(evidence, monkeypatch):
    from tests.ddblocal.conftest import Recorder

    recorder = Recorder()
    monkeypatch.setattr(wiring.default_ports(), "events", recorder)
    return recorder


@pytest.fixture
def shipped(api, evidence):
    make_sku(api, "TEE", on_hand=10)  # 1999 USD
    make_sku(api, "CAP", on_hand=10)
    order = paid_order(api, ("TEE", 3), ("CAP", 1))
    assert api.admin("POST", f"/admin/orders/{order['order_id']}/shipments", body={},
                     headers={"Idempotency-Key": "all"}).status == 201
    return order


def request(api, order, *lines, kind="refund_only", key="as-1", photos=0, user="alice", **extra):
    body = {"type": kind, "lines": [{"sku": s, "quantity": q} for s, q in lines], "reason": "arrived torn",
            "photos": photos, **extra}
    return api.request("POST", f"/orders/{order['order_id']}/after-sales", user=user, body=body,
                       headers={"Idempotency-Key": key} if key else {})


def decide(api, after_sale_id, action, body=None):
    return api.admin("POST", f"/admin/after-sales/{after_sale_id}/{action}", body=body)


def restock_messages(queue_url):
    sqs = boto3.client("sqs")
    bodies = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return bodies
        for message in got:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def test_refund_only_approved_refunds_through_the_saga_and_the_customer_sees_it(api, shipped, events):
    opened = request(api, shipped, ("TEE", 2), photos=2)
    assert opened.status == 201, opened.text
    sale = opened.json()
    assert (sale["status"], sale["type"], sale["photos"]) == ("requested", "refund_only", 2)
    assert len(sale["uploads"]) == 2 and all(u["url"] and u["fields"]["key"] for u in sale["uploads"])
    sale_id = sale["after_sale_id"]
    mine = get(api, shipped)
    assert [(s["after_sale_id"], s["status"]) for s in mine["after_sales"]] == [(sale_id, "requested")]
    listed = api.request("GET", f"/orders/{shipped['order_id']}/after-sales").json()["items"]
    assert [s["status"] for s in listed] == ["requested"]
    queue = api.admin("GET", "/admin/after-sales?status=requested").json()["items"]
    assert [s["after_sale_id"] for s in queue] == [sale_id]
    assert len(queue[0]["photos"]) == 2 and queue[0]["photos"][0]["url"].startswith("http")

    approved = decide(api, sale_id, "approve")
    assert approved.status == 200, approved.text
    body = approved.json()
    assert body["status"] == "approved" and body["refund"]["status"] == "succeeded"
    assert body["refund"]["amount"] == 2 * 1999 and body["refund"]["after_sale_id"] == sale_id
    assert body["open_after_sales"] == 0
    again = decide(api, sale_id, "approve")  # a retry answers the same result, refunds nothing more
    assert again.status == 200 and again.json()["refund"] == body["refund"]
    assert decide(api, sale_id, "reject", {"reason": "late"}).status == 409
    order = get(api, shipped)
    assert order["amount_refunded"]["amount"] == 2 * 1999 and order["payment_status"] == "partially_refunded"
    assert order["after_sales"][0]["status"] == "approved"
    assert order["after_sales"][0]["refund"]["status"] == "succeeded"
    # Operators see the same summary shape on their order list (the OpenAPI OrderOut schema requires `refund`).
    number = order["order_number"]
    [listed] = api.admin("GET", f"/admin/orders?order_number={number}").json()["items"]
    assert listed["after_sales"][0]["refund"]["refund_id"] == body["refund"]["refund_id"]
    assert api.admin("GET", "/admin/after-sales?status=requested").json()["items"] == []
    assert [s["after_sale_id"] for s in api.admin("GET", "/admin/after-sales?status=approved").json()["items"]] \
        == [sale_id]
    kinds = [kind for kind, _ in events.calls]
    assert kinds.count("after_sale.requested") == 1 and kinds.count("after_sale.approved") == 1
    assert kinds.count("order.refunded") == 1


def test_reject_needs_a_reason_is_shown_and_frees_the_order(api, shipped, events):
    sale_id = request(api, shipped, ("CAP", 1)).json()["after_sale_id"]
    assert decide(api, sale_id, "reject", {}).status == 422
    assert decide(api, sale_id, "reject", {"reason": ""}).status == 422
    rejected = decide(api, sale_id, "reject", {"reason": "no damage visible in the photos"})
    assert rejected.status == 200 and rejected.json()["status"] == "rejected"
    assert decide(api, sale_id, "reject", {"reason": "no damage visible in the photos"}).status == 200  # a retry
    assert decide(api, sale_id, "approve").status == 409
    assert decide(api, sale_id, "received").status == 409
    shown = get(api, shipped)["after_sales"][0]
    assert (shown["status"], shown["decision_reason"]) == ("rejected", "no damage visible in the photos")
    assert get(api, shipped)["amount_refunded"]["amount"] == 0
    assert [k for k, _ in events.calls].count("after_sale.rejected") == 1
    # Rejected units may be asked for again (a new request).
    assert request(api, shipped, ("CAP", 1), key="as-2").status == 201


def test_return_is_refunded_at_receipt_and_restocked_exactly_once_under_redelivery(api, shipped, queues, events):
    before = levels(api)
    sale_id = request(api, shipped, ("TEE", 2), kind="return_and_refund").json()["after_sale_id"]
    approved = decide(api, sale_id, "approve").json()
    assert approved["status"] == "approved" and approved["refund"] is None  # money back at receipt
    assert approved["open_after_sales"] == 1  # still open: the goods are on their way back
    assert decide(api, sale_id, "received").status == 200
    again = decide(api, sale_id, "received")  # retried: the same refund, the same restock messages again
    assert again.status == 200 and again.json()["status"] == "received"
    assert again.json()["refund"]["status"] == "succeeded" and again.json()["open_after_sales"] == 0
    messages = restock_messages(queues["restock"])
    assert len(messages) == 2 and len({json.loads(m)["message_id"] for m in messages}) == 1
    for _ in range(2):  # SQS redelivers
        assert failed_ids(deliver("restock", *messages)) == set()
    after = levels(api)
    assert after["available"] == before["available"] + 2 and after["sold"] == before["sold"] - 2
    assert after["on_hand"] == before["on_hand"] + 2
    order = get(api, shipped)
    assert order["amount_refunded"]["amount"] == 2 * 1999
    assert [k for k, _ in events.calls].count("after_sale.received") == 1


def test_an_open_request_holds_the_order_back_from_completed(api, shipped):
    sale_id = request(api, shipped, ("TEE", 1)).json()["after_sale_id"]
    blocked = api.request("POST", f"/orders/{shipped['order_id']}/confirm-receipt")
    assert blocked.status == 409 and blocked.headers["content-type"] == "application/problem+json"
    assert blocked.json()["open_after_sales"] == 1 and get(api, shipped)["status"] == "SHIPPED"
    assert decide(api, sale_id, "reject", {"reason": "not eligible"}).status == 200
    done = api.request("POST", f"/orders/{shipped['order_id']}/confirm-receipt")
    assert done.status == 200 and done.json()["status"] == "COMPLETED"
    assert request(api, shipped, ("TEE", 1), key="after-completion").status == 409  # closed orders take none


def test_without_idempotency_key_each_post_opens_its_own_request(api, shipped):
    first = request(api, shipped, ("TEE", 1), key=None)
    second = request(api, shipped, ("TEE", 1), key=None)
    assert (first.status, second.status) == (201, 201), second.text
    assert first.json()["status"] == "requested" and first.json()["after_sale_id"] != second.json()["after_sale_id"]
    assert "idempotent-replayed" not in second.headers
    blank = api.request("POST", f"/orders/{shipped['order_id']}/after-sales", headers={"Idempotency-Key": " "},
                        body={"type": "refund_only", "lines": [{"sku": "TEE", "quantity": 1}], "reason": "torn"})
    assert blank.status == 400  # a blank key is a mistake, not "no key"


def test_bounds_ownership_idempotency_and_window(api, shipped, monkeypatch):
    assert request(api, shipped, ("TEE", 1), user="bob").status == 404
    assert request(api, shipped, ("TEE", 4)).status == 422  # 3 shipped
    assert request(api, shipped, ("HAT", 1)).status == 422
    assert request(api, shipped, ("TEE", 1), photos=7).status == 422  # AFTER_SALES_MAX_PHOTOS = 6
    assert request(api, shipped, ("TEE", 1), photos=1, photo_types=["image/svg+xml"]).status == 422
    assert request(api, shipped, ("TEE", 1), photos=2, photo_types=["image/png"]).status == 422
    assert request(api, shipped, ("TEE", 1), price=1).status == 422
    first = request(api, shipped, ("TEE", 2))
    replay = request(api, shipped, ("TEE", 2))
    assert (first.status, replay.status) == (201, 201) and replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["after_sale_id"] == first.json()["after_sale_id"]
    assert request(api, shipped, ("TEE", 1)).status == 422  # same key, other body
    over = request(api, shipped, ("TEE", 2), key="as-2")  # 2 of 3 claimed
    assert over.status == 422 and over.json()["skus"] == [{"sku": "TEE", "requested": 2, "requestable": 1}]
    assert request(api, shipped, ("TEE", 1), key="as-3").status == 201
    unshipped = place(api, ("CAP", 1), key="k2").json()
    assert request(api, unshipped, ("CAP", 1), key="as-4").status == 409  # unpaid, not shipped
    late = clock.now() + timedelta(days=16)  # shipped today: the window is 15 days
    monkeypatch.setattr(clock, "now", lambda: late)
    closed = request(api, shipped, ("CAP", 1), key="as-5")
    assert closed.status == 409 and closed.json()["type"].endswith("after-sales-window-closed")
    assert len(get(api, shipped)["after_sales"]) == 2


def _signing_key(secret: str, date: str, region: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def test_presigned_upload_limits_are_in_the_signed_post_policy(api, shipped):
    """The limits are conditions of the POST policy that S3 checks before it stores anything. Moto's S3 does not
    check POST policies at all (moto/s3/responses.py `_bucket_response_post` stores whatever is posted), so this
    test decodes the policy, checks every condition and that the signature covers exactly that policy. On AWS, an
    upload breaking a condition is refused: above the range `EntityTooLarge` (400), another key or content type
    `AccessDenied` "Invalid according to Policy: Policy Condition failed", after `expiration` "Invalid according to
    Policy: Policy expired" (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html)."""
    sale = request(api, shipped, ("TEE", 1), photos=3, photo_types=["image/jpeg", "image/png", "image/webp"]).json()
    prefix = f"after-sales/{sale['after_sale_id']}/"
    credentials = boto3.Session().get_credentials()
    keys = set()
    for upload, kind in zip(sale["uploads"], ["image/jpeg", "image/png", "image/webp"], strict=True):
        fields = upload["fields"]
        policy = json.loads(base64.b64decode(fields["policy"]))
        conditions = policy["conditions"]
        assert {"bucket": BUCKET} in conditions
        assert {"key": fields["key"]} in conditions and fields["key"].startswith(prefix)
        assert {"Content-Type": kind} in conditions and fields["Content-Type"] == kind
        assert ["content-length-range", 1, 10 * 1024 * 1024] in conditions
        assert not any(isinstance(c, list) and c[0] == "starts-with" for c in conditions)  # nothing left open
        expires = clock.parse_iso(policy["expiration"])
        assert timedelta(seconds=800) < expires - clock.now() <= timedelta(seconds=900)
        date, region = fields["x-amz-credential"].split("/")[1:3]
        expected = hmac.new(_signing_key(credentials.secret_key, date, region), fields["policy"].encode(),
                            hashlib.sha256).hexdigest()
        assert fields["x-amz-signature"] == expected
        keys.add(fields["key"])
    assert len(keys) == 3


def test_a_returned_parcel_opens_an_approved_return_once(api, shipped, events):
    from shop.services import after_sales

    ports = wiring.default_ports()
    shipment_id = get(api, shipped)["shipments"][0]["shipment_id"]
    first = after_sales.open_return_case(ports, shipped["order_id"], shipment_id=shipment_id,
                                         reason="refused at the door")
    again = after_sales.open_return_case(ports, shipped["order_id"], shipment_id=shipment_id,
                                         reason="refused at the door")
    assert first is not None and again is not None and first.after_sale_id == again.after_sale_id
    assert (first.status.value, first.type.value, first.source) == ("approved", "return_and_refund", "carrier")
    assert dict(first.lines) == {"TEE": 3, "CAP": 1}
    order = api.admin("GET", f"/admin/after-sales/{first.after_sale_id}").json()
    assert order["open_after_sales"] == 1
    assert api.request("POST", f"/orders/{shipped['order_id']}/confirm-receipt").status == 409
    assert request(api, shipped, ("TEE", 1)).status == 422  # every unit is claimed by the return
    received = decide(api, first.after_sale_id, "received").json()
    assert received["status"] == "received" and received["refund"]["amount"] == 3 * 1999 + 1999
    assert [k for k, _ in events.calls].count("after_sale.requested") == 1


def test_admin_listing_is_paginated_and_admin_only(api, shipped):
    ids = [request(api, shipped, ("TEE", 1), key=f"k{n}").json()["after_sale_id"] for n in range(3)]
    first = api.admin("GET", "/admin/after-sales?limit=2").json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = api.admin("GET", f"/admin/after-sales?limit=2&cursor={first['next_cursor']}").json()
    assert {s["after_sale_id"] for s in first["items"] + rest["items"]} == set(ids) and rest["next_cursor"] is None
    assert api.admin("GET", "/admin/after-sales?status=lost").status == 422
    assert api.admin("GET", "/admin/after-sales?cursor=bogus").status == 422
    assert api.request("GET", "/admin/after-sales").status == 403
    assert api.request("POST", f"/admin/after-sales/{ids[0]}/approve").status == 403
    assert api.admin("POST", "/admin/after-sales/as_nothere/approve").status == 404
    assert api.admin("POST", "/admin/after-sales/%3Cscript%3E/approve").status == 422


def test_admin_listing_queries_the_status_index_never_scans(api, shipped, monkeypatch):
    request(api, shipped, ("TEE", 1))
    store = wiring.default_ports().store
    calls: list[tuple[str, dict]] = []
    real = store.db

    class Recording:
        def __getattr__(self, name):
            method = getattr(real, name)

            def call(**kwargs):
                calls.append((name, kwargs))
                return method(**kwargs)
            return call

    monkeypatch.setattr(store, "db", Recording())
    listed = api.admin("GET", "/admin/after-sales?status=requested").json()["items"]
    assert len(listed) == 1
    assert "scan" not in {name for name, _ in calls}
    queries = [kwargs for name, kwargs in calls if name == "query"]
    assert queries and {q["IndexName"] for q in queries} == {"gsi2"}
    assert all(q["ExpressionAttributeValues"][":pk"]["S"].startswith("AFTERSALES#requested#") for q in queries)
