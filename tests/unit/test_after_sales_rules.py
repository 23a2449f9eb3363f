"""After-sales rules without AWS: windows, the units a request may claim, carrier returns, the COMPLETED hold."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from shop.domain import after_sales as rules
from shop.domain import clock
from shop.domain.after_sales import AfterSaleStatus, AfterSaleType, WindowClosed, Windows
from shop.domain.errors import InvalidTransition, Unprocessable
from shop.domain.orders import HistoryEntry, OrderStatus
from shop.domain.values import Refund, Shipment, UnitLine
from tests.unit.test_domain import AT, order

S = OrderStatus
SHIPPED_AT = "2026-11-20T10:00:00.000Z"


def shipped(status=S.SHIPPED, units=(("TEE", 2), ("CAP", 1)), parcels=((("TEE", 2), ("CAP", 1)),)):
    shipments = tuple(Shipment(f"shp_{n}", tuple(UnitLine(s, q) for s, q in parcel), None, None, SHIPPED_AT, "admin:x")
                      for n, parcel in enumerate(parcels))
    return order(status, lines=units, shipments=shipments, payment_status="paid", amount_paid=3 * 1999)


def test_window_runs_from_the_last_parcel_then_from_delivery():
    windows = Windows(days_after_delivery=7, days_after_shipment=15)
    sent = shipped()
    assert rules.window_deadline(sent, windows) == clock.parse_iso(SHIPPED_AT) + timedelta(days=15)
    rules.check_requestable(sent, clock.parse_iso(SHIPPED_AT) + timedelta(days=15), windows)
    with pytest.raises(WindowClosed) as closed:
        rules.check_requestable(sent, clock.parse_iso(SHIPPED_AT) + timedelta(days=15, seconds=1), windows)
    assert closed.value.status == 409 and closed.value.extra["deadline"].startswith("2026-12-05T10:00:00")
    delivered_at = "2026-11-22T08:00:00.000Z"
    delivered = replace(sent, status=S.DELIVERED,
                        history=(HistoryEntry(delivered_at, "system:carrier", "SHIPPED", "DELIVERED", "delivered"),))
    assert rules.window_deadline(delivered, windows) == clock.parse_iso(delivered_at) + timedelta(days=7)
    for status in (S.PAID, S.COMPLETED, S.CANCELLED, S.PENDING_PAYMENT):
        with pytest.raises(InvalidTransition):
            rules.check_requestable(replace(sent, status=status), clock.parse_iso(AT), windows)


def test_a_request_claims_shipped_units_not_yet_claimed_or_refunded():
    partly = shipped(S.PARTIALLY_SHIPPED, units=(("TEE", 3), ("CAP", 1)), parcels=((("TEE", 2),),))
    assert rules.requestable_units(partly) == {"TEE": 2}  # unshipped units are cancelled/refunded, not claimed
    with pytest.raises(Unprocessable) as over:
        rules.check_lines(partly, {"TEE": 3})
    assert over.value.extra["skus"] == [{"sku": "TEE", "requested": 3, "requestable": 2}]
    with pytest.raises(Unprocessable):
        rules.check_lines(partly, {"HAT": 1})
    sale = rules.new_request(partly, "as_1", kind=AfterSaleType.REFUND_ONLY, lines={"TEE": 1}, reason="r", at=AT,
                             actor="customer:alice")
    claimed = rules.opened_on(partly, sale, at=AT)
    assert rules.requestable_units(claimed) == {"TEE": 1} and claimed.open_after_sales == 1
    assert claimed.version == partly.version + 1
    rejected = sale.moved(AfterSaleStatus.REJECTED, at=AT, actor="admin:x", note="no")
    freed = rules.moved_on(claimed, sale, rejected)
    assert rules.requestable_units(freed) == {"TEE": 2} and freed.open_after_sales == 0
    # An operator's refund of those units by line leaves fewer to ask for.
    refunded = replace(partly, refunds=(Refund("rf", 1999, "EUR", lines=(UnitLine("TEE", 2),)),))
    assert rules.requestable_units(refunded) == {"TEE": 1}
    # An after-sales refund of shipped units leaves what is still to ship as it was.
    after_sale_refund = replace(partly, refunds=(Refund("rf", 1999, "EUR", lines=(UnitLine("TEE", 2),),
                                                        after_sale_id="as_1"),))
    assert after_sale_refund.unshipped_units() == {"TEE": 1, "CAP": 1}


def test_open_requests_hold_the_order_back_from_completed():
    held = replace(shipped(), open_after_sales=1)
    with pytest.raises(InvalidTransition) as refused:
        held.transition(S.COMPLETED, at=AT, actor="customer:alice", reason="receipt confirmed")
    assert refused.value.extra["open_after_sales"] == 1
    assert replace(held, open_after_sales=0).transition(S.COMPLETED, at=AT, actor="c", reason="r").status is S.COMPLETED
    assert held.transition(S.DELIVERED, at=AT, actor="c", reason="r").status is S.DELIVERED  # delivery is not held


def test_a_returned_parcel_opens_one_approved_return_of_what_can_still_come_back():
    two_parcels = shipped(parcels=((("TEE", 2),), (("CAP", 1),)))
    opened = rules.return_case_on(two_parcels, "shp_0", reason="refused at the door", at=AT)
    assert opened is not None
    updated, case = opened
    assert (case.type, case.status, case.source, case.lines) == (
        AfterSaleType.RETURN_AND_REFUND, AfterSaleStatus.APPROVED, "carrier", (("TEE", 2),))
    assert case.is_open and updated.open_after_sales == 1 and updated.version == two_parcels.version
    assert [h["to"] for h in case.history] == ["requested", "approved"]
    assert rules.return_case_on(updated, "shp_0", reason="again", at=AT) is None  # once per parcel
    assert rules.return_case_on(updated, "shp_9", reason="unknown", at=AT) is None
    assert rules.return_case_on(updated, "shp_1", reason="returned", at=AT) is not None  # the other parcel
    received = case.moved(AfterSaleStatus.RECEIVED, at=AT, actor="admin:x", note="back")
    assert not received.is_open and rules.moved_on(updated, case, received).open_after_sales == 0


def test_evidence_keys_sit_under_the_request_prefix_with_their_type():
    keys = rules.evidence_keys("as_1", ["image/jpeg", "image/png", "image/webp"])
    assert keys == ("after-sales/as_1/1.jpg", "after-sales/as_1/2.png", "after-sales/as_1/3.webp")
