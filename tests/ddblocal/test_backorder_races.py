"""Backorders under concurrency on DynamoDB Local (issue 16).

- Many orders race for a SKU with little sellable stock and a backorder limit: never more accepted than stock +
  limit, the allowance holds exactly the backordered units, no order refused while enough was left.
- Stock arrives (adjustments, restocks of cancelled paid orders) while orders are placed, paid, cancelled and
  expired: in the end no unit is lost or counted twice, no order is filled twice, and no order waits while
  sellable units sit on the shelf.
- Forced interleavings (a fill paused between its read of the order and its commit while the order is
  cancelled, expired or paid; a cancel or payment paused while a fill commits; an order placed while stock arrives
  and its fill runs): the loser re-reads and does what the new version asks.
- Several arrivals at once: their fills run together and every waiting unit is filled once, oldest order first.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from shop.domain.backorders import BACKORDER_ITEM, is_backorder_item
from shop.domain.errors import DomainError, InsufficientStock
from shop.domain.money import Money
from shop.domain.orders import Order, OrderStatus
from shop.domain.statuses import PaymentStatus
from shop.services import backorders, catalog, payments
from shop.services.orders import end_reservation
from tests.ddblocal.money_checks import (
    PRICE,
    Books,
    GatedStore,
    QueuedRestocks,
    deliver_restocks,
    pay,
    place,
    race,
    restocked_units,
)
from tests.ddblocal.test_contention import assert_ledger_matches, ledger_entries

pytestmark = pytest.mark.ddblocal
CODE = "BACK"
OPEN = frozenset({OrderStatus.PENDING_PAYMENT, OrderStatus.ON_HOLD, OrderStatus.PAID, OrderStatus.PARTIALLY_SHIPPED})


class Restocks(QueuedRestocks):
    """The restock queue: restocks wait to be delivered; rebalancing requests (hot shards) are dropped."""

    def request_rebalance(self, sku):
        pass


class Shop:
    """A gated store on a fresh table, the providers' books, the restock queue, and the orders placed."""

    def __init__(self, ports, fakes, monkeypatch):
        self.real = ports.store
        self.gate = GatedStore(self.real)
        ports.store = self.gate
        ports.restock_queue = self.queue = Restocks()
        self.ports = ports
        self.books = Books(fakes, self.real, monkeypatch)
        self.stocked = 0  # sellable units put in: initial stock and arrivals
        self.limit = 0

    def sku(self, on_hand, limit, shards=1):
        catalog.upsert_sku(self.ports, CODE, catalog.SkuDetails(
            name=CODE, price=Money(PRICE, "USD"), on_hand=on_hand, stock_shards=shards, backorder_limit=limit),
            actor="admin:test")
        self.stocked, self.limit = on_hand, limit

    def order(self, n, units) -> str:
        return place(self.ports, f"c{n}", f"k{n}", [(CODE, units)], "sandbox").order_id

    def arrive(self, units, request_id=None):
        catalog.adjust_stock(self.ports, CODE, units, reason="goods in", actor="admin:test", request_id=request_id)

    def pay(self, order_id):
        _, outcome = pay(self.ports, self.books, order_id)
        return outcome

    def cancel(self, order_id, customer):
        return payments.cancel(self.ports, self.books.provider_for, order_id, actor=f"customer:{customer}",
                               reason="cancelled_by_customer", customer_id=customer)

    def refund_line(self, order_id, units):
        return payments.refund_order(self.ports, self.books.provider("sandbox"), order_id, amount=None,
                                     lines=[(CODE, units)], restock=True, reason="operator refund", key="line",
                                     actor="admin:ops")

    def expire(self, order_id):
        return end_reservation(self.ports, order_id, to=OrderStatus.EXPIRED, actor="system:payment_window",
                               reason="payment_window_expired")

    def get(self, order_id) -> Order:
        return self.real.get_order(order_id)


@pytest.fixture
def shop(ddb_ports, provider_fakes, monkeypatch):
    return Shop(ddb_ports, provider_fakes, monkeypatch)


def on_shelf(line) -> int:
    """Units of the line held on sellable items (reserved, or sold for a paid order)."""
    return sum(a.units for a in line.allocations if not is_backorder_item(a.item))


