"""Carrier signatures checked against independent implementations (the `md5sum` and `openssl` commands), not only
our own signing code: Kuaidi100's MD5 schemes and AfterShip's base64 HMAC-SHA256 webhook header."""

from __future__ import annotations

import json
import shutil
import subprocess
from urllib.parse import urlencode

import pytest

from shop.carriers import aftership, kuaidi100
from shop.carriers.base import InvalidCallback
from shop.domain.parcels import ParcelStatus


def md5sum_upper(text: str) -> str:
    done = subprocess.run(["md5sum"], input=text.encode("utf-8"), capture_output=True, check=True)
    return done.stdout.split()[0].decode().upper()


def openssl_hmac_b64(secret: str, body: bytes) -> str:
    digest = subprocess.run(["openssl", "dgst", "-sha256", "-hmac", secret, "-binary"], input=body,
                            capture_output=True, check=True).stdout
    return subprocess.run(["base64"], input=digest, capture_output=True, check=True).stdout.decode().strip()


pytestmark = pytest.mark.skipif(not (shutil.which("md5sum") and shutil.which("openssl")), reason="needs coreutils")


def test_kuaidi100_signs_as_documented():
    # The documented query example: sign = MD5(param + key + customer), 32 characters, upper case.
    param = '{"com":"yuantong","num":"500306190180","from":"广东省深圳市","to":"北京市朝阳区"}'
    assert kuaidi100.query_sign(param, "xxxxxxxxxxxx", "yyyyyyyyyyyyyyyyyyyy") == \
        md5sum_upper(param + "xxxxxxxxxxxx" + "yyyyyyyyyyyyyyyyyyyy")
    assert kuaidi100.callback_sign(param, "salt123") == md5sum_upper(param + "salt123")
    assert kuaidi100.label_sign(param, "1700000000000", "k", "s") == md5sum_upper(param + "1700000000000" + "k" + "s")


def _kuaidi100_push(salt: str, state: str = "3") -> bytes:
    param = json.dumps({"status": "polling", "message": "", "lastResult": {
        "message": "ok", "state": state, "status": "200", "ischeck": "1", "com": "shunfeng", "nu": "SF1234567890",
        "data": [{"time": "2026-11-30 10:00:00", "context": "已签收", "statusCode": state},
                 {"time": "2026-11-29 08:00:00", "context": "运输中", "statusCode": "0"}]}}, ensure_ascii=False)
    return urlencode({"param": param, "sign": md5sum_upper(param + salt)}).encode()


def test_kuaidi100_callback_verified_with_the_salt_and_normalized(monkeypatch):
    monkeypatch.setenv("KUAIDI100_SALT", "the-salt")
    carrier = kuaidi100.Kuaidi100Carrier()
    got = carrier.parse_callback({}, _kuaidi100_push("the-salt"), {"order_id": "ord_1", "shipment_id": "shp_1"})
    assert (got.tracking_number, got.order_id, got.shipment_id) == ("SF1234567890", "ord_1", "shp_1")
    assert got.tracking.status is ParcelStatus.DELIVERED
    # Beijing time -> UTC; the newest scan carries the overall state.
    assert [(c.at, c.status) for c in got.tracking.checkpoints] == [
        ("2026-11-29T00:00:00.000Z", ParcelStatus.IN_TRANSIT), ("2026-11-30T02:00:00.000Z", ParcelStatus.DELIVERED)]
    refused = carrier.parse_callback({}, _kuaidi100_push("the-salt", "14"), {"order_id": "o", "shipment_id": "s"})
    assert refused.tracking.status is ParcelStatus.RETURNING and refused.tracking.refused
    with pytest.raises(InvalidCallback) as bad:
        carrier.parse_callback({}, _kuaidi100_push("another-salt"), {})
    assert bad.value.status == 401


def test_aftership_webhook_hmac_matches_openssl(monkeypatch):
    monkeypatch.setenv("AFTERSHIP_WEBHOOK_SECRET", "whsec-aftership")
    body = json.dumps({"event": "tracking_update", "msg": {
        "tracking_number": "1Z999", "slug": "ups", "order_id": "ord_1", "custom_fields": {"shipment_id": "shp_1"},
        "tag": "Delivered", "subtag": "Delivered_001", "checkpoints": [
            {"checkpoint_time": "2026-11-30T10:00:00+01:00", "tag": "Delivered", "message": "Delivered"}]}}).encode()
    header = openssl_hmac_b64("whsec-aftership", body)
    assert aftership.signature("whsec-aftership", body) == header
    got = aftership.AfterShipCarrier().parse_callback({"aftership-hmac-sha256": header}, body, {})
    assert got.tracking.status is ParcelStatus.DELIVERED and got.tracking.checkpoints[0].at == "2026-11-30T09:00:00.000Z"
    with pytest.raises(InvalidCallback) as bad:
        aftership.AfterShipCarrier().parse_callback({"aftership-hmac-sha256": openssl_hmac_b64("other", body)}, body, {})
    assert bad.value.status == 401
