"""Daily reconciliation end to end (moto): orders placed, paid, refunded and cancelled through the real handlers
against the provider fakes; the scheduled function fetches each provider's statement from the statement fakes
(built from the provider fakes' own ledgers, with injected differences) over HTTP, and the admin route shows the
stored result."""

from __future__ import annotations

import boto3
import pytest

from localrun.fake_providers import FakeProviders, signed_webhook
from localrun.fake_statements import with_statements
from localrun.lambdas import LocalContext
from shop.adapters import events as event_adapter
from shop.domain import clock
from shop.domain import reconciliation as rc
from shop.domain.money import Money
from shop.payments import secrets as payment_secrets
from shop.reconciliation import stripe_balance
from tests.api.conftest import PROVIDER_KEYS, TABLE
from tests.api.test_orders_api import make_sku, order_body
from tests.loopback import serve_fakes


@pytest.fixture(scope="module")
def loopback():
    """One loopback HTTP server for the module; each test puts its own fakes behind it."""
    holder: dict = {}
    server, base = serve_fakes(holder)
    yield base, holder
    server.shutdown()
    server.server_close()


@pytest.fixture
def fakes(api, provider_env, loopback, monkeypatch):
    base, holder = loopback
    fakes = holder["fakes"] = with_statements(FakeProviders(base, PROVIDER_KEYS))
    for name, value in fakes.function_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RECONCILIATION_GRACE_SECONDS", "0")  # the test's own records sit right at "now"
    payment_secrets._cache.clear()
    make_sku(api, "TEA", on_hand=50, amount=1000, currency="CNY")
    return fakes


@pytest.fixture
def published(monkeypatch):
    sent = []
    monkeypatch.setattr(event_adapter.EventBridgePublisher, "publish",
                        lambda self, detail_type, detail: sent.append((detail_type, detail)))
    return sent


def place(api, provider, key):
    result = api.request("POST", "/orders", body=order_body(("TEA", 1), payment_provider=provider),
                         headers={"Idempotency-Key": key})
    assert result.status == 201, result.text
    return result.json()


def pay(api, fakes, order):
    provider, order_id = order["payment_provider"], order["order_id"]
    money = Money(order["total"]["amount"], order["total"]["currency"])
    fakes.mark_paid(order_id, money)
    headers, body = signed_webhook(fakes.keys, provider, order_id, money,
                                   payment_id=fakes.payment_id(provider, order_id))
    answer = api.request("POST", f"/webhooks/{provider}", user=None, headers=dict(headers), raw=body)
    assert answer.status == 200, answer.text


def refund(api, order, amount, key):
    result = api.admin("POST", f"/admin/orders/{order['order_id']}/refunds", headers={"Idempotency-Key": key},
                       body={"amount": {"amount": amount, "currency": "CNY"}})
    assert result.status == 201 and result.json()["refunds"][-1]["status"] == "succeeded", result.text


def reconcile(provider, day, fail_on_error=False):
    from reconciliation.handler import lambda_handler

    return lambda_handler({"date": day, "providers": [provider], "fail_on_error": fail_on_error},
                          LocalContext("reconciliation"))


def today(provider):
    return rc.business_date_of(provider, clock.now()).isoformat()


def stored(api, day, provider):
    answer = api.admin("GET", f"/admin/reconciliation/{day}")
    assert answer.status == 200, answer.text
    return next(p for p in answer.json()["providers"] if p["provider"] == provider)


def result_items(provider, day):
    items = boto3.client("dynamodb").scan(TableName=TABLE)["Items"]
    return [i for i in items if i["pk"]["S"] == f"RECON#{provider}#{day}"]


