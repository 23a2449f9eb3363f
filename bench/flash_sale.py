"""Flash sale against the local server: many shoppers, little stock. Prints JSON figures.

Usage: make bench  (env: BENCH_ATTEMPTS, BENCH_THREADS, BENCH_STOCK, LOCAL_LAMBDA_WORKERS)
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]
from localrun.cloud import free_port  # noqa: E402

ATTEMPTS = int(os.environ.get("BENCH_ATTEMPTS", "1000"))
THREADS = int(os.environ.get("BENCH_THREADS", "32"))
STOCK = int(os.environ.get("BENCH_STOCK", "100"))
ADDRESS = {"name": "Flash Buyer", "line1": "1 Sale St", "city": "Rush", "postal_code": "10001", "country": "US"}
READS = {"GetItem", "BatchGetItem", "Query", "Scan"}
WRITES = {"TransactWriteItems", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"}
ADMIN = {"X-Local-User": "bench-admin", "X-Local-Groups": "admin"}


def start_server(port: int, **extra_env: str) -> subprocess.Popen:
    env = {**os.environ, **extra_env, "PORT": str(port), "LOCAL_COUNT_DYNAMODB_CALLS": "1",
           "LOCAL_LAMBDA_WORKERS": os.environ.get("LOCAL_LAMBDA_WORKERS", "4")}
    proc = subprocess.Popen([sys.executable, "-m", "localrun"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/_local/health", timeout=1).ok:
                return proc
        except requests.ConnectionError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("local server did not start")


def create_skus(base: str, prefix: str, count: int, price: int, on_hand: int) -> list[str]:
    """`count` new SKUs named `{prefix}-<random>`, priced `price` USD cents, each with `on_hand` units."""
    codes = [f"{prefix}-{uuid.uuid4().hex[:6]}" for _ in range(count)]
    for code in codes:
        requests.put(f"{base}/admin/skus/{code}", headers=ADMIN, timeout=30, json={
            "name": code, "price": {"amount": price, "currency": "USD"}, "on_hand": on_hand}).raise_for_status()
    return codes


def main() -> None:
    port = free_port()
    proc = start_server(port)
    base = f"http://127.0.0.1:{port}"
    try:
        codes = create_skus(base, "FLASH", 2, price=4999, on_hand=STOCK)
        rng = random.Random(7)
        plans = [[{"sku": c, "quantity": rng.randint(1, 3)} for c in rng.sample(codes, rng.choice([1, 2]))]
                 for _ in range(ATTEMPTS)]
        before = requests.get(f"{base}/_local/stats", timeout=10).json()["dynamodb_calls"]
        session_by_thread: dict[int, requests.Session] = {}

        def attempt(n_items):
            n, items = n_items
            import threading

            http = session_by_thread.setdefault(threading.get_ident(), requests.Session())
            started = time.perf_counter()
            response = http.post(f"{base}/orders", timeout=60, json={
                "items": items, "shipping_address": ADDRESS, "payment_provider": "sandbox"},
                headers={"X-Local-User": f"shopper-{n}", "Idempotency-Key": f"flash-{n}"})
            return response.status_code, time.perf_counter() - started, items

        started = time.perf_counter()
        with ThreadPoolExecutor(THREADS) as pool:
            results = list(pool.map(attempt, enumerate(plans)))
        elapsed = time.perf_counter() - started
        after = requests.get(f"{base}/_local/stats", timeout=10).json()["dynamodb_calls"]

        statuses = Counter(status for status, _, _ in results)
        accepted_units = Counter()
        for status, _, items in results:
            if status == 201:
                accepted_units.update({i["sku"]: i["quantity"] for i in items})
        levels = {c: requests.get(f"{base}/admin/skus/{c}", headers=ADMIN, timeout=10).json()["levels"] for c in codes}
        latencies = sorted(latency for _, latency, _ in results)
        calls = Counter(after)
        calls.subtract(before)
        accepted = statuses.get(201, 0)
        reads = sum(v for k, v in calls.items() if k in READS)
        writes = sum(v for k, v in calls.items() if k in WRITES)
        accepted_writes = calls.get("TransactWriteItems", 0)
        print(json.dumps({
            "attempts": ATTEMPTS,
            "threads": THREADS,
            "lambda_workers": int(os.environ.get("LOCAL_LAMBDA_WORKERS", "4")),
            "stock_per_sku": STOCK,
            "accepted": accepted,
            "rejected_409": statuses.get(409, 0),
            "other_statuses": {str(k): v for k, v in statuses.items() if k not in (201, 409)},
            "oversold": sum(max(0, accepted_units[c] - STOCK) for c in codes),
            "final_levels": levels,
            "orders_per_s": round(accepted / elapsed, 1),
            "attempts_per_s": round(ATTEMPTS / elapsed, 1),
            "latency_ms": {"p50": round(statistics.median(latencies) * 1000, 1),
                           "p99": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1)},
            "dynamodb_calls": dict(calls),
            "dynamodb_per_accepted_order": {
                "write_requests": round(accepted_writes / max(accepted, 1), 2),
                "read_requests": round(reads / max(accepted, 1), 2),
            },
            "dynamodb_per_attempt": {"write_requests": round(writes / ATTEMPTS, 2),
                                     "read_requests": round(reads / ATTEMPTS, 2)},
        }, indent=2))
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
