"""DynamoDB persistence: every state change is one TransactWriteItems.

Stock movements are conditional on the SKU's stock_seq (optimistic concurrency):
the ledger entry carries exact resulting levels and a gap-free sequence, and a
stale read can never overwrite a newer level. Callers retry on StaleWrite.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

from shop.adapters import items as it
from shop.adapters.aws import client
from shop.domain.errors import Unprocessable
from shop.domain.orders import Order
from shop.domain.skus import Sku
from shop.domain.stock import StockMovement
from shop.services.ports import Commit, CommitRejected, StaleWrite, Throttled

MAX_PAGE = 100


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


class DynamoShopStore:
    def __init__(self, table_name: str):
        self.table = table_name
        self.db = client("dynamodb")

    # ---- reads -------------------------------------------------------------

    def get_sku(self, code: str) -> Sku | None:
        got = self.db.get_item(TableName=self.table, Key=it.encode(it.sku_key(code)), ConsistentRead=True)
        return it.sku_from_item(it.decode(got["Item"])) if "Item" in got else None

    def get_skus(self, codes: list[str]) -> dict[str, Sku]:
        return self.get_skus_and_item(codes, None)[0]

    def get_skus_and_item(self, codes: list[str], key: dict[str, str] | None
                          ) -> tuple[dict[str, Sku], dict[str, Any] | None]:
        """SKUs plus one other item in one BatchGetItem (plus re-requests of unprocessed keys)."""
        found: dict[str, Sku] = {}
        other: dict[str, Any] | None = None
        keys = [it.encode(it.sku_key(c)) for c in dict.fromkeys(codes)]
        if key:
            keys.append(it.encode(key))
        while keys:
            batch, keys = keys[:100], keys[100:]
            request = {self.table: {"Keys": batch, "ConsistentRead": True}}
            while request:
                got = self.db.batch_get_item(RequestItems=request)
                for raw in got["Responses"].get(self.table, []):
                    item = it.decode(raw)
                    if item.get("entity") == "SKU":
                        found[item["sku"]] = it.sku_from_item(item)
                    else:
                        other = item
                request = got.get("UnprocessedKeys") or {}
        return found, other

    def get_order(self, order_id: str) -> Order | None:
        got = self.db.get_item(TableName=self.table, Key=it.encode(it.order_key(order_id)), ConsistentRead=True)
        return it.order_from_item(it.decode(got["Item"])) if "Item" in got else None

    def get_item(self, key: dict[str, str]) -> dict[str, Any] | None:
        got = self.db.get_item(TableName=self.table, Key=it.encode(key), ConsistentRead=True)
        return it.decode(got["Item"]) if "Item" in got else None

    def count_items(self, pk: str, sk_from: str) -> int:
        """How many items under `pk` sort at or after `sk_from` (a key-only count query)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table, "Select": "COUNT", "ConsistentRead": True,
            "KeyConditionExpression": "pk = :pk AND sk >= :from",
            "ExpressionAttributeValues": it.encode({":pk": pk, ":from": sk_from}),
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

    def _query_orders(self, index: str, pk_attr: str, pk_value: str, limit: int, cursor: str | None,
                      sk_range: tuple[str | None, str | None] = (None, None)) -> tuple[list[Order], str | None]:
        sk_attr = pk_attr.replace("pk", "sk")
        condition = "#pk = :pk"
        names = {"#pk": pk_attr}
        values: dict[str, Any] = {":pk": pk_value}
        low, high = sk_range
        if low or high:
            names["#sk"] = sk_attr
            values[":lo"] = low or "0000"
            values[":hi"] = (high or "9999") + "\uffff"
            condition += " AND #sk BETWEEN :lo AND :hi"
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": index,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": it.encode(values),
            "ScanIndexForward": False,
            "Limit": min(limit, MAX_PAGE),
        }
        start = decode_cursor(cursor, {"pk", "sk", pk_attr, sk_attr}, {pk_attr: pk_value})
        if start:
            kwargs["ExclusiveStartKey"] = start
        got = self.db.query(**kwargs)
        orders = [it.order_from_item(it.decode(raw)) for raw in got.get("Items", [])]
        return orders, encode_cursor(got.get("LastEvaluatedKey"))

    def customer_orders(self, customer_id: str, limit: int, cursor: str | None) -> tuple[list[Order], str | None]:
        return self._query_orders("gsi1", "gsi1pk", f"CUSTOMER#{customer_id}", limit, cursor)

    def orders(self, *, status: str | None, customer_id: str | None, created_from: str | None,
               created_to: str | None, limit: int, cursor: str | None) -> tuple[list[Order], str | None]:
        """Admin listing, newest first, on the narrowest index the filters allow."""
        if customer_id:
            index, attr, value = "gsi1", "gsi1pk", f"CUSTOMER#{customer_id}"
        elif status:
            index, attr, value = "gsi2", "gsi2pk", f"STATUS#{status}"
        else:
            index, attr, value = "gsi3", "gsi3pk", "ORDERS"
        found, next_cursor = self._query_orders(index, attr, value, limit, cursor, (created_from, created_to))
        if status and customer_id:
            found = [o for o in found if o.status.value == status]
        return found, next_cursor

    def overdue_pending_order_ids(self, now_iso: str, limit: int = 100) -> list[str]:
        """Ids of PENDING_PAYMENT orders whose window ended by `now_iso`, oldest first (for the sweeper).

        The sparse gsi4 holds only unpaid orders, keyed by expiry: the query reads the overdue ones and
        nothing else, however many orders are waiting for payment.
        """
        found: list[str] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "gsi4",
            # "{expires_at}#{order_id}" < "{now}$" holds exactly when expires_at <= now ('$' sorts after '#').
            "KeyConditionExpression": "gsi4pk = :pk AND gsi4sk < :upper",
            "ExpressionAttributeValues": it.encode({":pk": "PENDING_PAYMENT", ":upper": f"{now_iso}$"}),
            "Limit": min(limit, MAX_PAGE),
        }
        while len(found) < limit:
            got = self.db.query(**kwargs)
            found.extend(it.decode(raw)["pk"].removeprefix("ORDER#") for raw in got.get("Items", []))
            if "LastEvaluatedKey" not in got:
                break
            kwargs["ExclusiveStartKey"] = got["LastEvaluatedKey"]
        return found[:limit]

    def ledger(self, code: str, limit: int, cursor: str | None) -> tuple[list[StockMovement], str | None]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :ledger)",
            "ExpressionAttributeValues": it.encode({":pk": f"SKU#{code}", ":ledger": "LEDGER#"}),
            "ScanIndexForward": True,
            "Limit": min(limit, MAX_PAGE),
            "ConsistentRead": True,
        }
        start = decode_cursor(cursor, {"pk", "sk"}, {"pk": f"SKU#{code}"})
        if start:
            kwargs["ExclusiveStartKey"] = start
        got = self.db.query(**kwargs)
        entries = [it.movement_from_item(it.decode(raw)) for raw in got.get("Items", [])]
        return entries, encode_cursor(got.get("LastEvaluatedKey"))

    # ---- the one write path ----------------------------------------------

    def commit(self, commit: Commit) -> None:
        operations: list[tuple[str, dict[str, Any]]] = []
        written_whole = commit.sku_put[0].sku if commit.sku_put else None
        for movement in commit.movements:
            if movement.sku != written_whole:
                operations.append(("sku", self._movement_update(movement)))
            operations.append(("ledger", {"Put": {
                "TableName": self.table,
                "Item": it.encode(it.movement_to_item(movement)),
                "ConditionExpression": "attribute_not_exists(pk)",
            }}))
        if commit.sku_put:
            sku, expected = commit.sku_put
            put: dict[str, Any] = {"TableName": self.table, "Item": it.encode(it.sku_to_item(sku))}
            if expected is None:
                put["ConditionExpression"] = "attribute_not_exists(pk)"
                label = "sku_new"
            else:
                put["ConditionExpression"] = "stock_seq = :seq"
                put["ExpressionAttributeValues"] = it.encode({":seq": expected})
                label = "sku"
            operations.append((label, {"Put": put}))
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
        for label, item in commit.unique_puts:
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
        self._transact(operations)

    def _movement_update(self, movement: StockMovement) -> dict[str, Any]:
        levels = movement.levels
        # Units leaving `available` need that many there now; the seq check makes the read current.
        needed = max(0, -movement.delta.available)
        return {"Update": {
            "TableName": self.table,
            "Key": it.encode(it.sku_key(movement.sku)),
            "UpdateExpression": "SET on_hand = :on_hand, available = :available, reserved = :reserved, "
                                "sold = :sold, stock_seq = :seq, updated_at = :at",
            "ConditionExpression": "stock_seq = :expected AND available >= :needed",
            "ExpressionAttributeValues": it.encode({
                ":on_hand": levels.on_hand,
                ":available": levels.available,
                ":reserved": levels.reserved,
                ":sold": levels.sold,
                ":seq": movement.seq,
                ":at": movement.at,
                ":expected": movement.expected_seq,
                ":needed": needed,
            }),
        }}

    def _transact(self, operations: list[tuple[str, dict[str, Any]]]) -> None:
        try:
            self.db.transact_write_items(TransactItems=[op for _, op in operations])
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == "TransactionCanceledException":
                self._raise_for_cancellation(operations, error.response.get("CancellationReasons", []))
            if code in {"ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded",
                        "TransactionInProgressException", "InternalServerError", "ServiceUnavailable"}:
                # Safe to redo: a transaction that did commit fails its conditions on the retry, and
                # a placed order is then found through its idempotency record.
                raise Throttled(code) from error
            raise
        except (ReadTimeoutError, ConnectTimeoutError, EndpointConnectionError) as error:
            raise Throttled(type(error).__name__) from error

    @staticmethod
    def _raise_for_cancellation(operations: list[tuple[str, dict[str, Any]]], reasons: list[dict[str, Any]]) -> None:
        rejected: set[str] = set()
        existing: dict[str, dict[str, Any]] = {}
        retryable = False
        for (label, _), reason in zip(operations, reasons):
            code = reason.get("Code", "None")
            if code == "ConditionalCheckFailed":
                if label in {"sku", "order", "ledger"}:
                    retryable = True
                else:
                    rejected.add(label)
                    if reason.get("Item"):
                        existing[label] = it.decode(reason["Item"])
            elif code in {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}:
                retryable = True
        if rejected:
            raise CommitRejected(rejected, existing)
        if retryable or not reasons:
            raise StaleWrite("transaction cancelled: " + ",".join(r.get("Code", "?") for r in reasons))
        raise StaleWrite("transaction cancelled")
