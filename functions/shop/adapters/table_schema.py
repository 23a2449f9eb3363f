"""The single DynamoDB table: its keys and indexes, used by CDK and the local run.

Items (pk / sk):
- SKU#{sku} / SKU                        catalog entry (price, policy, stock_shards, stock_state; no levels);
                                         m = index_shard(sku) in 0..INDEX_SHARDS-1 (operators' SKU list):
                                         gsi3 SKUS#{m} / SKU#{sku}
                                         gsi2 SKUSTATE#{stock_state}#{m} / SKU#{sku}
- STOCK#{sku}#{n} / STOCK                one stock item: on_hand, available, reserved, sold, and copies of
                                         active and price that an order's write checks; n = warehouse index
                                         x 64 + shard (domain/warehouses.py: the main warehouse's n < 64)
- LEDGER#{sku}#{n} / {at}#{movement_id}  one stock change of item n (delta, actor, reason, order id)
- WAREHOUSES / REGISTRY                  the shop's warehouses (code -> index, address, regions served,
                                         priority, active) and the registry's version
- CUSTOMER#{sub} / HOLDS                 the customer's unpaid orders and reserved units per SKU (caps)
- ORDER#{order_id} / ORDER               an order; n = index_shard(order_id) in 0..INDEX_SHARDS-1:
                                         gsi1 CUSTOMER#{sub} / {created_at}#{order_id}
                                         gsi2 STATUS#{status}#{n} / {created_at}#{order_id}
                                         gsi3 ORDERS#{n} / {created_at}#{order_id}
                                         gsi5 CUSTOMER#{sub}#{status} / {created_at}#{order_id}
                                         gsi6 (sparse: orders with a phone) PHONE#{digest} / {created_at}#{order_id},
                                           digest = keyed HMAC of the phone's last 9 digits (adapters/phones.py):
                                           no phone number in any key
                                         gsi4 (sparse, for the sweeper) while unpaid:
                                           PENDING_PAYMENT#{n} / {expires_at}#{order_id};
                                         else while a refund is pending:
                                           REFUND_PENDING#{n} / {earliest pending refund's at}#{order_id}
                                         else while DELIVERED with no open after-sales request:
                                           COMPLETION_DUE#{n} / {complete_after}#{order_id}
- ORDERNO#{order_number} / ORDERNO        uniqueness and lookup of order numbers (written with the new order)
- AFTERSALE#{after_sale_id} / AFTERSALE  an after-sales request; n = index_shard(after_sale_id):
                                         gsi2 AFTERSALES#{status}#{n} / {created_at}#{after_sale_id}
                                         gsi3 AFTERSALES#{n} / {created_at}#{after_sale_id}
- DELIVERY#{id} / DELIVERY, TRANSFER#{id} / TRANSFER, COUNT#{id} / COUNT
                                         a stock document (domain/stock_documents.py): status, version, body;
                                         while open, a delivery is listed under its SKU:
                                         gsi3 OPENDELIVERY#{sku} / {expected_on}#{id}
- CARTHOLD#{hold_id} / CARTHOLD         a cart hold (domain/cart_holds.py): lines with their shards, status, expiry,
                                         version; hold_id derives from (sub, cart id); n = index_shard(hold_id):
                                         gsi4 (sparse, while active) CART_HOLD_DUE#{n} / {expires_at}#{hold_id}
- RECON#{provider}#{date} / RESULT       one provider's daily reconciliation result (a re-run replaces it)
- CUSTOMER#{sub} / NOTIFY_PREFS          where and in which language the customer is told (adapters/notifications.py)
- NOTIFY#{event_id}#{channel}#{recipient} / NOTIFY   one message's delivery claim: sending, sent or failed (ttl)
- INBOX#{sub} / {event time}#{event_id}  an in-app message, written with its claim (ttl)
Keyed records (services/records.py), each written once; `ttl` lets the table drop them:
- IDEMPOTENCY#{customer}#{key} / IDEMPOTENCY   IdempotentResponse: the stored response of POST /orders
- RESTOCK#{message_id} / RESTOCK         RestockApplied: a stock return applied
- ADJUSTMENT#{sku}#{request} / ADJUSTMENT   AdjustmentApplied: an operator's adjustment and its movements
- IMPORT#{file_id}#{line} / IMPORT       ImportRowApplied: a row of an operators' CSV import applied
- WEBHOOK#{provider}#{event_id} / WEBHOOK   WebhookReceipt: a settled provider event and its outcome
- RISKIP#{sha256(ip)} / {paid_at}#{order_id}   PaidFromAddress: a paid order per client address (risk rule)

Every key and attribute is built in adapters/items.py; services never see them.
"""

