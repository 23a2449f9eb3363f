"""The deployed system's security and wiring, checked on the synthesized template."""

from __future__ import annotations

import json
import pytest
from aws_cdk.assertions import Annotations, Match

from infra.grants import iam_actions
from infra.stack import DEFAULT_CONTEXT, PAYMENT_CALLERS, POWERTOOLS_ENVIRONMENT
from shop.manifest import FUNCTIONS, QUEUES, RESOURCE_SETTINGS, ROUTES, SWEEP_INTERVAL_SECONDS
from shop.settings import Settings
from shop.workflows import PAYMENT_WINDOW_ASL
from tests.deploy.conftest import CDK_CONTEXT, SECRET_PREFIX, of_type

TABLE_RW = {"table:read", "table:write"}  # classify()'s labels of a read-write function's table statements
SQS_CONSUME = {"sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueUrl", "sqs:DeleteMessage",
               "sqs:GetQueueAttributes"}  # what CDK grants an SQS event source's function
XRAY_WRITE = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
XRAY_SAMPLING = {"xray:GetSamplingRules", "xray:GetSamplingTargets"}
# Step Functions' log delivery to CloudWatch Logs: these actions do not support resource-level permissions.
SFN_LOG_DELIVERY = {"logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
                    "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy",
                    "logs:DescribeResourcePolicies", "logs:DescribeLogGroups"}


def _dynamodb_actions_in_code() -> set[str]:
    """The DynamoDB IAM actions the functions' code needs, read from its boto3 calls: each client method, and for
    TransactWriteItems the kinds of action it sends (IAM checks Put as PutItem, Update as UpdateItem, ...)."""
    import re
    from pathlib import Path

    source = "\n".join(p.read_text() for p in (Path(__file__).resolve().parents[2] / "functions").rglob("*.py"))
    methods = set(re.findall(r"\.db\.(\w+)\(", source)) | set(re.findall(r'client\("dynamodb"\)\.(\w+)\(', source))
    plain = {"get_item": "GetItem", "batch_get_item": "BatchGetItem", "query": "Query", "scan": "Scan",
             "put_item": "PutItem", "update_item": "UpdateItem", "delete_item": "DeleteItem",
             "batch_write_item": "BatchWriteItem", "transact_get_items": "GetItem"}
    unknown = methods - set(plain) - {"transact_write_items", "exceptions", "get_paginator"}
    assert not unknown, f"DynamoDB calls this test cannot map to IAM actions: {unknown}"
    actions = {plain[m] for m in methods if m in plain}
    if "transact_write_items" in methods:
        kinds = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}
        actions |= {kinds[k] for k in re.findall(r'\{"(Put|Update|Delete|ConditionCheck)": ', source)}
    return {f"dynamodb:{a}" for a in actions}


DYNAMODB_ACTIONS_IN_CODE = _dynamodb_actions_in_code()


def as_list(value):
    return value if isinstance(value, list) else [value]


def functions_by_name(resources):
    out = {}
    for logical_id, fn in of_type(resources, "AWS::Lambda::Function").items():
        handler = fn["Properties"].get("Handler", "")
        if handler.endswith(".handler.lambda_handler"):
            out[handler.split(".")[0]] = (logical_id, fn["Properties"])
    return out


def stack_refs(resources):
    """Logical ids of the table, bus, state machine and queues, read from the functions' environments."""
    env = {k: v for _, props in functions_by_name(resources).values() for k, v in props["Environment"]["Variables"].items()}
    refs = {"table": env["TABLE_NAME"]["Ref"], "bus": env["EVENT_BUS_NAME"]["Ref"],
            "state_machine": env["PAYMENT_WINDOW_STATE_MACHINE_ARN"]["Ref"]}
    # A queue no function sends to (EventBridge fills it) is found through its consumer's event source mapping.
    functions = functions_by_name(resources)
    mappings = {json.dumps(m["Properties"]["FunctionName"]): m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]
                for m in of_type(resources, "AWS::Lambda::EventSourceMapping").values()}
    refs.update({f"queue:{spec.name}": env[spec.env_var]["Ref"] if spec.env_var in env else
                 mappings[json.dumps({"Ref": functions[spec.consumer][0]})] for spec in QUEUES})
    secrets = list(of_type(resources, "AWS::SecretsManager::Secret"))
    refs["secrets"] = [ref for ref in secrets if ref.startswith("PaymentSecrets")]
    (refs["phone_key"],) = [ref for ref in secrets if ref.startswith("PhoneIndexKey")]
    refs["carrier_secrets"] = [k for k in of_type(resources, "AWS::SecretsManager::Secret") if k.startswith("Fulfilment")]
    refs["courier_machine"] = env["COURIER_POLL_STATE_MACHINE_ARN"]["Ref"]
    refs["labels"] = env["LABEL_BUCKET"]["Ref"]
    refs["resources"] = resources
    (refs["bucket"],) = [k for k in of_type(resources, "AWS::S3::Bucket") if k.startswith("Evidence")]
    refs["operator_topic"], refs["email_from"] = env["OPERATOR_TOPIC_ARN"]["Ref"], env["NOTIFY_EMAIL_FROM"]
    return refs


def method_paths(resources):
    """(HTTP method, path) -> Method properties, rebuilding each path from the Resource parents."""
    api_resources = of_type(resources, "AWS::ApiGateway::Resource")

    def path_of(ref) -> str:
        if "Fn::GetAtt" in ref:  # the root resource
            return ""
        props = api_resources[ref["Ref"]]["Properties"]
        return f"{path_of(props['ParentId'])}/{props['PathPart']}"

    return {(m["Properties"]["HttpMethod"], path_of(m["Properties"]["ResourceId"]) or "/"): m["Properties"]
            for m in of_type(resources, "AWS::ApiGateway::Method").values()
            if m["Properties"]["HttpMethod"] != "OPTIONS"}


def statements_by_role(resources):
    out: dict[str, list[dict]] = {}
    for policy in of_type(resources, "AWS::IAM::Policy").values():
        for role in policy["Properties"]["Roles"]:
            out.setdefault(role["Ref"], []).extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return out


