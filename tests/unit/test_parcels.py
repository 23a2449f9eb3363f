"""Parcel status rules (shop.domain.parcels): one vocabulary, never backwards, checkpoints deduplicated, polling
intervals that grow while nothing changes and reset on news, and the maximum ages that end a parcel as stale."""

from __future__ import annotations

from dataclasses import replace

from shop.domain.parcels import Checkpoint, ParcelStatus, ParcelTracking, PollPolicy, Tracking, all_delivered
from shop.domain.statuses import BookingStatus

P = ParcelStatus


def cp(at: str, status: ParcelStatus, text: str = "") -> Checkpoint:
    return Checkpoint(at=at, status=status, description=text or status.value)


def parcel(**fields) -> ParcelTracking:
    return replace(ParcelTracking.started(carrier_code=None, booked=True, at="t0"), **fields)


def track(tracking: ParcelTracking, news: Tracking, *, at: str):
    return tracking.with_news(news, at=at)


def test_status_moves_forward_and_a_late_scan_never_moves_it_back():
    first = track(parcel(), Tracking((cp("2026-01-01T10:00:00.000Z", P.IN_TRANSIT),
                                      cp("2026-01-02T10:00:00.000Z", P.OUT_FOR_DELIVERY))), at="t1")
    assert first.status is P.OUT_FOR_DELIVERY and first.previous is P.LABEL_CREATED and first.new_checkpoints == 2
    late = track(first.tracking, Tracking((cp("2026-01-01T12:00:00.000Z", P.IN_TRANSIT, "late scan"),)), at="t2")
    assert late.status is P.OUT_FOR_DELIVERY and not late.status_changed  # kept as a checkpoint, status unchanged
    assert [c.at for c in late.tracking.checkpoints] == sorted(c.at for c in late.tracking.checkpoints)
    assert len(late.tracking.checkpoints) == 3
    delivered = track(late.tracking, Tracking((cp("2026-01-03T09:00:00.000Z", P.DELIVERED),)), at="t3")
    assert delivered.status is P.DELIVERED
    # Nothing leaves a final status, not even the carrier's overall status saying otherwise.
    after = track(delivered.tracking, Tracking((cp("2026-01-04T09:00:00.000Z", P.EXCEPTION),), status=P.IN_TRANSIT),
                  at="t4")
    assert after.status is P.DELIVERED and after.tracking.status == "delivered"
    assert after.tracking.status_changed_at == "t3"


def test_sideways_moves_between_equal_ranks():
    out = track(parcel(status=P.OUT_FOR_DELIVERY), Tracking((cp("2026-01-01T10:00:00.000Z", P.DELIVERY_FAILED),)),
                at="t")
    assert out.status is P.DELIVERY_FAILED
    again = track(out.tracking, Tracking((cp("2026-01-02T10:00:00.000Z", P.OUT_FOR_DELIVERY),)), at="t")
    assert again.status is P.OUT_FOR_DELIVERY


def test_duplicate_checkpoints_are_recorded_once():
    scan = cp("2026-01-01T10:00:00.000Z", P.IN_TRANSIT, "arrived at hub")
    once = track(parcel(), Tracking((scan, scan)), at="t1")
    assert once.new_checkpoints == 1 and len(once.tracking.checkpoints) == 1
    twice = track(once.tracking, Tracking((scan,)), at="t2")  # the same scan polled again, or pushed and polled
    assert twice.new_checkpoints == 0 and twice.tracking is once.tracking  # nothing to write


def test_backoff_intervals_grow_while_quiet_and_stop_at_the_last():
    policy = PollPolicy(intervals=(3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600))
    assert [policy.interval(n) for n in range(6)] == [10800, 21600, 43200, 86400, 86400, 86400]
    # News resets the quiet count: the next interval is the first again.
    news = track(parcel(quiet_polls=3), Tracking((cp("2026-01-01T10:00:00.000Z", P.IN_TRANSIT),)), at="t")
    assert news.tracking.quiet_polls == 0 and news.tracking.next_poll_in(policy) == 10800


def test_maximum_ages_end_a_parcel_as_stale():
    policy = PollPolicy(intervals=(1,), max_age_seconds=30 * 86400, no_record_seconds=3 * 86400)
    assert parcel().stale_reason_at(policy, 3 * 86400 - 1) is None
    assert parcel().stale_reason_at(policy, 3 * 86400) == "no_record"  # never a single scan in 3 days
    moving = parcel(status=P.IN_TRANSIT, checkpoints=(cp("2026-01-01T10:00:00.000Z", P.IN_TRANSIT),))
    assert moving.stale_reason_at(policy, 29 * 86400) is None
    assert moving.stale_reason_at(policy, 30 * 86400) == "max_age"
    assert replace(moving, status=P.DELIVERED).stale_reason_at(policy, 90 * 86400) is None  # finished: never stale
    stale = moving.stale_at("t9", "max_age")
    assert stale.status is P.STALE and stale.terminal and not stale.final and stale.stale_reason == "max_age"
    # A stale parcel is revived by later carrier news.
    revived = track(stale, Tracking((cp("2026-02-01T10:00:00.000Z", P.OUT_FOR_DELIVERY),)), at="t10")
    assert revived.status is P.OUT_FOR_DELIVERY and revived.previous is P.STALE


