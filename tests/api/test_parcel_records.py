"""A followed parcel's `tracking` map on the order item (adapters/items.py, the only place that knows the stored
format): written with every attribute (null when not known), and maps written before that format, where an attribute
not yet set was sometimes absent and sometimes null, still read, serve and track."""

from __future__ import annotations

import boto3
import pytest

from shop.adapters import items
from shop.domain.parcels import Checkpoint, ParcelStatus, ParcelTracking, Tracking
from shop.domain.statuses import BookingStatus
from tests.api.conftest import TABLE
from tests.api.test_fulfilment import admin_order, carriers, paid, push, ship  # noqa: F401 - fixtures
from tests.api.test_payment_webhooks import get

pytestmark = pytest.mark.usefixtures("provider_env")

ONE_FORMAT = {"booking", "status", "status_changed_at", "tracking_started_at", "carrier_code", "checkpoints",
              "last_checkpoint_at", "refused", "stale_reason", "quiet_polls", "polls", "last_polled_at",
              "last_poll_error", "booking_attempts", "booking_error", "label_key", "subscribed", "shipped_event"}
# What the code before this format wrote for a parcel booked, announced, subscribed and scanned once: the attributes
# of polls, booking errors and staleness absent, `carrier_code` null.
OLD_SHAPE = ("carrier_code", "status", "checkpoints", "status_changed_at", "tracking_started_at", "quiet_polls",
             "booking", "label_key", "subscribed", "shipped_event", "refused", "last_checkpoint_at")


def stored(order_id: str) -> dict:
    key = items.encode(items.order_key(order_id))
    return items.decode(boto3.client("dynamodb").get_item(TableName=TABLE, Key=key, ConsistentRead=True)["Item"])


def test_a_parcel_stored_in_the_old_shape_reads_serves_and_tracks(api, carriers, paid):  # noqa: F811 - fixtures
    number = ship(api, paid, "p1", carrier="sandbox").json()["shipment"]["tracking_number"]
    assert push(api, carriers, number, "in_transit").status == 200
    item = stored(paid["order_id"])
    written = item["shipments"][0]["tracking"]
    assert set(written) == ONE_FORMAT and written["polls"] == 0 and written["booking_error"] is None
    old = {name: written[name] for name in OLD_SHAPE}
    boto3.client("dynamodb").put_item(TableName=TABLE, Item=items.encode(
        {**item, "shipments": [{**item["shipments"][0], "tracking": old}]}))

    parcel = admin_order(api, paid)["shipments"][0]
    assert parcel["status"] == "in_transit" and [c["status"] for c in parcel["checkpoints"]] == ["in_transit"]
    assert parcel["tracking"]["polls"] == 0 and parcel["tracking"]["stale_reason"] is None
    assert parcel["tracking"]["label_key"] == written["label_key"] and parcel["label_url"]
    customer = get(api, paid)["shipments"][0]
    assert set(customer) == {"shipment_id", "lines", "carrier", "tracking_number", "at", "actor", "status",
                             "carrier_code", "status_changed_at", "checkpoints", "warehouse"}
    # The carrier's push repeats the in_transit scan: recorded once (the stored checkpoint keeps its id).
    assert push(api, carriers, number, "delivered").status == 200
    parcel = admin_order(api, paid)["shipments"][0]
    assert [c["status"] for c in parcel["checkpoints"]] == ["in_transit", "delivered"]
    rewritten = stored(paid["order_id"])["shipments"][0]["tracking"]
    assert set(rewritten) == ONE_FORMAT and rewritten["status"] == "delivered"
    assert rewritten["checkpoints"][0] == written["checkpoints"][0]


def test_absent_and_null_attributes_read_the_same_and_one_format_is_written():
    absent = {"booking": "pending", "status": "label_created", "checkpoints": [], "status_changed_at": "t0",
              "tracking_started_at": "t0", "quiet_polls": 0, "carrier_code": "shunfeng", "booking_error": "timeout",
              "booking_attempts": 2}
    null = {**absent, "label_key": None, "polls": None, "subscribed": None, "refused": None, "stale_reason": None,
            "last_checkpoint_at": None, "shipped_event": None, "last_polled_at": None, "last_poll_error": None}
    read = items.parcel_tracking_from_record(absent)
    assert read == items.parcel_tracking_from_record(null)
    assert read == ParcelTracking(booking=BookingStatus.PENDING, status=ParcelStatus.LABEL_CREATED,
                                  status_changed_at="t0", tracking_started_at="t0", carrier_code="shunfeng",
                                  booking_attempts=2, booking_error="timeout")
    assert items.parcel_tracking_from_record(None) is None
    record = items.parcel_tracking_to_record(read)
    assert set(record) == ONE_FORMAT and items.parcel_tracking_from_record(record) == read
    scan = Checkpoint("2026-01-01T10:00:00.000Z", ParcelStatus.IN_TRANSIT, "hub", "Shenzhen", raw_code="0")
    full = read.booked("labels/o/s.pdf").with_news(Tracking((scan,)), at="t1").tracking
    assert items.parcel_tracking_from_record(items.parcel_tracking_to_record(full)) == full
