"""Synthesize the CDK app once per test session (offline, no AWS credentials).

The app gets cdk.json's context, as `cdk synth` gives it, so the tests check what `make deploy` deploys.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

ROOT = Path(__file__).resolve().parents[2]
CDK_CONTEXT = json.loads((ROOT / "cdk.json").read_text())["context"]
SECRET_PREFIX = CDK_CONTEXT["payment_secret_prefix"].replace("{stage}", CDK_CONTEXT["stage"])


def synthesize(outdir: Path, **overrides) -> dict:
    from aws_cdk.assertions import Template

    from infra.app import build_app

    # The tests never deploy: they synthesize without build/layer (a deploy refuses to, see infra/functions.py).
    app, stack = build_app(str(outdir), context={**CDK_CONTEXT, "allow_empty_dependency_layer": True, **overrides})
    assembly = app.synth()
    template_path = outdir / f"{stack.artifact_id}.template.json"
    return {
        "stack": stack,
        "template": Template.from_stack(stack),
        "json": json.loads(template_path.read_text()),
        "path": template_path,
        "assembly": assembly,
    }


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory):
    return synthesize(tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="session")
def template(synthesized):
    return synthesized["template"]


@pytest.fixture(scope="session")
def resources(synthesized):
    return synthesized["json"]["Resources"]


@pytest.fixture(scope="session")
def synthesized_with_domain(tmp_path_factory):
    """The optional parts switched on: custom domain, alarm e-mail, CORS, SnapStart, reserved concurrency, SES mail
    and OAuth sign-in for customers, notification e-mail without SMS (a second
    synth, a few seconds; cdk-nag and cfn-lint run on it too). Flags are given as the CLI gives `-c snap_start=true`:
    strings."""
    return synthesize(tmp_path_factory.mktemp("cdk.out.domain"), domain_name="api.shop.example",
                      certificate_arn="arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d",
                      alarm_email="oncall@shop.example",
                      cors_allowed_origins="https://shop.example, https://m.shop.example/",
                      snap_start="true", reserved_concurrency="true", canary_deploy="true",
                      cognito_ses_from_email="no-reply@shop.example", cognito_ses_region="eu-west-1",
                      cognito_callback_urls="https://shop.example/auth/callback, https://m.shop.example/auth/callback",
                      cognito_logout_urls="https://shop.example/", cognito_domain_prefix="shop-example-dev",
                      notification_email_from="orders@shop.example", notification_sms="false",
                      operator_email="ops@shop.example", operator_locale="zh-CN", event_archive_retention_days="30")


@pytest.fixture(scope="session")
def synthesized_prod(tmp_path_factory):
    """The production stage with its defaults (the one extra synthesis of the stage tests; cdk-nag and cfn-lint
    run on it too): deletion protection, an alarm subscriber (required there)."""
    return synthesize(tmp_path_factory.mktemp("cdk.out.prod"), stage="prod", alarm_email="oncall@shop.example")


def of_type(resources, kind):
    return {k: v for k, v in resources.items() if v["Type"] == kind}
