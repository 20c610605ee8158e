#!/usr/bin/env python3
"""Build the pbx_runtime wheel on the controller, once per source tree, and keep it.

    build_wheel.py SOURCE_DIR BUILD_DIR [--compiled]

The wheel's id is ``<version>-<digest[:12]>``, the digest covering the build inputs (setup.py,
pyproject.toml, VERSION, every pbx_runtime/*.py) and the kind of build: pure Python, or
compiled with mypyc (``--compiled``: this mypy, this controller's interpreter and platform). When
BUILD_DIR/<id>/ already holds the wheel nothing is built, so an unchanged tree costs no
compilation and installs nothing. Otherwise the inputs are copied to a scratch directory (the
source tree stays clean) and built there without build isolation, with the controller's
pinned setuptools and mypy. Prints one JSON object:
{"changed", "path", "name", "version", "sha256", "id", "kind"}.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

EPOCH = "315532800"  # 1980-01-01, the earliest date a zip file can carry
TOP_FILES = ("setup.py", "pyproject.toml", "VERSION")


def build_inputs(source: Path) -> list[Path]:
    modules = sorted(
        p for p in (source / "pbx_runtime").rglob("*.py") if "__pycache__" not in p.parts
    )
    return [source / name for name in TOP_FILES] + modules


def build_kind(compiled: bool) -> str:
    """What the wheel runs on: anywhere, or this interpreter ABI and platform only."""
    if not compiled:
        return "pure"
    mypy = importlib.metadata.version("mypy")
    return f"mypyc{mypy}-{sys.implementation.cache_tag}-{sysconfig.get_platform()}"


def digest(source: Path, kind: str) -> str:
    h = hashlib.sha256(kind.encode() + b"\0")
    for path in build_inputs(source):
        h.update(path.relative_to(source).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def build(source: Path, compiled: bool, out: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="pbx-runtime-wheel-") as scratch:
        tree = Path(scratch) / "src"
        for path in build_inputs(source):
            target = tree / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        env = dict(os.environ, SOURCE_DATE_EPOCH=EPOCH, PIP_DISABLE_PIP_VERSION_CHECK="1",
                   PBX_RUNTIME_COMPILE="1" if compiled else "0")  # fmt: skip
        result = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
             "--quiet", "--wheel-dir", str(Path(scratch) / "out"), str(tree)],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            sys.stderr.write(result.stdout + result.stderr)
            raise SystemExit(1)
        [wheel] = (Path(scratch) / "out").glob("pbx_runtime-*.whl")
        out.mkdir(parents=True, exist_ok=True)
        return Path(shutil.move(str(wheel), str(out / wheel.name)))


def main() -> int:
    compiled = "--compiled" in sys.argv[1:]
    args = [a for a in sys.argv[1:] if a != "--compiled"]
    source, build_dir = Path(args[0]).resolve(), Path(args[1]).resolve()
    kind = build_kind(compiled)
    version = (source / "VERSION").read_text().strip()
    ident = f"{version}-{digest(source, kind)[:12]}"
    found = sorted((build_dir / ident).glob("pbx_runtime-*.whl"))
    changed = not found
    wheel = build(source, compiled, build_dir / ident) if changed else found[0]
    sha256 = hashlib.sha256(wheel.read_bytes()).hexdigest()
    report = {"changed": changed, "path": str(wheel), "name": wheel.name, "version": version,
              "sha256": sha256, "id": ident, "kind": kind}  # fmt: skip
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
