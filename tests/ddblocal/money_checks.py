"""Shared tools for the money-race, saga-fault and concurrent property tests (issue 10).

- `GatedStore`: a proxy of the real store that pauses chosen callers right before they commit an
  order change computed on the version they read, so a racing operation can finish first and the
  paused one must commit on a stale version (and re-read, and re-check).
- `Books`: the providers' own books. Money they took (every signed payment webhook sent) and money
  they refunded (the fakes' ledger for stripe/alipay/wechatpay, a refund-id keyed ledger for the
  sandbox), plus a log of every refund call with what the order said at that moment. Its provider
  proxies can inject faults around the real refund call.
- `money_violations` / `stock_violations`: every money and stock invariant of SPEC and issue 10,
  returned as readable strings so a test can report all of them at once.

Refund entries are read in the post-issue-10 shape; entries written before it (no "status", no
"restocked", no "automatic") are read as succeeded, restocking their lines when "restock" was set.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any, Callable

from localrun.fake_providers import signed_webhook
from shop.domain.money import Money
from shop.domain.orders import Order, OrderStatus
from shop.domain.values import Refund
from shop.payments.base import ProviderError
from shop.payments.registry import PROVIDERS
from shop.services import catalog, payments
from shop.services.orders import OrderPolicy, OrderRequest, PlaceOrder, place_order, request_fingerprint
from shop.services.restock import RestockRequest, apply_restock
from shop.services.risk import RiskRules

ADDRESS = {"name": "Ada", "line1": "1 Loop", "city": "Localhost", "postal_code": "12345", "country": "US"}
NO_RISK = RiskRules(large_amount=10**12, max_large_payments=99, window_seconds=1)
PRICE = 1999
GATE_TIMEOUT_S = 30


class Crash(BaseException):
    """The process died here (a Lambda timeout, an OOM kill): no `except Exception` in the code runs."""


# ---------------------------------------------------------------------------------------------
# refund entries, old and new shape


def units(lines) -> Counter:
    total: Counter = Counter()
    for line in lines:
        total[line.sku] += line.quantity
    return total


def refunded_total(order: Order, *, include_pending: bool = True) -> int:
    return sum(e.amount for e in order.refunds if include_pending or not e.pending)


def succeeded_total(order: Order) -> int:
    return refunded_total(order, include_pending=False)


def pending_entries(order: Order) -> list[Refund]:
    return [e for e in order.refunds if e.pending]


def restocked_units(order: Order) -> Counter:
    return units(line for e in order.refunds for line in e.restocked)


def refunded_units(order: Order) -> Counter:
    return units(line for e in order.refunds for line in e.lines)


# ---------------------------------------------------------------------------------------------
# a store that pauses chosen callers before they commit


class GatedStore:
    """Wraps the real store. Threads that called `eligible()` are paused (each once) right before their
    first commit that updates `order_id` from a version they read, until `release` is set. Also
    injects crashes: `crash_next_commit()` makes the next commit raise `Crash` (before or after it
    is applied)."""

    def __init__(self, real, order_id: str | None = None, holders: int = 1):
        self._real = real
        self.order_id = order_id
        self.holders = holders
        self._local = threading.local()
        self._lock = threading.Lock()
        self.held = 0  # callers paused so far
        self.arrived = threading.Event()  # all `holders` callers are paused
        self.release = threading.Event()
        self.timed_out = False
        self._crash: list[tuple[str, Callable[[Any], bool]]] = []  # ("before" | "after", which commit)
        self.crashes = 0

    def __getattr__(self, name):
        return getattr(self._real, name)

    @property
    def real(self):
        return self._real

    # -- gating
    def eligible(self) -> None:
        """The calling thread may be paused (once) at its first commit of an order change."""
        self._local.eligible = True
        self._local.paused = False

    def _touches_order(self, commit) -> bool:
        update = getattr(commit, "order_update", None)
        if not update:
            return False
        return self.order_id is None or update[0].order_id == self.order_id

    def _maybe_pause(self, commit) -> None:
        if not getattr(self._local, "eligible", False) or self._local.paused or not self._touches_order(commit):
            return
        with self._lock:
            if self.held >= self.holders:
                return
            self.held += 1
            if self.held >= self.holders:
                self.arrived.set()
        self._local.paused = True
        if not self.release.wait(GATE_TIMEOUT_S):
            self.timed_out = True

    # -- crash injection
    def crash_next_commit(self, when: str = "before", which: Callable[[Any], bool] | None = None) -> None:
        """The next commit (matching `which`) raises Crash: before it is applied, or after it was."""
        with self._lock:
            self._crash.append((when, which or (lambda commit: True)))

    def _take_crash(self, commit) -> str | None:
        with self._lock:
            for n, (when, which) in enumerate(self._crash):
                if which(commit):
                    del self._crash[n]
                    self.crashes += 1
                    return when
        return None

    def commit(self, commit) -> None:
        self._maybe_pause(commit)
        crash = self._take_crash(commit) if self._crash else None
        if crash == "before":
            raise Crash("injected: the process died before this commit")
        self._real.commit(commit)
        if crash == "after":
            raise Crash("injected: the process died right after this commit")


def run_in_thread(fn: Callable[[], Any], gate: GatedStore | None = None) -> tuple[threading.Thread, dict]:
    """Start fn in a thread (eligible for `gate`); the dict gets "result" or "error"."""
    box: dict[str, Any] = {}

    def body():
        if gate is not None:
            gate.eligible()
        try:
            box["result"] = fn()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            box["error"] = error

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, box


def wait_until_paused(gate: GatedStore, threads: list[threading.Thread], timeout: float = GATE_TIMEOUT_S) -> bool:
    """Wait until the gate holds its callers, or every thread ended without reaching it. True if held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gate.arrived.wait(0.01):
            return True
        if not any(t.is_alive() for t in threads):
            return gate.arrived.is_set()
    return gate.arrived.is_set()


