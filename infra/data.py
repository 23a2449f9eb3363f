"""The single DynamoDB table, from the same schema the local run creates."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as ddb
from constructs import Construct

from shop.adapters import table_schema


def shop_table(scope: Construct, deletion_protection: bool) -> ddb.TableV2:
    kwargs = table_schema.create_table_kwargs("unused")
    string = ddb.AttributeType.STRING
    return ddb.TableV2(
        scope, "Table",
        partition_key=ddb.Attribute(name=table_schema.PARTITION_KEY, type=string),
        sort_key=ddb.Attribute(name=table_schema.SORT_KEY, type=string),
        billing=ddb.Billing.on_demand(),
        encryption=ddb.TableEncryptionV2.aws_managed_key(),
        point_in_time_recovery_specification=ddb.PointInTimeRecoverySpecification(point_in_time_recovery_enabled=True),
        time_to_live_attribute=table_schema.TTL_ATTRIBUTE,
        deletion_protection=deletion_protection,
        # Kept when the stack is deleted or the table replaced, but deleted when the create that made it rolls back,
        # so a failed first deploy leaves nothing behind (DeletionPolicy RetainExceptOnCreate:
        # https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-attribute-deletionpolicy.html).
        removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
        global_secondary_indexes=[
            ddb.GlobalSecondaryIndexPropsV2(
                index_name=index["IndexName"],
                partition_key=ddb.Attribute(name=index["KeySchema"][0]["AttributeName"], type=string),
                sort_key=ddb.Attribute(name=index["KeySchema"][1]["AttributeName"], type=string),
                projection_type=ddb.ProjectionType[index["Projection"]["ProjectionType"]],
            )
            for index in kwargs["GlobalSecondaryIndexes"]
        ],
    )
