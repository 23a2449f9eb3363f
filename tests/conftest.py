"""Shared fixtures: AWS-free settings by default, DynamoDB Local once per session when asked."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "functions"))

# No test ever talks to real AWS.
os.environ.update({
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "shop",
    "POWERTOOLS_METRICS_NAMESPACE": "shop-tests",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "POWERTOOLS_TRACE_DISABLED": "true",
})
for _var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
    os.environ.pop(_var, None)
# Nor to a real payment provider: unless a test points them at the fakes, provider calls fail fast.
os.environ.update({
    "STRIPE_API_BASE": "http://127.0.0.1:9/no-real-stripe",
    "ALIPAY_GATEWAY": "http://127.0.0.1:9/no-real-alipay",
    "WECHATPAY_API_BASE": "http://127.0.0.1:9/no-real-wechatpay",
})


def pytest_collection_modifyitems(config, items):
    if os.environ.get("SOAK"):
        return
    skip = pytest.mark.skip(reason="soak profile: run with `make soak`")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def dynamodb_local():
    """One DynamoDB Local JVM for the whole session (the official engine, safe under concurrency)."""
    from localrun.dynamodb_local import DynamoDBLocal, ensure_installed

    ensure_installed()
    server = DynamoDBLocal()
    server.start()
    yield server
    server.stop()