def call(fn: Callable[[], Any]) -> dict:
    box: dict[str, Any] = {}
    try:
        box["result"] = fn()
    except Exception as error:  # noqa: BLE001
        box["error"] = error
    return box


def race(gate: GatedStore, paused: Callable[[], Any], racer: Callable[[], Any]) -> tuple[dict, dict]:
    """`paused` reads the order and is stopped right before its commit; `racer` runs to completion
    meanwhile; then `paused` goes on with what it read (a stale version). Returns both outcomes."""
    gate.release.clear()
    thread, first = run_in_thread(paused, gate)
    held = wait_until_paused(gate, [thread])
    second = call(racer)
    gate.release.set()
    thread.join(GATE_TIMEOUT_S * 2)
    assert not thread.is_alive(), "the paused operation never finished"
    assert held, ("the gate never paused the first operation: it committed no change of the order "
                  f"(outcome: {first})")
    assert not gate.timed_out, "the gate timed out: the racing operation never finished"
    return first, second


# ---------------------------------------------------------------------------------------------
# the providers' books


class QueuedRestocks:
    def __init__(self):
        self.lock = threading.Lock()
        self.messages: list[RestockRequest] = []
        self.sent = 0

    def request_restock(self, message_id, sku, quantity, order_id, reason):
        with self.lock:
            self.messages.append(RestockRequest(message_id, sku, quantity, order_id, reason))
            self.sent += 1

    def take(self) -> list[RestockRequest]:
        with self.lock:
            taken, self.messages = self.messages, []
            return taken


def deliver_restocks(ports, queue: QueuedRestocks, twice: bool = False) -> int:
    """Apply every queued restock (each message id applies once); returns how many were applied."""
    applied = 0
    while True:
        batch = queue.take()
        if not batch:
            return applied
        for message in batch + (batch if twice else []):
            applied += bool(apply_restock(ports, message))


