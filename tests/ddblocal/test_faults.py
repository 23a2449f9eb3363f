"""Fault injection on every write path (DynamoDB Local): throttling, transaction conflicts, timeouts, 5xx,
and a lost answer after a successful commit (the process 'dying' between commit and reply).
Each path must end consistent: done exactly once, or cleanly not done, never half."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from shop.domain import clock
from shop.domain.money import Money
from shop.payments.base import PaymentEvent
from shop.payments.sandbox import SandboxProvider
from shop.services import catalog, payments
from shop.services.orders import expire_order
from shop.services.restock import RestockRequest, apply_restock
from shop.services.risk import RiskRules
from tests.ddblocal.test_contention import assert_ledger_matches, order, stock_up

pytestmark = pytest.mark.ddblocal
INJECTED = Counter()
NO_RISK = RiskRules(large_amount=10**12, max_large_payments=99, window_seconds=1)


def client_error(code: str, reasons=None) -> ClientError:
    response = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": 400}}
    if reasons:
        response["CancellationReasons"] = reasons
    return ClientError(response, "TransactWriteItems")


FAULTS = {
    "throttled": lambda: client_error("ThrottlingException"),
    "conflict": lambda: client_error("TransactionCanceledException", [{"Code": "TransactionConflict"}]),
    "server_error": lambda: client_error("InternalServerError"),
    "timeout": lambda: ReadTimeoutError(endpoint_url="http://dynamodb"),
}


class FaultyDynamoDB:
    """Wraps the store's client: the next calls of `operation` fail as planned."""

    def __init__(self, real):
        self.real = real
        self.plan: list[tuple[str, str, bool]] = []  # (operation, fault, after the real call)

    def fail(self, operation: str, fault: str, after: bool = False, times: int = 1) -> None:
        self.plan += [(operation, fault, after)] * times

    def __getattr__(self, name):
        real = getattr(self.real, name)

        def call(*args, **kwargs):
            for i, (operation, fault, after) in enumerate(self.plan):
                if operation == name:
                    del self.plan[i]
                    INJECTED[fault + ("_after_commit" if after else "")] += 1
                    if after:
                        real(*args, **kwargs)  # it happened; only the answer is lost
                    raise FAULTS[fault]()
            return real(*args, **kwargs)

        return call


@pytest.fixture
def faulty(ddb_ports):
    ddb_ports.store.db = FaultyDynamoDB(ddb_ports.store.db)
    return ddb_ports


CASES = [(fault, after) for fault in FAULTS for after in (False,)] + [("timeout", True), ("server_error", True)]


@pytest.mark.parametrize("shards", [1, 3])
@pytest.mark.parametrize("fault, after", CASES)
def test_place_order_survives(faulty, fault, after, shards):
    stock_up(faulty, ["F-1"], on_hand=5, shards=shards)
    faulty.store.db.fail("transact_write_items", fault, after=after, times=2)
    placed = order(faulty, "alice", "k1", [("F-1", 2)])
    again = order(faulty, "alice", "k1", [("F-1", 2)])
    assert again.order_id == placed.order_id
    sku = assert_ledger_matches(faulty, "F-1")
    assert (sku.levels.reserved, sku.levels.available) == (2, 3)


@pytest.mark.parametrize("fault, after", CASES)
def test_cancel_and_expire_survive(faulty, fault, after, monkeypatch):
    stock_up(faulty, ["F-2"], on_hand=5)
    first = order(faulty, "alice", "k1", [("F-2", 2)])
    second = order(faulty, "alice", "k2", [("F-2", 1)])
    faulty.store.db.fail("transact_write_items", fault, after=after, times=2)
    assert payments.cancel(faulty, lambda name: SandboxProvider(), first.order_id, actor="customer:alice",
                           reason="cancelled_by_customer").status.value == "CANCELLED"
    faulty.store.db.fail("transact_write_items", fault, after=after)
    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() + timedelta(hours=1))  # the window is over
    assert expire_order(faulty, second.order_id).status.value == "EXPIRED"
    sku = assert_ledger_matches(faulty, "F-2")
    assert (sku.levels.reserved, sku.levels.available) == (0, 5)