def test_a_day_with_every_class_of_difference_then_a_rerun(api, fakes, published):
    names = ("ok", "refunded", "amount", "lost_refund", "dup", "lost_payment", "late")
    orders = {name: place(api, "alipay", name) for name in names}
    for name in names[:-1]:
        pay(api, fakes, orders[name])
    refund(api, orders["refunded"], 300, "rf-refunded")
    refund(api, orders["lost_refund"], 200, "rf-lost")
    late = orders["late"]["order_id"]
    assert api.request("POST", f"/orders/{late}/cancel").json()["status"] == "CANCELLED"
    fakes.mark_paid(late, Money(1000, "CNY"))  # ...and yet the customer paid: its notification never arrived
    inject = fakes.statements.inject
    inject("amount_difference", "alipay", order_id=orders["amount"]["order_id"], delta=1)
    inject("missing_refund", "alipay", order_id=orders["lost_refund"]["order_id"])
    inject("duplicate_charge", "alipay", order_id=orders["dup"]["order_id"])
    inject("missing_payment", "alipay", order_id=orders["lost_payment"]["order_id"])
    inject("extra_charge", "alipay", amount={"amount": 777, "currency": "CNY"})
    day = today("alipay")

    assert reconcile("alipay", day)["results"][0]["status"] == "completed"
    first = stored(api, day, "alipay")
    assert first["counts"] == {"matched": 5, "amount_differs": 1, "status_differs": 1, "missing_here": 1,
                               "missing_at_provider": 2, "duplicate_charge": 1}
    by_category = {(d["category"], d["kind"], d["order_id"]): d for d in first["differences"]}
    ids = {name: o["order_id"] for name, o in orders.items()}
    assert set(by_category) == {
        ("amount_differs", "payment", ids["amount"]), ("missing_at_provider", "refund", ids["lost_refund"]),
        ("duplicate_charge", "payment", ids["dup"]), ("missing_at_provider", "payment", ids["lost_payment"]),
        ("status_differs", "payment", late), next(k for k in by_category if k[0] == "missing_here")}
    assert by_category[("amount_differs", "payment", ids["amount"])]["provider"]["amount"]["amount"] == 1001
    late_payment = by_category[("status_differs", "payment", late)]
    assert late_payment["late_payment"] and late_payment["action"] == "refunded"
    assert {d["action"] for d in first["differences"] if not d["late_payment"]} == {"reported"}
    assert first["statement"]["checks"] == ["footer totals", "summary file"]
    assert first["statement"]["fees"]["count"] >= 6 and first["statement"]["fees"]["totals"]["CNY"] > 0
    assert first["timezone"] == "UTC+08:00" and first["status"] == "completed" and first["error"] is None
    # The late payment went back through the automatic-refund path, visible on the order; nothing else changed.
    refunded = api.admin("GET", f"/admin/orders?order_number={orders['late']['order_number']}").json()["items"][0]
    assert refunded["status"] == "CANCELLED" and refunded["payment_status"] == "refunded"
    assert [(r["automatic"], r["status"], r["amount"]) for r in refunded["refunds"]] == [(True, "succeeded", 1000)]
    assert fakes.refunded[late] == 1000
    mismatches = [detail for kind, detail in published if kind == "reconciliation.mismatch"]
    assert len(mismatches) == 6 and {m["mismatch_id"] for m in mismatches} == {d["mismatch_id"] for d in
                                                                               first["differences"]}

    # A re-run replaces the result: the late payment and its refund are now on the order and match.
    published.clear()
    reconcile("alipay", day)
    again = stored(api, day, "alipay")
    assert again["counts"] == {"matched": 7, "amount_differs": 1, "status_differs": 0, "missing_here": 1,
                               "missing_at_provider": 2, "duplicate_charge": 1}
    assert again["ran_at"] >= first["ran_at"] and len(result_items("alipay", day)) == 1
    assert {d["mismatch_id"] for d in again["differences"]} == {d["mismatch_id"] for d in first["differences"]
                                                                if not d["late_payment"]}
    assert fakes.refunded[late] == 1000  # refunded once
    assert [kind for kind, _ in published] == ["reconciliation.mismatch"] * 5

    # The lost notification turns up after all (providers retry for a day): recorded, not refunded again.
    headers, body = signed_webhook(fakes.keys, "alipay", late, Money(1000, "CNY"),
                                   payment_id=fakes.payment_id("alipay", late))
    assert api.request("POST", "/webhooks/alipay", user=None, headers=dict(headers), raw=body).status == 200
    after = api.admin("GET", f"/admin/orders?order_number={orders['late']['order_number']}").json()["items"][0]
    assert after["refunds"] == refunded["refunds"] and after["amount_paid"] == refunded["amount_paid"]
    webhook = [i for i in boto3.client("dynamodb").scan(TableName=TABLE)["Items"]
               if i["pk"]["S"].startswith("WEBHOOK#alipay#") and i.get("order_id", {}).get("S") == late]
    assert sorted(i["outcome"]["S"] for i in webhook) == ["already_refunded", "refunded"]

    assert api.admin("GET", "/admin/reconciliation/2001-01-01").status == 404
    for bad in ("2026-13-01", "yesterday", "2026-02-30"):
        assert api.admin("GET", f"/admin/reconciliation/{bad}").status == 422, bad
    assert api.request("GET", f"/admin/reconciliation/{day}").status == 403  # operators only


