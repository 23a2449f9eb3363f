"""At most once per event, recipient and channel, on DynamoDB Local: the same event handled by many workers at
once (SQS redelivery overlapping a slow first delivery, a duplicate publish replayed) sends each message once."""

from __future__ import annotations

import os
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from shop.adapters.notifications import DynamoNotificationStore
from shop.domain.notifications import EMAIL, IN_APP, OPERATORS, SMS, Preferences
from shop.domain.orders import Order
from shop.services.notifications import DomainEvent, NotifyPorts, NotSent, notify
from shop.services.ports import Ports
from tests.services_contract import Shop

pytestmark = pytest.mark.ddblocal
WORKERS = 8


class CountingChannels:
    def __init__(self, fail_sms_first: bool = False) -> None:
        self.lock = threading.Lock()
        self.sent: Counter[str] = Counter()
        self.fail_sms = fail_sms_first

    def enabled(self, channel: str) -> bool:
        return True

    def _count(self, channel: str) -> str:
        with self.lock:
            self.sent[channel] += 1
            return f"m-{channel}-{self.sent[channel]}"

    def send_email(self, to: str, subject: str, body: str) -> str:
        return self._count(EMAIL)

    def send_sms(self, phone: str, body: str) -> str:
        with self.lock:
            if self.fail_sms:
                self.fail_sms = False
                raise NotSent("Throttling")
        return self._count(SMS)

    def publish_operators(self, subject: str, body: str, detail_type: str) -> str:
        return self._count(OPERATORS)


class Orders:
    def __init__(self, order: Order) -> None:
        self.order = order

    def get_order(self, order_id: str) -> Order | None:
        return self.order if order_id == self.order.order_id else None


@pytest.fixture
def held_order(ddb_ports: Ports, monkeypatch: pytest.MonkeyPatch) -> tuple[Order, DynamoNotificationStore]:
    shop = Shop(ddb_ports.store, monkeypatch)
    shop.sku("A", 5)
    order = shop.order(shop.place([("A", 1)]).order_id)
    store = DynamoNotificationStore(os.environ["TABLE_NAME"])
    store.save_preferences(order.customer_id, Preferences(email="ada@example.com", phone="+4915112345678"))
    return order, store


def test_the_same_event_handled_concurrently_sends_each_message_once(held_order) -> None:
    order, store = held_order
    channels = CountingChannels()
    ports = NotifyPorts(orders=Orders(order), store=store, channels=channels)
    # order.on_hold: the customer's in-app message and the operators' topic; order.paid: in-app, e-mail and SMS.
    events = [DomainEvent("evt-hold-1", "order.on_hold", "2026-11-30T09:00:00Z", {"order_id": order.order_id,
                                                                                 "reason": "review"}),
              DomainEvent("evt-paid-1", "order.paid", "2026-11-30T09:00:01Z", {"order_id": order.order_id})]
    start = threading.Barrier(WORKERS * len(events))

    def deliver(event: DomainEvent) -> dict[str, str]:
        start.wait()
        return notify(ports, event)

    with ThreadPoolExecutor(WORKERS * len(events)) as pool:
        outcomes = list(pool.map(deliver, [e for e in events for _ in range(WORKERS)]))
    assert channels.sent == Counter({OPERATORS: 1, EMAIL: 1, SMS: 1})
    won = Counter(channel for result in outcomes for channel, outcome in result.items() if outcome == "sent")
    assert won == Counter({f"{IN_APP}:customer": 2, f"{OPERATORS}:operators": 1, f"{EMAIL}:customer": 1,
                           f"{SMS}:customer": 1})
    inbox, _ = store.inbox(order.customer_id, 10, None)
    assert [m["type"] for m in inbox] == ["order.paid", "order.on_hold"]


def test_a_send_that_certainly_failed_is_sent_by_the_redelivery_and_nothing_else_twice(held_order) -> None:
    order, store = held_order
    channels = CountingChannels(fail_sms_first=True)
    ports = NotifyPorts(orders=Orders(order), store=store, channels=channels)
    event = DomainEvent("evt-paid-2", "order.paid", "2026-11-30T09:00:02Z", {"order_id": order.order_id})
    with pytest.raises(NotSent):
        notify(ports, event)
    assert channels.sent == Counter({EMAIL: 1})
    with ThreadPoolExecutor(WORKERS) as pool:  # redelivered, several times at once
        list(pool.map(lambda _: notify(ports, event), range(WORKERS)))
    assert channels.sent == Counter({EMAIL: 1, SMS: 1})
    assert len(store.inbox(order.customer_id, 10, None)[0]) == 1
