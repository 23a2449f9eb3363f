"""The service-level tests (tests/services_contract.py) on DynamoDB Local: the same bodies as on the in-memory
fake (tests/unit/test_services_fake_store.py), so a behaviour the fake gets wrong fails on one side only."""

from __future__ import annotations

import pytest

from shop.services.ports import Ports
from tests.services_contract import ServiceContract, Shop
from tests.stock_events_contract import StockEventContract

pytestmark = pytest.mark.ddblocal


@pytest.fixture
def shop(ddb_ports: Ports, monkeypatch: pytest.MonkeyPatch) -> Shop:
    return Shop(ddb_ports.store, monkeypatch)


class TestServicesOnDynamoDBLocal(ServiceContract):
    pass


class TestStockEventsOnDynamoDBLocal(StockEventContract):
    """stock.low / stock.sold_out on every downward crossing (tests/stock_events_contract.py) on DynamoDB Local."""
