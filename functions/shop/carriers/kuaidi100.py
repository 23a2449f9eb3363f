"""Kuaidi100 (快递100): real-time query, subscription with signed push callbacks, and e-waybills (电子面单).

Documented API (https://api.kuaidi100.com/document/):
- query: POST https://poll.kuaidi100.com/poll/query.do, form `customer`, `param` (JSON {com, num, resultv2}),
  `sign` = upper(MD5(param + key + customer));
- subscribe: POST https://poll.kuaidi100.com/poll, form `schema=json`, `param` (JSON {company, number, key,
  parameters: {callbackurl, salt, resultv2}}); answer {"result": true, "returnCode": "200"} (501: already subscribed);
- push: POST to the callback URL, form `param` (JSON {status, message, lastResult: {state, ischeck, nu, com,
  data: [{time, context, ...}]}}) and `sign` = upper(MD5(param + salt)); we answer {"result": true,
  "returnCode": "200", "message": "成功"};
- e-waybill: POST https://api.kuaidi100.com/label/order, form `method=order`, `key`, `t` (ms), `param`,
  `sign` = upper(MD5(param + t + key + secret)); answer {"success": true, "data": {"kuaidinum", "label"}}.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlencode

from shop.carriers.base import Booking, Callback, CarrierBase, CarrierError, InvalidCallback, ParcelRef
from shop.carriers.checkpoints import china_time, text
from shop.domain.orders import Order
from shop.domain.parcels import Checkpoint, ParcelStatus, Tracking
from shop.domain.values import Shipment
from shop.settings import get_settings

P = ParcelStatus
# Kuaidi100 `state` -> our status (docs/fulfilment.md). 14 (拒签, refused by the recipient) returns to sender.
STATES: dict[str, ParcelStatus] = {
    "0": P.IN_TRANSIT,  # 在途
    "1": P.IN_TRANSIT,  # 揽收 collected
    "2": P.EXCEPTION,  # 疑难 difficulty
    "3": P.DELIVERED,  # 签收 signed for
    "4": P.RETURNED,  # 退签 returned and signed for by the sender
    "5": P.OUT_FOR_DELIVERY,  # 派件
    "6": P.RETURNING,  # 退回
    "7": P.IN_TRANSIT,  # 转单 handed to another carrier
    "8": P.IN_TRANSIT,  # 清关 customs
    "10": P.IN_TRANSIT,  # 待清关
    "11": P.IN_TRANSIT,  # 清关中
    "12": P.IN_TRANSIT,  # 已清关
    "13": P.EXCEPTION,  # 清关异常
    "14": P.RETURNING,  # 拒签 refused
}
REFUSED = frozenset({"14"})


def md5_upper(text_: str) -> str:
    return hashlib.md5(text_.encode("utf-8")).hexdigest().upper()  # noqa: S324 - Kuaidi100's documented scheme


def query_sign(param: str, key: str, customer: str) -> str:
    return md5_upper(param + key + customer)


def callback_sign(param: str, salt: str) -> str:
    return md5_upper(param + salt)


def label_sign(param: str, t: str, key: str, secret: str) -> str:
    return md5_upper(param + t + key + secret)


def tracking_from(result: Mapping[str, Any]) -> Tracking:
    """Kuaidi100's `lastResult` (push) or query answer -> checkpoints (newest gets the overall state)."""
    state = str(result.get("state", ""))
    overall = STATES.get(state)
    data = result.get("data") or []
    if not isinstance(data, list) or len(data) > 500:
        raise InvalidCallback("data must be a list")
    items = sorted((d for d in data if isinstance(d, dict)), key=lambda d: str(d.get("time", "")))
    checkpoints = []
    for index, item in enumerate(items):
        newest = index == len(items) - 1
        code = str(item.get("statusCode", "")) if item.get("statusCode") is not None else (state if newest else "")
        status = STATES.get(code) or (overall if newest and overall else P.IN_TRANSIT)
        checkpoints.append(Checkpoint(at=china_time(str(item.get("time") or item.get("ftime") or "")), status=status,
                                      description=text(item.get("context")), location=text(item.get("location")),
                                      refused=code in REFUSED, raw_code=code))
    return Tracking(tuple(checkpoints), overall, refused=state in REFUSED)


