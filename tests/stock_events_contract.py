"""stock.low and stock.sold_out on every movement that crosses downwards, whatever moved the stock: written once,
run on the in-memory fake store (tests/unit/test_services_fake_store.py) and on DynamoDB Local
(tests/ddblocal/test_services_ddblocal.py). Units coming back (restock, release) never announce anything;
they only let the next crossing be announced again."""

from __future__ import annotations

import pytest

from shop.domain.errors import InsufficientStock
from shop.domain.skus import StockPolicy
from shop.services import catalog, payments
from shop.services.orders import expire_order, mark_paid
from tests.services_contract import ADMIN, Shop


def stock_events(shop: Shop) -> list[tuple[str, dict]]:
    return [(kind, detail) for kind, detail in shop.events.published if kind.startswith("stock.")]


class StockEventContract:
    def test_adjustments_announce_each_downward_crossing_and_never_a_restock(self, shop: Shop) -> None:
        shop.sku("A", 10, low_stock_threshold=3)
        catalog.adjust_stock(shop.ports, "A", -7, reason="damaged", actor=ADMIN)
        assert stock_events(shop) == [("stock.low", {"sku": "A", "available": 3})]
        catalog.adjust_stock(shop.ports, "A", -3, reason="damaged", actor=ADMIN)
        assert stock_events(shop)[-1] == ("stock.sold_out", {"sku": "A"})
        catalog.adjust_stock(shop.ports, "A", +8, reason="delivery", actor=ADMIN)  # back above: nothing
        assert len(stock_events(shop)) == 2
        catalog.adjust_stock(shop.ports, "A", -6, reason="damaged", actor=ADMIN)  # crosses again: announced again
        assert stock_events(shop)[-1] == ("stock.low", {"sku": "A", "available": 2})

    def test_an_adjustment_taking_the_last_units_of_a_sku_without_threshold_sells_it_out(self, shop: Shop) -> None:
        shop.sku("A", 4)
        catalog.adjust_stock(shop.ports, "A", -1, reason="damaged", actor=ADMIN)
        assert stock_events(shop) == []
        catalog.adjust_stock(shop.ports, "A", -3, reason="damaged", actor=ADMIN)
        assert stock_events(shop) == [("stock.sold_out", {"sku": "A"})]

    def test_placement_announces_low_and_the_exact_last_units_sold_out(self, shop: Shop) -> None:
        shop.sku("A", 5, low_stock_threshold=2)
        shop.sku("B", 2)  # no threshold: only the sell-out is news
        shop.place([("A", 3)])
        assert stock_events(shop) == [("stock.low", {"sku": "A", "available": 2})]
        shop.place([("A", 2), ("B", 2)])  # the last units exactly: no order ran short
        assert sorted(stock_events(shop)[1:], key=str) == [("stock.sold_out", {"sku": "A"}),
                                                           ("stock.sold_out", {"sku": "B"})]

    def test_orders_leaving_units_read_no_shard_and_the_one_taking_the_last_unit_announces(self, shop: Shop) -> None:
        shop.sku("N", 3)  # no threshold: only the sell-out is news
        reads: list[dict] = []
        real = shop.store.shard_levels
        shop.store.shard_levels = lambda shards, **kw: reads.append(shards) or real(shards, **kw)
        shop.place([("N", 1)])
        shop.place([("N", 1)])
        assert reads == [] and stock_events(shop) == []  # the order path's only read is its catalog read
        shop.place([("N", 1)])  # the last unit: its write, planned blind, must leave one, so this order reads
        assert reads and stock_events(shop) == [("stock.sold_out", {"sku": "N"})]
        with pytest.raises(InsufficientStock):
            shop.place([("N", 1)])
        assert stock_events(shop) == [("stock.sold_out", {"sku": "N"})]  # once per crossing

    def test_deduct_on_payment_sales_announce_when_paid(self, shop: Shop) -> None:
        shop.sku("D", 3, low_stock_threshold=1, stock_policy=StockPolicy.DEDUCT_ON_PAYMENT)
        first = shop.place([("D", 2)]).order_id
        second = shop.place([("D", 1)]).order_id
        assert stock_events(shop) == []  # nothing is held before payment
        assert shop.pay(first) == "paid"
        assert stock_events(shop) == [("stock.low", {"sku": "D", "available": 1})]
        mark_paid(shop.ports, second, actor="provider:test")  # the other payment path
        assert stock_events(shop)[-1] == ("stock.sold_out", {"sku": "D"})

    def test_a_late_payment_taking_released_units_again_announces(self, shop: Shop) -> None:
        shop.sku("L", 2)
        order_id = shop.place([("L", 2)]).order_id
        assert stock_events(shop) == [("stock.sold_out", {"sku": "L"})]
        shop.later(901)
        assert expire_order(shop.ports, order_id) is not None  # units back: recorded silently
        assert len(stock_events(shop)) == 1
        assert shop.pay(order_id) == "paid"  # paid after all: the units are taken again
        assert stock_events(shop) == [("stock.sold_out", {"sku": "L"})] * 2

    def test_approving_a_held_deduct_on_payment_order_announces(self, shop: Shop) -> None:
        shop.sku("H", 2, stock_policy=StockPolicy.DEDUCT_ON_PAYMENT)
        order_id = shop.place([("H", 2)]).order_id
        assert shop.pay(order_id, amount=1) == "amount_mismatch_held"
        assert stock_events(shop) == []
        payments.approve_held(shop.ports, order_id, actor=ADMIN)
        assert stock_events(shop) == [("stock.sold_out", {"sku": "H"})]
