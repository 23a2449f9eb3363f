"""Daily reconciliation, offline: business days in the provider's time zone, every class of difference, and the
providers' files (Alipay's zipped GBK CSV, WeChat Pay's backticked CSV with its SHA1, Stripe's balance
transactions) read and checked against their own summaries."""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import pytest

from shop.domain import reconciliation as rc
from shop.domain.money import Money
from shop.domain.orders import HistoryEntry, Order, OrderLine, OrderStatus
from shop.domain.reconciliation import StatementRow
from shop.domain.statuses import RefundStatus
from shop.domain.values import HeldPayment, Refund
from shop.reconciliation import alipay_bill, stripe_balance, wechat_bill
from shop.reconciliation.statements import HashMismatch, StatementInvalid, SummaryMismatch, minor

UTC = timezone.utc
DAY = date(2026, 3, 1)
ALIPAY_DAY = rc.business_day("alipay", DAY)  # 2026-02-28T16:00Z .. 2026-03-01T16:00Z
NOON = "2026-03-01T04:00:00.000Z"  # 12:00 in Beijing


# ---- business days -------------------------------------------------------------------------------------------

def test_business_days_are_the_providers_own():
    assert (ALIPAY_DAY.start, ALIPAY_DAY.end) == (datetime(2026, 2, 28, 16, tzinfo=UTC), datetime(2026, 3, 1, 16, tzinfo=UTC))
    assert rc.business_day("wechatpay", "2026-03-01") == rc.business_day("wechatpay", DAY)
    stripe = rc.business_day("stripe", DAY)
    assert (stripe.start, stripe.end) == (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC))
    assert ALIPAY_DAY.timezone == "UTC+08:00" and stripe.timezone == "UTC"
    # 17:00 UTC on 1 March is 01:00 on 2 March in Beijing: Alipay's last complete day is 1 March, Stripe's 28 Feb.
    late = datetime(2026, 3, 1, 17, tzinfo=UTC)
    assert rc.previous_business_date("alipay", late) == DAY
    assert rc.previous_business_date("stripe", late) == date(2026, 2, 28)
    assert rc.business_date_of("alipay", datetime(2026, 3, 1, 15, 59, 59, tzinfo=UTC)) == DAY
    assert rc.business_date_of("alipay", datetime(2026, 3, 1, 16, tzinfo=UTC)) == date(2026, 3, 2)
    assert rc.local_time("alipay", "2026-03-01 00:00:05") == "2026-02-28T16:00:05.000Z"
    for bad in ("2026-3-1", "20260301", "2026-02-30", "2026-03-01T00:00", ""):
        with pytest.raises(ValueError):
            rc.parse_date(bad)


# ---- orders and rows -----------------------------------------------------------------------------------------

def order(order_id, status=OrderStatus.PAID, *, provider="alipay", paid=1000, payment="T-" , refunds=(),
          currency="CNY", payment_status=None, held=None, paid_at=NOON):
    payment_id = None if payment is None else (payment + order_id if payment.endswith("-") else payment)
    history = (HistoryEntry(paid_at, f"provider:{provider}", "PENDING_PAYMENT", "PAID", "payment_received"),) \
        if payment_id else ()
    return Order(order_id=order_id, order_number=f"N-{order_id}", customer_id="alice", status=status,
                 lines=(OrderLine("TEA", "Tea", 1, Money(1000, currency)),), currency=currency,
                 payment_provider=provider, shipping_address={}, created_at=paid_at, updated_at=paid_at,
                 expires_at=paid_at, payment_status=payment_status or ("paid" if payment_id else "unpaid"),
                 history=history, amount_paid=paid if payment_id else 0, provider_payment_id=payment_id,
                 refunds=tuple(refunds), held_payment=held)


def refund(refund_id, amount, *, status="succeeded", provider_refund_id=None, payment="T-o", automatic=False,
           captured=None, at=NOON, currency="CNY"):
    return Refund(refund_id=refund_id, amount=amount, currency=currency, status=RefundStatus(status), provider="alipay",
                  provider_payment_id=payment, provider_refund_id=provider_refund_id, captured=captured or amount,
                  automatic=automatic, at=at)


