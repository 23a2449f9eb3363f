"""The Lambda runtime and architecture, in one place without CDK imports (scripts/build_layer.py reads it too)."""

from __future__ import annotations

import re
from pathlib import Path

# The Python every function runs on, and the one the tests run on: `make test` builds its venv with this
# version (Makefile LAMBDA_PYTHON; tests/deploy checks they agree). The dependency layer's wheels are built for it.
PYTHON_VERSION = "3.13"
# Graviton: Lambda's arm64 architecture; the layer's binary wheels are manylinux aarch64.
ARCHITECTURE = "arm64"
WHEEL_PLATFORM = "manylinux2014_aarch64"


def powertools_version() -> str:
    """The Powertools release requirements.txt pins (`aws-lambda-powertools[...]==X.Y.Z`): the tests run on it, and
    the deployed functions get the public layer of that same release."""
    text = (Path(__file__).resolve().parent.parent / "requirements.txt").read_text()
    match = re.search(r"^aws-lambda-powertools(?:\[[^\]]*\])?==([0-9]+\.[0-9]+\.[0-9]+)\s*$", text, re.MULTILINE)
    if not match:
        raise ValueError("requirements.txt must pin aws-lambda-powertools to one release (==X.Y.Z): the Lambda "
                         "layer is chosen by it")
    return match.group(1)
