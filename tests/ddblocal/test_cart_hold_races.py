"""Cart holds against DynamoDB Local: a hold that expires while its order is being placed (forced interleavings,
each with exactly one winner), and concurrent holds, orders from holds and releases on a hot SKU (no oversell,
every invariant at the end)."""

from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from shop.domain import clock
from shop.domain.cart_holds import HoldStatus, hold_id_for
from shop.domain.errors import InsufficientStock
from shop.services import cart_holds
from shop.services.orders import OrderPolicy, OrderRequest, PlaceOrder, place_order, request_fingerprint
from tests.ddblocal.money_checks import run_in_thread, wait_until_paused
from tests.ddblocal.test_contention import ADDRESS, assert_ledger_matches, stock_up

pytestmark = pytest.mark.ddblocal
POLICY = cart_holds.HoldPolicy(hold_seconds=900, max_seconds=3600)


class HoldGate:
    """The real store; the thread that called `eligible()` is paused once, until `release` is set: right before
    its first commit that writes a cart hold (after every read it decided from), or with `at_read`, right after
    it read the hold (before it looked at the clock)."""

    def __init__(self, real, at_read: bool = False):
        self._real = real
        self._local = threading.local()
        self.at_read = at_read
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.holders = 1
        self.held = 0
        self.timed_out = False

    def __getattr__(self, name):
        return getattr(self._real, name)

    def eligible(self) -> None:
        self._local.eligible = True

    def _pause(self) -> None:
        if getattr(self._local, "eligible", False):
            self._local.eligible = False
            self.held += 1
            self.arrived.set()
            if not self.release.wait(20):
                self.timed_out = True

    def get_cart_hold(self, hold_id):
        found = self._real.get_cart_hold(hold_id)
        if self.at_read:
            self._pause()
        return found

    def commit(self, commit) -> None:
        if not self.at_read and commit.cart_hold is not None:
            self._pause()
        self._real.commit(commit)


class ThreadClock:
    """clock.now per thread: a thread that called `shift(s)` lives `s` seconds ahead (another Lambda's clock, or
    the same one later)."""

    def __init__(self, monkeypatch):
        self.real = clock.now
        self.offsets: dict[int, float] = {}
        monkeypatch.setattr(clock, "now", self.now)

    def now(self):
        return self.real() + timedelta(seconds=self.offsets.get(threading.get_ident(), 0))

    def shift(self, seconds: float) -> None:
        self.offsets[threading.get_ident()] = seconds


def order(ports, customer, key, items, cart_id=None):
    request = OrderRequest(items=items, shipping_address=ADDRESS, payment_provider="sandbox", cart_id=cart_id)
    return place_order(ports, PlaceOrder(customer, key, request, request_fingerprint({"items": items, "c": cart_id})),
                       OrderPolicy(900, 3600), lambda o: {})


def reserved_by_owner(ports, code):
    """Reserved units per owner from the SKU's ledger: ("order", id) or ("hold", id)."""
    owners, cursor = Counter(), None
    while True:
        page, cursor = ports.store.ledger(code, 100, cursor)
        for e in page:
            owners[("order", e.order_id) if e.order_id else ("hold", e.reference)] += e.delta.reserved
        if not cursor:
            break
    return {owner: units for owner, units in owners.items() if units and owner[1]}


def expected_owners(ports, holds, orders, code):
    """What each owner holds now: an active hold its lines, an order its reservation."""
    want = {}
    for hold_id in holds:
        hold = ports.store.get_cart_hold(hold_id)
        if hold and hold.active and hold.units().get(code):
            want[("hold", hold_id)] = hold.units()[code]
    for order_id in orders:
        held = ports.store.get_order(order_id).reserved_quantities().get(code)
        if held:
            want[("order", order_id)] = held
    return want


def check(ports, code, holds, orders):
    sku = assert_ledger_matches(ports, code)  # levels consistent per shard, ledger sums to them
    owners = reserved_by_owner(ports, code)
    assert owners == expected_owners(ports, holds, orders, code)  # each reservation has exactly one owner
    assert sum(owners.values()) == sku.levels.reserved
    return sku