def pay_row(reference, order_id, amount=1000, at=NOON, currency="CNY"):
    return StatementRow(rc.PAYMENT, reference, amount, currency, rc.SUCCEEDED, at, order_id)


def refund_row(batch, order_id, amount, at=NOON, status=rc.SUCCEEDED, payment=None):
    return StatementRow(rc.REFUND, batch, amount, "CNY", status, at, order_id, payment_reference=payment,
                        merchant_reference=batch)


def classify(rows, orders, day=ALIPAY_DAY, grace=timedelta(minutes=15), provider="alipay"):
    records = [r for o in orders for r in rc.records_of(o)]
    facts = {o.order_id: rc.order_facts(o) for o in orders}
    return rc.reconcile(rc.Statement(provider, day.date, tuple(rows)), day, records, facts, grace)


def categories(outcome):
    return sorted((d.category, d.kind, d.order_id or "") for d in outcome.differences)


def test_records_of_an_order_its_payment_refused_payments_and_refunds():
    refused = refund("rf_auto", 1000, payment="T-second", automatic=True)
    partial = refund("rf_1", 300, status="pending", payment="T-o1")
    recorded = rc.records_of(order("o1", paid=2000, refunds=[refused, partial]))
    assert [(r.kind, r.reference, r.amount, r.status) for r in recorded] == [
        ("payment", "T-second", 1000, "succeeded"), ("payment", "T-o1", 1000, "succeeded"),
        ("refund", None, 1000, "succeeded"), ("refund", None, 300, "pending")]
    assert recorded[3].merchant_reference == "rf_1" and recorded[3].payment_reference == "T-o1"
    # Held for a payment in another currency: the payment is what arrived, not what the order costs.
    held = order("o2", OrderStatus.ON_HOLD, paid=0, payment_status="unpaid",
                 held=HeldPayment(Money(135, "EUR"), "T-o2"))
    assert [(r.amount, r.currency) for r in rc.records_of(held)] == [(135, "EUR")]
    assert rc.records_of(order("o3", OrderStatus.CANCELLED, payment=None)) == []


