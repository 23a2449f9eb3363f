"""The shop-wide order indexes are sharded (no partition key every order writes to); listings and
sweeps fan out over the shards and stay exact and ordered. Against DynamoDB Local."""

from __future__ import annotations

import base64
import json
import random
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from shop.adapters import items as it
from shop.adapters.dynamo_store import DynamoShopStore, encode_listing_cursor
from shop.adapters.table_schema import INDEX_SHARDS
from shop.domain import clock
from shop.domain.errors import Unprocessable
from shop.domain.ids import new_order_id
from shop.domain.orders import OrderStatus
from shop.domain.statuses import RefundStatus
from shop.domain.values import Refund
from tests.ddblocal.test_contention import order as place, stock_up

pytestmark = pytest.mark.ddblocal

S = OrderStatus
BASE = datetime(2020, 3, 1, 12, 0, tzinfo=timezone.utc)  # before any real order of the run


def at(seconds: float) -> str:
    return clock.iso(BASE + timedelta(seconds=seconds))


@pytest.fixture
def template(ddb_ports):
    stock_up(ddb_ports, ["IDX-1"], on_hand=1000)
    placed = place(ddb_ports, "template-customer", "template-key", [("IDX-1", 1)])
    return ddb_ports.store.get_order(placed.order_id)


def put(ports, order):
    """Write an order item as the store's commit would (the same mapping), without a transaction."""
    ports.store.db.put_item(TableName=ports.store.table, Item=it.encode(it.order_to_item(order)))
    return order


def id_in_shard(shard: int) -> str:
    while True:
        order_id = new_order_id()
        if it.index_shard(order_id) == shard:
            return order_id


def make(ports, template, *, created: float, status=S.PAID, customer="c-1", refunds=(), expires: float | None = None,
         shard: int | None = None):
    order = replace(
        template, order_id=new_order_id() if shard is None else id_in_shard(shard), customer_id=customer, status=status, created_at=at(created),
        updated_at=at(created), expires_at=at(created + 900 if expires is None else expires), refunds=tuple(refunds),
        payment_status="unpaid" if status is S.PENDING_PAYMENT else "paid",
    )
    return put(ports, order)


def newest_first(orders):
    return [o.order_id for o in sorted(orders, key=lambda o: (o.created_at, o.order_id), reverse=True)]


def all_pages(fetch, page_size):
    ids, cursor, pages = [], None, 0
    while True:
        found, cursor = fetch(page_size, cursor)
        pages += 1
        assert len(found) <= page_size
        ids += [o.order_id for o in found]
        if not cursor:
            return ids, pages
        assert pages < 1000


def raw_orders(ports):
    """Test-only look at every order item (a scan is fine here, never in the code under test)."""
    got, kwargs = [], {"TableName": ports.store.table}
    while True:
        page = ports.store.db.scan(**kwargs)
        got += [it.decode(raw) for raw in page["Items"]]
        if "LastEvaluatedKey" not in page:
            return [item for item in got if item.get("entity") == "ORDER"]
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_orders_placed_land_on_many_index_partitions(ddb_ports):
    assert INDEX_SHARDS > 1
    stock_up(ddb_ports, ["IDX-1"], on_hand=1000)
    placed = [place(ddb_ports, f"shopper-{n % 3}", f"k-{n}", [("IDX-1", 1)]) for n in range(40)]
    items = {item["order_id"]: item for item in raw_orders(ddb_ports)}
    assert set(items) == {o.order_id for o in placed}
    for order_id, item in items.items():
        n = it.index_shard(order_id)
        assert 0 <= n < INDEX_SHARDS
        assert item["gsi3pk"] == f"ORDERS#{n}"
        assert item["gsi2pk"] == f"STATUS#PENDING_PAYMENT#{n}"
        assert item["gsi4pk"] == f"PENDING_PAYMENT#{n}"
        assert item["gsi4sk"] == f"{item['expires_at']}#{order_id}"
        assert item["gsi1pk"] == f"CUSTOMER#{item['customer_id']}"  # per customer: not sharded
    assert len({item["gsi3pk"] for item in items.values()}) >= 8
    assert len({item["gsi4pk"] for item in items.values()}) >= 8
    # The shard is a stable hash, not Python's salted hash(): known values pin it.
    assert (it.index_shard("ord_example"), it.index_shard("ord_aaaa")) == (13, 5) or INDEX_SHARDS != 16
    assert {it.index_shard(f"ord_{n}") for n in range(200)} == set(range(INDEX_SHARDS))


