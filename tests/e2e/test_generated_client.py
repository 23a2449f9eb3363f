"""A storefront can work from /openapi.json alone (issue 15 item 9): a Python client generated from the document
the local server serves, with the standard generator (openapi-python-client, offline, warnings are failures),
places, reads, lists and cancels an order against `make run`, and reads a problem+json answer as a Problem."""

from __future__ import annotations

import filecmp
import importlib
import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

# Only the generator's own settings: no post hooks (formatting the output is not the point and needs ruff on
# PATH), fixed names so the tests can import the package, and the operators' CSV import body (text/csv, which
# the generator has no type for) sent as bytes, as its documentation advises for content types it does not know.
GENERATOR_CONFIG = ("post_hooks: []\nproject_name_override: shop-client\npackage_name_override: shop_client\n"
                    "content_type_overrides:\n  text/csv: application/octet-stream\n")


def generate(document: Path, out: Path) -> float:
    """Runs the generator; fails on any warning (a skipped operation or model would otherwise go unnoticed)."""
    config = document.parent / "generator.yaml"
    config.write_text(GENERATOR_CONFIG)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(document), "--output-path",
         str(out), "--meta", "none", "--config", str(config), "--fail-on-warning"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return time.monotonic() - started


def same_tree(a: Path, b: Path) -> bool:
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    if files != sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()):
        return False
    match, mismatch, errors = filecmp.cmpfiles(a, b, [str(f) for f in files], shallow=False)
    return not mismatch and not errors


@pytest.fixture(scope="module")
def client_package(local_server, tmp_path_factory):
    work = tmp_path_factory.mktemp("generated")
    document = work / "openapi.json"
    answer = requests.get(local_server.base + "/openapi.json", timeout=30)
    assert answer.status_code == 200
    document.write_text(json.dumps(answer.json(), indent=2))
    seconds = generate(document, work / "shop_client")
    assert seconds < 30, f"generation took {seconds:.1f} s"
    # Deterministic: the same document yields the same client, byte for byte.
    generate(document, work / "again")
    assert same_tree(work / "shop_client", work / "again")
    sys.path.insert(0, str(work))
    try:
        yield importlib.import_module("shop_client")
    finally:
        sys.path.remove(str(work))
        for name in [m for m in sys.modules if m == "shop_client" or m.startswith("shop_client.")]:
            del sys.modules[name]
        shutil.rmtree(work / "again", ignore_errors=True)


def _api(name: str):
    return importlib.import_module(f"shop_client.api.default.{name}")


def test_a_generated_client_places_reads_lists_and_cancels_an_order(client_package, local_server):
    from shop_client import Client
    from shop_client.models import CreateOrderIn, MoneyIn, OrderItemIn, OrderOut, Problem, ShippingAddress, SkuIn

    base = local_server.base
    # The local run's stand-in for Cognito: who is calling (README: "Identity locally").
    customer = Client(base_url=base, headers={"X-Local-User": f"client-{uuid.uuid4().hex[:8]}"},
                      raise_on_unexpected_status=True)
    operator = Client(base_url=base, headers={"X-Local-User": "operator", "X-Local-Groups": "admin"},
                      raise_on_unexpected_status=True)
    sku = f"GEN-{uuid.uuid4().hex[:8].upper()}"
    created = _api("put_sku_admin_skus_sku_put").sync_detailed(
        sku, client=operator, body=SkuIn(name="Generated client tee", price=MoneyIn(amount=1500, currency="USD"),
                                         on_hand=5))
    assert created.status_code in (200, 201), created.content

    placed = _api("create_order_orders_post").sync_detailed(
        client=customer, idempotency_key=str(uuid.uuid4()),
        body=CreateOrderIn(items=[OrderItemIn(sku=sku, quantity=2)],
                           shipping_address=ShippingAddress(name="Ada", line1="1 Main St", city="Springfield",
                                                            postal_code="12345", country="US")))
    assert placed.status_code == 201, placed.content
    order = placed.parsed
    assert isinstance(order, OrderOut), placed.content  # the answer is the documented shape, all required fields
    assert order.total.amount == 3000 and order.payment_provider == "sandbox"  # the local run's default provider

    read = _api("get_order_orders_order_id_get").sync(order.order_id, client=customer)
    assert isinstance(read, OrderOut) and read.order_id == order.order_id

    listed = _api("list_orders_orders_get").sync(client=customer)
    assert order.order_id in [o.order_id for o in listed.items]

    cancelled = _api("cancel_order_orders_order_id_cancel_post").sync(order.order_id, client=customer)
    assert isinstance(cancelled, OrderOut) and str(cancelled.status) == "CANCELLED", cancelled

    missing = _api("get_order_orders_order_id_get").sync_detailed("no-such-order", client=customer)
    assert missing.status_code == 404 and isinstance(missing.parsed, Problem)
