"""Runtime settings: the one reader of the environment (set by CDK or the local run, from the manifest).

Every setting is a field of `Settings` whose alias is its environment variable; `get_settings()` builds the
object from `os.environ` and nothing else in functions/ reads the environment (Powertools reads its own
POWERTOOLS_* variables and boto3 its AWS_* ones). Each function's environment is declared in the manifest
(`shop.manifest.FunctionSpec.settings`, by field name) and CDK and the local run both set it from there.

A new setting: a field here (with its default and its variable), its name in the manifest entry of each function
that reads it, and its deployed value in infra/stack.py (`deployed_settings`) if the default is not what the
deployed stack wants.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from shop.domain.availability import AvailabilityDisplay, DisplayRule
from shop.services.ports import HoldLimits

# The payment providers (shop.payments.registry has one module each: a test checks the two lists agree). Each
# may have a `{NAME}_NOTIFY_URL` and a `{NAME}_CURRENCIES` setting.
PROVIDER_NAMES = ("sandbox", "stripe", "alipay", "wechatpay")
# Provider keys, read from the environment by the local run and the tests only: deployed, they live in one Secrets
# Manager secret per provider (PAYMENT_SECRETS_SOURCE=secretsmanager), never in the environment.
PROVIDER_SECRET_KEYS = (
    "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "SANDBOX_WEBHOOK_SECRET",
    "ALIPAY_APP_ID", "ALIPAY_APP_PRIVATE_KEY", "ALIPAY_PUBLIC_KEY",
    "WECHATPAY_MCH_ID", "WECHATPAY_APP_ID", "WECHATPAY_MERCHANT_PRIVATE_KEY", "WECHATPAY_MERCHANT_SERIAL",
    "WECHATPAY_PLATFORM_PUBLIC_KEY", "WECHATPAY_PLATFORM_SERIAL", "WECHATPAY_APIV3_KEY",
)
# Carrier keys (docs/fulfilment.md), like the provider keys: the environment locally, one Secrets Manager secret per
# carrier when deployed.
CARRIER_SECRET_KEYS = (
    "SANDBOX_CARRIER_WEBHOOK_SECRET", "KUAIDI100_CUSTOMER", "KUAIDI100_KEY", "KUAIDI100_SECRET", "KUAIDI100_SALT",
    "KUAIDI100_PARTNER_ID", "AFTERSHIP_API_KEY", "AFTERSHIP_WEBHOOK_SECRET",
)
# Settings read from a family of variables, one per provider or key: field -> variable names.
_FAMILIES: dict[str, tuple[str, ...]] = {
    "notify_urls": tuple(f"{p.upper()}_NOTIFY_URL" for p in PROVIDER_NAMES),
    "currencies": tuple(f"{p.upper()}_CURRENCIES" for p in PROVIDER_NAMES),
    "provider_keys": PROVIDER_SECRET_KEYS,
    "carrier_keys": CARRIER_SECRET_KEYS,
}


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    # Resources of the stack (CDK fills them in; the local run names its stand-ins).
    table_name: str = Field("shop", alias="TABLE_NAME")
    state_machine_arn: str = Field("", alias="PAYMENT_WINDOW_STATE_MACHINE_ARN")
    event_bus_name: str = Field("", alias="EVENT_BUS_NAME")
    stock_release_queue_url: str = Field("", alias="STOCK_RELEASE_QUEUE_URL")
    restock_queue_url: str = Field("", alias="RESTOCK_QUEUE_URL")
    notifications_queue_url: str = Field("", alias="NOTIFICATIONS_QUEUE_URL")  # EventBridge sends, the notifier reads
    courier_poll_queue_url: str = Field("", alias="COURIER_POLL_QUEUE_URL")  # the courier-poll machine sends
    service_name: str = Field("shop", alias="POWERTOOLS_SERVICE_NAME")  # Powertools' own; the function's name

    # Orders
    payment_window_seconds: int = Field(900, alias="PAYMENT_WINDOW_SECONDS", ge=0)
    max_payment_window_seconds: int = Field(3600, alias="MAX_PAYMENT_WINDOW_SECONDS", ge=0, validate_default=True)
    idempotency_ttl_seconds: int = Field(24 * 3600, alias="IDEMPOTENCY_TTL_SECONDS", ge=0)
    max_unpaid_orders_per_customer: int = Field(50, alias="MAX_UNPAID_ORDERS_PER_CUSTOMER", ge=0)  # 0: no cap
    max_unpaid_units_per_sku: int = Field(200, alias="MAX_UNPAID_UNITS_PER_SKU", ge=0)  # per customer; 0: no cap
    sweep_grace_seconds: int = Field(30, alias="SWEEP_GRACE_SECONDS", ge=0)
    # Cart holds (docs/cart-holds.md): how long a hold lasts from placement or renewal, and at most in all.
    cart_hold_seconds: int = Field(900, alias="CART_HOLD_SECONDS", ge=1, le=7 * 24 * 3600)
    cart_hold_max_seconds: int = Field(3600, alias="CART_HOLD_MAX_SECONDS", ge=1, le=7 * 24 * 3600,
                                       validate_default=True)
    cors_allowed_origins: str = Field("", alias="CORS_ALLOWED_ORIGINS")  # comma-separated; empty: CORS off
    # The shop's time zone (IANA name): a virtual SKU's daily cap resets at its midnight (docs/presale-and-virtual.md).
    shop_time_zone: str = Field("Asia/Shanghai", alias="SHOP_TIME_ZONE")

    # Finding orders (docs/finding-orders.md): the CSV export's row limit, the key of the phone digests (the local
    # run and tests: PHONE_INDEX_KEY; deployed: the Secrets Manager secret named by PHONE_INDEX_KEY_SECRET).
    csv_export_max_rows: int = Field(10_000, alias="CSV_EXPORT_MAX_ROWS", ge=1)
    phone_index_key: str = Field("", alias="PHONE_INDEX_KEY", repr=False)
    phone_index_key_secret: str = Field("", alias="PHONE_INDEX_KEY_SECRET")

    # What storefronts see of stock (shop.domain.availability): exact counts, a count only when few are left
    # (at or below the SKU's low_stock_threshold, else this shop-wide threshold), or never a count.
    availability_display: AvailabilityDisplay = Field(AvailabilityDisplay.EXACT, alias="AVAILABILITY_DISPLAY")
    availability_only_n_left_threshold: int = Field(5, alias="AVAILABILITY_ONLY_N_LEFT_THRESHOLD", ge=0, le=10**9)

    # Payments
    payment_providers_enabled: str = Field(",".join(PROVIDER_NAMES), alias="PAYMENT_PROVIDERS_ENABLED")
    # The provider of an order that names none (POST /orders without payment_provider); empty: the first enabled
    # one (the local run: sandbox; the deployed stack sets its context default_payment_provider, or the first of
    # enabled_payment_providers, so the default is always one the stack accepts).
    default_payment_provider: str = Field("", alias="DEFAULT_PAYMENT_PROVIDER")
    payment_webhook_base_url: str = Field("", alias="PAYMENT_WEBHOOK_BASE_URL")
    payment_secrets_source: str = Field("environment", alias="PAYMENT_SECRETS_SOURCE")  # or "secretsmanager"
    payment_secret_prefix: str = Field("shop/payments/", alias="PAYMENT_SECRET_PREFIX")
    notify_urls: dict[str, str] = Field(default_factory=dict)  # provider -> {PROVIDER}_NOTIFY_URL
    currencies: dict[str, str] = Field(default_factory=dict)  # provider -> {PROVIDER}_CURRENCIES
    provider_keys: dict[str, str] = Field(default_factory=dict, repr=False)  # local runs: PROVIDER_SECRET_KEYS set
    stripe_api_base: str = Field("https://api.stripe.com", alias="STRIPE_API_BASE")
    stripe_api_version: str = Field("2024-06-20", alias="STRIPE_API_VERSION")  # balance transactions
    alipay_gateway: str = Field("https://openapi.alipay.com/gateway.do", alias="ALIPAY_GATEWAY")
    alipay_return_url: str = Field("", alias="ALIPAY_RETURN_URL")
    wechatpay_api_base: str = Field("https://api.mch.weixin.qq.com", alias="WECHATPAY_API_BASE")

    # Risk rules (shop.services.risk)
    risk_large_amount: int = Field(100000, alias="RISK_LARGE_AMOUNT", ge=0)  # minor units
    risk_max_large_payments: int = Field(3, alias="RISK_MAX_LARGE_PAYMENTS", ge=0)
    risk_window_seconds: int = Field(3600, alias="RISK_WINDOW_SECONDS", ge=0)
    risk_max_payments_per_ip: int = Field(0, alias="RISK_MAX_PAYMENTS_PER_IP", ge=0)  # 0: no per-address rule

    # Notifications (shop.adapters.notifications): e-mail from this verified SES identity (empty: no e-mail), SMS
    # through SNS (on/off), the operators' SNS topic and its language.
    notify_email_from: str = Field("", alias="NOTIFY_EMAIL_FROM")
    notify_sms: str = Field("on", alias="NOTIFY_SMS")
    operator_topic_arn: str = Field("", alias="OPERATOR_TOPIC_ARN")
    operator_locale: str = Field("en", alias="OPERATOR_LOCALE")

    # Daily reconciliation
    reconciliation_grace_seconds: int = Field(900, alias="RECONCILIATION_GRACE_SECONDS", ge=0)
    reconciliation_lookback_days: int = Field(30, alias="RECONCILIATION_LOOKBACK_DAYS", ge=0)

    # After-sales (docs/after-sales.md): the evidence bucket, photo limits, how long a request may be opened.
    evidence_bucket: str = Field("", alias="EVIDENCE_BUCKET")
    after_sales_max_photos: int = Field(6, alias="AFTER_SALES_MAX_PHOTOS", ge=0, le=20)
    after_sales_photo_max_bytes: int = Field(10 * 1024 * 1024, alias="AFTER_SALES_PHOTO_MAX_BYTES", ge=1)
    after_sales_upload_expires_seconds: int = Field(900, alias="AFTER_SALES_UPLOAD_EXPIRES_SECONDS", ge=1,
                                                    le=7 * 24 * 3600)
    after_sales_days_after_delivery: int = Field(7, alias="AFTER_SALES_DAYS_AFTER_DELIVERY", ge=0)
    after_sales_days_after_shipment: int = Field(15, alias="AFTER_SALES_DAYS_AFTER_SHIPMENT", ge=0)

    # Fulfilment (docs/fulfilment.md): carriers, labels, the courier-poll loop, the confirmation period.
    courier_poll_state_machine_arn: str = Field("", alias="COURIER_POLL_STATE_MACHINE_ARN")
    label_bucket: str = Field("", alias="LABEL_BUCKET")
    label_url_seconds: int = Field(300, alias="LABEL_URL_SECONDS", ge=1, le=7 * 24 * 3600)
    carriers_enabled: str = Field("sandbox,kuaidi100,aftership", alias="CARRIERS_ENABLED")
    carrier_secret_prefix: str = Field("shop/carriers/", alias="CARRIER_SECRET_PREFIX")
    carrier_webhook_base_url: str = Field("", alias="CARRIER_WEBHOOK_BASE_URL")
    carrier_keys: dict[str, str] = Field(default_factory=dict, repr=False)  # local runs: CARRIER_SECRET_KEYS set
    sandbox_carrier_api_base: str = Field("", alias="SANDBOX_CARRIER_API_BASE")  # empty: in-process sandbox
    kuaidi100_api_base: str = Field("https://poll.kuaidi100.com", alias="KUAIDI100_API_BASE")
    kuaidi100_label_api_base: str = Field("https://api.kuaidi100.com", alias="KUAIDI100_LABEL_API_BASE")
    aftership_api_base: str = Field("https://api.aftership.com", alias="AFTERSHIP_API_BASE")
    ship_from_name: str = Field("", alias="SHIP_FROM_NAME")
    ship_from_phone: str = Field("", alias="SHIP_FROM_PHONE")
    ship_from_address: str = Field("", alias="SHIP_FROM_ADDRESS")
    courier_poll_intervals: str = Field("10800,21600,43200,86400", alias="COURIER_POLL_INTERVALS",
                                        pattern=r"^\s*[1-9][0-9]*(\s*,\s*[1-9][0-9]*)*\s*$")
    parcel_max_age_seconds: int = Field(30 * 24 * 3600, alias="PARCEL_MAX_AGE_SECONDS", ge=1)
    parcel_no_record_seconds: int = Field(3 * 24 * 3600, alias="PARCEL_NO_RECORD_SECONDS", ge=1)
    order_confirmation_seconds: int = Field(7 * 24 * 3600, alias="ORDER_CONFIRMATION_SECONDS", ge=0)

    @model_validator(mode="before")
    @classmethod
    def _empty_numbers_are_unset(cls, data: Any) -> Any:
        """`NAME=` (empty) leaves a number at its default, as the code before Settings did."""
        if isinstance(data, dict):
            numbers = {f.alias for f in cls.model_fields.values() if f.annotation in (int, "int")}
            data = {k: v for k, v in data.items() if not (k in numbers and v == "")}
        return data

    @field_validator("max_payment_window_seconds")
    @classmethod
    def _at_least_the_default_window(cls, value: int, info: ValidationInfo) -> int:
        return max(value, info.data.get("payment_window_seconds", value))

    @field_validator("availability_display", mode="before")
    @classmethod
    def _known_display(cls, value: Any) -> Any:
        """Empty: exact (the default). An unknown mode shows no counts (coarse) rather than failing every request;
        the CDK app refuses one at synth (context availability_display)."""
        text = str(value).strip().lower()
        if not text:
            return AvailabilityDisplay.EXACT
        return text if text in set(AvailabilityDisplay) else AvailabilityDisplay.COARSE

    @field_validator("cart_hold_max_seconds")
    @classmethod
    def _at_least_one_hold(cls, value: int, info: ValidationInfo) -> int:
        return max(value, info.data.get("cart_hold_seconds", value))

    @field_validator("payment_secrets_source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        return value if value == "secretsmanager" else "environment"

    @field_validator("shop_time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from shop.domain.virtual import zone

        zone(value)  # ValueError: an unknown zone is a configuration error, found at start
        return value

    @field_validator("operator_locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        return value if value in ("zh-CN", "en") else "en"

    def sms_enabled(self) -> bool:
        return self.notify_sms.strip().lower() in ("1", "on", "true", "yes")

    def availability_rule(self) -> DisplayRule:
        return DisplayRule(self.availability_display, self.availability_only_n_left_threshold)

    def hold_limits(self) -> HoldLimits:
        return HoldLimits(self.max_unpaid_orders_per_customer, self.max_unpaid_units_per_sku)

    def poll_policy(self):  # -> shop.domain.parcels.PollPolicy
        from shop.domain.parcels import PollPolicy

        return PollPolicy(intervals=tuple(int(v) for v in self.courier_poll_intervals.split(",")),
                          max_age_seconds=self.parcel_max_age_seconds, no_record_seconds=self.parcel_no_record_seconds)

    def enabled_carriers(self) -> frozenset[str]:
        return frozenset(n.strip() for n in self.carriers_enabled.split(",") if n.strip())

    def enabled_providers(self) -> frozenset[str]:
        return frozenset(n.strip() for n in self.payment_providers_enabled.split(",") if n.strip())

    def payment_provider_default(self) -> str:
        """DEFAULT_PAYMENT_PROVIDER, else the first enabled provider ("" when none is: the order gets a 422)."""
        enabled = [n.strip() for n in self.payment_providers_enabled.split(",") if n.strip()]
        return self.default_payment_provider or (enabled[0] if enabled else "")

    def allowed_origins(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.cors_allowed_origins.split(",") if o.strip()]

    @classmethod
    def env_names(cls, field: str) -> tuple[str, ...]:
        """The environment variables setting `field` is read from."""
        if field in _FAMILIES:
            return _FAMILIES[field]
        info = cls.model_fields[field]  # KeyError: no such setting
        assert info.alias is not None, field
        return (info.alias,)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        values: dict[str, Any] = {name: environ[name] for f in cls.model_fields if f not in _FAMILIES
                                  for name in cls.env_names(f) if name in environ}
        values["notify_urls"] = {p: environ[v] for p, v in zip(PROVIDER_NAMES, _FAMILIES["notify_urls"], strict=True)
                                 if environ.get(v)}
        values["currencies"] = {p: environ[v] for p, v in zip(PROVIDER_NAMES, _FAMILIES["currencies"], strict=True)
                                if environ.get(v, "").strip()}
        values["provider_keys"] = {k: environ[k] for k in PROVIDER_SECRET_KEYS if k in environ}  # "": missing
        values["carrier_keys"] = {k: environ[k] for k in CARRIER_SECRET_KEYS if k in environ}
        return cls.model_validate(values)

    def to_environ(self, fields: tuple[str, ...] | None = None) -> dict[str, str]:
        """The environment that yields these settings (of `fields`, or all): what CDK and the local run set."""
        out: dict[str, str] = {}
        for field in fields if fields is not None else tuple(type(self).model_fields):
            value = getattr(self, field)
            if field in ("provider_keys", "carrier_keys"):
                out.update(value)
            elif field in _FAMILIES:  # {PROVIDER}_NOTIFY_URL, {PROVIDER}_CURRENCIES
                suffix = _FAMILIES[field][0][len(PROVIDER_NAMES[0]):]
                out.update({f"{p.upper()}{suffix}": v for p, v in value.items()})
            else:
                out[self.env_names(field)[0]] = str(value)
        return out


def function_environment(function: str, values: Mapping[str, str]) -> dict[str, str]:
    """The variables function `function` gets: of the settings its manifest entry names (shop.manifest
    FunctionSpec.all_settings), those `values` gives (by field name; CDK's deployed values or the local run's).
    The others keep their defaults. A value for a field Settings does not have is refused (a typo)."""
    from shop.manifest import FUNCTIONS

    unknown = set(values) - set(Settings.model_fields)
    if unknown:
        raise ValueError(f"no such settings: {sorted(unknown)}")
    out: dict[str, str] = {}
    for field in FUNCTIONS[function].all_settings:
        if field in values:
            if field in _FAMILIES:
                raise ValueError(f"{field} is a family of variables ({', '.join(_FAMILIES[field])}): set them one by one")
            out[Settings.env_names(field)[0]] = values[field]
    return out


ENVIRONMENT_VARIABLES: tuple[str, ...] = tuple(sorted({n for f in Settings.model_fields for n in Settings.env_names(f)}))


@lru_cache(maxsize=32)
def _settings(values: tuple[tuple[str, str], ...]) -> Settings:
    return Settings.from_environ(dict(values))


def get_settings() -> Settings:
    """The settings of this process's environment, built once per distinct environment (a test that changes a
    variable gets settings that say so, a Lambda container builds them once)."""
    return _settings(tuple((name, os.environ[name]) for name in ENVIRONMENT_VARIABLES if name in os.environ))


def clear_cache() -> None:
    _settings.cache_clear()
