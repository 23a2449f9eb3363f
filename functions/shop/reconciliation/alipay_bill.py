"""Alipay's trade bill: `alipay.data.dataservice.bill.downloadurl.query` (bill_type trade) gives a download
link, valid about 30 seconds, to a zip of two GBK-encoded CSV files: the details (`..._业务明细.csv`) and
their summary (`..._业务明细(汇总).csv`).

The details file carries its own totals in its footer ("#交易合计：N笔，商家实收共X元" and
"#退款合计：M笔，商家实收退款共-Y元") and the summary file a "合计" row: both are checked against the rows.
Alipay writes a tab after many values (so spreadsheets keep them as text); they are trimmed. Amounts are
yuan, refunds negative; times are Beijing time.
"""

from __future__ import annotations

import csv
import io
import json
import re
import urllib.parse
import zipfile
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from shop.domain import reconciliation as rc
from shop.domain.reconciliation import BusinessDay, Statement, StatementRow
from shop.payments import http_client
from shop.payments.base import ProviderError
from shop.payments.secrets import provider_secret
from shop.payments.signing import rsa_sign, rsa_verify
from shop.reconciliation.statements import (
    LINK_ATTEMPTS,
    StatementInvalid,
    StatementUnavailable,
    SummaryMismatch,
    decimal_amount,
    to_minor,
)
from shop.settings import get_settings

METHOD = "alipay.data.dataservice.bill.downloadurl.query"
RESPONSE = METHOD.replace(".", "_") + "_response"
DETAIL_START, DETAIL_END = "业务明细列表", "业务明细列表结束"
SUMMARY_START, SUMMARY_END = "业务汇总列表", "业务汇总列表结束"
TRADE, REFUND = "交易", "退款"
COLUMNS = {"trade_no": "支付宝交易号", "order_id": "商户订单号", "type": "业务类型", "created": "创建时间",
           "finished": "完成时间", "order_amount": "订单金额（元）", "received": "商家实收（元）",
           "batch_no": "退款批次号/请求号", "fee": "服务费（元）"}
REQUIRED = ("trade_no", "order_id", "type", "order_amount", "received")


def request_signing_content(params: Mapping[str, str]) -> bytes:
    """What Alipay signs in a *request*: every parameter but `sign` (sign_type included), sorted by name,
    without empty values. (Notifications are verified without sign_type as well; requests are not.)"""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sign" and params[k] != "").encode()