def per_order(entries):
    """From the SKU's ledger, per order: units backordered at placement, filled, released from the allowance,
    and taken from sellable items by fills."""
    found: dict[str, Counter] = {}
    for e in entries:
        if e.order_id is None:
            continue
        c = found.setdefault(e.order_id, Counter())
        if is_backorder_item(e.shard):
            if e.delta.reserved > 0:
                c["backordered"] += e.delta.reserved
            elif e.reason == "backorder_filled":
                c["filled"] += -e.delta.reserved
            else:
                c["released"] += -e.delta.reserved
            c["allowance_sold"] += e.delta.sold  # never: the allowance sells nothing
        elif e.reason == "backorder_filled":
            c["taken_by_fill"] += -e.delta.available  # reserved (unpaid) or sold (paid): available either way
    return found


def check(shop: Shop, order_ids) -> dict[str, Counter]:
    """Every invariant of backorders at rest; returns the per-order ledger counts."""
    sku = assert_ledger_matches(shop.ports, CODE)  # every item consistent, >= 0, its ledger sums to its levels
    for item, levels in sku.shard_levels.items():
        assert min(levels.to_dict().values()) >= 0, (item, levels)
    allowance, sellable = sku.shard_levels[BACKORDER_ITEM], sku.levels
    orders = [shop.get(o) for o in order_ids]
    lines = [(o, line) for o in orders for line in o.lines if line.sku == CODE]
    for order, line in lines:  # an open order's units are on the shelf or wait; a refund took its waiting ones back
        held, refunded = line.backordered + on_shelf(line), order.refunded_units().get(CODE, 0)
        least = line.quantity - refunded if order.status in OPEN else 0
        assert 0 <= line.backordered and least <= held <= line.quantity, (order.order_id, order.status, line)
        if order.status in OPEN:
            assert line.backordered <= order.unshipped_units().get(CODE, 0), (order.order_id, line)
    waiting = sum(line.backordered for o, line in lines if o.status in OPEN)
    assert (allowance.on_hand, allowance.available, allowance.reserved, allowance.sold) == (
        shop.limit, shop.limit - waiting, waiting, 0)
    unpaid = sum(on_shelf(line) for o, line in lines if o.reserved_quantities())
    sold = sum(on_shelf(line) - restocked_units(o)[CODE] for o, line in lines
               if o.status in OPEN and o.payment_status in (PaymentStatus.PAID, PaymentStatus.PARTIALLY_REFUNDED))
    assert sellable.reserved == unpaid  # each reserved unit belongs to one unpaid order
    assert sellable.sold == sold  # each sold unit to one live paid order (cancelled ones were restocked)
    assert sellable.on_hand + sellable.sold == shop.stocked  # nothing appeared or vanished
    counts = per_order(ledger_entries(shop.ports, CODE))
    for order, line in lines:
        c = counts.get(order.order_id, Counter())
        where = f"{order.order_id} ({order.status.value}): {dict(c)}, line {line}"
        assert c["allowance_sold"] == 0, where
        assert c["filled"] == c["taken_by_fill"], where  # each filled unit taken from stock exactly once
        assert c["filled"] + c["released"] <= c["backordered"], where  # filled or released once, never both
        assert c["backordered"] - c["filled"] - c["released"] == (line.backordered if order.status in OPEN else 0), \
            where  # what still waits on the allowance is what the open order says; a closed one holds nothing
    assert not (waiting and sellable.available), (
        f"{waiting} units wait for stock while {sellable.available} sellable units are on the shelf")
    return counts


# ---------------------------------------------------------------------------------------------
# 1. many orders, little stock, a limit


