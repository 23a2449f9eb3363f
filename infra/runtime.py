"""The Lambda runtime and architecture, in one place without CDK imports (scripts/build_layer.py reads it too)."""

from __future__ import annotations

# The Python every function runs on. The dependency layer's wheels are built for it.
PYTHON_VERSION = "3.14"
# Graviton: Lambda's arm64 architecture; the layer's binary wheels are manylinux aarch64.
ARCHITECTURE = "arm64"
WHEEL_PLATFORM = "manylinux2014_aarch64"
