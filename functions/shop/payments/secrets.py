"""Provider secrets: Secrets Manager when deployed (cached per container), environment variables locally.

Secret `{PAYMENT_SECRET_PREFIX}{provider}` holds a JSON object with the same keys as the
environment variables listed per provider (e.g. {"STRIPE_WEBHOOK_SECRET": "whsec_..."}).
"""

from __future__ import annotations

import json
import threading
import time

from shop.payments.base import ProviderNotConfigured
from shop.settings import get_settings

_cache: dict[str, tuple[float, dict[str, str]]] = {}
_lock = threading.Lock()
CACHE_SECONDS = 300


# The local run's values of the keys that have one (localrun/fake_providers.py takes the same; the keys pairs are
# generated there). Never used with Secrets Manager: there every key must be present, so a deployment can never
# fall back to a publicly documented development secret.
LOCAL_DEFAULTS: dict[str, str] = {
    "STRIPE_SECRET_KEY": "sk_test_local",
    "STRIPE_WEBHOOK_SECRET": "whsec_local_dev_secret",
    "SANDBOX_WEBHOOK_SECRET": "sandbox_local_secret",
    "ALIPAY_APP_ID": "2021000000000000",
    "WECHATPAY_MCH_ID": "1900000001",
    "WECHATPAY_APP_ID": "wxlocal0000000000",
    "WECHATPAY_MERCHANT_SERIAL": "LOCALMERCHANT",
}


def provider_secret(provider: str, key: str) -> str:
    """Key `key` of `provider`: from its Secrets Manager secret `{PAYMENT_SECRET_PREFIX}{provider}` when deployed,
    else from the environment (through Settings) or LOCAL_DEFAULTS."""
    settings = get_settings()
    return _secret(provider, key, settings.payment_secret_prefix, settings.provider_keys, LOCAL_DEFAULTS)


# The carriers' (shop.carriers): only the sandbox carrier has a local default; the local run sets the others.
CARRIER_LOCAL_DEFAULTS: dict[str, str] = {"SANDBOX_CARRIER_WEBHOOK_SECRET": "sandbox_carrier_local_secret"}


def carrier_secret(carrier: str, key: str) -> str:
    """Key `key` of `carrier`, like provider_secret: Secrets Manager `{CARRIER_SECRET_PREFIX}{carrier}` when deployed,
    else the environment (through Settings) or CARRIER_LOCAL_DEFAULTS."""
    settings = get_settings()
    return _secret(carrier, key, settings.carrier_secret_prefix, settings.carrier_keys, CARRIER_LOCAL_DEFAULTS)


def _secret(owner: str, key: str, prefix: str, environment: dict[str, str], local_defaults: dict[str, str]) -> str:
    """Key `key` of `owner` (a provider or a carrier): Secrets Manager `{prefix}{owner}` when deployed, else
    `environment` (the keys the environment sets) or `local_defaults`."""
    if get_settings().payment_secrets_source == "secretsmanager":
        value = _from_secrets_manager(owner, prefix).get(key)
    else:
        # Set but empty: missing (the local default applies only to a key the environment does not set).
        value = environment[key] if key in environment else local_defaults.get(key)
    if not value or not isinstance(value, str):
        # A configuration error, not an outage: 503 provider-not-configured, no Retry-After, a metric and an alarm.
        raise ProviderNotConfigured(owner, key)
    return value


def _from_secrets_manager(provider: str, prefix: str) -> dict[str, str]:
    with _lock:
        cached = _cache.get(prefix + provider)
        if cached and cached[0] > time.monotonic():
            return cached[1]
    from botocore.exceptions import ClientError

    from shop.adapters.aws import client

    name = prefix + provider
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
        _cache[prefix + provider] = (time.monotonic() + CACHE_SECONDS, values)
    return values
