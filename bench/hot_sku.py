"""Hot SKU: our order path beside the engine's floor, in one process against one DynamoDB Local. Prints JSON.

Phases, each on a fresh SKU in one fresh table, in this order:
  floor          THREADS callers, one TransactWriteItems per order: `ADD available :minus_q, reserved :q`
                 on ONE stock item guarded by `available >= :q`, plus the put of a ~2 KB order item
                 (attribute_not_exists(pk)); no read first. What the engine does for a correct
                 no-oversell order.
  ours           shop.services.orders.place_order in-process with the real adapter (DynamoShopStore), the
                 payment window and events replaced by no-ops, one SKU with ample stock, THREADS callers.
  floor_sharded  the floor transaction on one of SHARDS stock items chosen at random.
  ours_sharded   as `ours`, the SKU created with stock_shards = SHARDS (skipped, with a note, when
                 catalog.SkuDetails has no `stock_shards`).
  sell_out       SELLOUT_STOCK units (stock_shards = SHARDS when supported), SELLOUT_THREADS callers each
                 placing 1-unit orders until three InsufficientStock answers in a row: units sold, oversold
                 (from the SKU's levels as the admin view sums them), 503s, time from the first order to
                 the last unit sold.
Latencies are per call, as the caller sees them (retries inside place_order included). Throughput is
accepted orders / (last call's end - first call's start) of the phase. `target_met` reports issue 11's
targets (ours >= 0.5 x floor, no 503 with ample stock, p99 <= 4 x floor's); it never fails the run.

Usage: make bench, or .venv/bin/python bench/hot_sku.py
Env: HOT_SKU_SECONDS (10, per measured phase), HOT_SKU_ORDERS (optional cap on orders per phase),
     HOT_SKU_THREADS (32), HOT_SKU_SHARDS (8), HOT_SKU_WARMUP_SECONDS (2),
     HOT_SKU_SELLOUT_STOCK (1000), HOT_SKU_SELLOUT_THREADS (64), HOT_SKU_SELLOUT_MAX_SECONDS (150).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import platform
import random
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]

SECONDS = float(os.environ.get("HOT_SKU_SECONDS", "10"))
ORDERS = int(os.environ["HOT_SKU_ORDERS"]) if os.environ.get("HOT_SKU_ORDERS") else None
THREADS = int(os.environ.get("HOT_SKU_THREADS", "32"))
SHARDS = int(os.environ.get("HOT_SKU_SHARDS", "8"))
WARMUP_SECONDS = float(os.environ.get("HOT_SKU_WARMUP_SECONDS", "2"))
SELLOUT_STOCK = int(os.environ.get("HOT_SKU_SELLOUT_STOCK", "1000"))
SELLOUT_THREADS = int(os.environ.get("HOT_SKU_SELLOUT_THREADS", "64"))
SELLOUT_MAX_SECONDS = float(os.environ.get("HOT_SKU_SELLOUT_MAX_SECONDS", "150"))
SELLOUT_STOP_AFTER_409S = 3  # consecutive InsufficientStock answers after which a caller gives up
AMPLE_STOCK = 1_000_000
ORDER_ITEM_BYTES = 2048  # the floor's order item, about the size of a real order with a few lines
POOL = max(THREADS, SELLOUT_THREADS) + 8  # HTTP connections per client: one per caller, as one per Lambda
ADDRESS = {"name": "Hot Buyer", "line1": "1 Sale St", "city": "Rush", "postal_code": "10001", "country": "US"}

# Never real AWS; quiet Powertools. Set before the shop's modules are imported.
os.environ.update({
    "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "shop", "POWERTOOLS_METRICS_NAMESPACE": "shop-bench",
    "POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_TRACE_DISABLED": "true",
})
for _var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
    os.environ.pop(_var, None)

import boto3  # noqa: E402
from boto3.dynamodb.types import TypeSerializer  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

from localrun.dynamodb_local import DynamoDBLocal, ensure_installed  # noqa: E402


# ---- measurement ----------------------------------------------------------------------------------

def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest rank."""
    if not sorted_values:
        return None
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def run_phase(threads: int, seconds: float, call: Callable[[int, int], str],
              max_orders: int | None = None) -> dict[str, Any]:
    """`threads` callers loop on `call(thread, n)` (returns an outcome name; "accepted" counts) until the
    deadline (or max_orders calls started). Returns outcomes, accepted rate and latency percentiles."""
    counter = itertools.count()
    lock = threading.Lock()
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []  # every call
    accepted_latencies: list[float] = []
    start = time.perf_counter()
    deadline = start + seconds
    ends: list[float] = []

    def caller(t: int) -> None:
        mine, mine_ok, mine_out = [], [], Counter()
        n = 0
        while time.perf_counter() < deadline:
            if max_orders is not None and next(counter) >= max_orders:
                break
            began = time.perf_counter()
            outcome = call(t, n)
            took = time.perf_counter() - began
            n += 1
            mine.append(took)
            mine_out[outcome] += 1
            if outcome == "accepted":
                mine_ok.append(took)
        with lock:
            latencies.extend(mine)
            accepted_latencies.extend(mine_ok)
            outcomes.update(mine_out)
            ends.append(time.perf_counter())

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(caller, range(threads)))
    elapsed = max(ends) - start
    latencies.sort()
    accepted = outcomes.get("accepted", 0)
    return {
        "threads": threads,
        "seconds": round(elapsed, 2),
        "attempts": sum(outcomes.values()),
        "accepted": accepted,
        "orders_per_s": round(accepted / elapsed, 1),
        "p50_ms": ms(percentile(latencies, 0.50)),
        "p99_ms": ms(percentile(latencies, 0.99)),
        "max_ms": ms(latencies[-1] if latencies else None),
        "outcomes": dict(outcomes),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


# ---- the floor: what the engine does for a correct no-oversell order ----------------------------

_SERIALIZER = TypeSerializer()


def ddb(value: dict[str, Any]) -> dict[str, Any]:
    return {k: _SERIALIZER.serialize(v) for k, v in value.items()}


def floor_order_item(order_id: str, stock_pk: str, quantity: int) -> dict[str, Any]:
    """An order item shaped like ours (keys of the four indexes, lines, address, history), padded to
    about ORDER_ITEM_BYTES."""
    at = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    shard = random.randrange(16)
    customer = f"shopper-{order_id[-8:]}"
    item = {
        "pk": f"ORDER#{order_id}", "sk": "ORDER", "entity": "ORDER", "order_id": order_id,
        "order_number": f"HS-{order_id[-10:].upper()}", "customer_id": customer, "status": "PENDING_PAYMENT",
        "payment_status": "unpaid", "fulfillment_status": "unfulfilled", "currency": "USD", "total_amount": 4999,
        "lines": [{"sku": stock_pk, "name": "Limited edition hot item", "quantity": quantity, "unit_amount": 4999,
                   "stock_policy": "reserve_on_order"}],
        "payment_provider": "sandbox", "shipping_address": ADDRESS, "payment": {"client_secret": uuid.uuid4().hex},
        "created_at": at, "updated_at": at, "expires_at": at,
        "history": [{"at": at, "actor": f"customer:{customer}", "from": None, "to": "PENDING_PAYMENT",
                     "reason": "order_placed"}],
        "amount_paid": 0, "amount_refunded": 0, "version": 1,
        "gsi1pk": f"CUSTOMER#{customer}", "gsi1sk": f"{at}#{order_id}",
        "gsi2pk": f"STATUS#PENDING_PAYMENT#{shard}", "gsi2sk": f"{at}#{order_id}",
        "gsi3pk": f"ORDERS#{shard}", "gsi3sk": f"{at}#{order_id}",
        "gsi4pk": f"PENDING_PAYMENT#{shard}", "gsi4sk": f"{at}#{order_id}",
    }
    size = len(json.dumps(item, separators=(",", ":")))
    item["notes"] = "x" * max(0, ORDER_ITEM_BYTES - size - 12)
    return item


def floor_call(client, table: str, stock_keys: list[dict[str, str]]) -> Callable[[int, int], str]:
    def call(t: int, n: int) -> str:
        key = random.choice(stock_keys)
        order_id = f"ord_{uuid.uuid4().hex}"
        try:
            client.transact_write_items(TransactItems=[
                {"Update": {
                    "TableName": table, "Key": ddb(key),
                    "UpdateExpression": "ADD available :minus_q, reserved :q",
                    "ConditionExpression": "available >= :q",
                    "ExpressionAttributeValues": {":q": {"N": "1"}, ":minus_q": {"N": "-1"}},
                }},
                {"Put": {
                    "TableName": table, "Item": ddb(floor_order_item(order_id, key["pk"], 1)),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }},
            ])
            return "accepted"
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "ClientError")
            if code == "TransactionCanceledException":
                reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])
                           if r.get("Code") not in (None, "None")]
                return "cancelled:" + ",".join(reasons or ["unknown"])
            return code
        except Exception as error:  # noqa: BLE001 - counted, not raised
            return type(error).__name__

    return call


