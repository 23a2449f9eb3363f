"""IAM grants with exactly the actions the functions' code calls (CDK's grant_* helpers give more: Scan,
DeleteItem, BatchWriteItem, DescribeTable, stream reads; GetQueueUrl and GetQueueAttributes to senders).

DynamoDB calls in the code (functions/shop/adapters/, checked by tests/deploy against the source): GetItem,
BatchGetItem, Query (table and indexes), UpdateItem, PutItem, and TransactWriteItems with Put and Update actions,
which IAM authorizes as PutItem and UpdateItem (there is no TransactWriteItems action:
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html).
"""

from __future__ import annotations

from aws_cdk import aws_dynamodb as ddb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs

TABLE_READ_ACTIONS = ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query")
TABLE_WRITE_ACTIONS = ("dynamodb:PutItem", "dynamodb:UpdateItem")
# The public catalog read: a SKU's catalog item and its stock shards, in one BatchGetItem, nothing else.
CATALOG_READ_ACTIONS = ("dynamodb:BatchGetItem",)
CATALOG_KEY_PREFIXES = ("SKU#", "STOCK#")  # partition keys of shop.adapters.items.sku_key and shard_key


def table_read_write(table: ddb.ITableV2, grantee: iam.IGrantable) -> None:
    grantee.grant_principal.add_to_principal_policy(iam.PolicyStatement(
        actions=list(TABLE_READ_ACTIONS), resources=[table.table_arn, f"{table.table_arn}/index/*"]))
    grantee.grant_principal.add_to_principal_policy(iam.PolicyStatement(
        actions=list(TABLE_WRITE_ACTIONS), resources=[table.table_arn]))


def catalog_read(table: ddb.ITableV2, grantee: iam.IGrantable) -> None:
    """Read-only and only the catalog's items: a `dynamodb:LeadingKeys` condition keeps orders, addresses and
    the ledger out of reach of the public function
    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/specifying-conditions.html)."""
    grantee.grant_principal.add_to_principal_policy(iam.PolicyStatement(
        actions=list(CATALOG_READ_ACTIONS), resources=[table.table_arn],
        conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{p}*" for p in CATALOG_KEY_PREFIXES]}}))


def send_messages(queue: sqs.IQueue, grantee: iam.IGrantable) -> None:
    """sqs:SendMessage only (the code and the state machine's sqs:sendMessage integration call nothing else)."""
    grantee.grant_principal.add_to_principal_policy(iam.PolicyStatement(
        actions=["sqs:SendMessage"], resources=[queue.queue_arn]))
