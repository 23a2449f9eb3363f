"""Start the local server exactly as `make run` does (python -m localrun) and talk HTTP to it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from localrun.cloud import free_port

ROOT = Path(__file__).resolve().parents[2]


class Api:
    def __init__(self, base: str):
        self.base = base
        self.http = requests.Session()

    def call(self, method: str, path: str, user: str | None = "alice", groups: str | None = None,
             headers: dict | None = None, **kwargs) -> requests.Response:
        sent = dict(headers or {})
        if user:
            sent["X-Local-User"] = user
        if groups:
            sent["X-Local-Groups"] = groups
        return self.http.request(method, self.base + path, headers=sent, timeout=30, **kwargs)

    def admin(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.call(method, path, user="operator", groups="admin", **kwargs)


# tests/conftest.py points the provider API bases at a closed port for in-process tests; the local server
# fakes a provider only when its API base is unset, so they are not handed on.
REAL_PROVIDER_BASES = ("STRIPE_API_BASE", "ALIPAY_GATEWAY", "WECHATPAY_API_BASE")


def start_local_server(log_dir: Path, **extra_env: str) -> tuple[subprocess.Popen, Api]:
    """`python -m localrun` on a free port with `extra_env`, as `make run` starts it; waits until it answers."""
    port = free_port()
    log = log_dir / "server.log"
    env = {k: v for k, v in os.environ.items() if k not in REAL_PROVIDER_BASES}
    # Fulfilment: courier polls every few seconds, a delivered order completes 3 s later (docs/fulfilment.md).
    env.update({"PORT": str(port), "PAYMENT_WINDOW_SECONDS": "5", "SWEEP_INTERVAL_SECONDS": "2",
                "COURIER_POLL_INTERVALS": "2,4,8", "ORDER_CONFIRMATION_SECONDS": "3",
                "LOCAL_SQS_RETRY_DELAY_SECONDS": "1", "LOCAL_LAMBDA_WORKERS": "3", "CART_HOLD_SECONDS": "3", **extra_env})
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "localrun"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if requests.get(base + "/_local/health", timeout=1).ok:
                break
        except requests.ConnectionError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("local server did not start:\n" + log.read_text()[-4000:])
        time.sleep(0.3)
    return proc, Api(base)


def stop_local_server(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("local server did not stop on Ctrl-C")


@pytest.fixture(scope="session")
def local_server(tmp_path_factory):
    proc, api = start_local_server(tmp_path_factory.mktemp("server"))
    yield api
    stop_local_server(proc)