class Kuaidi100Carrier(CarrierBase, name="kuaidi100", books_waybills=True, needs_code=True):
    def _poll_base(self) -> str:
        return get_settings().kuaidi100_api_base.rstrip("/")

    def _label_base(self) -> str:
        return get_settings().kuaidi100_label_api_base.rstrip("/")

    def book(self, order: Order, shipment: Shipment, *, idempotency_key: str) -> Booking:
        address = order.shipping_address or {}
        recipient = {"name": address.get("name", ""), "mobile": address.get("phone") or "",
                     "printAddr": " ".join(str(address.get(k) or "") for k in
                                           ("region", "city", "line1", "line2")).strip()}
        settings = get_settings()
        sender = {"name": settings.ship_from_name, "mobile": settings.ship_from_phone,
                  "printAddr": settings.ship_from_address}
        param = json.dumps({
            "kuaidicom": shipment.tracking.carrier_code if shipment.tracking else None,
            "partnerId": self.secret("KUAIDI100_PARTNER_ID"),
            "recMan": recipient, "sendMan": sender, "count": 1, "printType": "IMAGE",
            "cargo": ", ".join(f"{line.sku} x{line.quantity}" for line in shipment.lines)[:100],
            "orderId": idempotency_key,  # Kuaidi100 returns the same waybill for the same orderId
        }, ensure_ascii=False, separators=(",", ":"))
        key, t = self.secret("KUAIDI100_KEY"), str(int(time.time() * 1000))
        form = {"method": "order", "key": key, "t": t, "param": param,
                "sign": label_sign(param, t, key, self.secret("KUAIDI100_SECRET"))}
        status, answer = self.call("POST", f"{self._label_base()}/label/order", body=urlencode(form).encode(),
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
        data = answer.get("data") if isinstance(answer, dict) else None
        if status >= 300 or not isinstance(answer, dict) or answer.get("success") is not True \
                or not isinstance(data, dict) or not isinstance(data.get("kuaidinum"), str):
            message = answer.get("message") if isinstance(answer, dict) else None
            raise CarrierError(f"kuaidi100 refused the e-waybill: {str(message)[:200]} (status {status})")
        label = None
        if isinstance(data.get("label"), str) and data["label"]:
            try:
                label = base64.b64decode(data["label"], validate=True)
            except ValueError:
                label = None  # a label URL rather than content: the operator re-prints from Kuaidi100
        return Booking(data["kuaidinum"][:64], label)

    def subscribe(self, ref: ParcelRef) -> None:
        param = json.dumps({"company": ref.carrier_code, "number": ref.tracking_number,
                            "key": self.secret("KUAIDI100_KEY"),
                            "parameters": {"callbackurl": self.callback_url(order_id=ref.order_id,
                                                                            shipment_id=ref.shipment_id),
                                           "salt": self.secret("KUAIDI100_SALT"), "resultv2": "1"}},
                           separators=(",", ":"))
        status, answer = self.call("POST", f"{self._poll_base()}/poll", body=urlencode(
            {"schema": "json", "param": param}).encode(), headers={"Content-Type": "application/x-www-form-urlencoded"})
        code = str(answer.get("returnCode")) if isinstance(answer, dict) else ""
        if status >= 300 or code not in ("200", "501"):  # 501: this parcel is subscribed already
            raise CarrierError(f"kuaidi100 subscription refused (returnCode {code or status})")

    def query(self, ref: ParcelRef) -> Tracking:
        param = json.dumps({"com": ref.carrier_code, "num": ref.tracking_number, "resultv2": "1"},
                           separators=(",", ":"))
        customer = self.secret("KUAIDI100_CUSTOMER")
        form = {"customer": customer, "param": param,
                "sign": query_sign(param, self.secret("KUAIDI100_KEY"), customer)}
        status, answer = self.call("POST", f"{self._poll_base()}/poll/query.do", body=urlencode(form).encode(),
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
        if status >= 300 or not isinstance(answer, dict):
            raise CarrierError(f"kuaidi100 query failed (status {status})")
        if answer.get("result") is False or str(answer.get("status", "200")) != "200":
            if str(answer.get("returnCode")) in ("", "400") and not answer.get("data"):
                return Tracking(())  # no record yet (查询无结果)
            raise CarrierError(f"kuaidi100 query refused: {str(answer.get('message'))[:200]}")
        with self.reading_answer():
            return tracking_from(answer)

    def parse_callback(self, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]) -> Callback:
        try:
            form = {k: v[0] for k, v in parse_qs(body.decode("utf-8"), strict_parsing=True).items()}
        except (ValueError, UnicodeDecodeError):
            raise InvalidCallback("the callback is not a form") from None
        param, sign = form.get("param"), form.get("sign")
        if not param or not sign:
            raise InvalidCallback("param and sign are required", 401)
        if not hmac.compare_digest(callback_sign(param, self.secret("KUAIDI100_SALT")), sign.upper()):
            raise InvalidCallback("signature does not match", 401)
        with self.reading_callback("malformed kuaidi100 callback"):
            result = json.loads(param)["lastResult"]
            return Callback(tracking_number=str(result["nu"])[:64], tracking=tracking_from(result),
                            order_id=(query.get("order_id") or "")[:64] or None,
                            shipment_id=(query.get("shipment_id") or "")[:64] or None)

    def acknowledge(self) -> tuple[int, str, str]:
        return 200, "application/json", json.dumps({"result": True, "returnCode": "200", "message": "成功"},
                                                   ensure_ascii=False)
