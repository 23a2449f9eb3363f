"""Provider secrets: Secrets Manager when deployed (cached per container), environment variables locally.

Secret `{PAYMENT_SECRET_PREFIX}{provider}` holds a JSON object with the same keys as the
environment variables listed per provider (e.g. {"STRIPE_WEBHOOK_SECRET": "whsec_..."}).
"""

from __future__ import annotations

import json
import os
import threading
import time

from shop.payments.base import ProviderError

_cache: dict[str, tuple[float, dict[str, str]]] = {}
_lock = threading.Lock()
CACHE_SECONDS = 300


def provider_secret(provider: str, key: str, default: str | None = None) -> str:
    """`default` is a local-run value only: from Secrets Manager every key must be present, so a
    deployment can never fall back to a publicly documented development secret."""
    if os.environ.get("PAYMENT_SECRETS_SOURCE") == "secretsmanager":
        value = _from_secrets_manager(provider).get(key)
    else:
        value = os.environ.get(key, default)
    if not value:
        raise ProviderError(f"payment setting {key} is not configured")  # 5xx: the provider retries later
    return value


def _from_secrets_manager(provider: str) -> dict[str, str]:
    with _lock:
        cached = _cache.get(provider)
        if cached and cached[0] > time.monotonic():
            return cached[1]
    from shop.adapters.aws import client

    name = os.environ.get("PAYMENT_SECRET_PREFIX", "shop/payments/") + provider
    values = json.loads(client("secretsmanager").get_secret_value(SecretId=name)["SecretString"])
    with _lock:
        _cache[provider] = (time.monotonic() + CACHE_SECONDS, values)
    return values
