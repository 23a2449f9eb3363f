"""Build the dependency layer (build/layer/python) reproducibly: the same lock file gives the same bytes.

    python scripts/build_layer.py [--out build/layer] [--lock requirements-layer.lock]

pip installs the locked wheels for the Lambda platform (no Docker: binary wheels only) with `--no-compile`
(no .pyc: they embed source mtimes and differ per build), then every file and folder gets the same mtime
(SOURCE_DATE_EPOCH, default 1980-01-01) and normalized permissions. CDK hashes the folder's contents for
the asset's S3 key, so an unchanged lock file means an unchanged layer: no new layer version and no
function update on deploy. Prints the tree hash of the result.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from infra.runtime import PYTHON_VERSION, WHEEL_PLATFORM  # noqa: E402

DEFAULT_EPOCH = 315532800  # 1980-01-01T00:00:00Z, the earliest time a zip entry can carry


def install(lock: Path, target: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--no-deps", "--no-cache-dir",
         "--target", str(target), "--platform", WHEEL_PLATFORM, "--implementation", "cp",
         "--python-version", PYTHON_VERSION, "--only-binary=:all:", "--disable-pip-version-check",
         "-r", str(lock)],
        check=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})


def normalize(tree: Path, epoch: int) -> None:
    """No bytecode, pip's own bookkeeping that varies per run removed, fixed mtimes and permissions."""
    for cache in [p for p in tree.rglob("__pycache__") if p.is_dir()]:
        shutil.rmtree(cache)
    for path in tree.rglob("*"):
        if path.is_file() and (path.suffix == ".pyc" or path.name == "direct_url.json"):
            path.unlink()
    for path in sorted(tree.rglob("*"), reverse=True) + [tree]:
        if path.is_symlink():
            continue
        if path.is_dir():
            path.chmod(0o755)
        else:
            path.chmod(0o755 if path.stat().st_mode & 0o111 else 0o644)
        os.utime(path, (epoch, epoch))


def tree_hash(tree: Path) -> str:
    """sha256 over every entry's relative path, kind, mode, mtime and content, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(tree.rglob("*")):
        stat = path.lstat()
        rel = path.relative_to(tree).as_posix()
        digest.update(f"{rel}\0{'d' if path.is_dir() else 'f'}\0{stat.st_mode:o}\0{int(stat.st_mtime)}\0".encode())
        if path.is_file():
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def build(out: Path, lock: Path, epoch: int | None = None) -> str:
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", DEFAULT_EPOCH)) if epoch is None else epoch
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".layer-", dir=out.parent))
    try:
        install(lock, staging / "python")
        normalize(staging, epoch)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return tree_hash(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "layer")
    parser.add_argument("--lock", type=Path, default=ROOT / "requirements-layer.lock")
    args = parser.parse_args()
    print(f"{args.out}: tree sha256 {build(args.out, args.lock)}")


if __name__ == "__main__":
    main()
