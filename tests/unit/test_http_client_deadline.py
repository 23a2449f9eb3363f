"""The provider client's overall deadline: retries and pauses included, a silent provider costs at most
DEADLINE_S, so the Lambda that calls it (its timeout is checked in tests/deploy) answers before it times out."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from shop.payments import http_client
from shop.payments.base import ProviderError


@pytest.fixture
def silent_server():
    """Accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/v1/charges"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_a_silent_provider_costs_at_most_the_deadline(silent_server, monkeypatch):
    monkeypatch.setattr(http_client, "DEADLINE_S", 1.2)
    monkeypatch.setattr(http_client, "MIN_ATTEMPT_S", 0.2)
    started = time.monotonic()
    with pytest.raises(ProviderError):
        http_client.request("POST", silent_server, body=b"{}")
    elapsed = time.monotonic() - started
    # Without the deadline: 3 attempts x TIMEOUT_S (5 s) and the pauses, over 15 s. The slack is wide so that a
    # loaded CI machine (scheduling delays, not the client) cannot fail it.
    assert elapsed <= 1.2 + 2.5, elapsed


def test_the_deadline_bounds_the_worst_case_below_the_attempts_timeouts():
    assert http_client.DEADLINE_S < http_client.ATTEMPTS * http_client.TIMEOUT_S
