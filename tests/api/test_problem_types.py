"""Each refusal names its problem type and status (RFC 9457): a storefront or an operator's tool branches on
`type`, so a type or a status that changes breaks them (through the real handlers, moto)."""

from __future__ import annotations

from shop.payments.base import MAX_WEBHOOK_BYTES
from shop.payments.signing import hmac_header
from tests.api.conftest import PROVIDER_KEYS
from tests.api.test_orders_api import make_sku, order_body, place


def problem(result) -> tuple[int, str, int]:
    body = result.json()
    assert result.headers["content-type"] == "application/problem+json", result.text
    return result.status, body["type"], body["status"]


def test_each_refusal_has_its_type_and_status(api, monkeypatch):
    make_sku(api, "TEE", on_hand=1)
    assert problem(place(api, ("TEE", 2), key="short")) == (409, "/problems/insufficient-stock", 409)
    order = place(api, ("TEE", 1), key="k1").json()
    assert problem(api.request("POST", "/orders", body=order_body(("TEE", 2)), headers={"Idempotency-Key": "k1"})) \
        == (422, "/problems/idempotency-key-reused", 422)
    ship = api.admin("POST", f"/admin/orders/{order['order_id']}/shipments", body={})
    assert problem(ship) == (409, "/problems/invalid-transition", 409)  # not paid
    assert problem(api.request("GET", f"/orders/{order['order_id']}", user="mallory")) == (
        404, "/problems/not-found", 404)
    assert problem(api.request("GET", "/orders", user=None)) == (401, "/problems/unauthorized", 401)
    assert problem(api.request("GET", "/admin/orders")) == (403, "/problems/forbidden", 403)
    assert problem(api.admin("POST", "/admin/skus/TEE/adjustments", body={"delta": 0, "reason": "x"})) == (
        422, "/problems/invalid-request", 422)
    monkeypatch.setenv("MAX_UNPAID_ORDERS_PER_CUSTOMER", "1")
    make_sku(api, "CAP", on_hand=5)
    assert problem(place(api, ("CAP", 1), key="k2")) == (429, "/problems/unpaid-limit", 429)


def test_a_webhook_body_may_be_64_KiB_and_not_a_byte_more(api, provider_env):
    def sent(size: int) -> int:
        body = b'{"id": "evt_big", "type": "payment.created", "pad": "' + b"x" * (size - 55) + b'"}'
        assert len(body) == size
        headers = {"Sandbox-Signature": hmac_header(PROVIDER_KEYS.sandbox_webhook_secret, body)}
        return api.request("POST", "/webhooks/sandbox", user=None, headers=headers, raw=body).status

    assert MAX_WEBHOOK_BYTES == 64 * 1024
    assert sent(MAX_WEBHOOK_BYTES) == 200  # verified, an event the shop ignores
    assert sent(MAX_WEBHOOK_BYTES + 1) == 413