def test_concurrent_orders_never_take_more_than_stock_plus_the_limit(shop):
    shop.sku(on_hand=8, limit=20, shards=4)
    rng = random.Random(16)
    plans = [(n, rng.randint(1, 3)) for n in range(60)]

    def attempt(plan):
        n, units = plan
        try:
            return "accepted", shop.order(n, units)
        except InsufficientStock as short:
            return "refused", short
        except Exception as error:  # a 5xx in HTTP terms: never
            return "error", repr(error)

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(attempt, plans))

    assert [detail for kind, detail in outcomes if kind == "error"] == []
    accepted = [(n, units, detail) for (n, units), (kind, detail) in zip(plans, outcomes, strict=True) if kind == "accepted"]
    refused = [(units, detail) for (_, units), (kind, detail) in zip(plans, outcomes, strict=True) if kind == "refused"]
    taken = sum(units for _, units, _ in accepted)
    assert taken <= 8 + 20
    counts = check(shop, [order_id for _, _, order_id in accepted])
    sku = shop.real.get_sku(CODE)
    left = sku.levels.available + sku.backorder.available
    assert taken + left == 8 + 20
    assert sku.backorder.reserved == sum(shop.get(o).lines[0].backordered for _, _, o in accepted)
    assert sku.backorder.reserved == sum(c["backordered"] for c in counts.values()) > 0
    assert sku.levels.available == 0  # every unit in stock went before any was backordered
    assert refused, "the test must sell out"
    for units, short in refused:  # 409, naming the SKU; never refused while enough was left
        assert short.status == 409
        shortage, = short.extra["shortages"]
        assert shortage["sku"] == CODE and shortage["requested"] == units > left
        assert shortage["available"] < units


# ---------------------------------------------------------------------------------------------
# 2. fills racing orders, payments, cancels, expiries and restocks


def test_fills_racing_orders_payments_cancels_and_expiries_lose_and_double_count_nothing(shop):
    shop.sku(on_hand=4, limit=24, shards=2)
    rng = random.Random(2026)
    stories = [(n, rng.randint(1, 3), rng.choice(["pay", "pay", "cancel", "expire", "pay_cancel", "wait"]),
                rng.random() * 0.05) for n in range(48)]
    placed: list[str] = []
    lock = threading.Lock()
    arrivals = [3, 2, 4, 3, 5, 3]
    done = threading.Event()

    def story(plan):
        n, units, then, pause = plan
        try:
            order_id = shop.order(n, units)
        except InsufficientStock:
            return "refused"
        with lock:
            placed.append(order_id)
        time.sleep(pause)
        if then in ("pay", "pay_cancel"):
            assert shop.pay(order_id) == "paid"
        if then in ("cancel", "pay_cancel"):
            shop.cancel(order_id, f"c{n}")
        elif then == "expire":
            shop.expire(order_id)
        return then

    def operator():
        for n, units in enumerate(arrivals):
            time.sleep(0.03)
            shop.arrive(units, request_id=f"in-{n}")
            deliver_restocks(shop.ports, shop.queue)  # restocks of cancelled paid orders arrive too
        done.set()

    with ThreadPoolExecutor(16) as pool:
        operating = pool.submit(operator)
        outcomes = list(pool.map(story, stories))
        operating.result()
    deliver_restocks(shop.ports, shop.queue)
    shop.stocked += sum(arrivals)

    assert done.is_set() and len(placed) >= 24 and outcomes.count("refused") == len(stories) - len(placed)
    counts = check(shop, placed)
    filled = sum(c["filled"] for c in counts.values())
    assert filled > 0, "no fill ran: the race tested nothing"
    statuses = Counter(shop.get(o).status for o in placed)
    assert statuses[OrderStatus.PAID] and statuses[OrderStatus.CANCELLED] and statuses[OrderStatus.EXPIRED]


# ---------------------------------------------------------------------------------------------
# 3. forced interleavings


def allowed(box):
    error = box.get("error")
    assert error is None or isinstance(error, DomainError), repr(error)
    return error is None


@pytest.mark.parametrize("racer", ["cancel", "expire", "pay", "cancel_paid"])
def test_a_fill_paused_before_its_commit_redoes_it_on_the_order_it_finds(shop, racer):
    """The fill read the order (2 units backordered) and is paused before its commit; the order is cancelled,
    expired, paid, or (paid) cancelled meanwhile; the fill's commit fails on the order's version, and it does what
    the new version asks: nothing for an ended order (the allowance was released once, by the cancel), a sale
    instead of a reservation for a paid one."""
    shop.sku(on_hand=0, limit=5)
    order_id = shop.order(1, 2)
    if racer == "cancel_paid":
        assert shop.pay(order_id) == "paid"
    shop.gate.order_id = order_id
    actions = {"cancel": lambda: shop.cancel(order_id, "c1"), "expire": lambda: shop.expire(order_id),
               "pay": lambda: shop.pay(order_id), "cancel_paid": lambda: shop.cancel(order_id, "c1")}
    arrival, raced = race(shop.gate, lambda: shop.arrive(3), actions[racer])
    assert allowed(arrival) and allowed(raced), (arrival, raced)
    deliver_restocks(shop.ports, shop.queue)
    shop.stocked += 3
    counts = check(shop, [order_id])
    order, c = shop.get(order_id), counts[order_id]
    sku = shop.real.get_sku(CODE)
    if racer == "pay":
        assert order.status is OrderStatus.PAID and order.lines[0].backordered == 0
        assert (c["filled"], c["released"]) == (2, 0)
        assert sku.levels.to_dict() == {"on_hand": 1, "available": 1, "reserved": 0, "sold": 2}  # sold, not reserved
    else:
        assert order.status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED)
        assert (c["backordered"], c["filled"], c["released"]) == (2, 0, 2)  # released once, never filled
        assert sku.levels.to_dict() == {"on_hand": 3, "available": 3, "reserved": 0, "sold": 0}
        assert not any(e.restocked for e in order.refunds)  # nothing was sold: nothing comes back
    assert sku.backorder.to_dict() == {"on_hand": 5, "available": 5, "reserved": 0, "sold": 0}


