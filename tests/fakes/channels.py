"""In-memory side channels, written from the protocols in functions/shop/services/ports.py: the event bus,
the payment-window workflow, the release and restock queues, evidence uploads. Each remembers what it was sent; the restock
queue can be delivered to the consumer's use cases, as SQS would."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from shop.services import inventory
from shop.services.ports import Ports
from shop.services.restock import RestockRequest, apply_restock


@dataclass
class RecordingEvents:
    published: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        self.published.append((detail_type, detail))

    def of(self, detail_type: str) -> list[dict[str, Any]]:
        return [detail for kind, detail in self.published if kind == detail_type]


@dataclass
class RecordingWindows:
    opened: dict[str, str] = field(default_factory=dict)  # order id -> expires_at (one execution per order)

    def open(self, order_id: str, expires_at: str) -> None:
        self.opened.setdefault(order_id, expires_at)


@dataclass
class RecordingReleaseQueue:
    requests: list[tuple[str, str]] = field(default_factory=list)

    def request_release(self, order_id: str, reason: str) -> None:
        self.requests.append((order_id, reason))

    def request_hold_release(self, hold_id: str) -> None:
        self.requests.append((hold_id, "sweeper"))


@dataclass
class FakeEvidence:
    """Evidence uploads: a presigned POST and a view link per key, pointing nowhere real."""

    base: str = "https://evidence.test"

    def upload_slots(self, keys: list[str], content_types: list[str]) -> list[dict[str, Any]]:
        return [{"url": self.base, "fields": {"key": key, "Content-Type": content_type}, "key": key}
                for key, content_type in zip(keys, content_types, strict=True)]

    def view_urls(self, keys: list[str]) -> list[str]:
        return [f"{self.base}/{key}" for key in keys]


class QueuedRestocks:
    """The restock queue: messages wait until `deliver` hands them to the consumer's use cases."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.restocks: list[RestockRequest] = []
        self.rebalances: list[str] = []
        self.sent = 0

    def request_restock(self, message_id: str, sku: str, quantity: int, order_id: str | None,
                        reason: str) -> None:
        with self._lock:
            self.restocks.append(RestockRequest(message_id, sku, quantity, order_id, reason))
            self.sent += 1

    def request_rebalance(self, sku: str) -> None:
        with self._lock:
            self.rebalances.append(sku)

    def deliver(self, ports: Ports, *, twice: bool = False) -> int:
        """Apply every waiting message (each twice with `twice`, as SQS may); returns the restocks applied."""
        applied = 0
        while True:
            with self._lock:
                restocks, self.restocks = self.restocks, []
                rebalances, self.rebalances = self.rebalances, []
            if not restocks and not rebalances:
                return applied
            for message in restocks + (restocks if twice else []):
                applied += apply_restock(ports, message)
            for sku in rebalances:
                inventory.rebalance(ports, sku)
