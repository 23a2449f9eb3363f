"""Hostile input through the real handlers (moto): always a 4xx problem+json, never a 5xx, and nothing changes.

Bodies that do not decode (deep nesting, invalid UTF-8, integers beyond Python's digit limit, NaN, lone
surrogates, junk) on every route and on the webhooks; provider amounts that are not whole minor units
in range; tampered cursors; ids longer than any real id; a DynamoDB ValidationException; and the
Idempotency-Key of reorder, which is required and checked like POST /orders.
"""

from __future__ import annotations

import base64
import json

import boto3
import pytest
from botocore.exceptions import ClientError

from localrun.gateway import match, proxy_event
from localrun.lambdas import LocalContext
from shop.adapters import wiring
from shop.payments import secrets as payment_secrets
from shop.payments.base import MAX_MINOR_UNITS
from shop.payments.signing import hmac_header
from tests.api.conftest import PROVIDER_KEYS, TABLE, Result
from tests.api.test_orders_api import make_sku, order_body, place
from tests.unit.test_provider_amounts import alipay_webhook, sandbox_webhook, stripe_webhook, wechat_webhook

pytestmark = pytest.mark.usefixtures("provider_env")


@pytest.fixture(autouse=True)
def signing_keys(provider_env, monkeypatch):
    """The functions verify with KEYS (conftest may be imported twice, each copy with its own RSA keys)."""
    for key, value in KEYS.function_env().items():
        monkeypatch.setenv(key, value)
    payment_secrets._cache.clear()

PROBLEM_JSON = "application/problem+json"
KEYS = PROVIDER_KEYS  # the keys the functions under test are configured with

DEEP = b"[" * 30_000 + b"]" * 30_000  # 60 KB (under the 64 KB cap), far deeper than json.loads can recurse
DEEPISH = b'{"a":' * 200 + b"1" + b"}" * 200  # parses, but deeper than any request body could be
HOSTILE_BODIES = {
    "deeply nested": DEEP,
    "nested beyond any schema": DEEPISH,
    "invalid utf-8": b'{"items": [{"sku": "TEE\xff\xfe", "quantity": 1}]}',
    "5000-digit integer": b'{"items": [{"sku": "TEE", "quantity": ' + b"9" * 5000 + b"}]}",
    "NaN": b'{"delta": NaN, "reason": "x"}',
    "Infinity": b'{"delta": 1e999, "reason": "x"}',
    "lone surrogate": b'{"name": "\\ud800", "reason": "\\udfff"}',
    "not json": b"{not json",
    "truncated": b'{"items": [{"sku": "TEE"',
    "nul bytes": b"\x00\x00\x00",
}
ECHO_MARKERS = ("99999999", "Traceback", "\\ud800", "not json")
ORDER_ROUTES = [  # (method, path template, body that would be valid)
    ("GET", "/orders/{id}", None),
    ("POST", "/orders/{id}/cancel", None),
    ("POST", "/orders/{id}/reorder", {}),
    ("POST", "/admin/orders/{id}/cancel", None),
    ("POST", "/admin/orders/{id}/refunds", {}),
    ("POST", "/admin/orders/{id}/shipments", {}),
    ("POST", "/admin/orders/{id}/approve", None),
    ("POST", "/admin/orders/{id}/reject", None),
]


def table_items() -> list[str]:
    """Everything stored, canonically: the proof that a rejected request changed nothing."""
    items = boto3.client("dynamodb").scan(TableName=TABLE, ConsistentRead=True)["Items"]
    return sorted(json.dumps(item, sort_keys=True) for item in items)


def assert_problem(result, *statuses: int) -> dict:
    assert result.status in statuses, (result.status, result.text[:500])
    assert result.headers["content-type"] == PROBLEM_JSON
    problem = result.json()
    assert {"type", "title", "status", "detail"} <= set(problem) and problem["status"] == result.status
    for marker in ECHO_MARKERS:
        assert marker not in result.text, marker
    return problem


