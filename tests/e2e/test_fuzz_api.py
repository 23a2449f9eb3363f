"""Schemathesis against /openapi.json of the local server: every operation, a fixed budget of examples.

Zero 5xx, every response in the documented schema and content type. Requests go as an admin
(so admin routes are reached) and as a customer (so identity is exercised)."""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.e2e
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))


CHECKS = [not_a_server_error, content_type_conformance, response_schema_conformance, status_code_conformance]


def test_every_operation_answers_within_its_schema(local_server):
    # Seed a SKU so generated requests can hit real catalog entries as well as unknown ones.
    local_server.admin("PUT", "/admin/skus/FUZZ-1", json={"name": "Fuzz", "price": {"amount": 100, "currency": "USD"},
                                                          "on_hand": 1000})
    schema = schemathesis.openapi.from_url(local_server.base + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    headers = {"X-Local-User": "fuzzer", "X-Local-Groups": "admin"}
    calls = []

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case):
            calls.append(operation.label)
            case.call_and_validate(base_url=local_server.base, headers=headers, checks=CHECKS)

        try:
            fuzz()
        except Exception as failure:  # name the operation, keep the minimal example from hypothesis
            raise AssertionError(f"{operation.label}: {failure}") from failure
    print(f"schemathesis: {len(calls)} requests over {len(operations)} operations")