def scenario(ddb_ports, monkeypatch, at_read=False):
    stock_up(ddb_ports, ["CART-1", "CART-2"], on_hand=5, shards=2)
    times = ThreadClock(monkeypatch)
    hold = cart_holds.place_hold(ddb_ports, "ann", "cart", [("CART-1", 2), ("CART-2", 1)], POLICY)
    gate = HoldGate(ddb_ports.store, at_read)
    ddb_ports.store = gate
    return times, hold, gate


def finish(gate, thread, box):
    gate.release.set()
    thread.join(30)
    assert not thread.is_alive() and not gate.timed_out
    assert "error" not in box, box.get("error")
    return box["result"]


def test_order_paused_while_the_expiry_releases_the_hold(ddb_ports, monkeypatch):
    """The order read the live hold; meanwhile the hold expired and its expiry released it. The order's commit
    fails on the hold's version; its next attempt finds the hold released and reserves like any order."""
    times, hold, gate = scenario(ddb_ports, monkeypatch)

    def place():
        return order(ddb_ports, "ann", "k1", [("CART-1", 2), ("CART-2", 1)], cart_id="cart")

    thread, box = run_in_thread(place, gate)
    assert wait_until_paused(gate, [thread])
    times.shift(901)  # the expiry runs after expires_at
    assert cart_holds.expire_hold(ddb_ports, hold.hold_id) is not None
    placed = finish(gate, thread, box)
    assert "cart_hold" not in placed.body  # the hold was gone: a plain reservation
    ended = ddb_ports.store.get_cart_hold(hold.hold_id)
    assert (ended.status, ended.ended_by) == (HoldStatus.RELEASED, "expired")
    for code in ("CART-1", "CART-2"):
        sku = check(ddb_ports, code, [hold.hold_id], [placed.order_id])
        assert sku.levels.reserved == (2 if code == "CART-1" else 1)  # the order's only: never both


def test_order_paused_after_reading_the_hold_until_it_expired_releases_it_itself(ddb_ports, monkeypatch):
    """The order read the live hold and goes on after expires_at, before any expiry ran: it releases the expired
    hold and reserves in one transaction; the expiry message that comes later finds it ended."""
    times, hold, gate = scenario(ddb_ports, monkeypatch, at_read=True)

    def place():
        return order(ddb_ports, "ann", "k1", [("CART-1", 2), ("CART-2", 1)], cart_id="cart")

    thread, box = run_in_thread(place, gate)
    assert wait_until_paused(gate, [thread])
    times.offsets[thread.ident] = 901  # the paused order goes on after the hold expired
    placed = finish(gate, thread, box)
    assert placed.body["cart_hold"]["status"] == "released"
    times.shift(902)
    assert cart_holds.expire_hold(ddb_ports, hold.hold_id) is None  # ended once, by the order
    for code in ("CART-1", "CART-2"):
        check(ddb_ports, code, [hold.hold_id], [placed.order_id])
    reasons = Counter(e.reason for e in ddb_ports.store.ledger("CART-1", 100, None)[0])
    assert reasons["cart_hold_expired"] == 1 and reasons["cart_hold_converted"] == 0


def test_a_conversion_committed_after_expiry_is_refused_by_the_hold_condition(ddb_ports, monkeypatch):
    """The store's side of the rule: a takeover whose commit time is past the hold's expiry fails (StaleWrite),
    even at the right version; nothing is written."""
    from shop.services.ports import Commit, StaleWrite

    stock_up(ddb_ports, ["CART-1"], on_hand=5)
    hold = cart_holds.place_hold(ddb_ports, "ann", "cart", [("CART-1", 2)], POLICY)
    converted = hold.ended(HoldStatus.CONVERTED, at=clock.now(), by="ord_x")
    late = clock.iso(clock.parse_iso(hold.expires_at) + timedelta(milliseconds=1))
    with pytest.raises(StaleWrite):
        ddb_ports.store.commit(Commit(cart_hold=(converted, hold.version), cart_hold_live_at=late))
    assert ddb_ports.store.get_cart_hold(hold.hold_id).active
    ddb_ports.store.commit(Commit(cart_hold=(converted, hold.version), cart_hold_live_at=hold.created_at))
    assert ddb_ports.store.get_cart_hold(hold.hold_id).status is HoldStatus.CONVERTED


