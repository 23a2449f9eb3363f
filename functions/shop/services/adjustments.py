"""Operators' stock changes applied once per request id (catalog adjustments, presale pool releases): the
movements are written with an AdjustmentApplied marker in the same transaction, so a retry after an answer
that was lost finds the marker and writes nothing twice."""

from __future__ import annotations

from shop.domain import clock
from shop.domain.stock import StockMovement
from shop.services.ports import Commit, CommitRejected, Ports
from shop.services.records import AdjustmentApplied

MARKER_SECONDS = 7 * 24 * 3600  # how long a request id (an Idempotency-Key) is remembered


def commit_once(ports: Ports, code: str, request: str, movements: list[StockMovement]) -> list[StockMovement] | None:
    """Write the movements on SKU `code` with the marker of `request`: None when written now; when `request` was
    applied before, the movements it wrote then (and nothing now). StockShort (a level too low) is the caller's."""
    marker = AdjustmentApplied(code, request, tuple(movements), expires=int(clock.now().timestamp()) + MARKER_SECONDS)
    try:
        ports.store.commit(Commit(movements=movements, records=[marker]))
    except CommitRejected as rejected:
        if AdjustmentApplied.label not in rejected.labels:
            raise
        done = rejected.existing.get(AdjustmentApplied.label) or ports.store.adjustment_applied(code, request)
        return list(done.movements) if done else []
    return None
