"""Build hook: with PBX_RUNTIME_COMPILE=1 the runtime's modules are compiled with mypyc.

Metadata lives in pyproject.toml. The compiled wheel is what the pbx_runtime role ships by
default (docs/runtime/build.md): the same sources, type-checked by mypy --strict, run as C
extensions, 1.2-1.4 times less CPU per SIP operation. Without the variable the wheel is pure
Python, which runs anywhere (and is what the unit tests import).
"""

from __future__ import annotations

import os
from pathlib import Path

from setuptools import setup

#: Left interpreted: the entry point (argument handling, runs once) and params.py, whose Params
#: subclasses tuple (mypyc can compile that only with a runtime dependency on mypy_extensions).
INTERPRETED = {"pbx_runtime/__main__.py", "pbx_runtime/sip/params.py"}


def compiled_modules() -> list[str]:
    return sorted(
        path.as_posix()
        for path in Path("pbx_runtime").rglob("*.py")
        if path.as_posix() not in INTERPRETED
    )


ext_modules = []
if os.environ.get("PBX_RUNTIME_COMPILE") == "1":
    from mypyc.build import mypycify

    ext_modules = mypycify(
        compiled_modules(), opt_level="3", debug_level="0", group_name="pbx_runtime"
    )

setup(ext_modules=ext_modules)
