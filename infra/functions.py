"""Every Lambda of the manifest: one code asset from functions/, dependencies from the Powertools layer."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Annotations, CfnRule, CfnRuleAssertion, Duration, Fn, RemovalPolicy, Stack, Token
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_ssm as ssm
from aws_cdk.region_info import RegionInfo
from constructs import Construct

from infra.runtime import ARCHITECTURE, PYTHON_VERSION, powertools_version
from shop.manifest import FUNCTIONS

FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "functions"
DEPENDENCY_LAYER_DIR = Path(__file__).resolve().parent.parent / "build" / "layer"
RUNTIME = getattr(lambda_.Runtime, "PYTHON_" + PYTHON_VERSION.replace(".", "_"))
ASSET_EXCLUDES = ["**/__pycache__", "**/*.pyc", "**/.pytest_cache", "**/tests"]
# The account that publishes the public Powertools layers in the commercial (`aws`) partition. China and
# GovCloud regions have other publisher accounts, and layer versions that differ per region there.
POWERTOOLS_PUBLISHER = "017000801446"
POWERTOOLS_PARTITION = "aws"


class DependencyLayerMissing(ValueError):
    pass


def powertools_layer_parameter(release: str) -> str:
    """The public SSM parameter Powertools publishes for each release, whose value is that release's layer ARN
    for the runtime and architecture (https://docs.aws.amazon.com/powertools/python/latest/getting-started/install/
    "SSM Parameter Store"; e.g. release 3.23.0 is layer version 27 of AWSLambdaPowertoolsPythonV3-python313-arm64).
    Resolved by CloudFormation at deploy, so the layer is always the release requirements.txt pins."""
    return f"/aws/service/powertools/python/{ARCHITECTURE}/python{PYTHON_VERSION}/{release}"


def powertools_layer(scope: Construct, version: int | None, release: str) -> lambda_.ILayerVersion:
    """The public Powertools layer (Powertools v3 with pydantic and the X-Ray SDK; boto3 is in the runtime) of the
    release requirements.txt pins, found through its SSM parameter; `version` (context powertools_layer_version)
    names a layer version instead, for a region where the parameter is missing.

    Its ARN is built with the stack's partition, and only the `aws` partition has it: a stack bound to a region
    of another partition is refused at synth, and an environment-agnostic stack carries a template rule that
    stops the deploy in another partition before anything is created (CloudFormation evaluates `Rules` when it
    validates the template: https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/rules-section-structure.html)."""
    stack = Stack.of(scope)
    partition = None if Token.is_unresolved(stack.region) else RegionInfo.get(stack.region).partition
    if partition not in (None, POWERTOOLS_PARTITION):
        raise ValueError(f"The public Powertools layer exists only in the '{POWERTOOLS_PARTITION}' partition; "
                         f"this stack's region {stack.region} is in '{partition}'. Publish the layer "
                         "in your account and point the functions at it.")
    if stack.node.try_find_child("PowertoolsLayerPartition") is None:
        CfnRule(stack, "PowertoolsLayerPartition", assertions=[CfnRuleAssertion(
            assert_=Fn.condition_equals(stack.partition, POWERTOOLS_PARTITION),
            assert_description=(f"This stack uses the public Powertools layer, published only in the "
                                f"'{POWERTOOLS_PARTITION}' partition (account {POWERTOOLS_PUBLISHER})."))])
    if version is None:
        arn = ssm.StringParameter.value_for_string_parameter(scope, powertools_layer_parameter(release))
    else:
        python = RUNTIME.name.replace(".", "")  # python3.13 -> python313
        arn = (f"arn:{stack.partition}:lambda:{stack.region}:{POWERTOOLS_PUBLISHER}:layer:"
               f"AWSLambdaPowertoolsPythonV3-{python}-{ARCHITECTURE}:{version}")
    return lambda_.LayerVersion.from_layer_version_arn(scope, "PowertoolsLayer", arn)


def dependency_layer_code(allow_empty: bool, scope: Construct) -> lambda_.Code:
    """build/layer, which `make layer` (scripts/build_layer.py) fills and `make deploy` builds first.

    Lambda refuses an empty layer archive, so without it the deploy would fail half-way: unless the caller
    allows it (the tests and `make synth`, which never deploy), synthesis stops here."""
    python = DEPENDENCY_LAYER_DIR / "python"
    if python.is_dir() and any(python.iterdir()):
        return lambda_.Code.from_asset(str(DEPENDENCY_LAYER_DIR))
    if not allow_empty:
        raise DependencyLayerMissing(
            f"{python} is empty: build the dependency layer first (`make layer`, which `make deploy` runs), "
            "or pass `-c allow_empty_dependency_layer=true` to synthesize without deploying.")
    python.mkdir(parents=True, exist_ok=True)
    Annotations.of(scope).add_info("build/layer is empty: this synthesis cannot be deployed (run `make layer`)")
    return lambda_.Code.from_asset(str(DEPENDENCY_LAYER_DIR))


SNAP_START_ALIAS = "live"


class Functions(Construct):
    """`by_name`: every function. `invoke_targets`: what a caller should invoke, the function itself or, for the
    functions named in `snap_start`, the alias of its published version (SnapStart applies to published versions
    only: $LATEST would start cold)."""

    def __init__(self, scope: Construct, construct_id: str, *, environment: dict[str, dict[str, str]],
                 layer_version: int | None,
                 snap_start: frozenset[str] = frozenset(), reserved_concurrency: bool = False,
                 allow_empty_dependency_layer: bool = False, canary: frozenset[str] = frozenset()):
        super().__init__(scope, construct_id)
        code = lambda_.Code.from_asset(str(FUNCTIONS_DIR), exclude=ASSET_EXCLUDES)
        layer = powertools_layer(self, layer_version, powertools_version())
        dependencies = lambda_.LayerVersion(
            self, "Dependencies", code=dependency_layer_code(allow_empty_dependency_layer, self),
            compatible_runtimes=[RUNTIME], compatible_architectures=[lambda_.Architecture.ARM_64],
            description="cryptography for provider signatures (requirements-layer.txt)")
        self.by_name: dict[str, lambda_.Function] = {}
        self.invoke_targets: dict[str, lambda_.IFunction] = {}
        unknown = (set(snap_start) | set(canary)) - set(FUNCTIONS)
        if unknown:
            raise ValueError(f"snap_start or canary names functions the manifest does not have: {sorted(unknown)}")
        self.deployment_groups: dict[str, codedeploy.LambdaDeploymentGroup] = {}
        for spec in FUNCTIONS.values():
            snapshotted = spec.name in snap_start
            published = snapshotted or spec.name in canary  # both need versions and an alias
            log_group = logs.LogGroup(self, f"{spec.name}-logs", retention=logs.RetentionDays.ONE_MONTH,
                                      removal_policy=RemovalPolicy.DESTROY)
            self.by_name[spec.name] = lambda_.Function(
                self, spec.name,
                description=spec.description,
                runtime=RUNTIME,
                architecture=lambda_.Architecture.ARM_64,
                code=code,
                handler=spec.handler,
                layers=[layer, dependencies],
                memory_size=spec.memory_mb,
                timeout=Duration.seconds(spec.timeout_s),
                # Off by default: Lambda keeps at least 100 of the account's concurrency unreserved, so reserving
                # any fails on accounts whose quota is below 100 + the sum reserved (new accounts often have
                # 10 or 50): https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html
                reserved_concurrent_executions=spec.reserved_concurrency if reserved_concurrency else None,
                tracing=lambda_.Tracing.ACTIVE,
                logging_format=lambda_.LoggingFormat.JSON,
                log_group=log_group,
                environment={**environment[spec.name], "POWERTOOLS_SERVICE_NAME": spec.name},
                snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if snapshotted else None,
                # Each deploy that changes the function publishes a version; the one it replaces is deleted, so
                # only the live version keeps a cached snapshot (SnapStart charges per cached GB-second).
                current_version_options=lambda_.VersionOptions(removal_policy=RemovalPolicy.DESTROY)
                if published else None,
            )
            fn = self.by_name[spec.name]
            if published:
                if snapshotted:
                    Annotations.of(fn).acknowledge_warning(
                        "@aws-cdk/aws-lambda:snapStartRequirePublish",
                        f"Versions are published (current_version) and invoked through the alias {SNAP_START_ALIAS!r}")
                alias = lambda_.Alias(
                    self, f"{spec.name}-{SNAP_START_ALIAS}", alias_name=SNAP_START_ALIAS, version=fn.current_version,
                    description=f"{spec.name}: the published version API Gateway invokes")
                self.invoke_targets[spec.name] = alias
                if spec.name in canary:
                    self.deployment_groups[spec.name] = self._canary(spec.name, alias)
            else:
                self.invoke_targets[spec.name] = fn

    def _canary(self, name: str, alias: lambda_.Alias) -> codedeploy.LambdaDeploymentGroup:
        """A deploy that changes the function shifts 10% of the alias's traffic to the new version for 5 minutes,
        then all of it; CodeDeploy rolls the alias back when the alias's error alarm fires meanwhile, and the
        CloudFormation update fails and rolls back with it
        (https://docs.aws.amazon.com/codedeploy/latest/userguide/deployment-configurations.html#deployment-configuration-lambda,
        https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-attribute-updatepolicy.html)."""
        errors = cw.Alarm(self, f"{name}-canary-errors", metric=alias.metric_errors(period=Duration.minutes(1)),
                          threshold=1, evaluation_periods=1,
                          comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                          treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                          alarm_description=f"{name} failed through its alias during a deployment: roll back")
        return codedeploy.LambdaDeploymentGroup(
            self, f"{name}-deployment", alias=alias,
            deployment_config=codedeploy.LambdaDeploymentConfig.CANARY_10_PERCENT_5_MINUTES, alarms=[errors],
            auto_rollback=codedeploy.AutoRollbackConfig(failed_deployment=True, stopped_deployment=True,
                                                        deployment_in_alarm=True))
