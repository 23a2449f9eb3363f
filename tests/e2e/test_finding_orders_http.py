"""Finding orders over HTTP against `python -m localrun` (as `make run`): a customer's filters, the
operators' phone and status filters, the CSV export, the low-stock SKU list, unknown filters."""

from __future__ import annotations

import csv
import io
import uuid

import pytest

from tests.e2e.test_local_api import ADDRESS, new_sku

pytestmark = pytest.mark.e2e


def test_customer_and_operator_find_orders_and_export_csv_over_http(local_server):
    api = local_server
    code = new_sku(api, on_hand=10, low_stock_threshold=20)
    user = f"finder-{uuid.uuid4().hex[:6]}"
    phone = f"+86 139 {uuid.uuid4().int % 10**8:08d}"
    placed = []
    for _ in range(3):
        body = {"items": [{"sku": code, "quantity": 1}], "shipping_address": {**ADDRESS, "phone": phone},
                "payment_provider": "sandbox"}
        result = api.call("POST", "/orders", user=user, json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
        assert result.status_code == 201, result.text
        placed.append(result.json())
    first, second, third = placed
    for order in (first, third):  # the other one expires (the e2e server's payment window is 5 s)
        assert api.call("POST", f"/orders/{order['order_id']}/cancel", user=user).status_code == 200

    by_number = api.call("GET", "/orders", user=user, params={"order_number": third["order_number"]}).json()
    assert [o["order_id"] for o in by_number["items"]] == [third["order_id"]] and by_number["next_cursor"] is None
    newest = api.call("GET", "/orders", user=user, params={"status": "CANCELLED", "limit": 1}).json()
    assert [o["order_id"] for o in newest["items"]] == [third["order_id"]] and newest["next_cursor"]
    rest = api.call("GET", "/orders", user=user,
                    params={"status": "CANCELLED", "limit": 1, "cursor": newest["next_cursor"]}).json()
    assert [o["order_id"] for o in rest["items"]] == [first["order_id"]] and not rest["next_cursor"]
    unknown = api.call("GET", "/orders", user=user, params={"state": "PAID"})
    assert unknown.status_code == 422 and unknown.json()["fields"] == ["state"]
    assert unknown.headers["Content-Type"] == "application/problem+json"

    digits = "".join(ch for ch in phone if ch.isdigit())[-11:]
    cancelled = api.admin("GET", "/admin/orders", params={"phone": digits, "status": "CANCELLED"}).json()
    assert [o["order_id"] for o in cancelled["items"]] == [third["order_id"], first["order_id"]]

    export = api.admin("GET", "/admin/orders.csv", params={"customer": user})
    assert export.status_code == 200 and export.headers["Content-Type"].startswith("text/csv")
    assert export.headers["Content-Disposition"].startswith("attachment;")
    rows = list(csv.DictReader(io.StringIO(export.text, newline="")))
    assert [r["order_id"] for r in rows] == [third["order_id"], second["order_id"], first["order_id"]]
    assert rows[0]["status"] == "CANCELLED" and rows[0]["total_amount"] == "1999" and rows[0]["currency"] == "EUR"
    assert phone not in export.text and digits not in export.text

    low = api.admin("GET", "/admin/skus", params={"low_stock": "true", "limit": 100})
    assert low.status_code == 200
    codes = []
    page = low.json()
    while True:
        codes += [s["sku"] for s in page["items"]]
        if not page["next_cursor"]:
            break
        page = api.admin("GET", "/admin/skus", params={"low_stock": "true", "cursor": page["next_cursor"]}).json()
    assert code in codes  # at most 10 available, threshold 20