def test_every_class_of_difference():
    orders = [
        order("ok"),
        order("refunded", refunds=[refund("rf_r", 400, payment="T-refunded", provider_refund_id="2026x")]),
        order("amount"),
        order("currency"),
        order("pending", refunds=[refund("rf_p", 200, status="pending", payment="T-pending")]),
        order("gone"),  # not at the provider at all
        order("gone_refund", refunds=[refund("rf_g", 100, payment="T-gone_refund")]),
        order("dup"),
        order("late", OrderStatus.CANCELLED, payment=None),
        order("late_expired", OrderStatus.EXPIRED, payment=None),
        order("waiting", OrderStatus.PENDING_PAYMENT, payment=None),
    ]
    rows = [
        pay_row("T-ok", "ok"),
        pay_row("T-refunded", "refunded"), refund_row("rf_r", "refunded", 400, payment="T-refunded"),
        pay_row("T-amount", "amount", 999),
        pay_row("T-currency", "currency", currency="USD"),
        pay_row("T-pending", "pending"), refund_row("rf_p", "pending", 200),
        pay_row("T-gone_refund", "gone_refund"),
        pay_row("T-dup", "dup"), pay_row("T-dup-2", "dup"),
        pay_row("T-late", "late"), pay_row("T-late-2", "late"),
        pay_row("T-exp", "late_expired"),
        pay_row("T-w", "waiting"),
        pay_row("T-stranger", "ord_nobody"),
        pay_row("T-anon", None),
        refund_row("rf_dashboard", "ok", 50),
        StatementRow(rc.FEE, "T-ok:fee", 6, "CNY", rc.SUCCEEDED, NOON, "ok"),
        StatementRow(rc.FEE, "rf_r:fee", -2, "CNY", rc.SUCCEEDED, NOON, "refunded"),
        StatementRow(rc.OTHER, "payout", -5000, "CNY", rc.SUCCEEDED, NOON),
    ]
    outcome = classify(rows, orders)
    assert categories(outcome) == sorted([
        ("amount_differs", "payment", "amount"), ("amount_differs", "payment", "currency"),
        ("status_differs", "refund", "pending"),
        ("missing_at_provider", "payment", "gone"), ("missing_at_provider", "refund", "gone_refund"),
        ("duplicate_charge", "payment", "dup"),
        ("status_differs", "payment", "late"), ("duplicate_charge", "payment", "late"),
        ("status_differs", "payment", "late_expired"), ("status_differs", "payment", "waiting"),
        ("missing_here", "payment", "ord_nobody"), ("missing_here", "payment", ""),
        ("missing_here", "refund", "ok"),
    ])
    assert outcome.matched == 6  # ok, refunded + its refund, pending's payment, gone_refund's payment, dup's first
    late = {d.order_id for d in outcome.late_payments}
    assert late == {"late", "late_expired"}  # a still pending order is reported, never refunded
    assert {d.reference for d in outcome.differences if d.category == "duplicate_charge"} == {"T-dup-2", "T-late-2"}
    assert outcome.totals["fees"] == {"count": 2, "totals": {"CNY": 4}}
    assert outcome.totals["payments"]["totals"] == {"CNY": 12999, "USD": 1000}
    assert outcome.totals["refunds"] == {"count": 3, "totals": {"CNY": 650}}
    assert outcome.other_rows == 1
    counts = outcome.counts()
    assert counts["matched"] == 6 and sum(counts.values()) == 6 + len(outcome.differences)
    shown = next(d for d in outcome.differences if d.order_id == "amount").to_dict("alipay", DAY)
    assert shown["provider"]["amount"] == {"amount": 999, "currency": "CNY"} and shown["ours"]["amount"]["amount"] == 1000
    assert shown["mismatch_id"].startswith("mm_") and shown["order_status"] == "PAID"


def test_mismatch_ids_are_stable_across_runs_and_differ_between_differences():
    orders, rows = [order("amount")], [pay_row("T-amount", "amount", 999), pay_row("T-x", None)]
    first = [d.mismatch_id("alipay", DAY) for d in classify(rows, orders).differences]
    again = [d.mismatch_id("alipay", DAY) for d in classify(rows, orders).differences]
    assert first == again and len(set(first)) == 2


def test_a_refund_the_provider_reports_failed_after_it_succeeded():
    orders = [order("o", provider="stripe", payment="pi_1",
                    refunds=[replace(refund("rf", 300, payment="pi_1", provider_refund_id="re_1"), provider="stripe")])]
    rows = [StatementRow(rc.PAYMENT, "pi_1", 1000, "CNY", rc.SUCCEEDED, NOON, "o"),
            StatementRow(rc.REFUND, "re_1", 300, "CNY", rc.SUCCEEDED, NOON, "o", payment_reference="pi_1"),
            StatementRow(rc.REFUND, "re_1", 300, "CNY", rc.FAILED, "2026-03-01T05:00:00.000Z", "o")]
    outcome = classify(rows, orders, day=rc.business_day("stripe", DAY), provider="stripe")
    assert outcome.matched == 2 and categories(outcome) == [("status_differs", "refund", "o")]


def test_midnight_belongs_to_one_day_with_the_grace_period():
    """Beijing midnight is 16:00 UTC. A payment the provider booked at 23:59:58 and we recorded at 00:00:05 is
    matched by the day the provider booked it; a record of ours from just after midnight that is in no statement
    is reported by the day before (it may sit in that day's file), one from later by its own day."""
    across = order("across", paid_at="2026-03-01T16:00:05.000Z")  # 00:00:05 on 2 March in Beijing
    row = pay_row("T-across", "across", at="2026-03-01T15:59:58.000Z")
    assert classify([row], [across]).matched == 1
    next_day = rc.business_day("alipay", date(2026, 3, 2))
    assert classify([], [across], day=next_day).differences == []  # the 1 March run reports it, not this one
    assert categories(classify([], [across])) == [("missing_at_provider", "payment", "across")]
    later = order("later", paid_at="2026-03-01T16:20:00.000Z")  # 00:20 on 2 March
    assert categories(classify([], [later], day=next_day)) == [("missing_at_provider", "payment", "later")]
    assert classify([], [later]).differences == []
    # Without a grace period the calendar day decides.
    assert categories(classify([], [across], day=next_day, grace=timedelta(0))) == [
        ("missing_at_provider", "payment", "across")]


