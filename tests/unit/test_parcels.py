"""Parcel status rules (shop.domain.parcels): one vocabulary, never backwards, checkpoints deduplicated, polling
intervals that grow while nothing changes and reset on news, and the maximum ages that end a parcel as stale."""

from __future__ import annotations

from shop.domain.parcels import Checkpoint, ParcelStatus, PollPolicy, Tracking, all_delivered, stale_reason, track

P = ParcelStatus


def cp(at: str, status: ParcelStatus, text: str = "") -> Checkpoint:
    return Checkpoint(at=at, status=status, description=text or status.value)


def parcel(**fields):
    return {"shipment_id": "shp_1", "status": "label_created", "checkpoints": [], "quiet_polls": 0, **fields}


def test_status_moves_forward_and_a_late_scan_never_moves_it_back():
    first = track(parcel(), Tracking((cp("2026-01-01T10:00:00.000Z", P.IN_TRANSIT),
                                      cp("2026-01-02T10:00:00.000Z", P.OUT_FOR_DELIVERY))), at="t1")
    assert first.status is P.OUT_FOR_DELIVERY and first.previous is P.LABEL_CREATED and first.new_checkpoints == 2
    late = track(first.parcel, Tracking((cp("2026-01-01T12:00:00.000Z", P.IN_TRANSIT, "late scan"),)), at="t2")
    assert late.status is P.OUT_FOR_DELIVERY and not late.status_changed  # kept as a checkpoint, status unchanged
    assert [c["at"] for c in late.parcel["checkpoints"]] == sorted(c["at"] for c in late.parcel["checkpoints"])
    assert len(late.parcel["checkpoints"]) == 3
    delivered = track(late.parcel, Tracking((cp("2026-01-03T09:00:00.000Z", P.DELIVERED),)), at="t3")
    assert delivered.status is P.DELIVERED
    # Nothing leaves a final status, not even the carrier's overall status saying otherwise.
    after = track(delivered.parcel, Tracking((cp("2026-01-04T09:00:00.000Z", P.EXCEPTION),), status=P.IN_TRANSIT),
                  at="t4")
    assert after.status is P.DELIVERED and after.parcel["status"] == "delivered"


def test_sideways_moves_between_equal_ranks():
    out = track(parcel(status="out_for_delivery"), Tracking((cp("2026-01-01T10:00:00.000Z", P.DELIVERY_FAILED),)),
                at="t")
    assert out.status is P.DELIVERY_FAILED
    again = track(out.parcel, Tracking((cp("2026-01-02T10:00:00.000Z", P.OUT_FOR_DELIVERY),)), at="t")
    assert again.status is P.OUT_FOR_DELIVERY


def test_duplicate_checkpoints_are_recorded_once():
    scan = cp("2026-01-01T10:00:00.000Z", P.IN_TRANSIT, "arrived at hub")
    once = track(parcel(), Tracking((scan, scan)), at="t1")
    assert once.new_checkpoints == 1 and len(once.parcel["checkpoints"]) == 1
    twice = track(once.parcel, Tracking((scan,)), at="t2")  # the same scan polled again, or pushed and polled
    assert twice.new_checkpoints == 0 and twice.parcel is once.parcel  # nothing to write


def test_backoff_intervals_grow_while_quiet_and_stop_at_the_last():
    policy = PollPolicy(intervals=(3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600))
    assert [policy.interval(n) for n in range(6)] == [10800, 21600, 43200, 86400, 86400, 86400]
    # News resets the quiet count: the next interval is the first again.
    news = track(parcel(quiet_polls=3), Tracking((cp("2026-01-01T10:00:00.000Z", P.IN_TRANSIT),)), at="t")
    assert news.parcel["quiet_polls"] == 0 and policy.interval(news.parcel["quiet_polls"]) == 10800


def test_maximum_ages_end_a_parcel_as_stale():
    policy = PollPolicy(intervals=(1,), max_age_seconds=30 * 86400, no_record_seconds=3 * 86400)
    assert stale_reason(parcel(), policy, 3 * 86400 - 1) is None
    assert stale_reason(parcel(), policy, 3 * 86400) == "no_record"  # never a single scan in 3 days
    moving = parcel(status="in_transit", checkpoints=[cp("2026-01-01T10:00:00.000Z", P.IN_TRANSIT).to_dict()])
    assert stale_reason(moving, policy, 29 * 86400) is None
    assert stale_reason(moving, policy, 30 * 86400) == "max_age"
    assert stale_reason({**moving, "status": "delivered"}, policy, 90 * 86400) is None  # finished: never stale


def test_all_delivered_needs_every_parcel():
    assert not all_delivered(())
    assert not all_delivered(({"status": "delivered"}, {"status": "returning"}))
    assert all_delivered(({"status": "delivered"}, {"status": "delivered"}))


def test_a_status_is_its_stored_word_in_str_format_and_json():
    import json

    assert str(P.DELIVERED) == f"{P.DELIVERED}" == "delivered" and json.dumps([P.STALE]) == '["stale"]'
    assert P("in_transit") is P.IN_TRANSIT and P.IN_TRANSIT == "in_transit"