def send(api, method, path, *, admin=False, **kwargs):
    return api.admin(method, path, **kwargs) if admin else api.request(method, path, **kwargs)


@pytest.fixture
def shop(api):
    """A SKU and one unpaid order of alice's."""
    make_sku(api, "TEE", on_hand=5)
    order = place(api, ("TEE", 2), key="first").json()
    return order


# ---- undecodable bodies, on every route --------------------------------------------------------

def _every_route(order_id: str) -> list[tuple[str, str, bool]]:
    return [
        ("GET", "/skus/TEE", False),
        ("POST", "/orders", False),
        ("GET", "/orders", False),
        ("GET", f"/orders/{order_id}", False),
        ("POST", f"/orders/{order_id}/cancel", False),
        ("POST", f"/orders/{order_id}/reorder", False),
        ("PUT", "/admin/skus/TEE", True),
        ("POST", "/admin/skus/TEE/adjustments", True),
        ("GET", "/admin/skus/TEE", True),
        ("GET", "/admin/skus/TEE/ledger", True),
        ("GET", "/admin/orders", True),
        ("POST", f"/admin/orders/{order_id}/cancel", True),
        ("POST", f"/admin/orders/{order_id}/shipments", True),
        ("POST", f"/admin/orders/{order_id}/refunds", True),
        ("POST", f"/admin/orders/{order_id}/approve", True),
        ("POST", f"/admin/orders/{order_id}/reject", True),
    ]


@pytest.mark.parametrize("name", list(HOSTILE_BODIES))
def test_undecodable_bodies_are_400_on_every_route_and_change_nothing(api, shop, name):
    before = table_items()
    for method, path, admin in _every_route(shop["order_id"]):
        result = send(api, method, path, admin=admin, raw=HOSTILE_BODIES[name], headers={"Idempotency-Key": "h1"})
        problem = assert_problem(result, 400, 422)
        assert problem["type"] == "/problems/malformed-body", (method, path)
    assert table_items() == before


def test_a_base64_body_that_does_not_decode_is_400(api, shop):
    route, params, _ = match("POST", "/orders")
    event = proxy_event(route, params, "POST", "/orders", [("Idempotency-Key", "b64"), ("X-Local-User", "alice")],
                        b"{}", "127.0.0.1")
    event["body"], event["isBase64Encoded"] = "%%% not base64 %%%", True
    from create_order.handler import lambda_handler

    before = table_items()
    assert_problem(Result(lambda_handler(event, LocalContext("create_order"))), 400)
    assert table_items() == before


def test_a_well_formed_body_still_works_when_sent_base64(api, shop):
    route, params, _ = match("POST", "/orders")
    payload = json.dumps(order_body(("TEE", 1))).encode()
    event = proxy_event(route, params, "POST", "/orders", [("Idempotency-Key", "b64-ok"), ("X-Local-User", "alice")],
                        payload, "127.0.0.1")
    event["body"], event["isBase64Encoded"] = base64.b64encode(payload).decode(), True
    from create_order.handler import lambda_handler

    result = Result(lambda_handler(event, LocalContext("create_order")))
    assert result.status == 201, result.text


def test_big_but_parseable_numbers_are_422_not_500(api, shop):
    before = table_items()
    body = order_body(("TEE", 1))
    body["items"][0]["quantity"] = 10**4000  # within the digit limit: parses, then fails the schema
    assert_problem(api.request("POST", "/orders", body=body, headers={"Idempotency-Key": "big"}), 422)
    adjustment = api.admin("POST", "/admin/skus/TEE/adjustments", body={"delta": -(10**300), "reason": "x"})
    assert_problem(adjustment, 422)
    assert_problem(api.request("GET", "/orders?limit=" + "9" * 5000), 400, 422)
    assert table_items() == before


def test_hostile_headers_are_4xx(api, shop):
    before = table_items()
    for key in ("k" * 5000, "tab\tkey", "bell\x07", "a#b", " "):
        result = api.request("POST", "/orders", body=order_body(("TEE", 1)), headers={"Idempotency-Key": key})
        assert_problem(result, 400, 422)
    assert table_items() == before


