"""In-memory adapters written from the ports' protocols (the cosmicpython style): services run on them in
milliseconds. mypy checks each against its protocol (`fake_ports` below, and `_PROVIDER`)."""

from __future__ import annotations

from shop.payments.base import PaymentProvider
from shop.services.ports import Ports
from tests.fakes.channels import (
    FakeEvidence,
    QueuedRestocks,
    RecordingEvents,
    RecordingReleaseQueue,
    RecordingWindows,
)
from tests.fakes.provider import FakeProvider
from tests.fakes.store import InMemoryStore

__all__ = ["FakeEvidence", "FakeProvider", "InMemoryStore", "QueuedRestocks", "RecordingEvents", "RecordingReleaseQueue",
           "RecordingWindows", "fake_ports"]

_PROVIDER: PaymentProvider = FakeProvider()  # the fake provider is a complete PaymentProvider


def fake_ports() -> Ports:
    """Every port on its in-memory fake (typed: mypy proves each fake implements its protocol)."""
    return Ports(store=InMemoryStore(), events=RecordingEvents(), windows=RecordingWindows(),
                 release_queue=RecordingReleaseQueue(), restock_queue=QueuedRestocks(), evidence=FakeEvidence())
