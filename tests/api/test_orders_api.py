"""POST /orders, reads, cancel and reorder through the real handlers (moto DynamoDB)."""

from __future__ import annotations

ADDRESS = {"name": "Ada", "line1": "1 Loop", "city": "Localhost", "postal_code": "12345", "country": "US"}


def make_sku(api, code="TEE", on_hand=10, amount=1999, currency="USD", **extra):
    body = {"name": f"{code} name", "price": {"amount": amount, "currency": currency}, "on_hand": on_hand, **extra}
    result = api.admin("PUT", f"/admin/skus/{code}", body=body)
    assert result.status in (200, 201), result.text
    return result.json()


def order_body(*lines, **extra):
    return {"items": [{"sku": s, "quantity": q} for s, q in lines], "shipping_address": ADDRESS,
            "payment_provider": "sandbox", **extra}


def place(api, *lines, key="k1", user="alice", **extra):
    return api.request("POST", "/orders", user=user, body=order_body(*lines, **extra),
                       headers={"Idempotency-Key": key})


def test_order_reserves_stock_at_catalog_prices(api):
    make_sku(api, "TEE", on_hand=10, amount=1999)
    make_sku(api, "MUG", on_hand=3, amount=850)
    result = place(api, ("TEE", 2), ("MUG", 1))
    assert result.status == 201, result.text
    order = result.json()
    assert order["status"] == "PENDING_PAYMENT" and order["payment_status"] == "unpaid"
    assert order["total"] == {"amount": 2 * 1999 + 850, "currency": "USD"}
    assert [(l["sku"], l["unit_price"]["amount"]) for l in order["lines"]] == [("TEE", 1999), ("MUG", 850)]
    assert order["order_number"].count("-") == 2 and order["order_id"].startswith("ord_")
    assert result.headers["location"] == f"/orders/{order['order_id']}"
    tee = api.admin("GET", "/admin/skus/TEE").json()["levels"]
    assert tee == {"on_hand": 10, "available": 8, "reserved": 2, "sold": 0}


def test_shortage_names_each_short_sku_and_writes_nothing(api):
    make_sku(api, "TEE", on_hand=1)
    make_sku(api, "MUG", on_hand=0)
    make_sku(api, "CAP", on_hand=5)
    result = place(api, ("TEE", 2), ("MUG", 1), ("CAP", 1))
    assert result.status == 409
    assert result.headers["content-type"] == "application/problem+json"
    assert result.json()["shortages"] == [
        {"sku": "TEE", "requested": 2, "available": 1},
        {"sku": "MUG", "requested": 1, "available": 0},
    ]
    assert api.admin("GET", "/admin/skus/CAP").json()["levels"]["available"] == 5
    assert api.request("GET", "/orders").json()["items"] == []


def test_client_sent_prices_totals_and_status_are_rejected(api):
    make_sku(api, "TEE")
    for extra in ({"total": {"amount": 1, "currency": "USD"}}, {"status": "PAID"}, {"customer_id": "bob"}):
        assert place(api, ("TEE", 1), key=str(extra), **extra).status == 422
    body = order_body(("TEE", 1))
    body["items"][0]["unit_price"] = 1
    assert api.request("POST", "/orders", body=body, headers={"Idempotency-Key": "p"}).status == 422


def test_bad_quantities_and_line_caps(api):
    make_sku(api, "TEE", max_per_order=2)
    for quantity in (0, -1, "2", 1.5, True, 101):
        body = order_body(("TEE", 1))
        body["items"][0]["quantity"] = quantity
        result = api.request("POST", "/orders", body=body, headers={"Idempotency-Key": f"q{quantity!r}"})
        assert result.status == 422, (quantity, result.text)
    assert place(api, ("TEE", 3), key="over-max").json()["skus"][0]["reason"] == "max_per_order"
    lines = [(f"S{i}", 1) for i in range(51)]
    assert place(api, *lines, key="too-many-lines").status == 422


def test_unknown_inactive_and_mixed_currency_skus(api):
    make_sku(api, "USD1", currency="USD")
    make_sku(api, "EUR1", currency="EUR")
    make_sku(api, "OLD", active=False)
    assert place(api, ("NOPE", 1), key="a").json()["skus"] == [{"sku": "NOPE", "reason": "unknown"}]
    assert place(api, ("OLD", 1), key="b").json()["skus"] == [{"sku": "OLD", "reason": "inactive"}]
    mixed = place(api, ("USD1", 1), ("EUR1", 1), key="c")
    assert mixed.status == 422 and mixed.json()["currencies"] == ["EUR", "USD"]
    assert api.request("GET", "/skus/OLD").status == 404