class Books:
    """What the providers know: money taken per order (each payment webhook sent) and refunded.

    Installs (through pytest's monkeypatch, so undone after the test) a wrapper around `refund` of every
    provider in the registry, so every refund the code makes is seen, whichever path calls it: the call
    is logged with what the order said at that moment, sandbox refunds are booked (first call per
    refund id wins, as a provider's idempotency key would), and fault hooks run around the real call.
    """

    def __init__(self, fakes, store, monkeypatch):
        self.fakes = fakes
        self.store = store  # the real store, read (never written) to see what the order said at each call
        self.lock = threading.Lock()
        self.taken: Counter = Counter()
        self.sandbox_refunds: dict[str, tuple[str, int]] = {}  # refund_id -> (order_id, amount)
        self.calls: list[dict[str, Any]] = []  # every refund call: refund_id, order_id, amount, intent
        self.before: list[Callable[[str, dict], None]] = []  # fault hooks before the real call
        self.after: list[Callable[[str, dict, Any], None]] = []  # fault hooks after it succeeded
        for name, provider in PROVIDERS.items():
            real = type(provider).refund.__get__(provider)  # the class's own method, never an earlier wrapper
            monkeypatch.setattr(provider, "refund", self._booked(name, real), raising=False)

    def provider(self, name: str):
        return PROVIDERS[name]

    def provider_for(self, name: str):
        return PROVIDERS[name]

    def _booked(self, name: str, real):
        def refund(**kw):
            order = self.store.get_order(kw["order_id"])
            entry = next((e for e in (order.refunds if order else ()) if e.refund_id == kw["refund_id"]),
                         None)
            with self.lock:
                self.calls.append({"refund_id": kw["refund_id"], "order_id": kw["order_id"],
                                   "amount": kw["amount"].amount, "provider": name,
                                   "intent": entry.status.value if entry is not None else None})
                before = list(self.before)
            for hook in before:
                hook(name, kw)
            result = real(**kw)
            with self.lock:
                if name == "sandbox":
                    self.sandbox_refunds.setdefault(kw["refund_id"], (kw["order_id"], kw["amount"].amount))
                after = list(self.after)
            for hook in after:
                hook(name, kw, result)
            return result
        return refund

    def take(self, order_id: str, amount: int) -> None:
        with self.lock:
            self.taken[order_id] += amount
        self.fakes.mark_paid(order_id)  # known paid; amount unknown, so the fake never caps a refund for us

    def refunded(self, order_id: str) -> int:
        with self.fakes.lock:
            faked = self.fakes.refunded.get(order_id, 0)
        with self.lock:
            sandbox = sum(amount for oid, amount in self.sandbox_refunds.values() if oid == order_id)
        return faked + sandbox

    def calls_for(self, order_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [c for c in self.calls if c["order_id"] == order_id]

    def intent_violations(self, order_ids=None) -> list[str]:
        """Provider refunds made before the order recorded the refund (SPEC: the intent first)."""
        out = []
        with self.lock:
            calls = list(self.calls)
        for c in calls:
            if order_ids is not None and c["order_id"] not in order_ids:
                continue
            if c["intent"] is None:
                out.append(f"{c['order_id']}: provider refund {c['refund_id']} ({c['amount']}) called before the "
                           "order recorded it (no refund entry with that id on the order)")
        return out


def once(fault: Callable[..., None]):
    """A hook that fires on its first call only."""
    fired = []

    def hook(*args):
        if not fired:
            fired.append(True)
            fault(*args)
    hook.fired = fired
    return hook


def provider_error(*_):
    raise ProviderError("injected: the provider did not answer")


def crash(*_):
    raise Crash("injected: the process died here")


# ---------------------------------------------------------------------------------------------
# set-up helpers


def stock_up(ports, code: str, on_hand: int, policy: str = "reserve_on_order", price: int = PRICE) -> None:
    catalog.upsert_sku(ports, code, catalog.SkuDetails(name=code, price=Money(price, "USD"), on_hand=on_hand,
                                                       stock_policy=catalog.StockPolicy(policy)), actor="admin:test")


def place(ports, customer: str, key: str, items: list[tuple[str, int]], provider: str, window_seconds: int = 900):
    request = OrderRequest(items=items, shipping_address=ADDRESS, payment_provider=provider)
    return place_order(ports, PlaceOrder(customer, key, request, request_fingerprint({"items": items, "provider": provider})),
                       OrderPolicy(window_seconds, 3600), lambda o: PROVIDERS[o.payment_provider].create_payment(o))


class Webhook:
    """One payment the provider took, as its signed notification (deliverable any number of times)."""

    _n = 0
    _lock = threading.Lock()

    def __init__(self, books: Books, provider: str, order_id: str, amount: Money):
        with Webhook._lock:
            Webhook._n += 1
            n = Webhook._n
        self.provider, self.order_id, self.amount = provider, order_id, amount
        self.headers, self.body = signed_webhook(books.fakes.keys, provider, order_id, amount,
                                                 event_id=f"evt_{provider[:3]}_{n}_{time.time_ns()}",
                                                 payment_id=f"pay_{n}_{time.time_ns()}")
        books.take(order_id, amount.amount)
        self.books = books

    def deliver(self, ports, risk: RiskRules = NO_RISK) -> str:
        event = PROVIDERS[self.provider].parse_webhook(dict(self.headers), self.body)
        return payments.process_payment_event(ports, self.books.provider(self.provider), event, risk)


def pay(ports, books: Books, order_id: str, *, provider: str | None = None, amount: int | None = None,
        risk: RiskRules = NO_RISK) -> tuple[Webhook, str]:
    order = books.store.get_order(order_id) if books.store else ports.store.get_order(order_id)
    hook = Webhook(books, provider or order.payment_provider, order_id,
                   Money(order.total.amount if amount is None else amount, order.currency))
    return hook, hook.deliver(ports, risk)


def complete_pending(ports, books: Books, order_id: str):
    """payments.complete_pending_refunds, where it exists (it does after the fix). Returns the order."""
    sweep = getattr(payments, "complete_pending_refunds", None)
    if sweep is None:
        return None
    return sweep(ports, books.provider_for, order_id)


def ledger(store, code: str) -> list:
    entries, cursor = [], None
    while True:
        page, cursor = store.ledger(code, 100, cursor)
        entries += page
        if not cursor:
            return entries


# ---------------------------------------------------------------------------------------------
# invariants


def money_violations(order: Order, books: Books | None = None, *, final: bool = False) -> list[str]:
    """Per order. Always (at any moment): refunded (done + pending) <= paid; amount_refunded is the sum of
    the succeeded refunds; a paid CANCELLED/EXPIRED order carries refunds of all it was paid; no more
    units refunded or restocked than ordered; refund ids unique. With `books` and `final` (nothing
    pending any more): our books and the provider's agree."""
    oid, out = order.order_id, []
    every, done = refunded_total(order), succeeded_total(order)
    if every > order.amount_paid:
        out.append(f"{oid}: refunds (done + pending) {every} exceed amount_paid {order.amount_paid}")
    if order.amount_refunded != done:
        out.append(f"{oid}: amount_refunded {order.amount_refunded} != succeeded refund entries {done}")
    if order.status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED) and order.amount_paid > 0 \
            and every != order.amount_paid:
        out.append(f"{oid}: {order.status.value} with amount_paid {order.amount_paid} but refunds (done + pending) "
                   f"of {every}, payment_status {order.payment_status}")
    ids = [e.refund_id for e in order.refunds]
    if len(ids) != len(set(ids)):
        out.append(f"{oid}: refund ids recorded twice: {sorted(i for i in ids if ids.count(i) > 1)}")
    ordered = {line.sku: line.quantity for line in order.lines}
    for label, counted in (("refunded", refunded_units(order)), ("restocked", restocked_units(order))):
        for sku, qty in counted.items():
            if qty > ordered.get(sku, 0):
                out.append(f"{oid}: {qty} units of {sku} {label}, the order has {ordered.get(sku, 0)}")
    if final:
        pend = pending_entries(order)
        if pend:
            out.append(f"{oid}: refunds still pending: {[(e.refund_id, e.last_error) for e in pend]}")
        if books is not None:
            taken, refunded = books.taken.get(oid, 0), books.refunded(oid)
            if order.amount_paid != taken:
                out.append(f"{oid}: providers took {taken}, order says amount_paid {order.amount_paid} "
                           f"({order.status.value}, payment_status {order.payment_status})")
            if refunded != done:
                out.append(f"{oid}: providers refunded {refunded}, order records {done} refunded "
                           f"({order.status.value}, {len(order.refunds)} entries)")
            if refunded > taken:
                out.append(f"{oid}: providers refunded {refunded}, more than the {taken} they took")
    return out


