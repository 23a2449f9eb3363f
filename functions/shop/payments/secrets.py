"""Provider secrets: Secrets Manager when deployed (cached per container), environment variables locally.

Secret `{PAYMENT_SECRET_PREFIX}{provider}` holds a JSON object with the same keys as the
environment variables listed per provider (e.g. {"STRIPE_WEBHOOK_SECRET": "whsec_..."}).
"""

from __future__ import annotations

import json
import os
import threading
import time

from shop.payments.base import ProviderNotConfigured

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
    if not value or not isinstance(value, str):
        # A configuration error, not an outage: 503 provider-not-configured, no Retry-After, a metric and an alarm.
        raise ProviderNotConfigured(provider, key)
    return value


def _from_secrets_manager(provider: str) -> dict[str, str]:
    with _lock:
        cached = _cache.get(provider)
        if cached and cached[0] > time.monotonic():
            return cached[1]
    from botocore.exceptions import ClientError

    from shop.adapters.aws import client

    name = os.environ.get("PAYMENT_SECRET_PREFIX", "shop/payments/") + provider
    try:
        values = json.loads(client("secretsmanager").get_secret_value(SecretId=name)["SecretString"])
    except ClientError as error:
        # No such secret: nobody configured it. Anything else (throttling,
        # access, the service not answering) stays an AWS error: 503 with Retry-After.
        if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            raise ProviderNotConfigured(provider, f"secret {name}") from None
        raise
    except (KeyError, ValueError):  # a binary secret, or one that is not JSON
        raise ProviderNotConfigured(provider, f"secret {name} (not a JSON object)") from None
    if not isinstance(values, dict):
        raise ProviderNotConfigured(provider, f"secret {name} (not a JSON object)")
    with _lock:
        _cache[provider] = (time.monotonic() + CACHE_SECONDS, values)
    return values
