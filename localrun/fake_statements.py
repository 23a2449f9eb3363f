"""Offline fakes of the providers' statement APIs, built from the provider fakes' own ledgers, for `make run`
and the tests (docs/payments.md, "Daily reconciliation").

- Stripe: `GET /_fake/stripe/v1/balance_transactions` (created[gte]/[lt], limit, starting_after,
  expand[]=data.source and data.source.payment_intent), newest first, as Stripe pages them.
- Alipay: `alipay.data.dataservice.bill.downloadurl.query` on `/_fake/alipay/gateway.do` (RSA2 request
  signature checked as Alipay checks requests, answer signed), then `GET /_fake/alipay/bills/{token}`: a zip of
  the GBK details and summary CSV files, behind a link that expires after LINK_SECONDS.
- WeChat Pay: `GET /_fake/wechatpay/v3/bill/tradebill` (merchant signature checked, answer signed) with
  download_url + SHA1 hash, then `GET /_fake/wechatpay/v3/billdownload/file?token=...`: the backticked CSV with
  its summary section.

The rows come from `FakeProviders`' state: `paid` (what each order's payment took), the refunds it accepted
(`answers`), the PaymentIntents it created, and when each was first seen here. Differences can be injected
(`FakeStatements.inject`, or `POST /_fake/statements/differences` with the same JSON):

| kind | effect |
| --- | --- |
| `extra_charge` | a payment at the provider that no order records (`order_id` optional: name an ended order for a late payment) |
| `duplicate_charge` | a second payment for `order_id`, with its own reference |
| `amount_difference` | the payment of `order_id` took `delta` (default 1) minor units more |
| `missing_refund` / `missing_payment` | the refunds / the payment of `order_id` are not in the statement |
| `corrupt_hash` | (wechatpay) the hash_value does not match the file, for the next `times` links (default every one) |
| `expired_link` | (alipay, wechatpay) the next `times` (default 1) download links have expired already |
| `summary_mismatch` | (alipay, wechatpay) the file's own summary counts one row more than it has |

`with_statements(fakes)` puts these in front of the provider fakes (everything else goes on to them) and
gives Alipay and WeChat Pay payments made by `POST /_local/pay/{order_id}` a stable trade number per order,
so the webhook and the statement name the same payment.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import secrets
import threading
import time
import urllib.parse
import uuid
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from shop.domain import clock
from shop.domain import reconciliation as rc
from shop.domain.reconciliation import StatementRow
from shop.payments.signing import rsa_sign, rsa_verify

Headers = list[tuple[str, str]]
Reply = tuple[int, Headers, bytes]
LINK_SECONDS = 30.0
ALIPAY_PID = "2088102000000000"
BILL_QUERY = "alipay.data.dataservice.bill.downloadurl.query"
KINDS = ("extra_charge", "duplicate_charge", "amount_difference", "missing_refund", "missing_payment",
         "corrupt_hash", "expired_link", "summary_mismatch")
WECHAT_HEADER = ("交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,"
                 "货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,"
                 "商户数据包,手续费,费率,订单金额,申请退款金额,费率备注").split(",")
WECHAT_SUMMARY = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额".split(",")
ALIPAY_HEADER = ("支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,"
                 "商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,"
                 "商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注").split(",")
ALIPAY_SUMMARY_HEADER = ("门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,支付宝优惠（元）,"
                         "商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）").split(",")


def stable_reference(provider: str, order_id: str, n: int = 0) -> str:
    """The fake's trade number for an order's payment: Alipay trade_no, WeChat Pay transaction_id."""
    digits = str(int(hashlib.sha256(f"{provider}|{order_id}|{n}".encode()).hexdigest(), 16))[:22]
    return ("2026" if provider == "alipay" else "4200") + digits


def yuan(minor: int) -> str:
    return str(Decimal(minor).scaleb(-2).quantize(Decimal("0.01")))


def _beijing(at: str) -> str:
    return clock.parse_iso(at).astimezone(rc.CHINA).strftime("%Y-%m-%d %H:%M:%S")


class FakeStatements:
    """The statement endpoints, over a `FakeProviders` whose state they read (never change)."""

    def __init__(self, fakes: Any, now: Callable[[], float] = time.time):
        self.fakes = fakes
        self.now = now
        self.lock = threading.Lock()
        self.first_seen: dict[str, str] = {}  # ledger key -> ISO time this fake first saw it
        self.differences: list[dict[str, Any]] = []
        self.links: dict[str, tuple[float, str, bytes]] = {}  # token -> (expires at, provider, file)
        self.payment_providers: dict[str, str] = {}  # order id -> provider, for payments made through us

    # ---- injected differences ----

    def inject(self, kind: str, provider: str, **options: Any) -> dict[str, Any]:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        if provider not in ("stripe", "alipay", "wechatpay"):
            raise ValueError("provider must be stripe, alipay or wechatpay")
        difference = {"kind": kind, "provider": provider, **options}
        with self.lock:
            self.differences.append(difference)
        return difference

    def clear(self) -> None:
        with self.lock:
            self.differences.clear()

    def _take(self, kind: str, provider: str, default_times: int | None) -> bool:
        """Whether a link-level difference applies to the next link (and use one of its `times`)."""
        with self.lock:
            for difference in self.differences:
                if difference["kind"] == kind and difference["provider"] == provider:
                    times = difference.get("times", default_times)
                    if times is None:
                        return True
                    if times > 0:
                        difference["times"] = times - 1
                        return True
        return False

    # ---- the ledger ----

    def seen(self, key: str) -> str:
        with self.lock:
            return self.first_seen.setdefault(key, clock.iso(datetime.fromtimestamp(self.now(), UTC)))

    def note_payment(self, provider: str, order_id: str) -> None:
        self.payment_providers[order_id] = provider
        self.seen(f"pay:{order_id}")

    def note_ledger(self) -> None:
        """Stamp what the provider fakes hold now (called after each of their answers): rows carry that time."""
        with self.fakes.lock:
            keys = [k for k in self.fakes.answers if k.startswith(("stripe:/v1/refunds:", "alipay:refund:",
                                                                   "wx:refund:"))]
            paid = list(self.fakes.paid)
        for key in keys:
            self.seen(key)
        for order_id in paid:
            self.seen(f"pay:{order_id}")

    def _provider_of(self, order_id: str, answers: dict[str, Any]) -> str | None:
        if f"alipay:pre:{order_id}" in answers:
            return "alipay"
        if f"wx:pay:{order_id}" in answers:
            return "wechatpay"
        if any(k.startswith("stripe:/v1/payment_intents:") and (a.get("metadata") or {}).get("order_id") == order_id
               for k, (_, a) in answers.items()):
            return "stripe"
        return self.payment_providers.get(order_id)

    def ledger(self, provider: str) -> list[StatementRow]:
        """The provider fake's payments and refunds as statement rows (any day), with differences applied."""
        self.note_ledger()
        with self.fakes.lock:
            answers = dict(self.fakes.answers)
            paid = dict(self.fakes.paid)
        intents = {a["id"]: a for k, (_, a) in answers.items() if k.startswith("stripe:/v1/payment_intents:")}
        rows: list[StatementRow] = []
        for order_id, money in paid.items():
            if self._provider_of(order_id, answers) != provider:
                continue
            if provider == "stripe":
                intent = next((i for i in intents.values() if (i.get("metadata") or {}).get("order_id") == order_id),
                              None)
                if intent is None:
                    continue
                reference = intent["id"]
                amount = money.amount if money else int(intent["amount"])
                currency = money.currency if money else str(intent["currency"]).upper()
            elif money is None:
                continue  # the fake does not know what this payment took
            else:
                reference, amount, currency = stable_reference(provider, order_id), money.amount, money.currency
            rows.append(StatementRow(rc.PAYMENT, reference, amount, currency, rc.SUCCEEDED, self.seen(f"pay:{order_id}"),
                                     order_id))
        by_payment = {r.reference: r for r in rows}
        for key, (status, answer) in answers.items():
            if status != 200:
                continue
            row = self._refund_row(provider, key, answer, paid, intents, by_payment)
            if row is not None:
                rows.append(row)
        return self._apply(provider, rows)

    def _refund_row(self, provider: str, key: str, answer: dict[str, Any], paid: dict[str, Any],
                    intents: dict[str, Any], payments: dict[str, StatementRow]) -> StatementRow | None:
        at = self.seen(key)
        if provider == "stripe" and key.startswith("stripe:/v1/refunds:"):
            intent = intents.get(answer.get("payment_intent") or "") or {}
            order_id = (intent.get("metadata") or {}).get("order_id")
            money = paid.get(order_id or "")
            currency = str(answer.get("currency") or (money.currency if money else intent.get("currency", "usd")))
            return StatementRow(rc.REFUND, answer["id"], int(answer["amount"]), currency.upper(), rc.SUCCEEDED, at,
                                order_id, payment_reference=answer.get("payment_intent"))
        if provider == "alipay" and key.startswith("alipay:refund:"):
            body = answer.get("alipay_trade_refund_response") or {}
            order_id, batch = body.get("out_trade_no"), key.removeprefix("alipay:refund:")
            money = paid.get(order_id or "")
            currency = money.currency if money else "CNY"
            amount = int(Decimal(str(body.get("refund_fee", "0"))).scaleb(2))
            return StatementRow(rc.REFUND, batch, amount, currency, rc.SUCCEEDED, at, order_id,
                                payment_reference=stable_reference("alipay", order_id or ""), merchant_reference=batch)
        if provider == "wechatpay" and key.startswith("wx:refund:"):
            refund = answer.get("amount") or {}
            order_id = answer.get("out_trade_no")
            return StatementRow(rc.REFUND, str(answer.get("refund_id")), int(refund.get("refund", 0)),
                                str(refund.get("currency") or "CNY").upper(), rc.SUCCEEDED, at, order_id,
                                payment_reference=stable_reference("wechatpay", order_id or ""),
                                merchant_reference=answer.get("out_refund_no"))
        return None

    def _apply(self, provider: str, rows: list[StatementRow]) -> list[StatementRow]:
        with self.lock:
            differences = [d for d in self.differences if d["provider"] == provider]
        for difference in differences:
            kind, order_id = difference["kind"], difference.get("order_id")
            payment = next((r for r in rows if r.kind == rc.PAYMENT and r.order_id == order_id), None)
            if kind == "extra_charge":
                amount = difference.get("amount") or {"amount": 100, "currency": "CNY"}
                reference = difference.get("reference") or (
                    f"pi_extra{uuid.uuid4().hex[:16]}" if provider == "stripe" else
                    stable_reference(provider, order_id or difference.setdefault("nonce", uuid.uuid4().hex), 9))
                difference.setdefault("reference", reference)
                rows.append(StatementRow(rc.PAYMENT, reference, int(amount["amount"]), amount["currency"], rc.SUCCEEDED,
                                         self.seen(f"extra:{reference}"), order_id or f"ord_unknown{reference[-8:]}"))
            elif kind == "duplicate_charge" and payment is not None:
                reference = difference.setdefault("reference", f"pi_dup{uuid.uuid4().hex[:16]}" if provider == "stripe"
                                                  else stable_reference(provider, payment.order_id or "", 2))
                rows.append(StatementRow(rc.PAYMENT, reference, payment.amount, payment.currency, rc.SUCCEEDED,
                                         self.seen(f"extra:{reference}"), payment.order_id))
            elif kind == "amount_difference" and payment is not None:
                rows[rows.index(payment)] = StatementRow(
                    rc.PAYMENT, payment.reference, payment.amount + int(difference.get("delta", 1)), payment.currency,
                    payment.status, payment.at, payment.order_id)
            elif kind == "missing_refund":
                rows = [r for r in rows if not (r.kind == rc.REFUND and r.order_id == order_id)]
            elif kind == "missing_payment":
                rows = [r for r in rows if not (r.kind == rc.PAYMENT and r.order_id == order_id)]
        return rows

    def rows_for(self, provider: str, start: datetime, end: datetime) -> list[StatementRow]:
        return sorted((r for r in self.ledger(provider) if start <= clock.parse_iso(r.at) < end),
                      key=lambda r: (r.at, r.reference))

    def _link(self, provider: str, data: bytes) -> str:
        token = secrets.token_urlsafe(18)
        expires = self.now() + LINK_SECONDS
        if self._take("expired_link", provider, 1):
            expires = self.now() - 1
        with self.lock:
            self.links[token] = (expires, provider, data)
        return token

    def _download(self, provider: str, token: str) -> bytes | None:
        with self.lock:
            found = self.links.get(token)
        if found is None or found[1] != provider or found[0] < self.now():
            return None
        return found[2]

    # ---- HTTP ----

    def respond(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Reply | None:
        """The answer for a statement request, or None for anything else (the provider fakes answer it)."""
        path = raw_path.split("?", 1)[0]
        lowered = {k.lower(): v for k, v in headers.items()}
        if path == "/_fake/statements/differences":
            return self._differences(method, body)
        if method == "GET" and path == "/_fake/stripe/v1/balance_transactions":
            return self._stripe(raw_path, lowered)
        if method == "POST" and path == "/_fake/alipay/gateway.do":
            params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(raw_path).query))
            try:
                params.update(urllib.parse.parse_qsl(body.decode("utf-8")))
            except UnicodeDecodeError:
                return None
            return self._alipay_query(params) if params.get("method") == BILL_QUERY else None
        if method == "GET" and path.startswith("/_fake/alipay/bills/"):
            data = self._download("alipay", path.rsplit("/", 1)[-1])
            if data is None:
                return 404, [("Content-Type", "text/plain; charset=utf-8")], b"the download link has expired"
            return 200, [("Content-Type", "application/zip")], data
        if method == "GET" and path in ("/_fake/wechatpay/v3/bill/tradebill", "/_fake/wechatpay/v3/billdownload/file"):
            return self._wechat(method, raw_path, lowered, body)
        return None

    def _differences(self, method: str, body: bytes) -> Reply:
        if method == "DELETE":
            self.clear()
        elif method == "POST":
            try:
                options = json.loads(body or b"{}")
                self.inject(**options)
            except (ValueError, TypeError) as error:
                return _json(422, {"error": str(error), "kinds": list(KINDS)})
        with self.lock:
            return _json(200, {"differences": list(self.differences)})

    # Stripe

    def _stripe(self, raw_path: str, headers: dict[str, str]) -> Reply:
        if headers.get("authorization") != f"Bearer {self.fakes.keys.stripe_secret_key}":
            return _json(401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}})
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(raw_path).query)
        try:
            start, end = (datetime.fromtimestamp(int(query[name][0]), UTC)
                          for name in ("created[gte]", "created[lt]"))
            limit = min(100, max(1, int(query.get("limit", ["10"])[0])))
        except (KeyError, ValueError):
            return _json(400, {"error": {"type": "invalid_request_error", "message": "created[gte], created[lt]"}})
        expand = query.get("expand[]", [])
        transactions = [self._transaction(r, "data.source" in expand, "data.source.payment_intent" in expand)
                        for r in self.rows_for("stripe", start, end)]
        transactions = [t for t in reversed(transactions) if t]  # newest first, as Stripe lists
        after = query.get("starting_after", [None])[0]
        if after:
            ids = [t["id"] for t in transactions]
            transactions = transactions[ids.index(after) + 1:] if after in ids else []
        return _json(200, {"object": "list", "url": "/v1/balance_transactions", "data": transactions[:limit],
                           "has_more": len(transactions) > limit})

    @staticmethod
    def _transaction(row: StatementRow, expand: bool, expand_intent: bool = False) -> dict[str, Any]:
        created = int(clock.parse_iso(row.at).timestamp())
        intent_id = row.reference if row.kind == rc.PAYMENT else row.payment_reference
        # Stripe copies no PaymentIntent metadata to the charge: the order id is on the PaymentIntent.
        intent = {"id": intent_id, "object": "payment_intent", "metadata": {"order_id": row.order_id}} \
            if expand_intent and intent_id else intent_id
        txn_id = "txn_" + hashlib.sha256(f"{row.kind}|{row.reference}".encode()).hexdigest()[:24]
        if row.kind == rc.PAYMENT:
            fee = round(row.amount * 0.029) + 30
            source = {"id": "ch_" + row.reference.removeprefix("pi_")[:24], "object": "charge", "amount": row.amount,
                      "currency": row.currency.lower(), "payment_intent": intent, "status": "succeeded",
                      "metadata": {}}
            amount, kind = row.amount, "charge"
        else:
            fee = 0
            source = {"id": row.reference, "object": "refund", "amount": row.amount, "currency": row.currency.lower(),
                      "payment_intent": intent, "status": "succeeded",
                      "metadata": {"order_id": row.order_id} if row.order_id else {}}
            amount, kind = -row.amount, "refund"
        return {"id": txn_id, "object": "balance_transaction", "amount": amount, "currency": row.currency.lower(),
                "created": created, "available_on": created + 2 * 86400, "fee": fee, "net": amount - fee,
                "status": "pending", "type": kind, "reporting_category": kind,
                "source": source if expand else source["id"]}

    # Alipay

    def _alipay_query(self, params: dict[str, str]) -> Reply:
        keys = self.fakes.keys
        content = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sign" and params[k] != "")
        try:  # Alipay checks a request's RSA2 signature over every parameter but `sign` (sign_type included)
            rsa_verify(keys.alipay_app[1], content.encode(), params.get("sign", ""))
            valid = params.get("app_id") == keys.alipay_app_id and params.get("sign_type") == "RSA2"
        except Exception:  # noqa: BLE001
            valid = False
        name = BILL_QUERY.replace(".", "_") + "_response"
        if not valid:
            return _alipay_answer(name, {"code": "40002", "msg": "Invalid Arguments",
                                         "sub_code": "isv.invalid-signature"}, keys.alipay_platform[0])
        try:
            biz = json.loads(params.get("biz_content") or "{}")
            day = rc.business_day("alipay", biz["bill_date"])
            assert biz.get("bill_type") == "trade"
        except (ValueError, KeyError, AssertionError, TypeError):
            return _alipay_answer(name, {"code": "40004", "msg": "Business Failed", "sub_code": "isp.bill_not_exist"},
                                  keys.alipay_platform[0])
        data = alipay_bill(day.date, self.rows_for("alipay", day.start, day.end),
                           self._take("summary_mismatch", "alipay", None))
        token = self._link("alipay", data)
        return _alipay_answer(name, {"code": "10000", "msg": "Success",
                                     "bill_download_url": f"{self.fakes.base_url}/_fake/alipay/bills/{token}"},
                              keys.alipay_platform[0])

    # WeChat Pay

    def _wechat(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Reply:
        path = raw_path.removeprefix("/_fake/wechatpay")
        why = self._wechat_unverified(method, path, headers.get("authorization", ""), body)
        if why:
            return _json(401, {"code": "SIGN_ERROR", "message": why})
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query))
        if path.startswith("/v3/billdownload/file"):
            data = self._download("wechatpay", query.get("token", ""))
            if data is None:
                return _json(400, {"code": "INVALID_REQUEST", "message": "the download token has expired"})
            return 200, [("Content-Type", "application/octet-stream")], data
        try:
            day = rc.business_day("wechatpay", query.get("bill_date", ""))
        except ValueError:
            return self._wechat_signed(400, {"code": "PARAM_ERROR", "message": "bill_date must be yyyy-MM-dd"})
        data = wechat_bill(self.rows_for("wechatpay", day.start, day.end), self.fakes.keys,
                           self._take("summary_mismatch", "wechatpay", None))
        digest = hashlib.sha1(data).hexdigest()
        if self._take("corrupt_hash", "wechatpay", None):
            digest = hashlib.sha1(data + b"corrupted").hexdigest()
        token = self._link("wechatpay", data)
        return self._wechat_signed(200, {"hash_type": "SHA1", "hash_value": digest,
                                         "download_url": f"{self.fakes.base_url}/_fake/wechatpay/v3/billdownload/file"
                                                         f"?token={token}"})

    def _wechat_unverified(self, method: str, path: str, authorization: str, body: bytes) -> str | None:
        """WeChat Pay's check of the merchant's signature over "{method}\\n{path}\\n{ts}\\n{nonce}\\n{body}\\n"."""
        keys = self.fakes.keys
        scheme, _, rest = authorization.partition(" ")
        fields = dict((k.strip(), v.strip().strip('"')) for k, _, v in (p.partition("=") for p in rest.split(",")))
        if scheme != "WECHATPAY2-SHA256-RSA2048" or fields.get("mchid") != keys.wechat_mch_id:
            return "authorization scheme or mchid"
        if not fields.get("timestamp", "").isdigit() or abs(self.now() - int(fields["timestamp"])) > 300:
            return "timestamp is more than 5 minutes off"
        message = f"{method}\n{path}\n{fields['timestamp']}\n{fields.get('nonce_str', '')}\n".encode() + body + b"\n"
        try:
            rsa_verify(keys.wechat_merchant[1], message, fields.get("signature", ""))
        except Exception:  # noqa: BLE001
            return "signature does not verify"
        return None

    def _wechat_signed(self, status: int, answer: dict[str, Any]) -> Reply:
        keys = self.fakes.keys
        payload = json.dumps(answer).encode()
        timestamp, nonce = str(int(self.now())), secrets.token_hex(16)
        signature = rsa_sign(keys.wechat_platform[0], f"{timestamp}\n{nonce}\n".encode() + payload + b"\n")
        return status, [("Content-Type", "application/json"), ("Wechatpay-Timestamp", timestamp),
                        ("Wechatpay-Nonce", nonce), ("Wechatpay-Signature", signature),
                        ("Wechatpay-Serial", keys.wechat_platform_serial)], payload


