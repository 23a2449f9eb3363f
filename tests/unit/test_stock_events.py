"""tests/stock_events_contract.py on the in-memory fake store."""

from __future__ import annotations

import pytest

from tests.fakes import InMemoryStore
from tests.services_contract import Shop
from tests.stock_events_contract import StockEventContract


@pytest.fixture
def shop(monkeypatch: pytest.MonkeyPatch) -> Shop:
    return Shop(InMemoryStore(), monkeypatch)


class TestStockEventsOnFakeStore(StockEventContract):
    pass
