"""Every Lambda of the manifest: one code asset from functions/, dependencies from the Powertools layer."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Annotations, Duration, RemovalPolicy, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from shop.manifest import FUNCTIONS

FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "functions"
DEPENDENCY_LAYER_DIR = Path(__file__).resolve().parent.parent / "build" / "layer"
RUNTIME = lambda_.Runtime.PYTHON_3_14
ASSET_EXCLUDES = ["**/__pycache__", "**/*.pyc", "**/.pytest_cache", "**/tests"]


def powertools_layer(scope: Construct, version: int) -> lambda_.ILayerVersion:
    # The public layer carries Powertools v3 with pydantic and the X-Ray SDK; boto3 is in the runtime.
    python = RUNTIME.name.replace(".", "")  # python3.14 -> python314
    arn = (f"arn:{Stack.of(scope).partition}:lambda:{Stack.of(scope).region}:017000801446:layer:"
           f"AWSLambdaPowertoolsPythonV3-{python}-arm64:{version}")
    return lambda_.LayerVersion.from_layer_version_arn(scope, "PowertoolsLayer", arn)


SNAP_START_ALIAS = "live"


class Functions(Construct):
    """`by_name`: every function. `invoke_targets`: what a caller should invoke, the function itself or, for the
    functions named in `snap_start`, the alias of its published version (SnapStart applies to published versions
    only: $LATEST would start cold)."""

    def __init__(self, scope: Construct, construct_id: str, *, environment: dict[str, str], layer_version: int,
                 snap_start: frozenset[str] = frozenset()):
        super().__init__(scope, construct_id)
        code = lambda_.Code.from_asset(str(FUNCTIONS_DIR), exclude=ASSET_EXCLUDES)
        layer = powertools_layer(self, layer_version)
        if not (DEPENDENCY_LAYER_DIR / "python").is_dir():
            # Synthesis stays offline; `make deploy` builds the layer (pip, arm64 wheels) before deploying.
            (DEPENDENCY_LAYER_DIR / "python").mkdir(parents=True, exist_ok=True)
            Annotations.of(self).add_warning_v2(
                "shop:dependency-layer-empty",
                "build/layer is empty: run `make layer` (or `make deploy`) before deploying")
        dependencies = lambda_.LayerVersion(
            self, "Dependencies", code=lambda_.Code.from_asset(str(DEPENDENCY_LAYER_DIR)),
            compatible_runtimes=[RUNTIME], compatible_architectures=[lambda_.Architecture.ARM_64],
            description="cryptography for provider signatures (requirements-layer.txt)")
        self.by_name: dict[str, lambda_.Function] = {}
        self.invoke_targets: dict[str, lambda_.IFunction] = {}
        unknown = set(snap_start) - set(FUNCTIONS)
        if unknown:
            raise ValueError(f"snap_start names functions the manifest does not have: {sorted(unknown)}")
        for spec in FUNCTIONS.values():
            snapshotted = spec.name in snap_start
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
                reserved_concurrent_executions=spec.reserved_concurrency,
                tracing=lambda_.Tracing.ACTIVE,
                logging_format=lambda_.LoggingFormat.JSON,
                log_group=log_group,
                environment={**environment, "POWERTOOLS_SERVICE_NAME": spec.name},
                snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if snapshotted else None,
                # Each deploy that changes the function publishes a version; the one it replaces is deleted, so
                # only the live version keeps a cached snapshot (SnapStart charges per cached GB-second).
                current_version_options=lambda_.VersionOptions(removal_policy=RemovalPolicy.DESTROY)
                if snapshotted else None,
            )
            fn = self.by_name[spec.name]
            if snapshotted:
                Annotations.of(fn).acknowledge_warning(
                    "@aws-cdk/aws-lambda:snapStartRequirePublish",
                    f"Versions are published (current_version) and invoked through the alias {SNAP_START_ALIAS!r}")
                self.invoke_targets[spec.name] = lambda_.Alias(
                    self, f"{spec.name}-{SNAP_START_ALIAS}", alias_name=SNAP_START_ALIAS, version=fn.current_version,
                    description=f"{spec.name}: the published version API Gateway invokes (SnapStart)")
            else:
                self.invoke_targets[spec.name] = fn