def classify(statement, refs) -> str:
    """A label for one Allow statement, or an AssertionError if it grants anything unexpected."""
    actions = set(as_list(statement["Action"]))
    targets = as_list(statement["Resource"])
    text = json.dumps(targets)
    assert statement["Effect"] == "Allow", statement
    if actions <= XRAY_WRITE | XRAY_SAMPLING:
        assert targets == ["*"], statement  # X-Ray accepts no resource-level permissions
        return "xray"
    if all(a.startswith("dynamodb:") for a in actions):
        table_arn = {"Fn::GetAtt": [refs["table"], "Arn"]}
        assert table_arn in targets and all(t == table_arn or f'"{refs["table"]}", "Arn"]}}, "/index/*"' in json.dumps(t)
                                            for t in targets), statement
        assert actions <= DYNAMODB_ACTIONS_IN_CODE, statement  # nothing the code never calls
        if actions & {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}:
            assert "Condition" not in statement and targets == [table_arn], statement  # writes: the table only
            return "table:write"
        if "Condition" in statement:  # the public catalog read: its own items only
            return "table:read:catalog"
        return "table:read"
    if actions == {"events:PutEvents"}:
        assert targets == [{"Fn::GetAtt": [refs["bus"], "Arn"]}], statement
        return "events:put"
    if actions == {"states:StartExecution"}:
        if targets == [{"Ref": refs["courier_machine"]}]:
            return "states:start:courier"
        assert targets == [{"Ref": refs["state_machine"]}], statement
        return "states:start"
    if actions == {"secretsmanager:GetSecretValue"} and targets == [{"Ref": refs["phone_key"]}]:
        return "secrets:phone-key"  # the key of the phone digests (shop/adapters/phones.py)
    if actions == {"states:SendTaskSuccess"}:  # task tokens are not resources: the state machine's ARN
        assert targets == [{"Ref": refs["courier_machine"]}], statement
        return "states:answer"
    if actions == {"states:StopExecution"}:  # the courier-poll machine's executions, nothing else
        (target,) = targets
        assert f'"{refs["courier_machine"]}", "Name"' in json.dumps(target) and ":execution:" in json.dumps(target)
        return "states:stop"
    if actions == {"s3:PutObject", "s3:GetObject"}:
        (target,) = targets
        assert json.dumps(target).endswith(f'{{"Fn::GetAtt": ["{refs["labels"]}", "Arn"]}}, "/labels/*"]]}}'), statement
        return "s3:labels:write"
    if actions == {"secretsmanager:GetSecretValue"}:
        # the stack's own provider (or carrier) secrets, each by its ARN: no wildcard
        if targets == [{"Ref": ref} for ref in refs["carrier_secrets"]]:
            return "secrets:read:carriers"
        assert targets == [{"Ref": ref} for ref in refs["secrets"]], statement
        return "secrets:read"
    if actions in ({"s3:PutObject"}, {"s3:GetObject"}):
        # the evidence bucket's after-sales keys only (infra/evidence.py): never the bucket, never another prefix
        (bucket,) = [k for k in of_type(refs["resources"], "AWS::S3::Bucket") if k.startswith("Evidence")]
        assert targets == [{"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, "/after-sales/*"]]}], statement
        return "s3:put:evidence" if actions == {"s3:PutObject"} else "s3:get:evidence"
    if actions == {"sns:Publish"}:
        if targets == ["*"]:
            assert statement.get("Sid") == "SmsToPhoneNumbers", statement  # SMS has no resource ARN
            return "sns:sms"
        assert targets == [{"Ref": refs["operator_topic"]}], statement
        return "sns:publish:operators"
    if actions == {"ses:SendEmail"}:
        assert statement["Condition"] == {"StringEquals": {"ses:FromAddress": refs["email_from"]}}, statement
        assert len(targets) == 2 and all("identity/" in json.dumps(t) for t in targets), statement
        return "ses:send"
    if all(a.startswith("sqs:") for a in actions):
        (queue,) = [name for key, name in ((f"queue:{s.name}", s.name) for s in QUEUES)
                    if targets == [{"Fn::GetAtt": [refs[key], "Arn"]}]]
        if "sqs:ReceiveMessage" in actions:
            assert actions <= SQS_CONSUME, statement
            return f"sqs:consume:{queue}"
        assert actions == {"sqs:SendMessage"}, statement  # the code calls send_message and nothing else
        return f"sqs:send:{queue}"
    raise AssertionError(f"unexpected statement {statement}")


def test_cdk_json_carries_every_context_parameter_with_the_stack_default():
    assert CDK_CONTEXT == DEFAULT_CONTEXT


def test_every_manifest_route_is_deployed_with_its_authorizer(resources):
    deployed = method_paths(resources)
    assert set(deployed) == {(r.method, r.path) for r in ROUTES}
    for route in ROUTES:
        method = deployed[(route.method, route.path)]
        if route.auth in ("customer", "admin"):
            assert method["AuthorizationType"] == "COGNITO_USER_POOLS", route
            assert method["AuthorizerId"], route
        else:
            assert method.get("AuthorizationType", "NONE") == "NONE" and "AuthorizerId" not in method, route
        assert "RequestValidatorId" not in method, route  # validation is the handlers' (RFC 9457 answers)
        integration = method["Integration"]
        assert integration["Type"] == "AWS_PROXY" and integration["IntegrationHttpMethod"] == "POST"
        fn_id = functions_by_name(resources)[route.function][0]
        assert fn_id in json.dumps(integration["Uri"]), route


def test_webhook_route_has_no_authorizer(resources):
    webhook = method_paths(resources)[("POST", "/webhooks/{provider}")]
    assert webhook.get("AuthorizationType", "NONE") == "NONE"


def test_user_pool_authorizer_and_admin_group(template):
    template.has_resource_properties("AWS::ApiGateway::Authorizer", {"Type": "COGNITO_USER_POOLS"})
    template.has_resource_properties("AWS::Cognito::UserPoolGroup", {"GroupName": "admin"})
    template.has_resource_properties("AWS::Cognito::UserPool", {
        "Policies": {"PasswordPolicy": Match.object_like({"MinimumLength": 12})}})


def test_stage_logs_traces_and_throttles(template):
    template.has_resource_properties("AWS::ApiGateway::Stage", {
        "StageName": "v1",
        "TracingEnabled": True,
        "AccessLogSetting": Match.object_like({"DestinationArn": Match.any_value(),
                                               "Format": Match.string_like_regexp(r'^\{.*"requestId"')}),
        "MethodSettings": Match.array_with([Match.object_like({
            "ThrottlingRateLimit": CDK_CONTEXT["api_throttle_rate"],
            "ThrottlingBurstLimit": CDK_CONTEXT["api_throttle_burst"],
            "DataTraceEnabled": False})]),
    })
    # No usage plan without API keys (it would throttle nothing) and no validator without models.
    template.resource_count_is("AWS::ApiGateway::UsagePlan", 0)
    template.resource_count_is("AWS::ApiGateway::RequestValidator", 0)


def test_table_is_encrypted_recoverable_retained_and_expires_records(template, resources):
    template.has_resource_properties("AWS::DynamoDB::GlobalTable", {
        "BillingMode": "PAY_PER_REQUEST",
        "SSESpecification": {"SSEEnabled": True},
        "TimeToLiveSpecification": {"AttributeName": "ttl", "Enabled": True},
        "Replicas": Match.array_with([Match.object_like({
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "DeletionProtectionEnabled": False})]),  # dev; prod: test_stages_side_by_side
        "GlobalSecondaryIndexes": Match.array_with([Match.object_like({"IndexName": "gsi1"})]),
    })
    (table,) = of_type(resources, "AWS::DynamoDB::GlobalTable").values()
    # Retained on delete and replacement, but deleted when the first create rolls back (nothing orphaned).
    assert table["DeletionPolicy"] == "RetainExceptOnCreate" and table["UpdateReplacePolicy"] == "Retain"
    # The deployed indexes are the ones the local run creates (one schema, two runtimes).
    from shop.adapters.table_schema import create_table_kwargs

    local = {i["IndexName"]: (i["KeySchema"], i["Projection"]["ProjectionType"])
             for i in create_table_kwargs("t")["GlobalSecondaryIndexes"]}
    deployed = {i["IndexName"]: (i["KeySchema"], i["Projection"]["ProjectionType"])
                for i in table["Properties"]["GlobalSecondaryIndexes"]}
    assert deployed == local and deployed["gsi4"][1] == "KEYS_ONLY"


def test_queues_are_encrypted_ssl_only_with_dead_letter_queues(resources):
    queues = of_type(resources, "AWS::SQS::Queue")
    assert len(queues) == 2 * len(QUEUES)
    assert all(q["Properties"].get("SqsManagedSseEnabled") for q in queues.values())
    refs = stack_refs(resources)
    for spec in QUEUES:
        props = queues[refs[f"queue:{spec.name}"]]["Properties"]
        assert props["VisibilityTimeout"] == spec.visibility_timeout_s
        assert props["RedrivePolicy"]["maxReceiveCount"] == spec.max_receive_count
        assert props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0] in queues
    policies = of_type(resources, "AWS::SQS::QueuePolicy").values()
    denies = [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]
              if s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}]
    assert len(denies) == len(queues)


def test_consumers_report_partial_batch_failures(resources):
    mappings = [m["Properties"] for m in of_type(resources, "AWS::Lambda::EventSourceMapping").values()]
    assert len(mappings) == len(QUEUES)
    functions, refs = functions_by_name(resources), stack_refs(resources)
    for spec in QUEUES:
        (mapping,) = [m for m in mappings if m["EventSourceArn"] == {"Fn::GetAtt": [refs[f"queue:{spec.name}"], "Arn"]}]
        assert mapping["FunctionName"] == {"Ref": functions[spec.consumer][0]}
        assert mapping["BatchSize"] == spec.batch_size
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        # Bounded consumers: a burst of expiries after a sale is worked off without the consumer fighting itself.
        assert mapping["ScalingConfig"] == {"MaximumConcurrency": spec.max_concurrency}


def test_functions_arm64_on_the_tested_python_traced_json_logs_one_asset(synthesized, resources):
    """Every function runs on the Python the tests run on (infra/runtime.py, the Makefile's LAMBDA_PYTHON) with
    the public Powertools layer of the release requirements.txt pins, found by its SSM parameter."""
    from infra.functions import powertools_layer_parameter
    from infra.runtime import PYTHON_VERSION, powertools_version

    parameters = synthesized["json"]["Parameters"]
    ours = functions_by_name(resources)
    assert set(ours) == set(FUNCTIONS)
    keys = set()
    log_groups = of_type(resources, "AWS::Logs::LogGroup")
    for name, (_, props) in ours.items():
        spec = FUNCTIONS[name]
        assert props["Architectures"] == ["arm64"]
        assert props["Runtime"] == f"python{PYTHON_VERSION}"
        assert props["Handler"] == spec.handler
        assert props["MemorySize"] == spec.memory_mb and props["Timeout"] == spec.timeout_s
        assert "ReservedConcurrentExecutions" not in props  # quota-dependent: off by default (a new account)
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["LoggingConfig"]["LogFormat"] == "JSON"
        assert log_groups[props["LoggingConfig"]["LogGroup"]["Ref"]]["Properties"]["RetentionInDays"] == 30
        (powertools,) = [layer for layer in props["Layers"] if layer.get("Ref") in parameters]
        parameter = parameters[powertools["Ref"]]
        assert parameter["Type"] == "AWS::SSM::Parameter::Value<String>"
        assert parameter["Default"] == powertools_layer_parameter(powertools_version()) == \
            f"/aws/service/powertools/python/arm64/python{PYTHON_VERSION}/{powertools_version()}"
        keys.add(json.dumps(props["Code"]["S3Key"]))
    assert len(keys) == 1, "all handlers share one code asset"
    assert all(g["Properties"].get("RetentionInDays") for g in log_groups.values())


def test_the_tests_run_on_the_deployed_runtime_and_powertools():
    """`make test` builds its venv with the Lambda runtime's Python, and the Powertools the tests import is the
    release whose layer is deployed."""
    import re
    import sys
    from importlib.metadata import version

    from infra.runtime import PYTHON_VERSION, powertools_version

    from tests.deploy.conftest import ROOT

    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^LAMBDA_PYTHON := (\S+)$", makefile, re.MULTILINE).group(1) == PYTHON_VERSION
    assert version("aws-lambda-powertools") == powertools_version()
    if "%d.%d" % sys.version_info[:2] != PYTHON_VERSION:
        pytest.skip(f"running on Python {sys.version.split()[0]}, Lambda on {PYTHON_VERSION}: use `make test`")


def test_functions_get_the_settings_their_manifest_entry_reads_and_no_others(resources):
    """Each function's environment: Powertools' variables and the settings its manifest entry names (those the
    stack decides; the others keep their defaults), always including the names of the resources it calls."""
    deployed = dict(functions_by_name(resources))
    assert set(deployed) == set(FUNCTIONS)
    for name, (_, props) in deployed.items():
        env = props["Environment"]["Variables"]
        spec = FUNCTIONS[name]
        declared = {var for field in spec.all_settings for var in Settings.env_names(field)}
        assert set(env) - set(POWERTOOLS_ENVIRONMENT) - {"POWERTOOLS_SERVICE_NAME"} <= declared, name
        resource_vars = {Settings.env_names(field)[0] for call in spec.aws_calls
                         for field in RESOURCE_SETTINGS.get(call.resource, ())}
        assert resource_vars <= set(env), name
        assert env["POWERTOOLS_SERVICE_NAME"] == name
        assert env["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false"  # no order bodies in X-Ray
        expected = {"PAYMENT_WINDOW_SECONDS": str(CDK_CONTEXT["payment_window_seconds"]),
                    "MAX_PAYMENT_WINDOW_SECONDS": str(CDK_CONTEXT["max_payment_window_seconds"]),
                    "PAYMENT_PROVIDERS_ENABLED": CDK_CONTEXT["enabled_payment_providers"],
                    # an order that names no provider gets one the stack accepts (never the local run's sandbox)
                    "DEFAULT_PAYMENT_PROVIDER": "stripe",
                    "PAYMENT_SECRET_PREFIX": SECRET_PREFIX, "PAYMENT_SECRETS_SOURCE": "secretsmanager",
                    "RISK_MAX_PAYMENTS_PER_IP": str(CDK_CONTEXT["risk_max_payments_per_ip"]),
                    "RISK_LARGE_AMOUNT": str(CDK_CONTEXT["risk_large_amount"])}
        for variable, value in expected.items():
            assert env.get(variable) == (value if variable in declared else None), (name, variable)
    assert SECRET_PREFIX == "shop/dev/payments/"
    # What the functions that place and pay orders cannot do without.
    for name in PAYMENT_CALLERS:
        assert {"TABLE_NAME", "PAYMENT_SECRETS_SOURCE", "PAYMENT_PROVIDERS_ENABLED"} <= set(
            deployed[name][1]["Environment"]["Variables"]), name


def test_the_default_payment_provider_is_one_the_stack_accepts():
    from infra.stack import default_provider

    assert default_provider(("stripe", "alipay"), "") == "stripe"
    assert default_provider(("stripe", "alipay"), "alipay") == "alipay"
    for enabled, chosen in ((("stripe", "alipay"), "sandbox"), ((), ""), (("paypal",), "")):
        with pytest.raises(ValueError):
            default_provider(enabled, chosen)


def test_functions_that_call_providers_know_the_webhook_url_of_this_api(resources):
    """Alipay and WeChat Pay need `notify_url` in each request: the stage URL of the API itself."""
    api_id = next(iter(of_type(resources, "AWS::ApiGateway::RestApi")))
    callers = set(PAYMENT_CALLERS)  # the sweeper finishes refunds, reconciliation refunds late payments
    assert callers == {"create_order", "orders_api", "admin_api", "payment_webhook", "expiry_sweeper",
                       "reconciliation"}
    for name, (_, props) in functions_by_name(resources).items():
        url = props["Environment"]["Variables"].get("PAYMENT_WEBHOOK_BASE_URL")
        if name not in callers:
            assert url is None, name
            continue
        parts = url["Fn::Join"][1]
        assert parts[0] == "https://" and {"Ref": api_id} in parts, name
        assert str(parts[-1]).endswith("/v1"), name


def _resource_of(target, refs) -> str:
    """The manifest's name of the resource an ARN in a statement points at."""
    if target == {"Fn::GetAtt": [refs["table"], "Arn"]}:
        return "table"
    if f'"{refs["table"]}", "Arn"]}}, "/index/*"' in json.dumps(target):
        return "table index"
    if target == {"Fn::GetAtt": [refs["bus"], "Arn"]}:
        return "event bus"
    if target == {"Ref": refs["state_machine"]}:
        return "payment window"
    if target in [{"Ref": ref} for ref in refs["secrets"]]:
        return "provider secrets"
    if target == {"Ref": refs["phone_key"]}:
        return "phone index key"
    if target in [{"Ref": ref} for ref in refs["carrier_secrets"]]:
        return "carrier secrets"
    if target == {"Ref": refs["courier_machine"]}:
        return "courier poll"
    if f'"{refs["courier_machine"]}", "Name"' in json.dumps(target) and ":execution:" in json.dumps(target):
        return "courier poll executions"
    if target == {"Fn::Join": ["", [{"Fn::GetAtt": [refs["labels"], "Arn"]}, "/labels/*"]]}:
        return "label bucket"
    if target == {"Fn::Join": ["", [{"Fn::GetAtt": [refs["bucket"], "Arn"]}, "/after-sales/*"]]}:
        return "evidence bucket"
    if target == {"Ref": refs["operator_topic"]}:
        return "operator topic"
    if target == "*":  # classify() accepts it only for the SMS statement
        return "phone numbers"
    if ":ses:" in json.dumps(target) and "identity/" in json.dumps(target):
        return "sender identity"
    (queue,) = [s.resource for s in QUEUES if target == {"Fn::GetAtt": [refs[f"queue:{s.name}"], "Arn"]}]
    return queue


def granted_calls(statements, refs) -> set[tuple[str, str]]:
    """(IAM action, resource) pairs the statements allow, besides X-Ray and SQS event sources."""
    out = set()
    for statement in statements:
        label = classify(statement, refs)  # fails on any statement of an unexpected shape
        if label == "xray" or label.startswith("sqs:consume:"):
            continue
        for target in as_list(statement["Resource"]):
            resource = "catalog items" if label == "table:read:catalog" else _resource_of(target, refs)
            out |= {(action, resource) for action in as_list(statement["Action"])}
    return out


def declared_calls(name, absent: frozenset[str] = frozenset()) -> set[tuple[str, str]]:
    """(IAM action, resource) pairs the manifest's calls of function `name` need: each operation's IAM actions on
    the resource (and for a Query on the table, on its indexes); none on the `absent` resources, which this
    synthesis leaves out (e-mail without a sender address, SMS switched off)."""
    out = set()
    for call in FUNCTIONS[name].aws_calls:
        if call.resource in absent:
            continue
        for action in iam_actions(call.action):
            out.add((action, call.resource))
            if call.resource == "table" and action == "dynamodb:Query":
                out.add((action, "table index"))
    return out


def test_each_function_role_allows_exactly_the_calls_its_manifest_entry_declares(resources):
    refs, by_role = stack_refs(resources), statements_by_role(resources)
    secrets = [{"Ref": ref} for ref in refs["secrets"]]
    absent = frozenset() if refs["email_from"] else frozenset({"sender identity"})
    for name, (_, props) in functions_by_name(resources).items():
        statements = by_role[props["Role"]["Fn::GetAtt"][0]]
        assert granted_calls(statements, refs) == declared_calls(name, absent), name
        labels = {classify(s, refs) for s in statements}
        assert "xray" in labels, name
        consumed = {f"sqs:consume:{q.name}" for q in QUEUES if q.consumer == name}
        assert {label for label in labels if label.startswith("sqs:consume:")} == consumed, name
        for statement in statements:  # every provider secret by its ARN, in one statement
            if as_list(statement["Action"]) == ["secretsmanager:GetSecretValue"] and \
                    as_list(statement["Resource"])[0] in [{"Ref": ref} for ref in refs["secrets"]]:
                assert as_list(statement["Resource"]) == secrets, name
    # The manifest itself, read by a person: the public function reads its own items and nothing else.
    assert declared_calls("catalog_api") == {("dynamodb:BatchGetItem", "catalog items")}


def test_no_wildcard_actions_and_star_resources_only_where_the_service_requires_it(resources):
    statements = [s for p in of_type(resources, "AWS::IAM::Policy").values()
                  for s in p["Properties"]["PolicyDocument"]["Statement"]]
    star_actions = set()
    for statement in statements:
        actions = as_list(statement["Action"])
        assert "*" not in actions and not any(a.endswith(":*") or "*" in a for a in actions), statement
        if "*" in as_list(statement.get("Resource")):
            assert as_list(statement["Resource"]) == ["*"], statement
            star_actions.update(actions)
    assert star_actions == XRAY_WRITE | XRAY_SAMPLING | SFN_LOG_DELIVERY | {"sns:Publish"}  # SMS to phone numbers


def test_state_machine_logs_all_traces_and_may_only_send_to_the_release_queue(template, resources):
    template.has_resource_properties("AWS::StepFunctions::StateMachine", {
        "StateMachineType": "STANDARD",
        "TracingConfiguration": {"Enabled": True},
        "LoggingConfiguration": Match.object_like({"Level": "ALL"}),
    })
    refs = stack_refs(resources)
    machine = resources[refs["state_machine"]]
    role = machine["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    non_star = [s for s in statements_by_role(resources)[role] if s["Resource"] != "*"]
    assert non_star == [{"Action": "sqs:SendMessage",
                         "Effect": "Allow",
                         "Resource": {"Fn::GetAtt": [refs["queue:stock_release"], "Arn"]}}]


def test_deployed_definition_is_byte_for_byte_the_local_one(synthesized, resources):
    machine = resources[stack_refs(resources)["state_machine"]]["Properties"]
    # from_file uploads the ASL file itself as an asset; Step Functions fills in the substitutions.
    assert "DefinitionString" not in machine
    asset_hash = machine["DefinitionS3Location"]["Key"].removesuffix(".json")
    staged = synthesized["path"].parent / f"asset.{asset_hash}.json"
    assert staged.read_bytes() == PAYMENT_WINDOW_ASL.read_bytes()
    assert machine["DefinitionSubstitutions"] == {"StockReleaseQueueUrl": {"Ref": stack_refs(resources)["queue:stock_release"]}}
    assert "${StockReleaseQueueUrl}" in PAYMENT_WINDOW_ASL.read_text()


def test_sweeper_runs_on_the_manifest_schedule(resources):
    rules = [r["Properties"] for r in of_type(resources, "AWS::Events::Rule").values()]
    sweeper = {"Fn::GetAtt": [functions_by_name(resources)["expiry_sweeper"][0], "Arn"]}
    (rule,) = [r for r in rules if "ScheduleExpression" in r and r["Targets"][0]["Arn"] == sweeper]
    from aws_cdk import Duration, aws_events

    assert rule["ScheduleExpression"] == aws_events.Schedule.rate(Duration.seconds(SWEEP_INTERVAL_SECONDS)).expression_string
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": [functions_by_name(resources)["expiry_sweeper"][0], "Arn"]}


def test_reconciliation_runs_daily_after_the_statements_are_published_and_is_alarmed(resources):
    from shop.manifest import RECONCILIATION_SCHEDULE_UTC

    rules = [r["Properties"] for r in of_type(resources, "AWS::Events::Rule").values()]
    target = {"Fn::GetAtt": [functions_by_name(resources)["reconciliation"][0], "Arn"]}
    (rule,) = [r for r in rules if "ScheduleExpression" in r and r["Targets"][0]["Arn"] == target]
    assert rule["ScheduleExpression"] == "cron(30 2 * * ? *)" and RECONCILIATION_SCHEDULE_UTC == {"hour": "2",
                                                                                               "minute": "30"}
    assert FUNCTIONS["reconciliation"].reserved_concurrency == 1  # one run at a time
    alarms = {a["Properties"]["MetricName"]: a["Properties"] for a in of_type(resources, "AWS::CloudWatch::Alarm")
              .values() if a["Properties"].get("Namespace") == "shop"}
    for name in ("ReconciliationFailed", "ReconciliationDifferences"):
        assert alarms[name]["Dimensions"] == [{"Name": "service", "Value": "reconciliation"}]
        assert alarms[name]["Threshold"] == 1 and alarms[name]["AlarmActions"], name


def test_alarms_and_dashboard(resources):
    alarms = [a["Properties"] for a in of_type(resources, "AWS::CloudWatch::Alarm").values()]
    by_metric: dict[str, list[dict]] = {}
    for alarm in alarms:
        by_metric.setdefault(alarm.get("MetricName", "(math)"), []).append(alarm)
        assert alarm["AlarmActions"], alarm
    assert len(by_metric["Throttles"]) == len(by_metric["Duration"]) == len(FUNCTIONS)
    assert len(by_metric["ApproximateNumberOfMessagesVisible"]) == len(QUEUES)  # one per dead-letter queue
    assert all(a["Threshold"] == 1 and a["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
               for a in by_metric["ApproximateNumberOfMessagesVisible"])
    assert len(by_metric["5XXError"]) == 1 and len(by_metric["ExecutionsFailed"]) == 1  # routes: one math alarm each
    (lag,) = by_metric["ApproximateAgeOfOldestMessage"]
    assert lag["Threshold"] == 300
    (lost,) = [a for a in alarms if "Metrics" in a and "EventsNotPublished" in json.dumps(a["Metrics"])]
    # ^ EventsNotPublished summed over every publishing function
    watched = {m["MetricStat"]["Metric"]["Dimensions"][0]["Value"] for m in lost["Metrics"] if "MetricStat" in m}
    assert watched == {name for name in FUNCTIONS if ("events:PutEvents", "event bus") in declared_calls(name)}
    assert {m["MetricStat"]["Metric"]["MetricName"] for m in lost["Metrics"] if "MetricStat" in m} == \
        {"EventsNotPublished"}
    (dashboard,) = of_type(resources, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for provider in ("stripe", "alipay", "wechatpay"):  # webhook metrics carry [provider, service]
        assert f'\\"provider\\",\\"{provider}\\"' in body, provider
    assert len(of_type(resources, "AWS::CloudWatch::Dashboard")) == 1
    assert not of_type(resources, "AWS::SNS::Subscription"), "no alarm_email by default"
    assert not of_type(resources, "AWS::ApiGateway::DomainName"), "no custom domain by default"


def test_an_enabled_but_unconfigured_provider_is_alarmed(resources):
    """Issue 12 item 5: ProviderNotConfigured (dimensions provider, service=payments, counted wherever it is
    raised) summed over every enabled provider, alarming at the first one, to the alarm topic."""
    alarms = [a["Properties"] for a in of_type(resources, "AWS::CloudWatch::Alarm").values()]
    (alarm,) = [a for a in alarms if "Metrics" in a and "ProviderNotConfigured" in json.dumps(a["Metrics"])]
    stats = [m["MetricStat"]["Metric"] for m in alarm["Metrics"] if "MetricStat" in m]
    assert {m["MetricName"] for m in stats} == {"ProviderNotConfigured"}
    assert all({d["Name"]: d["Value"] for d in m["Dimensions"]}["service"] == "payments" for m in stats)
    watched = {{d["Name"]: d["Value"] for d in m["Dimensions"]}["provider"] for m in stats}
    assert {"stripe", "alipay", "wechatpay"} <= watched
    assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["AlarmActions"] and alarm["TreatMissingData"] == "notBreaching"


def test_custom_domain_and_alarm_email_from_context(synthesized_with_domain):
    template = synthesized_with_domain["template"]
    template.has_resource_properties("AWS::ApiGateway::DomainName", {
        "DomainName": "api.shop.example", "SecurityPolicy": "TLS_1_2",
        "RegionalCertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d"})
    template.has_resource_properties("AWS::ApiGateway::BasePathMapping", {"BasePath": "v1"})
    template.has_resource_properties("AWS::Lambda::Function", {"Environment": {"Variables": Match.object_like(
        {"PAYMENT_WEBHOOK_BASE_URL": "https://api.shop.example/v1"})}})
    template.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email",
                                                                "Endpoint": "oncall@shop.example"})
    annotations = Annotations.from_stack(synthesized_with_domain["stack"])
    assert not annotations.find_error("*", Match.string_like_regexp("AwsSolutions-.*"))
    assert not annotations.find_warning("*", Match.string_like_regexp("AwsSolutions-.*"))


def test_cors_is_off_by_default(resources):
    assert not [m for m in of_type(resources, "AWS::ApiGateway::Method").values()
                if m["Properties"]["HttpMethod"] == "OPTIONS"]
    assert not of_type(resources, "AWS::ApiGateway::GatewayResponse")


def test_cors_preflight_and_headers_for_the_configured_origins(synthesized_with_domain):
    resources = synthesized_with_domain["json"]["Resources"]
    preflight = [m["Properties"] for m in of_type(resources, "AWS::ApiGateway::Method").values()
                 if m["Properties"]["HttpMethod"] == "OPTIONS"]
    paths = {path for _, path in method_paths(resources)}
    assert len(preflight) >= len(paths)  # every route's resource answers the preflight
    assert all(p["AuthorizationType"] == "NONE" and p["Integration"]["Type"] == "MOCK" for p in preflight)
    assert any("https://m.shop.example" in json.dumps(p) for p in preflight)
    responses = {r["Properties"]["ResponseType"]: r["Properties"]["ResponseParameters"]
                 for r in of_type(resources, "AWS::ApiGateway::GatewayResponse").values()}
    assert set(responses) == {"DEFAULT_4XX", "DEFAULT_5XX"}
    assert responses["DEFAULT_4XX"]["gatewayresponse.header.Access-Control-Allow-Origin"] == "'https://shop.example'"
    http_functions = {route.function for route in ROUTES}
    for name, (_, props) in functions_by_name(resources).items():  # the functions behind the API add the headers
        assert props["Environment"]["Variables"].get("CORS_ALLOWED_ORIGINS") == (
            "https://shop.example, https://m.shop.example/" if name in http_functions else None), name


def test_domain_without_certificate_is_refused(tmp_path):
    from infra.app import build_app

    with pytest.raises(Exception, match="domain_name and certificate_arn"):
        build_app(str(tmp_path), context={**CDK_CONTEXT, "allow_empty_dependency_layer": True,
                                          "domain_name": "api.shop.example"})


@pytest.mark.parametrize("which", ["synthesized", "synthesized_prod"])
def test_cdk_nag_has_no_unacknowledged_findings(which, request):
    annotations = Annotations.from_stack(request.getfixturevalue(which)["stack"])
    findings = (annotations.find_error("*", Match.string_like_regexp("AwsSolutions-.*"))
                + annotations.find_warning("*", Match.string_like_regexp("AwsSolutions-.*")))
    assert [f"{f.id}: {f.entry.data[:120]}" for f in findings] == []


@pytest.mark.parametrize("which", ["synthesized", "synthesized_with_domain", "synthesized_prod"])
def test_cfn_lint_finds_no_errors(which, request):
    from cfnlint.api import ManualArgs, lint_file

    path = request.getfixturevalue(which)["path"]
    matches = lint_file(path, config=ManualArgs(regions=["us-east-1"]))
    for match in matches:
        print(match.rule.id, match.message)  # warnings are allowed (CDK's redundant DependsOn: W3005)
    assert matches is not None
    assert [f"{m.rule.id}: {m.message}" for m in matches if m.rule.id.startswith("E")] == []


def _http_functions():
    return {route.function for route in ROUTES}


def test_snap_start_is_off_by_default(resources):
    assert DEFAULT_CONTEXT["snap_start"] is False
    assert all("SnapStart" not in props for _, props in functions_by_name(resources).values())
    assert not of_type(resources, "AWS::Lambda::Alias") and not of_type(resources, "AWS::Lambda::Version")


def test_snap_start_on_for_the_http_functions_through_an_alias(synthesized_with_domain):
    """`-c snap_start=true`: the functions API Gateway invokes get SnapStart on published versions, and the API
    invokes each one's alias (SnapStart never applies to $LATEST); queue consumers and the sweeper are unchanged.
    cdk-nag and cfn-lint run on this synthesis in the tests above."""
    resources = synthesized_with_domain["json"]["Resources"]
    functions = functions_by_name(resources)
    runtime = next(iter(functions.values()))[1]["Runtime"]
    assert tuple(int(p) for p in runtime.removeprefix("python").split(".")) >= (3, 12)  # SnapStart for Python
    for name, (_, props) in functions.items():
        if name in _http_functions():
            assert props["SnapStart"] == {"ApplyOn": "PublishedVersions"}, name
        else:
            assert "SnapStart" not in props, name
    versions = of_type(resources, "AWS::Lambda::Version")
    aliases = {a["Properties"]["FunctionName"]["Ref"]: (logical_id, a["Properties"])
               for logical_id, a in of_type(resources, "AWS::Lambda::Alias").items()}
    by_id = {logical_id: name for name, (logical_id, _) in functions.items()}
    assert {by_id[fn] for fn in aliases} == _http_functions()
    for fn_id, (_, alias) in aliases.items():
        version_id = alias["FunctionVersion"]["Fn::GetAtt"][0]
        assert alias["Name"] == "live" and alias["FunctionVersion"]["Fn::GetAtt"][1] == "Version"
        assert versions[version_id]["Properties"]["FunctionName"] == {"Ref": fn_id}
        assert versions[version_id]["DeletionPolicy"] == "Delete"  # superseded snapshots are not kept (and paid for)
    assert len(versions) == len(aliases)
    alias_of = {by_id[fn_id]: logical_id for fn_id, (logical_id, _) in aliases.items()}
    for route in ROUTES:
        uri = json.dumps(method_paths(resources)[(route.method, route.path)]["Integration"]["Uri"])
        assert f'{{"Ref": "{alias_of[route.function]}"}}' in uri, route
    api_permissions = [p["Properties"] for p in of_type(resources, "AWS::Lambda::Permission").values()
                       if p["Properties"]["Principal"] == "apigateway.amazonaws.com"]
    assert api_permissions and {p["FunctionName"]["Ref"] for p in api_permissions} == set(alias_of.values())
    # The queue consumers still receive from their queues on the function itself.
    mappings = [m["Properties"] for m in of_type(resources, "AWS::Lambda::EventSourceMapping").values()]
    assert {m["FunctionName"]["Ref"] for m in mappings} == {functions[spec.consumer][0] for spec in QUEUES}


def test_a_failed_first_create_leaves_nothing_and_a_delete_keeps_what_is_shared(resources):
    """What a rollback of the first create may delete, and what a stack deletion must keep."""
    (pool,) = of_type(resources, "AWS::Cognito::UserPool").values()
    assert pool["DeletionPolicy"] == "RetainExceptOnCreate"
    assert CDK_CONTEXT["table_deletion_protection"] is None  # the stage decides: off in dev (a protected table
    # would fail the rollback of a failed first create), on in prod
    # API Gateway's CloudWatch role is one per account and region: other APIs log with it.
    (account,) = of_type(resources, "AWS::ApiGateway::Account").values()
    role_id = account["Properties"]["CloudWatchRoleArn"]["Fn::GetAtt"][0]
    assert resources[role_id]["DeletionPolicy"] == "Retain" and account["DeletionPolicy"] == "Retain"
    retained = {k for k, r in resources.items() if r.get("DeletionPolicy") == "Retain"}
    labels = resources[stack_refs(resources)["labels"]]  # kept on delete, deleted if the first create rolls back
    assert labels["DeletionPolicy"] == "RetainExceptOnCreate" and labels["UpdateReplacePolicy"] == "Retain"
    assert retained == {role_id, next(iter(of_type(resources, "AWS::ApiGateway::Account")))}


def test_reserved_concurrency_is_a_context_option(resources, synthesized_with_domain):
    """Off by default (new accounts have a concurrency quota below 100 + what is reserved); `-c
    reserved_concurrency=true` applies the manifest's values."""
    assert DEFAULT_CONTEXT["reserved_concurrency"] is False
    assert not [p for _, p in functions_by_name(resources).values() if "ReservedConcurrentExecutions" in p]
    on = functions_by_name(synthesized_with_domain["json"]["Resources"])
    assert {name: props.get("ReservedConcurrentExecutions") for name, (_, props) in on.items()} == \
        {name: spec.reserved_concurrency for name, spec in FUNCTIONS.items()}


def test_powertools_layer_only_in_the_aws_partition(synthesized, tmp_path, monkeypatch):
    """The public layer's ARN is built with the partition, but only `aws` has it: a template rule stops a deploy
    elsewhere before anything is created, and a stack bound to a China region is refused at synth."""
    rules = synthesized["json"]["Rules"]
    (assertion,) = rules["PowertoolsLayerPartition"]["Assertions"]
    assert assertion["Assert"] == {"Fn::Equals": [{"Ref": "AWS::Partition"}, "aws"]}
    from infra.app import build_app

    monkeypatch.setenv("CDK_DEFAULT_ACCOUNT", "123456789012")
    monkeypatch.setenv("CDK_DEFAULT_REGION", "cn-north-1")
    with pytest.raises(ValueError, match="only in the 'aws' partition"):
        build_app(str(tmp_path), context={**CDK_CONTEXT, "allow_empty_dependency_layer": True})


def test_an_empty_dependency_layer_stops_the_synthesis_of_a_deploy(tmp_path, monkeypatch):
    """`npx cdk deploy` without `make layer` would upload an empty archive, which Lambda refuses: an error, not
    a warning. Only an explicit `allow_empty_dependency_layer` (tests, `make synth`) synthesizes without it."""
    from infra import functions
    from infra.app import build_app

    monkeypatch.setattr(functions, "DEPENDENCY_LAYER_DIR", tmp_path / "layer")
    with pytest.raises(functions.DependencyLayerMissing, match="make layer"):
        build_app(str(tmp_path / "out"), context=dict(CDK_CONTEXT))


def test_timeouts_exceed_what_each_function_waits_for(resources):
    """A function that calls payment providers outlives the provider client's overall deadline with room for its
    own DynamoDB and Secrets Manager calls, and an HTTP function ends before API Gateway's 29 s integration
    timeout (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html), so a slow provider
    yields the designed 503 and not a bare 502. Queues hide a message for six times their consumer's timeout."""
    from infra.stack import PAYMENT_CALLERS
    from shop.payments import http_client

    worst_provider_call = http_client.DEADLINE_S
    assert worst_provider_call < http_client.TIMEOUT_S * http_client.ATTEMPTS  # the deadline is what bounds it
    for name in PAYMENT_CALLERS:
        assert FUNCTIONS[name].timeout_s >= worst_provider_call + 10, name
    for name in {route.function for route in ROUTES}:
        assert FUNCTIONS[name].timeout_s < 29, name
    queues, refs = of_type(resources, "AWS::SQS::Queue"), stack_refs(resources)
    for spec in QUEUES:
        assert queues[refs[f"queue:{spec.name}"]]["Properties"]["VisibilityTimeout"] == \
            6 * FUNCTIONS[spec.consumer].timeout_s, spec.name
        assert spec.max_concurrency, spec.name  # consumers stay bounded


def test_stages_side_by_side(synthesized, synthesized_prod, tmp_path):
    """`-c stage=prod` is a second copy: its own stack name, API, user pool and secrets, tagged for cost
    allocation, with production defaults (deletion protection, an alarm subscriber required)."""
    from infra.app import build_app
    from infra.stack import STAGE_DEFAULTS

    dev, prod = synthesized["stack"], synthesized_prod["stack"]
    assert (dev.stack_name, prod.stack_name) == ("shop-dev", "shop-prod")
    for stack, resources in ((dev, synthesized["json"]["Resources"]), (prod, synthesized_prod["json"]["Resources"])):
        stage = stack.stack_name.removeprefix("shop-")
        (api,) = of_type(resources, "AWS::ApiGateway::RestApi").values()
        assert api["Properties"]["Name"] == f"{stack.stack_name}-api"
        (pool,) = of_type(resources, "AWS::Cognito::UserPool").values()
        assert pool["Properties"]["UserPoolName"] == f"{stack.stack_name}-customers"
        for name, (_, props) in functions_by_name(resources).items():
            assert props["Environment"]["Variables"].get("PAYMENT_SECRET_PREFIX") == (
                f"shop/{stage}/payments/" if name in PAYMENT_CALLERS else None), name
            assert {"Key": "stage", "Value": stage} in props["Tags"] and {"Key": "app", "Value": "shop-core"} in \
                props["Tags"], name
        (table,) = of_type(resources, "AWS::DynamoDB::GlobalTable").values()
        protected = table["Properties"]["Replicas"][0]["DeletionProtectionEnabled"]
        assert protected is STAGE_DEFAULTS[stage]["table_deletion_protection"]
    assert of_type(synthesized_prod["json"]["Resources"], "AWS::SNS::Subscription")
    with pytest.raises(ValueError, match="alarm_email"):  # nobody to page: refused before synthesis
        build_app(str(tmp_path), context={**CDK_CONTEXT, "allow_empty_dependency_layer": True, "stage": "prod"})
    with pytest.raises(ValueError, match="stage"):
        build_app(str(tmp_path), context={**CDK_CONTEXT, "allow_empty_dependency_layer": True, "stage": "Prod!"})


def test_webhooks_catalog_reads_and_order_placement_have_their_own_throttles(resources):
    (stage,) = of_type(resources, "AWS::ApiGateway::Stage").values()
    settings = {}
    for s in stage["Properties"]["MethodSettings"]:
        path = s["ResourcePath"] if s["ResourcePath"] == "/*" else s["ResourcePath"][1:].replace("~1", "/")
        settings[(s["HttpMethod"], path)] = (s["ThrottlingRateLimit"], s["ThrottlingBurstLimit"])
        # a method's settings replace the stage's: logging and metrics stay on, request bodies unlogged
        assert s["LoggingLevel"] == "ERROR" and s["MetricsEnabled"] and s["DataTraceEnabled"] is False, s
    def limits(kind):
        return (CDK_CONTEXT[f"{kind}_throttle_rate"], CDK_CONTEXT[f"{kind}_throttle_burst"])
    assert settings[("*", "/*")] == limits("api")
    assert settings[("POST", "/webhooks/{provider}")] == limits("webhook")
    assert settings[("GET", "/skus/{sku}")] == settings[("GET", "/openapi.json")] == limits("catalog")
    assert settings[("POST", "/orders")] == settings[("POST", "/orders/{order_id}/reorder")] == limits("order")
    assert len({limits(k) for k in ("webhook", "catalog", "order")}) == 3  # three buckets, not one


def test_waf_off_in_dev_on_in_prod_with_the_managed_rate_and_size_rules(resources, synthesized_prod):
    from infra.edge import MANAGED_RULE_GROUPS, MAX_BODY_BYTES
    from infra.stack import STAGE_DEFAULTS

    assert STAGE_DEFAULTS["dev"]["waf"] is False and STAGE_DEFAULTS["prod"]["waf"] is True
    assert not of_type(resources, "AWS::WAFv2::WebACL")
    prod = synthesized_prod["json"]["Resources"]
    (acl_id, acl), = of_type(prod, "AWS::WAFv2::WebACL").items()
    (association,) = of_type(prod, "AWS::WAFv2::WebACLAssociation").values()
    assert association["Properties"]["WebACLArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}
    (stage_id,) = of_type(prod, "AWS::ApiGateway::Stage")
    assert stage_id in json.dumps(association["Properties"]["ResourceArn"])
    props = acl["Properties"]
    assert props["Scope"] == "REGIONAL" and props["DefaultAction"] == {"Allow": {}}
    rules = {r["Name"]: r for r in props["Rules"]}
    assert set(MANAGED_RULE_GROUPS) <= set(rules)
    common = rules["AWSManagedRulesCommonRuleSet"]["Statement"]["ManagedRuleGroupStatement"]
    assert common["RuleActionOverrides"] == [{"Name": "SizeRestrictions_BODY", "ActionToUse": {"Count": {}}}]
    assert "/v1/webhooks/" in json.dumps(common["ScopeDownStatement"]["NotStatement"])
    rate = rules["OrderPlacementRate"]
    assert rate["Action"] == {"Block": {}}
    statement = rate["Statement"]["RateBasedStatement"]
    assert statement["AggregateKeyType"] == "IP" and statement["Limit"] == CDK_CONTEXT["waf_order_rate_limit"]
    scope = json.dumps(statement["ScopeDownStatement"])
    assert '"SearchString": "/v1/orders"' in scope and '"SearchString": "POST"' in scope
    size = rules["BodySize"]
    assert size["Action"] == {"Block": {}}
    (limit, exempt) = size["Statement"]["AndStatement"]["Statements"]
    assert limit["SizeConstraintStatement"]["Size"] == MAX_BODY_BYTES
    assert limit["SizeConstraintStatement"]["FieldToMatch"] == {"Body": {"OversizeHandling": "MATCH"}}
    exempted = exempt["NotStatement"]["Statement"]["OrStatement"]["Statements"]
    assert [s["ByteMatchStatement"]["SearchString"] for s in exempted] == ["/v1/webhooks/", "/v1/admin/imports/"]


def test_rates_latency_and_throttle_alarms_and_the_event_archive(resources):
    """Error rates (not counts: one designed 503 is no page) and p99 latency per function and route, the API's 5xx
    rate keyed by its unique name, DynamoDB and Step Functions throttling, and an archive of every domain event."""
    from infra.observability import DURATION_P99_SHARE, ERROR_RATE_PERCENT, ROUTE_LATENCY_P99_MS

    alarms = [a["Properties"] for a in of_type(resources, "AWS::CloudWatch::Alarm").values()]
    assert all(a["AlarmActions"] and a["TreatMissingData"] == "notBreaching" for a in alarms)
    (api_name,) = [r["Properties"]["Name"] for r in of_type(resources, "AWS::ApiGateway::RestApi").values()]
    fn_ids = {logical_id: name for name, (logical_id, _) in functions_by_name(resources).items()}

    def dims(alarm):
        return {d["Name"]: d.get("Value") for d in alarm.get("Dimensions", [])}

    (api_5xx,) = [a for a in alarms if a.get("MetricName") == "5XXError" and "Resource" not in dims(a)]
    assert dims(api_5xx) == {"ApiName": api_name} and api_name == "shop-dev-api"
    assert api_5xx["Statistic"] == "Average" and api_5xx["Threshold"] == ERROR_RATE_PERCENT / 100
    # One alarm per route over its 5xx rate and p99 latency (metric math): every route has exactly one.
    routes: dict[tuple[str, str], list[dict]] = {}
    for a in alarms:
        stats = {m["Id"]: m["MetricStat"] for m in a.get("Metrics", []) if "MetricStat" in m}
        if set(stats) == {"errors", "latency"}:
            metric_dims = {d["Name"]: d.get("Value") for d in stats["latency"]["Metric"]["Dimensions"]}
            routes.setdefault((metric_dims["Method"], metric_dims["Resource"]), []).append(a)
            assert stats["errors"]["Metric"]["MetricName"] == "5XXError" and stats["errors"]["Stat"] == "Average"
            assert stats["latency"]["Metric"]["MetricName"] == "Latency" and stats["latency"]["Stat"] == "p99"
            assert metric_dims["ApiName"] == api_name and metric_dims["Stage"] == "v1"
            (expression,) = [m["Expression"] for m in a["Metrics"] if "Expression" in m]
            assert expression == (f"IF(errors >= {ERROR_RATE_PERCENT / 100} OR latency >= {ROUTE_LATENCY_P99_MS}, "
                                  "1, 0)")
            assert a["Threshold"] == 1 and a["EvaluationPeriods"] == 2
    assert {key: len(found) for key, found in routes.items()} == {(r.method, r.path): 1 for r in ROUTES}
    rates = [a for a in alarms if "Metrics" in a and "100 * part / whole" in json.dumps(a["Metrics"])]
    assert len(rates) == len(FUNCTIONS) and all(a["Threshold"] == ERROR_RATE_PERCENT for a in rates)
    measured = {fn_ids[m["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Ref"]]
                for a in rates for m in a["Metrics"] if "MetricStat" in m}
    assert measured == set(FUNCTIONS)
    durations = {fn_ids[dims(a)["FunctionName"]["Ref"]]: a for a in alarms if a.get("MetricName") == "Duration"}
    assert {name: a["Threshold"] for name, a in durations.items()} == \
        {name: round(DURATION_P99_SHARE * spec.timeout_s * 1000) for name, spec in FUNCTIONS.items()}
    assert all(a["ExtendedStatistic"] == "p99" for a in durations.values())
    (table_throttled,) = [a for a in alarms if "Metrics" in a and "WriteThrottleEvents" in json.dumps(a["Metrics"])]
    names = {m["MetricStat"]["Metric"]["MetricName"] for m in table_throttled["Metrics"] if "MetricStat" in m}
    assert names == {"ReadThrottleEvents", "WriteThrottleEvents"} and table_throttled["Threshold"] == 1
    indexes = {d["Value"] for m in table_throttled["Metrics"] if "MetricStat" in m
               for d in m["MetricStat"]["Metric"]["Dimensions"] if d["Name"] == "GlobalSecondaryIndexName"}
    (table,) = of_type(resources, "AWS::DynamoDB::GlobalTable").values()
    assert indexes == {i["IndexName"] for i in table["Properties"]["GlobalSecondaryIndexes"]}
    (throttled,) = [a for a in alarms if a.get("MetricName") == "ExecutionThrottled"]
    assert throttled["Namespace"] == "AWS/States" and throttled["Threshold"] == 1
    (archive,) = of_type(resources, "AWS::Events::Archive").values()
    assert archive["Properties"]["SourceArn"] == {"Fn::GetAtt": [stack_refs(resources)["bus"], "Arn"]}
    assert archive["Properties"]["RetentionDays"] == CDK_CONTEXT["event_archive_retention_days"] == 90


def test_dynamodb_grants_are_the_calls_the_code_makes(resources):
    """Read-write functions get exactly the DynamoDB actions derived from the code's boto3 calls (no Scan,
    DeleteItem, BatchWriteItem, DescribeTable or stream reads unless the code calls them); the public catalog
    function only BatchGetItem, on SKU and stock items (dynamodb:LeadingKeys)."""
    from infra.grants import CATALOG_KEY_PREFIXES

    assert DYNAMODB_ACTIONS_IN_CODE == {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query",
                                        "dynamodb:PutItem", "dynamodb:UpdateItem"}
    by_role, functions = statements_by_role(resources), functions_by_name(resources)
    for name, (_, props) in functions.items():
        statements = [s for s in by_role[props["Role"]["Fn::GetAtt"][0]]
                      if all(a.startswith("dynamodb:") for a in as_list(s["Action"]))]
        granted = {a for s in statements for a in as_list(s["Action"])}
        if name == "catalog_api":
            (statement,) = statements
            assert granted == {"dynamodb:BatchGetItem"}
            assert statement["Condition"] == {"ForAllValues:StringLike": {
                "dynamodb:LeadingKeys": [f"{p}*" for p in CATALOG_KEY_PREFIXES]}}
        else:
            assert granted == DYNAMODB_ACTIONS_IN_CODE, name
    from shop.adapters import items

    assert items.sku_key("X")["pk"].startswith("SKU#") and items.shard_key("X", 0)["pk"].startswith("STOCK#")


def test_cognito_ready_for_customers(synthesized, synthesized_with_domain, synthesized_prod):
    """A public SRP client with explicit OAuth settings (none without callback URLs, else the code grant only,
    never the implicit flow), SES mail from a verified identity when given, and the outputs a storefront needs.
    The methods carry no OAuth scopes, so API Gateway takes the ID token (which has cognito:groups)."""
    plain, full = synthesized["json"], synthesized_with_domain["json"]
    (client,) = of_type(plain["Resources"], "AWS::Cognito::UserPoolClient").values()
    props = client["Properties"]
    assert props["AllowedOAuthFlowsUserPoolClient"] is False and "CallbackURLs" not in props
    assert "implicit" not in json.dumps(props) and props["GenerateSecret"] is False
    assert set(props["ExplicitAuthFlows"]) == {"ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"}
    assert props["PreventUserExistenceErrors"] == "ENABLED" and props["SupportedIdentityProviders"] == ["COGNITO"]
    (pool,) = of_type(plain["Resources"], "AWS::Cognito::UserPool").values()
    assert pool["Properties"].get("EmailConfiguration", {}).get("EmailSendingAccount", "COGNITO_DEFAULT") == \
        "COGNITO_DEFAULT"
    assert {"UserPoolId", "UserPoolClientId", "ApiUrl"} <= set(plain["Outputs"])
    assert not [m for m in of_type(plain["Resources"], "AWS::ApiGateway::Method").values()
                if m["Properties"].get("AuthorizationScopes")]

    (client,) = of_type(full["Resources"], "AWS::Cognito::UserPoolClient").values()
    props = client["Properties"]
    assert props["AllowedOAuthFlowsUserPoolClient"] is True and props["AllowedOAuthFlows"] == ["code"]
    assert props["CallbackURLs"] == ["https://shop.example/auth/callback", "https://m.shop.example/auth/callback"]
    assert props["LogoutURLs"] == ["https://shop.example/"]
    assert set(props["AllowedOAuthScopes"]) == {"openid", "email", "profile"}
    (domain,) = of_type(full["Resources"], "AWS::Cognito::UserPoolDomain").values()
    assert domain["Properties"]["Domain"] == "shop-example-dev"
    (pool,) = of_type(full["Resources"], "AWS::Cognito::UserPool").values()
    email = pool["Properties"]["EmailConfiguration"]
    assert email["EmailSendingAccount"] == "DEVELOPER" and email["From"] == "no-reply@shop.example"
    assert ":ses:eu-west-1:" in json.dumps(email["SourceArn"]) and "identity/no-reply@shop.example" in \
        json.dumps(email["SourceArn"])
    assert full["Outputs"]["ApiUrl"]["Value"] == "https://api.shop.example/v1/"
    warnings = Annotations.from_stack(synthesized_prod["stack"]).find_warning(
        "*", Match.string_like_regexp(".*cognito_ses_from_email.*"))
    assert warnings, "prod without an SES identity is warned about"


def test_each_enabled_provider_has_its_secret_created_empty_and_kept(resources, synthesized_prod):
    """Configuring a provider is filling in a value: the stack creates `{prefix}{provider}` as `{}` for every
    enabled provider, kept when the stack is deleted and deleted when its first create rolls back."""
    for stage, res in (("dev", resources), ("prod", synthesized_prod["json"]["Resources"])):
        secrets = {s["Properties"]["Name"]: s for s in of_type(res, "AWS::SecretsManager::Secret").values()}
        phone_key = secrets.pop(f"shop/{stage}/phone-index-key")  # generated, not filled in (docs/finding-orders.md)
        assert "SecretString" not in phone_key["Properties"] and phone_key["Properties"]["GenerateSecretString"]
        assert phone_key["DeletionPolicy"] == "RetainExceptOnCreate"
        assert set(secrets) == {f"shop/{stage}/payments/{p}" for p in CDK_CONTEXT["enabled_payment_providers"].split(",")} \
            | {f"shop/{stage}/carriers/{c}" for c in CDK_CONTEXT["enabled_carriers"].split(",")}
        for secret in secrets.values():
            assert secret["Properties"]["SecretString"] == "{}"
            assert secret["DeletionPolicy"] == "RetainExceptOnCreate" and secret["UpdateReplacePolicy"] == "Retain"


def test_canary_deployments_are_an_option_rolling_back_on_errors(resources, synthesized_with_domain):
    """Off by default; with `-c canary_deploy=true` each function API Gateway invokes is deployed through its
    alias by CodeDeploy, 10% for 5 minutes, rolled back when the alias's error alarm fires."""
    from infra.stack import DEFAULT_CONTEXT

    assert DEFAULT_CONTEXT["canary_deploy"] is False
    assert not of_type(resources, "AWS::CodeDeploy::DeploymentGroup")
    on = synthesized_with_domain["json"]["Resources"]
    groups = of_type(on, "AWS::CodeDeploy::DeploymentGroup")
    assert len(groups) == len(_http_functions())
    alarms = of_type(on, "AWS::CloudWatch::Alarm")
    for group in groups.values():
        props = group["Properties"]
        assert props["DeploymentConfigName"] == "CodeDeployDefault.LambdaCanary10Percent5Minutes"
        assert set(props["AutoRollbackConfiguration"]["Events"]) == {
            "DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_REQUEST", "DEPLOYMENT_STOP_ON_ALARM"}
        assert props["AutoRollbackConfiguration"]["Enabled"] is True
        (alarm,) = props["AlarmConfiguration"]["Alarms"]
        (alarm_id,) = [k for k in alarms if k == alarm["Name"]["Ref"]]
        dims = {d["Name"] for d in alarms[alarm_id]["Properties"]["Dimensions"]}
        assert alarms[alarm_id]["Properties"]["MetricName"] == "Errors" and dims == {"FunctionName", "Resource"}
    app_ids = {json.dumps(g["Properties"]["ApplicationName"]) for g in groups.values()}
    for alias in of_type(on, "AWS::Lambda::Alias").values():
        update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
        assert json.dumps(update["ApplicationName"]) in app_ids


def test_evidence_bucket_is_private_encrypted_ssl_only_expiring_and_takes_browser_posts(resources):
    """After-sales photos (infra/evidence.py): no public access of any kind, encrypted, SSL only, expired by
    lifecycle, CORS for the browser's form POST; only orders_api and admin_api know it (test above: exact IAM)."""
    ((bucket_id, bucket),) = [(k, b) for k, b in of_type(resources, "AWS::S3::Bucket").items() if k.startswith("Evidence")]
    props = bucket["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                                       "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}  # no ACLs
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
    (rule,) = props["LifecycleConfiguration"]["Rules"]
    assert (rule["Prefix"], rule["ExpirationInDays"], rule["Status"]) == ("after-sales/", 180, "Enabled")
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    (cors,) = props["CorsConfiguration"]["CorsRules"]
    assert cors["AllowedMethods"] == ["POST"] and cors["AllowedOrigins"] == ["*"]  # no cors_allowed_origins in dev
    assert bucket["DeletionPolicy"] == "RetainExceptOnCreate"
    (policy,) = [p["Properties"] for p in of_type(resources, "AWS::S3::BucketPolicy").values()
                 if p["Properties"]["Bucket"] == {"Ref": bucket_id}]
    statements = policy["PolicyDocument"]["Statement"]
    assert all(s["Effect"] == "Deny" for s in statements)  # the bucket policy grants nothing to anyone
    assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} and s["Action"] == "s3:*"
               for s in statements)
    users = {name: props["Environment"]["Variables"] for name, (_, props) in functions_by_name(resources).items()
             if "EVIDENCE_BUCKET" in props["Environment"]["Variables"]}
    assert set(users) == {"orders_api", "admin_api"}
    for env in users.values():
        assert env["EVIDENCE_BUCKET"] == {"Ref": bucket_id}
        assert (env["AFTER_SALES_DAYS_AFTER_DELIVERY"], env["AFTER_SALES_DAYS_AFTER_SHIPMENT"]) == ("7", "15")
        assert (env["AFTER_SALES_MAX_PHOTOS"], env["AFTER_SALES_PHOTO_MAX_BYTES"]) == ("6", str(10 * 1024 * 1024))


def test_evidence_cors_follows_the_storefront_origins(synthesized_with_domain):
    (bucket,) = [b for k, b in of_type(synthesized_with_domain["json"]["Resources"], "AWS::S3::Bucket").items()
                 if k.startswith("Evidence")]
    (cors,) = bucket["Properties"]["CorsConfiguration"]["CorsRules"]
    assert cors["AllowedOrigins"] == ["https://shop.example", "https://m.shop.example"]
