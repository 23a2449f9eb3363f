"""DynamoDB persistence: every state change is one TransactWriteItems.

Stock movements are conditional arithmetic on one stock shard (`ADD` the delta, with a guard that
every level it lowers holds enough), written with their ledger entry in the same transaction: no
read of levels precedes a stock write, so concurrent orders for a SKU never conflict in our code.
Orders are optimistic instead: every write is conditional on the version it was computed from.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

from shop.adapters import items as it
from shop.adapters.aws import client
from shop.adapters.table_schema import INDEX_SHARDS
from shop.domain.after_sales import AfterSale
from shop.domain.cart_holds import CartHold
from shop.domain.errors import Unprocessable
from shop.domain.orders import Order
from shop.domain.skus import Sku, StockLevels
from shop.domain.stock import StockMovement
from shop.domain.stock_documents import DocumentKind, StockDocument
from shop.domain.warehouses import Warehouses
from shop.services.ports import CapReached, Commit, CommitRejected, StaleWrite, StockShort, Throttled
from shop.services.records import (
    AdjustmentApplied,
    IdempotentResponse,
    KeyedRecord,
    RestockApplied,
    WebhookReceipt,
)

MAX_PAGE = 100
# A filtered listing (the phone index with a customer or status) reads at most this many times per page
# (each read up to 1,000 items or 1 MB) before it answers with what it found and a cursor to go on from.
MAX_FILTERED_READS = 10
FILTERED_READ_ITEMS = 100  # items a filtered read asks for at least (DynamoDB's Limit counts them before the filter)
# How long an order may price from a catalog entry read before (per container). Never charged wrong:
# the stock write checks the price and active flag on the shard; a stale entry only costs a retry.
CATALOG_CACHE_SECONDS = 1.0
# How long the order path may rank warehouses from a registry read before (per container): a new warehouse
# is passed over for that long at most; stock itself is never cached.
WAREHOUSES_CACHE_SECONDS = 10.0


def encode_cursor(last_key: dict[str, Any] | None) -> str | None:
    if not last_key:
        return None
    plain = it.decode(last_key)
    return base64.urlsafe_b64encode(json.dumps(plain, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, allowed_keys: set[str], fixed: dict[str, str]) -> dict[str, Any] | None:
    """A cursor is untrusted input: it must decode to exactly the index's keys, with fixed ones unchanged."""
    if not cursor:
        return None

    def key_value(value: Any) -> bool:
        # DynamoDB refuses empty key strings and caps key sizes (a ValidationException, never a retry):
        # a cursor's values must be non-empty, encodable and well below those caps.
        try:
            return isinstance(value, str) and 0 < len(value.encode("utf-8")) <= 512
        except UnicodeEncodeError:  # a lone surrogate, sent as a \udXXX escape
            return False

    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        plain = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise Unprocessable("cursor is not valid", {"fields": ["cursor"]}) from None
    if (
        not isinstance(plain, dict)
        or set(plain) != allowed_keys
        or not all(key_value(v) for v in plain.values())
        or any(plain.get(k) != v for k, v in fixed.items())
    ):
        raise Unprocessable("cursor is not valid", {"fields": ["cursor"]})
    return it.encode(plain)


# Order listings: every index partition (shard) is sorted by the same "{created_at}#{order_id}", so
# a page ends at one sort key, and the cursor is that key, bound to the listing it belongs to.
FAN_OUT_THREADS = 8  # concurrent shard queries; under botocore's 10 pooled connections per client


def listing_scope(index: str, partition: str) -> str:
    """A short tag of the index and filter a cursor was issued for (the filter itself may be a
    customer id, which the cursor need not carry)."""
    return hashlib.sha256(f"{index}\0{partition}".encode()).hexdigest()[:12]