@pytest.mark.parametrize("order_clock, outcome", [(0, "converted"), (901, "released")])
def test_expiry_paused_while_an_order_names_the_hold(ddb_ports, monkeypatch, order_clock, outcome):
    """The expiry (its clock past expires_at) read the hold as overdue and is paused. The order comes meanwhile:
    on a clock that says the hold is live, it takes the units over ("converted"); on one that says it expired,
    it releases the hold and reserves in its own transaction ("released"). Either way the paused expiry's commit
    fails on the hold's version and its next attempt finds the hold ended: the units are released at most once."""
    times, hold, gate = scenario(ddb_ports, monkeypatch)

    def expire():
        times.shift(901)
        return cart_holds.expire_hold(ddb_ports, hold.hold_id)

    thread, box = run_in_thread(expire, gate)
    assert wait_until_paused(gate, [thread])
    times.shift(order_clock)
    placed = order(ddb_ports, "ann", "k1", [("CART-1", 2), ("CART-2", 1)], cart_id="cart")
    assert placed.body["cart_hold"]["status"] == outcome
    assert finish(gate, thread, box) is None  # the expiry lost: nothing released by it
    ended = ddb_ports.store.get_cart_hold(hold.hold_id)
    assert ended.ended_by == (placed.order_id if outcome == "converted" else "expired")
    for code in ("CART-1", "CART-2"):
        sku = check(ddb_ports, code, [hold.hold_id], [placed.order_id])
        assert sku.levels.reserved == (2 if code == "CART-1" else 1)  # the order's units only
    expired = [e for e in ddb_ports.store.ledger("CART-1", 100, None)[0] if e.reason == "cart_hold_expired"]
    assert len(expired) == (1 if outcome == "released" else 0)


def test_concurrent_holds_orders_and_releases_on_a_hot_sku_never_oversell(ddb_ports):
    """32 threads: shoppers hold carts of a hot SKU, change them, order from them or empty them,
    while others order without a cart (100 units, 4 shards). Never more units held or ordered than exist; every reservation has one
    owner; the ledger sums to the levels."""
    stock_up(ddb_ports, ["HOT-CART"], on_hand=100, shards=4)
    rng = random.Random(16)
    plans = [(n, rng.choice(["hold", "hold", "hold_and_order", "hold_and_release", "order"]), rng.randint(1, 3))
             for n in range(160)]
    outcomes: Counter = Counter()
    orders: list[str] = []
    lock = threading.Lock()

    def shop(plan):
        n, kind, quantity = plan
        customer = f"s{n}"
        try:
            if kind == "order":
                placed = order(ddb_ports, customer, f"k{n}", [("HOT-CART", quantity)])
                with lock:
                    orders.append(placed.order_id)
                return "ordered"
            cart_holds.place_hold(ddb_ports, customer, "cart", [("HOT-CART", quantity)], POLICY)
            if kind == "hold_and_order":
                placed = order(ddb_ports, customer, f"k{n}", [("HOT-CART", quantity)], cart_id="cart")
                with lock:
                    orders.append(placed.order_id)
                return "converted" if placed.body["cart_hold"]["status"] == "converted" else "not converted"
            if kind == "hold_and_release":
                cart_holds.release_hold(ddb_ports, customer, "cart")
                return "released"
            return "held"
        except InsufficientStock:
            return "short"

    with ThreadPoolExecutor(32) as pool:
        outcomes.update(pool.map(shop, plans))
    assert set(outcomes) <= {"ordered", "converted", "held", "released", "short"}, outcomes
    assert outcomes["short"] > 0 and outcomes["converted"] > 0
    holds = [hold_id_for(f"s{n}", "cart") for n, kind, _ in plans if kind != "order"]
    sku = check(ddb_ports, "HOT-CART", holds, orders)
    assert sku.levels.on_hand == 100 and sku.levels.reserved + sku.levels.available == 100
    print(f"hot SKU with holds: {dict(outcomes)}; reserved {sku.levels.reserved} of 100")