# ---- Alipay's trade bill ---------------------------------------------------------------------------------------

ALIPAY_DETAILS = """#支付宝业务明细查询
#账号：[20881234567890120156]
#起始日期：[2026年03月01日 00:00:00]   终止日期：[2026年03月02日 00:00:00]
#-----------------------------------------业务明细列表----------------------------------------
支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注
2026030121001004720299453898\t,ord_a\t,交易\t,支付宝APP支付,2026-03-01 00:06:14,2026-03-01 00:06:15,\t,\t,\t,\t,*杨(137****2600)\t,20.00,20.00,0.00,0.00,0.00,0.00,0.00,,0.00\t,0.00,\t,-0.12,0.00,订单
2026030121001004900267628590\t,ord_b\t,交易\t,支付宝APP支付,2026-03-01 10:06:16,2026-03-01 10:06:17,\t,\t,\t,\t,*杨(137****2600)\t,35.50,35.50,0.00,0.00,0.00,0.00,0.00,,0.00\t,0.00,\t,-0.21,0.00,
2026030121001004900267628590\t,ord_b\t,退款\t,支付宝APP支付,2026-03-01 12:00:00,2026-03-01 12:00:01,\t,\t,\t,\t,*杨(137****2600)\t,-5.50,-5.50,0.00,0.00,0.00,0.00,0.00,,0.00\t,0.00,rf_0123456789abcdef\t,0.03,0.00,
#-----------------------------------------业务明细列表结束------------------------------------
#交易合计：{trades}笔，商家实收共55.50元，商家优惠共0.00元
#退款合计：1笔，商家实收退款共{refunded}元，商家优惠退款共0.00元
#导出时间：[2026年03月02日 09:00:10]
"""
ALIPAY_SUMMARY = """#支付宝业务汇总查询
#账号：[20881234567890120156]
#起始日期：[2026年03月01日 00:00:00]   终止日期：[2026年03月02日 00:00:00]
#-----------------------------------------业务汇总列表----------------------------------------
门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,支付宝优惠（元）,商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）
合计,,2,1,50.00,{net},0.00,0.00,0.00,-0.30,0.00,49.70
#----------------------------------------业务汇总列表结束-------------------------------------
#导出时间：[2026年03月02日 09:00:10]
"""


def gbk_zip(files: dict[str, str]) -> bytes:
    """A zip as Alipay writes it: GBK contents and GBK entry names *without* the UTF-8 flag (written under ASCII
    placeholders of the same byte length, then patched in: the CRC covers the data, not the name)."""
    buffer = io.BytesIO()
    names = {}
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for i, (name, text) in enumerate(files.items()):
            raw = name.encode("gbk")
            placeholder = (f"{i}" * len(raw)).encode()
            names[placeholder] = raw
            archive.writestr(placeholder.decode(), text.replace("\n", "\r\n").encode("gbk"))
    data = buffer.getvalue()
    for placeholder, raw in names.items():
        assert data.count(placeholder) == 2  # local header and central directory
        data = data.replace(placeholder, raw)
    return data


def alipay_zip(trades=2, refunded="-5.50", net="50.00", details=None):
    return gbk_zip({"20881234567890120156_20260301_业务明细.csv":
                    details or ALIPAY_DETAILS.format(trades=trades, refunded=refunded),
                    "20881234567890120156_20260301_业务明细(汇总).csv": ALIPAY_SUMMARY.format(net=net)})


