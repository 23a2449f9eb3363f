"""Issue 10, the concurrent property test: several threads apply random operations to the same few
orders at once, on DynamoDB Local, round after round; after each round every money and stock
invariant is checked, and the providers' books must agree with ours.

Each round: 3 shared SKUs (two reserve_on_order, one deduct_on_payment with little stock), 4 orders
(one per provider: sandbox, stripe, alipay, wechatpay; three already overdue so expiry can fire,
large ones held by the risk rules), then THREADS threads each run OPS random operations drawn from a
`random.Random` seeded per round and thread: pay through the order's provider's signed webhook, pay a
wrong amount, pay through another provider, redeliver an earlier webhook (duplicates, reordered),
cancel as the customer, cancel as an operator, refunds by amount / by lines / in full with and
without restock, retry an earlier refund request, ship (partly or wholly), approve and reject held
orders, expire, deliver queued restocks. Meanwhile an observer thread re-reads the orders and checks
the per-order money rules "at every moment".

Operations may fail with a DomainError (409/422/503) or a ProviderError: that is an answer, counted.
Anything else is a bug. After the threads join: webhooks whose delivery failed are redelivered (as a
provider would), pending refunds are completed (`payments.complete_pending_refunds`, once it exists),
queued restocks are delivered; then the checks run. `make test` runs ROUNDS rounds (< 60 s);
SOAK=1 runs SOAK_ROUNDS.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
import traceback
from collections import Counter

import pytest

from shop.domain.errors import DomainError
from shop.domain.money import Money
from shop.payments.base import ProviderError
from shop.services import fulfilment, payments
from shop.services.orders import expire_order
from shop.services.risk import RiskRules
from tests.ddblocal.money_checks import (
    PRICE,
    Books,
    QueuedRestocks,
    Webhook,
    complete_pending,
    deliver_restocks,
    money_violations,
    place,
    stock_up,
    stock_violations,
)

pytestmark = pytest.mark.ddblocal

SOAK = bool(os.environ.get("SOAK"))
ROUNDS = int(os.environ.get("ORDER_RACE_ROUNDS") or (60 if SOAK else 8))
THREADS = 6
OPS = 10
PROVIDER_NAMES = ["sandbox", "stripe", "alipay", "wechatpay"]
# Orders of 3 units or more are held for review when paid (so approve and reject have work to do).
RISK = RiskRules(large_amount=3 * PRICE, max_large_payments=1, window_seconds=3600)
OPERATIONS = {  # name: weight
    "pay": 8, "pay_twice": 2, "pay_wrong_amount": 1, "pay_wrong_provider": 1, "redeliver": 3,
    "cancel_customer": 2, "cancel_operator": 1, "refund_amount": 3, "refund_amount_restock": 1,
    "refund_lines": 4, "refund_full": 3, "retry_refund": 2, "ship": 3, "approve": 2, "reject": 1,
    "expire": 2, "deliver_restocks": 2,
}


class Round:
    def __init__(self, ports, fakes, monkeypatch, number: int):
        self.ports, self.number = ports, number
        self.store = ports.store
        self.books = Books(fakes, self.store, monkeypatch)
        self.queue = ports.restock_queue = QueuedRestocks()
        self.lock = threading.Lock()
        self.sent: list[Webhook] = []
        self.undelivered: list[Webhook] = []
        self.refund_calls: list[dict] = []
        self.outcomes: Counter = Counter()
        self.errors: list[str] = []  # unexpected exceptions: bugs
        self.moments: dict[str, None] = {}  # invariant violations seen while the threads ran
        self.keys = 0
        rng = random.Random(90_000 + number)
        self.codes = [f"PR{number}-A", f"PR{number}-B", f"PR{number}-C"]
        plans = []
        for n in range(4):
            chosen = rng.sample(self.codes, rng.choice([1, 2]))
            plans.append([(code, rng.choice([1, 2])) for code in chosen])
        demand = Counter()
        for items in plans:
            demand.update(dict(items))
        for code in self.codes[:2]:  # exactly what the orders reserve: a late payment finds stock only if freed
            stock_up(ports, code, max(demand[code], 1))
        stock_up(ports, self.codes[2], 2, "deduct_on_payment")
        self.orders: list[tuple[str, str]] = []  # (order id, customer)
        for n, items in enumerate(plans):
            provider = PROVIDER_NAMES[(number + n) % len(PROVIDER_NAMES)]
            customer = f"r{number}c{n}"
            placed = place(ports, customer, f"r{number}k{n}", items, provider, window_seconds=0 if n < 3 else 900)
            self.orders.append((placed.order_id, customer))
        self.order_ids = [o for o, _ in self.orders]
        for order_id in self.order_ids[:2]:  # two start paid (or held), so refunds, cancels, shipments race at once
            order = self.store.get_order(order_id)
            self.send(order_id, order.payment_provider, order.total.amount, "prepay")

    # -- bookkeeping
    def key(self, prefix: str) -> str:
        with self.lock:
            self.keys += 1
            return f"{prefix}-{self.number}-{self.keys}"

    def count(self, op: str, outcome: str) -> None:
        with self.lock:
            self.outcomes[f"{op}:{outcome}"] += 1

    def deliver(self, webhook: Webhook, op: str) -> None:
        try:
            self.count(op, webhook.deliver(self.ports, RISK))
        except (DomainError, ProviderError) as error:
            self.count(op, type(error).__name__)
            with self.lock:
                self.undelivered.append((webhook, repr(error)))  # the provider will send it again

    def send(self, order_id: str, provider: str, amount: int, op: str, twice: bool = False) -> None:
        webhook = Webhook(self.books, provider, order_id, Money(amount, "USD"))
        with self.lock:
            self.sent.append(webhook)
        for _ in range(2 if twice else 1):
            self.deliver(webhook, op)

    # -- the operations
    def operate(self, rng: random.Random, op: str) -> None:
        order_id, customer = rng.choice(self.orders)
        order = self.store.get_order(order_id)
        provider = self.books.provider(order.payment_provider)
        total = order.total.amount
        if op in ("pay", "pay_twice"):
            self.send(order_id, order.payment_provider, total, op, twice=op == "pay_twice")
        elif op == "pay_wrong_amount":
            self.send(order_id, order.payment_provider, total + rng.choice([-1, 1]), op)
        elif op == "pay_wrong_provider":
            other = rng.choice([p for p in PROVIDER_NAMES if p != order.payment_provider])
            self.send(order_id, other, total, op)
        elif op == "redeliver":
            with self.lock:
                earlier = rng.choice(self.sent) if self.sent else None
            if earlier is not None:
                self.deliver(earlier, op)
        elif op in ("cancel_customer", "cancel_operator"):
            by_customer = op == "cancel_customer"
            payments.cancel(self.ports, self.books.provider_for, order_id,
                            actor=f"customer:{customer}" if by_customer else "admin:ops",
                            reason="cancelled_by_customer" if by_customer else "cancelled_by_operator",
                            customer_id=customer if by_customer else None)
            self.count(op, "ok")
        elif op.startswith("refund_") or op == "retry_refund":
            if op == "retry_refund":
                with self.lock:
                    if not self.refund_calls:
                        return
                    request = dict(rng.choice(self.refund_calls))
            else:
                lines = None
                amount = None
                restock = rng.random() < 0.5
                if op == "refund_amount":
                    amount, restock = rng.randint(1, total), False
                elif op == "refund_amount_restock":  # which units come back is not said: 422
                    amount, restock = rng.randint(1, 50), True
                elif op == "refund_lines":
                    line = rng.choice(order.lines)
                    lines = [(line.sku, rng.randint(1, line.quantity))]
                    amount = rng.choice([None, rng.randint(1, 100)])
                request = {"order_id": order_id, "amount": amount, "lines": lines, "restock": restock,
                           "key": self.key("rf"), "actor": rng.choice(["admin:ops", "admin:other"])}
                with self.lock:
                    self.refund_calls.append(request)
            payments.refund_order(self.ports, self.books.provider(self.store.get_order(request["order_id"])
                                                                  .payment_provider),
                                  request["order_id"], amount=request["amount"], lines=request["lines"],
                                  restock=request["restock"], reason="operator refund", key=request["key"],
                                  actor=request["actor"])
            self.count(op, "ok")
        elif op == "ship":
            units = {order.lines[0].sku: 1} if rng.random() < 0.4 else None
            fulfilment.ship_order(self.ports, order_id, units=units, carrier=None, tracking_number=None,
                                  key=self.key("sh"), actor="admin:warehouse")
            self.count(op, "ok")
        elif op == "approve":
            payments.approve_held(self.ports, order_id, actor="admin:risk")
            self.count(op, "ok")
        elif op == "reject":
            payments.reject_held(self.ports, provider, order_id, actor="admin:risk")
            self.count(op, "ok")
        elif op == "expire":
            self.count(op, "expired" if expire_order(self.ports, order_id) else "nothing to do")
        elif op == "deliver_restocks":
            self.count(op, str(deliver_restocks(self.ports, self.queue)))
        else:
            raise AssertionError(op)

    def worker(self, seed: int) -> None:
        rng = random.Random(seed)
        names, weights = zip(*OPERATIONS.items())
        for _ in range(OPS):
            op = rng.choices(names, weights)[0]
            try:
                self.operate(rng, op)
            except (DomainError, ProviderError) as error:
                status = getattr(error, "status", "provider")
                self.count(op, f"{type(error).__name__}({status})")
            except Exception:  # noqa: BLE001 - a bug: collected and reported
                with self.lock:
                    self.errors.append(f"{op}: {traceback.format_exc(limit=6)}")

    def observe(self, done: threading.Event) -> None:
        """Per-order money rules hold at every moment, not only once the round settled."""
        while not done.is_set():
            for order_id in self.order_ids:
                try:
                    order = self.store.get_order(order_id)
                except Exception:  # noqa: BLE001 - a read failing under load is not what this checks
                    continue
                for problem in money_violations(order):
                    with self.lock:
                        self.moments.setdefault(f"while running: {problem}", None)
            time.sleep(0.02)

    def run(self) -> None:
        done = threading.Event()
        observer = threading.Thread(target=self.observe, args=(done,), daemon=True)
        workers = [threading.Thread(target=self.worker, args=(1_000 * self.number + n,), daemon=True)
                   for n in range(THREADS)]
        observer.start()
        for t in workers:
            t.start()
        for t in workers:
            t.join(120)
        done.set()
        observer.join(10)
        assert not any(t.is_alive() for t in workers), "a worker is stuck"

    def settle(self) -> None:
        """What the providers, the sweeper and the restock consumer do after the burst."""
        for _ in range(5):
            with self.lock:
                retry, self.undelivered = self.undelivered, []
            if not retry:
                break
            for webhook, _ in retry:
                self.deliver(webhook, "redelivered_by_provider")
        for _ in range(3):
            for order_id in self.order_ids:
                try:
                    complete_pending(self.ports, self.books, order_id)
                except (DomainError, ProviderError) as error:
                    self.count("complete_pending_refunds", type(error).__name__)
            deliver_restocks(self.ports, self.queue)

    def describe(self, problems: list[str], limit: int = 3) -> str:
        """History and refunds of the first orders named in `problems`, to see how they got there."""
        named = [o for o in self.order_ids if any(o in p for p in problems)][:limit]
        out = []
        for order_id in named:
            order = self.store.get_order(order_id)
            out.append(f"{order_id}: {order.status.value}, total {order.total.amount}, "
                       f"amount_paid {order.amount_paid}, amount_refunded {order.amount_refunded}, "
                       f"payment_status {order.payment_status}, lines "
                       f"{[(l.sku, l.quantity) for l in order.lines]}, provider {order.payment_provider}, "
                       f"providers took {self.books.taken.get(order_id, 0)} and refunded "
                       f"{self.books.refunded(order_id)}")
            out += [f"    history: {h.from_status} -> {h.to_status} by {h.actor}: {h.reason}" for h in order.history]
            out += [f"    refund {e.refund_id[:10]} {e.amount} {e.status} "
                    f"automatic={e.automatic} lines={e.lines} restocked={e.restocked} "
                    f"by {e.actor}: {e.reason}" for e in order.refunds]
            out += [f"    provider call {c['provider']} {c['refund_id'][:10]} {c['amount']} (order said: {c['intent']})"
                    for c in self.books.calls_for(order_id)]
        return "\n".join(out)

    def problems(self) -> list[str]:
        found = list(self.errors) + list(self.moments)
        for webhook, error in self.undelivered:
            found.append(f"{webhook.order_id}: a payment webhook ({webhook.provider}, {webhook.amount.amount}) is "
                         f"refused on every delivery, the money is kept without a sale or a refund: {error}")
        orders = [self.store.get_order(o) for o in self.order_ids]
        for order in orders:
            found += money_violations(order, self.books, final=True)
        found += stock_violations(self.store, self.codes, orders)
        found += self.books.intent_violations(set(self.order_ids))
        return found


def summarize(problems: list[str], examples: int = 2) -> str:
    """Violations grouped by kind (ids and figures masked), each with a count and an example or two."""
    kinds: dict[str, list[str]] = {}
    for problem in problems:
        kind = re.sub(r"\b(ord|rf)_[0-9a-z]+", r"\1_*", problem.split("\n")[0])
        kind = re.sub(r"\d+", "N", kind)
        kinds.setdefault(kind, []).append(problem)
    lines = []
    for kind, found in sorted(kinds.items(), key=lambda item: -len(item[1])):
        lines.append(f"  [{len(found)}x] {kind}")
        lines += [f"      e.g. {p}" for p in found[:examples]]
    return "\n".join(lines)


def test_random_concurrent_operations_keep_money_and_stock_invariants(ddb_ports, provider_fakes, monkeypatch):
    started = time.monotonic()
    totals: Counter = Counter()
    for number in range(ROUNDS):
        shop_round = Round(ddb_ports, provider_fakes, monkeypatch, number)
        shop_round.run()
        shop_round.settle()
        totals.update(shop_round.outcomes)
        problems = shop_round.problems()
        if problems:
            pytest.fail(f"round {number} (seeds 90000+{number}, {1000 * number}..): {len(problems)} invariant "
                        f"violations, by kind:\n{summarize(problems)}\n"
                        f"operations: {dict(sorted(shop_round.outcomes.items()))}\n"
                        f"{shop_round.describe(problems)}", pytrace=False)
    print(f"{ROUNDS} rounds x {THREADS} threads x {OPS} operations in {time.monotonic() - started:.1f} s; "
          f"outcomes: {dict(sorted(totals.items()))}")
