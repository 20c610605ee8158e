"""Which build of the runtime the unit tests exercise.

`make unit` imports the sources of this checkout; `make unit-compiled` runs the same tests
against the mypyc-compiled wheel the pbx_runtime role ships (PBX_RUNTIME_EXPECT_COMPILED=1).
Either way this fails when the other build was picked up by mistake.
"""

from __future__ import annotations

import os
from pathlib import Path

import pbx_runtime
from pbx_runtime.sip import params, parser, uri
from pbx_runtime.transport import runtime

ROOT = Path(__file__).resolve().parents[2]


def test_the_expected_build_is_under_test() -> None:
    hot = [pbx_runtime, parser, runtime, uri]
    if os.environ.get("PBX_RUNTIME_EXPECT_COMPILED") == "1":
        assert pbx_runtime.COMPILED
        assert all(Path(m.__file__ or "").suffix == ".so" for m in hot)
        assert Path(params.__file__ or "").suffix == ".py"  # left interpreted (setup.py)
    else:
        assert not pbx_runtime.COMPILED
        assert all(Path(m.__file__ or "").is_relative_to(ROOT / "pbx_runtime") for m in hot)