# ---- the files, as the providers write them ------------------------------------------------------------------

def alipay_bill(day: Any, rows: list[StatementRow], summary_off: bool = False) -> bytes:
    """The zip Alipay serves: the GBK details file (rows, then its totals) and the summary file."""
    stamp = day.strftime("%Y%m%d")
    head = ["#支付宝业务明细查询", f"#账号：[{ALIPAY_PID}0156]",
            f"#起始日期：[{day.strftime('%Y年%m月%d日')} 00:00:00]   终止日期：[{day.strftime('%Y年%m月%d日')} 23:59:59]",
            "#-----------------------------------------业务明细列表----------------------------------------"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    trades = refunds_ = received_trades = received_refunds = fees = 0
    for row in rows:
        if row.kind not in (rc.PAYMENT, rc.REFUND):
            continue
        fee = round(row.amount * 0.006)
        when = _beijing(row.at)
        if row.kind == rc.PAYMENT:
            trades, received_trades, fees = trades + 1, received_trades + row.amount, fees - fee
            money, kind, batch, fee_text = yuan(row.amount), "交易", "", yuan(-fee)
        else:
            refunds_, received_refunds, fees = refunds_ + 1, received_refunds - row.amount, fees + fee
            money, kind, batch, fee_text = yuan(-row.amount), "退款", row.merchant_reference or "", yuan(fee)
        trade_no = row.reference if row.kind == rc.PAYMENT else (row.payment_reference or "")
        writer.writerow([f"{trade_no}\t", f"{row.order_id or ''}\t", f"{kind}\t", "Order", when, when, "\t", "\t",
                         "\t", "\t", "*buyer(138****0000)\t", money, money, "0.00", "0.00", "0.00", "0.00", "0.00", "",
                         "0.00\t", "0.00", f"{batch}\t", fee_text, "0.00", ""])
    off = 1 if summary_off else 0
    foot = ["#-----------------------------------------业务明细列表结束------------------------------------",
            f"#交易合计：{trades + off}笔，商家实收共{yuan(received_trades)}元，商家优惠共0.00元",
            f"#退款合计：{refunds_}笔，商家实收退款共{yuan(received_refunds)}元，商家优惠退款共0.00元",
            f"#导出时间：[{datetime.now(rc.CHINA).strftime('%Y年%m月%d日 %H:%M:%S')}]"]
    details = "\r\n".join(head + [",".join(ALIPAY_HEADER)]) + "\r\n" + out.getvalue() + "\r\n".join(foot) + "\r\n"
    net = received_trades + received_refunds
    total_row = [str(trades + off), str(refunds_), yuan(net), yuan(net), "0.00", "0.00", "0.00", yuan(fees), "0.00",
                 yuan(net + fees)]
    summary = "\r\n".join([
        "#支付宝业务汇总查询", f"#账号：[{ALIPAY_PID}0156]", head[2],
        "#-----------------------------------------业务汇总列表----------------------------------------",
        ",".join(ALIPAY_SUMMARY_HEADER), ",".join(["", ""] + total_row), ",".join(["合计", ""] + total_row),
        "#----------------------------------------业务汇总列表结束-------------------------------------",
        foot[-1]]) + "\r\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{ALIPAY_PID}0156_{stamp}_业务明细.csv", details.encode("gbk"))
        archive.writestr(f"{ALIPAY_PID}0156_{stamp}_业务明细(汇总).csv", summary.encode("gbk"))
    return buffer.getvalue()


