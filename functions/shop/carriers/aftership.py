"""AfterShip Tracking (API version 2024-04): an international aggregator of 1,100+ carriers.

It tracks, it does not issue waybills: the operator gives the tracking number and the carrier's `slug`
(`carrier_code`). Documented API (https://www.aftership.com/docs/tracking/):
- create a tracking (subscribes our webhook): POST {base}/tracking/2024-04/trackings, header `as-api-key`,
  JSON {tracking_number, slug, order_id, custom_fields}; meta.code 4003: exists already;
- get it: GET {base}/tracking/2024-04/trackings?tracking_numbers=..&slug=..;
- webhooks: JSON {event, event_id, msg: tracking}, header `aftership-hmac-sha256` = base64(HMAC-SHA256(webhook
  secret, raw body)).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from shop.carriers.base import Booking, Callback, CarrierBase, CarrierError, InvalidCallback, ParcelRef
from shop.carriers.checkpoints import offset_time, text
from shop.domain.orders import Order
from shop.domain.parcels import Checkpoint, ParcelStatus, Tracking
from shop.domain.values import Shipment
from shop.payments.base import header
from shop.settings import get_settings

P = ParcelStatus
SIGNATURE_HEADER = "aftership-hmac-sha256"
VERSION = "2024-04"
# AfterShip `tag` -> our status (docs/fulfilment.md); subtags refine the exceptions that are returns.
TAGS: dict[str, ParcelStatus] = {
    "Pending": P.LABEL_CREATED, "InfoReceived": P.LABEL_CREATED, "InTransit": P.IN_TRANSIT,
    "OutForDelivery": P.OUT_FOR_DELIVERY, "AttemptFail": P.DELIVERY_FAILED,
    "AvailableForPickup": P.AVAILABLE_FOR_PICKUP, "Delivered": P.DELIVERED, "Exception": P.EXCEPTION,
    "Expired": P.EXCEPTION,
}
SUBTAGS: dict[str, ParcelStatus] = {"Exception_010": P.RETURNING, "Exception_011": P.RETURNED}
REFUSED_SUBTAGS = frozenset({"Exception_004"})  # recipient refused the delivery (docs/fulfilment.md)


def signature(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def status_for(tag: Any, subtag: Any) -> ParcelStatus | None:
    return SUBTAGS.get(str(subtag)) or TAGS.get(str(tag))


def tracking_from(data: Mapping[str, Any]) -> Tracking:
    checkpoints = []
    items = data.get("checkpoints") or []
    if not isinstance(items, list) or len(items) > 500:
        raise InvalidCallback("checkpoints must be a list")
    for item in items:
        if not isinstance(item, dict) or not item.get("checkpoint_time"):
            continue
        status = status_for(item.get("tag"), item.get("subtag")) or P.IN_TRANSIT
        checkpoints.append(Checkpoint(at=offset_time(item["checkpoint_time"]), status=status,
                                      description=text(item.get("message")), location=text(item.get("location")),
                                      refused=item.get("subtag") in REFUSED_SUBTAGS,
                                      raw_code=str(item.get("subtag") or item.get("tag") or "")))
    return Tracking(tuple(checkpoints), status_for(data.get("tag"), data.get("subtag")),
                    refused=data.get("subtag") in REFUSED_SUBTAGS)


class AfterShipCarrier(CarrierBase, name="aftership", books_waybills=False, needs_code=True):
    def _base(self) -> str:
        return get_settings().aftership_api_base.rstrip("/")

    def _headers(self) -> dict[str, str]:
        return {"as-api-key": self.secret("AFTERSHIP_API_KEY"), "Content-Type": "application/json"}

    def book(self, order: Order, shipment: Shipment, *, idempotency_key: str) -> Booking:
        raise CarrierError("AfterShip tracks parcels but issues no waybills: give the tracking number")

    def subscribe(self, ref: ParcelRef) -> None:
        body = json.dumps({"tracking_number": ref.tracking_number, "slug": ref.carrier_code, "order_id": ref.order_id,
                           "custom_fields": {"shipment_id": ref.shipment_id}}).encode()
        status, answer = self.call("POST", f"{self._base()}/tracking/{VERSION}/trackings", body=body,
                                   headers=self._headers())
        code = (answer or {}).get("meta", {}).get("code") if isinstance(answer, dict) else None
        if status >= 300 and code != 4003:  # 4003: the tracking exists already
            raise CarrierError(f"aftership refused the tracking (status {status}, code {code})")

    def query(self, ref: ParcelRef) -> Tracking:
        query = urlencode({"tracking_numbers": ref.tracking_number, "slug": ref.carrier_code})
        status, answer = self.call("GET", f"{self._base()}/tracking/{VERSION}/trackings?{query}",
                                   headers=self._headers())
        if status >= 300 or not isinstance(answer, dict) or not isinstance(answer.get("data"), dict):
            raise CarrierError(f"aftership query failed (status {status})")
        found = [t for t in answer["data"].get("trackings") or [] if isinstance(t, dict)
                 and t.get("tracking_number") == ref.tracking_number]
        if not found:
            return Tracking(())
        with self.reading_answer():
            return tracking_from(found[0])

    def parse_callback(self, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]) -> Callback:
        given = header(headers, SIGNATURE_HEADER)
        if not given:
            raise InvalidCallback("signature header missing", 401)
        expected = signature(self.secret("AFTERSHIP_WEBHOOK_SECRET"), body)
        if not hmac.compare_digest(expected, given.strip()):
            raise InvalidCallback("signature does not match", 401)
        with self.reading_callback("malformed aftership webhook"):
            msg = json.loads(body)["msg"]
            custom = msg.get("custom_fields") or {}
            return Callback(tracking_number=str(msg["tracking_number"])[:64], tracking=tracking_from(msg),
                            order_id=str(msg.get("order_id") or "")[:64] or None,
                            shipment_id=str(custom.get("shipment_id") or "")[:64] or None)
