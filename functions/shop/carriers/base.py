"""The carrier interface and what adapters share (CarrierBase): errors, bookings, callbacks, the outbound HTTP
call, secrets, the callback URL."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from shop.domain.orders import Order
from shop.domain.parcels import Tracking
from shop.domain.values import Shipment
from shop.payments import http_client
from shop.payments.base import ProviderError
from shop.payments.secrets import carrier_secret as _carrier_secret
from shop.settings import get_settings

MAX_CALLBACK_BYTES = 256 * 1024  # a long parcel history is a few kB; bounds what we parse


class CarrierError(Exception):
    """The carrier could not be reached, or refused: nothing about the parcel changes; retried later."""


class InvalidCallback(Exception):
    """A push callback that is malformed or not verified: answered 4xx, nothing changes."""

    def __init__(self, reason: str, status: int = 400):
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class ParcelRef:
    order_id: str
    shipment_id: str
    tracking_number: str
    carrier_code: str  # the carrier company's code at the aggregator (Kuaidi100 `com`, AfterShip `slug`)


@dataclass(frozen=True)
class Booking:
    tracking_number: str
    label_pdf: bytes | None  # the printable label, when the carrier issues one


@dataclass(frozen=True)
class Callback:
    """A verified push: which parcel, and what the carrier says about it. `order_id` and `shipment_id` come from
    the signed body where the carrier echoes them, else from the callback URL; the tracking number (signed) must
    match the parcel's either way."""

    tracking_number: str
    tracking: Tracking
    order_id: str | None = None
    shipment_id: str | None = None


class Carrier(Protocol):
    name: str
    books_waybills: bool  # False: an aggregator that only tracks; the operator gives the tracking number
    needs_code: bool  # the shipment must name the carrier company (`carrier_code`)

    def book(self, order: Order, shipment: Shipment, *, idempotency_key: str) -> Booking: ...

    def subscribe(self, ref: ParcelRef) -> None:
        """Ask the carrier to push changes of this parcel (no-op for carriers without subscriptions)."""
        ...

    def query(self, ref: ParcelRef) -> Tracking:
        """The parcel as the carrier knows it now; CarrierError when it cannot say."""
        ...

    def parse_callback(self, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]) -> Callback:
        """Verify the push's signature on the raw body, then normalize it; InvalidCallback (401) if unverified."""
        ...

    def acknowledge(self) -> tuple[int, str, str]:
        """(status, content type, body) of the carrier's documented "received" answer."""
        ...


def carrier_secret(carrier: str, key: str) -> str:
    """Like the payment secrets: Secrets Manager `{CARRIER_SECRET_PREFIX}{carrier}` when deployed, the environment
    (then the local defaults) otherwise."""
    return _carrier_secret(carrier, key)


class CarrierBase:
    """What every adapter shares: its secrets by name, the outbound call, its callback URL, the JSON "received"
    acknowledgement, and what an answer or a callback body that cannot be read becomes."""

    name: str
    books_waybills: bool
    needs_code: bool

    def __init_subclass__(cls, *, name: str, books_waybills: bool, needs_code: bool, **kwargs: Any) -> None:
        """An adapter declares what it is in its class statement: `class X(CarrierBase, name=..., ...)`."""
        super().__init_subclass__(**kwargs)
        cls.name, cls.books_waybills, cls.needs_code = name, books_waybills, needs_code

    def secret(self, key: str) -> str:
        return carrier_secret(self.name, key)

    def acknowledge(self) -> tuple[int, str, str]:
        return 200, "application/json", '{"received":true}'

    def call(self, method: str, url: str, *, body: bytes | None = None, headers: Mapping[str, str] | None = None
             ) -> tuple[int, Any]:
        """(status, parsed JSON) through the one outbound client (deadline, retries on 5xx); CarrierError otherwise."""
        try:
            status, answer = http_client.request(method, url, body=body, headers=headers)
        except ProviderError as error:
            raise CarrierError(str(error)) from None
        try:
            return status, json.loads(answer) if answer else None
        except ValueError:
            raise CarrierError(f"{method} {url.split('?')[0]}: answer is not JSON (status {status})") from None

    def callback_url(self, **params: str) -> str:
        """Where the carrier pushes: `{CARRIER_WEBHOOK_BASE_URL or PAYMENT_WEBHOOK_BASE_URL}/webhooks/carriers/{name}`
        (query `params` appended)."""
        settings = get_settings()
        base = (settings.carrier_webhook_base_url or settings.payment_webhook_base_url).rstrip("/")
        if not base:
            raise CarrierError("CARRIER_WEBHOOK_BASE_URL is not set: no callback URL to subscribe with")
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"{base}/webhooks/carriers/{self.name}" + (f"?{query}" if query else "")

    @contextmanager
    def reading_callback(self, reason: str) -> Iterator[None]:
        """Anything unreadable in a verified push body is a 400 InvalidCallback(reason), never a 500."""
        try:
            yield
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            raise InvalidCallback(reason) from None

    @contextmanager
    def reading_answer(self) -> Iterator[None]:
        """A query answer that does not parse is the carrier's fault: CarrierError (retried later)."""
        try:
            yield
        except InvalidCallback as error:
            raise CarrierError(f"{self.name} answer malformed: {error}") from None