def floor_phase(client, table: str, items: int, seconds: float, max_orders: int | None) -> dict[str, Any]:
    pk = f"FLOOR#{uuid.uuid4().hex[:8]}"
    keys = [{"pk": pk, "sk": f"STOCK#{i}"} for i in range(items)]
    for key in keys:
        client.put_item(TableName=table, Item=ddb({**key, "on_hand": AMPLE_STOCK, "available": AMPLE_STOCK,
                                                   "reserved": 0, "sold": 0}))
    result = run_phase(THREADS, seconds, floor_call(client, table, keys), max_orders)
    result["stock_items"] = items
    result["failures"] = result["attempts"] - result["accepted"]
    levels = Counter()
    for key in keys:
        got = client.get_item(TableName=table, Key=ddb(key), ConsistentRead=True)["Item"]
        levels.update({"available": int(got["available"]["N"]), "reserved": int(got["reserved"]["N"])})
    result["stock_check"] = {"reserved": levels["reserved"], "matches_accepted": levels["reserved"] == result["accepted"],
                             "available_plus_reserved": levels["available"] + levels["reserved"]}
    return result


# ---- our path -------------------------------------------------------------------------------------

class NoOps:
    """The payment window and events: not counted here."""

    def open(self, order_id: str, expires_at: str) -> None:
        pass

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        pass

    def request_release(self, order_id: str, reason: str) -> None:
        pass