# ---- ids longer than any real id ---------------------------------------------------------------

@pytest.mark.parametrize("method, template, body", ORDER_ROUTES)
@pytest.mark.parametrize("bad_id", ["ord_" + "a" * 61, "ord_" + "x" * 3000, "ord_%00abc", "ord_a.b", "%E2%82%AC"])
def test_ids_that_cannot_be_order_ids_are_422_on_every_route(api, shop, method, template, body, bad_id):
    before = table_items()
    path = template.replace("{id}", bad_id)
    result = send(api, method, path, admin=path.startswith("/admin"), body=body,
                  headers={"Idempotency-Key": "id-check"})
    problem = assert_problem(result, 422)
    assert problem["fields"] == ["order_id"] and "x" * 100 not in result.text
    assert table_items() == before


def test_a_real_id_length_is_still_found_or_404(api, shop):
    assert api.request("GET", f"/orders/{shop['order_id']}").status == 200
    assert api.request("GET", "/orders/ord_" + "a" * 26).status == 404
    assert api.request("GET", "/orders/ord_" + "a" * 60).status == 404  # at the limit: looked up, not found


# ---- tampered cursors ---------------------------------------------------------------------------

def _b64(value) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate: sent as its \udXXX escape
        text = json.dumps(value).encode()
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


def _tampered(cursor: str) -> list[str]:
    """Every string in a real cursor replaced by an empty or an oversized one (in characters or in bytes)."""
    plain = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    variants = []

    def walk(value, path):
        if isinstance(value, str):
            for replacement in ("", "x" * 600 + "#x", "€" * 400 + "#x"):
                variants.append(replace(plain, path, replacement))
        elif isinstance(value, dict):
            for key, inner in value.items():
                walk(inner, path + [key])
        elif isinstance(value, list):
            for index, inner in enumerate(value):
                walk(inner, path + [index])

    def replace(value, path, replacement):
        if not path:
            return replacement
        copy = dict(value) if isinstance(value, dict) else list(value)
        copy[path[0]] = replace(value[path[0]], path[1:], replacement)
        return copy

    walk(plain, [])
    encoded = []
    for variant in variants:
        encoded.append(_b64(variant))
    return encoded + ["%%%", "", "A" * 1025, _b64([]), _b64({}), _b64("x"), _b64(["x"] * 3)] + [
        base64.urlsafe_b64encode(b"[" * 700 + b"]" * 700).decode()[:1024]]


def test_tampered_list_cursors_are_422(api, shop):
    place(api, ("TEE", 1), key="second")
    first = api.request("GET", "/orders?limit=1").json()
    assert first["next_cursor"]
    before = table_items()
    for cursor in _tampered(first["next_cursor"]):
        if not cursor:
            continue  # no cursor: the first page
        result = api.request("GET", f"/orders?limit=1&cursor={cursor}")
        assert_problem(result, 422)
    assert table_items() == before


def test_tampered_admin_and_ledger_cursors_are_422(api, shop):
    place(api, ("TEE", 1), key="second")
    orders = api.admin("GET", "/admin/orders?limit=1").json()
    ledger = api.admin("GET", "/admin/skus/TEE/ledger?limit=1").json()
    assert orders["next_cursor"] and ledger["next_cursor"]
    for path, cursor in [("/admin/orders?limit=1", orders["next_cursor"]),
                         ("/admin/skus/TEE/ledger?limit=1", ledger["next_cursor"])]:
        for bad in _tampered(cursor):
            if bad:
                assert_problem(api.admin("GET", f"{path}&cursor={bad}"), 422)


@pytest.mark.parametrize("sk", ["", "€" * 200, "x" * 513, "\ud800"])
def test_ledger_cursor_key_values_empty_or_oversized_are_422(api, shop, sk):
    cursor = _b64({"pk": "SKU#TEE", "sk": sk})  # UTF-8, not \u escapes: within the 1024-character cap
    problem = assert_problem(api.admin("GET", f"/admin/skus/TEE/ledger?cursor={cursor}"), 422)
    assert problem["fields"] == ["cursor"]


