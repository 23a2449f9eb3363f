"""Stock documents as pure rules (shop.domain.stock_documents): each kind's open and done status, ids that match
the documented pattern, the states an operator or a delivery may move units into, one step per document
(tests/api and tests/ddblocal run the operations themselves)."""

from __future__ import annotations

import re

import pytest

from shop.domain import stock_documents as docs
from shop.domain.stock_documents import DocumentKind, StockDocument
from shop.domain.warehouses import StockState


def test_each_kind_opens_and_closes_with_its_documented_status_once():
    expected = {DocumentKind.DELIVERY: ("expected", "received"), DocumentKind.TRANSFER: ("dispatched", "received"),
                DocumentKind.COUNT: ("draft", "approved")}
    for kind, (open_status, done_status) in expected.items():
        doc = StockDocument(kind, docs.ID_PREFIX[kind] + "0123abcd", open_status, 1, "t0", "t0", "admin:ops",
                            {"lines": [1]}, listed_under="SKU#TEE", list_sort="2026")
        assert doc.is_open
        done = doc.closed(at="t1", actor="admin:bob", received_into="sellable")
        assert (done.status, done.version, done.updated_at, done.created_at, done.listed_under) == (
            done_status, 2, "t1", "t0", None)
        assert done.body == {"lines": [1], "received_into": "sellable", "closed_by": "admin:bob"}
        assert not done.is_open


def test_document_ids_name_their_kind_and_match_the_documented_pattern():
    assert docs.ID_PREFIX == {DocumentKind.DELIVERY: "dlv_", DocumentKind.TRANSFER: "trf_", DocumentKind.COUNT: "cnt_"}
    pattern = re.compile(docs.DOCUMENT_ID_PATTERN)
    for prefix in docs.ID_PREFIX.values():
        assert pattern.fullmatch(prefix + "0123abcd") and not pattern.fullmatch(prefix + "0123abc")
    assert not pattern.fullmatch("abc_0123abcd") and not pattern.fullmatch("dlv_0123ABCD")


def test_the_states_units_may_be_moved_into_by_hand_or_received_into():
    assert docs.ON_HAND_STATES == (StockState.SELLABLE, StockState.SAFETY, StockState.DAMAGED,
                                   StockState.QUALITY_HOLD)
    assert docs.RECEIVING_STATES == (StockState.SELLABLE, StockState.QUALITY_HOLD)
    assert docs.state_named("quality_hold") is StockState.QUALITY_HOLD and docs.state_named("Damaged") is \
        StockState.DAMAGED
    with pytest.raises(KeyError):
        docs.state_named("lost")
    assert docs.MAX_DOCUMENT_LINES == 20  # a step of a document is one transaction (at most 100 writes)
