"""Lambda stand-in: a pool of worker processes, each a container that runs one invocation at a time.

Real Lambda never runs two events at once in one process, and Powertools keeps the current
event in process-wide state, so the local run uses processes, not threads.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

log = logging.getLogger("localrun")
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


CRASHED = "__crashed__"  # set on a result when the worker died or timed out: the caller may retry


def _worker_main(conn: Connection) -> None:
    """One Lambda 'instance': runs one request at a time from the server, until the pipe closes.

    When the server dies, however it dies, its end of the pipe closes and this loop ends."""
    _worker_init()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if message is None:
            return
        kind, payload = message
        if kind == "import_all":
            _import_all(payload)
            result: Any = None
        else:
            result = invoke_in_this_process(*payload)
        try:
            conn.send(result)
        except (OSError, ValueError):
            return


class _Worker:
    def __init__(self, context: Any):
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child,), daemon=True, name="lambda-worker")
        self.process.start()
        child.close()

    def call(self, message: tuple[str, Any], timeout_s: float) -> Any:
        """The worker's answer; EOFError if it died, TimeoutError if it did not answer in time."""
        self.conn.send(message)
        if not self.conn.poll(timeout_s):
            raise TimeoutError(f"no answer in {timeout_s:.0f} s")
        return self.conn.recv()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


class LambdaRuntime:
    """`workers` processes, each serving one invocation at a time. A worker that dies (or times out) is
    replaced in the background, as Lambda replaces a crashed instance: only the invocation it was running
    fails (a 502 with Retry-After through the gateway), and the others keep serving meanwhile."""

    def __init__(self, workers: int):
        self.context = multiprocessing.get_context("spawn")
        self.workers = workers
        self.idle: queue.Queue[_Worker] = queue.Queue()
        self.all: set[_Worker] = set()
        self.lock = threading.Lock()
        self.replacing = 0
        self.replaced = 0
        self.last_crash: str | None = None
        self.closed = False
        for _ in range(workers):
            self._spawn()

    def _spawn(self) -> _Worker:
        worker = _Worker(self.context)
        with self.lock:
            self.all.add(worker)
        return worker

    def warm_up(self) -> None:
        """Import every handler in every worker so the first requests are not cold."""
        from shop.manifest import FUNCTIONS

        workers = list(self.all)
        for worker in workers:
            worker.conn.send(("import_all", list(FUNCTIONS)))
        for worker in workers:
            if not worker.conn.poll(120):
                raise TimeoutError("a lambda worker did not start in 120 s")
            worker.conn.recv()
            self.idle.put(worker)

    def _warm(self, worker: _Worker) -> None:
        from shop.manifest import FUNCTIONS

        worker.call(("import_all", list(FUNCTIONS)), timeout_s=120)
        self.idle.put(worker)

    def invoke(self, function_name: str, event: dict[str, Any], timeout_s: float = 60) -> dict[str, Any]:
        if self.closed:
            raise RuntimeError("the Lambda runtime is stopped")
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                worker = self.idle.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return {"__function_error__": "no worker free in time", CRASHED: True}
            if worker.process.is_alive():
                break
            log.error("idle lambda worker %s died (exit code %s); replacing it", worker.process.pid,
                      worker.process.exitcode)
            self._replace(worker, f"idle worker: exit code {worker.process.exitcode}")
        try:
            result = worker.call(("invoke", (function_name, event)), timeout_s)
        except (EOFError, OSError, TimeoutError) as error:
            reason = "timed out" if isinstance(error, TimeoutError) else f"exit code {worker.process.exitcode}"
            log.error("lambda worker %s running %s died (%s); replacing it", worker.process.pid, function_name,
                      reason)
            self._replace(worker, f"{function_name}: {reason}")
            return {"__function_error__": f"worker process died ({reason})", CRASHED: True}
        self.idle.put(worker)
        return result

    def _replace(self, dead: _Worker, reason: str) -> None:
        with self.lock:
            self.all.discard(dead)
            self.replacing += 1
            self.last_crash = reason
        dead.kill()
        threading.Thread(target=self._replacement, name="lambda-worker-replacement", daemon=True).start()

    def _replacement(self) -> None:
        delay = 0.5
        while not self.closed:
            worker = None
            try:
                worker = self._spawn()
                self._warm(worker)
                with self.lock:
                    self.replacing -= 1
                    self.replaced += 1
                return
            except Exception:  # noqa: BLE001 - keep trying, as Lambda keeps starting instances
                log.exception("cannot start a lambda worker; retrying in %.1f s", delay)
                if worker is not None:
                    with self.lock:
                        self.all.discard(worker)
                    worker.kill()
                time.sleep(delay)
                delay = min(delay * 2, 10)

    def status(self) -> dict[str, Any]:
        with self.lock:
            alive = [w.process.pid for w in self.all if w.process.is_alive()]
            state = {"workers": self.workers, "alive": len(alive), "pids": sorted(p for p in alive if p),
                     "replacing": self.replacing, "replaced": self.replaced, "last_crash": self.last_crash}
        ready = self.workers - self.replacing
        state["status"] = "ok" if ready >= self.workers and len(alive) >= self.workers else (
            "degraded" if ready > 0 else "down")
        return state

    def close(self) -> None:
        self.closed = True
        with self.lock:
            workers = list(self.all)
            self.all.clear()
        for worker in workers:
            try:
                worker.conn.send(None)
            except (OSError, ValueError):
                pass
        for worker in workers:
            worker.process.join(timeout=2)
            worker.kill()


def _import_all(names: list[str]) -> None:
    for name in names:
        try:
            importlib.import_module(f"{name}.handler")
        except ImportError as error:  # reported again, as a function error, when it is invoked
            print(f"localrun: cannot import {name}.handler: {error}", file=sys.stderr, flush=True)
