"""Notifications over HTTP under `make run`: the local bus's rule (from the manifest) feeds the notifier's queue,
and what it sends shows at GET /_local/outbox and in the customer's GET /me/notifications."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.e2e.test_local_api import new_sku

pytestmark = pytest.mark.e2e

ADDRESS_CN = {"name": "李雷", "line1": "中山路 1 号", "city": "上海", "postal_code": "200000", "country": "CN",
              "phone": "138 0013 8000"}


def wait_for(fetch, until, timeout=90.0):  # the notifier shares the local workers with everything else
    deadline = time.monotonic() + timeout
    while True:
        got = fetch()
        if until(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.3)


def test_place_and_pay_sends_messages_to_the_outbox_and_the_customers_inbox(local_server):
    api = local_server
    user = f"cust-{uuid.uuid4().hex[:8]}"
    prefs = api.call("PUT", "/me/notification-preferences", user=user, json={"email": f"{user}@example.com"})
    assert prefs.status_code == 200, prefs.text
    code = new_sku(api, on_hand=3, low_stock_threshold=2)
    placed = api.call("POST", "/orders", user=user, headers={"Idempotency-Key": uuid.uuid4().hex}, json={
        "items": [{"sku": code, "quantity": 2}], "shipping_address": ADDRESS_CN, "payment_provider": "sandbox"})
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert api.call("POST", f"/_local/pay/{order['order_id']}").status_code == 200

    number = order["order_number"]
    inbox = wait_for(lambda: api.call("GET", "/me/notifications", user=user).json()["items"],
                     lambda items: {m["type"] for m in items} >= {"order.created", "order.paid"})
    # Newest first. The test server's payment window is 5 s: on a slow machine the order may expire before the
    # payment arrives (order.expired between them; the late payment takes the units again).
    assert [m["type"] for m in inbox][0] == "order.paid" and [m["type"] for m in inbox][-1] == "order.created"
    assert all(m["locale"] == "zh-CN" and number in m["body"] for m in inbox)  # a CN address: Chinese
    assert "支付成功" in inbox[0]["subject"]
    assert api.call("GET", "/me/notifications", user="someone-else").json()["items"] == []

    def mine(messages):
        return [m for m in messages if number in (m.get("body") or "") or code in (m.get("body") or "")]

    outbox = wait_for(lambda: mine(api.call("GET", "/_local/outbox", user=None).json()["messages"]),
                      lambda sent: {m["channel"] for m in sent} >= {"in_app", "email", "sms", "operators"})
    channels = {(m["channel"], m.get("type")) for m in outbox}
    assert ("email", None) in channels and ("sms", None) in channels
    assert [m["to"] for m in outbox if m["channel"] == "sms"] == ["+8613800138000"]  # order.paid only
    assert {m["to"][0] for m in outbox if m["channel"] == "email"} == {f"{user}@example.com"}
    assert ("operators", "stock.low") in channels  # 3 -> 1 available, threshold 2
