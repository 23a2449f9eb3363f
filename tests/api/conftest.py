"""Handler tests with moto: each API function called with the proxy event API Gateway sends."""

from __future__ import annotations

import importlib
import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from localrun.fake_providers import ProviderKeys
from localrun.gateway import match, proxy_event
from localrun.lambdas import LocalContext
from shop.adapters import aws, wiring
from shop.adapters.table_schema import create_table_kwargs
from shop.payments import secrets as payment_secrets
from shop.services import imports

TABLE = "shop-api-tests"


class Client:
    """Builds the proxy event for a request and calls the function the manifest routes it to."""

    def request(self, method: str, path: str, *, user: str | None = "alice", groups: str | None = None,
                body: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None):
        route, params, _ = match(method, path.split("?")[0])
        assert route is not None, f"no route for {method} {path}"
        sent = list((headers or {}).items())
        if user:
            sent.append(("X-Local-User", user))
        if groups:
            sent.append(("X-Local-Groups", groups))
        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        event = proxy_event(route, params, method, path, sent, payload, "127.0.0.1")
        handler = importlib.import_module(f"{route.function}.handler").lambda_handler
        result = handler(event, LocalContext(route.function))
        return Result(result)

    def admin(self, method: str, path: str, **kwargs):
        return self.request(method, path, user="operator", groups="admin", **kwargs)


class Result:
    def __init__(self, raw: dict[str, Any]):
        self.raw = raw
        self.status = raw["statusCode"]
        headers = {k.lower(): v for k, v in (raw.get("headers") or {}).items()}
        for k, values in (raw.get("multiValueHeaders") or {}).items():
            headers[k.lower()] = values[-1]
        self.headers = headers
        self.text = raw.get("body") or ""

    def json(self):
        return json.loads(self.text)


@pytest.fixture
def api(monkeypatch):
    monkeypatch.setenv("TABLE_NAME", TABLE)
    monkeypatch.setenv("PAYMENT_WINDOW_SECONDS", "900")
    for var in ("PAYMENT_WINDOW_STATE_MACHINE_ARN", "EVENT_BUS_NAME", "STOCK_RELEASE_QUEUE_URL", "RESTOCK_QUEUE_URL"):
        monkeypatch.delenv(var, raising=False)
    # Moto is not safe under concurrent writes (SPEC; a CSV import applying SKUs from a thread pool crashed it with
    # "dictionary changed size during iteration"): one SKU at a time here; tests/ddblocal runs the pool.
    monkeypatch.setattr(imports, "WORKERS", 1)
    with mock_aws():
        aws.reset_clients()
        wiring.reset()
        boto3.client("dynamodb").create_table(**create_table_kwargs(TABLE))
        yield Client()
    aws.reset_clients()
    wiring.reset()


@pytest.fixture
def queues(api, monkeypatch):
    """The stock-release and restock queues, created in moto and handed to the functions."""
    sqs = boto3.client("sqs")
    urls = {name: sqs.create_queue(QueueName=f"shop-{name}")["QueueUrl"] for name in ("stock_release", "restock")}
    monkeypatch.setenv("STOCK_RELEASE_QUEUE_URL", urls["stock_release"])
    monkeypatch.setenv("RESTOCK_QUEUE_URL", urls["restock"])
    aws.reset_clients()
    wiring.reset()
    return urls


PROVIDER_KEYS = ProviderKeys()  # test keys the local provider fakes sign with


@pytest.fixture
def provider_env(monkeypatch):
    """Every provider's settings and keys as environment variables; risk rules out of the way."""
    for key, value in PROVIDER_KEYS.function_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RISK_LARGE_AMOUNT", "10000000")
    monkeypatch.delenv("RISK_MAX_PAYMENTS_PER_IP", raising=False)
    monkeypatch.delenv("PAYMENT_SECRETS_SOURCE", raising=False)
    payment_secrets._cache.clear()
    yield
    payment_secrets._cache.clear()