# ---- DynamoDB ValidationException is not "retry later" -----------------------------------------

def _failing_store(monkeypatch, code: str):
    store = wiring.default_ports().store

    def fail(*args, **kwargs):
        raise ClientError({"Error": {"Code": code, "Message": "secret-detail: key value ord_xyz too large"}},
                          "GetItem")

    monkeypatch.setattr(store, "get_order", fail)


def test_a_dynamodb_validation_exception_is_422_not_503(api, shop, monkeypatch):
    _failing_store(monkeypatch, "ValidationException")
    result = api.request("GET", f"/orders/{shop['order_id']}")
    problem = assert_problem(result, 422)
    assert "retry-after" not in result.headers and "secret-detail" not in result.text
    assert problem["type"] == "/problems/invalid-request"


@pytest.mark.parametrize("code", ["ThrottlingException", "ProvisionedThroughputExceededException",
                                  "InternalServerError"])
def test_throttling_and_other_aws_errors_stay_503(api, shop, monkeypatch, code):
    _failing_store(monkeypatch, code)
    result = api.request("GET", f"/orders/{shop['order_id']}")
    assert_problem(result, 503)
    assert result.headers.get("retry-after") and "secret-detail" not in result.text


# ---- webhooks -----------------------------------------------------------------------------------

def assert_rejected(result, provider: str, *statuses: int):
    """A webhook failure in the provider's documented format (tests/api/test_webhook_answers.py), echoing nothing."""
    from tests.api.test_webhook_answers import assert_rejected as in_provider_format

    answer = in_provider_format(result, provider, *statuses)
    for marker in ECHO_MARKERS:
        assert marker not in result.text, marker
    return answer


def _webhook(api, provider, headers, body):
    return api.request("POST", f"/webhooks/{provider}", user=None, headers=dict(headers), raw=body)


def _signed(provider: str, body: bytes) -> dict[str, str]:
    secret = {"sandbox": KEYS.sandbox_webhook_secret, "stripe": KEYS.stripe_webhook_secret}[provider]
    return {f"{provider.capitalize()}-Signature": hmac_header(secret, body)}


@pytest.mark.parametrize("provider", ["sandbox", "stripe"])
@pytest.mark.parametrize("name", list(HOSTILE_BODIES))
def test_validly_signed_undecodable_webhooks_are_400(api, shop, provider, name):
    before = table_items()
    body = HOSTILE_BODIES[name]
    assert_problem(_webhook(api, provider, _signed(provider, body), body), 400)
    assert table_items() == before


@pytest.mark.parametrize("provider", ["sandbox", "stripe", "alipay", "wechatpay"])
@pytest.mark.parametrize("name", list(HOSTILE_BODIES))
def test_unsigned_undecodable_webhooks_are_4xx(api, shop, provider, name):
    before = table_items()
    assert_rejected(_webhook(api, provider, {}, HOSTILE_BODIES[name]), provider, 400, 401)
    assert table_items() == before


def test_a_webhook_whose_base64_does_not_decode_is_400(api, shop):
    route, params, _ = match("POST", "/webhooks/sandbox")
    event = proxy_event(route, params, "POST", "/webhooks/sandbox", [], b"{}", "127.0.0.1")
    event["body"], event["isBase64Encoded"] = "@@@ not base64 @@@", True
    from payment_webhook.handler import lambda_handler

    assert_problem(Result(lambda_handler(event, LocalContext("payment_webhook"))), 400)


BAD_AMOUNTS = {"negative": -3998, "fractional": 3998.5, "float": 3998.0, "true": True, "string": "3998",
               "beyond the maximum": MAX_MINOR_UNITS + 1}


