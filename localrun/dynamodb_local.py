"""Start and stop DynamoDB Local (the official engine, in-memory) on a free loopback port."""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parent.parent
DYNAMODB_LOCAL_DIR = Path(os.environ.get("DYNAMODB_LOCAL_DIR", ROOT / ".local" / "dynamodb"))
INSTALL_SCRIPT = ROOT / "scripts" / "install-dynamodb-local.sh"


def ensure_installed() -> None:
    if not (DYNAMODB_LOCAL_DIR / "DynamoDBLocal.jar").exists():
        subprocess.run(["bash", str(INSTALL_SCRIPT)], check=True)


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    """A port nothing listens on now (the local run's servers and the tests' each take one)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DynamoDBLocal:
    def __init__(self, port: int | None = None, die_with_parent: bool = False):
        self.port = port
        # Linux: the JVM gets SIGTERM when the thread that started it ends, even if the server is SIGKILLed.
        self.die_with_parent = die_with_parent
        self.process: subprocess.Popen | None = None
        self.log_path = Path(tempfile.gettempdir()) / f"dynamodb-local-{os.getpid()}.log"

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60) -> DynamoDBLocal:
        ensure_installed()
        self.port = self.port or free_port()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                ["java", "-Xmx1g", "-Djava.library.path=DynamoDBLocal_lib", "-jar", "DynamoDBLocal.jar",
                 "-inMemory", "-port", str(self.port), "-disableTelemetry"],
                cwd=DYNAMODB_LOCAL_DIR, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent if self.die_with_parent and sys.platform == "linux" else None,
            )
        atexit.register(self.stop)
        client = boto3.client("dynamodb", endpoint_url=self.endpoint_url, region_name="us-east-1",
                              aws_access_key_id="local", aws_secret_access_key="local",
                              config=Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1}))
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                client.list_tables()
                return self
            except Exception:  # noqa: BLE001 - not up yet
                if self.process.poll() is not None or time.monotonic() > deadline:
                    tail = self.log_path.read_text(errors="replace")[-2000:]
                    self.stop()
                    raise RuntimeError(f"DynamoDB Local did not start on port {self.port}:\n{tail}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def __enter__(self) -> DynamoDBLocal:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