@pytest.mark.parametrize("paused", ["cancel", "pay"])
def test_a_cancel_or_payment_paused_while_a_fill_commits_acts_on_the_filled_order(shop, paused):
    """The cancel (or payment) read the order with its 2 units backordered and is paused; stock arrives and the fill
    commits; the paused write fails on the version and redoes it: the cancel releases the 2 units now reserved on
    sellable stock (the allowance's were handed over: nothing released there twice); the payment sells them."""
    shop.sku(on_hand=0, limit=5)
    order_id = shop.order(1, 2)
    shop.gate.order_id = order_id
    first = (lambda: shop.cancel(order_id, "c1")) if paused == "cancel" else (lambda: shop.pay(order_id))
    done, arrival = race(shop.gate, first, lambda: shop.arrive(3))
    assert allowed(done) and allowed(arrival), (done, arrival)
    shop.stocked += 3
    counts = check(shop, [order_id])
    order, c = shop.get(order_id), counts[order_id]
    assert (c["backordered"], c["filled"], c["released"]) == (2, 2, 0)
    assert order.lines[0].backordered == 0 and on_shelf(order.lines[0]) == 2
    sku = shop.real.get_sku(CODE)
    if paused == "cancel":
        assert order.status is OrderStatus.CANCELLED
        assert sku.levels.to_dict() == {"on_hand": 3, "available": 3, "reserved": 0, "sold": 0}
    else:
        assert order.status is OrderStatus.PAID
        assert sku.levels.to_dict() == {"on_hand": 1, "available": 1, "reserved": 0, "sold": 2}
    assert sku.backorder.to_dict() == {"on_hand": 5, "available": 5, "reserved": 0, "sold": 0}


@pytest.mark.parametrize("first", ["fill", "refund"])
def test_a_refund_by_line_racing_a_fill_leaves_each_unit_filled_or_released_once(shop, first):
    """A paid order of 3 units, all backordered; 1 unit is refunded (restock asked) while 3 units arrive.
    fill first (paused before its commit, the refund commits): the refund releases 1 waiting unit from the
    allowance (nothing was sold: nothing restocked); the fill redone on the new version fills the 2 still wanted.
    refund first (paused, the fill commits all 3 as sales): the refund redone finds nothing waiting and restocks
    the refunded unit, which was sold by then."""
    shop.sku(on_hand=0, limit=5)
    order_id = shop.order(1, 3)
    assert shop.pay(order_id) == "paid"
    shop.gate.order_id = order_id
    arrive, refund = (lambda: shop.arrive(3)), (lambda: shop.refund_line(order_id, 1))
    outcomes = race(shop.gate, arrive, refund) if first == "fill" else race(shop.gate, refund, arrive)
    assert all(allowed(box) for box in outcomes), outcomes
    deliver_restocks(shop.ports, shop.queue)
    shop.stocked += 3
    counts = check(shop, [order_id])
    order, c = shop.get(order_id), counts[order_id]
    assert order.status is OrderStatus.PAID and order.lines[0].backordered == 0
    sku = shop.real.get_sku(CODE)
    if first == "fill":
        assert (c["backordered"], c["filled"], c["released"]) == (3, 2, 1) and on_shelf(order.lines[0]) == 2
        assert not restocked_units(order)
        assert sku.levels.to_dict() == {"on_hand": 1, "available": 1, "reserved": 0, "sold": 2}
    else:
        assert (c["backordered"], c["filled"], c["released"]) == (3, 3, 0) and on_shelf(order.lines[0]) == 3
        assert restocked_units(order) == {CODE: 1}
        assert sku.levels.to_dict() == {"on_hand": 1, "available": 1, "reserved": 0, "sold": 2}
    assert sku.backorder.to_dict() == {"on_hand": 5, "available": 5, "reserved": 0, "sold": 0}


