"""/openapi.json documents every route of the manifest with its success and problem answers."""

from __future__ import annotations

import json

from shop.http.openapi import SUCCESS, openapi_json
from shop.manifest import ROUTES


def test_every_route_but_webhooks_and_the_document_is_described_with_its_answer():
    doc = json.loads(openapi_json())
    described = {(r.method.lower(), r.path) for r in ROUTES if r.auth != "webhook" and r.path != "/openapi.json"}
    assert described == set(SUCCESS)
    for method, path in described:
        responses = doc["paths"][path][method]["responses"]
        assert str(SUCCESS[(method, path)][0]) in responses, (method, path)
        assert responses["422"]["content"]["application/problem+json"]
    order = doc["components"]["schemas"]["OrderOut"]
    assert {"shipments", "expires_at", "history"} <= set(order["properties"])


def test_the_document_is_valid_openapi_for_an_independent_validator():
    from openapi_spec_validator import validate

    validate(json.loads(openapi_json()))  # e.g. no dangling $ref (Powertools' ValidationError shapes)
