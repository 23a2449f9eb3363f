"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def provider_env(request, monkeypatch):
    """The provider keys of the test module's KEYS (a localrun ProviderKeys) in the environment, as the local run
    sets them, a webhook base URL, and keys read from the environment (not Secrets Manager)."""
    for key, value in request.module.KEYS.function_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PAYMENT_WEBHOOK_BASE_URL", "https://shop.example/")
    monkeypatch.delenv("PAYMENT_SECRETS_SOURCE", raising=False)
