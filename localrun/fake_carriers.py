"""Offline fakes of the carriers' few endpoints, served by the local server under /_fake/carriers/{carrier}/...

- sandbox: POST /waybills (idempotent on the reference), GET /tracking/{number};
- kuaidi100: POST /label/order (e-waybill), POST /poll (subscribe), POST /poll/query.do (query), each checking the
  documented MD5 signature;
- aftership: POST /tracking/2024-04/trackings (create), GET /tracking/2024-04/trackings?tracking_numbers=.. (get),
  checking the `as-api-key` header.

`advance(number, status)` moves a parcel (POST /_local/carrier/{number}) and returns the push the carrier sends for
it: (carrier, path with query, headers, body), signed as that carrier signs. `fail_next(n)` makes the next n
tracking queries answer 500 (a carrier outage).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from shop.carriers.sandbox import minimal_pdf, tracking_number_for
from shop.domain.parcels import ParcelStatus
from shop.payments.secrets import CARRIER_LOCAL_DEFAULTS
from shop.payments.signing import hmac_header

Headers = list[tuple[str, str]]
CHINA = timezone(timedelta(hours=8))
# Our status -> what the fake carrier reports (Kuaidi100 state, AfterShip tag/subtag).
KUAIDI100_STATE = {"label_created": "1", "in_transit": "0", "out_for_delivery": "5", "delivery_failed": "2",
                   "available_for_pickup": "5", "delivered": "3", "returning": "6", "returned": "4",
                   "exception": "2", "refused": "14"}
AFTERSHIP_TAG = {"label_created": ("InfoReceived", ""), "in_transit": ("InTransit", ""),
                 "out_for_delivery": ("OutForDelivery", ""), "delivery_failed": ("AttemptFail", ""),
                 "available_for_pickup": ("AvailableForPickup", ""), "delivered": ("Delivered", ""),
                 "returning": ("Exception", "Exception_010"), "returned": ("Exception", "Exception_011"),
                 "exception": ("Exception", ""), "refused": ("Exception", "Exception_004")}
LOCAL_STATUSES = frozenset({s.value for s in ParcelStatus} - {"stale"}) | {"refused"}
# Environment variables of the carrier secrets, with the local defaults used when the environment does not set them
# (the sandbox carrier's is the functions' own default, shop.payments.secrets).
LOCAL_CARRIER_SECRETS = {
    **CARRIER_LOCAL_DEFAULTS,
    "KUAIDI100_CUSTOMER": "LOCALCUSTOMER0001",
    "KUAIDI100_KEY": "localkuaidi100key",
    "KUAIDI100_SECRET": "localkuaidi100secret",
    "KUAIDI100_SALT": "localkuaidi100salt",
    "KUAIDI100_PARTNER_ID": "local-partner",
    "AFTERSHIP_API_KEY": "asat_local_key",
    "AFTERSHIP_WEBHOOK_SECRET": "aftership_local_webhook_secret",
}


def md5_upper(text: str) -> str:
    """Written apart from shop.carriers.kuaidi100 on purpose: the fake checks our signing independently."""
    return hashlib.md5(text.encode("utf-8")).hexdigest().upper()  # noqa: S324 - Kuaidi100's documented scheme


@dataclass
class FakeParcel:
    carrier: str
    number: str
    order_id: str = ""
    shipment_id: str = ""
    code: str = ""  # kuaidi100 com / aftership slug
    callback: str = ""  # kuaidi100 callback URL (path and query)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (at UTC, status, description)


class FakeCarriers:
    def __init__(self, secrets: Mapping[str, str]):
        self.secrets = dict(secrets)
        self.parcels: dict[str, FakeParcel] = {}
        self.lock = threading.Lock()
        self.failures_left = 0
        self.calls: list[tuple[str, str]] = []

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FakeCarriers:
        env = os.environ if environ is None else environ
        return cls({name: env.get(name) or default for name, default in LOCAL_CARRIER_SECRETS.items()})

    def function_env(self, base_url: str) -> dict[str, str]:
        """API bases pointing here, the secrets, and where callbacks go."""
        root = f"{base_url}/_fake/carriers"
        return {"SANDBOX_CARRIER_API_BASE": f"{root}/sandbox", "KUAIDI100_API_BASE": f"{root}/kuaidi100",
                "KUAIDI100_LABEL_API_BASE": f"{root}/kuaidi100", "AFTERSHIP_API_BASE": f"{root}/aftership",
                "CARRIER_WEBHOOK_BASE_URL": base_url, **self.secrets}

    def fail_next(self, count: int) -> None:
        with self.lock:
            self.failures_left = count

    def _outage(self) -> bool:
        with self.lock:
            if self.failures_left > 0:
                self.failures_left -= 1
                return True
            return False

    # ---- HTTP ----

    def respond(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> tuple[int, Headers, bytes]:
        status, payload = self.handle(method, path, {k.lower(): v for k, v in headers.items()}, body)
        return status, [("Content-Type", "application/json; charset=utf-8")], json.dumps(
            payload, ensure_ascii=False).encode()

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        parts = urlsplit(raw_path)
        path = parts.path.removeprefix("/_fake/carriers")
        with self.lock:
            self.calls.append((method, path))
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if path.startswith("/sandbox/"):
            return self._sandbox(method, path.removeprefix("/sandbox"), body)
        if path.startswith("/kuaidi100/") and method == "POST":
            form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
            return self._kuaidi100(path.removeprefix("/kuaidi100"), form)
        if path.startswith("/aftership/"):
            return self._aftership(method, path.removeprefix("/aftership"), headers, query, body)
        return 404, {"error": "no such fake carrier endpoint"}

    def _sandbox(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        if method == "POST" and path == "/waybills":
            request = json.loads(body or b"{}")
            number = tracking_number_for(str(request.get("reference")))
            with self.lock:
                parcel = self.parcels.setdefault(number, FakeParcel("sandbox", number))
                parcel.order_id, parcel.shipment_id = str(request.get("order_id")), str(request.get("shipment_id"))
            return 201, {"tracking_number": number, "label_pdf_base64": base64.b64encode(minimal_pdf(number)).decode()}
        if method == "GET" and path.startswith("/tracking/"):
            if self._outage():
                return 500, {"error": "sandbox carrier down"}
            found = self.parcels.get(path.removeprefix("/tracking/"))
            if found is None:
                return 404, {"error": "unknown parcel"}
            return 200, {"tracking_number": found.number, "checkpoints": self._sandbox_checkpoints(found)}
        return 404, {"error": "no such endpoint"}

    @staticmethod
    def _sandbox_checkpoints(parcel: FakeParcel) -> list[dict[str, Any]]:
        return [{"at": at, "status": "returning" if status == "refused" else status, "description": text,
                 "refused": status == "refused"} for at, status, text in parcel.events]

    def _kuaidi100(self, path: str, form: dict[str, str]) -> tuple[int, Any]:
        key = self.secrets["KUAIDI100_KEY"]
        if path == "/label/order":
            param, t = form.get("param", ""), form.get("t", "")
            if form.get("sign") != md5_upper(param + t + key + self.secrets["KUAIDI100_SECRET"]):
                return 200, {"success": False, "code": 30002, "message": "签名错误"}
            request = json.loads(param)
            number = "SF" + hashlib.sha256(str(request.get("orderId")).encode()).hexdigest()[:12].upper()
            with self.lock:
                self.parcels.setdefault(number, FakeParcel("kuaidi100", number, code=str(request.get("kuaidicom"))))
            return 200, {"success": True, "code": 200, "message": "success",
                         "data": {"kuaidinum": number, "taskId": uuid.uuid4().hex,
                                  "label": base64.b64encode(minimal_pdf(number)).decode()}}
        if path == "/poll":
            request = json.loads(form.get("param", "{}"))
            if request.get("key") != key:
                return 200, {"result": False, "returnCode": "600", "message": "您不是合法的订阅者"}
            callback = urlsplit(request.get("parameters", {}).get("callbackurl", ""))
            callback_query = {k: v[0] for k, v in parse_qs(callback.query).items()}
            with self.lock:
                parcel = self.parcels.setdefault(request["number"], FakeParcel("kuaidi100", request["number"]))
                parcel.code, parcel.callback = str(request.get("company")), callback.path + "?" + callback.query
                parcel.order_id = callback_query.get("order_id", "")
                parcel.shipment_id = callback_query.get("shipment_id", "")
            return 200, {"result": True, "returnCode": "200", "message": "提交成功"}
        if path == "/poll/query.do":
            if self._outage():
                return 500, {"result": False, "returnCode": "500", "message": "服务器错误"}
            param, customer = form.get("param", ""), form.get("customer", "")
            if customer != self.secrets["KUAIDI100_CUSTOMER"] or form.get("sign") != md5_upper(param + key + customer):
                return 200, {"result": False, "returnCode": "601", "message": "验证签名失败"}
            known = self.parcels.get(json.loads(param).get("num", ""))
            if known is None or not known.events:
                return 200, {"result": False, "returnCode": "400", "message": "查询无结果"}
            return 200, self._kuaidi100_result(known)
        return 404, {"result": False, "returnCode": "404", "message": "no such endpoint"}

    @staticmethod
    def _kuaidi100_result(parcel: FakeParcel) -> dict[str, Any]:
        def china(at: str) -> str:
            return datetime.fromisoformat(at.replace("Z", "+00:00")).astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")

        data = [{"time": china(at), "ftime": china(at), "context": text, "location": "",
                 "statusCode": KUAIDI100_STATE[status]} for at, status, text in reversed(parcel.events)]
        state = KUAIDI100_STATE[parcel.events[-1][1]]
        return {"message": "ok", "nu": parcel.number, "ischeck": "1" if state in ("3", "4") else "0",
                "com": parcel.code, "status": "200", "state": state, "condition": "F00", "data": data}

    def _aftership(self, method: str, path: str, headers: dict[str, str], query: dict[str, str],
                   body: bytes) -> tuple[int, Any]:
        if headers.get("as-api-key") != self.secrets["AFTERSHIP_API_KEY"]:
            return 401, {"meta": {"code": 401, "message": "Invalid API key.", "type": "Unauthorized"}, "data": {}}
        if method == "POST" and path == "/tracking/2024-04/trackings":
            request = json.loads(body or b"{}")
            number = str(request.get("tracking_number"))
            with self.lock:
                exists = number in self.parcels
                parcel = self.parcels.setdefault(number, FakeParcel("aftership", number))
                parcel.code, parcel.order_id = str(request.get("slug")), str(request.get("order_id"))
                parcel.shipment_id = str((request.get("custom_fields") or {}).get("shipment_id"))
            if exists:
                return 400, {"meta": {"code": 4003, "message": "Tracking already exists.", "type": "BadRequest"},
                             "data": {}}
            return 201, {"meta": {"code": 201}, "data": self._aftership_tracking(parcel)}
        if method == "GET" and path == "/tracking/2024-04/trackings":
            if self._outage():
                return 500, {"meta": {"code": 500, "message": "Something went wrong"}, "data": {}}
            tracked = self.parcels.get(query.get("tracking_numbers", ""))
            return 200, {"meta": {"code": 200}, "data": {"trackings": [self._aftership_tracking(tracked)] if tracked else []}}
        return 404, {"meta": {"code": 404, "message": "no such endpoint"}, "data": {}}

    @staticmethod
    def _aftership_tracking(parcel: FakeParcel) -> dict[str, Any]:
        checkpoints = [{"checkpoint_time": at.replace("Z", "+00:00"), "tag": AFTERSHIP_TAG[status][0],
                        "subtag": AFTERSHIP_TAG[status][1] or f"{AFTERSHIP_TAG[status][0]}_001", "message": text,
                        "location": ""} for at, status, text in parcel.events]
        tag, subtag = AFTERSHIP_TAG[parcel.events[-1][1]] if parcel.events else ("Pending", "")
        return {"id": uuid.uuid5(uuid.NAMESPACE_URL, parcel.number).hex, "tracking_number": parcel.number,
                "slug": parcel.code, "order_id": parcel.order_id, "custom_fields": {"shipment_id": parcel.shipment_id},
                "tag": tag, "subtag": subtag or f"{tag}_001", "checkpoints": checkpoints}

    # ---- the carrier moves a parcel, then pushes ----

    def advance(self, number: str, status: str, description: str = "") -> tuple[str, str, Headers, bytes] | None:
        """Record a new scan of parcel `number`; the push the carrier sends for it, or None for an unknown parcel."""
        with self.lock:
            parcel = self.parcels.get(number)
            if parcel is None:
                return None
            at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            parcel.events.append((at, status, description or f"{status} (local carrier)"))
        return self.push(parcel)

    def push(self, parcel: FakeParcel, timestamp: int | None = None) -> tuple[str, str, Headers, bytes]:
        if parcel.carrier == "sandbox":
            body = json.dumps({"event_id": uuid.uuid4().hex, "order_id": parcel.order_id,
                               "shipment_id": parcel.shipment_id, "tracking_number": parcel.number,
                               "checkpoints": self._sandbox_checkpoints(parcel)}).encode()
            signature = hmac_header(self.secrets["SANDBOX_CARRIER_WEBHOOK_SECRET"], body,
                                    int(time.time()) if timestamp is None else timestamp)
            return "sandbox", "/webhooks/carriers/sandbox", [("Content-Type", "application/json"),
                                                            ("Sandbox-Signature", signature)], body
        if parcel.carrier == "kuaidi100":
            result = self._kuaidi100_result(parcel)
            param = json.dumps({"status": "polling", "billstatus": "change", "message": "", "lastResult": result},
                               ensure_ascii=False)
            form = urlencode({"param": param, "sign": md5_upper(param + self.secrets["KUAIDI100_SALT"])})
            path = parcel.callback or (f"/webhooks/carriers/kuaidi100?order_id={parcel.order_id}"
                                       f"&shipment_id={parcel.shipment_id}")
            return "kuaidi100", path, [("Content-Type", "application/x-www-form-urlencoded")], form.encode()
        body = json.dumps({"event": "tracking_update", "event_id": str(uuid.uuid4()), "is_tracking_first_tag": False,
                           "msg": self._aftership_tracking(parcel), "ts": int(time.time())}).encode()
        digest = hmac.new(self.secrets["AFTERSHIP_WEBHOOK_SECRET"].encode(), body, hashlib.sha256).digest()
        return "aftership", "/webhooks/carriers/aftership", [
            ("Content-Type", "application/json"), ("aftership-hmac-sha256", base64.b64encode(digest).decode())], body
