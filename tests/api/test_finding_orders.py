"""Finding orders (issue 14): customers by order number and status, operators by status, customer, dates,
order number and phone, combined, the CSV export and the SKU list; every list answered by indexes (the
DynamoDB calls are recorded: never a Scan), pages with a cursor never empty, unknown filters 422."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import UTC, datetime

import pytest

from shop.adapters import aws, dynamo_store, phones
from tests.api.test_orders_api import ADDRESS, make_sku

INDEX_OPERATIONS = {"Query", "GetItem", "BatchGetItem"}


@pytest.fixture
def calls(api):
    """The DynamoDB operations the functions make (the shared, cached client records each call)."""
    seen: list[str] = []
    client = aws.client("dynamodb")

    def record(model, **_):
        seen.append(model.name)

    client.meta.events.register("before-call.dynamodb", record)
    yield seen
    client.meta.events.unregister("before-call.dynamodb", record)


def place(api, user, key, phone=None, sku="TEE"):
    address = {**ADDRESS, **({"phone": phone} if phone else {})}
    result = api.request("POST", "/orders", user=user, headers={"Idempotency-Key": key},
                         body={"items": [{"sku": sku, "quantity": 1}], "shipping_address": address,
                               "payment_provider": "sandbox"})
    assert result.status == 201, result.text
    return result.json()


def cancel(api, order, user):
    assert api.request("POST", f"/orders/{order['order_id']}/cancel", user=user).status == 200


def pages(get, path, limit):
    """Every page of a list: no page with a cursor is empty; returns the ids in order and the page count."""
    ids, cursor, count = [], None, 0
    sep = "&" if "?" in path else "?"
    while True:
        result = get(f"{path}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else ""))
        assert result.status == 200, result.text
        body = result.json()
        count += 1
        assert body["items"] or not body["next_cursor"], f"an empty page with a cursor: {path}"
        ids += [item.get("order_id") or item.get("sku") for item in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            return ids, count


@pytest.fixture
def shop(api):
    """Orders of three customers, some with the same phone written differently, some cancelled."""
    make_sku(api, "TEE", on_hand=100)
    spec = [("alice", "+86 138-0013-8000", False), ("bob", "13800138000", True), ("alice", None, True),
            ("carol", "+33 6 12 34 56 78", False), ("alice", "0086 138 0013 8000", False), ("bob", None, False),
            ("carol", "06 12 34 56 78", True), ("alice", "+86 13800138000", True)]
    placed = []
    for n, (user, phone, cancelled) in enumerate(spec):
        order = place(api, user, f"k{n}", phone)
        if cancelled:
            cancel(api, order, user)
        placed.append({**order, "customer": user, "phone": phone, "cancelled": cancelled})
    return placed[::-1]  # newest first


def test_customer_finds_an_order_by_number_and_filters_by_status(api, shop, calls):
    mine = [o for o in shop if o["customer"] == "alice"]
    ids, _ = pages(lambda p: api.request("GET", p), "/orders?status=CANCELLED", 1)
    assert ids == [o["order_id"] for o in mine if o["cancelled"]]
    ids, _ = pages(lambda p: api.request("GET", p), "/orders?status=PENDING_PAYMENT", 1)
    assert ids == [o["order_id"] for o in mine if not o["cancelled"]]
    number = mine[1]["order_number"]
    found = api.request("GET", f"/orders?order_number={number}").json()
    assert [o["order_id"] for o in found["items"]] == [mine[1]["order_id"]] and found["next_cursor"] is None
    assert api.request("GET", f"/orders?order_number={number.lower()}").json()["items"][0]["order_number"] == number
    status = "CANCELLED" if mine[1]["cancelled"] else "PENDING_PAYMENT"
    other = "PENDING_PAYMENT" if mine[1]["cancelled"] else "CANCELLED"
    assert len(api.request("GET", f"/orders?order_number={number}&status={status}").json()["items"]) == 1
    assert api.request("GET", f"/orders?order_number={number}&status={other}").json()["items"] == []
    bobs = next(o for o in shop if o["customer"] == "bob")["order_number"]
    assert api.request("GET", f"/orders?order_number={bobs}").json()["items"] == []  # not alice's
    assert api.request("GET", "/orders?order_number=no;such").status == 422
    assert set(calls) <= INDEX_OPERATIONS - set() | {"TransactWriteItems", "UpdateItem", "PutItem"}
    assert "Scan" not in calls


def test_every_admin_filter_combination_is_answered_by_indexes(api, shop, calls):
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    target = shop[3]  # carol, a French phone
    values = {"status": "CANCELLED", "customer": "carol", "from": today, "to": today,
              "order_number": target["order_number"], "phone": "0612345678"}

    def expected(filters):
        def keep(o):
            return (("status" not in filters or o["cancelled"])
                    and ("customer" not in filters or o["customer"] == "carol")
                    and ("order_number" not in filters or o["order_id"] == target["order_id"])
                    and ("phone" not in filters or "".join(filter(str.isdigit, o["phone"] or "")).endswith("612345678")))
        return [o["order_id"] for o in shop if keep(o)]

    calls.clear()
    for size in range(len(values) + 1):
        for names in itertools.combinations(values, size):
            query = "&".join(f"{name}={values[name]}" for name in names)
            ids, _ = pages(lambda p: api.admin("GET", p), f"/admin/orders?{query}", 2)
            assert ids == expected(set(names)), names
    assert calls and set(calls) <= INDEX_OPERATIONS, sorted(set(calls))
    assert api.admin("GET", "/admin/orders?from=2000-01-01&to=2000-01-02").json() == {"items": [], "next_cursor": None}


def test_phone_matches_however_it_is_written_and_is_never_a_key(api, shop):
    chinese = [o["order_id"] for o in shop if "".join(filter(str.isdigit, o["phone"] or "")).endswith("13800138000")]
    for written in ("13800138000", "+86%20138%200013%208000", "0086-138-0013-8000"):
        ids, _ = pages(lambda p: api.admin("GET", p), f"/admin/orders?phone={written}", 2)
        assert ids == chinese, written
    assert api.admin("GET", "/admin/orders?phone=123").status == 422  # too few digits to be a phone
    assert api.admin("GET", "/admin/orders?phone=138abc").status == 422
    import boto3

    from tests.api.conftest import TABLE
    items = boto3.client("dynamodb").scan(TableName=TABLE)["Items"]  # the test looks at every item; the app never scans
    keys = [v["S"] for item in items for k, v in item.items() if k.startswith("gsi") and "S" in v]
    assert not any("13800138000" in key or "138001" in key or "612345678" in key for key in keys)
    assert any(key.startswith("PHONE#") for key in keys)


def test_sparse_matches_over_a_long_filtered_partition_never_give_an_empty_page(api, monkeypatch, calls):
    """One phone with many orders, few of them matching: the filtered index read goes on until the page is
    full or the partition ends, or (bounded) answers what it found with a cursor to go on from."""
    make_sku(api, "TEE", on_hand=100)
    placed = []
    for n in range(12):
        order = place(api, "dave", f"s{n}", "+49 30 1234567")
        if n % 4 == 0:
            cancel(api, order, "dave")
        placed.append((order["order_id"], n % 4 == 0))
    cancelled = [order_id for order_id, was in reversed(placed) if was]
    monkeypatch.setattr(dynamo_store, "FILTERED_READ_ITEMS", 1)
    monkeypatch.setattr(dynamo_store, "MAX_FILTERED_READS", 2)  # each page reads at most 2 x 4 items
    for limit in (1, 2, 5):
        ids, count = pages(lambda p: api.admin("GET", p), "/admin/orders?phone=+49301234567&status=CANCELLED", limit)
        assert ids == cancelled, limit
    ids, _ = pages(lambda p: api.admin("GET", p), "/admin/orders?phone=+49301234567&customer=dave", 3)
    assert ids == [order_id for order_id, _ in reversed(placed)]
    monkeypatch.setattr(dynamo_store, "MAX_FILTERED_READS", 1)  # 4 items read, none of them cancelled
    refused = api.admin("GET", "/admin/orders?phone=+49301234567&status=CANCELLED&limit=1")
    assert refused.status == 200 and refused.json()["items"]  # the newest read holds one
    over = api.admin("GET", "/admin/orders?phone=+49301234567&customer=nobody&limit=1")
    assert over.status == 422 and over.json()["fields"] == ["from", "to"]  # no empty page with a cursor
    assert "Scan" not in calls


def test_sparse_status_matches_across_shards_page_without_gaps(api, calls):
    make_sku(api, "TEE", on_hand=100)
    orders = [place(api, f"u{n % 5}", f"p{n}") for n in range(12)]
    for order in orders[2::5]:
        cancel(api, order, f"u{orders.index(order) % 5}")
    expected = [o["order_id"] for o in reversed(orders[2::5])]
    for limit in (1, 2):
        ids, count = pages(lambda p: api.admin("GET", p), "/admin/orders?status=CANCELLED", limit)
        assert ids == expected and count <= len(expected) + 1
    assert "Scan" not in calls


@pytest.mark.parametrize("path", ["/orders?bogus=1", "/orders?status=PAID&sort=asc", "/admin/orders?phone_number=1",
                                  "/admin/orders.csv?statuss=PAID", "/admin/skus?lowstock=true",
                                  "/admin/orders?status=PAID&status=SHIPPED", "/admin/after-sales?state=requested",
                                  "/me/notifications?unread=true", "/admin/skus/TEE/ledger?reason=delivery"])
def test_an_unknown_or_repeated_filter_is_422_naming_it(api, path):
    user = "operator" if path.startswith("/admin") else "alice"
    result = api.request("GET", path, user=user, groups="admin" if user == "operator" else None)
    assert result.status == 422 and result.headers["content-type"] == "application/problem+json", result.text
    name = path.split("?")[1].split("&")[-1].split("=")[0]
    problem = result.json()
    named = problem.get("fields") or [error["field"] for error in problem.get("errors", [])]
    assert named == [name], problem  # named: in `fields`, or for a declared filter given twice, in `errors`


def test_csv_export_quotes_defuses_formulas_filters_and_limits_rows(api, calls, monkeypatch):
    make_sku(api, "TEE", on_hand=100, amount=1999, currency="EUR")
    hostile = '=HYPERLINK("http://x","y"),1'
    first = place(api, hostile, "c1")
    place(api, "-2+3", "c2")
    place(api, "plain", "c3")
    cancel(api, first, hostile)
    result = api.admin("GET", "/admin/orders.csv")
    assert result.status == 200, result.text
    assert result.headers["content-type"].startswith("text/csv")
    assert result.headers["content-disposition"].startswith('attachment; filename="orders-')
    assert result.text.endswith("\r\n") and '"\'=HYPERLINK(""http://x"",""y""),1"' in result.text  # RFC 4180
    rows = list(csv.DictReader(io.StringIO(result.text)))
    assert [r["customer_id"] for r in rows] == ["plain", "'-2+3", "'" + hostile]  # newest first, defused
    assert {(r["currency"], r["total_amount"], r["lines"]) for r in rows} == {("EUR", "1999", "TEE x1")}
    assert result.headers["x-export-rows"] == "3" and result.headers["x-export-truncated"] == "false"
    cancelled = list(csv.DictReader(io.StringIO(api.admin("GET", "/admin/orders.csv?status=CANCELLED").text)))
    assert [r["order_id"] for r in cancelled] == [first["order_id"]]
    assert "Ada" not in result.text and "1 Loop" not in result.text  # no name or street in an export
    monkeypatch.setenv("CSV_EXPORT_MAX_ROWS", "2")
    from shop.adapters import wiring
    wiring.reset()
    limited = api.admin("GET", "/admin/orders.csv")
    lines = list(csv.reader(io.StringIO(limited.text)))
    assert len(lines) == 1 + 2 + 1 and lines[-1][0] == "#truncated" and "2 rows" in lines[-1][1]
    assert limited.headers["x-export-truncated"] == "true" and limited.headers["x-export-rows"] == "2"
    assert set(calls) - {"TransactWriteItems", "UpdateItem", "PutItem"} <= INDEX_OPERATIONS


def test_admin_skus_list_levels_and_filters_low_stock(api, calls):
    make_sku(api, "A-PLENTY", on_hand=100, low_stock_threshold=5)
    make_sku(api, "B-LOW", on_hand=3, low_stock_threshold=5)
    make_sku(api, "C-NONE", on_hand=0, low_stock_threshold=5)
    make_sku(api, "D-NOTHRESHOLD", on_hand=10)
    make_sku(api, "E-SHARDED", on_hand=8, low_stock_threshold=10, stock_shards=4)
    make_sku(api, "F-EMPTY-NEW", on_hand=0)
    place(api, "alice", "o1", sku="E-SHARDED")
    calls.clear()
    every, _ = pages(lambda p: api.admin("GET", p), "/admin/skus", 2)
    assert every == ["A-PLENTY", "B-LOW", "C-NONE", "D-NOTHRESHOLD", "E-SHARDED", "F-EMPTY-NEW"]
    low, _ = pages(lambda p: api.admin("GET", p), "/admin/skus?low_stock=true", 1)
    assert low == ["B-LOW", "C-NONE", "E-SHARDED", "F-EMPTY-NEW"]
    fine, _ = pages(lambda p: api.admin("GET", p), "/admin/skus?low_stock=false", 1)
    assert fine == ["A-PLENTY", "D-NOTHRESHOLD"]
    sharded = next(s for s in api.admin("GET", "/admin/skus?low_stock=true").json()["items"] if s["sku"] == "E-SHARDED")
    assert sharded["levels"] == {"on_hand": 8, "available": 7, "reserved": 1, "sold": 0}  # summed over 4 shards
    assert (sharded["low_stock_threshold"], sharded["stock_state"], len(sharded["shards"])) == (10, "low_stock", 4)
    assert set(calls) <= INDEX_OPERATIONS and calls.count("Query") > 0
    api.admin("POST", "/admin/skus/B-LOW/adjustments", body={"delta": 20, "reason": "delivery"})
    api.admin("PUT", "/admin/skus/A-PLENTY", body={"name": "A", "price": {"amount": 1, "currency": "USD"},
                                                     "low_stock_threshold": 500})  # threshold raised: now low
    low, _ = pages(lambda p: api.admin("GET", p), "/admin/skus?low_stock=true", 10)
    assert low == ["A-PLENTY", "C-NONE", "E-SHARDED", "F-EMPTY-NEW"]
    assert api.admin("GET", "/admin/skus?low_stock=maybe").status == 422
    assert api.admin("GET", "/admin/skus?cursor=bm9wZQ").status == 422


def test_phone_digest_is_keyed():
    phones.reset()
    one = phones.phone_digest("+86 138 0013 8000")
    assert one == phones.phone_digest("13800138000") and len(one or "") == 32
    import os
    os.environ["PHONE_INDEX_KEY"] = "another-key"
    try:
        phones.reset()
        assert phones.phone_digest("13800138000") != one
    finally:
        del os.environ["PHONE_INDEX_KEY"]
        phones.reset()
    assert phones.phone_digest("12-34") is None and phones.phone_digest(None) is None


def test_from_and_to_keep_the_orders_of_the_second_given_and_take_offsets(api, shop):
    from datetime import datetime, timedelta, timezone

    newest = shop[0]
    created = api.admin("GET", f"/admin/orders?order_number={newest['order_number']}").json()["items"][0]["created_at"]
    second = created[:19]  # e.g. 2026-11-30T09:27:25 (stored: 2026-11-30T09:27:25.304Z)

    def ids(query):
        result = api.admin("GET", f"/admin/orders?{query}&limit=100")
        assert result.status == 200, result.text
        return [o["order_id"] for o in result.json()["items"]]

    assert newest["order_id"] in ids(f"from={second}Z") and newest["order_id"] in ids(f"to={second}Z")
    moment = datetime.fromisoformat(second + "+00:00").astimezone(timezone(timedelta(hours=8)))
    beijing = moment.isoformat().replace("+", "%2B")  # 2026-11-30T17:27:25%2B08:00
    assert newest["order_id"] in ids(f"from={beijing}")
    before = (moment - timedelta(seconds=1)).isoformat().replace("+", "%2B")
    assert newest["order_id"] not in ids(f"to={before}")
    assert newest["order_id"] in ids(f"from={second[:10]}&to={second[:10]}")  # a date: the whole day
    assert api.admin("GET", "/admin/orders?from=2026-02-31T10:00%2B08:00").status == 422
    assert api.admin("GET", f"/admin/orders?from={second}Z&to={second[:10]}").status == 200  # to: the whole day
