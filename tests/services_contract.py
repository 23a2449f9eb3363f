"""Service-level tests written once, run on two stores: the in-memory fake (tests/unit/test_services_fake_store.py,
milliseconds) and DynamoDB Local (tests/ddblocal/test_services_ddblocal.py). Both pass the same bodies, which is
what shows the fake faithful to the real store: a behaviour the fake got wrong fails on one side only.

Each runner module subclasses `ServiceContract` and provides a `shop` fixture (a `Shop` on its store).
The side channels (events, payment windows, queues) and the payment provider are the in-memory fakes on both.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from shop.adapters import phones
from shop.domain import clock
from shop.domain.backorders import BACKORDER_ITEM
from shop.domain.errors import (
    IdempotencyKeyReused,
    InsufficientStock,
    InvalidTransition,
    NotFound,
    TooManyUnpaid,
    Unprocessable,
)
from shop.domain.money import Money
from shop.domain.orders import Order, OrderStatus
from shop.domain.refunds import pending as pending_refunds
from shop.domain.skus import StockLevels
from shop.services import catalog, finding, fulfilment, payments, refunds
from shop.services.orders import (
    NotYetDue,
    OrderPolicy,
    OrderRequest,
    PlacedOrder,
    PlaceOrder,
    expire_order,
    place_order,
    request_fingerprint,
)
from shop.services.ports import Commit, CommitRejected, HoldLimits, Ports, StaleWrite, StockShort
from shop.services.records import PaidFromAddress, RestockApplied
from shop.services.risk import RiskRules
from tests.fakes import (
    FakeEvidence,
    FakeProvider,
    QueuedRestocks,
    RecordingEvents,
    RecordingReleaseQueue,
    RecordingWindows,
)

ADDRESS = {"name": "Ada", "line1": "1 Loop", "city": "Localhost", "postal_code": "12345", "country": "US"}
NO_RISK = RiskRules(large_amount=10**12, max_large_payments=99, window_seconds=1)
PRICE = 1999
ADMIN = "admin:ops"


class Shop:
    """The services on `store`, with in-memory side channels and provider, and a clock the test can move."""

    def __init__(self, store: Any, monkeypatch: pytest.MonkeyPatch | None):
        self.events = RecordingEvents()
        self.windows = RecordingWindows()
        self.restocks = QueuedRestocks()
        self.provider = FakeProvider()
        self.ports = Ports(store=store, events=self.events, windows=self.windows,
                           release_queue=RecordingReleaseQueue(), restock_queue=self.restocks,
                           evidence=FakeEvidence())
        self.store = store
        if monkeypatch is not None:  # else the caller moves the clock
            self._offset = timedelta()
            real_now = clock.now
            monkeypatch.setattr(clock, "now", lambda: real_now() + self._offset)

    def later(self, seconds: int) -> None:
        self._offset += timedelta(seconds=seconds)

    def sku(self, code: str, on_hand: int | None, *, price: int = PRICE, shards: int = 1, **details: Any) -> None:
        catalog.upsert_sku(self.ports, code, catalog.SkuDetails(name=code, price=Money(price, "USD"), on_hand=on_hand,
                                                                stock_shards=shards, **details), actor=ADMIN)

    def levels(self, code: str) -> StockLevels:
        sku = self.store.get_sku(code)
        assert sku is not None
        return sku.levels

    def place(self, items: list[tuple[str, int]], *, customer: str = "cus_1", key: str | None = None,
              limits: HoldLimits | None = None, window: int = 900, phone: str | None = None) -> PlacedOrder:
        request = OrderRequest(items=items, shipping_address={**ADDRESS, **({"phone": phone} if phone else {})},
                               payment_provider=self.provider.name, phone_digest=phones.phone_digest(phone))
        placing = PlaceOrder(customer, key or uuid.uuid4().hex, request, request_fingerprint({"items": items}))
        return place_order(self.ports, placing, OrderPolicy(window, 3600, hold_limits=limits or HoldLimits()),
                           self.provider.create_payment)

    def order(self, order_id: str) -> Order:
        order = self.store.get_order(order_id)
        assert order is not None
        return order

    def pay(self, order_id: str, amount: int | None = None, *, risk: RiskRules = NO_RISK) -> str:
        order = self.order(order_id)
        event = self.provider.payment(order_id, Money(order.total.amount if amount is None else amount, "USD"))
        return payments.process_payment_event(self.ports, self.provider, event, risk)

    def paid_order(self, items: list[tuple[str, int]], **kw: Any) -> str:
        order_id = self.place(items, **kw).order_id
        assert self.pay(order_id) == "paid"
        return order_id

    def provider_for(self, name: str) -> FakeProvider:
        assert name == self.provider.name
        return self.provider

    def ledger(self, code: str) -> list[Any]:
        entries, cursor = [], None
        while True:
            page, cursor = self.store.ledger(code, 2, cursor)  # small pages: the cursor is exercised
            entries += page
            if not cursor:
                return entries

    def ledger_matches_levels(self, code: str) -> bool:
        total: Counter[str] = Counter()
        for movement in self.ledger(code):
            total.update(movement.delta.to_dict())
        return {k: total[k] for k in ("on_hand", "available", "reserved", "sold")} == self.levels(code).to_dict()


class ServiceContract:
    """The use cases, as a user depends on them. A runner provides the `shop` fixture."""

    # ---- placing orders ------------------------------------------------------

    def test_place_order_reserves_stock(self, shop: Shop) -> None:
        shop.sku("A", 10)
        placed = shop.place([("A", 3)])
        assert placed.status_code == 201 and not placed.replayed
        order = shop.order(placed.order_id)
        assert order.status is OrderStatus.PENDING_PAYMENT and order.total == Money(3 * PRICE, "USD")
        assert shop.levels("A") == StockLevels(on_hand=10, available=7, reserved=3, sold=0)
        assert shop.windows.opened == {placed.order_id: placed.body["expires_at"]}
        assert [e["order_id"] for e in shop.events.of("order.created")] == [placed.order_id]
        assert shop.store.order_id_by_number(order.order_number) == placed.order_id
        assert shop.ledger_matches_levels("A")

    def test_short_of_stock_is_refused_and_reserves_nothing(self, shop: Shop) -> None:
        shop.sku("A", 2)
        shop.sku("B", 5)
        with pytest.raises(InsufficientStock) as refused:
            shop.place([("B", 1), ("A", 3)])
        assert refused.value.status == 409
        assert refused.value.extra["shortages"] == [{"sku": "A", "requested": 3, "available": 2}]
        assert shop.levels("A") == StockLevels(2, 2, 0, 0) and shop.levels("B") == StockLevels(5, 5, 0, 0)
        assert shop.store.customer_orders("cus_1", 10, None) == ([], None)

    def test_the_last_units_sell_out_and_are_announced(self, shop: Shop) -> None:
        shop.sku("A", 3, shards=2)
        shop.place([("A", 2)])
        shop.place([("A", 1)])  # found across shards, whichever the first write tried
        with pytest.raises(InsufficientStock):
            shop.place([("A", 1)])
        assert shop.levels("A") == StockLevels(3, 0, 3, 0)
        assert shop.events.of("stock.sold_out") == [{"sku": "A"}]
        assert shop.ledger_matches_levels("A")

    def test_idempotent_retry_replays_the_order(self, shop: Shop) -> None:
        shop.sku("A", 10)
        first = shop.place([("A", 2)], key="same")
        again = shop.place([("A", 2)], key="same")
        assert again.replayed and again.order_id == first.order_id and again.body == first.body
        assert shop.levels("A").reserved == 2
        with pytest.raises(IdempotencyKeyReused):
            shop.place([("A", 1)], key="same")
        other_customer = shop.place([("A", 2)], key="same", customer="cus_2")  # keys are per customer
        assert other_customer.order_id != first.order_id and shop.levels("A").reserved == 4

    def test_unpaid_order_cap_per_customer(self, shop: Shop) -> None:
        shop.sku("A", 10)
        limits = HoldLimits(max_unpaid_orders=2)
        first = shop.place([("A", 1)], limits=limits)
        shop.place([("A", 1)], limits=limits)
        with pytest.raises(TooManyUnpaid) as refused:
            shop.place([("A", 1)], limits=limits)
        assert refused.value.status == 429 and refused.value.extra == {"max_unpaid_orders": 2}
        shop.place([("A", 1)], limits=limits, customer="cus_2")  # another customer's own cap
        assert shop.pay(first.order_id) == "paid"  # a paid order no longer counts
        shop.place([("A", 1)], limits=limits)
        assert shop.levels("A").reserved == 3 and shop.levels("A").sold == 1

    def test_unpaid_units_cap_per_sku(self, shop: Shop) -> None:
        shop.sku("A", 20)
        limits = HoldLimits(max_unpaid_units_per_sku=5)
        with pytest.raises(TooManyUnpaid):  # a first order above the cap on its own
            shop.place([("A", 6)], limits=limits)
        assert shop.levels("A").reserved == 0
        held = shop.place([("A", 3)], limits=limits)
        with pytest.raises(TooManyUnpaid) as refused:
            shop.place([("A", 3)], limits=limits)
        assert refused.value.extra["skus"] == [{"sku": "A", "unpaid": 3}]
        shop.place([("A", 2)], limits=limits)  # exactly the cap
        refunds.cancel(shop.ports, shop.provider_for, held.order_id, actor="customer:cus_1", reason="changed mind",
                       customer_id="cus_1")  # a cancelled order gives its units back to the cap
        shop.place([("A", 3)], limits=limits)
        assert shop.levels("A").reserved == 5

    # ---- payment, expiry, cancel ---------------------------------------------

    def test_payment_sells_the_reservation_once(self, shop: Shop) -> None:
        shop.sku("A", 10)
        order_id = shop.place([("A", 4)]).order_id
        event = shop.provider.payment(order_id, Money(4 * PRICE, "USD"))
        assert payments.process_payment_event(shop.ports, shop.provider, event, NO_RISK) == "paid"
        assert payments.process_payment_event(shop.ports, shop.provider, event, NO_RISK) == "duplicate"
        order = shop.order(order_id)
        assert (order.status, order.payment_status, order.amount_paid) == (OrderStatus.PAID, "paid", 4 * PRICE)
        assert shop.levels("A") == StockLevels(on_hand=6, available=6, reserved=0, sold=4)
        assert len(shop.events.of("order.paid")) == 1
        assert shop.ledger_matches_levels("A")

    def test_second_payment_is_refunded_automatically(self, shop: Shop) -> None:
        shop.sku("A", 10)
        order_id = shop.paid_order([("A", 1)])
        assert shop.pay(order_id) == "refunded"
        order = shop.order(order_id)
        assert order.status is OrderStatus.PAID and order.amount_paid == 2 * PRICE
        assert shop.provider.refunded() == PRICE and order.amount_refunded == PRICE
        assert len(order.refunds) == 1 and not pending_refunds(order)
        assert shop.levels("A").sold == 1

    def test_wrong_amount_holds_the_order_and_keeps_the_reservation(self, shop: Shop) -> None:
        shop.sku("A", 10)
        order_id = shop.place([("A", 2)]).order_id
        assert shop.pay(order_id, amount=PRICE) == "amount_mismatch_held"
        assert shop.order(order_id).status is OrderStatus.ON_HOLD
        assert shop.levels("A").reserved == 2
        rejected = payments.reject_held(shop.ports, shop.provider, order_id, actor=ADMIN)
        assert rejected.status is OrderStatus.CANCELLED and shop.provider.refunded() == PRICE
        assert shop.levels("A") == StockLevels(10, 10, 0, 0)

    def test_expiry_releases_the_reservation(self, shop: Shop) -> None:
        shop.sku("A", 10)
        order_id = shop.place([("A", 3)], window=60).order_id
        with pytest.raises(NotYetDue):
            expire_order(shop.ports, order_id)
        assert shop.store.overdue_pending_order_ids(clock.iso(clock.now())) == []
        shop.later(61)
        assert shop.store.overdue_pending_order_ids(clock.iso(clock.now())) == [order_id]
        expired = expire_order(shop.ports, order_id)
        assert expired is not None and expired.status is OrderStatus.EXPIRED
        again = expire_order(shop.ports, order_id)  # a redelivered expiry changes nothing
        assert again is not None and again.version == expired.version
        assert shop.levels("A") == StockLevels(10, 10, 0, 0)
        assert shop.store.overdue_pending_order_ids(clock.iso(clock.now())) == []
        assert shop.ledger_matches_levels("A")

    def test_late_payment_after_expiry_takes_stock_again_or_is_refunded(self, shop: Shop) -> None:
        shop.sku("A", 2)
        late = shop.place([("A", 2)], window=60).order_id
        shop.later(61)
        expire_order(shop.ports, late)
        assert shop.pay(late) == "paid"  # the units were still there
        assert shop.levels("A") == StockLevels(0, 0, 0, 2)
        shop.sku("B", 1)
        gone = shop.place([("B", 1)], window=60).order_id
        shop.later(61)
        expire_order(shop.ports, gone)
        shop.paid_order([("B", 1)], customer="cus_2")
        assert shop.pay(gone) == "refunded"
        assert shop.order(gone).status is OrderStatus.EXPIRED and shop.provider.refunded() == PRICE

    def test_cancel_unpaid_releases_at_once(self, shop: Shop) -> None:
        shop.sku("A", 10)
        order_id = shop.place([("A", 3)]).order_id
        with pytest.raises(NotFound):  # not someone else's order
            refunds.cancel(shop.ports, shop.provider_for, order_id, actor="customer:cus_2", reason="x",
                           customer_id="cus_2")
        cancelled = refunds.cancel(shop.ports, shop.provider_for, order_id, actor="customer:cus_1",
                                   reason="changed mind", customer_id="cus_1")
        assert cancelled.status is OrderStatus.CANCELLED and shop.levels("A") == StockLevels(10, 10, 0, 0)
        again = refunds.cancel(shop.ports, shop.provider_for, order_id, actor="customer:cus_1",
                               reason="changed mind", customer_id="cus_1")
        assert again.version == cancelled.version  # a retry finds its own work done
        assert shop.provider.calls == 0

    def test_cancel_paid_refunds_and_restocks(self, shop: Shop) -> None:
        shop.sku("A", 10)
        order_id = shop.paid_order([("A", 3)])
        cancelled = refunds.cancel(shop.ports, shop.provider_for, order_id, actor="customer:cus_1",
                                   reason="changed mind", customer_id="cus_1")
        assert (cancelled.status, cancelled.payment_status) == (OrderStatus.CANCELLED, "refunded")
        assert len(cancelled.refunds) == 1 and not pending_refunds(cancelled)
        assert shop.provider.refunded() == 3 * PRICE
        assert shop.levels("A").sold == 3  # until the restock message is consumed
        assert shop.restocks.deliver(shop.ports, twice=True) == 1  # a redelivered message applies once
        assert shop.levels("A") == StockLevels(10, 10, 0, 0)
        assert shop.ledger_matches_levels("A")

    def test_refund_saga_finishes_after_a_provider_outage(self, shop: Shop) -> None:
        shop.sku("A", 10)
        order_id = shop.paid_order([("A", 2)])
        shop.provider.failures_left = 1
        pending = refunds.cancel(shop.ports, shop.provider_for, order_id, actor=ADMIN, reason="fraud")
        assert pending.status is OrderStatus.CANCELLED
        assert len(pending_refunds(pending)) == len(pending.refunds) == 1 and shop.provider.refunded() == 0
        assert shop.store.pending_refund_order_ids(clock.iso(clock.now())) == [order_id]
        done = payments.complete_pending_refunds(shop.ports, shop.provider_for, order_id)  # the sweeper's job
        assert len(done.refunds) == 1 and not pending_refunds(done) and shop.provider.refunded() == 2 * PRICE
        assert shop.store.pending_refund_order_ids(clock.iso(clock.now())) == []
        payments.complete_pending_refunds(shop.ports, shop.provider_for, order_id)
        assert shop.provider.calls == 2 and shop.provider.refunded() == 2 * PRICE

    # ---- refunds -------------------------------------------------------------

    def test_partial_refunds_up_to_what_was_paid(self, shop: Shop) -> None:
        shop.sku("A", 10)
        order_id = shop.paid_order([("A", 2)])

        def refund(amount: int, key: str) -> Order:
            return refunds.refund_order(shop.ports, shop.provider, order_id, amount=amount, lines=None,
                                        restock=False, reason="goodwill", key=key, actor=ADMIN)

        first = refund(500, "r1")
        assert (first.amount_refunded, first.payment_status) == (500, "partially_refunded")
        assert refund(500, "r1").amount_refunded == 500  # the same key refunds once
        with pytest.raises(Unprocessable):
            refund(2 * PRICE, "r2")  # more than is left
        last = refund(2 * PRICE - 500, "r3")
        assert (last.amount_refunded, last.payment_status) == (2 * PRICE, "refunded")
        with pytest.raises(InvalidTransition):
            refund(1, "r4")
        assert shop.provider.refunded() == 2 * PRICE
        assert shop.levels("A").sold == 2 and shop.restocks.sent == 0

    def test_refund_by_lines_with_restock(self, shop: Shop) -> None:
        shop.sku("A", 10)
        shop.sku("B", 10, price=500)
        order_id = shop.paid_order([("A", 2), ("B", 3)])
        refunded = refunds.refund_order(shop.ports, shop.provider, order_id, amount=None, lines=[("B", 2)],
                                        restock=True, reason="returned", key="ret1", actor=ADMIN)
        assert refunded.amount_refunded == 1000 and refunded.refunded_units() == {"B": 2}
        shop.restocks.deliver(shop.ports)
        assert shop.levels("B") == StockLevels(9, 9, 0, 1) and shop.levels("A").sold == 2
        with pytest.raises(Unprocessable):  # only one B is left to refund
            refunds.refund_order(shop.ports, shop.provider, order_id, amount=None, lines=[("B", 2)],
                                 restock=True, reason="returned", key="ret2", actor=ADMIN)
        assert shop.ledger_matches_levels("B")

    # ---- stock operations ----------------------------------------------------

    def test_adjustments_are_ledgered_and_applied_once(self, shop: Shop) -> None:
        shop.sku("A", 5)
        sku, moved = catalog.adjust_stock(shop.ports, "A", 7, reason="delivery", actor=ADMIN, request_id="r1")
        assert sku.levels.on_hand == 12 and [m.delta.on_hand for m in moved] == [7]
        again, replayed = catalog.adjust_stock(shop.ports, "A", 7, reason="delivery", actor=ADMIN, request_id="r1")
        assert again.levels.on_hand == 12 and [m.movement_id for m in replayed] == [m.movement_id for m in moved]
        shop.place([("A", 10)])
        with pytest.raises(InsufficientStock):  # reserved units cannot be written off
            catalog.adjust_stock(shop.ports, "A", -3, reason="damaged", actor=ADMIN, request_id="r2")
        catalog.adjust_stock(shop.ports, "A", -2, reason="damaged", actor=ADMIN, request_id="r3")
        assert shop.levels("A") == StockLevels(on_hand=10, available=0, reserved=10, sold=0)
        reasons = [m.reason for m in shop.ledger("A")]
        assert sorted(reasons) == ["damaged", "delivery", "initial_stock", "order_placed"]
        assert shop.ledger_matches_levels("A")

    def test_catalog_edits_and_shards(self, shop: Shop) -> None:
        shop.sku("A", 12, shards=3)
        sku = shop.store.get_sku("A")
        assert sku is not None and sku.shard_items == 3 and sku.levels.available == 12
        assert sorted(level.available for level in sku.shard_levels.values()) == [4, 4, 4]  # rebalanced
        shop.sku("A", 12, shards=1, price=2500)  # fewer shards: retired shards are emptied into the live one
        sku = shop.store.get_sku("A")
        assert sku is not None and sku.price == Money(2500, "USD") and sku.shard_levels[0].available == 12
        assert shop.place([("A", 12)]).body["total"] == {"amount": 12 * 2500, "currency": "USD"}
        shop.sku("A", None, active=False, price=2500)
        with pytest.raises(Unprocessable):
            shop.place([("A", 1)])
        assert shop.ledger_matches_levels("A")

    def test_a_backorder_fill_reads_the_allowance_ledger_from_where_every_order_before_is_settled(self, shop: Shop
                                                                                                  ) -> None:
        shop.sku("B", 0, backorder_limit=10)
        settled = shop.place([("B", 2)]).order_id  # backordered, then cancelled: settled
        refunds.cancel(shop.ports, shop.provider_for, settled, actor="customer:cus_1", reason="x", customer_id="cus_1")
        shop.later(2 * 3600)  # beyond READ_MARGIN
        waiting = shop.place([("B", 3)], customer="cus_2").order_id
        catalog.adjust_stock(shop.ports, "B", 1, reason="delivery", actor=ADMIN, request_id="d1")  # fills 1 of 3
        sku = shop.store.get_sku("B")
        # An hour before the fill (READ_MARGIN), after everything the settled order left, before the waiting one.
        assert sku is not None and sku.backorder_read_from is not None
        assert max(m.at for m in shop.ledger("B") if m.order_id == settled) < sku.backorder_read_from
        assert sku.backorder_read_from <= shop.order(waiting).created_at
        page, _ = shop.store.ledger("B", 100, None, items=[BACKORDER_ITEM], since=sku.backorder_read_from)
        assert {m.order_id for m in page} == {waiting}  # the settled order's entries are skipped
        shop.store.advance_backorder_read_from("B", "2000-01-01T00:00:00.000Z")  # never moves back
        assert shop.store.get_sku("B").backorder_read_from == sku.backorder_read_from
        catalog.adjust_stock(shop.ports, "B", 2, reason="delivery", actor=ADMIN, request_id="d2")
        assert shop.order(waiting).lines[0].backordered == 0
        assert shop.levels("B") == StockLevels(on_hand=3, available=0, reserved=3, sold=0)
        allowance = shop.store.get_sku("B").backorder
        assert allowance == StockLevels(on_hand=10, available=10, reserved=0, sold=0)

    # ---- fulfilment ----------------------------------------------------------

    def test_shipments_then_confirmed_receipt(self, shop: Shop) -> None:
        shop.sku("A", 10)
        shop.sku("B", 10)
        order_id = shop.paid_order([("A", 2), ("B", 1)])
        with pytest.raises(InvalidTransition):
            fulfilment.confirm_receipt(shop.ports, order_id, customer_id="cus_1", actor="customer:cus_1")

        def ship(units: dict[str, int] | None, key: str) -> tuple[Order, bool]:
            return fulfilment.ship_order(shop.ports, order_id, units=units, carrier="DHL", tracking_number="T1",
                                         key=key, actor=ADMIN)

        partial, created = ship({"A": 1}, "s1")
        assert created and partial.status is OrderStatus.PARTIALLY_SHIPPED
        assert ship({"A": 1}, "s1") == (partial, False)  # the same request records one parcel
        with pytest.raises(InvalidTransition):
            ship({"A": 2}, "s2")  # only one A is left to ship
        shipped, _ = ship(None, "s3")
        assert shipped.status is OrderStatus.SHIPPED and shipped.unshipped_units() == {}
        assert [e["shipment_id"] for e in shop.events.of("order.shipped")] == [shipped.shipments[-1].shipment_id]
        with pytest.raises(InvalidTransition):  # shipped goods are refunded, not cancelled
            refunds.cancel(shop.ports, shop.provider_for, order_id, actor=ADMIN, reason="late")
        done = fulfilment.confirm_receipt(shop.ports, order_id, customer_id="cus_1", actor="customer:cus_1")
        assert done.status is OrderStatus.COMPLETED
        again = fulfilment.confirm_receipt(shop.ports, order_id, customer_id="cus_1", actor="customer:cus_1")
        assert again.version == done.version and len(shop.events.of("order.completed")) == 1

    def test_after_sales_refund_only_and_return(self, shop: Shop) -> None:
        from shop.domain.after_sales import AfterSaleStatus, AfterSaleType, Windows
        from shop.services import after_sales

        shop.sku("A", 10)
        order_id = shop.paid_order([("A", 3)])
        fulfilment.ship_order(shop.ports, order_id, units=None, carrier="DHL", tracking_number="T1", key="s",
                              actor=ADMIN)

        def open_request(kind: AfterSaleType, units: int, key: str) -> after_sales.Opened:
            return after_sales.open_request(
                shop.ports, order_id, customer_id="cus_1", key=key, windows=Windows(),
                request=after_sales.NewRequest(kind, {"A": units}, "broken", ["image/png"]))

        refund_only = open_request(AfterSaleType.REFUND_ONLY, 1, "k1")
        assert [slot["key"] for slot in refund_only.uploads] == list(refund_only.sale.photo_keys)
        assert open_request(AfterSaleType.REFUND_ONLY, 1, "k1").replayed
        with pytest.raises(IdempotencyKeyReused):
            open_request(AfterSaleType.REFUND_ONLY, 2, "k1")
        sale, order = after_sales.approve(shop.ports, shop.provider_for, refund_only.sale.after_sale_id, actor=ADMIN)
        assert sale.status is AfterSaleStatus.APPROVED and order.amount_refunded == PRICE
        back = open_request(AfterSaleType.RETURN_AND_REFUND, 2, "k2").sale
        listed, _ = shop.store.after_sales(status="requested", limit=10, cursor=None)
        assert [s.after_sale_id for s in listed] == [back.after_sale_id]
        after_sales.approve(shop.ports, shop.provider_for, back.after_sale_id, actor=ADMIN)
        received, order = after_sales.receive(shop.ports, shop.provider_for, back.after_sale_id, actor=ADMIN)
        assert received.status is AfterSaleStatus.RECEIVED and order.amount_refunded == 3 * PRICE
        shop.restocks.deliver(shop.ports)
        assert shop.levels("A") == StockLevels(9, 9, 0, 1) and shop.provider.refunded() == 3 * PRICE
        store = shop.store  # the store's conditions on after-sales requests and order numbers
        with pytest.raises(CommitRejected) as exists:
            store.commit(Commit(after_sale=(back, None)))
        assert exists.value.labels == {"after_sale_new"}
        with pytest.raises(StaleWrite):  # written at another version since
            store.commit(Commit(after_sale=(dataclasses.replace(back, reason="edited"), back.version)))
        current = store.get_after_sale(back.after_sale_id)
        assert current is not None and current.status is AfterSaleStatus.RECEIVED
        twin = dataclasses.replace(order, order_id=order.order_id[:-4] + "twin", version=1)
        with pytest.raises(CommitRejected) as taken:  # an order number belongs to one order
            store.commit(Commit(new_order=twin))
        assert taken.value.labels == {"order_number"} and store.get_order(twin.order_id) is None

    # ---- after-sales -----------------------------------------------------------

    def test_a_returned_parcel_opens_its_return_case_in_the_same_write_once(self, shop: Shop) -> None:
        from shop.domain.parcels import Checkpoint, ParcelStatus, Tracking

        shop.sku("A", 10)
        order_id = shop.paid_order([("A", 2)])
        shipped, _ = fulfilment.ship_order(shop.ports, order_id, units=None, carrier="sandbox", tracking_number="SB1",
                                           key="p", actor=ADMIN)
        shipment_id = shipped.shipments[0].shipment_id
        back = Tracking((Checkpoint(clock.iso(clock.now()), ParcelStatus.RETURNED, "back at the depot"),))
        update = fulfilment.record_tracking(shop.ports, order_id, shipment_id, back)
        assert update.return_case is not None and update.order.open_after_sales == 1
        again = fulfilment.record_tracking(shop.ports, order_id, shipment_id, back)  # redelivered: nothing new
        assert again.return_case is None
        case = shop.store.get_after_sale(update.return_case.after_sale_id)
        assert case is not None and case.source == "carrier" and case.lines == (("A", 2),)
        order = shop.order(order_id)
        assert order.open_after_sales == 1 and [s["after_sale_id"] for s in order.after_sales] == [case.after_sale_id]
        assert len(shop.events.of("after_sale.requested")) == 1
        with pytest.raises(InvalidTransition):
            fulfilment.confirm_receipt(shop.ports, order_id, customer_id="cus_1", actor="customer:cus_1")


    def test_after_sales_requests_claim_units_refund_once_and_hold_completion(self, shop: Shop) -> None:
        from shop.domain.after_sales import AfterSaleType, Windows
        from shop.services import after_sales

        shop.sku("A", 10)
        order_id = shop.paid_order([("A", 3)])
        fulfilment.ship_order(shop.ports, order_id, units=None, carrier=None, tracking_number=None, key="k",
                              actor=ADMIN)

        def ask(units: int, key: str, kind: AfterSaleType = AfterSaleType.REFUND_ONLY) -> str:
            request = after_sales.NewRequest(kind=kind, lines={"A": units}, reason="torn", photo_types=[])
            return after_sales.open_request(shop.ports, order_id, customer_id="cus_1", key=key, request=request,
                                            windows=Windows()).sale.after_sale_id

        refund_id, return_id = ask(1, "r1"), ask(2, "r2", AfterSaleType.RETURN_AND_REFUND)
        assert ask(1, "r1") == refund_id  # a retry names the same request
        with pytest.raises(Unprocessable):
            ask(1, "r3")  # all 3 shipped units are claimed
        assert shop.order(order_id).open_after_sales == 2
        with pytest.raises(InvalidTransition):
            fulfilment.confirm_receipt(shop.ports, order_id, customer_id="cus_1", actor="customer:cus_1")
        after_sales.approve(shop.ports, shop.provider_for, refund_id, actor=ADMIN)
        after_sales.approve(shop.ports, shop.provider_for, refund_id, actor=ADMIN)  # a retry: nothing more
        after_sales.approve(shop.ports, shop.provider_for, return_id, actor=ADMIN)
        assert shop.provider.refunded() == PRICE and shop.order(order_id).open_after_sales == 1
        sold = shop.levels("A").sold
        after_sales.receive(shop.ports, shop.provider_for, return_id, actor=ADMIN)
        after_sales.receive(shop.ports, shop.provider_for, return_id, actor=ADMIN)
        assert shop.restocks.deliver(shop.ports, twice=True) == 1
        assert shop.levels("A").sold == sold - 2 and shop.ledger_matches_levels("A")
        order = shop.order(order_id)
        assert shop.provider.refunded() == order.amount_refunded == 3 * PRICE and order.open_after_sales == 0
        assert [s["status"] for s in order.after_sales] == ["approved", "received"]
        listed, cursor = shop.store.after_sales(status="received", limit=10, cursor=None)
        assert [s.after_sale_id for s in listed] == [return_id] and cursor is None
        seen, cursor = [], None
        for _ in range(4):  # pages of one, newest first (a page may end with a cursor to an empty page)
            found, cursor = shop.store.after_sales(status=None, limit=1, cursor=cursor)
            seen += [(s.created_at, s.after_sale_id) for s in found]
            if cursor is None:
                break
        assert seen == sorted(seen, reverse=True) and {i for _, i in seen} == {refund_id, return_id} \
            and len(seen) == 2 and cursor is None
        completed = fulfilment.confirm_receipt(shop.ports, order_id, customer_id="cus_1", actor="customer:cus_1")
        assert completed.status is OrderStatus.COMPLETED

    # ---- risk rules and listings ---------------------------------------------

    def test_payments_from_one_address_beyond_the_cap_are_held(self, shop: Shop) -> None:
        shop.sku("A", 10)
        risk = RiskRules(large_amount=10**12, max_large_payments=99, window_seconds=3600, max_payments_per_ip=1)
        request = OrderRequest(items=[("A", 1)], shipping_address=ADDRESS, payment_provider="fake",
                               client_ip="203.0.113.9")
        placed = [place_order(shop.ports, PlaceOrder(f"cus_{n}", "k", request, "f"), OrderPolicy(900, 60),
                              shop.provider.create_payment) for n in range(2)]
        assert shop.pay(placed[0].order_id, risk=risk) == "paid"
        assert shop.pay(placed[1].order_id, risk=risk) == "paid_on_hold"
        assert shop.order(placed[1].order_id).status is OrderStatus.ON_HOLD
        approved = payments.approve_held(shop.ports, placed[1].order_id, actor=ADMIN)
        assert approved.status is OrderStatus.PAID and shop.levels("A").sold == 2

    def test_listings_page_newest_first(self, shop: Shop) -> None:
        shop.sku("A", 10)
        ids = []
        for _ in range(5):
            ids.append(shop.place([("A", 1)]).order_id)
            shop.later(1)
        shop.place([("A", 1)], customer="cus_2")
        seen, cursor = [], None
        while True:
            page, cursor = shop.store.customer_orders("cus_1", 2, cursor)
            seen += [o.order_id for o in page]
            if not cursor:
                break
        assert seen == ids[::-1]
        assert shop.pay(ids[0]) == "paid"
        paid, _ = shop.store.orders(status="PAID", customer_id=None, created_from=None, created_to=None,
                                    limit=10, cursor=None)
        assert [o.order_id for o in paid] == [ids[0]]
        created = [shop.order(i).created_at for i in ids]
        window, _ = shop.store.orders(status=None, customer_id="cus_1", created_from=created[1],
                                      created_to=created[3], limit=10, cursor=None)
        assert [o.order_id for o in window] == ids[3:0:-1]
        between = {o.order_id for o in shop.store.orders_created_between(created[1], created[3])}
        assert between == set(ids[1:4])
        assert {o.order_id for o in shop.store.orders_by_id([ids[0], "ord_missing"])} == {ids[0]}
        with pytest.raises(Unprocessable):
            shop.store.customer_orders("cus_1", 2, "not-a-cursor")

    def test_finding_orders_and_skus_by_index(self, shop: Shop) -> None:
        """Every filter combination pages exactly, newest first, never an empty page with a cursor; on
        DynamoDB only Query, GetItem and BatchGetItem are called (never a Scan)."""
        calls: list[str] = []
        db = getattr(shop.store, "db", None)
        shop.sku("A", 100)
        shop.sku("LOW", 2, low_stock_threshold=5)
        shop.sku("GONE", 0)
        placed = []
        for n in range(8):
            customer, phone = ("cus_1", "+86 138 0013 8000") if n % 2 == 0 else ("cus_2", None)
            placed.append((shop.place([("A", 1)], customer=customer, phone=phone).order_id, customer))
            shop.later(1)
        paid = {placed[0][0], placed[4][0], placed[5][0]}
        for order_id in paid:
            assert shop.pay(order_id) == "paid"
        if db is not None:
            db.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))

        def every(filters: finding.OrderFilters) -> list[str]:
            seen, cursor = [], None
            while True:
                page, cursor = finding.find_orders(shop.ports, filters, 1, cursor)
                assert page or not cursor
                seen += [o.order_id for o in page]
                if not cursor:
                    return seen

        newest = [order_id for order_id, _ in reversed(placed)]
        digest = phones.phone_digest("13800138000")
        paid_status = OrderStatus.PAID
        assert every(finding.OrderFilters(status=paid_status)) == [i for i in newest if i in paid]
        assert every(finding.OrderFilters(customer_id="cus_1", status=paid_status)) == [placed[4][0], placed[0][0]]
        assert every(finding.OrderFilters(phone_digest=digest)) == [i for i, c in reversed(placed) if c == "cus_1"]
        assert every(finding.OrderFilters(phone_digest=digest, status=paid_status)) == [placed[4][0], placed[0][0]]
        assert every(finding.OrderFilters(phone_digest=digest, customer_id="cus_2")) == []
        number = shop.order(placed[5][0]).order_number
        assert every(finding.OrderFilters(order_number=number.lower(), status=paid_status)) == [placed[5][0]]
        assert every(finding.OrderFilters(order_number=number, customer_id="cus_1")) == []
        page, _ = shop.store.customer_orders("cus_2", 10, None, status="PENDING_PAYMENT")
        assert [o.order_id for o in page] == [placed[7][0], placed[3][0], placed[1][0]]

        def codes(states: tuple[str, ...] | None) -> list[str]:
            seen, cursor = [], None
            while True:
                page, cursor = shop.store.skus(states=states, limit=1, cursor=cursor)
                seen += [sku.sku for sku in page]
                if not cursor:
                    return seen

        assert codes(None) == ["A", "GONE", "LOW"]
        assert codes(finding.LOW_STOCK_STATES) == ["GONE", "LOW"]
        assert codes(finding.IN_STOCK_STATES) == ["A"]
        (a,), _ = shop.store.skus(states=finding.IN_STOCK_STATES, limit=5, cursor=None)
        assert a.levels == StockLevels(on_hand=97, available=92, reserved=5, sold=3)
        assert not calls or set(calls) <= {"Query", "GetItem", "BatchGetItem"}, set(calls)

    # ---- the store's own contract (what the services rely on) ----------------

    def test_commit_conditions_and_atomicity(self, shop: Shop) -> None:
        shop.sku("A", 5)
        order = shop.order(shop.place([("A", 2)], key="k1").order_id)
        store = shop.store
        at = clock.iso(clock.now())
        paid = order.transition(OrderStatus.PAID, at=at, actor=ADMIN, reason="test")
        store.commit(Commit(order_update=(order, paid)))
        with pytest.raises(StaleWrite):  # the version read is gone
            store.commit(Commit(order_update=(order, paid)))
        marker = RestockApplied("msg-1", "A", 1, applied_at=at, expires=1)
        store.commit(Commit(records=[marker]))
        assert store.restock_applied("msg-1") == marker and store.restock_applied("msg-2") is None
        from shop.domain import stock

        take = stock.adjust("A", 0, -1, at=at, actor=ADMIN, reason="test")
        with pytest.raises(CommitRejected) as rejected:  # all or nothing: the stock write is not applied either
            store.commit(Commit(movements=[take], records=[dataclasses.replace(marker, quantity=2)]))
        assert rejected.value.labels == {RestockApplied.label}
        assert rejected.value.existing[RestockApplied.label].quantity == 1
        assert shop.levels("A") == StockLevels(5, 3, 2, 0)
        too_many = stock.adjust("A", 0, -4, at=at, actor=ADMIN, reason="test")
        with pytest.raises(StockShort) as short:
            store.commit(Commit(movements=[too_many]))
        assert short.value.skus == {"A"}
        with pytest.raises(StockShort):  # no such shard
            store.commit(Commit(movements=[stock.adjust("A", 7, 1, at=at, actor=ADMIN, reason="test")]))
        store.commit(Commit(movements=[take]))
        with pytest.raises(StaleWrite):  # a movement is ledgered once
            store.commit(Commit(movements=[take]))
        assert shop.levels("A") == StockLevels(4, 2, 2, 0) and shop.ledger_matches_levels("A")
        store.commit(Commit(records=[PaidFromAddress("x", at, f"ord_{n}", expires=1) for n in range(3)]))
        assert store.count_paid_from_address("x", at) == 3 and store.count_paid_from_address("x", at + "~") == 0
        sku = store.get_catalog(["A"])["A"]
        with pytest.raises(StaleWrite):  # a catalog edit on an old version
            store.commit(Commit(sku_put=(dataclasses.replace(sku, name="x"), 0)))
        with pytest.raises(CommitRejected) as exists:
            store.commit(Commit(sku_put=(sku, None)))
        assert exists.value.labels == {"sku_new"}
        assert store.set_stock_state("A", "low_stock", "in_stock") is True
        assert store.set_stock_state("A", "sold_out", "in_stock") is False
        assert store.get_catalog(["A"])["A"].stock_state == "low_stock"

    def test_commit_guards_orders_against_catalog_changes(self, shop: Shop) -> None:
        shop.sku("A", 5)
        store = shop.store
        order = shop.order(shop.place([("A", 1)]).order_id)
        at = clock.iso(clock.now())
        with pytest.raises(CommitRejected) as exists:  # an order id is written once
            store.commit(Commit(new_order=dataclasses.replace(order, order_number="other")))
        assert exists.value.labels == {"order_new"}
        from shop.domain import stock

        read = store.get_catalog(["A"])["A"]
        take = stock.allocate("A", 0, 1, at=at, actor=ADMIN, order_id=order.order_id)
        shop.sku("A", None, price=2500)  # the price changed after the order read it
        with pytest.raises(StockShort):
            store.commit(Commit(movements=[take], catalog_guards={"A": read}))
        shop.sku("A", None, price=PRICE, active=False)
        with pytest.raises(StockShort):  # deactivated
            store.commit(Commit(movements=[take], catalog_guards={"A": read}))
        shop.sku("A", None, price=PRICE)
        store.commit(Commit(movements=[take], catalog_guards={"A": read}))
        assert shop.levels("A").reserved == 2
        mine = store.get_order(order.order_id)  # what a caller does to what it read never changes the record
        mine.shipping_address["city"] = "elsewhere"
        assert shop.order(order.order_id).shipping_address["city"] == "Localhost"

    def test_commit_keeps_an_available_unit_on_the_shards_it_is_told_to(self, shop: Shop) -> None:
        from shop.domain import stock

        shop.sku("K", 3)
        at = clock.iso(clock.now())
        take = stock.allocate("K", 0, 3, at=at, actor=ADMIN, order_id="ord_k")
        with pytest.raises(StockShort) as short:  # would empty the shard it must keep a unit on
            shop.store.commit(Commit(movements=[take], keep_available=frozenset({("K", 0)})))
        assert short.value.skus == {"K"} and shop.levels("K") == StockLevels(3, 3, 0, 0)
        shop.store.commit(Commit(movements=[dataclasses.replace(take, delta=StockLevels(0, -2, 2, 0))],
                                 keep_available=frozenset({("K", 0)})))
        shop.store.commit(Commit(movements=[stock.allocate("K", 0, 1, at=at, actor=ADMIN, order_id="ord_l")]))
        assert shop.levels("K") == StockLevels(3, 0, 3, 0) and shop.ledger_matches_levels("K")

    def test_pending_refunds_are_listed_by_age(self, shop: Shop) -> None:
        shop.sku("A", 5)
        order_id = shop.paid_order([("A", 1)])
        before = clock.iso(clock.now() - timedelta(seconds=1))
        shop.provider.failures_left = 1
        refunds.cancel(shop.ports, shop.provider_for, order_id, actor=ADMIN, reason="fraud")
        assert shop.store.pending_refund_order_ids(before) == []
        assert shop.store.pending_refund_order_ids(clock.iso(clock.now())) == [order_id]
        assert shop.store.pending_refund_order_ids(clock.iso(clock.now()), limit=0) == []