@pytest.mark.parametrize("shards", [1, 3])
@pytest.mark.parametrize("fault, after", CASES)
def test_payment_refund_and_restock_survive(faulty, fault, after, provider_fakes, shards):
    stock_up(faulty, ["F-3"], on_hand=5, shards=shards)
    placed = order(faulty, "alice", "k1", [("F-3", 2)])
    queue: list[tuple] = []
    faulty.restock_queue = type("Queue", (), {"request_restock": lambda self, *a: queue.append(a)})()
    event = PaymentEvent("sandbox", "evt-1", "payment_succeeded", placed.order_id, Money(3000, "USD"), "pay-1")
    faulty.store.db.fail("transact_write_items", fault, after=after)
    assert payments.process_payment_event(faulty, SandboxProvider(), event, NO_RISK) in ("paid", "duplicate")
    assert payments.process_payment_event(faulty, SandboxProvider(), event, NO_RISK) == "duplicate"
    faulty.store.db.fail("transact_write_items", fault, after=after)
    refunded = payments.refund_order(faulty, SandboxProvider(), placed.order_id, amount=None, lines=[("F-3", 1)],
                                     restock=True, reason="t", key="r1", actor="admin:t")
    assert refunded.amount_refunded == 1500 and len(refunded.refunds) == 1
    faulty.store.db.fail("transact_write_items", fault, after=after)
    for message in [RestockRequest(*args) for args in queue]:
        apply_restock(faulty, message)
        assert apply_restock(faulty, message) is False
    faulty.store.db.fail("transact_write_items", fault, after=after)
    catalog.adjust_stock(faulty, "F-3", 2, reason="count", actor="admin:t", request_id="adj-1")
    sku = assert_ledger_matches(faulty, "F-3")
    assert sku.levels.to_dict() == {"on_hand": 6, "available": 6, "reserved": 0, "sold": 1}


def test_faults_were_injected():
    print("faults injected:", dict(INJECTED), "total", sum(INJECTED.values()))


def test_send_message_failure_after_a_refund_is_repaired_by_the_retry(ddb_ports):
    stock_up(ddb_ports, ["F-4"], on_hand=5)
    placed = order(ddb_ports, "alice", "k1", [("F-4", 2)])
    event = PaymentEvent("sandbox", "evt-1", "payment_succeeded", placed.order_id, Money(3000, "USD"), "pay-1")
    payments.process_payment_event(ddb_ports, SandboxProvider(), event, NO_RISK)
    sent: list[tuple] = []

    class FlakyQueue:
        failures = 1

        def request_restock(self, *args):
            if self.failures:
                self.failures -= 1
                INJECTED["send_message"] += 1
                raise client_error("ServiceUnavailable")
            sent.append(args)

    ddb_ports.restock_queue = FlakyQueue()
    with pytest.raises(ClientError):  # the client sees 503 and retries with the same key
        payments.refund_order(ddb_ports, SandboxProvider(), placed.order_id, amount=None, lines=None, restock=True,
                              reason="t", key="r1", actor="admin:t")
    again = payments.refund_order(ddb_ports, SandboxProvider(), placed.order_id, amount=None, lines=None,
                                  restock=True, reason="t", key="r1", actor="admin:t")
    assert again.amount_refunded == 3000 and len(again.refunds) == 1 and len(sent) == 1
    for args in sent:
        apply_restock(ddb_ports, RestockRequest(*args))
    assert assert_ledger_matches(ddb_ports, "F-4").levels.to_dict() == {"on_hand": 5, "available": 5, "reserved": 0,
                                                                         "sold": 0}


def test_event_publishing_failure_never_fails_a_committed_order(ddb_ports, monkeypatch, capsys):
    from shop.adapters import events

    class DownEventBridge:
        def put_events(self, **kwargs):
            INJECTED["put_events"] += 1
            raise client_error("InternalFailure")

    monkeypatch.setattr(events, "client", lambda service: DownEventBridge())
    stock_up(ddb_ports, ["F-5"], on_hand=5)
    ddb_ports.events = events.EventBridgePublisher("shop-events")
    placed = order(ddb_ports, "alice", "k1", [("F-5", 1)])
    assert placed.status_code == 201 and ddb_ports.store.get_order(placed.order_id) is not None
    assert INJECTED["put_events"] >= 1
    lost = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "EventsNotPublished" in line]
    assert lost and lost[0]["EventsNotPublished"] == [1.0]  # counted for the alarm, not only logged
