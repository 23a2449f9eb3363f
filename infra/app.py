"""The CDK app: one stack with everything (`make synth`, `make deploy`). Synthesizes offline."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

import aws_cdk as cdk  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from infra.stack import DEFAULT_CONTEXT, ShopStack, stack_name  # noqa: E402


def build_app(outdir: str | None = None, context: dict | None = None) -> tuple[cdk.App, ShopStack]:
    """The app; tests pass `outdir` and extra `context` (cdk.json's defaults are read by the CLI only).

    One stack per stage (`-c stage=prod`): `shop-dev`, `shop-prod`, ... side by side in one account."""
    app = cdk.App(outdir=outdir, context=context) if outdir else cdk.App(context=context)
    stage = str(app.node.try_get_context("stage") or DEFAULT_CONTEXT["stage"])
    env = cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION"))
    stack = ShopStack(app, stack_name(stage), stage=stage, env=env,
                      description=f"Orders, payments and inventory (shop-core, stage {stage})")
    cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return app, stack


if __name__ == "__main__":
    build_app()[0].synth()