class AlipayTradeBill:
    provider = "alipay"

    def _gateway(self) -> str:
        return get_settings().alipay_gateway

    def download_url(self, day: date) -> str:
        params = {
            "app_id": provider_secret(self.provider, "ALIPAY_APP_ID"), "method": METHOD,
            "format": "JSON", "charset": "utf-8", "sign_type": "RSA2", "version": "1.0",
            "timestamp": datetime.now(rc.CHINA).strftime("%Y-%m-%d %H:%M:%S"),
            "biz_content": json.dumps({"bill_type": "trade", "bill_date": day.isoformat()}, separators=(",", ":")),
        }
        params["sign"] = rsa_sign(provider_secret(self.provider, "ALIPAY_APP_PRIVATE_KEY"),
                                  request_signing_content(params))
        try:
            status, body = http_client.request(
                "POST", self._gateway(), body=urllib.parse.urlencode(params).encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"})
            text = body.decode("utf-8")
            parsed = json.loads(text)
            answer = parsed.get(RESPONSE) or parsed.get("error_response") or {}
        except ProviderError as error:
            raise StatementUnavailable(f"alipay bill query failed: {error}") from None
        except (UnicodeDecodeError, ValueError, AttributeError):
            raise StatementUnavailable(f"alipay bill query answered {status} without JSON") from None
        if status >= 300 or answer.get("code") != "10000":
            raise StatementUnavailable(f"alipay bill query refused: {answer.get('sub_code') or answer.get('code') or status}")
        _verify_answer(text, parsed.get("sign"), provider_secret(self.provider, "ALIPAY_PUBLIC_KEY"))
        url = answer.get("bill_download_url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise StatementUnavailable("alipay bill query gave no download link")
        return url

    def fetch(self, day: BusinessDay) -> Statement:
        last = ""
        for _ in range(LINK_ATTEMPTS):
            url = self.download_url(day.date)  # a fresh link each time: they expire within ~30 s
            try:
                status, _, body = http_client.exchange("GET", url)
            except ProviderError as error:
                raise StatementUnavailable(f"alipay bill download failed: {error}") from None
            if status == 200:
                return parse_trade_bill(body, day)
            last = f"answered {status}"
        raise StatementUnavailable(f"the alipay bill download link expired {LINK_ATTEMPTS} times ({last})")


def _verify_answer(text: str, sign: str | None, alipay_public_key: str) -> None:
    """Alipay signs the exact text of the `..._response` object in its answer."""
    try:
        start = text.index("{", text.index(f'"{RESPONSE}"') + len(RESPONSE) + 2)
        end = text.rindex("}", 0, text.rindex('"sign"')) + 1
        rsa_verify(alipay_public_key, text[start:end].encode(), sign or "")
    except Exception:  # noqa: BLE001 - anything unverifiable is refused the same way
        raise StatementUnavailable("alipay bill query answer does not verify") from None


# ---- the file ------------------------------------------------------------------------------------

def _entry_name(info: zipfile.ZipInfo) -> str:
    """Alipay names its entries in GBK without the zip's UTF-8 flag; Python reads such names as cp437."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("gbk")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def _section(lines: list[str], start: str, end: str) -> tuple[list[str], list[str]]:
    """(rows between the start and end markers, lines after the end marker)."""
    begin = next((i for i, line in enumerate(lines) if line.startswith("#") and start in line and end not in line),
                 None)
    finish = next((i for i, line in enumerate(lines) if line.startswith("#") and end in line), None)
    if begin is None or finish is None or finish <= begin:
        raise StatementInvalid(f"alipay bill: no '{start}' section")
    return lines[begin + 1:finish], lines[finish + 1:]


def _table(lines: list[str]) -> list[dict[str, str]]:
    cells = [[cell.strip().strip("\t").strip() for cell in row] for row in csv.reader(lines) if row]
    if not cells:
        raise StatementInvalid("alipay bill: a section has no header")
    header = cells[0]
    return [dict(zip(header, row, strict=False)) for row in cells[1:]]


def _decode(data: bytes, name: str) -> list[str]:
    try:
        return data.decode("gbk").splitlines()
    except UnicodeDecodeError:
        raise StatementInvalid(f"alipay bill: {name} is not GBK text") from None


def _yuan(row: Mapping[str, str], column: str) -> Decimal:
    return decimal_amount(row.get(COLUMNS[column]) or "0", COLUMNS[column])


def parse_trade_bill(data: bytes, day: BusinessDay) -> Statement:
    """The zip Alipay serves, verified against its own totals, as statement rows (StatementInvalid if not)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = {_entry_name(info): archive.read(info) for info in archive.infolist() if not info.is_dir()}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as error:
        raise StatementInvalid(f"alipay bill is not a readable zip: {error}") from None
    details = [n for n in entries if n.endswith(".csv") and "汇总" not in n]
    summaries = [n for n in entries if n.endswith(".csv") and "汇总" in n]
    if len(details) != 1:
        raise StatementInvalid(f"alipay bill: expected one details file, found {len(details)}")
    lines = _decode(entries[details[0]], details[0])
    _check_day(lines, day.date)
    body, footer = _section(lines, DETAIL_START, DETAIL_END)
    table = _table(body)
    if table and any(COLUMNS[c] not in table[0] for c in REQUIRED):
        raise StatementInvalid("alipay bill: details lack columns " +
                               ", ".join(COLUMNS[c] for c in REQUIRED if COLUMNS[c] not in table[0]))
    rows: list[StatementRow] = []
    counted: dict[str, list[Any]] = {TRADE: [0, Decimal(0)], REFUND: [0, Decimal(0)]}  # kind -> [rows, yuan]
    fees = Decimal(0)
    for line in table:
        kind, received, fee = line.get(COLUMNS["type"], ""), _yuan(line, "received"), _yuan(line, "fee")
        if kind in counted:
            counted[kind][0] += 1
            counted[kind][1] += received
        fees += fee
        rows.extend(_rows_of(line, kind, fee))
    _check_footer(footer, counted)
    if summaries:
        _check_summary(_decode(entries[summaries[0]], summaries[0]), counted, fees)
    checks = ("footer totals",) + (("summary file",) if summaries else ())
    return Statement("alipay", day.date, tuple(rows), checks)


def _rows_of(line: Mapping[str, str], kind: str, fee: Decimal) -> list[StatementRow]:
    trade_no, order_id = line[COLUMNS["trade_no"]], line[COLUMNS["order_id"]] or None
    when = line.get(COLUMNS["finished"]) or line.get(COLUMNS["created"]) or ""
    try:
        at = rc.local_time("alipay", when)
    except ValueError:
        raise StatementInvalid(f"alipay bill: time {when[:20]!r} of {trade_no} is not 'yyyy-MM-dd HH:mm:ss'") from None
    amount = abs(_yuan(line, "order_amount")) or abs(_yuan(line, "received"))
    if kind == TRADE:
        rows = [StatementRow(rc.PAYMENT, trade_no, to_minor(amount, "订单金额"), "CNY", rc.SUCCEEDED, at, order_id,
                             note=kind)]
        fee_amount = to_minor(abs(fee), "服务费")  # charged
    elif kind == REFUND:
        batch = line.get(COLUMNS["batch_no"]) or None
        rows = [StatementRow(rc.REFUND, batch or trade_no, to_minor(amount, "订单金额"), "CNY", rc.SUCCEEDED, at,
                             order_id, payment_reference=trade_no, merchant_reference=batch, note=kind)]
        fee_amount = -to_minor(abs(fee), "服务费")  # given back with the refund
    else:
        return [StatementRow(rc.OTHER, trade_no, 0, "CNY", rc.SUCCEEDED, at, order_id, note=kind)]
    if fee_amount:
        rows.append(StatementRow(rc.FEE, f"{rows[0].reference}:fee", fee_amount, "CNY", rc.SUCCEEDED, at, order_id,
                                 payment_reference=trade_no, note="服务费"))
    return rows


def _check_day(lines: list[str], day: date) -> None:
    found = next((re.search(r"起始日期：\[(\d{4})年(\d{2})月(\d{2})日", line) for line in lines[:10]
                  if "起始日期" in line), None)
    if found is None:
        raise StatementInvalid("alipay bill: no 起始日期 (start date) line")
    if date(*map(int, found.groups())) != day:
        raise StatementInvalid(f"alipay bill is for {'-'.join(found.groups())}, not {day.isoformat()}")


def _check_footer(footer: list[str], counted: dict[str, list[Any]]) -> None:
    for kind, label, amount_label in ((TRADE, "交易合计", "商家实收共"), (REFUND, "退款合计", "商家实收退款共")):
        line = next((line for line in footer if label in line), None)
        found = re.search(label + r"：(\d+)笔", line or "")
        if found is None:
            raise SummaryMismatch(f"alipay bill: no '{label}' line after the details")
        if int(found.group(1)) != counted[kind][0]:
            raise SummaryMismatch(f"alipay bill: {label} says {found.group(1)} rows, the file has {counted[kind][0]}")
        stated = re.search(amount_label + r"(-?[0-9]+(?:\.[0-9]+)?)元", line or "")
        if stated and Decimal(stated.group(1)) != counted[kind][1]:
            raise SummaryMismatch(f"alipay bill: {label} says {stated.group(1)} yuan, the rows add up to "
                                  f"{counted[kind][1]}")


def _check_summary(lines: list[str], counted: dict[str, list[Any]], fees: Decimal) -> None:
    body, _ = _section(lines, SUMMARY_START, SUMMARY_END)
    total = next((row for row in _table(body) if row.get("门店编号") == "合计"), None)
    if total is None:
        raise SummaryMismatch("alipay bill summary has no 合计 (total) row")
    expected = {"交易订单总笔数": Decimal(counted[TRADE][0]), "退款订单总笔数": Decimal(counted[REFUND][0]),
                "商家实收（元）": counted[TRADE][1] + counted[REFUND][1], "服务费（元）": fees}
    for column, value in expected.items():
        if column in total and decimal_amount(total[column], column) != value:
            raise SummaryMismatch(f"alipay bill summary: {column} is {total[column]}, the details add up to {value}")
