"""Synthesize the CDK app once per test session (offline, no AWS credentials)."""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory):
    from aws_cdk.assertions import Template

    from infra.app import build_app

    outdir = tmp_path_factory.mktemp("cdk.out")
    app, stack = build_app(str(outdir))
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
def template(synthesized):
    return synthesized["template"]


@pytest.fixture(scope="session")
def resources(synthesized):
    return synthesized["json"]["Resources"]


def of_type(resources, kind):
    return {k: v for k, v in resources.items() if v["Type"] == kind}
