"""WeChat Pay's trade bill (API v3): `GET /v3/bill/tradebill?bill_date=...&bill_type=ALL` answers a signed
`{hash_type, hash_value, download_url}`; the file behind `download_url` (a signed GET too; the file itself is
not signed) must have that SHA1 before it is read.

The file is CSV: a header, one row per payment (交易状态 SUCCESS) or refund (REFUND), every value prefixed
with a backtick; then a summary header (总交易单数,应结订单总金额,退款总金额,...) and its values, which are
checked against the rows. Amounts are yuan (fees to 1/1000 fen); times are Beijing time.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import secrets
import time
import urllib.parse
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from shop.domain import reconciliation as rc
from shop.domain.reconciliation import BusinessDay, Statement, StatementRow
from shop.payments import http_client
from shop.payments.base import ProviderError
from shop.payments.secrets import provider_secret
from shop.payments.signing import TOLERANCE_S, rsa_sign, rsa_verify
from shop.reconciliation.statements import (
    LINK_ATTEMPTS,
    HashMismatch,
    StatementInvalid,
    StatementUnavailable,
    SummaryMismatch,
    decimal_amount,
    to_minor,
)
from shop.settings import get_settings

SUMMARY_HEADER = "总交易单数"
REFUND_STATES = {"SUCCESS": rc.SUCCEEDED, "PROCESSING": rc.PENDING}


class WechatTradeBill:
    provider = "wechatpay"

    def _secret(self, key: str) -> str:
        return provider_secret(self.provider, key)

    def _base(self) -> str:
        return get_settings().wechatpay_api_base.rstrip("/")

    def _get(self, path: str, accept: str = "application/json") -> tuple[int, dict[str, str], bytes]:
        """A GET signed WECHATPAY2-SHA256-RSA2048 over "GET\\n{path}\\n{timestamp}\\n{nonce}\\n\\n"."""
        timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
        signature = rsa_sign(self._secret("WECHATPAY_MERCHANT_PRIVATE_KEY"),
                             f"GET\n{path}\n{timestamp}\n{nonce}\n\n".encode())
        authorization = (f'WECHATPAY2-SHA256-RSA2048 mchid="{self._secret("WECHATPAY_MCH_ID")}",'
                         f'nonce_str="{nonce}",signature="{signature}",timestamp="{timestamp}",'
                         f'serial_no="{self._secret("WECHATPAY_MERCHANT_SERIAL")}"')
        try:
            return http_client.exchange("GET", self._base() + path,
                                        headers={"Authorization": authorization, "Accept": accept,
                                                 "User-Agent": "shop-reconciliation"})
        except ProviderError as error:
            raise StatementUnavailable(f"wechatpay {path.split('?')[0]} failed: {error}") from None

    def _verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """WeChat Pay signs its API answers (not the bill file): RSA-SHA256 over "{ts}\\n{nonce}\\n{body}\\n"."""
        timestamp, nonce = headers.get("wechatpay-timestamp", ""), headers.get("wechatpay-nonce", "")
        signature, serial = headers.get("wechatpay-signature", ""), headers.get("wechatpay-serial", "")
        try:
            if not (timestamp.isdigit() and nonce and signature) or abs(time.time() - int(timestamp)) > TOLERANCE_S:
                raise ValueError("signature headers missing or stale")
            if serial != self._secret("WECHATPAY_PLATFORM_SERIAL"):
                raise ValueError("unknown platform serial")
            rsa_verify(self._secret("WECHATPAY_PLATFORM_PUBLIC_KEY"),
                       f"{timestamp}\n{nonce}\n".encode() + body + b"\n", signature)
        except Exception as error:  # noqa: BLE001 - an answer we cannot verify is not used
            raise StatementUnavailable(f"wechatpay tradebill answer does not verify: {error}") from None

    def bill_link(self, day: BusinessDay) -> dict[str, Any]:
        path = f"/v3/bill/tradebill?bill_date={day.date.isoformat()}&bill_type=ALL"
        status, headers, body = self._get(path)
        if status >= 300:
            try:
                code = json.loads(body).get("code")
            except (ValueError, AttributeError):
                code = None
            raise StatementUnavailable(f"wechatpay tradebill refused: {code or status}")
        self._verify(headers, body)
        try:
            link = json.loads(body)
            assert isinstance(link.get("download_url"), str) and isinstance(link.get("hash_value"), str)
        except (ValueError, AssertionError, AttributeError):
            raise StatementUnavailable("wechatpay tradebill answer lacks download_url or hash_value") from None
        return link

    def _download_path(self, url: str) -> str:
        """The path and query the download's signature covers: the URL without the API base."""
        if url.startswith(self._base() + "/"):
            return url[len(self._base()):]
        parts = urllib.parse.urlsplit(url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def fetch(self, day: BusinessDay) -> Statement:
        last = ""
        for _ in range(LINK_ATTEMPTS):
            link = self.bill_link(day)  # a fresh link each time: an expired one cannot be downloaded
            status, _, body = self._get(self._download_path(link["download_url"]), "*/*")  # the file is not JSON
            if status != 200:
                last = f"answered {status}"
                continue
            verify_hash(body, link.get("hash_type", ""), link["hash_value"])
            try:
                text = body.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise StatementInvalid("wechatpay bill is not UTF-8 text") from None
            return parse_trade_bill(text, day)
        raise StatementUnavailable(f"the wechatpay bill download link expired {LINK_ATTEMPTS} times ({last})")


def verify_hash(body: bytes, hash_type: str, hash_value: str) -> None:
    if hash_type.upper() != "SHA1":
        raise HashMismatch(f"wechatpay bill: unsupported hash_type {hash_type!r}")
    if not hmac.compare_digest(hashlib.sha1(body).hexdigest(), hash_value.strip().lower()):
        raise HashMismatch("wechatpay bill: the file's SHA1 is not the hash_value the tradebill answer gave")


def _cells(text: str) -> list[list[str]]:
    return [[cell.strip().removeprefix("`").strip() for cell in row]
            for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]


def parse_trade_bill(text: str, day: BusinessDay) -> Statement:
    """The bill as statement rows, checked against its own summary (StatementInvalid if it does not add up)."""
    table = _cells(text)
    if not table or table[0][0] != "交易时间":
        raise StatementInvalid("wechatpay bill: no header row (交易时间,...)")
    split = next((i for i, row in enumerate(table) if row and row[0] == SUMMARY_HEADER), None)
    if split is None or split + 1 >= len(table):
        raise SummaryMismatch("wechatpay bill: no summary (总交易单数,...) after the rows")
    header, summary = table[0], dict(zip(table[split], table[split + 1], strict=False))
    records = [dict(zip(header, row, strict=False)) for row in table[1:split]]
    for needed in ("微信订单号", "商户订单号", "交易状态", "货币种类", "应结订单金额", "退款金额", "手续费"):
        if needed not in header:
            raise StatementInvalid(f"wechatpay bill: no {needed} column")
    sums: dict[str, Decimal] = {}
    rows: list[StatementRow] = []
    for record in records:
        for column in ("应结订单金额", "退款金额", "手续费", "订单金额", "申请退款金额"):
            if column in record:
                sums[column] = sums.get(column, Decimal(0)) + decimal_amount(record[column] or "0", column)
        rows.extend(_rows_of(record))
    _check_summary(summary, len(records), sums)
    return Statement("wechatpay", day.date, tuple(rows), ("sha1", "summary"))


def _amount(record: Mapping[str, str], *columns: str) -> Decimal:
    for column in columns:
        value = decimal_amount(record.get(column) or "0", column)
        if value:
            return abs(value)
    return Decimal(0)


def _rows_of(record: Mapping[str, str]) -> list[StatementRow]:
    state, currency = record["交易状态"], (record.get("货币种类") or "CNY").upper()
    transaction_id, order_id = record["微信订单号"], record["商户订单号"] or None
    try:
        at = rc.local_time("wechatpay", record.get("交易时间", ""))
    except ValueError:
        raise StatementInvalid(f"wechatpay bill: time of {transaction_id} is not 'yyyy-MM-dd HH:mm:ss'") from None
    fee = to_minor(decimal_amount(record["手续费"] or "0", "手续费"), "手续费", rounded=True)
    if state == "SUCCESS":
        main = StatementRow(rc.PAYMENT, transaction_id, to_minor(_amount(record, "订单金额", "应结订单金额"), "订单金额"),
                            currency, rc.SUCCEEDED, at, order_id, note=state)
    elif state == "REFUND":
        refund_no = record.get("微信退款单号") or None
        main = StatementRow(rc.REFUND, refund_no or transaction_id,
                            to_minor(_amount(record, "申请退款金额", "退款金额"), "退款金额"), currency,
                            REFUND_STATES.get(record.get("退款状态", ""), rc.FAILED), at, order_id,
                            payment_reference=transaction_id, merchant_reference=record.get("商户退款单号") or None,
                            note=state)
    else:  # REVOKED and other states: no money moved
        return [StatementRow(rc.OTHER, transaction_id, 0, currency, rc.FAILED, at, order_id, note=state)]
    rows = [main]
    if fee:  # positive on payments (charged), negative on refunds (given back)
        rows.append(StatementRow(rc.FEE, f"{main.reference}:fee", fee, currency, rc.SUCCEEDED, at, order_id,
                                 payment_reference=transaction_id, note="手续费"))
    return rows


def _check_summary(summary: Mapping[str, str], count: int, sums: Mapping[str, Decimal]) -> None:
    stated = summary.get(SUMMARY_HEADER, "")
    if not stated.isdigit() or int(stated) != count:
        raise SummaryMismatch(f"wechatpay bill: {SUMMARY_HEADER} says {stated!r}, the file has {count} rows")
    for total, column, required in (("应结订单总金额", "应结订单金额", True), ("退款总金额", "退款金额", True),
                                    ("手续费总金额", "手续费", True), ("订单总金额", "订单金额", False),
                                    ("申请退款总金额", "申请退款金额", False)):
        if total not in summary:
            if required:
                raise SummaryMismatch(f"wechatpay bill: the summary has no {total}")
            continue
        expected = sums.get(column, Decimal(0))
        if decimal_amount(summary[total], total) != expected:
            raise SummaryMismatch(f"wechatpay bill: {total} says {summary[total]}, the rows add up to {expected}")