def our_call(ports, code: str, last_order: dict[str, str]) -> Callable[[int, int], str]:
    from shop.domain.errors import InsufficientStock, Unavailable
    from shop.services.orders import OrderPolicy, OrderRequest, PlaceOrder, place_order, request_fingerprint

    items = [(code, 1)]
    fingerprint = request_fingerprint({"items": [[code, 1]]})

    def call(t: int, n: int) -> str:
        request = OrderRequest(items=items, shipping_address=ADDRESS, payment_provider="sandbox")
        try:
            placed = place_order(ports, PlaceOrder(f"shopper-{t}-{n}-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex,
                                                   request, fingerprint), OrderPolicy(900, 3600), lambda o: {})
            last_order["order_id"] = placed.order_id
            return "accepted"
        except Unavailable:
            return "unavailable_503"
        except InsufficientStock:
            return "insufficient_stock_409"
        except Exception as error:  # noqa: BLE001 - counted, not raised
            return type(error).__name__

    return call


def create_sku(ports, code: str, on_hand: int, shards: int | None) -> None:
    from shop.domain.money import Money
    from shop.services import catalog

    extra = {"stock_shards": shards} if shards is not None else {}
    catalog.upsert_sku(ports, code, catalog.SkuDetails(name=code, price=Money(4999, "USD"), on_hand=on_hand, **extra),
                       actor="admin:bench")


def sku_levels(ports, code: str) -> dict[str, int]:
    from shop.services import catalog

    return catalog.get_sku(ports, code).levels.to_dict()


def ours_phase(ports, shards: int | None, seconds: float, max_orders: int | None) -> dict[str, Any]:
    code = f"HOT-{uuid.uuid4().hex[:8]}"
    create_sku(ports, code, AMPLE_STOCK, shards)
    last_order: dict[str, str] = {}
    result = run_phase(THREADS, seconds, our_call(ports, code, last_order), max_orders)
    result["stock_shards"] = shards or 1
    result["unavailable_503"] = result["outcomes"].get("unavailable_503", 0)
    result["other_errors"] = {k: v for k, v in result["outcomes"].items() if k not in ("accepted", "unavailable_503")}
    levels = sku_levels(ports, code)
    result["levels_after"] = levels
    result["stock_check"] = {"reserved_matches_accepted": levels["reserved"] + levels["sold"] == result["accepted"],
                             "on_hand_unchanged": levels["on_hand"] == AMPLE_STOCK}
    if last_order:
        try:  # the size of a real order item (key layout as today: ORDER#{id} / ORDER)
            got = ports.store.db.get_item(TableName=ports.store.table,
                                          Key=ddb({"pk": f"ORDER#{last_order['order_id']}", "sk": "ORDER"}))
            if "Item" in got:
                from boto3.dynamodb.types import TypeDeserializer
                plain = {k: TypeDeserializer().deserialize(v) for k, v in got["Item"].items()}
                result["order_item_bytes"] = len(json.dumps(plain, default=str, separators=(",", ":")))
        except Exception:  # noqa: BLE001 - informative only
            pass
    return result


