"""cdk-nag findings we accept, each with the reason a reviewer would want."""

from __future__ import annotations

from aws_cdk import Stack
from cdk_nag import NagPackSuppression, NagSuppressions

from shop.manifest import ROUTES


def acknowledge_findings(stack: Stack) -> None:
    NagSuppressions.add_stack_suppressions(stack, [
        NagPackSuppression(id="AwsSolutions-IAM4", reason=(
            "Only AWS-managed service-role policies CDK attaches: AWSLambdaBasicExecutionRole (writing the "
            "function's own logs), AmazonAPIGatewayPushToCloudWatchLogs for the API Gateway account role and, with "
            "canary_deploy, AWSCodeDeployRoleForLambdaLimited for the CodeDeploy service role.")),
        NagPackSuppression(id="AwsSolutions-IAM5", applies_to=["Resource::*"], reason=(
            "X-Ray PutTraceSegments/PutTelemetryRecords, the Step Functions log-delivery actions and the notifier's "
            "sns:Publish of SMS to phone numbers (no topic, so no resource ARN) only accept Resource '*'; "
            "tests/deploy asserts that no other action has a '*' resource.")),
        NagPackSuppression(id="AwsSolutions-IAM5", applies_to=[{"regex": "/^Resource::<Table[A-Z0-9]*\\.Arn>\\/index\\/\\*$/"}], reason=(
            "Queries on the table's own global secondary indexes (customer, status, all orders); scoped to this "
            "table's ARN.")),
        NagPackSuppression(id="AwsSolutions-IAM5", applies_to=[{"regex": "/^Resource::<Evidence[A-Za-z0-9]*\\.Arn>\\/after-sales\\/\\*$/"}], reason=(
            "After-sales evidence photos: each request has its own keys under after-sales/ (a new key per photo), "
            "so presigning needs s3:PutObject (orders_api) or s3:GetObject (admin_api) on that prefix of this one "
            "bucket; the POST policy then pins each upload to its exact key, type and size.")),
        NagPackSuppression(id="AwsSolutions-SMG4", reason=(
            "Payment provider secrets hold keys the providers issue (API keys, webhook signing secrets, merchant "
            "certificates): they are rotated at the provider and filled in by an operator, not by a rotation Lambda.")),
        NagPackSuppression(id="AwsSolutions-COG2", reason=(
            "MFA is optional (TOTP) for shoppers: forcing it at checkout loses orders. Operators in the admin "
            "group should be required to enrol; Cognito cannot require MFA per group.")),
        NagPackSuppression(id="AwsSolutions-L1", reason=(
            "The functions run on the Python the tests run on (infra/runtime.py, `make test`), a runtime Lambda "
            "supports, rather than the newest one nothing here is tested on; both move together.")),
        NagPackSuppression(id="AwsSolutions-APIG2", reason=(
            "Request validation happens in each handler (pydantic models, RFC 9457 problem answers); a gateway "
            "validator without models validates nothing, and with models would answer in another format.")),
    ])
    if stack.node.try_find_child("Edge") is None:  # infra/edge.py: on by default for prod
        NagSuppressions.add_stack_suppressions(stack, [NagPackSuppression(id="AwsSolutions-APIG3", reason=(
            "This stage runs without the WAF web ACL (context waf=false, the dev default: it costs per web ACL, rule "
            "and request); stage and per-route throttles and authorizers are in place. prod has it on."))])
    unauthenticated = {"webhook": "Payment providers cannot present Cognito tokens: webhooks authenticate by the "
                                  "provider's signature over the raw body, verified in the handler.",
                       "public": "Public by design: catalog availability and the OpenAPI document carry no "
                                 "personal data and are read by anonymous storefront visitors."}
    for route in ROUTES:
        if route.auth in unauthenticated:
            path = f"/{stack.stack_name}/Api/RestApi/Default{route.path}/{route.method}/Resource"
            NagSuppressions.add_resource_suppressions_by_path(stack, path, [
                NagPackSuppression(id="AwsSolutions-APIG4", reason=unauthenticated[route.auth]),
                NagPackSuppression(id="AwsSolutions-COG4", reason=unauthenticated[route.auth]),
            ])
