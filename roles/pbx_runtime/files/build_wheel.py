#!/usr/bin/env python3
"""Build the pbx_runtime wheel on the controller, reproducibly, and keep it in a build dir.

    build_wheel.py SOURCE_DIR BUILD_DIR

Copies pyproject.toml, VERSION and pbx_runtime/ (without caches) to a scratch directory, so
the source tree stays clean, runs `pip wheel --no-deps` there with a fixed SOURCE_DATE_EPOCH
(the same sources give the same wheel, byte for byte), and moves the wheel to
BUILD_DIR/<version>-<sha256[:12]>/ unless that wheel is already there. Prints one JSON object:
{"changed", "path", "name", "version", "sha256", "id"}.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

EPOCH = "315532800"  # 1980-01-01, the earliest date a zip file can carry


def main() -> int:
    source, build = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    with tempfile.TemporaryDirectory(prefix="pbx-runtime-wheel-") as scratch:
        tree = Path(scratch) / "src"
        tree.mkdir()
        for name in ("pyproject.toml", "VERSION"):
            shutil.copy2(source / name, tree / name)
        shutil.copytree(source / "pbx_runtime", tree / "pbx_runtime",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
        out = Path(scratch) / "out"
        env = dict(os.environ, SOURCE_DATE_EPOCH=EPOCH, PIP_DISABLE_PIP_VERSION_CHECK="1")
        result = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir",
             str(out), str(tree)],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            sys.stderr.write(result.stdout + result.stderr)
            return 1
        [wheel] = out.glob("pbx_runtime-*.whl")
        sha256 = hashlib.sha256(wheel.read_bytes()).hexdigest()
        version = wheel.name.split("-")[1]
        ident = f"{version}-{sha256[:12]}"
        target = build / ident / wheel.name
        changed = not target.is_file()
        if changed:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(wheel), str(target))
    print(json.dumps({"changed": changed, "path": str(target), "name": target.name,
                      "version": version, "sha256": sha256, "id": ident}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
