"""Parcels: one status vocabulary for every carrier, checkpoints deduplicated, a status that never moves backwards.

A parcel is one shipment of an order (the dicts in `Order.shipments`). A carrier adapter turns what the carrier
says into `Checkpoint`s with a status from `ParcelStatus`; `track` merges them into the parcel. Pure rules, no I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


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
    at: str  # ISO 8601 UTC with Z
    status: ParcelStatus
    description: str = ""
    location: str = ""
    refused: bool = False  # the recipient refused the parcel (it is returning or returned)
    raw_code: str = ""  # the carrier's own code, for operators

    @property
    def checkpoint_id(self) -> str:
        """Stable over polls and callbacks: the same scan reported twice is one checkpoint."""
        text = "|".join((self.at, self.status.value, self.description, self.location))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {"checkpoint_id": self.checkpoint_id, "at": self.at, "status": self.status.value,
                "description": self.description[:MAX_TEXT], "location": self.location[:MAX_TEXT],
                "refused": self.refused, "raw_code": self.raw_code[:32]}


@dataclass(frozen=True)
class Tracking:
    """What a carrier says about one parcel: its checkpoints and, when it says so, its overall status."""

    checkpoints: tuple[Checkpoint, ...]
    status: ParcelStatus | None = None
    refused: bool = False


def status_of(parcel: dict[str, Any]) -> ParcelStatus | None:
    raw = parcel.get("status")
    return ParcelStatus(raw) if raw else None


def may_move(current: ParcelStatus | None, new: ParcelStatus) -> bool:
    """A status moves forward (or sideways), never backwards, and never out of a final one."""
    if current is None:
        return True
    if current in FINAL:
        return False
    return RANK[new] >= RANK[current]


@dataclass(frozen=True)
class TrackResult:
    parcel: dict[str, Any]
    new_checkpoints: int
    previous: ParcelStatus | None
    status: ParcelStatus | None
    refused: bool

    @property
    def status_changed(self) -> bool:
        return self.status is not self.previous


def track(parcel: dict[str, Any], tracking: Tracking, *, at: str) -> TrackResult:
    """The parcel with `tracking` merged in: new checkpoints appended (deduplicated on their id, sorted by time,
    the newest MAX_CHECKPOINTS kept) and the status moved forward by each new checkpoint and by the carrier's
    overall status. `at` is when we learnt it."""
    known = {c["checkpoint_id"] for c in parcel.get("checkpoints") or []}
    added = [c for c in tracking.checkpoints if c.checkpoint_id not in known]
    added = list({c.checkpoint_id: c for c in added}.values())  # the same scan twice in one answer
    previous = status_of(parcel)
    status = previous
    refused = bool(parcel.get("refused"))
    for checkpoint in sorted(added, key=lambda c: c.at):
        if may_move(status, checkpoint.status):
            status = checkpoint.status
        refused = refused or checkpoint.refused
    if tracking.status is not None and (added or tracking.status is not previous) and may_move(status, tracking.status):
        status = tracking.status
    refused = refused or tracking.refused
    if not added and status is previous and refused == bool(parcel.get("refused")):
        return TrackResult(parcel, 0, previous, previous, refused)
    checkpoints = sorted([*(parcel.get("checkpoints") or []), *(c.to_dict() for c in added)],
                         key=lambda c: c["at"])[-MAX_CHECKPOINTS:]
    updated = {**parcel, "checkpoints": checkpoints, "refused": refused,
               "last_checkpoint_at": checkpoints[-1]["at"] if checkpoints else parcel.get("last_checkpoint_at"),
               "quiet_polls": 0 if added else parcel.get("quiet_polls", 0)}
    if status is not previous:
        updated["status"] = status.value if status else None
        updated["status_changed_at"] = at
    return TrackResult(updated, len(added), previous, status, refused)


@dataclass(frozen=True)
class PollPolicy:
    """Polling intervals (grow while nothing changes, back to the first on news) and the maximum ages."""

    intervals: tuple[int, ...] = (3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600)
    max_age_seconds: int = 30 * 24 * 3600  # since tracking started, without reaching a final status
    no_record_seconds: int = 3 * 24 * 3600  # since tracking started, without any checkpoint

    def interval(self, quiet_polls: int) -> int:
        return self.intervals[min(max(quiet_polls, 0), len(self.intervals) - 1)]


def stale_reason(parcel: dict[str, Any], policy: PollPolicy, age_seconds: float) -> str | None:
    """Why the parcel is too old to keep polling, or None."""
    if status_of(parcel) in TERMINAL:
        return None
    if not parcel.get("checkpoints") and age_seconds >= policy.no_record_seconds:
        return "no_record"
    if age_seconds >= policy.max_age_seconds:
        return "max_age"
    return None


def all_delivered(shipments: tuple[dict[str, Any], ...]) -> bool:
    return bool(shipments) and all(status_of(s) is P.DELIVERED for s in shipments)
