"""Cold start (issue 11): HTTP handlers import only logging, metrics and tracing; the resolver loads once, on the
first request or before a SnapStart snapshot; payment providers load on first use. The figures are in
`make bench` (bench/cold_start.py); these tests keep the structure that produces them."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bench.cold_start import FUNCTIONS_DIR, http_functions, lambda_env

# Loaded with the resolver, never by a handler's import.
DEFERRED = ("pydantic", "boto3", "cryptography", "shop.http.routes", "shop.services", "shop.adapters.dynamo_store")


def _run(code: str, function: str, extra_path: Path | None = None) -> dict:
    """`code` in a fresh interpreter with a deployed function's environment (tracing on); its last line is JSON."""
    env = lambda_env(function)
    if extra_path:
        env["PYTHONPATH"] = f"{extra_path}:{env['PYTHONPATH']}"
    done = subprocess.run([sys.executable, "-c", code], cwd=FUNCTIONS_DIR, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_http_functions_are_the_routed_ones():
    assert set(http_functions()) == {"catalog_api", "create_order", "orders_api", "admin_api", "payment_webhook",
                                      "carrier_webhook"}


@pytest.mark.parametrize("function", http_functions())
def test_handler_import_traces_but_defers_the_resolver(function):
    seen = _run(f"""
import json, sys, http.client, botocore.client
import {function}.handler as h
from shop.http import app
loaded = sorted(m for m in sys.modules if any(m == d or m.startswith(d + ".") for d in {DEFERRED!r}))
print(json.dumps({{"loaded": loaded, "tracing": not app.tracer.disabled,
                  "botocore": type(botocore.client.BaseClient._make_api_call).__name__,
                  "httplib": type(http.client.HTTPConnection._send_request).__name__,
                  "requests": "requests" in sys.modules}}))
""", function)
    assert seen["loaded"] == [], f"{function}.handler imports at init what the resolver should load"
    # Tracing as deployed: on, AWS SDK and provider HTTPS calls patched before any client exists.
    assert seen["tracing"] and seen["botocore"] == seen["httplib"] == "BoundFunctionWrapper"
    assert not seen["requests"], "only the libraries the handlers call are patched (no patch_all)"


def test_snapstart_builds_the_resolver_before_the_snapshot_and_reseeds_random_after_restore(tmp_path):
    """Lambda's runtime hooks (snapshot_restore_py) faked: what a SnapStart version runs before its snapshot."""
    (tmp_path / "snapshot_restore_py.py").write_text(
        "before, after = [], []\n"
        "def register_before_snapshot(func, *args, **kwargs):\n    before.append(func)\n    return func\n"
        "def register_after_restore(func, *args, **kwargs):\n    after.append(func)\n    return func\n")
    seen = _run("""
import json, random, sys
import snapshot_restore_py as hooks
import create_order.handler as h
before_import = "shop.http.routes.create_order" in sys.modules
for hook in reversed(hooks.before):
    hook()
print(json.dumps({"before_import": before_import, "after_hook": "shop.http.routes.create_order" in sys.modules,
                  "same": h.lambda_handler.resolver() is h.lambda_handler.resolver(),
                  "reseeds": random.seed in hooks.after}))
""", "create_order", extra_path=tmp_path)
    assert seen == {"before_import": False, "after_hook": True, "same": True, "reseeds": True}


def test_lambda_entry_builds_the_resolver_once_even_when_requests_race():
    from aws_lambda_powertools.event_handler.router import APIGatewayRouter

    from shop.http.app import create_app, lambda_entry

    builds = []

    def build():
        builds.append(1)
        router = APIGatewayRouter()
        router.get("/ping")(lambda: {"ok": True})
        return create_app(router)

    handler = lambda_entry(build)
    assert builds == []
    threads = [threading.Thread(target=handler.resolver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1
    given = create_app()
    assert lambda_entry(given).resolver() is given  # a resolver is used as is


def test_providers_load_on_first_use_and_keep_their_names():
    from shop.payments.registry import PROVIDERS

    seen = _run("""
import json, sys
from shop.payments.registry import PROVIDERS
known = "alipay" in PROVIDERS and "nope" not in PROVIDERS
print(json.dumps({"names": list(PROVIDERS), "known": known, "loaded": "shop.payments.alipay" in sys.modules
                  or "cryptography" in sys.modules}))
""", "orders_api")
    assert seen == {"names": ["sandbox", "stripe", "alipay", "wechatpay"], "known": True, "loaded": False}
    assert all(PROVIDERS[name].name == name for name in PROVIDERS)
    assert PROVIDERS["stripe"] is PROVIDERS["stripe"]
    with pytest.raises(KeyError):
        PROVIDERS["nope"]
