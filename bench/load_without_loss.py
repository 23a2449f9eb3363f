"""Load without loss: a flash sale with a 5 s payment window while webhooks (some duplicated), cancels
and expiries happen during it. After everything settles, the counts must reconcile and every stock
invariant must hold. Prints JSON; exits 1 on any violation.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent.parent / "functions")]
from bench.flash_sale import ADDRESS, ADMIN, create_skus, start_server  # noqa: E402
from localrun.cloud import free_port  # noqa: E402

ATTEMPTS = int(os.environ.get("BENCH_ATTEMPTS", "400"))
THREADS = int(os.environ.get("BENCH_THREADS", "32"))
STOCK = int(os.environ.get("BENCH_STOCK", "60"))
PROVIDERS = ["sandbox", "stripe", "alipay", "wechatpay"]


def ledger_sums(base: str, code: str) -> dict[str, int]:
    totals, cursor = Counter(), None
    while True:
        page = requests.get(f"{base}/admin/skus/{code}/ledger", headers=ADMIN, timeout=30,
                            params={"limit": 100, **({"cursor": cursor} if cursor else {})}).json()
        for entry in page["items"]:
            totals.update(entry["delta"])
        cursor = page["next_cursor"]
        if not cursor:
            return {k: totals[k] for k in ("on_hand", "available", "reserved", "sold")}


def main() -> int:
    port = free_port()
    # USD orders go to every provider: Alipay and WeChat Pay as cross-border accounts (they take CNY by default).
    proc = start_server(port, PAYMENT_WINDOW_SECONDS="5", SWEEP_INTERVAL_SECONDS="2", SWEEP_GRACE_SECONDS="1",
                        ALIPAY_CURRENCIES="CNY,USD", WECHATPAY_CURRENCIES="CNY,USD")
    base = f"http://127.0.0.1:{port}"
    try:
        codes = create_skus(base, "LOSS", 2, price=2500, on_hand=STOCK)
        rng = random.Random(11)
        intents = Counter()
        lock = threading.Lock()
        accepted: dict[str, dict] = {}

        def attempt(n: int) -> int:
            items = [{"sku": c, "quantity": rng.randint(1, 2)} for c in rng.sample(codes, rng.choice([1, 2]))]
            customer = f"shopper-{n}"
            answer = requests.post(f"{base}/orders", timeout=60, headers={"X-Local-User": customer,
                                   "Idempotency-Key": f"loss-{n}"}, json={
                "items": items, "shipping_address": ADDRESS, "payment_provider": PROVIDERS[n % 4]})
            if answer.status_code != 201:
                return answer.status_code
            order = answer.json()
            with lock:
                accepted[order["order_id"]] = {"items": items, "customer": customer}
            action = rng.random()
            if action < 0.5:  # pay at once, one in five twice with the same event
                event = {"event_id": f"evt-{n}"}
                for _ in range(2 if action < 0.1 else 1):
                    requests.post(f"{base}/_local/pay/{order['order_id']}", json=event, timeout=60)
                intents["pay"] += 1
            elif action < 0.65:
                requests.post(f"{base}/orders/{order['order_id']}/cancel", headers={"X-Local-User": customer},
                              timeout=60)
                intents["cancel"] += 1
            elif action < 0.75:  # pay late: after the window, maybe after the expiry
                time.sleep(6)
                requests.post(f"{base}/_local/pay/{order['order_id']}", timeout=60)
                intents["late_pay"] += 1
            else:
                intents["abandon"] += 1
            return 201

        started = time.perf_counter()
        with ThreadPoolExecutor(THREADS) as pool:
            statuses = Counter(pool.map(attempt, range(ATTEMPTS)))
        # Settle: every unpaid order's window ends, the state machine or the sweeper expires it.
        deadline = time.monotonic() + 120
        while True:
            final = {oid: requests.get(f"{base}/orders/{oid}", headers={"X-Local-User": o["customer"]},
                                       timeout=30).json() for oid, o in accepted.items()}
            pending = [oid for oid, o in final.items() if o["status"] == "PENDING_PAYMENT"]
            if not pending or time.monotonic() > deadline:
                break
            time.sleep(2)
        elapsed = time.perf_counter() - started
        by_status = Counter(o["status"] for o in final.values())
        sold_units = Counter()
        for oid, o in final.items():
            if o["payment_status"] == "paid":
                sold_units.update({line["sku"]: line["quantity"] for line in o["lines"]})
        violations = []
        for code in codes:
            levels = requests.get(f"{base}/admin/skus/{code}", headers=ADMIN, timeout=30).json()["levels"]
            if ledger_sums(base, code) != levels:
                violations.append(f"{code}: ledger does not sum to levels")
            if levels["on_hand"] != levels["available"] + levels["reserved"] or min(levels.values()) < 0:
                violations.append(f"{code}: inconsistent levels {levels}")
            if levels["reserved"] != 0:
                violations.append(f"{code}: {levels['reserved']} units still reserved after settling")
            if levels["sold"] != sold_units[code]:
                violations.append(f"{code}: sold {levels['sold']} but paid orders hold {sold_units[code]}")
            if levels["sold"] > STOCK:
                violations.append(f"{code}: oversold")
        settled = by_status["PAID"] + by_status["EXPIRED"] + by_status["CANCELLED"]
        if settled != len(accepted):
            violations.append(f"accepted {len(accepted)} != paid + expired + cancelled {settled}")
        report = {"attempts": ATTEMPTS, "accepted": len(accepted), "http_statuses": dict(statuses),
                  "intents": dict(intents), "final_statuses": dict(by_status), "seconds": round(elapsed, 1),
                  "violations": violations}
        print(json.dumps(report, indent=2))
        return 1 if violations else 0
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