def wechat_bill(rows: list[StatementRow], keys: Any, summary_off: bool = False) -> bytes:
    """WeChat Pay's ALL trade bill: backticked rows, then the summary header and its values."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(WECHAT_HEADER)
    count, settled, refunded, fees = 0, 0, 0, Decimal(0)
    for row in rows:
        if row.kind not in (rc.PAYMENT, rc.REFUND):
            continue
        fee = (Decimal(row.amount) * Decimal("0.00006")).quantize(Decimal("0.00001"), rounding=ROUND_HALF_UP)
        common = [_beijing(row.at), keys.wechat_app_id, keys.wechat_mch_id, "0", ""]
        if row.kind == rc.PAYMENT:
            values = common + [row.reference, row.order_id or "", "oFakeOpenId000", "NATIVE", "SUCCESS", "OTHERS",
                               row.currency, yuan(row.amount), "0.00", "0", "0", "0.00", "0.00", "", "", "Order", "",
                               f"{fee:.5f}", "0.60%", yuan(row.amount), "0.00", ""]
            settled, fees = settled + row.amount, fees + fee
        else:
            values = common + [row.payment_reference or "", row.order_id or "", "oFakeOpenId000", "NATIVE", "REFUND",
                               "OTHERS", row.currency, "0.00", "0.00", row.reference, row.merchant_reference or "",
                               yuan(row.amount), "0.00", "ORIGINAL", "SUCCESS", "Order", "", f"{-fee:.5f}", "0.60%",
                               "0.00", yuan(row.amount), ""]
            refunded, fees = refunded + row.amount, fees - fee
        count += 1
        writer.writerow(["`" + value for value in values])
    writer.writerow(WECHAT_SUMMARY)
    writer.writerow(["`" + v for v in (str(count + (1 if summary_off else 0)), yuan(settled), yuan(refunded), "0.00",
                                       f"{fees:.5f}", yuan(settled), yuan(refunded))])
    return out.getvalue().encode("utf-8")


def _alipay_answer(name: str, answer: dict[str, Any], alipay_private: str) -> Reply:
    text = json.dumps(answer, ensure_ascii=False)
    sign = rsa_sign(alipay_private, text.encode())
    return 200, [("Content-Type", "application/json;charset=utf-8")], \
        f'{{"{name}":{text},"sign":{json.dumps(sign)}}}'.encode()


def _json(status: int, body: Any) -> Reply:
    return status, [("Content-Type", "application/json")], json.dumps(body, ensure_ascii=False).encode()


# ---- in front of the provider fakes --------------------------------------------------------------------------

class FakesWithStatements:
    """A `FakeProviders` with the statement fakes in front: statement requests are answered here, everything
    else by the provider fakes (whose answers are stamped into the ledger's times as they happen)."""

    def __init__(self, fakes: Any):
        self._fakes = fakes
        self.statements = FakeStatements(fakes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fakes, name)

    def respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        answered = self.statements.respond(method, path, headers, body)
        if answered is not None:
            return answered
        result = self._fakes.respond(method, path, headers, body)
        self.statements.note_ledger()
        return result

    def mark_paid(self, order_id: str, amount: Any = None) -> None:
        self._fakes.mark_paid(order_id, amount)
        self.statements.seen(f"pay:{order_id}")

    def payment_id(self, provider: str, order_id: str) -> str | None:
        """A stable Alipay trade_no / WeChat Pay transaction_id per order (so the webhook and the statement name
        the same payment); Stripe's is the order's PaymentIntent, as before."""
        if provider in ("alipay", "wechatpay"):
            self.statements.note_payment(provider, order_id)
            return stable_reference(provider, order_id)
        return self._fakes.payment_id(provider, order_id)


def with_statements(fakes: Any) -> FakesWithStatements:
    return fakes if isinstance(fakes, FakesWithStatements) else FakesWithStatements(fakes)


_RECONCILE = re.compile(r"^/_local/reconcile/(?P<date>\d{4}-\d{2}-\d{2})$")


def local_reconcile(server: Any, method: str, path: str, body: bytes = b"") -> Any:
    """`POST /_local/reconcile/{date}`: run the reconciliation function now for that business day (optional body
    `{"providers": ["alipay"]}`); answers what it returned. The results: `GET /admin/reconciliation/{date}`."""
    from localrun import gateway

    found = _RECONCILE.match(path)
    if method != "POST" or not found:
        return gateway.problem(404 if not found else 405, "Not Found" if not found else "Method Not Allowed",
                               "POST /_local/reconcile/YYYY-MM-DD")
    try:
        options = json.loads(body) if body else {}
        providers = options.get("providers") if isinstance(options, dict) else None
    except ValueError:
        providers = None
    event = {"date": found.group("date"), "fail_on_error": False, **({"providers": providers} if providers else {})}
    result = server.runtime.invoke("reconciliation", event, timeout_s=300)
    status = 502 if "__function_error__" in result else 200
    return gateway.HttpResponse(status, [("Content-Type", "application/json")], json.dumps(result).encode())