def test_idempotency_key_rules(api):
    make_sku(api, "TEE", on_hand=5)
    first = place(api, ("TEE", 1), key="same")
    again = place(api, ("TEE", 1), key="same")
    assert (first.status, again.status) == (201, 201) and first.text == again.text
    assert again.headers.get("idempotent-replayed") == "true"
    assert place(api, ("TEE", 2), key="same").status == 422
    missing = api.request("POST", "/orders", body=order_body(("TEE", 1)))
    assert missing.status == 400 and missing.json()["type"] == "/problems/idempotency-key-missing"
    assert api.admin("GET", "/admin/skus/TEE").json()["levels"]["reserved"] == 1
    # Keys are per customer: bob's "same" is a different request.
    assert place(api, ("TEE", 1), key="same", user="bob").json()["order_id"] != first.json()["order_id"]


def test_customers_see_only_their_orders(api):
    make_sku(api, "TEE")
    mine = place(api, ("TEE", 1), key="a").json()
    place(api, ("TEE", 1), key="b", user="bob")
    assert api.request("GET", f"/orders/{mine['order_id']}", user="bob").status == 404
    assert api.request("POST", f"/orders/{mine['order_id']}/cancel", user="bob").status == 404
    assert api.request("GET", "/orders/ord_doesnotexist").status == 404
    listed = api.request("GET", "/orders").json()["items"]
    assert [o["order_id"] for o in listed] == [mine["order_id"]]
    assert api.request("GET", "/orders", user=None).status == 401


def test_list_is_newest_first_and_paginated(api):
    make_sku(api, "TEE", on_hand=20)
    ids = [place(api, ("TEE", 1), key=f"k{i}").json()["order_id"] for i in range(5)]
    first = api.request("GET", "/orders?limit=2").json()
    assert [o["order_id"] for o in first["items"]] == ids[::-1][:2]
    second = api.request("GET", f"/orders?limit=2&cursor={first['next_cursor']}").json()
    assert [o["order_id"] for o in second["items"]] == ids[::-1][2:4]
    assert api.request("GET", "/orders?cursor=not-a-cursor").status == 422
    assert api.request("GET", "/orders?limit=0").status == 422


def test_cancel_returns_stock_once(api):
    make_sku(api, "TEE", on_hand=4)
    order = place(api, ("TEE", 3)).json()
    cancelled = api.request("POST", f"/orders/{order['order_id']}/cancel")
    assert cancelled.status == 200 and cancelled.json()["status"] == "CANCELLED"
    assert cancelled.json()["history"][-1]["reason"] == "cancelled_by_customer"
    again = api.request("POST", f"/orders/{order['order_id']}/cancel")  # a retry after a lost answer
    assert again.status == 200 and again.json()["history"] == cancelled.json()["history"]
    assert api.admin("POST", f"/admin/orders/{order['order_id']}/cancel").status == 409  # not theirs to repeat
    assert api.admin("GET", "/admin/skus/TEE").json()["levels"] == {"on_hand": 4, "available": 4, "reserved": 0,
                                                                     "sold": 0}


def test_reorder_checks_stock_again(api):
    make_sku(api, "TEE", on_hand=3)
    order = place(api, ("TEE", 2)).json()
    again = api.request("POST", f"/orders/{order['order_id']}/reorder", headers={"Idempotency-Key": "re"})
    assert again.status == 409
    api.admin("POST", "/admin/skus/TEE/adjustments", body={"delta": 5, "reason": "restocked"})
    again = api.request("POST", f"/orders/{order['order_id']}/reorder", headers={"Idempotency-Key": "re"})
    assert again.status == 201 and again.json()["order_id"] != order["order_id"]
    assert again.json()["lines"][0]["quantity"] == 2


def test_low_stock_and_sold_out_events(api, monkeypatch):
    from shop.adapters import wiring
    from tests.ddblocal.conftest import Recorder

    make_sku(api, "TEE", on_hand=4, low_stock_threshold=2)
    recorder = Recorder()
    ports = wiring.default_ports()
    monkeypatch.setattr(ports, "events", recorder)
    place(api, ("TEE", 2), key="a")
    place(api, ("TEE", 2), key="b")
    published = [t for t, _ in recorder.calls]
    assert published == ["stock.low", "order.created", "stock.sold_out", "order.created"]


def test_a_failing_database_answers_503_problem_not_a_stack_trace(api, monkeypatch):
    from botocore.exceptions import ClientError

    from shop.adapters import wiring

    make_sku(api, "TEE")
    store = wiring.default_ports().store

    def broken(*args, **kwargs):
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "boom"}}, "BatchGetItem")

    monkeypatch.setattr(store, "get_catalog_and_response", broken)
    result = place(api, ("TEE", 1), key="down")
    assert result.status == 503 and result.headers["content-type"] == "application/problem+json"
    assert result.headers.get("retry-after") == "2" and "Traceback" not in result.text and "boom" not in result.text