def encode_listing_cursor(scope: str, last_sort_key: str) -> str:
    payload = json.dumps([scope, last_sort_key], separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_listing_cursor(cursor: str | None, scope: str) -> str | None:
    """The last sort key of the previous page. A cursor is untrusted input: it must be one issued
    for this index and filter, holding one plausible sort key; anything else is 422."""
    if not cursor:
        return None
    try:
        plain = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        # A key value DynamoDB accepts: encodable (no lone surrogate) and well below its key size cap.
        if isinstance(plain, list) and len(plain) == 2 and isinstance(plain[1], str):
            size = len(plain[1].encode("utf-8"))
        else:
            size = 0
    except (binascii.Error, ValueError, UnicodeDecodeError, UnicodeEncodeError, RecursionError):
        raise Unprocessable("cursor is not valid", {"fields": ["cursor"]}) from None
    if not 0 < size <= 512 or plain[0] != scope or "#" not in plain[1]:
        raise Unprocessable("cursor is not valid", {"fields": ["cursor"]})
    return plain[1]


class DynamoShopStore:
    def __init__(self, table_name: str):
        self.table = table_name
        self.db = client("dynamodb")
        self._catalog_cache: dict[str, tuple[float, Sku]] = {}
        self._warehouses_cache: tuple[float, Warehouses] | None = None

    # ---- reads -------------------------------------------------------------

    def _batch_get(self, keys: list[dict[str, str]], consistent: bool) -> list[dict[str, Any]]:
        """Items by key in BatchGetItems of 100 (plus re-requests of unprocessed keys)."""
        found: list[dict[str, Any]] = []
        pending = [it.encode(k) for k in {(k["pk"], k["sk"]): k for k in keys}.values()]
        while pending:
            batch, pending = pending[:100], pending[100:]
            request = {self.table: {"Keys": batch, "ConsistentRead": consistent}}
            while request:
                got = self.db.batch_get_item(RequestItems=request)
                found.extend(it.decode(raw) for raw in got["Responses"].get(self.table, []))
                request = got.get("UnprocessedKeys") or {}
        return found

    def get_catalog_and_response(self, codes: list[str], customer_id: str, key: str, *, consistent: bool = True
                                 ) -> tuple[dict[str, Sku], IdempotentResponse | None]:
        """Catalog entries (no stock levels) and the idempotency record, in one BatchGetItem."""
        skus, item = self._catalog_and_item(codes, it.idempotency_key(customer_id, key), consistent=consistent)
        return skus, it.idempotent_response_from_item(item, customer_id, key) if item else None

    def _catalog_and_item(self, codes: list[str], key: dict[str, str] | None, *, consistent: bool = True
                          ) -> tuple[dict[str, Sku], dict[str, Any] | None]:
        """Catalog entries (no stock levels) plus one other item, in one BatchGetItem.

        Not `consistent`: entries read in the last CATALOG_CACHE_SECONDS come from this container's
        memory, so a hot SKU's catalog item is not read by every order (an item serves ~3,000 read
        units/s). Safe because an order's stock write re-checks active and price on the shard itself."""
        found: dict[str, Sku] = {}
        other: dict[str, Any] | None = None
        now = time.monotonic()
        wanted = list(codes)
        if not consistent:
            cached = {c: hit[1] for c in codes if (hit := self._catalog_cache.get(c)) and hit[0] > now}
            found.update(cached)
            wanted = [c for c in codes if c not in cached]
        if not wanted and key is None:
            return found, None
        for item in self._batch_get([it.sku_key(c) for c in wanted] + ([key] if key else []), consistent):
            if item.get("entity") == "SKU":
                found[item["sku"]] = self._remember(it.sku_from_item(item), now)
            else:
                other = item
        return found, other

    def _remember(self, sku: Sku, now: float) -> Sku:
        if len(self._catalog_cache) > 10_000:
            self._catalog_cache.clear()
        self._catalog_cache[sku.sku] = (now + CATALOG_CACHE_SECONDS, sku)
        return sku

    def get_catalog(self, codes: list[str], *, consistent: bool = True) -> dict[str, Sku]:
        return self._catalog_and_item(codes, None, consistent=consistent)[0]

    def shard_levels(self, shards: dict[str, list[int]], *, consistent: bool = True
                     ) -> dict[str, dict[int, StockLevels]]:
        """Levels of the given shard items of each SKU (SKU -> shard numbers)."""
        levels: dict[str, dict[int, StockLevels]] = {code: {} for code in shards}
        keys = [it.shard_key(code, n) for code, numbers in shards.items() for n in numbers]
        for item in self._batch_get(keys, consistent):
            levels[item["sku"]][int(item["shard"])] = it.shard_levels_from_item(item)
        return levels

    def get_sku(self, code: str) -> Sku | None:
        """The catalog entry with its stock: every shard read, consistently, and summed."""
        sku = self.get_catalog([code]).get(code)
        if sku is None:
            return None
        return sku.with_shard_levels(self.shard_levels({code: sku.stock_items()})[code])

    def set_stock_state(self, code: str, state: str, expected: str) -> bool:
        """Record the stock state a stock event announced, once: False if someone else recorded it first."""
        self._catalog_cache.pop(code, None)
        index = it.sku_state_index(code, state)
        try:
            self.db.update_item(
                TableName=self.table, Key=it.encode(it.sku_key(code)),
                # The SKU moves to its new state's partition of the SKU list (gsi2) in the same write.
                UpdateExpression="SET stock_state = :new, " + ", ".join(f"{k} = :{k}" for k in index),
                ConditionExpression="attribute_exists(pk) AND (stock_state = :expected OR "
                                    "(attribute_not_exists(stock_state) AND :expected = :in_stock))",
                ExpressionAttributeValues=it.encode({":new": state, ":expected": expected, ":in_stock": "in_stock",
                                                     **{f":{k}": v for k, v in index.items()}}))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def advance_backorder_read_from(self, code: str, at: str) -> None:
        """Move the SKU's backorder read point forward to `at`; never back (a later one recorded meanwhile stays)."""
        self._catalog_cache.pop(code, None)
        try:
            self.db.update_item(
                TableName=self.table, Key=it.encode(it.sku_key(code)),
                UpdateExpression="SET backorder_read_from = :at",
                ConditionExpression="attribute_exists(pk) AND "
                                    "(attribute_not_exists(backorder_read_from) OR backorder_read_from < :at)",
                ExpressionAttributeValues=it.encode({":at": at}))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def get_warehouses(self, *, cached: bool = False) -> Warehouses:
        now = time.monotonic()
        if cached and self._warehouses_cache and now - self._warehouses_cache[0] < WAREHOUSES_CACHE_SECONDS:
            return self._warehouses_cache[1]
        registry = it.warehouses_from_item(self.get_item(it.WAREHOUSES_KEY))
        self._warehouses_cache = (now, registry)
        return registry

    def save_warehouses(self, warehouses: Warehouses) -> None:
        condition = "attribute_not_exists(pk)" if warehouses.version == 0 else "version = :v"
        put: dict[str, Any] = {"TableName": self.table, "Item": it.encode(it.warehouses_to_item(warehouses)),
                               "ConditionExpression": condition}
        if warehouses.version:
            put["ExpressionAttributeValues"] = it.encode({":v": warehouses.version})
        try:
            self.db.put_item(**put)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise StaleWrite("the warehouses changed since they were read") from None
            raise
        self._warehouses_cache = None

    def get_order(self, order_id: str) -> Order | None:
        got = self.db.get_item(TableName=self.table, Key=it.encode(it.order_key(order_id)), ConsistentRead=True)
        return it.order_from_item(it.decode(got["Item"])) if "Item" in got else None

    def get_item(self, key: dict[str, str]) -> dict[str, Any] | None:
        got = self.db.get_item(TableName=self.table, Key=it.encode(key), ConsistentRead=True)
        return it.decode(got["Item"]) if "Item" in got else None

    def idempotent_response(self, customer_id: str, key: str) -> IdempotentResponse | None:
        item = self.get_item(it.idempotency_key(customer_id, key))
        return it.idempotent_response_from_item(item, customer_id, key) if item else None

    def webhook_receipt(self, provider: str, event_id: str) -> WebhookReceipt | None:
        item = self.get_item(it.webhook_key(provider, event_id))
        return it.webhook_receipt_from_item(item) if item else None

    def restock_applied(self, message_id: str) -> RestockApplied | None:
        item = self.get_item(it.restock_key(message_id))
        return it.restock_applied_from_item(item, message_id) if item else None

    def adjustment_applied(self, sku: str, request_id: str) -> AdjustmentApplied | None:
        item = self.get_item(it.adjustment_key(sku, request_id))
        return it.adjustment_applied_from_item(item, sku, request_id) if item else None

    def import_rows_applied(self, file_id: str, lines: list[int]) -> set[int]:
        """BatchGetItem of the rows' markers (consistent), 100 keys per call."""
        found = self._batch_get([it.import_row_key(file_id, line) for line in lines], True)
        return {int(item["line"]) for item in found}

    def get_stock_document(self, kind: DocumentKind, doc_id: str) -> StockDocument | None:
        item = self.get_item(it.stock_document_key(kind, doc_id))
        return it.stock_document_from_item(item) if item else None

    def stock_documents(self, kind: DocumentKind, listed_under: str, limit: int = 100) -> list[StockDocument]:
        """One query of gsi3 (documents carry its keys only while listed); an index read may lag a commit."""
        got = self.db.query(TableName=self.table, IndexName="gsi3", KeyConditionExpression="gsi3pk = :pk",
                            ExpressionAttributeValues=it.encode({":pk": it.stock_documents_partition(kind, listed_under)}),
                            Limit=max(1, min(limit, MAX_PAGE)))
        return [it.stock_document_from_item(it.decode(raw)) for raw in got.get("Items", [])]

    def put_reconciliation(self, provider: str, day: date, result: dict[str, Any]) -> None:
        """Write or replace one provider's result for a business day."""
        self.db.put_item(TableName=self.table, Item=it.encode(it.reconciliation_to_item(provider, day, result)))

    def get_reconciliation(self, provider: str, day: date) -> dict[str, Any] | None:
        item = self.get_item(it.reconciliation_key(provider, day))
        return it.reconciliation_from_item(item) if item else None

    def count_paid_from_address(self, ip_hash: str, since: str) -> int:
        """How many orders paid from this address since `since` (a key-only count query)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table, "Select": "COUNT", "ConsistentRead": True,
            "KeyConditionExpression": "pk = :pk AND sk >= :from",
            "ExpressionAttributeValues": it.encode({":pk": it.paid_from_address_partition(ip_hash), ":from": since}),
        }
        count = 0
        while True:
            got = self.db.query(**kwargs)
            count += got.get("Count", 0)
            if "LastEvaluatedKey" not in got:
                return count
            kwargs["ExclusiveStartKey"] = got["LastEvaluatedKey"]

    def order_id_by_number(self, order_number: str) -> str | None:
        item = self.get_item(it.order_number_key(order_number))
        return item["order_id"] if item else None

    def _partition_query(self, request: dict[str, Any], want: int,
                         keep: Callable[[dict[str, Any]], bool] | None = None,
                         filtered: bool = False) -> tuple[list[dict[str, Any]], bool, str | None]:
        """The first `want` items (that `keep` accepts) of one index partition in the request's order,
        following pages past DynamoDB's 1 MB cap so the merge stays exact; whether more may follow; and,
        for a `filtered` request (a FilterExpression) that gave up after MAX_FILTERED_READS reads, the
        sort key read up to (the next page goes on from there, so paging always makes progress)."""
        request = dict(request)
        found: list[dict[str, Any]] = []
        sk_attr = f"{request['IndexName']}sk" if "IndexName" in request else "sk"
        reads = 0
        # One item beyond `want` says exactly whether more follow: no cursor to an empty last page.
        target = want + 1
        while True:
            if filtered:  # Limit counts items read before the filter: read in larger steps
                request["Limit"] = min(max(4 * (target - len(found)), FILTERED_READ_ITEMS), 1000)
            else:  # `keep` drops at most the one item the range has to include (the previous page's last).
                request["Limit"] = min(target - len(found) + (1 if keep else 0), 1000)
            got = self.db.query(**request)
            reads += 1
            found.extend(item for item in map(it.decode, got.get("Items", [])) if keep is None or keep(item))
            if len(found) >= target or "LastEvaluatedKey" not in got:
                return found[:want], len(found) > want, None
            if filtered and reads >= MAX_FILTERED_READS:
                return found, True, it.decode(got["LastEvaluatedKey"])[sk_attr]
            request["ExclusiveStartKey"] = got["LastEvaluatedKey"]

    def _fan_out(self, requests: list[dict[str, Any]], want: int,
                 keep: Callable[[dict[str, Any]], bool] | None = None) -> list[tuple[list[dict[str, Any]], bool]]:
        """`_partition_query` on every shard, concurrently (boto3 clients are thread-safe)."""
        if len(requests) == 1:
            return [self._partition_query(requests[0], want, keep)[:2]]
        with ThreadPoolExecutor(min(FAN_OUT_THREADS, len(requests)), thread_name_prefix="index-shard") as pool:
            return list(pool.map(lambda request: self._partition_query(request, want, keep)[:2], requests))

    def _query_index(self, index: str, partitions: list[str], scope_value: str, limit: int, cursor: str | None,
                     sk_range: tuple[str | None, str | None] = (None, None), *, forward: bool = False,
                     match: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """One page over the index partitions `partitions` (the shards of one listing), merged: newest
        first (`forward`: ascending), within the inclusive sort key range `sk_range`.

        Each shard is sorted by the same sort key: querying every shard for its first `limit` items
        past the cursor and keeping the first `limit` of all is exact. The cursor is the last sort key
        emitted (see `decode_listing_cursor`). `match` (attribute -> value) filters a single partition
        server-side; the partition is read until the page is full or it ends, at most MAX_FILTERED_READS
        reads: then the page so far is returned with a cursor to go on from. A page with a cursor always
        has items: a filter that found nothing in that many reads is refused (422, narrow the dates).
        """
        pk_attr, sk_attr = f"{index}pk", f"{index}sk"
        scope = listing_scope(index, scope_value)
        last = decode_listing_cursor(cursor, scope)
        want = max(1, min(limit, MAX_PAGE))
        low, high = sk_range
        lo, hi = low or None, (high + "\uffff" if high else None)  # inclusive: every key of a time <= `to`
        skip: str | None = None  # the cursor's own item, when the range has to include it
        if last is not None:
            if forward:
                if hi is not None and last >= hi:
                    return [], None
                if lo is None or last >= lo:
                    lo, skip = last, last
            else:
                if lo is not None and last <= lo:
                    return [], None
                if hi is None or last <= hi:
                    hi, skip = last, last
        values: dict[str, Any] = {}
        if lo is not None and hi is not None:
            if lo > hi:
                return [], None
            condition, values = "#sk BETWEEN :lo AND :hi", {":lo": lo, ":hi": hi}
        elif lo is not None:
            condition, values, skip = ("#sk > :lo" if skip else "#sk >= :lo"), {":lo": lo}, None
        elif hi is not None:
            condition, values, skip = ("#sk < :hi" if skip else "#sk <= :hi"), {":hi": hi}, None
        else:
            condition = ""
        keep = (lambda item: item[sk_attr] != skip) if skip else None  # noqa: E731
        names = {"#pk": pk_attr, **({"#sk": sk_attr} if condition else {})}
        request: dict[str, Any] = {
            "TableName": self.table, "IndexName": index, "ScanIndexForward": forward,
            "KeyConditionExpression": "#pk = :pk" + (f" AND {condition}" if condition else ""),
        }
        if match:
            names.update({f"#f{i}": name for i, name in enumerate(match)})
            values.update({f":f{i}": value for i, value in enumerate(match.values())})
            request["FilterExpression"] = " AND ".join(f"#f{i} = :f{i}" for i in range(len(match)))
            if len(partitions) != 1:
                raise ValueError("a filtered listing reads one partition")
            items, more, resume = self._partition_query(
                {**request, "ExpressionAttributeNames": names,
                 "ExpressionAttributeValues": it.encode({":pk": partitions[0], **values})}, want, keep, filtered=True)
            if resume is not None:
                if not items:
                    raise Unprocessable("too many orders to filter in one page: narrow the range with from/to",
                                        {"fields": ["from", "to"]})
                return items, encode_listing_cursor(scope, resume)
            return items, encode_listing_cursor(scope, items[-1][sk_attr]) if more and items else None
        requests = [{**request, "ExpressionAttributeNames": names,
                     "ExpressionAttributeValues": it.encode({":pk": partition, **values})} for partition in partitions]
        results = self._fan_out(requests, want, keep)
        merged = sorted((item for items, _ in results for item in items), key=lambda item: item[sk_attr],
                        reverse=not forward)
        page = merged[:want]
        more = len(merged) > want or any(more for _, more in results)
        return page, encode_listing_cursor(scope, page[-1][sk_attr]) if more and page else None

    def _query_orders(self, index: str, partitions: list[str], scope_value: str, limit: int, cursor: str | None,
                      sk_range: tuple[str | None, str | None] = (None, None), match: dict[str, str] | None = None,
                      convert: Callable[[dict[str, Any]], Any] = it.order_from_item) -> tuple[list[Any], str | None]:
        """Newest first (see `_query_index`), each item made an order (or what `convert` makes of it)."""
        items, next_cursor = self._query_index(index, partitions, scope_value, limit, cursor, sk_range, match=match)
        return [convert(item) for item in items], next_cursor

    def customer_orders(self, customer_id: str, limit: int, cursor: str | None, *,
                        status: str | None = None) -> tuple[list[Order], str | None]:
        """One customer's orders, newest first; in one status when given (gsi5: exact, never filtered)."""
        index, partition = it.customer_orders_partition(customer_id, status)
        return self._query_orders(index, [partition], partition, limit, cursor)

    def orders(self, *, status: str | None, customer_id: str | None, created_from: str | None,
               created_to: str | None, limit: int, cursor: str | None,
               phone_digest: str | None = None) -> tuple[list[Order], str | None]:
        """Admin listing, newest first, on the index that answers the filters, never a Scan:
        phone (gsi6, one phone's orders, customer and status filtered there), customer and status
        (gsi5), customer (gsi1), status (gsi2, sharded), none (gsi3, sharded); the dates are a sort
        key range on each of them."""
        dates = (created_from, created_to)
        if phone_digest:
            index, partition = it.phone_orders_partition(phone_digest)
            match = {name: value for name, value in (("customer_id", customer_id), ("status", status)) if value}
            return self._query_orders(index, [partition], partition, limit, cursor, dates, match or None)
        if customer_id:
            index, partition = it.customer_orders_partition(customer_id, status)
            return self._query_orders(index, [partition], partition, limit, cursor, dates)
        index, base, partitions = it.shop_orders_partitions(status)
        return self._query_orders(index, partitions, base, limit, cursor, dates)

    def skus(self, *, states: tuple[str, ...] | None, limit: int, cursor: str | None) -> tuple[list[Sku], str | None]:
        """Operators' SKU list by code, with every SKU's levels summed over its shards (one BatchGetItem
        per page): all SKUs (gsi3), or those whose recorded stock state is one of `states` (gsi2)."""
        if states:
            partitions = [p for state in sorted(states) for p in it.sku_list_partitions(state)[2]]
            index, base = "gsi2", "SKUSTATE#" + ",".join(sorted(states))
        else:
            index, base, partitions = it.sku_list_partitions()
        items, next_cursor = self._query_index(index, partitions, base, limit, cursor, forward=True)
        catalog = [it.sku_from_item(item) for item in items]
        levels = self.shard_levels({sku.sku: sku.stock_items() for sku in catalog}, consistent=False)
        return [sku.with_shard_levels(levels[sku.sku]) for sku in catalog], next_cursor

    def get_after_sale(self, after_sale_id: str) -> AfterSale | None:
        item = self.get_item(it.after_sale_key(after_sale_id))
        return it.after_sale_from_item(item) if item else None

    def after_sales(self, *, status: str | None, limit: int, cursor: str | None) -> tuple[list[AfterSale], str | None]:
        """Operators' listing, newest first: gsi2 by status or gsi3 for all, over the index shards (never a scan)."""
        index, base = ("gsi2", f"{it.AFTER_SALES_BY_STATUS}#{status}") if status else ("gsi3", it.AFTER_SALES_BY_STATUS)
        partitions = [f"{base}#{n}" for n in range(INDEX_SHARDS)]
        return self._query_orders(index, partitions, base, limit, cursor, convert=it.after_sale_from_item)

    def orders_created_between(self, created_from: str, created_to: str) -> Iterator[Order]:
        """Every order created from `created_from` to `created_to` (ISO times, both included), in no
        particular order: the admin listing's index (gsi3, `ORDERS#{n}` / `{created_at}#{order_id}`) read
        shard by shard to its end. For daily reconciliation, which reads a business day's orders and those
        of the days before it (refunded since); it yields as it reads, so the caller keeps only what it needs.
        """
        for shard in range(INDEX_SHARDS):
            request: dict[str, Any] = {
                "TableName": self.table, "IndexName": "gsi3",
                "KeyConditionExpression": "gsi3pk = :pk AND gsi3sk BETWEEN :lo AND :hi",
                "ExpressionAttributeValues": it.encode({":pk": f"ORDERS#{shard}", ":lo": created_from,
                                                        ":hi": created_to + "\uffff"}),
            }
            while True:
                got = self.db.query(**request)
                for item in got.get("Items", []):
                    yield it.order_from_item(it.decode(item))
                if "LastEvaluatedKey" not in got:
                    break
                request["ExclusiveStartKey"] = got["LastEvaluatedKey"]

    def orders_by_id(self, order_ids: list[str]) -> list[Order]:
        """The orders of these ids that exist (BatchGetItem, consistent)."""
        return [it.order_from_item(item) for item in self._batch_get([it.order_key(i) for i in order_ids], True)]

    def overdue_pending_order_ids(self, now_iso: str, limit: int = 100) -> list[str]:
        """Ids of PENDING_PAYMENT orders whose window ended by `now_iso`, oldest first (for the sweeper).

        The sparse gsi4 holds only unpaid orders (and orders with a pending refund, under another
        key), keyed by expiry: the query reads the overdue ones and nothing else, however many orders
        are waiting for payment.
        """
        return self._due_order_ids("PENDING_PAYMENT", now_iso, limit)

    def pending_refund_order_ids(self, before_iso: str, limit: int = 100) -> list[str]:
        """Ids of orders with a refund still `pending` that was recorded at or before `before_iso`,
        oldest pending refund first (for the sweeper to finish them)."""
        return self._due_order_ids("REFUND_PENDING", before_iso, limit)

    def completion_due_order_ids(self, now_iso: str, limit: int = 100) -> list[str]:
        """Ids of DELIVERED orders whose confirmation period ended by `now_iso` and that have no open after-sales
        request (sparse gsi4: only such orders carry the key), oldest first."""
        return self._due_order_ids("COMPLETION_DUE", now_iso, limit)

    def overdue_cart_hold_ids(self, now_iso: str, limit: int = 100) -> list[str]:
        """Active cart holds whose expiry is <= `now_iso` (sparse gsi4: only active holds carry the key)."""
        return [key.removeprefix("CARTHOLD#") for key in self._due_keys(it.CART_HOLDS_DUE, now_iso, limit)]

    def get_cart_hold(self, hold_id: str) -> CartHold | None:
        item = self.get_item(it.cart_hold_key(hold_id))
        return it.cart_hold_from_item(item) if item else None

    def _due_order_ids(self, kind: str, before_iso: str, limit: int) -> list[str]:
        return [key.removeprefix("ORDER#") for key in self._due_keys(kind, before_iso, limit)]

    def _due_keys(self, kind: str, before_iso: str, limit: int) -> list[str]:
        """Partition keys of gsi4's `kind` whose time is <= `before_iso`, oldest first, over all shards.

        Each shard is read for its oldest `limit` (keys only), so the merge is exact.
        """
        if limit <= 0:
            return []
        requests = [{
            "TableName": self.table,
            "IndexName": "gsi4",
            # "{time}#{order_id}" < "{before}$" holds exactly when time <= before ('$' sorts after '#').
            "KeyConditionExpression": "gsi4pk = :pk AND gsi4sk < :upper",
            "ExpressionAttributeValues": it.encode({":pk": f"{kind}#{n}", ":upper": f"{before_iso}$"}),
        } for n in range(INDEX_SHARDS)]
        merged = sorted((item for items, _ in self._fan_out(requests, limit) for item in items),
                        key=lambda item: item["gsi4sk"])
        return [item["pk"] for item in merged[:limit]]

    def ledger(self, code: str, limit: int, cursor: str | None, *, items: list[int] | None = None,
               since: str | None = None) -> tuple[list[StockMovement], str | None]:
        """A SKU's stock movements, oldest first, merged over its shards' ledgers (each sorted by
        "{at}#{movement_id}"), from `since` (an `at`, included) when given; the cursor is the last sort key
        emitted."""
        scope = listing_scope("ledger", code if items is None else code + "#" + ",".join(map(str, items)))
        if items is None:
            catalog = self.get_catalog([code]).get(code)
            items = catalog.stock_items() if catalog else [0]
        last = decode_listing_cursor(cursor, scope)
        want = max(1, min(limit, MAX_PAGE))
        requests = [{
            "TableName": self.table, "ConsistentRead": True, "ScanIndexForward": True,
            # "{at}#{movement_id}" >= since holds exactly when at >= since; a cursor is always past `since`.
            "KeyConditionExpression": "pk = :pk" + (" AND sk > :last" if last else " AND sk >= :since" if since else ""),
            "ExpressionAttributeValues": it.encode({":pk": it.ledger_partition(code, n),
                                                    **({":last": last} if last else {":since": since} if since else {})}),
        } for n in items]
        results = self._fan_out(requests, want)
        merged = sorted((item for items, _ in results for item in items), key=lambda item: item["sk"])
        page = merged[:want]
        more = len(merged) > want or any(more for _, more in results)
        next_cursor = encode_listing_cursor(scope, page[-1]["sk"]) if more and page else None
        return [it.movement_from_item(item) for item in page], next_cursor

    def ledger_between(self, code: str, at_from: str | None, at_to: str | None) -> Iterator[StockMovement]:
        """One Query per stock item's ledger, a sort key range ("{at}#{movement_id}"), paged lazily and merged."""
        catalog = self.get_catalog([code]).get(code)
        bounds = {":lo": at_from or " ", ":hi": (at_to or "\uffff") + "\uffff"}  # keys are never empty strings
        streams = [self._ledger_range(it.ledger_partition(code, n), bounds) for n in (catalog.stock_items() if catalog else [0])]
        for item in heapq.merge(*streams, key=lambda item: item["sk"]):
            yield it.movement_from_item(item)

    def _ledger_range(self, partition: str, bounds: dict[str, str]) -> Iterator[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self.table, "ConsistentRead": True, "ScanIndexForward": True,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": it.encode({":pk": partition, **bounds}),
        }
        while True:
            got = self.db.query(**request)
            yield from (it.decode(item) for item in got.get("Items", []))
            if "LastEvaluatedKey" not in got:
                return
            request["ExclusiveStartKey"] = got["LastEvaluatedKey"]

    # ---- the one write path ----------------------------------------------

    def commit(self, commit: Commit) -> None:
        operations: list[tuple[str, dict[str, Any]]] = []
        openings = commit.openings()
        for (code, shard), delta in commit.shard_deltas().items():
            if (code, shard) in openings:
                operations.append((f"cap:{code}", self._opening_update(code, shard, delta, openings[(code, shard)])))
                continue
            operations.append((f"stock:{code}", self._shard_update(code, shard, delta, commit.catalog_guards.get(code),
                                                                   keep=(code, shard) in commit.keep_available)))
        for movement in commit.movements:
            operations.append(("ledger", {"Put": {
                "TableName": self.table,
                "Item": it.encode(it.movement_to_item(movement)),
                "ConditionExpression": "attribute_not_exists(pk)",
            }}))
        if commit.sku_put:
            operations.extend(self._catalog_writes(*commit.sku_put))
            self._catalog_cache.pop(commit.sku_put[0].sku, None)
        if commit.new_order:
            operations.append(("order_new", {"Put": {
                "TableName": self.table,
                "Item": it.encode(it.order_to_item(commit.new_order)),
                "ConditionExpression": "attribute_not_exists(pk)",
            }}))
        if commit.order_update:
            before, after = commit.order_update
            operations.append(("order", {"Put": {
                "TableName": self.table,
                "Item": it.encode(it.order_to_item(after)),
                "ConditionExpression": "#v = :v AND #s = :s",
                "ExpressionAttributeNames": {"#v": "version", "#s": "status"},
                "ExpressionAttributeValues": it.encode({":v": before.version, ":s": before.status.value}),
            }}))
        if commit.after_sale:
            sale, expected = commit.after_sale
            put: dict[str, Any] = {"TableName": self.table, "Item": it.encode(it.after_sale_to_item(sale))}
            if expected is None:  # a new request: its id derives from the request, so a replay finds it here
                put.update(ConditionExpression="attribute_not_exists(pk)", ReturnValuesOnConditionCheckFailure="ALL_OLD")
            else:
                put.update(ConditionExpression="#v = :v", ExpressionAttributeNames={"#v": "version"},
                           ExpressionAttributeValues=it.encode({":v": expected}))
            operations.append(("after_sale_new" if expected is None else "after_sale", {"Put": put}))
        for document, expected in commit.documents:
            operations.append(self._document_put(document, expected))
        if commit.cart_hold:
            operations.append(self._cart_hold_put(commit))
        holds = self._holds_update(commit)
        if holds:
            operations.append(("holds", holds))
        unique = [(record.label, it.record_to_item(record)) for record in commit.records]
        if commit.new_order:  # order numbers are unique: a collision is rejected, and the caller draws again
            unique.append(("order_number", it.order_number_to_item(commit.new_order)))
        for label, item in unique:
            operations.append((label, {"Put": {
                "TableName": self.table,
                "Item": it.encode(item),
                "ConditionExpression": "attribute_not_exists(pk)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }}))
        if not operations:
            return
        if len(operations) > 100:
            raise Unprocessable("too many items for one transaction", {"items": len(operations)})
        self._transact(operations, {record.label: record for record in commit.records})

    def _document_put(self, document: StockDocument, expected: int | None) -> tuple[str, dict[str, Any]]:
        put: dict[str, Any] = {"TableName": self.table, "Item": it.encode(it.stock_document_to_item(document))}
        if expected is None:  # a new document: its id may derive from the request, so a replay finds it here
            put.update(ConditionExpression="attribute_not_exists(pk)", ReturnValuesOnConditionCheckFailure="ALL_OLD")
            return "document_new", {"Put": put}
        put.update(ConditionExpression="#v = :v", ExpressionAttributeNames={"#v": "version"},
                   ExpressionAttributeValues=it.encode({":v": expected}))
        return "document", {"Put": put}
    def _cart_hold_put(self, commit: Commit) -> tuple[str, dict[str, Any]]:
        """The hold, conditional on the version read (or on being new); for an order taking its units over, also
        on not having expired by `cart_hold_live_at` (no server clock in DynamoDB: the writer's time)."""
        assert commit.cart_hold is not None
        hold, expected = commit.cart_hold
        put: dict[str, Any] = {"TableName": self.table, "Item": it.encode(it.cart_hold_to_item(hold))}
        if expected is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
            return "cart_hold", {"Put": put}
        values: dict[str, Any] = {":v": expected}
        names = {"#v": "version"}
        condition = "#v = :v"
        if commit.cart_hold_live_at:
            condition += " AND #s = :active AND expires_at > :live_at"
            values.update({":active": "active", ":live_at": commit.cart_hold_live_at})
            names["#s"] = "status"
        put.update(ConditionExpression=condition, ExpressionAttributeNames=names,
                   ExpressionAttributeValues=it.encode(values))
        return "cart_hold", {"Put": put}

    def _shard_update(self, code: str, shard: int, delta: StockLevels, catalog: Sku | None, *, keep: bool = False
                      ) -> dict[str, Any]:
        """Conditional arithmetic: ADD the delta if every level it lowers holds enough (one available unit more
        to `keep` one; and, for an order, if the SKU is still for sale at the price the order charges)."""
        guards = {name: -change + (1 if keep and name == "available" else 0)
                  for name, change in (("available", delta.available), ("reserved", delta.reserved),
                                       ("sold", delta.sold)) if change < 0}
        conditions = ["attribute_exists(pk)"] + [f"#{name} >= :need_{name}" for name in guards]
        values: dict[str, Any] = {":on_hand": delta.on_hand, ":available": delta.available,
                                  ":reserved": delta.reserved, ":sold": delta.sold, ":one": 1,
                                  **{f":need_{name}": need for name, need in guards.items()}}
        if catalog is not None:
            conditions.append("#active = :active AND #price = :price AND #currency = :currency")
            values.update({":active": True, ":price": catalog.price.amount, ":currency": catalog.price.currency})
        return {"Update": {
            "TableName": self.table,
            "Key": it.encode(it.shard_key(code, shard)),
            "UpdateExpression": "ADD #on_hand :on_hand, #available :available, #reserved :reserved, #sold :sold, "
                                "#movements :one",
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeNames": _names("on_hand", "available", "reserved", "sold", "movements",
                                               *(("active", "price", "currency") if catalog else ())),
            "ExpressionAttributeValues": it.encode(values),
        }}

    def _opening_update(self, code: str, item: int, delta: StockLevels, opening: int) -> dict[str, Any]:
        """Conditional arithmetic on an item nobody created beforehand (a virtual SKU's day): the first write
        starts it from its opening levels (on_hand = available = `opening`), later ones find it. The guard is the
        usual one on an existing item; a new one needs the opening levels to cover what the delta lowers (a
        ceiling: at most `opening` units taken on that item, ever, net of releases)."""
        guards = {name: -change for name, change in (("available", delta.available), ("reserved", delta.reserved),
                                                     ("sold", delta.sold)) if change < 0}
        starts = {"on_hand": opening, "available": opening, "reserved": 0, "sold": 0}
        fits_new = all(starts[name] >= need for name, need in guards.items())
        existing = " AND ".join(f"#{name} >= :need_{name}" for name in guards) or "attribute_exists(pk)"
        condition = f"attribute_not_exists(pk) OR ({existing})" if fits_new else f"attribute_exists(pk) AND {existing}"
        values: dict[str, Any] = {":entity": "STOCK", ":sku": code, ":shard": item, ":opening": opening,
                                  ":zero": 0, ":one": 1,
                                  **{f":d_{name}": getattr(delta, name) for name in starts},
                                  **{f":need_{name}": need for name, need in guards.items()}}
        sets = ", ".join(f"#{name} = if_not_exists(#{name}, {':opening' if starts[name] else ':zero'}) + :d_{name}"
                         for name in starts)
        return {"Update": {
            "TableName": self.table,
            "Key": it.encode(it.shard_key(code, item)),
            "UpdateExpression": f"SET #entity = :entity, #sku = :sku, #shard = :shard, "
                                f"#opening = if_not_exists(#opening, :opening), {sets} ADD #movements :one",
            "ConditionExpression": condition,
            "ExpressionAttributeNames": _names("entity", "sku", "shard", "opening", "on_hand", "available", "reserved",
                                               "sold", "movements"),
            "ExpressionAttributeValues": it.encode(values),
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }}

    def _catalog_writes(self, sku: Sku, expected_version: int | None) -> list[tuple[str, dict[str, Any]]]:
        """The catalog entry (conditional on the version read: operators' edits never cross) and, on every
        shard item, the copies an order's write checks (created with zero stock if new)."""
        item = {**it.sku_to_item(sku), "catalog_version": (expected_version or 0) + 1}
        put: dict[str, Any] = {"TableName": self.table, "Item": it.encode(item)}
        if expected_version is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "catalog_version = :v"
            put["ExpressionAttributeValues"] = it.encode({":v": expected_version})
        writes: list[tuple[str, dict[str, Any]]] = [("sku_new" if expected_version is None else "sku", {"Put": put})]
        for shard in sku.stock_items():
            writes.append(("shard", {"Update": {
                "TableName": self.table,
                "Key": it.encode(it.shard_key(sku.sku, shard)),
                "UpdateExpression": "SET #entity = :entity, #sku = :sku, #shard = :shard, #active = :active, "
                                    "#price = :price, #currency = :currency, "
                                    + ", ".join(f"#{n} = if_not_exists(#{n}, :zero)"
                                                for n in ("on_hand", "available", "reserved", "sold")),
                "ExpressionAttributeNames": _names("entity", "sku", "shard", "active", "price", "currency", "on_hand",
                                                   "available", "reserved", "sold"),
                "ExpressionAttributeValues": it.encode({
                    ":entity": "STOCK", ":sku": sku.sku, ":shard": shard, ":active": sku.active,
                    ":price": sku.price.amount, ":currency": sku.price.currency, ":zero": 0}),
            }}))
        return writes

    def catalog_version(self, code: str) -> int | None:
        item = self.get_item(it.sku_key(code))
        return int(item.get("catalog_version", 0)) if item else None

    def _holds_update(self, commit: Commit) -> dict[str, Any] | None:
        """ADD to the customer's unpaid holdings what this write changes: +1 order and its reserved units for a
        new unpaid order (capped by `hold_limits`), minus the same when an order stops being unpaid."""
        change = commit.holdings_change()
        if change is None:
            return None
        customer, orders, units = change
        names = {"#o": "unpaid_orders", **{f"#u{i}": f"u#{s}" for i, s in enumerate(units)}}
        values: dict[str, Any] = {":o": orders, **{f":u{i}": q for i, q in enumerate(units.values())}}
        update: dict[str, Any] = {
            "TableName": self.table, "Key": it.encode(it.holds_key(customer)),
            "UpdateExpression": "ADD " + ", ".join(f"{n} {n.replace('#', ':')}" for n in names),
            "ExpressionAttributeNames": names}
        limits = commit.hold_limits
        if commit.new_order and limits:
            conditions = []
            if limits.max_unpaid_orders:
                conditions.append("(attribute_not_exists(#o) OR #o < :max_o)")
                values[":max_o"] = limits.max_unpaid_orders
            if limits.max_unpaid_units_per_sku:
                for i, quantity in enumerate(units.values()):
                    # A comparison on a missing attribute is false in DynamoDB, so a first order above the cap
                    # fails `#u <= :max_u` (a negative bound) and only one within it may skip the comparison.
                    guard = f"#u{i} <= :max_u{i}"
                    fits_alone = quantity <= limits.max_unpaid_units_per_sku
                    conditions.append(f"(attribute_not_exists(#u{i}) OR {guard})" if fits_alone else guard)
                    values[f":max_u{i}"] = limits.max_unpaid_units_per_sku - quantity
            if conditions:
                update["ConditionExpression"] = " AND ".join(conditions)
                update["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        update["ExpressionAttributeValues"] = it.encode(values)
        return {"Update": update}

    def _transact(self, operations: list[tuple[str, dict[str, Any]]],
                  written: dict[str, KeyedRecord] | None = None) -> None:
        try:
            self.db.transact_write_items(TransactItems=[op for _, op in operations])
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == "TransactionCanceledException":
                self._raise_for_cancellation(operations, error.response.get("CancellationReasons", []), written or {})
            if code in {"ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded",
                        "TransactionInProgressException", "InternalServerError", "ServiceUnavailable"}:
                # Safe to redo: a transaction that did commit fails its conditions on the retry, and
                # a placed order is then found through its idempotency record.
                raise Throttled(code) from error
            raise
        except (ReadTimeoutError, ConnectTimeoutError, EndpointConnectionError) as error:
            raise Throttled(type(error).__name__) from error

    @staticmethod
    def _raise_for_cancellation(operations: list[tuple[str, dict[str, Any]]], reasons: list[dict[str, Any]],
                                written: dict[str, KeyedRecord]) -> None:
        rejected: set[str] = set()
        existing: dict[str, Any] = {}
        short: set[str] = set()
        capped: dict[str, int] = {}
        stale = False
        for (label, _), reason in zip(operations, reasons, strict=False):
            code = reason.get("Code", "None")
            if code == "ConditionalCheckFailed":
                if label.startswith("cap:"):
                    capped[label.removeprefix("cap:")] = int(it.decode(reason.get("Item") or {}).get("available", 0))
                elif label.startswith("stock:"):
                    short.add(label.removeprefix("stock:"))
                elif label in {"sku", "order", "ledger", "shard", "after_sale", "document", "cart_hold"}:
                    stale = True
                else:
                    rejected.add(label)
                    if reason.get("Item"):
                        existing[label] = it.existing_from_item(it.decode(reason["Item"]), written.get(label), label)
            elif code in {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}:
                stale = True
            elif code == "ValidationError":  # retrying cannot help: the request itself is refused
                raise Unprocessable("the request was refused by the database as invalid", {"fields": []})
        if stale and not rejected:  # what we read changed: read again, decide again
            raise StaleWrite("transaction cancelled: " + ",".join(r.get("Code", "?") for r in reasons))
        if rejected:
            raise CommitRejected(rejected, existing)
        if capped:
            raise CapReached(set(capped), capped)
        if short:
            raise StockShort(short)
        raise StaleWrite("transaction cancelled: " + ",".join(r.get("Code", "?") for r in reasons))


def _names(*attributes: str) -> dict[str, str]:
    """Placeholders for attribute names (several are DynamoDB reserved words): "#x" -> "x", "#price" -> price_amount."""
    return {f"#{a}": ("price_amount" if a == "price" else a) for a in attributes}