class PlacementGate:
    """The real store; the thread that called `eligible()` is paused once, right before its commit of a new order
    that backorders units (after it read the stock it planned from), until `release` is set."""

    def __init__(self, real):
        self._real = real
        self._local = threading.local()
        self.arrived = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name):
        return getattr(self._real, name)

    def eligible(self):
        self._local.eligible = True

    def commit(self, commit):
        if commit.new_order is not None and getattr(self._local, "eligible", False) \
                and any(is_backorder_item(m.shard) for m in commit.movements):
            self._local.eligible = False
            self.arrived.set()
            assert self.release.wait(30), "the racing arrival never finished"
        self._real.commit(commit)


def test_an_order_backordered_while_stock_arrives_is_filled_from_it(shop):
    """The order read no sellable stock and is paused before its commit; 3 units arrive and their fill finds no one
    waiting; the order then commits its 2 units backordered. They must not wait for the next arrival while the 3
    units are on the shelf."""
    shop.sku(on_hand=0, limit=5)
    gate = PlacementGate(shop.real)
    shop.ports.store = gate
    box: dict = {}

    def body():
        gate.eligible()
        try:
            box["result"] = shop.order(1, 2)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            box["error"] = error

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    assert gate.arrived.wait(30), f"the order never reached its commit: {box}"
    shop.arrive(3)  # its fill runs now: nobody waits yet
    gate.release.set()
    thread.join(30)
    assert not thread.is_alive() and "error" not in box, box
    shop.stocked = 3
    check(shop, [box["result"]])  # among others: no unit waits while units are on the shelf
    line = shop.get(box["result"]).lines[0]
    assert (line.backordered, on_shelf(line)) == (0, 2)
    assert shop.real.get_sku(CODE).levels.to_dict() == {"on_hand": 3, "available": 1, "reserved": 2, "sold": 0}


# ---------------------------------------------------------------------------------------------
# 4. several arrivals at once


def test_arrivals_at_once_fill_each_waiting_unit_once_oldest_order_first(shop):
    shop.sku(on_hand=0, limit=30)
    order_ids = [shop.order(n, 2) for n in range(12)]  # 24 units waiting, oldest first
    arrivals = [5, 4, 3, 3]  # 15 units, four fills at once
    start = threading.Barrier(len(arrivals))

    def arrive(n):
        start.wait(10)
        shop.arrive(arrivals[n], request_id=f"in-{n}")

    with ThreadPoolExecutor(len(arrivals)) as pool:
        list(pool.map(arrive, range(len(arrivals))))
    backorders.fill(shop.ports, CODE)  # a last run finds nothing left to do
    shop.stocked = sum(arrivals)
    counts = check(shop, order_ids)
    filled = [counts[o]["filled"] for o in order_ids]
    assert sum(filled) == 15 and all(f <= 2 for f in filled)
    assert filled == [2] * 7 + [1] + [0] * 4  # first come, first filled
    sku = shop.real.get_sku(CODE)
    assert sku.levels.to_dict() == {"on_hand": 15, "available": 0, "reserved": 15, "sold": 0}
    assert sku.backorder.to_dict() == {"on_hand": 30, "available": 21, "reserved": 9, "sold": 0}


@pytest.mark.parametrize("ending", ["cancel", "expire"])
def test_units_an_unpaid_order_gives_back_fill_the_orders_waiting(shop, ending):
    """Units an ended order releases are back on sale like an arrival: the orders waiting get them (a customer's
    cancel as well as an expiry)."""
    shop.sku(on_hand=2, limit=5)
    holding = shop.order(1, 2)
    waiting = shop.order(2, 2)
    assert shop.get(waiting).lines[0].backordered == 2
    shop.cancel(holding, "c1") if ending == "cancel" else shop.expire(holding)
    shop.stocked = 2
    check(shop, [holding, waiting])
    assert shop.get(waiting).lines[0].backordered == 0
