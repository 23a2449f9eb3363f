"""IAM grants with exactly the calls each function's manifest entry declares (shop.manifest FunctionSpec.calls),
not CDK's grant_* sets, which give more (Scan, DeleteItem, BatchWriteItem, DescribeTable, stream reads;
GetQueueUrl and GetQueueAttributes to senders).

A call is an API operation on a named resource of the stack (`dynamodb:TransactWriteItems on table`); IAM
authorizes some operations under other actions or on more ARNs:
- TransactWriteItems with Put and Update actions (the only kinds the code sends; tests/deploy reads them from the
  source) is authorized as PutItem and UpdateItem; there is no TransactWriteItems action
  (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html);
- Query may also read the table's indexes.
A new resource (a bucket, a topic...) is a `Target` the stack passes in; a call on a resource the stack does not
have stops the synthesis.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aws_cdk import aws_dynamodb as ddb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs

from shop.manifest import Call

# API operation -> the IAM actions that authorize it, where they differ.
IAM_ACTIONS: dict[str, tuple[str, ...]] = {
    "dynamodb:TransactWriteItems": ("dynamodb:PutItem", "dynamodb:UpdateItem"),
}
# The public catalog read: a SKU's catalog item and its stock shards, in one BatchGetItem, nothing else.
CATALOG_KEY_PREFIXES = ("SKU#", "STOCK#")  # partition keys of shop.adapters.items.sku_key and shard_key


@dataclass(frozen=True)
class Target:
    """A resource of the stack that functions call: its ARNs, the extra ARNs some operations also need (a table's
    indexes for Query), and conditions every statement on it carries."""

    arns: tuple[str, ...]
    extra_arns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # operation -> more ARNs
    conditions: Mapping[str, Any] | None = None
    sid: str | None = None  # names the statement (for a "*" resource that reviewers must recognise)


def iam_actions(action: str) -> tuple[str, ...]:
    return IAM_ACTIONS.get(action, (action,))


def table_targets(table: ddb.ITableV2) -> dict[str, Target]:
    """The table (with its indexes for Query) and its catalog items only: a `dynamodb:LeadingKeys` condition keeps
    orders, addresses and the ledger out of reach of the public catalog function
    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/specifying-conditions.html)."""
    return {
        "table": Target((table.table_arn,), {"dynamodb:Query": (f"{table.table_arn}/index/*",)}),
        "catalog items": Target((table.table_arn,), conditions={"ForAllValues:StringLike": {
            "dynamodb:LeadingKeys": [f"{p}*" for p in CATALOG_KEY_PREFIXES]}}),
    }


def statements(calls: Iterable[Call], targets: Mapping[str, Target]) -> list[iam.PolicyStatement]:
    """One statement per resource and set of ARNs, with the IAM actions of the calls made on it."""
    grouped: dict[tuple[str, tuple[str, ...]], set[str]] = {}
    for call in calls:
        target = targets.get(call.resource)
        if target is None:
            raise ValueError(f"a function calls {call}, but the stack has no resource {call.resource!r} "
                             f"(known: {sorted(targets)}): add it to the targets in infra/stack.py")
        arns = target.arns + tuple(target.extra_arns.get(call.action, ()))
        grouped.setdefault((call.resource, arns), set()).update(iam_actions(call.action))
    out = []
    for (resource, arns), actions in grouped.items():
        if not arns:  # e.g. no provider enabled: no secret to read
            continue
        conditions = targets[resource].conditions
        out.append(iam.PolicyStatement(actions=sorted(actions), resources=list(arns), sid=targets[resource].sid,
                                       conditions=dict(conditions) if conditions else None))
    return out


def grant_calls(grantee: iam.IGrantable, calls: Iterable[Call], targets: Mapping[str, Target]) -> None:
    for statement in statements(calls, targets):
        grantee.grant_principal.add_to_principal_policy(statement)


def send_messages(queue: sqs.IQueue, grantee: iam.IGrantable) -> None:
    """sqs:SendMessage only (the state machine's sqs:sendMessage integration calls nothing else)."""
    grantee.grant_principal.add_to_principal_policy(iam.PolicyStatement(
        actions=["sqs:SendMessage"], resources=[queue.queue_arn]))