def test_admin_listing_is_exact_and_newest_first_across_pages(ddb_ports, template):
    rng = random.Random(11)
    statuses = [S.PAID, S.SHIPPED, S.CANCELLED, S.PENDING_PAYMENT]
    # Some orders share a created_at: the order id breaks the tie, in every shard alike.
    orders = [make(ddb_ports, template, created=rng.randrange(0, 50), status=rng.choice(statuses),
                   customer=f"c-{n % 4}") for n in range(70)]
    # A run of the newest orders all in one shard: a page must take them all from there.
    orders += [make(ddb_ports, template, created=60 + n, status=S.PAID, shard=3) for n in range(12)]
    orders.append(template)
    store = ddb_ports.store

    for size in (1, 7, 30, 100):
        ids, pages = all_pages(lambda limit, cursor: store.orders(
            status=None, customer_id=None, created_from=None, created_to=None, limit=limit, cursor=cursor), size)
        assert ids == newest_first(orders), size
        assert pages >= -(-len(orders) // size)

    for status in statuses:
        expected = newest_first([o for o in orders if o.status is status])
        ids, _ = all_pages(lambda limit, cursor: store.orders(
            status=status.value, customer_id=None, created_from=None, created_to=None, limit=limit,
            cursor=cursor), 4)
        assert ids == expected and len(set(ids)) == len(ids)

    ids, _ = all_pages(lambda limit, cursor: store.orders(
        status=None, customer_id=None, created_from=None, created_to=None, limit=limit, cursor=cursor), 1000)
    assert ids == newest_first(orders)  # a limit over the page cap is capped, still exact

    # The customer listing (gsi1, one partition) pages with the same cursor format.
    for customer in ("c-0", "c-3"):
        expected = newest_first([o for o in orders if o.customer_id == customer])
        ids, _ = all_pages(lambda limit, cursor: store.customer_orders(customer, limit, cursor), 3)
        assert ids == expected
        ids, _ = all_pages(lambda limit, cursor: store.orders(
            status=None, customer_id=customer, created_from=None, created_to=None, limit=limit,
            cursor=cursor), 5)
        assert ids == expected


def test_created_from_and_to_ranges(ddb_ports, template):
    orders = [make(ddb_ports, template, created=n * 10, status=S.PAID if n % 3 else S.SHIPPED) for n in range(40)]
    orders.append(template)
    store = ddb_ports.store

    def listing(status, low, high, size):
        return all_pages(lambda limit, cursor: store.orders(
            status=status, customer_id=None, created_from=low, created_to=high, limit=limit, cursor=cursor), size)[0]

    def expected(status, low, high):
        return newest_first([o for o in orders if (status is None or o.status.value == status)
                             and (low is None or o.created_at >= low) and (high is None or o.created_at <= high)])

    cases = [(at(50), at(200)), (at(50), None), (None, at(200)), (at(0), at(0)), (at(395), None),
             (at(391), at(399)), (at(1000), None), (None, at(-1))]
    for low, high in cases:
        for status in (None, "PAID", "SHIPPED"):
            for size in (3, 100):
                assert listing(status, low, high, size) == expected(status, low, high), (status, low, high, size)
    assert listing(None, at(50), at(200), 3) and listing(None, at(1000), at(2000), 3) == []
    assert listing(None, at(1000), None, 3) == [template.order_id]  # placed today, after the others
    # `to` is inclusive of the whole instant; from > to is empty (the API answers 422 before this).
    assert listing(None, None, at(200)[:19], 5) == expected(None, None, at(200))
    assert listing(None, at(200), at(50), 5) == []


def test_sweeper_query_returns_exactly_the_overdue_unpaid_orders_oldest_first(ddb_ports, template):
    put(ddb_ports, replace(template, status=S.CANCELLED))  # the placed one leaves the sweeper's index
    rng = random.Random(4)
    unpaid = [make(ddb_ports, template, created=0, status=S.PENDING_PAYMENT, expires=rng.randrange(-600, 600))
              for _ in range(60)]
    # The oldest overdue ones all in one shard: the first page must take them all from there.
    unpaid += [make(ddb_ports, template, created=0, status=S.PENDING_PAYMENT, expires=-700 - n, shard=5)
               for n in range(9)]
    for n in range(10):  # paid or expired ones never show up, whatever their expiry
        make(ddb_ports, template, created=0, status=rng.choice([S.PAID, S.EXPIRED, S.ON_HOLD]), expires=-900 + n)
    now = at(0)
    overdue = sorted((o for o in unpaid if o.expires_at <= now), key=lambda o: (o.expires_at, o.order_id))
    assert 10 < len(overdue) < len(unpaid)
    store = ddb_ports.store
    assert store.overdue_pending_order_ids(now, limit=500) == [o.order_id for o in overdue]
    assert store.overdue_pending_order_ids(now, limit=7) == [o.order_id for o in overdue[:7]]
    assert store.overdue_pending_order_ids(now) == [o.order_id for o in overdue]
    assert store.overdue_pending_order_ids(at(-710)) == []
    assert store.overdue_pending_order_ids(now, limit=0) == []
    # An order that is paid leaves the index (its item is rewritten without the sparse keys).
    paid = replace(overdue[0], status=S.PAID, payment_status="paid", version=overdue[0].version + 1)
    put(ddb_ports, paid)
    assert store.overdue_pending_order_ids(now, limit=500) == [o.order_id for o in overdue[1:]]
    assert store.pending_refund_order_ids(at(10_000)) == []


def refund(refund_id, when, status="pending"):
    return Refund(refund_id=refund_id, amount=100, currency="USD", status=RefundStatus(status), at=when, reason="test")


def test_pending_refunds_are_found_oldest_first(ddb_ports, template):
    store = ddb_ports.store
    rng = random.Random(7)
    pending = []
    for n in range(30):
        first = rng.randrange(0, 300)
        refunds = [refund(f"r{n}a", at(first + 50), "succeeded"), refund(f"r{n}b", at(first))]
        if n % 3 == 0:  # two pending: the earliest one dates the order
            refunds.append(refund(f"r{n}c", at(first + 10)))
            rng.shuffle(refunds)
        pending.append((at(first), make(ddb_ports, template, created=0, status=rng.choice([S.PAID, S.CANCELLED]),
                                        refunds=refunds)))
    # The oldest pending refunds all in one shard: the first page must take them all from there.
    pending += [(at(-10 - n), make(ddb_ports, template, created=0, refunds=[refund(f"s{n}", at(-10 - n))], shard=9))
                for n in range(5)]
    done = [make(ddb_ports, template, created=0, refunds=[refund("d", at(5), "succeeded")]) for _ in range(5)]
    items = {item["order_id"]: item for item in raw_orders(ddb_ports)}
    for since, order in pending:
        n = it.index_shard(order.order_id)
        assert items[order.order_id]["gsi4pk"] == f"REFUND_PENDING#{n}"
        assert items[order.order_id]["gsi4sk"] == f"{since}#{order.order_id}"
    assert all("gsi4pk" not in items[o.order_id] for o in done)
    assert items[template.order_id]["gsi4pk"].startswith("PENDING_PAYMENT#")

    ordered = [o.order_id for since, o in sorted(pending, key=lambda p: (p[0], p[1].order_id))]
    assert store.pending_refund_order_ids(at(10_000), limit=500) == ordered
    assert store.pending_refund_order_ids(at(10_000), limit=4) == ordered[:4]
    cutoff = at(150)
    assert store.pending_refund_order_ids(cutoff) == [
        o.order_id for since, o in sorted(pending, key=lambda p: (p[0], p[1].order_id)) if since <= cutoff]
    # Exactly at the refund's time counts ("at or before").
    since, first = min(pending, key=lambda p: (p[0], p[1].order_id))
    assert first.order_id in store.pending_refund_order_ids(since)
    # The sweeper's unpaid query never sees them (one index, two kinds of keys).
    assert store.overdue_pending_order_ids("9999-12-31T00:00:00.000Z", limit=500) == [template.order_id]

    # Once the refund settles, the order leaves the index.
    settled = replace(first, refunds=tuple(replace(r, status=RefundStatus.SUCCEEDED) for r in first.refunds),
                      version=first.version + 1)
    put(ddb_ports, settled)
    assert store.pending_refund_order_ids(at(10_000), limit=500) == [o for o in ordered if o != first.order_id]


def test_cursors_are_compact_and_tampered_ones_are_422(ddb_ports, template):
    for n in range(12):
        make(ddb_ports, template, created=n, status=S.PAID)
    store = ddb_ports.store

    def listing(status=None, customer=None, cursor=None, limit=5):
        return store.orders(status=status, customer_id=customer, created_from=None, created_to=None,
                            limit=limit, cursor=cursor)

    page, cursor = listing()
    assert len(page) == 5 and cursor and len(cursor) < 120
    scope, last = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    assert last == f"{page[-1].created_at}#{page[-1].order_id}"
    assert listing(cursor=cursor)[0][0].created_at <= page[-1].created_at

    paid_page, paid_cursor = listing(status="PAID")
    customer_page, customer_cursor = store.customer_orders("c-1", 5, None)
    assert paid_cursor and customer_cursor and len({cursor, paid_cursor, customer_cursor}) == 3

    def b64(value):
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    tampered = [
        "not-a-cursor", "%%%", b64({"pk": "ORDERS"}), b64([scope]), b64([scope, last, "x"]), b64([scope, 5]),
        b64([scope, ""]), b64([scope, "no-separator"]), b64([scope, "x#" + "y" * 600]), b64(["other", last]),
        base64.urlsafe_b64encode(json.dumps([scope, "#" + "\u20ac" * 400], ensure_ascii=False).encode()).decode(),
        b64([scope, "\ud800#x"]), base64.urlsafe_b64encode(b"[" * 5000 + b"]" * 5000).decode(),
        b64("text"), base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        paid_cursor,  # a cursor of another listing: status PAID is not "all orders"
        customer_cursor,
    ]
    for bad in tampered:
        with pytest.raises(Unprocessable):
            listing(cursor=bad)
    with pytest.raises(Unprocessable):
        listing(status="SHIPPED", cursor=paid_cursor)
    with pytest.raises(Unprocessable):
        store.customer_orders("c-2", 5, customer_cursor)  # another customer's listing
    with pytest.raises(Unprocessable):
        store.customer_orders("c-1", 5, cursor)
    # A well-formed cursor of this listing, made up: it is just a position, and answers normally.
    assert listing(cursor=encode_listing_cursor(scope, f"{at(6)}#zzz"))[0] == [
        o for o in listing(limit=100)[0] if o.created_at <= at(6)][:5]


class FakeDb:
    """A DynamoDB query stand-in that stops every response after a few items, as the 1 MB cap does."""

    def __init__(self, partitions: dict[str, list[dict]], cap: int):
        self.partitions, self.cap, self.calls = partitions, cap, 0

    def query(self, **request):
        self.calls += 1
        values = it.decode(request["ExpressionAttributeValues"])
        rows = sorted(self.partitions[values[":pk"]], key=lambda r: r["gsi4sk"])
        rows = [r for r in rows if r["gsi4sk"] < values[":upper"]]
        start = request.get("ExclusiveStartKey")
        if start:
            rows = [r for r in rows if r["gsi4sk"] > it.decode(start)["gsi4sk"]]
        taken = rows[:min(request["Limit"], self.cap)]
        got = {"Items": [it.encode(r) for r in taken]}
        if taken and (len(taken) < len(rows) or len(taken) == request["Limit"]):
            got["LastEvaluatedKey"] = it.encode(taken[-1])
        return got


def test_merge_follows_truncated_pages_so_it_stays_exact():
    """A shard whose response stops early (1 MB cap) is read on until it has `limit` items."""
    rng = random.Random(3)
    partitions = {f"PENDING_PAYMENT#{n}": [] for n in range(INDEX_SHARDS)}
    expected = []
    for k in range(300):
        order_id = f"ord_{k:04d}"
        sk = f"{at(rng.randrange(0, 1000))}#{order_id}"
        partitions[f"PENDING_PAYMENT#{it.index_shard(order_id)}"].append(
            {"pk": f"ORDER#{order_id}", "sk": "ORDER", "gsi4pk": "x", "gsi4sk": sk})
        expected.append((sk, order_id))
    store = DynamoShopStore.__new__(DynamoShopStore)
    store.table, store.db = "t", FakeDb(partitions, cap=3)
    expected = [order_id for sk, order_id in sorted(expected)]
    assert store.overdue_pending_order_ids(at(2000), limit=50) == expected[:50]
    assert store.overdue_pending_order_ids(at(2000), limit=1000) == expected
