"""Outbound provider calls against the fakes over HTTP: create, query and refund, each idempotent."""

from __future__ import annotations

import pytest

from shop.domain.money import Money
from shop.payments.registry import PROVIDERS
from tests.ddblocal.test_contention import stock_up

pytestmark = pytest.mark.ddblocal


@pytest.mark.parametrize("name", ["stripe", "alipay", "wechatpay"])
def test_create_query_refund(ddb_ports, provider_fakes, name):
    from shop.services.orders import OrderPolicy, OrderRequest, PlaceOrder, place_order

    stock_up(ddb_ports, ["CALL-1"], on_hand=5)
    provider = PROVIDERS[name]
    request = OrderRequest(items=[("CALL-1", 1)], shipping_address={}, payment_provider=name)
    placed = place_order(ddb_ports, PlaceOrder("alice", "k", request, "f"), OrderPolicy(900, 60),
                         lambda o: provider.create_payment(o))
    order = ddb_ports.store.get_order(placed.order_id)
    assert order.payment["provider"] == name
    assert provider.query(order) == "pending"
    provider_fakes.mark_paid(order.order_id)
    assert provider.query(order) == "succeeded"
    first = provider.refund(order_id=order.order_id, provider_payment_id="pay", amount=Money(1500, "USD"),
                            refund_id="rf_same")
    again = provider.refund(order_id=order.order_id, provider_payment_id="pay", amount=Money(1500, "USD"),
                            refund_id="rf_same")
    assert first.provider_refund_id == again.provider_refund_id  # the provider saw one refund
