"""One reader of the environment: shop.settings.Settings (issue 15 item 6)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from shop.settings import PROVIDER_NAMES, Settings, get_settings

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
READS_ENVIRONMENT = re.compile(r"\bos\.environ\b|\bgetenv\b|\benviron\.get\b")


def test_nothing_in_functions_reads_the_environment_but_settings():
    """A new setting is a Settings field declared in the manifest, never an os.environ read in the code."""
    readers = [f"{path.relative_to(FUNCTIONS)}:{n}" for path in FUNCTIONS.rglob("*.py")
               if path.name != "settings.py" or path.parent.name != "shop"
               for n, line in enumerate(path.read_text().splitlines(), 1) if READS_ENVIRONMENT.search(line)]
    assert readers == []


def test_defaults_and_variables():
    settings = Settings.from_environ({})
    assert settings.payment_window_seconds == 900 and settings.max_payment_window_seconds == 3600
    assert settings.payment_secrets_source == "environment"
    assert settings.enabled_providers() == frozenset(PROVIDER_NAMES)
    given = Settings.from_environ({"PAYMENT_WINDOW_SECONDS": "7200", "MAX_PAYMENT_WINDOW_SECONDS": "",
                                   "CORS_ALLOWED_ORIGINS": "https://a.example/, https://b.example",
                                   "ALIPAY_NOTIFY_URL": "https://hooks.example/alipay", "STRIPE_CURRENCIES": "USD",
                                   "STRIPE_WEBHOOK_SECRET": "whsec_x", "PAYMENT_PROVIDERS_ENABLED": ""})
    assert given.payment_window_seconds == 7200
    assert given.max_payment_window_seconds == 7200  # never below the default window; empty: the default
    assert given.allowed_origins() == ["https://a.example", "https://b.example"]
    assert given.notify_urls == {"alipay": "https://hooks.example/alipay"} and given.currencies == {"stripe": "USD"}
    assert given.provider_keys == {"STRIPE_WEBHOOK_SECRET": "whsec_x"}
    assert given.enabled_providers() == frozenset()  # set but empty: none (a deployment never falls back to all)
    assert "whsec_x" not in repr(given)  # settings may be logged; provider keys never are


def test_to_environ_round_trips():
    settings = Settings.from_environ({"TABLE_NAME": "t", "RISK_LARGE_AMOUNT": "5", "WECHATPAY_CURRENCIES": "*",
                                      "ALIPAY_APP_ID": "app"})
    assert Settings.from_environ(settings.to_environ()) == settings
    assert settings.to_environ(("table_name", "currencies")) == {"TABLE_NAME": "t", "WECHATPAY_CURRENCIES": "*"}


def test_a_malformed_number_is_refused_naming_the_variable():
    with pytest.raises(ValidationError, match="RISK_WINDOW_SECONDS"):
        Settings.from_environ({"RISK_WINDOW_SECONDS": "soon"})


def test_get_settings_follows_the_environment(monkeypatch):
    monkeypatch.setenv("SWEEP_GRACE_SECONDS", "5")
    assert get_settings().sweep_grace_seconds == 5
    monkeypatch.setenv("SWEEP_GRACE_SECONDS", "6")
    assert get_settings().sweep_grace_seconds == 6
    assert get_settings() is get_settings()  # built once per environment


def test_the_providers_are_the_registry_s():
    from shop.payments.registry import PROVIDERS

    assert set(PROVIDERS) == set(PROVIDER_NAMES)


def test_the_manifest_names_settings_that_exist_and_calls_on_known_resources():
    from shop.manifest import FUNCTIONS, QUEUES, RESOURCE_SETTINGS

    for spec in FUNCTIONS.values():
        assert set(spec.all_settings) <= set(Settings.model_fields), spec.name
        assert spec.aws_calls, spec.name  # every function touches something: said, not assumed
    for fields in RESOURCE_SETTINGS.values():
        assert set(fields) <= set(Settings.model_fields)
    for queue in QUEUES:  # a new queue needs its URL setting
        assert Settings.env_names(queue.setting) == (queue.env_var,), queue.name
        assert queue.resource in RESOURCE_SETTINGS


def test_function_environment_sets_only_what_the_function_reads():
    from shop.settings import function_environment

    values = {"table_name": "t", "cors_allowed_origins": "https://a.example", "sweep_grace_seconds": "5"}
    assert function_environment("catalog_api", values) == {"TABLE_NAME": "t", "CORS_ALLOWED_ORIGINS": "https://a.example"}
    assert function_environment("expiry_sweeper", values) == {"TABLE_NAME": "t", "SWEEP_GRACE_SECONDS": "5"}
    with pytest.raises(ValueError, match="no such settings"):
        function_environment("restock", {"tabel_name": "t"})
