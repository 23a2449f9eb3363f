"""The service-level tests (tests/services_contract.py) on the in-memory fake store: no AWS, milliseconds each.
The same bodies run on DynamoDB Local in tests/ddblocal/test_services_ddblocal.py."""

from __future__ import annotations

import pytest

from tests.fakes import InMemoryStore
from tests.services_contract import ServiceContract, Shop
from tests.stock_events_contract import StockEventContract


@pytest.fixture
def shop(monkeypatch: pytest.MonkeyPatch) -> Shop:
    return Shop(InMemoryStore(), monkeypatch)


class TestServicesOnFakeStore(ServiceContract):
    pass


class TestStockEventsOnFakeStore(StockEventContract):
    """stock.low / stock.sold_out on every downward crossing (tests/stock_events_contract.py) on the fake store."""
