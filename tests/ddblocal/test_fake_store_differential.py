"""The in-memory fake store against DynamoDB Local on random sequences of use cases: the same operations on both
(orders placed within per-customer caps, paid with right and wrong amounts, cancelled, expired, refunded by amount
and by line, shipped, stock adjusted and restocked), each answering the same outcome (the same result or the same
domain error), ending with the same stock levels, ledgers and orders. With tests/services_contract.py, this is what
shows the fake (tests/fakes/store.py) faithful beyond the cases written by hand."""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from shop.adapters import aws
from shop.adapters.dynamo_store import DynamoShopStore
from shop.adapters.table_schema import create_table_kwargs
from shop.domain import clock
from shop.domain.errors import DomainError
from shop.domain.orders import Order
from shop.services import catalog, fulfilment, refunds
from shop.services.orders import expire_order
from shop.services.ports import HoldLimits
from tests.fakes import InMemoryStore
from tests.services_contract import ADMIN, PRICE, Shop

pytestmark = pytest.mark.ddblocal

SKUS = ("A", "B")
CUSTOMERS = ("cus_1", "cus_2")
LIMITS = HoldLimits(max_unpaid_orders=3, max_unpaid_units_per_sku=6)

order_ref = st.integers(0, 7)
PLACE = st.tuples(st.just("place"), st.sampled_from(CUSTOMERS), st.sampled_from(SKUS), st.integers(1, 4))
OPERATIONS = st.one_of(
    PLACE,
    st.tuples(st.just("pay"), order_ref, st.booleans()),
    st.tuples(st.just("pay"), order_ref, st.just(True)),
    st.tuples(st.just("cancel"), order_ref),
    st.tuples(st.just("later")),
    st.tuples(st.just("expire"), order_ref),
    st.tuples(st.just("refund"), order_ref, st.integers(1, 3 * PRICE)),
    st.tuples(st.just("return"), order_ref, st.sampled_from(SKUS)),
    st.tuples(st.just("ship"), order_ref),
    st.tuples(st.just("adjust"), st.sampled_from(SKUS), st.integers(-6, 6).filter(bool), st.integers(0, 2)),
    st.tuples(st.just("restock")),
)


def summary(order: Order | None) -> Any:
    if order is None:
        return None
    return (order.status.value, order.payment_status, order.amount_paid, order.amount_refunded,
            len(order.refunds), len(order.shipments), tuple((line.sku, line.quantity) for line in order.lines))


def outcome_kind(outcome: Any) -> str:
    """What happened, for hypothesis' statistics (pytest --hypothesis-show-statistics)."""
    if isinstance(outcome, tuple) and len(outcome) == 2 and isinstance(outcome[1], str):
        return outcome[0]  # a domain error
    return outcome[0] if isinstance(outcome, tuple) else str(outcome)[:20]


class Side:
    """One shop and the ids of the orders it placed, in order (ids are random: compared by position)."""

    def __init__(self, store: Any):
        self.shop = Shop(store, None)
        self.orders: list[str] = []

    def apply(self, op: tuple[Any, ...]) -> Any:
        shop, kind = self.shop, op[0]
        try:
            if kind == "place":
                placed = shop.place([(op[2], op[3])], customer=op[1], limits=LIMITS)
                self.orders.append(placed.order_id)
                return summary(shop.order(placed.order_id))
            if kind == "restock":
                return shop.restocks.deliver(shop.ports)
            if kind == "adjust":
                sku, _ = catalog.adjust_stock(shop.ports, op[1], op[2], reason="count", actor=ADMIN,
                                              request_id=f"adj-{op[3]}")
                return sku.levels
            if not self.orders:
                return "no order"
            order_id = self.orders[op[1] % len(self.orders)]
            if kind == "pay":
                return shop.pay(order_id, None if op[2] else PRICE // 2)
            if kind == "cancel":
                return summary(refunds.cancel(shop.ports, shop.provider_for, order_id, actor=ADMIN, reason="ops"))
            if kind == "expire":
                return summary(expire_order(shop.ports, order_id))
            if kind == "refund":
                return summary(refunds.refund_order(shop.ports, shop.provider, order_id, amount=op[2], lines=None,
                                                    restock=False, reason="goodwill", key=uuid.uuid4().hex,
                                                    actor=ADMIN))
            if kind == "return":
                return summary(refunds.refund_order(shop.ports, shop.provider, order_id, amount=None,
                                                    lines=[(op[2], 1)], restock=True, reason="returned",
                                                    key=uuid.uuid4().hex, actor=ADMIN))
            if kind == "ship":
                shipped, _ = fulfilment.ship_order(shop.ports, order_id, units=None, carrier=None,
                                                   tracking_number=None, key=uuid.uuid4().hex, actor=ADMIN)
                return summary(shipped)
        except DomainError as error:  # the same error, naming the same order (ids are random: by position)
            extra = repr(error.extra)
            for n, order_id in enumerate(self.orders):
                extra = extra.replace(order_id, f"order#{n}")
            return type(error).__name__, extra
        raise AssertionError(op)

    def state(self) -> Any:
        store = self.shop.store
        levels = {code: store.get_sku(code).levels for code in SKUS}
        ledgers = {code: sorted((m.reason, *m.delta.to_dict().values()) for m in self.shop.ledger(code)) for code in SKUS}
        return levels, ledgers, [summary(store.get_order(order_id)) for order_id in self.orders]


@pytest.fixture
def dynamo_tables(dynamodb_local, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_local.endpoint_url)
    aws.reset_clients()
    admin = boto3.client("dynamodb", endpoint_url=dynamodb_local.endpoint_url)

    def new_store() -> DynamoShopStore:
        table = f"diff-{uuid.uuid4().hex[:12]}"
        admin.create_table(**create_table_kwargs(table))
        return DynamoShopStore(table)

    yield new_store
    aws.reset_clients()


@settings(max_examples=int(os.environ.get("FAKE_DIFF_EXAMPLES", "10")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=st.lists(PLACE, min_size=2, max_size=5), then=st.lists(OPERATIONS, min_size=4, max_size=16))
def test_fake_and_dynamodb_local_agree(dynamo_tables, monkeypatch, first, then) -> None:
    operations = first + then
    offset = [timedelta()]
    real_now = clock.now
    with monkeypatch.context() as patch:
        patch.setattr(clock, "now", lambda: real_now() + offset[0])
        fake, real = Side(InMemoryStore()), Side(dynamo_tables())
        for side in (fake, real):
            for code in SKUS:
                side.shop.sku(code, 8)
        for step, op in enumerate(operations):
            if op[0] == "later":
                offset[0] += timedelta(seconds=1000)  # every unpaid order's window has ended
                continue
            on_fake, on_real = fake.apply(op), real.apply(op)
            event(f"{op[0]}: {outcome_kind(on_real)}")
            assert on_fake == on_real, f"step {step} {op}: fake {on_fake!r}, DynamoDB Local {on_real!r}"
        assert fake.state() == real.state()
