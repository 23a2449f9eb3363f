"""The dependency layer builds reproducibly: two builds from the same lock file are byte-identical trees, so
CDK gives them the same asset hash and a deploy publishes no new layer version (and updates no function)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import build_layer  # noqa: E402


def test_two_builds_from_the_lock_file_are_identical(tmp_path):
    lock = ROOT / "requirements-layer.lock"
    try:
        first = build_layer.build(tmp_path / "a", lock)
        second = build_layer.build(tmp_path / "b", lock)
    except subprocess.CalledProcessError as error:  # no package index reachable: nothing to compare
        pytest.skip(f"pip could not install the locked wheels: {error}")
    assert first == second
    files = [p for p in (tmp_path / "a").rglob("*") if p.is_file()]
    assert files and not [p for p in files if p.suffix == ".pyc" or "__pycache__" in p.parts]
    assert {int(p.stat().st_mtime) for p in files} == {build_layer.DEFAULT_EPOCH}
    # The asset hash CDK puts in the S3 key (and the layer's Content) is the same for both builds.
    from aws_cdk import FileSystem

    assert FileSystem.fingerprint(str(tmp_path / "a")) == FileSystem.fingerprint(str(tmp_path / "b"))


def test_the_lock_file_pins_every_package_of_requirements_layer():
    lock = {line.split("==")[0].lower(): line.split("==")[1] for line in
            (ROOT / "requirements-layer.lock").read_text().splitlines() if line and not line.startswith("#")}
    wanted = {line.split(">")[0].split("=")[0].split("<")[0].strip().lower() for line in
              (ROOT / "requirements-layer.txt").read_text().splitlines() if line and not line.startswith("#")}
    assert wanted <= set(lock) and all(version for version in lock.values())