SOLD_STATUSES = (OrderStatus.PAID, OrderStatus.PARTIALLY_SHIPPED, OrderStatus.SHIPPED, OrderStatus.DELIVERED,
                 OrderStatus.COMPLETED)


def stock_violations(store, codes: list[str], orders: list[Order], *, delivered: bool = True) -> list[str]:
    """Per SKU: levels consistent and >= 0, ledger sums = levels. Per order and SKU (from the ledger):
    the reservation was made once and ended at most once (and is still held iff the order holds it),
    units sold at most once, units returned <= units sold, and (restocks delivered) returned = restocked
    on the order's refunds; a paid, live order still holds its sale."""
    out: list[str] = []
    moves: dict[tuple[str, str], Counter] = {}
    for code in codes:
        sku = store.get_sku(code)
        levels = sku.levels
        if not levels.is_consistent:
            out.append(f"{code}: inconsistent levels {levels.to_dict()}")
        totals: Counter = Counter()
        for e in ledger(store, code):
            totals.update(e.delta.to_dict())
            if e.order_id:
                c = moves.setdefault((e.order_id, code), Counter())
                c["alloc"] += max(e.delta.reserved, 0)
                c["ended"] += max(-e.delta.reserved, 0)
                c["sold"] += max(e.delta.sold, 0)
                c["returned"] += max(-e.delta.sold, 0)
        summed = {k: totals[k] for k in ("on_hand", "available", "reserved", "sold")}
        if summed != levels.to_dict():
            out.append(f"{code}: ledger sums {summed} != levels {levels.to_dict()}")
    for order in orders:
        held = order.reserved_quantities()
        back = restocked_units(order)
        for line in order.lines:
            if line.sku not in codes:
                continue
            m = moves.get((order.order_id, line.sku), Counter())
            where = f"{order.order_id}/{line.sku} ({order.status.value}, {order.payment_status})"
            expected_alloc = line.quantity if line.reserves_stock else 0
            if m["alloc"] != expected_alloc:
                out.append(f"{where}: reserved {m['alloc']} units in all, expected {expected_alloc}")
            if m["alloc"] - m["ended"] != held.get(line.sku, 0):
                out.append(f"{where}: reservation made {m['alloc']}, ended {m['ended']}, the order holds "
                           f"{held.get(line.sku, 0)} (a reservation ends exactly once)")
            if m["sold"] not in (0, line.quantity):
                out.append(f"{where}: sold {m['sold']} units for a line of {line.quantity}")
            if m["returned"] > m["sold"]:
                out.append(f"{where}: {m['returned']} units restocked, the order sold {m['sold']}")
            if delivered and m["returned"] != back.get(line.sku, 0):
                out.append(f"{where}: {m['returned']} units restocked in the ledger, {back.get(line.sku, 0)} "
                           "on the order's refunds")
            live = order.status in SOLD_STATUSES or (order.status is OrderStatus.ON_HOLD
                                                     and order.payment_status != "unpaid")
            if live and m["sold"] != line.quantity:
                out.append(f"{where}: a paid order whose line is not sold (sold {m['sold']})")
    return out