from __future__ import annotations

from typing import Any

PARTITION_KEY = "pk"
SORT_KEY = "sk"
TTL_ATTRIBUTE = "ttl"

# Partition key values that the shop-wide order indexes (gsi2, gsi3, gsi4) are spread over. A
# constant key such as "ORDERS" sends every order's index write to one partition, and AWS caps one
# partition at about 1,000 write units/s (3,000 read units/s): a ceiling of a few hundred orders/s
# for the whole shop. With N shards the index writes spread over N key values, N x that ceiling;
# listings and sweeps query all N and merge (N small queries per page). Each order's shard is a
# stable hash of its order_id (items.index_shard). Changing this number re-keys every order in those
# indexes: existing items must be rewritten (re-put each order) before the new value is deployed.
INDEX_SHARDS = 16

# name -> (partition key attribute, sort key attribute, projection); all keys are strings.
GLOBAL_SECONDARY_INDEXES: dict[str, tuple[str, str, str]] = {
    "gsi1": ("gsi1pk", "gsi1sk", "ALL"),  # CUSTOMER#{sub} / {created_at}#{order_id} (one customer: not hot)
    "gsi2": ("gsi2pk", "gsi2sk", "ALL"),  # STATUS#{status}#{n} / {created_at}#{order_id}
    "gsi3": ("gsi3pk", "gsi3sk", "ALL"),  # ORDERS#{n} / {created_at}#{order_id}
    # Sparse: only unpaid orders and orders with a pending refund carry these keys, so the sweeper
    # reads just the overdue ones.
    "gsi4": ("gsi4pk", "gsi4sk", "KEYS_ONLY"),  # PENDING_PAYMENT#{n} / {expires_at}#{order_id}
                                               # REFUND_PENDING#{n} / {refund at}#{order_id}
                                               # CART_HOLD_DUE#{n} / {expires_at}#{hold_id} (active holds)
    # Finding orders (admin and customer filters), each combination answered by one index exactly:
    "gsi5": ("gsi5pk", "gsi5sk", "ALL"),  # CUSTOMER#{sub}#{status} / {created_at}#{order_id}
    "gsi6": ("gsi6pk", "gsi6sk", "ALL"),  # PHONE#{keyed digest} / {created_at}#{order_id} (sparse)
}
# gsi2 and gsi3 also hold the catalog (SKUS#{m}, SKUSTATE#{state}#{m}; sort key SKU#{sku}): the operators'
# SKU list, by stock state for the low-stock filter. Other partition prefixes, so order listings never see them.
# Adding indexes to a deployed table: CloudFormation creates one GSI per stack update (deploy gsi5, then
# gsi6), and orders written before carry no gsi5/gsi6 keys until re-put (docs/finding-orders.md).


def create_table_kwargs(table_name: str) -> dict[str, Any]:
    """Arguments for DynamoDB CreateTable, matching what CDK deploys."""
    attrs = {PARTITION_KEY, SORT_KEY}
    for pk, sk, _ in GLOBAL_SECONDARY_INDEXES.values():
        attrs.update((pk, sk))
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a in sorted(attrs)],
        "KeySchema": [
            {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": name,
                "KeySchema": [
                    {"AttributeName": pk, "KeyType": "HASH"},
                    {"AttributeName": sk, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": projection},
            }
            for name, (pk, sk, projection) in GLOBAL_SECONDARY_INDEXES.items()
        ],
    }
