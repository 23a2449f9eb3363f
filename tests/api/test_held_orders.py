"""An order held for a wrong amount waits for an operator: another payment never settles it (through the real
payment_webhook handler, moto)."""

from __future__ import annotations

import pytest

from localrun.fake_providers import signed_webhook
from shop.domain.money import Money
from tests.api.test_expiry_and_restock import levels
from tests.api.test_orders_api import make_sku, place
from tests.api.test_payment_webhooks import KEYS, get, records

pytestmark = pytest.mark.usefixtures("provider_env")


def pay(api, order, amount: Money, payment_id: str):
    headers, body = signed_webhook(KEYS, "sandbox", order["order_id"], amount, payment_id=payment_id)
    return api.request("POST", "/webhooks/sandbox", user=None, headers=dict(headers), raw=body)


def test_a_second_payment_does_not_settle_an_order_held_for_a_wrong_amount(api):
    make_sku(api, "TEE", on_hand=5)
    order = place(api, ("TEE", 1)).json()
    right = Money(order["total"]["amount"], order["total"]["currency"])
    assert pay(api, order, Money(1, right.currency), "pay_short").status == 200
    assert pay(api, order, right, "pay_full").status == 200  # the customer pays again, the right amount
    held = get(api, order)
    assert (held["status"], held["payment_status"]) == ("ON_HOLD", "unpaid")  # still the operator's decision
    assert levels(api) == {"on_hand": 5, "available": 4, "reserved": 1, "sold": 0}  # reserved, not sold
    assert [r["outcome"]["S"] for r in records("refunded")] == ["refunded"]  # the second payment goes back
