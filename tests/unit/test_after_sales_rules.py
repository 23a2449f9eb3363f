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


# --- exact records, bounds and refusals (each pins a rule a mutation run showed untested) ---------------------

def test_a_new_request_records_who_opened_it_and_moves_record_each_step():
    sale = rules.new_request(shipped(), "as_1", kind=AfterSaleType.REFUND_ONLY, lines={"TEE": 1, "CAP": 1},
                             reason="torn", at=AT, actor="customer:alice")
    assert (sale.source, sale.version, sale.lines, sale.status) == (
        "customer", 1, (("CAP", 1), ("TEE", 1)), AfterSaleStatus.REQUESTED)
    assert sale.history == ({"at": AT, "actor": "customer:alice", "from": None, "to": "requested", "reason": "torn"},)
    assert sale.summary() == {"after_sale_id": "as_1", "type": "refund_only", "status": "requested",
                              "lines": [{"sku": "CAP", "quantity": 1}, {"sku": "TEE", "quantity": 1}],
                              "created_at": AT, "updated_at": AT, "refund_id": None, "source": "customer",
                              "decision_reason": None}
    later = "2026-11-26T09:00:00.000Z"
    rejected = sale.moved(AfterSaleStatus.REJECTED, at=later, actor="admin:bob", note="worn", decision_reason="worn")
    assert (rejected.version, rejected.updated_at, rejected.created_at) == (2, later, AT)
    assert rejected.history[-1] == {"at": later, "actor": "admin:bob", "from": "requested", "to": "rejected",
                                    "reason": "worn"}
    assert rejected.summary()["decision_reason"] == "worn" and rejected.summary()["updated_at"] == later
    assert rejected.done_by_transition(AfterSaleStatus.REJECTED) and not sale.done_by_transition(
        AfterSaleStatus.REJECTED)


def test_request_ids_are_stable_and_distinct_per_parts():
    assert rules.stable_id("ord_1", "alice", "k") == rules.stable_id("ord_1", "alice", "k")
    assert rules.stable_id("ord_1", "alice", "k").startswith("as_")
    assert rules.stable_id("ord_1", "alice", "k") != rules.stable_id("ord_1", "alic", "ek")  # parts are separated


def test_default_windows_are_the_documented_ones_and_the_settings_defaults():
    from shop.settings import Settings

    settings = Settings()
    assert Windows() == Windows(7, 15) == Windows(settings.after_sales_days_after_delivery,
                                                  settings.after_sales_days_after_shipment)


def test_no_window_without_a_parcel_or_after_the_order_closed():
    windows = Windows()
    no_parcel = replace(shipped(), shipments=())
    assert rules.window_deadline(no_parcel, windows) is None
    with pytest.raises(InvalidTransition):
        rules.check_requestable(no_parcel, clock.parse_iso(SHIPPED_AT), windows)
    for status in (S.COMPLETED, S.CANCELLED, S.PAID):
        assert rules.window_deadline(replace(shipped(), status=status), windows) is None


def test_an_order_takes_at_most_twenty_requests():
    now = clock.parse_iso(SHIPPED_AT)
    summary = {"after_sale_id": "as_x", "status": "rejected", "lines": []}
    nineteen = replace(shipped(), after_sales=(summary,) * 19)
    rules.check_requestable(nineteen, now, Windows())
    with pytest.raises(InvalidTransition):
        rules.check_requestable(replace(nineteen, after_sales=(summary,) * 20), now, Windows())


def test_refusals_name_unknown_skus_and_units_already_claimed():
    sent = shipped()
    with pytest.raises(Unprocessable) as unknown:
        rules.check_lines(sent, {"HAT": 1, "TEE": 1})
    assert unknown.value.extra == {"skus": ["HAT"]}
    sale = rules.new_request(sent, "as_1", kind=AfterSaleType.REFUND_ONLY, lines={"CAP": 1}, reason="r", at=AT,
                             actor="customer:alice")
    claimed = rules.opened_on(sent, sale, at=AT)
    assert rules.requestable_units(claimed) == {"TEE": 2}
    with pytest.raises(Unprocessable) as over:
        rules.check_lines(claimed, {"CAP": 1})  # the cap is claimed already: none left to ask for
    assert over.value.extra["skus"] == [{"sku": "CAP", "requested": 1, "requestable": 0}]
    rules.check_lines(claimed, {"TEE": 2})