def test_all_delivered_needs_every_parcel():
    assert not all_delivered(())
    assert not all_delivered((parcel(status=P.DELIVERED), parcel(status=P.RETURNING)))
    assert not all_delivered((parcel(status=P.DELIVERED), None))  # a free-text parcel nobody follows
    assert all_delivered((parcel(status=P.DELIVERED), parcel(status=P.DELIVERED)))


def test_a_status_is_its_stored_word_in_str_format_and_json():
    import json

    assert str(P.DELIVERED) == f"{P.DELIVERED}" == "delivered" and json.dumps([P.STALE]) == '["stale"]'
    assert P("in_transit") is P.IN_TRANSIT and P.IN_TRANSIT == "in_transit"


def test_only_the_newest_checkpoints_are_kept_with_their_texts_bounded():
    many = Tracking(tuple(cp(f"2026-01-01T10:{m:02d}:00.000Z", P.IN_TRANSIT, "x" * 500) for m in range(55)))
    kept = track(parcel(), many, at="t").tracking
    assert len(kept.checkpoints) == 50 and kept.checkpoints[0].at == "2026-01-01T10:05:00.000Z"
    assert kept.last_checkpoint_at == "2026-01-01T10:54:00.000Z" and len(kept.checkpoints[0].description) == 200
    # A kept checkpoint keeps the id of the scan as reported: the same long scan again is not new.
    again = track(kept, Tracking((cp("2026-01-01T10:54:00.000Z", P.IN_TRANSIT, "x" * 500),)), at="t2")
    assert again.new_checkpoints == 0 and again.tracking is kept


def test_polls_count_quiet_turns_and_note_a_silent_carrier():
    policy = PollPolicy(intervals=(10, 20, 40))
    quiet = parcel().polled(at="t1", answered=True, news=False).polled(at="t2", answered=False, news=False)
    assert (quiet.polls, quiet.quiet_polls, quiet.last_polled_at) == (2, 2, "t2")
    assert quiet.last_poll_error == "carrier did not answer" and quiet.next_poll_in(policy) == 40
    assert parcel(quiet_polls=2).polled(at="t3", answered=True, news=True).quiet_polls == 2  # reset by the news


def test_the_waybill_booking_saga_and_what_a_returning_parcel_means():
    pending = ParcelTracking.started(carrier_code="shunfeng", booked=False, at="t0")
    assert pending.booking_pending and pending.status is P.LABEL_CREATED and pending.tracking_started_at == "t0"
    failed = pending.booking_failed("timeout").booking_failed("timeout again")
    assert failed.booking_pending and failed.booking_attempts == 2 and failed.booking_error == "timeout again"
    booked = failed.booked("labels/o/s.pdf")
    assert booked.booking is BookingStatus.BOOKED and booked.booking_error is None and booked.booking_attempts == 2
    assert booked.label_key == "labels/o/s.pdf" and booked.with_subscription().subscribed
    refused = track(booked, Tracking((cp("2026-01-01T10:00:00.000Z", P.IN_TRANSIT),), status=P.RETURNING,
                                     refused=True), at="t1").tracking
    assert refused.coming_back and refused.return_reason == "refused by the recipient"
    assert not replace(refused, refused=False).coming_back  # returning without a refusal: not back yet
    assert replace(refused, status=P.RETURNED, refused=False).return_reason == "returned by the carrier"


def test_the_order_of_statuses_a_parcel_moves_through():
    from shop.domain.parcels import may_move

    forward = [(P.LABEL_CREATED, P.IN_TRANSIT), (P.IN_TRANSIT, P.OUT_FOR_DELIVERY), (P.OUT_FOR_DELIVERY, P.RETURNING),
               (P.RETURNING, P.DELIVERED), (P.RETURNING, P.RETURNED), (P.IN_TRANSIT, P.DELIVERED)]
    sideways = [(P.IN_TRANSIT, P.EXCEPTION), (P.EXCEPTION, P.IN_TRANSIT), (P.AVAILABLE_FOR_PICKUP, P.OUT_FOR_DELIVERY),
                (P.DELIVERY_FAILED, P.AVAILABLE_FOR_PICKUP), (P.STALE, P.LABEL_CREATED), (P.LABEL_CREATED, P.STALE)]
    backwards = [(P.IN_TRANSIT, P.LABEL_CREATED), (P.EXCEPTION, P.LABEL_CREATED), (P.OUT_FOR_DELIVERY, P.IN_TRANSIT),
                 (P.RETURNING, P.OUT_FOR_DELIVERY), (P.AVAILABLE_FOR_PICKUP, P.EXCEPTION)]
    for current, new in forward + sideways:
        assert may_move(current, new), (current, new)
    for current, new in backwards:
        assert not may_move(current, new), (current, new)
    for final in (P.DELIVERED, P.RETURNED):  # the carrier's last word: not even to the other final one
        assert not any(may_move(final, new) for new in P), final
    assert all(may_move(None, new) for new in P)  # a parcel with no status yet takes any