@pytest.mark.parametrize("name", list(BAD_AMOUNTS))
def test_bad_provider_amounts_are_malformed_and_change_nothing(api, shop, name):
    """A validly signed payment of `shop`'s order, with a bad amount, through each provider."""
    value = BAD_AMOUNTS[name]
    order_id = shop["order_id"]
    before = table_items()
    notifications = [
        ("sandbox", sandbox_webhook(value, order_id=order_id, keys=KEYS)),
        ("stripe", stripe_webhook({"amount_received": value}, order_id=order_id, keys=KEYS)),
        ("stripe", stripe_webhook({"amount": value}, order_id=order_id, keys=KEYS)),
        ("wechatpay", wechat_webhook({"total": value, "payer_total": 3998, "currency": "USD"}, order_id=order_id,
                                     keys=KEYS)),
        ("wechatpay", wechat_webhook({"total": 3998, "payer_total": value, "currency": "USD"}, order_id=order_id,
                                     keys=KEYS)),
    ]
    for provider, (headers, body) in notifications:
        problem = assert_rejected(_webhook(api, provider, headers, body), provider, 400)
        assert provider == "wechatpay" or problem["type"] == "/problems/invalid-webhook", provider
    assert table_items() == before
    assert api.request("GET", f"/orders/{order_id}").json()["status"] == "PENDING_PAYMENT"


@pytest.mark.parametrize("text", ["-39.98", "39.985", "3.998e1", "9" * 5000])
def test_bad_alipay_amounts_are_malformed_and_change_nothing(api, shop, text):
    before = table_items()
    assert_rejected(_webhook(api, "alipay", *alipay_webhook(text, order_id=shop["order_id"], keys=KEYS)), "alipay",
                    400)
    assert table_items() == before


def test_a_good_amount_still_pays(api, shop):
    headers, body = sandbox_webhook(3998, order_id=shop["order_id"], keys=KEYS)
    assert _webhook(api, "sandbox", headers, body).status == 200
    assert api.request("GET", f"/orders/{shop['order_id']}").json()["status"] == "PAID"


# ---- reorder: the Idempotency-Key is required and checked like POST /orders --------------------

def _orders(api) -> list[dict]:
    return api.request("GET", "/orders?limit=100").json()["items"]


def test_reorder_without_a_key_is_400_and_places_nothing(api, shop):
    before = table_items()
    for headers in ({}, {"Idempotency-Key": ""}, {"Idempotency-Key": "   "}):
        result = api.request("POST", f"/orders/{shop['order_id']}/reorder", headers=headers)
        problem = assert_problem(result, 400)
        assert problem["type"] == "/problems/idempotency-key-missing"
    assert table_items() == before


@pytest.mark.parametrize("key", ["k" * 256, "has#hash", "tab\tkey", "new\nline"])
def test_reorder_with_a_bad_key_is_422_like_post_orders(api, shop, key):
    before = table_items()
    reorder = api.request("POST", f"/orders/{shop['order_id']}/reorder", headers={"Idempotency-Key": key})
    create = api.request("POST", "/orders", body=order_body(("TEE", 1)), headers={"Idempotency-Key": key})
    assert assert_problem(reorder, 422)["fields"] == assert_problem(create, 422)["fields"] == ["Idempotency-Key"]
    assert table_items() == before


def test_a_retried_reorder_places_one_order(api, shop):
    api.admin("POST", "/admin/skus/TEE/adjustments", body={"delta": 10, "reason": "restocked"})
    path = f"/orders/{shop['order_id']}/reorder"
    first = api.request("POST", path, headers={"Idempotency-Key": "again-1"})
    retried = api.request("POST", path, headers={"Idempotency-Key": "again-1"})
    assert first.status == retried.status == 201, first.text
    assert retried.headers.get("idempotent-replayed") == "true"
    assert retried.json() == first.json()
    assert len(_orders(api)) == 2  # the original and one reorder
    other = api.request("POST", path, headers={"Idempotency-Key": "again-2"})
    assert other.status == 201 and other.json()["order_id"] != first.json()["order_id"]
    assert len(_orders(api)) == 3