def test_a_corrupted_file_fails_the_run_and_an_expired_link_is_fetched_again(api, fakes, published):
    from reconciliation.handler import ReconciliationFailed

    order = place(api, "wechatpay", "w1")
    pay(api, fakes, order)
    day = today("wechatpay")
    published.clear()
    fakes.statements.inject("corrupt_hash", "wechatpay", times=1)
    with pytest.raises(ReconciliationFailed, match="hash-mismatch"):
        reconcile("wechatpay", day, fail_on_error=True)
    failed = stored(api, day, "wechatpay")
    assert failed["status"] == "failed" and failed["error"]["reason"] == "hash-mismatch"
    assert failed["differences"] == [] and failed["statement"] is None and published == []  # never a partial result

    links = len(fakes.statements.links)
    fakes.statements.inject("expired_link", "wechatpay", times=1)
    assert reconcile("wechatpay", day)["results"][0]["status"] == "completed"
    assert len(fakes.statements.links) == links + 2  # the expired link, then a fresh one
    done = stored(api, day, "wechatpay")  # replaces the failed run
    assert done["status"] == "completed" and done["counts"]["matched"] == 1 and done["statement"]["checks"] == [
        "sha1", "summary"]
    assert len(result_items("wechatpay", day)) == 1

    fakes.statements.inject("expired_link", "wechatpay", times=3)  # expired on every attempt
    assert reconcile("wechatpay", day)["results"][0]["status"] == "failed"
    assert stored(api, day, "wechatpay")["error"]["reason"] == "statement-unavailable"


def test_alipay_expired_link_and_a_file_that_does_not_match_its_summary(api, fakes):
    order = place(api, "alipay", "a1")
    pay(api, fakes, order)
    day = today("alipay")
    fakes.statements.inject("expired_link", "alipay", times=1)
    reconcile("alipay", day)
    assert stored(api, day, "alipay")["counts"]["matched"] == 1
    fakes.statements.inject("summary_mismatch", "alipay")
    reconcile("alipay", day)
    failed = stored(api, day, "alipay")
    assert failed["status"] == "failed" and failed["error"]["reason"] == "summary-mismatch"


def test_stripe_balance_transactions_followed_page_by_page(api, fakes, monkeypatch):
    monkeypatch.setattr(stripe_balance, "PAGE", 1)
    order = place(api, "stripe", "s1")
    pay(api, fakes, order)
    refund(api, order, 250, "rf-s1")
    day = today("stripe")
    reconcile("stripe", day)
    result = stored(api, day, "stripe")
    assert result["counts"]["matched"] == 2 and sum(result["counts"].values()) == 2
    assert result["statement"]["payments"] == {"count": 1, "totals": {"CNY": 1000}}
    assert result["statement"]["refunds"] == {"count": 1, "totals": {"CNY": 250}}
    assert result["statement"]["fees"]["count"] == 1 and result["timezone"] == "UTC"
