"""Parcels: one status vocabulary for every carrier, checkpoints deduplicated, a status that never moves backwards.

A parcel is one shipment of an order (`Order.shipments`); a parcel followed through a carrier adapter carries its
`ParcelTracking`. A carrier adapter turns what the carrier says into a `Tracking` (`Checkpoint`s with a status from
`ParcelStatus`); `ParcelTracking.with_news` merges it into the parcel. Pure rules, no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum

from shop.domain.statuses import BookingStatus


class ParcelStatus(StrEnum):
    """A parcel's courier status (SPEC: a shipment's `status`): each member is its value as a str."""

    LABEL_CREATED = "label_created"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERY_FAILED = "delivery_failed"
    AVAILABLE_FOR_PICKUP = "available_for_pickup"
    DELIVERED = "delivered"
    RETURNING = "returning"
    RETURNED = "returned"
    EXCEPTION = "exception"
    STALE = "stale"


P = ParcelStatus
# How far along a parcel is. A checkpoint whose status ranks below the parcel's current one is kept in the list but
# does not move the status (carriers report late scans out of order). Equal ranks move sideways (a failed attempt,
# then out for delivery again). `stale` is ours, not the carrier's: any later carrier news replaces it.
RANK: dict[ParcelStatus, int] = {
    P.STALE: 0, P.LABEL_CREATED: 0, P.IN_TRANSIT: 1, P.EXCEPTION: 1,
    P.OUT_FOR_DELIVERY: 2, P.DELIVERY_FAILED: 2, P.AVAILABLE_FOR_PICKUP: 2,
    P.RETURNING: 3, P.DELIVERED: 4, P.RETURNED: 4,
}
# The carrier's last word: nothing moves a parcel out of these (the polling loop ends).
FINAL = frozenset({P.DELIVERED, P.RETURNED})
# The polling loop ends on these (a stale parcel may still be revived by a push callback).
TERMINAL = FINAL | {P.STALE}
MAX_CHECKPOINTS = 50  # kept per parcel (newest), bounding the order item
MAX_TEXT = 200


@dataclass(frozen=True)
class Checkpoint:
    """One scan of a parcel, as the carrier reports it and as the parcel keeps it."""

    at: str  # ISO 8601 UTC with Z
    status: ParcelStatus
    description: str = ""
    location: str = ""
    refused: bool = False  # the recipient refused the parcel (it is returning or returned)
    raw_code: str = ""  # the carrier's own code, for operators
    # Stable over polls and callbacks: the same scan reported twice is one checkpoint. Derived from the scan when
    # not given; a kept checkpoint keeps the id it was recorded with (its texts may have been shortened since).
    checkpoint_id: str = ""

    def __post_init__(self) -> None:
        if not self.checkpoint_id:
            text = "|".join((self.at, self.status.value, self.description, self.location))
            object.__setattr__(self, "checkpoint_id", hashlib.sha256(text.encode()).hexdigest()[:16])

    def bounded(self) -> Checkpoint:
        """The checkpoint as a parcel keeps it: texts cut to bound the order item, the same id."""
        return replace(self, description=self.description[:MAX_TEXT], location=self.location[:MAX_TEXT],
                       raw_code=self.raw_code[:32])


@dataclass(frozen=True)
class Tracking:
    """What a carrier says about one parcel: its checkpoints and, when it says so, its overall status."""

    checkpoints: tuple[Checkpoint, ...]
    status: ParcelStatus | None = None
    refused: bool = False


def may_move(current: ParcelStatus | None, new: ParcelStatus) -> bool:
    """A status moves forward (or sideways), never backwards, and never out of a final one."""
    if current is None:
        return True
    if current in FINAL:
        return False
    return RANK[new] >= RANK[current]


@dataclass(frozen=True)
class PollPolicy:
    """Polling intervals (grow while nothing changes, back to the first on news) and the maximum ages."""

    intervals: tuple[int, ...] = (3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600)
    max_age_seconds: int = 30 * 24 * 3600  # since tracking started, without reaching a final status
    no_record_seconds: int = 3 * 24 * 3600  # since tracking started, without any checkpoint

    def interval(self, quiet_polls: int) -> int:
        return self.intervals[min(max(quiet_polls, 0), len(self.intervals) - 1)]


@dataclass(frozen=True)
class ParcelTracking:
    """A parcel followed through a carrier adapter: its courier status and checkpoints, its waybill booking, its
    polling state. One shape: every field is always there (None, 0 or False until it is known)."""

    booking: BookingStatus  # the waybill: pending until the carrier gave the tracking number
    status: ParcelStatus | None
    status_changed_at: str | None
    tracking_started_at: str | None  # when the parcel was recorded: the maximum ages count from here
    carrier_code: str | None = None  # the carrier company at an aggregator (Kuaidi100 `com`, AfterShip `slug`)
    checkpoints: tuple[Checkpoint, ...] = ()  # sorted by time, deduplicated, the newest MAX_CHECKPOINTS
    last_checkpoint_at: str | None = None
    refused: bool = False  # the recipient refused the parcel at the door
    stale_reason: str | None = None  # why polling ended without a final status (`no_record`, `max_age`)
    quiet_polls: int = 0  # polls in a row that brought no new checkpoint (the polling interval grows with them)
    polls: int = 0
    last_polled_at: str | None = None
    last_poll_error: str | None = None  # set when a poll found the carrier silent (kept as the last one seen)
    booking_attempts: int = 0  # failed calls to book the waybill
    booking_error: str | None = None  # why the last booking call failed (cleared once booked)
    label_key: str | None = None  # the label PDF in the label bucket
    subscribed: bool = False  # the carrier pushes this parcel's news to our webhook
    shipped_event: str | None = None  # order.shipped / order.partially_shipped, once published

    @classmethod
    def started(cls, *, carrier_code: str | None, booked: bool, at: str) -> ParcelTracking:
        """A parcel just recorded: label created, its waybill booked already (a tracking number was given) or not."""
        return cls(booking=BookingStatus.BOOKED if booked else BookingStatus.PENDING, status=ParcelStatus.LABEL_CREATED,
                   status_changed_at=at, tracking_started_at=at, carrier_code=carrier_code)

    # ---- the waybill ----

    @property
    def booking_pending(self) -> bool:
        return self.booking is BookingStatus.PENDING

    def booking_failed(self, error: str) -> ParcelTracking:
        return replace(self, booking_attempts=self.booking_attempts + 1, booking_error=error)

    def booked(self, label_key: str | None) -> ParcelTracking:
        return replace(self, booking=BookingStatus.BOOKED, booking_error=None, label_key=label_key)

    def with_subscription(self) -> ParcelTracking:
        return replace(self, subscribed=True)

    def announced(self, event: str) -> ParcelTracking:
        return replace(self, shipped_event=event)

    # ---- courier status ----

    @property
    def final(self) -> bool:
        return self.status in FINAL

    @property
    def terminal(self) -> bool:
        """No more polling: a final status, or stale."""
        return self.status in TERMINAL

    @property
    def delivered(self) -> bool:
        return self.status is ParcelStatus.DELIVERED

    @property
    def coming_back(self) -> bool:
        """Returned to the sender, or refused at the door and on its way back: its return case opens."""
        return self.status is ParcelStatus.RETURNED or (self.status is ParcelStatus.RETURNING and self.refused)

    @property
    def return_reason(self) -> str:
        return "refused by the recipient" if self.refused else "returned by the carrier"

    def with_news(self, news: Tracking, *, at: str) -> TrackResult:
        """The parcel with what the carrier said merged in: new checkpoints added (`with_checkpoints`) and the
        status moved forward by each new checkpoint and by the carrier's overall status. `at` is when we learnt
        it. Nothing new: the same object."""
        known = {c.checkpoint_id for c in self.checkpoints}
        # Deduplicated on their id: the same scan polled and pushed, or twice in one answer, is one checkpoint.
        added = list({c.checkpoint_id: c for c in news.checkpoints if c.checkpoint_id not in known}.values())
        previous = status = self.status
        refused = self.refused
        for checkpoint in sorted(added, key=lambda c: c.at):
            if may_move(status, checkpoint.status):
                status = checkpoint.status
            refused = refused or checkpoint.refused
        if news.status is not None and may_move(status, news.status):  # the carrier's overall word, last
            status = news.status
        refused = refused or news.refused
        if not added and status is previous and refused == self.refused:
            return TrackResult(self, 0, previous, previous, refused)
        updated = replace(self.with_checkpoints(added), refused=refused)
        if status is not previous:
            updated = replace(updated, status=status, status_changed_at=at)
        return TrackResult(updated, len(added), previous, status, refused)

    def with_checkpoints(self, added: Iterable[Checkpoint]) -> ParcelTracking:
        """`added` kept (bounded), sorted by time with the ones before, the newest MAX_CHECKPOINTS; any new one
        resets the quiet polls (the next poll comes after the first interval again)."""
        new = [c.bounded() for c in added]
        checkpoints = tuple(sorted((*self.checkpoints, *new), key=lambda c: c.at)[-MAX_CHECKPOINTS:])
        return replace(self, checkpoints=checkpoints,
                       last_checkpoint_at=checkpoints[-1].at if checkpoints else self.last_checkpoint_at,
                       quiet_polls=0 if new else self.quiet_polls)

    # ---- polling ----

    def polled(self, *, at: str, answered: bool, news: bool) -> ParcelTracking:
        """One poll more: a quiet one (no new checkpoint) grows the interval; a silent carrier is noted."""
        return replace(self, polls=self.polls + 1, last_polled_at=at,
                       quiet_polls=self.quiet_polls if news else self.quiet_polls + 1,
                       last_poll_error=self.last_poll_error if answered else "carrier did not answer")

    def next_poll_in(self, policy: PollPolicy) -> int:
        return policy.interval(self.quiet_polls)

    def stale_reason_at(self, policy: PollPolicy, age_seconds: float) -> str | None:
        """Why the parcel is too old to keep polling `age_seconds` after tracking started, or None."""
        if self.terminal:
            return None
        if not self.checkpoints and age_seconds >= policy.no_record_seconds:
            return "no_record"
        if age_seconds >= policy.max_age_seconds:
            return "max_age"
        return None

    def stale_at(self, at: str, reason: str) -> ParcelTracking:
        """Polling ends: the parcel is stale (any later carrier news replaces it)."""
        return replace(self, status=ParcelStatus.STALE, status_changed_at=at, stale_reason=reason)


@dataclass(frozen=True)
class TrackResult:
    tracking: ParcelTracking
    new_checkpoints: int
    previous: ParcelStatus | None
    status: ParcelStatus | None
    refused: bool

    @property
    def status_changed(self) -> bool:
        return self.status is not self.previous


def all_delivered(parcels: Iterable[ParcelTracking | None]) -> bool:
    """Every parcel delivered (a parcel nobody follows, None, never is)."""
    listed = tuple(parcels)
    return bool(listed) and all(p is not None and p.delivered for p in listed)
