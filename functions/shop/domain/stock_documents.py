"""Documents that stock movements refer to: expected deliveries, transfers between warehouses, physical counts.

Each document is written in the same transaction as the movements it causes, conditional on the version it
was read at (a new one: on its id not existing yet), so each step of it (a delivery received, a transfer
dispatched then received, a count approved) applies exactly once, and a retry finds it done. The movements
carry the document's id as their `reference` in the ledger.

    delivery: expected -> received      units: INCOMING -> SELLABLE (or QUALITY_HOLD) of its warehouse
    transfer: dispatched -> received    units: SELLABLE of `from` -> IN_TRANSIT of `to` -> SELLABLE of `to`
    count:    draft -> approved         differences counted - on_hand (SELLABLE of the line's warehouse),
                                        as ledgered adjustments
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from shop.domain.warehouses import StockState


class DocumentKind(str, Enum):  # noqa: UP042 - StrEnum would change str() and format() of the members
    DELIVERY = "delivery"
    TRANSFER = "transfer"
    COUNT = "count"


# Open and closed status of each kind (a document moves from the first to the second once).
OPEN_STATUS = {DocumentKind.DELIVERY: "expected", DocumentKind.TRANSFER: "dispatched", DocumentKind.COUNT: "draft"}
DONE_STATUS = {DocumentKind.DELIVERY: "received", DocumentKind.TRANSFER: "received", DocumentKind.COUNT: "approved"}
ID_PREFIX = {DocumentKind.DELIVERY: "dlv_", DocumentKind.TRANSFER: "trf_", DocumentKind.COUNT: "cnt_"}
DOCUMENT_ID_PATTERN = r"^(dlv|trf|cnt)_[a-z0-9]{8,40}$"

# States an operator moves units between by hand (POST /admin/skus/{sku}/stock-moves). Incoming and in-transit
# units change state only through their delivery or transfer; presale and virtual stock have their own rules.
ON_HAND_STATES = (StockState.SELLABLE, StockState.SAFETY, StockState.DAMAGED, StockState.QUALITY_HOLD)
# Where a received delivery's units may go.
RECEIVING_STATES = (StockState.SELLABLE, StockState.QUALITY_HOLD)
MAX_DOCUMENT_LINES = 20  # a step of a document is one transaction (at most 100 writes)


@dataclass(frozen=True)
class StockDocument:
    """`body`: what the document says (plain JSON values, by kind: see services/stock_ops.py). `version`: as
    stored (1 when created); `listed_under`: while set, the document is listed under that key (an expected
    delivery under its SKU), sorted by `list_sort`."""

    kind: DocumentKind
    doc_id: str
    status: str
    version: int
    created_at: str
    updated_at: str
    actor: str
    body: dict[str, Any] = field(default_factory=dict)
    listed_under: str | None = None
    list_sort: str = ""

    @property
    def is_open(self) -> bool:
        return self.status == OPEN_STATUS[self.kind]

    def closed(self, *, at: str, actor: str, **changes: Any) -> StockDocument:
        """The document after its one step: done, one version more, no longer listed; `changes` go into body."""
        return replace(self, status=DONE_STATUS[self.kind], version=self.version + 1, updated_at=at,
                       listed_under=None, body={**self.body, **changes, "closed_by": actor})


def state_named(name: str) -> StockState:
    return StockState[name.upper()]