def test_alipay_bill_zip_gbk_rows_and_totals():
    archive = zipfile.ZipFile(io.BytesIO(alipay_zip()))
    assert all(not info.flag_bits & 0x800 for info in archive.infolist())  # GBK names, as Alipay writes them
    assert sorted(alipay_bill._entry_name(i) for i in archive.infolist())[0].endswith("_业务明细(汇总).csv")
    statement = alipay_bill.parse_trade_bill(alipay_zip(), ALIPAY_DAY)
    assert statement.checks == ("footer totals", "summary file")
    by_kind = {}
    for row in statement.rows:
        by_kind.setdefault(row.kind, []).append(row)
    first, second = by_kind["payment"]
    assert (first.reference, first.order_id, first.amount, first.currency) == ("2026030121001004720299453898", "ord_a",
                                                                               2000, "CNY")
    assert first.at == "2026-02-28T16:06:15.000Z" and second.amount == 3550  # Beijing 00:06:15 is 16:06:15 UTC
    (back,) = by_kind["refund"]
    assert (back.amount, back.merchant_reference, back.payment_reference, back.order_id) == (
        550, "rf_0123456789abcdef", "2026030121001004900267628590", "ord_b")
    assert [f.amount for f in by_kind["fee"]] == [12, 21, -3]  # charged with a payment, given back with a refund


@pytest.mark.parametrize("broken, error", [
    (dict(trades=3), "交易合计 says 3 rows"),
    (dict(refunded="-5.00"), "退款合计 says -5.00"),
    (dict(net="51.00"), "商家实收"),
])
def test_alipay_bill_that_does_not_add_up_is_refused(broken, error):
    with pytest.raises(SummaryMismatch, match=error):
        alipay_bill.parse_trade_bill(alipay_zip(**broken), ALIPAY_DAY)


def test_alipay_bill_unreadable_or_for_another_day_is_refused():
    with pytest.raises(StatementInvalid, match="not a readable zip"):
        alipay_bill.parse_trade_bill(b"<html>link expired</html>", ALIPAY_DAY)
    with pytest.raises(StatementInvalid, match="not 2026-03-02"):
        alipay_bill.parse_trade_bill(alipay_zip(), rc.business_day("alipay", date(2026, 3, 2)))
    utf8 = io.BytesIO()
    with zipfile.ZipFile(utf8, "w") as archive:
        archive.writestr("x_业务明细.csv", b"\xff\xfe\xfa broken")
    with pytest.raises(StatementInvalid, match="not GBK"):
        alipay_bill.parse_trade_bill(utf8.getvalue(), ALIPAY_DAY)
    no_footer = ALIPAY_DETAILS.format(trades=2, refunded="-5.50").split("#交易合计")[0]
    with pytest.raises(SummaryMismatch, match="no '交易合计' line"):
        alipay_bill.parse_trade_bill(alipay_zip(details=no_footer), ALIPAY_DAY)


def test_alipay_request_is_signed_over_every_parameter_but_sign():
    params = {"app_id": "1", "method": "m", "sign_type": "RSA2", "empty": "", "biz_content": "{}", "sign": "x"}
    assert alipay_bill.request_signing_content(params) == b"app_id=1&biz_content={}&method=m&sign_type=RSA2"


# ---- WeChat Pay's trade bill -----------------------------------------------------------------------------------

