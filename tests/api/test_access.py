"""Every route of the OpenAPI document: 401 without identity, 403 for a customer on admin routes, before the
request is even validated; group membership is an exact match on Cognito's list."""

from __future__ import annotations

import json

import pytest

from shop.http.auth import _groups
from shop.http.openapi import openapi_json
from shop.manifest import ROUTES

PUBLIC = {(r.method, r.path) for r in ROUTES if r.auth in ("public", "webhook")}
SAMPLE = {"order_id": "ord_x", "sku": "TEE", "date": "2026-11-30", "provider": "sandbox", "after_sale_id": "as_x", "code": "east",
          "delivery_id": "dlv_0123456789", "transfer_id": "trf_0123456789", "count_id": "cnt_0123456789",
          "cart_id": "cart-x"}


def operations():
    doc = json.loads(openapi_json())
    for path, methods in sorted(doc["paths"].items()):
        for method in sorted(methods):
            if (method.upper(), path) not in PUBLIC:
                yield method.upper(), path


@pytest.mark.parametrize("method, path", list(operations()))
def test_every_route_needs_identity_and_admin_routes_the_admin_group(api, method, path):
    concrete = path.format(**SAMPLE)
    anonymous = api.request(method, concrete, user=None, body={"not": "valid"})
    assert anonymous.status == 401, (method, path, anonymous.text)
    assert anonymous.headers["content-type"] == "application/problem+json"
    customer = api.request(method, concrete, user="alice", groups="[support,admin, staff]", body={"not": "valid"})
    if path.startswith("/admin/"):
        assert customer.status == 403, (method, path, customer.text)
    else:
        assert customer.status != 403, (method, path)


def test_every_manifest_route_but_public_ones_is_in_the_walk():
    walked = set(operations())
    assert {(r.method, r.path) for r in ROUTES if r.auth in ("customer", "admin")} == walked


def test_groups_are_matched_exactly():
    assert _groups("admin") == {"admin"}
    assert _groups("[support, admin]") == {"support", "admin"}
    assert _groups("support,admin") == {"support,admin"}  # one group with a comma in its name
    assert "admin" not in _groups("[support,admin, staff]")
    assert _groups(["admin", "staff"]) == {"admin", "staff"}
    assert _groups("") == _groups(None) == frozenset()
