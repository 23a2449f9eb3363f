"""Lambda stand-in: a pool of worker processes, each a container that runs one invocation at a time.

Real Lambda never runs two events at once in one process, and Powertools keeps the current
event in process-wide state, so the local run uses processes, not threads.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import signal
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "functions"


class LocalContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    def __init__(self, function_name: str, timeout_s: int = 30):
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 256
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _worker_init() -> None:
    # Ctrl-C goes to the whole process group; the server, not each worker, handles it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if str(FUNCTIONS_DIR) not in sys.path:
        sys.path.insert(0, str(FUNCTIONS_DIR))


def invoke_in_this_process(function_name: str, event: dict[str, Any]) -> dict[str, Any]:
    _worker_init()
    from shop.manifest import FUNCTIONS

    spec = FUNCTIONS[function_name]
    os.environ["AWS_LAMBDA_FUNCTION_NAME"] = function_name
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")  # no X-Ray daemon locally
    os.environ["POWERTOOLS_SERVICE_NAME"] = function_name
    try:
        module = importlib.import_module(f"{function_name}.handler")
        return module.lambda_handler(event, LocalContext(function_name, spec.timeout_s))
    except Exception as error:  # noqa: BLE001 - the Lambda runtime reports this as a function error
        return {"__function_error__": f"{type(error).__name__}: {error}"}


class LambdaRuntime:
    def __init__(self, workers: int):
        context = multiprocessing.get_context("spawn")
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init)
        self.workers = workers

    def warm_up(self) -> None:
        """Import every handler in every worker so the first requests are not cold."""
        from shop.manifest import FUNCTIONS

        futures = [self.pool.submit(_import_all, list(FUNCTIONS)) for _ in range(self.workers * 2)]
        for future in futures:
            future.result(timeout=120)

    def invoke(self, function_name: str, event: dict[str, Any], timeout_s: float = 60) -> dict[str, Any]:
        return self.pool.submit(invoke_in_this_process, function_name, event).result(timeout=timeout_s)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _import_all(names: list[str]) -> None:
    for name in names:
        try:
            importlib.import_module(f"{name}.handler")
        except ImportError as error:  # reported again, as a function error, when it is invoked
            print(f"localrun: cannot import {name}.handler: {error}", file=sys.stderr, flush=True)
    time.sleep(0.2)  # keep this worker busy so the next warm-up task lands on another