def compare(ours: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    return {"throughput_ours_over_floor": ratio(ours["orders_per_s"], floor["orders_per_s"]),
            "p50_ours_over_floor": ratio(ours["p50_ms"], floor["p50_ms"]),
            "p99_ours_over_floor": ratio(ours["p99_ms"], floor["p99_ms"])}


def targets(ours: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    vs = compare(ours, floor)
    met = {
        "throughput_ge_0_5_floor": vs["throughput_ours_over_floor"] is not None and vs["throughput_ours_over_floor"] >= 0.5,
        "zero_503_with_ample_stock": ours["unavailable_503"] == 0,
        "p99_le_4x_floor": vs["p99_ours_over_floor"] is not None and vs["p99_ours_over_floor"] <= 4.0,
    }
    return {**met, "all": all(met.values()), **vs}


# ---- sell-out -------------------------------------------------------------------------------------

def sell_out_phase(ports, shards: int | None) -> dict[str, Any]:
    from shop.domain.errors import InsufficientStock, Unavailable
    from shop.services.orders import OrderPolicy, OrderRequest, PlaceOrder, place_order, request_fingerprint

    code = f"SELLOUT-{uuid.uuid4().hex[:8]}"
    create_sku(ports, code, SELLOUT_STOCK, shards)
    fingerprint = request_fingerprint({"items": [[code, 1]]})
    lock = threading.Lock()
    outcomes: Counter[str] = Counter()
    accepted_ends: list[float] = []
    first_409: list[float] = []
    start = time.perf_counter()
    deadline = start + SELLOUT_MAX_SECONDS

    def caller(t: int) -> None:
        refused_in_a_row = n = 0
        while refused_in_a_row < SELLOUT_STOP_AFTER_409S and time.perf_counter() < deadline:
            request = OrderRequest(items=[(code, 1)], shipping_address=ADDRESS, payment_provider="sandbox")
            try:
                place_order(ports, PlaceOrder(f"fan-{t}-{n}", uuid.uuid4().hex, request, fingerprint),
                            OrderPolicy(900, 3600), lambda o: {})
                outcome, refused_in_a_row = "accepted", 0
            except InsufficientStock:
                outcome = "insufficient_stock_409"
                refused_in_a_row += 1
            except Unavailable:
                outcome = "unavailable_503"
            except Exception as error:  # noqa: BLE001 - counted, not raised
                outcome = type(error).__name__
            n += 1
            now = time.perf_counter()
            with lock:
                outcomes[outcome] += 1
                if outcome == "accepted":
                    accepted_ends.append(now)
                elif outcome == "insufficient_stock_409" and not first_409:
                    first_409.append(now)

    with ThreadPoolExecutor(SELLOUT_THREADS) as pool:
        list(pool.map(caller, range(SELLOUT_THREADS)))
    done = time.perf_counter()
    sold = outcomes.get("accepted", 0)
    levels = sku_levels(ports, code)
    oversold = max(0, sold - SELLOUT_STOCK, levels["reserved"] + levels["sold"] - SELLOUT_STOCK, -levels["available"])
    return {
        "stock": SELLOUT_STOCK,
        "stock_shards": shards or 1,
        "threads": SELLOUT_THREADS,
        "units_sold": sold,
        "all_sold": sold == SELLOUT_STOCK,
        "oversold": oversold,
        "unavailable_503": outcomes.get("unavailable_503", 0),
        "insufficient_stock_409": outcomes.get("insufficient_stock_409", 0),
        "other_errors": {k: v for k, v in outcomes.items()
                         if k not in ("accepted", "unavailable_503", "insufficient_stock_409")},
        "seconds_to_sold_out": round(max(accepted_ends) - start, 2) if sold >= SELLOUT_STOCK else None,
        "seconds_to_last_sale": round(max(accepted_ends) - start, 2) if accepted_ends else None,
        "seconds_to_first_409": round(first_409[0] - start, 2) if first_409 else None,
        "seconds_until_all_callers_gave_up": round(done - start, 2),
        "hit_time_limit": done >= deadline,
        "orders_per_s_until_sold_out": round(sold / (max(accepted_ends) - start), 1) if accepted_ends else 0,
        "levels_after": levels,
        "levels_consistent": levels["on_hand"] == levels["available"] + levels["reserved"]
                             and min(levels.values()) >= 0,
        "levels_match_sold": levels["reserved"] + levels["sold"] == sold,
    }


# ---- main -----------------------------------------------------------------------------------------

def main() -> None:
    ensure_installed()
    server = DynamoDBLocal().start()
    try:
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = server.endpoint_url
        table = f"hot-{uuid.uuid4().hex[:10]}"
        os.environ["TABLE_NAME"] = table

        from shop.adapters import aws
        from shop.adapters.dynamo_store import DynamoShopStore
        from shop.adapters.table_schema import create_table_kwargs
        from shop.services import catalog
        from shop.services.ports import Ports

        # Our clients keep the shop's config (timeouts, retries) with one pooled connection per caller, as
        # each Lambda instance has its own; the floor's client is configured the same.
        pool_patched = isinstance(getattr(aws, "_CONFIG", None), Config)
        if pool_patched:
            aws._CONFIG = aws._CONFIG.merge(Config(max_pool_connections=POOL))
        aws.reset_clients()
        floor_client = boto3.client("dynamodb", endpoint_url=server.endpoint_url, config=Config(
            connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3},
            max_pool_connections=POOL))
        floor_client.create_table(**create_table_kwargs(table))
        noop = NoOps()
        ports = Ports(store=DynamoShopStore(table), events=noop, windows=noop, release_queue=noop)
        shards_supported = "stock_shards" in catalog.SkuDetails.__dataclass_fields__

        if WARMUP_SECONDS > 0:  # JIT the engine and our code before anything is measured
            floor_phase(floor_client, table, 1, WARMUP_SECONDS, None)
            ours_phase(ports, None, WARMUP_SECONDS, None)

        floor = floor_phase(floor_client, table, 1, SECONDS, ORDERS)
        ours = ours_phase(ports, None, SECONDS, ORDERS)
        floor_sharded = floor_phase(floor_client, table, SHARDS, SECONDS, ORDERS)
        if shards_supported:
            ours_sharded = ours_phase(ports, SHARDS, SECONDS, ORDERS)
        else:
            ours_sharded = {"skipped": "catalog.SkuDetails has no stock_shards: the stock model before issue 11"}
        sell_out = sell_out_phase(ports, SHARDS if shards_supported else None)

        report: dict[str, Any] = {
            "benchmark": "hot_sku",
            "engine": "DynamoDB Local (one JVM, in-memory), one table, one process",
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "threads": THREADS,
            "seconds_per_phase": SECONDS,
            "orders_cap_per_phase": ORDERS,
            "client_max_pool_connections": POOL if pool_patched else "shop default (not patched)",
            "floor_order_item_bytes": len(json.dumps(floor_order_item("ord_" + "0" * 32, "FLOOR#x", 1),
                                                     separators=(",", ":"))),
            "stock_shards_supported": shards_supported,
            "floor": floor,
            "ours": {**ours, "vs_floor": compare(ours, floor)},
            "floor_sharded": floor_sharded,
            "ours_sharded": ({**ours_sharded, "vs_floor_sharded": compare(ours_sharded, floor_sharded),
                              "vs_floor": compare(ours_sharded, floor)}
                             if shards_supported else ours_sharded),
            "sell_out": sell_out,
            "target_met": targets(ours, floor),
        }
        if shards_supported:
            report["target_met_sharded"] = targets(ours_sharded, floor_sharded)
        report["sell_out_ok"] = sell_out["all_sold"] and sell_out["oversold"] == 0
        print(json.dumps(report, indent=2))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