def test_a_scan_is_one_checkpoint_however_its_texts_are_given():
    at = "2026-01-01T10:00:00.000Z"
    plain = Checkpoint(at, P.IN_TRANSIT)
    assert plain == Checkpoint(at, P.IN_TRANSIT, "", "", False, "")
    assert plain.checkpoint_id == Checkpoint(at, P.IN_TRANSIT, description="").checkpoint_id
    assert Checkpoint(at, P.IN_TRANSIT, "ab", "c").checkpoint_id != Checkpoint(at, P.IN_TRANSIT, "a", "bc").checkpoint_id
    assert Checkpoint(at, P.IN_TRANSIT, "a").checkpoint_id != Checkpoint(at, P.OUT_FOR_DELIVERY, "a").checkpoint_id
    long = Checkpoint(at, P.IN_TRANSIT, "d" * 300, "l" * 300, raw_code="r" * 40).bounded()
    assert (len(long.description), len(long.location), len(long.raw_code)) == (200, 200, 32)
    news = track(parcel(), Tracking((plain,)), at="t1")
    assert not news.refused and not news.tracking.refused  # a scan is not a refusal unless it says so


def test_the_default_polling_policy_is_the_settings_default():
    from shop.settings import Settings

    assert PollPolicy() == Settings().poll_policy() == PollPolicy(
        intervals=(3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600), max_age_seconds=30 * 86400, no_record_seconds=3 * 86400)


def test_a_refusal_is_kept_once_reported_by_a_scan_or_by_the_carrier():
    at = "2026-01-01T10:00:00.000Z"
    refused_scan = Checkpoint(at, P.RETURNING, "refused", refused=True)
    by_scan = track(parcel(status=P.OUT_FOR_DELIVERY), Tracking((refused_scan,)), at="t1")
    assert by_scan.refused and by_scan.tracking.refused and by_scan.tracking.coming_back
    later = track(by_scan.tracking, Tracking((cp("2026-01-02T10:00:00.000Z", P.RETURNING, "on its way back"),)),
                  at="t2")
    assert later.tracking.refused  # a later plain scan does not undo it
    polled_plain = track(by_scan.tracking, Tracking((), status=P.RETURNING), at="t3")
    assert polled_plain.tracking.refused
    # The carrier says so without a scan: recorded all the same.
    by_carrier = track(parcel(status=P.OUT_FOR_DELIVERY), Tracking((), refused=True), at="t4")
    assert by_carrier.tracking.refused and by_carrier.tracking is not parcel(status=P.OUT_FOR_DELIVERY)
    assert not parcel(status=P.IN_TRANSIT, refused=True).coming_back  # refused but not yet on its way back
    assert parcel(status=P.RETURNED).coming_back  # returned by the carrier, refused or not


def test_the_carriers_overall_status_moves_the_parcel_without_a_new_scan():
    moved = track(parcel(), Tracking((), status=P.IN_TRANSIT), at="t1")
    assert (moved.status, moved.tracking.status, moved.tracking.status_changed_at) == (P.IN_TRANSIT, P.IN_TRANSIT, "t1")
    assert moved.status_changed and moved.new_checkpoints == 0
    # Among equals the carrier's overall word comes last: a failed attempt scanned, the parcel out again.
    out = parcel(status=P.OUT_FOR_DELIVERY)
    again = track(out, Tracking((cp("2026-01-02T10:00:00.000Z", P.DELIVERY_FAILED),), status=P.OUT_FOR_DELIVERY),
                  at="t2")
    assert again.status is P.OUT_FOR_DELIVERY and again.new_checkpoints == 1
    same = track(out, Tracking((), status=P.OUT_FOR_DELIVERY), at="t3")
    assert same.tracking is out and not same.status_changed


def test_a_new_parcel_is_not_yet_pushed_and_an_answered_poll_records_no_error():
    started = ParcelTracking.started(carrier_code=None, booked=True, at="t0")
    assert not started.subscribed and started.with_subscription().subscribed
    assert started.polled(at="t1", answered=True, news=False).last_poll_error is None
