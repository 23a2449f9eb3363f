"""The deployed system's security and wiring, checked on the synthesized template."""

from __future__ import annotations

import json
import subprocess
import sys

from aws_cdk.assertions import Annotations, Match

from shop.manifest import FUNCTIONS, QUEUES, ROUTES
from shop.workflows import PAYMENT_WINDOW_ASL
from tests.deploy.conftest import of_type


def methods(resources):
    return [m["Properties"] for m in of_type(resources, "AWS::ApiGateway::Method").values()
            if m["Properties"]["HttpMethod"] != "OPTIONS"]


def test_every_manifest_route_is_deployed_with_the_right_authorizer(resources):
    deployed = methods(resources)
    assert len(deployed) == len(ROUTES)
    by_auth = {r.auth for r in ROUTES}
    assert by_auth == {"public", "customer", "admin", "webhook"}
    cognito = [m for m in deployed if m.get("AuthorizationType") == "COGNITO_USER_POOLS"]
    open_methods = [m for m in deployed if m.get("AuthorizationType", "NONE") == "NONE"]
    assert len(cognito) == sum(r.auth in ("customer", "admin") for r in ROUTES)
    assert len(open_methods) == sum(r.auth in ("public", "webhook") for r in ROUTES)
    assert all(m.get("RequestValidatorId") for m in deployed)


def test_stage_logs_traces_and_throttles(template):
    template.has_resource_properties("AWS::ApiGateway::Stage", {
        "StageName": "v1",
        "TracingEnabled": True,
        "AccessLogSetting": Match.object_like({"DestinationArn": Match.any_value()}),
        "MethodSettings": Match.array_with([Match.object_like({
            "ThrottlingRateLimit": Match.any_value(), "ThrottlingBurstLimit": Match.any_value(),
            "DataTraceEnabled": False})]),
    })
    template.resource_count_is("AWS::ApiGateway::UsagePlan", 1)
    template.has_resource_properties("AWS::ApiGateway::RequestValidator",
                                     {"ValidateRequestBody": True, "ValidateRequestParameters": True})


def test_table_is_encrypted_recoverable_and_expires_records(template):
    template.has_resource_properties("AWS::DynamoDB::GlobalTable", {
        "SSESpecification": {"SSEEnabled": True},
        "TimeToLiveSpecification": {"AttributeName": "ttl", "Enabled": True},
        "Replicas": Match.array_with([Match.object_like({
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True}})]),
        "GlobalSecondaryIndexes": Match.array_with([Match.object_like({"IndexName": "gsi1"})]),
    })


def test_queues_are_encrypted_ssl_only_with_dead_letter_queues(resources):
    queues = of_type(resources, "AWS::SQS::Queue")
    assert len(queues) == 2 * len(QUEUES)
    assert all(q["Properties"].get("SqsManagedSseEnabled") for q in queues.values())
    with_redrive = [q for q in queues.values() if "RedrivePolicy" in q["Properties"]]
    assert len(with_redrive) == len(QUEUES)
    policies = of_type(resources, "AWS::SQS::QueuePolicy").values()
    denies = [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]
              if s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}]
    assert len(denies) == len(queues)


def test_consumers_report_partial_batch_failures(resources):
    mappings = of_type(resources, "AWS::Lambda::EventSourceMapping").values()
    assert len(mappings) == len(QUEUES)
    assert all(m["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"] for m in mappings)


def test_functions_arm64_newest_python_traced_json_logs_one_asset(resources):
    functions = of_type(resources, "AWS::Lambda::Function")
    ours = {k: f for k, f in functions.items() if f["Properties"].get("Handler", "").endswith(".lambda_handler")}
    assert len(ours) == len(FUNCTIONS)
    keys = set()
    for fn in ours.values():
        props = fn["Properties"]
        assert props["Architectures"] == ["arm64"]
        assert props["Runtime"] == "python3.14"
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["LoggingConfig"]["LogFormat"] == "JSON"
        assert "Powertools" in json.dumps(props["Layers"]) and len(props["Layers"]) == 2  # + our dependency layer
        keys.add(json.dumps(props["Code"]["S3Key"]))
    assert len(keys) == 1, "all handlers share one code asset"
    groups = of_type(resources, "AWS::Logs::LogGroup").values()
    assert all(g["Properties"].get("RetentionInDays") for g in groups)


def test_iam_is_least_privilege(resources):
    statements = [s for p in of_type(resources, "AWS::IAM::Policy").values()
                  for s in p["Properties"]["PolicyDocument"]["Statement"]]
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert "*" not in actions and not any(a.endswith(":*") for a in actions), statement
        if statement.get("Resource") == "*":
            assert all(a.startswith(("xray:", "logs:")) for a in actions), statement


def test_state_machine_logs_all_and_traces(template):
    template.has_resource_properties("AWS::StepFunctions::StateMachine", {
        "StateMachineType": "STANDARD",
        "TracingConfiguration": {"Enabled": True},
        "LoggingConfiguration": Match.object_like({"Level": "ALL"}),
    })


def test_deployed_definition_is_byte_for_byte_the_local_one(synthesized, resources):
    machine = next(iter(of_type(resources, "AWS::StepFunctions::StateMachine").values()))["Properties"]
    # CDK uploads the ASL file itself as an asset; Step Functions fills in the substitutions.
    asset_hash = machine["DefinitionS3Location"]["Key"].removesuffix(".json")
    staged = synthesized["path"].parent / f"asset.{asset_hash}.json"
    assert staged.read_bytes() == PAYMENT_WINDOW_ASL.read_bytes()
    queue_ref = machine["DefinitionSubstitutions"]["StockReleaseQueueUrl"]["Ref"]
    assert resources[queue_ref]["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in resources[queue_ref]["Properties"]


def test_alarms_and_dashboard(resources):
    alarms = [a["Properties"] for a in of_type(resources, "AWS::CloudWatch::Alarm").values()]
    names = {a["MetricName"] for a in alarms}
    assert {"5XXError", "Errors", "Throttles", "ApproximateNumberOfMessagesVisible", "ExecutionsFailed",
            "ApproximateAgeOfOldestMessage"} <= names
    assert len(of_type(resources, "AWS::CloudWatch::Dashboard")) == 1


def test_cdk_nag_has_no_unacknowledged_findings(synthesized):
    annotations = Annotations.from_stack(synthesized["stack"])
    findings = (annotations.find_error("*", Match.string_like_regexp("AwsSolutions-.*"))
                + annotations.find_warning("*", Match.string_like_regexp("AwsSolutions-.*")))
    assert [f"{f.id}: {f.entry.data[:120]}" for f in findings] == []


def test_cfn_lint_finds_no_errors(synthesized):
    result = subprocess.run([sys.executable, "-m", "cfnlint", "--format", "parseable", str(synthesized["path"])],
                            capture_output=True, text=True)
    errors = [line for line in result.stdout.splitlines() if ":E" in line.split(" ")[0] or ":E" in line]
    print(result.stdout)
    assert errors == [], "\n".join(errors)