WECHAT_BILL = """交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注
`2026-03-01 16:47:58,`wxe1696e7c7db8e7f4,`1579507281,`0,`,`4200002166202603010324636876,`ord_w1,`oVgfJ5d35c6iAXrRCnfhOGF9aHT8,`JSAPI,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`50302709992026030191956632208,`rf_w1,`50.00,`0.00,`ORIGINAL,`SUCCESS,`客户付款,`,`-0.27000,`0.54%,`0.00,`50.00,`
`2026-03-01 10:06:33,`wxe1696e7c7db8e7f4,`1579507281,`0,`,`4200002360202603011150650780,`ord_w2,`oVgfJ5TrnzDOSuaxbFc33mw-5LUY,`JSAPI,`SUCCESS,`OTHERS,`CNY,`60.00,`0.00,`0,`0,`0.00,`0.00,`,`,`客户付款,`,`0.32400,`0.54%,`60.00,`0.00,`
`2026-03-01 11:00:00,`wxe1696e7c7db8e7f4,`1579507281,`0,`,`4200002360202603011150650781,`ord_w3,`oVgfJ5TrnzDOSuaxbFc33mw-5LUY,`NATIVE,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`50302709992026030191956632209,`rf_w3,`1.00,`0.00,`ORIGINAL,`PROCESSING,`客户付款,`,`0.00000,`0.54%,`0.00,`1.00,`
总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额
`{count},`60.00,`51.00,`0.00,`{fees},`60.00,`51.00
"""
WECHAT_DAY = rc.business_day("wechatpay", DAY)


def test_wechat_bill_rows_fees_and_summary():
    statement = wechat_bill.parse_trade_bill(WECHAT_BILL.format(count=3, fees="0.05400"), WECHAT_DAY)
    rows = {(r.kind, r.order_id): r for r in statement.rows}
    refund_w1 = rows[("refund", "ord_w1")]
    assert (refund_w1.reference, refund_w1.merchant_reference, refund_w1.amount, refund_w1.status) == (
        "50302709992026030191956632208", "rf_w1", 5000, rc.SUCCEEDED)
    assert refund_w1.payment_reference == "4200002166202603010324636876"
    assert rows[("payment", "ord_w2")].amount == 6000 and rows[("payment", "ord_w2")].at == "2026-03-01T02:06:33.000Z"
    assert rows[("refund", "ord_w3")].status == rc.PENDING
    # Fees are stated to 1/1000 fen: rounded half up per row (0.324 yuan -> 32 fen), negative when given back.
    assert sorted(r.amount for r in statement.rows if r.kind == rc.FEE) == [-27, 32]


@pytest.mark.parametrize("count, fees, error", [(4, "0.05400", "says '4'"), (3, "0.06400", "手续费总金额")])
def test_wechat_bill_that_does_not_add_up_is_refused(count, fees, error):
    with pytest.raises(SummaryMismatch, match=error):
        wechat_bill.parse_trade_bill(WECHAT_BILL.format(count=count, fees=fees), WECHAT_DAY)


def test_wechat_bill_without_summary_or_header_is_refused():
    with pytest.raises(SummaryMismatch):
        wechat_bill.parse_trade_bill(WECHAT_BILL.split("总交易单数")[0], WECHAT_DAY)
    with pytest.raises(StatementInvalid, match="header"):
        wechat_bill.parse_trade_bill("`2026-03-01 10:00:00,`x\n", WECHAT_DAY)


def test_wechat_bill_hash_is_checked_before_reading():
    body = WECHAT_BILL.format(count=3, fees="0.05400").encode()
    wechat_bill.verify_hash(body, "SHA1", hashlib.sha1(body).hexdigest().upper())
    with pytest.raises(HashMismatch):
        wechat_bill.verify_hash(body + b" ", "SHA1", hashlib.sha1(body).hexdigest())
    with pytest.raises(HashMismatch, match="hash_type"):
        wechat_bill.verify_hash(body, "MD5", hashlib.md5(body).hexdigest())


# ---- Stripe's balance transactions -----------------------------------------------------------------------------