def test_a_request_opened_closed_does_not_hold_the_order_and_updates_keep_their_place():
    sent = shipped()
    first = rules.new_request(sent, "as_1", kind=AfterSaleType.REFUND_ONLY, lines={"TEE": 1}, reason="r", at=AT,
                              actor="c")
    second = rules.new_request(sent, "as_2", kind=AfterSaleType.REFUND_ONLY, lines={"CAP": 1}, reason="r", at=AT,
                               actor="c")
    both = rules.opened_on(rules.opened_on(sent, first, at=AT), second, at=AT)
    assert [s["after_sale_id"] for s in both.after_sales] == ["as_1", "as_2"]  # a new one goes last
    approved = second.moved(AfterSaleStatus.APPROVED, at=AT, actor="admin:x", note="ok")
    moved = rules.moved_on(both, second, approved)
    assert [s["after_sale_id"] for s in moved.after_sales] == ["as_1", "as_2"]
    assert [s["status"] for s in moved.after_sales] == ["requested", "approved"] and moved.open_after_sales == 1
    done = rules.new_request(sent, "as_3", kind=AfterSaleType.REFUND_ONLY, lines={"TEE": 1}, reason="r", at=AT,
                             actor="c", status=AfterSaleStatus.APPROVED)
    assert not done.is_open and rules.opened_on(sent, done, at=AT).open_after_sales == 0


def test_a_returned_parcel_case_is_recorded_as_the_carriers_and_claims_only_what_is_left():
    sent = shipped(parcels=((("TEE", 2), ("CAP", 1)),))
    updated, case = rules.return_case_on(sent, "shp_0", reason="refused at the door", at=AT)  # type: ignore[misc]
    assert case.history == (
        {"at": AT, "actor": "system:carrier", "from": None, "to": "requested", "reason": "refused at the door"},
        {"at": AT, "actor": "system:carrier", "from": "requested", "to": "approved",
         "reason": "opened by the carrier's return"})
    assert case.shipment_id == "shp_0" and updated.after_sales == (case.summary(),)
    # The customer claimed the cap already: the parcel's case takes the tees only.
    sale = rules.new_request(sent, "as_c", kind=AfterSaleType.REFUND_ONLY, lines={"CAP": 1}, reason="r", at=AT,
                             actor="c")
    claimed = rules.opened_on(sent, sale, at=AT)
    _, partial = rules.return_case_on(claimed, "shp_0", reason="returned", at=AT)  # type: ignore[misc]
    assert partial.lines == (("TEE", 2),)
    # Everything claimed: no case at all.
    all_claimed = rules.opened_on(sent, rules.new_request(sent, "as_d", kind=AfterSaleType.REFUND_ONLY,
                                                          lines={"TEE": 2, "CAP": 1}, reason="r", at=AT, actor="c"),
                                  at=AT)
    assert rules.return_case_on(all_claimed, "shp_0", reason="returned", at=AT) is None
    # The same parcel reported again, with units still left, opens nothing more.
    one = rules.return_case_on(sent, "shp_0", reason="returned", at=AT, lines={"TEE": 1})
    assert one is not None and rules.requestable_units(one[0]) == {"TEE": 1, "CAP": 1}
    assert rules.return_case_on(one[0], "shp_0", reason="returned", at=AT) is None


def test_a_request_gives_a_reason_of_at_most_500_characters_and_at_most_20_photos():
    from pydantic import ValidationError

    from shop.domain.after_sales import MAX_PHOTOS_ANY_SETTING, MAX_REASON_CHARS
    from shop.http.schemas import AfterSaleIn

    assert (MAX_REASON_CHARS, MAX_PHOTOS_ANY_SETTING) == (500, 20)
    base = {"type": "refund_only", "lines": [{"sku": "TEE", "quantity": 1}], "reason": "r" * 500, "photos": 20,
            "photo_types": ["image/png"] * 20}
    assert AfterSaleIn.model_validate(base).photos == 20
    for too_much in ({"reason": "r" * 501}, {"photos": 21}, {"photo_types": ["image/png"] * 21}):
        with pytest.raises(ValidationError):
            AfterSaleIn.model_validate({**base, **too_much})


def test_a_request_refunds_its_units_price_and_its_refund_does_not_count_twice():
    sent = shipped()
    sale = rules.new_request(sent, "as_1", kind=AfterSaleType.REFUND_ONLY, lines={"TEE": 1}, reason="r", at=AT,
                             actor="c")
    assert rules.refund_amount(sent, sale) == 1999
    assert rules.refund_amount(sent, replace(sale, lines=(("TEE", 2), ("CAP", 1)))) == 3 * 1999
    claimed = rules.opened_on(sent, sale, at=AT)
    assert rules.requestable_units(claimed) == {"TEE": 1, "CAP": 1}
    # Its refund recorded (approved): the claim holds that tee already, the refund does not take it a second time.
    refunded = replace(claimed, refunds=(Refund("rf", 1999, "EUR", lines=(UnitLine("TEE", 1),), after_sale_id="as_1"),))
    assert rules.requestable_units(refunded) == {"TEE": 1, "CAP": 1}
