"""The sandbox carrier: books waybills and tracks parcels against the local run's fake (SANDBOX_CARRIER_API_BASE),
or in-process when that is unset; pushes HMAC-signed JSON callbacks (the sandbox payment provider's scheme)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from shop.carriers.base import Booking, Callback, CarrierBase, CarrierError, InvalidCallback, ParcelRef
from shop.carriers.checkpoints import text
from shop.domain import clock
from shop.domain.orders import Order
from shop.domain.parcels import Checkpoint, ParcelStatus, Tracking
from shop.domain.values import Shipment
from shop.payments.base import InvalidWebhook, header
from shop.payments.signing import verify_hmac_header
from shop.settings import get_settings

SIGNATURE_HEADER = "Sandbox-Signature"


def minimal_pdf(title: str) -> bytes:
    """A one-page PDF showing `title` (ASCII): what the sandbox prints as a label."""
    safe = "".join(ch for ch in title if ch.isalnum() or ch in " -_#")[:80]
    stream = f"BT /F1 18 Tf 40 760 Td (SANDBOX WAYBILL {safe}) Tj ET".encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def tracking_number_for(key: str) -> str:
    return "SBX" + hashlib.sha256(key.encode()).hexdigest()[:12].upper()


def checkpoints_from(items: Any) -> tuple[Checkpoint, ...]:
    if not isinstance(items, list) or len(items) > 200:
        raise InvalidCallback("checkpoints must be a list")
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise InvalidCallback("a checkpoint must be an object")
        try:
            status = ParcelStatus(str(item.get("status")))
        except ValueError:
            raise InvalidCallback("unknown checkpoint status") from None
        out.append(Checkpoint(at=clock.iso(clock.parse_iso(str(item["at"]))), status=status,
                              description=text(item.get("description")), location=text(item.get("location")),
                              refused=item.get("refused") is True, raw_code=status.value))
    return tuple(out)


class SandboxCarrier(CarrierBase, name="sandbox", books_waybills=True, needs_code=False):
    def _base(self) -> str:
        return get_settings().sandbox_carrier_api_base.rstrip("/")

    def book(self, order: Order, shipment: Shipment, *, idempotency_key: str) -> Booking:
        base = self._base()
        if not base:  # no fake carrier to ask: a deterministic waybill, nothing to track but what is pushed
            number = tracking_number_for(idempotency_key)
            return Booking(number, minimal_pdf(number))
        status, answer = self.call("POST", f"{base}/waybills", body=json.dumps({
            "reference": idempotency_key, "order_id": order.order_id, "shipment_id": shipment.shipment_id,
        }).encode(), headers={"Content-Type": "application/json", "Idempotency-Key": idempotency_key})
        if status >= 300 or not isinstance(answer, dict) or not isinstance(answer.get("tracking_number"), str):
            raise CarrierError(f"sandbox carrier refused the waybill (status {status})")
        try:
            label = base64.b64decode(answer.get("label_pdf_base64") or "", validate=True) or None
        except ValueError:
            raise CarrierError("sandbox carrier label is not base64") from None
        return Booking(answer["tracking_number"], label)

    def subscribe(self, ref: ParcelRef) -> None:
        """The sandbox pushes every change of the parcels it booked: nothing to subscribe."""

    def query(self, ref: ParcelRef) -> Tracking:
        base = self._base()
        if not base:
            return Tracking(())
        status, answer = self.call("GET", f"{base}/tracking/{ref.tracking_number}")
        if status == 404:
            return Tracking(())
        if status >= 300 or not isinstance(answer, dict):
            raise CarrierError(f"sandbox carrier tracking failed (status {status})")
        try:
            return Tracking(checkpoints_from(answer.get("checkpoints", [])))
        except (InvalidCallback, KeyError, ValueError, TypeError):
            raise CarrierError("sandbox carrier tracking answer malformed") from None

    def parse_callback(self, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]) -> Callback:
        try:
            verify_hmac_header(header(headers, SIGNATURE_HEADER), body, self.secret("SANDBOX_CARRIER_WEBHOOK_SECRET"))
        except InvalidWebhook as invalid:
            raise InvalidCallback(str(invalid), 401) from None
        with self.reading_callback("malformed sandbox carrier callback"):
            data = json.loads(body)
            return Callback(tracking_number=str(data["tracking_number"])[:64],
                            tracking=Tracking(checkpoints_from(data.get("checkpoints", []))),
                            order_id=str(data["order_id"])[:64], shipment_id=str(data["shipment_id"])[:64])