def test_stripe_balance_transactions_as_rows():
    created = int(datetime(2026, 3, 1, 9, tzinfo=UTC).timestamp())
    charge = {"id": "txn_1", "type": "charge", "amount": 1850, "currency": "eur", "fee": 84, "created": created,
              "source": {"id": "ch_1", "object": "charge", "amount": 1999, "currency": "usd", "payment_intent": "pi_1",
                         "metadata": {"order_id": "ord_s"}}}
    refund_txn = {"id": "txn_2", "type": "refund", "amount": -462, "currency": "eur", "fee": 0, "created": created,
                  "source": {"id": "re_1", "object": "refund", "amount": 500, "currency": "usd",
                             "payment_intent": "pi_1", "metadata": {"order_id": "ord_s"}}}
    failed = {"id": "txn_3", "type": "refund_failure", "amount": 462, "currency": "eur", "fee": 0,
              "created": created, "source": {"id": "re_1", "object": "refund", "amount": 500, "currency": "usd"}}
    fee = {"id": "txn_4", "type": "stripe_fee", "amount": -200, "currency": "eur", "fee": 0, "created": created}
    payout = {"id": "txn_5", "type": "payout", "amount": -10000, "currency": "eur", "fee": 0, "created": created,
              "source": "po_1"}
    expanded = {**charge, "id": "txn_6", "source": {**charge["source"], "metadata": {}, "payment_intent": {
        "id": "pi_2", "object": "payment_intent", "metadata": {"order_id": "ord_t"}}}}
    (payment, _) = stripe_balance.rows_of([expanded])
    assert (payment.reference, payment.order_id) == ("pi_2", "ord_t")  # the order id is on the PaymentIntent
    rows = stripe_balance.rows_of([charge, refund_txn, failed, fee, payout])
    assert [(r.kind, r.reference, r.amount, r.currency, r.status) for r in rows] == [
        ("payment", "pi_1", 1999, "USD", "succeeded"), ("fee", "txn_1:fee", 84, "EUR", "succeeded"),
        ("refund", "re_1", 500, "USD", "succeeded"), ("refund", "re_1", 500, "USD", "failed"),
        ("fee", "txn_4", 200, "EUR", "succeeded"), ("other", "txn_5", -10000, "EUR", "succeeded")]
    assert rows[0].order_id == "ord_s" and rows[0].at == "2026-03-01T09:00:00.000Z"
    with pytest.raises(StatementInvalid):
        stripe_balance.rows_of([{"id": "txn_x", "type": "charge"}])


# ---- the fakes write what the clients read ---------------------------------------------------------------------

def test_the_fake_files_read_back_as_the_rows_they_were_built_from():
    from localrun import fake_statements
    from localrun.fake_providers import ProviderKeys

    rows = [pay_row("2026001", "ord_1", 1999, at="2026-03-01T01:00:00.000Z"),
            StatementRow(rc.REFUND, "rf_1", 500, "CNY", rc.SUCCEEDED, "2026-03-01T02:00:00.000Z", "ord_1",
                         payment_reference="2026001", merchant_reference="rf_1")]
    read = alipay_bill.parse_trade_bill(fake_statements.alipay_bill(DAY, rows), ALIPAY_DAY).rows
    assert [(r.kind, r.amount, r.order_id) for r in read] == [("payment", 1999, "ord_1"), ("fee", 12, "ord_1"),
                                                             ("refund", 500, "ord_1"), ("fee", -3, "ord_1")]
    keys = ProviderKeys.__new__(ProviderKeys)  # only the ids are written into the file
    keys.wechat_app_id, keys.wechat_mch_id = "wx1", "1900000001"
    text = fake_statements.wechat_bill(rows, keys).decode()
    read = wechat_bill.parse_trade_bill(text, WECHAT_DAY).rows
    assert [(r.kind, r.amount, r.merchant_reference) for r in read if r.kind != rc.FEE] == [
        ("payment", 1999, None), ("refund", 500, "rf_1")]
    with pytest.raises(SummaryMismatch):
        wechat_bill.parse_trade_bill(fake_statements.wechat_bill(rows, keys, summary_off=True).decode(), WECHAT_DAY)
    with pytest.raises(SummaryMismatch):
        alipay_bill.parse_trade_bill(fake_statements.alipay_bill(DAY, rows, summary_off=True), ALIPAY_DAY)


def test_statement_amounts_are_exact():
    assert minor("`12.34", "x") == 1234 and minor("-0.50\t", "x") == -50
    assert minor("0.32450", "fee", rounded=True) == 32 and minor("0.32500", "fee", rounded=True) == 33
    for bad in ("12.345", "1e3", "１２", "", "12,00"):
        with pytest.raises(StatementInvalid):
            minor(bad, "x")
