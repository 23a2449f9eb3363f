"""Every provider's flow over HTTP against the local server and its provider fakes."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.e2e.test_local_api import levels, new_sku, place

pytestmark = pytest.mark.e2e


# Alipay and WeChat Pay (domestic) take CNY only: their orders are priced in CNY.
CNY = {"price": {"amount": 1999, "currency": "CNY"}}


def currency_of(provider: str) -> dict:
    return CNY if provider in ("alipay", "wechatpay") else {}


def wait_for(check, timeout=20):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.3)


@pytest.mark.parametrize("provider, field", [("sandbox", "pay_url"), ("stripe", "client_secret"),
                                             ("alipay", "qr_code"), ("wechatpay", "code_url")])
def test_pay_with_each_provider(local_server, provider, field):
    api = local_server
    code = new_sku(api, on_hand=5, **currency_of(provider))
    placed = place(api, code, quantity=2, payment_provider=provider)
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert order["payment"]["provider"] == provider and order["payment"][field]
    paid = api.call("POST", f"/_local/pay/{order['order_id']}", user=None)
    assert paid.status_code == 200 and paid.json()["webhook"]["status"] == 200, paid.text
    if provider == "alipay":
        assert paid.json()["webhook"]["body"] == "success"
    got = api.call("GET", f"/orders/{order['order_id']}").json()
    assert (got["status"], got["payment_status"]) == ("PAID", "paid")
    assert levels(api, code) == {"on_hand": 3, "available": 3, "reserved": 0, "sold": 2}


def test_duplicate_webhook_and_refund_with_restock(local_server):
    api = local_server
    code = new_sku(api, on_hand=5)
    order = place(api, code, quantity=3, payment_provider="stripe").json()
    event = {"event_id": f"evt_{uuid.uuid4().hex}"}
    for _ in range(2):
        assert api.call("POST", f"/_local/pay/{order['order_id']}", user=None, json=event).status_code == 200
    assert levels(api, code)["sold"] == 3
    refund = api.admin("POST", f"/admin/orders/{order['order_id']}/refunds", headers={"Idempotency-Key": "r1"},
                       json={"lines": [{"sku": code, "quantity": 2}], "restock": True, "reason": "damaged box"})
    assert refund.status_code == 201, refund.text
    body = refund.json()
    assert body["payment_status"] == "partially_refunded"
    assert body["amount_refunded"] == {"amount": 2 * 1999, "currency": "EUR"}
    again = api.admin("POST", f"/admin/orders/{order['order_id']}/refunds", headers={"Idempotency-Key": "r1"},
                      json={"lines": [{"sku": code, "quantity": 2}], "restock": True, "reason": "damaged box"})
    assert again.json()["amount_refunded"] == body["amount_refunded"]
    wait_for(lambda: levels(api, code) == {"on_hand": 4, "available": 4, "reserved": 0, "sold": 1})


def test_wrong_amount_holds_the_order_and_reject_refunds(local_server):
    api = local_server
    code = new_sku(api, on_hand=5, **CNY)
    order = place(api, code, quantity=1, payment_provider="wechatpay").json()
    api.call("POST", f"/_local/pay/{order['order_id']}", user=None, json={"amount": {"amount": 1, "currency": "CNY"}})
    held = api.call("GET", f"/orders/{order['order_id']}").json()
    assert held["status"] == "ON_HOLD" and held["hold_reason"] == "under_review"
    by_operator = api.admin("GET", f"/admin/orders?order_number={order['order_number']}").json()["items"][0]
    assert "amount mismatch" in by_operator["hold_reason"]
    assert levels(api, code)["reserved"] == 1
    rejected = api.admin("POST", f"/admin/orders/{order['order_id']}/reject")
    assert rejected.status_code == 200 and rejected.json()["status"] == "CANCELLED"
    assert levels(api, code) == {"on_hand": 5, "available": 5, "reserved": 0, "sold": 0}


def test_customer_cancel_of_a_paid_order_refunds_and_restocks(local_server):
    api = local_server
    code = new_sku(api, on_hand=3, **CNY)
    order = place(api, code, quantity=2, payment_provider="alipay").json()
    api.call("POST", f"/_local/pay/{order['order_id']}", user=None)
    cancelled = api.call("POST", f"/orders/{order['order_id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["status"], cancelled.json()["payment_status"]) == ("CANCELLED", "refunded")
    wait_for(lambda: levels(api, code) == {"on_hand": 3, "available": 3, "reserved": 0, "sold": 0})


def test_paid_order_ships_in_two_parcels_and_can_no_longer_be_cancelled(local_server):
    api = local_server
    code = new_sku(api, on_hand=5)
    order = place(api, code, quantity=3, payment_provider="sandbox").json()
    api.call("POST", f"/_local/pay/{order['order_id']}", user=None)
    path = f"/admin/orders/{order['order_id']}/shipments"
    first = api.admin("POST", path, headers={"Idempotency-Key": "parcel-1"},
                      json={"lines": [{"sku": code, "quantity": 1}], "carrier": "DHL", "tracking_number": "JD01"})
    assert first.status_code == 201 and first.json()["status"] == "PARTIALLY_SHIPPED", first.text
    rest = api.admin("POST", path, headers={"Idempotency-Key": "parcel-2"}, json={})
    assert (rest.json()["status"], rest.json()["fulfillment_status"]) == ("SHIPPED", "fulfilled")
    assert api.admin("POST", path, headers={"Idempotency-Key": "parcel-2"}, json={}).status_code == 200
    assert api.call("POST", f"/orders/{order['order_id']}/cancel").status_code == 409
    assert levels(api, code) == {"on_hand": 2, "available": 2, "reserved": 0, "sold": 3}
    seen: list[str] = []

    def shipped_events_arrived() -> bool:
        seen.extend(e["detail-type"] for e in api.call("GET", "/_local/events", user=None).json()["events"]
                    if e.get("detail", {}).get("order_id") == order["order_id"])
        return "order.shipped" in seen

    wait_for(shipped_events_arrived)
    assert [t for t in seen if "shipped" in t] == ["order.partially_shipped", "order.shipped"]


def test_tampered_webhooks_change_nothing(local_server):
    api = local_server
    code = new_sku(api, on_hand=2)
    order = place(api, code, quantity=1, payment_provider="stripe").json()
    body = b'{"id":"evt_x","type":"payment_intent.succeeded","data":{"object":{"id":"pi","amount":1999,"currency":"eur","metadata":{"order_id":"%s"}}}}' % order["order_id"].encode()
    for headers in ({}, {"Stripe-Signature": "t=1,v1=00"}, {"Stripe-Signature": "garbage"}):
        answer = api.call("POST", "/webhooks/stripe", user=None, data=body, headers=headers)
        assert answer.status_code in (400, 401) and "Traceback" not in answer.text
    assert api.call("POST", "/webhooks/paypal", user=None, data=b"{}").status_code == 404
    assert api.call("GET", f"/orders/{order['order_id']}").json()["status"] == "PENDING_PAYMENT"


def test_partial_refunds_through_wechat_pay_carry_the_transaction_total(local_server):
    # The WeChat Pay fake, like WeChat Pay, refuses a refund whose amount.total is not the transaction's.
    api = local_server
    code = new_sku(api, on_hand=5, **CNY)
    order = place(api, code, quantity=2, payment_provider="wechatpay").json()
    assert api.call("POST", f"/_local/pay/{order['order_id']}", user=None).json()["webhook"]["status"] == 200
    path = f"/admin/orders/{order['order_id']}/refunds"
    first = api.admin("POST", path, headers={"Idempotency-Key": "w1"}, json={"amount": {"amount": 500, "currency": "CNY"}})
    assert first.status_code == 201, first.text
    rest = api.admin("POST", path, headers={"Idempotency-Key": "w2"}, json={})
    assert rest.status_code == 201, rest.text
    assert (rest.json()["payment_status"], rest.json()["amount_refunded"]["amount"]) == ("refunded", 2 * 1999)
    assert api.admin("POST", path, headers={"Idempotency-Key": "w3"}, json={}).status_code == 409


def test_late_stripe_payment_without_stock_is_refunded_over_http(local_server):
    api = local_server
    code = new_sku(api, on_hand=1)
    late = place(api, code, quantity=1, payment_provider="stripe").json()
    wait_for(lambda: api.call("GET", f"/orders/{late['order_id']}").json()["status"] == "EXPIRED", timeout=30)
    wait_for(lambda: levels(api, code)["available"] == 1)
    taken = place(api, code, quantity=1, user="bob")  # the unit went to someone else meanwhile
    assert taken.status_code == 201, taken.text
    paid = api.call("POST", f"/_local/pay/{late['order_id']}", user=None)
    assert paid.json()["webhook"]["status"] == 200, paid.text
    got = api.call("GET", f"/orders/{late['order_id']}").json()
    assert (got["status"], got["payment_status"]) == ("EXPIRED", "refunded")  # money given back, never kept
    assert got["amount_paid"] == got["amount_refunded"] == late["total"]
    assert [(r["automatic"], r["status"]) for r in got["refunds"]] == [(True, "succeeded")]
    assert levels(api, code) == {"on_hand": 1, "available": 0, "reserved": 1, "sold": 0}
    refunded = [e for e in api.call("GET", "/_local/events", user=None).json()["events"]
                if e.get("detail-type") == "order.refunded" and e["detail"]["order_id"] == late["order_id"]]
    assert refunded and refunded[0]["detail"]["automatic"] is True


def test_the_sandbox_pay_url_opens_in_a_browser(local_server):
    """GET pay_url is a page whose button (a form POST, as a browser sends it) pays; curl -d JSON stays the API."""
    api = local_server
    order = place(api, new_sku(api, on_hand=5)).json()
    page = api.call("GET", order["payment"]["pay_url"], user=None)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert '<form method="post">' in page.text and "<button" in page.text and order["order_id"] in page.text
    pressed = api.call("POST", order["payment"]["pay_url"], user=None, data={"pay_page": "1"})
    assert pressed.status_code == 200 and pressed.headers["Content-Type"].startswith("text/html")
    assert "Paid" in pressed.text
    assert api.call("GET", f"/orders/{order['order_id']}").json()["status"] == "PAID"
    held = place(api, new_sku(api, on_hand=5)).json()
    wrong = api.call("POST", held["payment"]["pay_url"], user=None, data='{"amount": {"amount": 1, "currency": "EUR"}}',
                     headers={"Content-Type": "application/x-www-form-urlencoded"})  # what curl -d sends
    assert wrong.status_code == 200 and wrong.json()["webhook"]["status"] == 200
    assert api.call("GET", f"/orders/{held['order_id']}").json()["status"] == "ON_HOLD"
