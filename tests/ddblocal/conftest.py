"""A fresh table in the session's DynamoDB Local for each test, with real store and fake side channels."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from shop.adapters import aws, wiring
from shop.adapters.dynamo_store import DynamoShopStore
from shop.adapters.table_schema import create_table_kwargs
from shop.services.ports import Ports


@dataclass
class Recorder:
    """Stands in for EventBridge and Step Functions; remembers what was sent."""

    calls: list[tuple[str, Any]] = field(default_factory=list)

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        self.calls.append((detail_type, detail))

    def open(self, order_id: str, expires_at: str) -> None:
        self.calls.append(("open", order_id))

    def request_release(self, order_id: str, reason: str) -> None:
        self.calls.append(("release", order_id))

    def request_hold_release(self, hold_id: str) -> None:
        self.calls.append(("release_hold", hold_id))


@pytest.fixture
def ddb_ports(dynamodb_local, monkeypatch) -> Ports:
    table = f"shop-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_local.endpoint_url)
    monkeypatch.setenv("TABLE_NAME", table)
    aws.reset_clients()
    wiring.reset()
    boto3.client("dynamodb", endpoint_url=dynamodb_local.endpoint_url).create_table(**create_table_kwargs(table))
    recorder = Recorder()
    yield Ports(store=DynamoShopStore(table), events=recorder, windows=recorder, release_queue=recorder)
    aws.reset_clients()
    wiring.reset()


@pytest.fixture(scope="session")
def provider_fakes():
    """The local run's provider fakes on their own loopback port, with the functions' env pointing at them."""
    import os

    from localrun.fake_providers import FakeProviders
    from tests.loopback import serve_fakes

    holder: dict = {}
    server, base = serve_fakes(holder)
    fakes = holder["fakes"] = FakeProviders(base)
    saved = {k: os.environ.get(k) for k in fakes.function_env()}
    os.environ.update(fakes.function_env())
    yield fakes
    server.shutdown()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
