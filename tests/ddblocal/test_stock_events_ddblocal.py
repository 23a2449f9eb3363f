"""tests/stock_events_contract.py on DynamoDB Local."""

from __future__ import annotations

import pytest

from shop.services.ports import Ports
from tests.services_contract import Shop
from tests.stock_events_contract import StockEventContract

pytestmark = pytest.mark.ddblocal


@pytest.fixture
def shop(ddb_ports: Ports, monkeypatch: pytest.MonkeyPatch) -> Shop:
    return Shop(ddb_ports.store, monkeypatch)


class TestStockEventsOnDynamoDBLocal(StockEventContract):
    pass
