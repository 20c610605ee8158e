"""The public API of pbx_runtime.sip is importable (sans-I/O: test_import_boundary.py)."""

from __future__ import annotations

import pbx_runtime.sip


def test_public_api_is_exported() -> None:
    for name in pbx_runtime.sip.__all__:
        assert hasattr(pbx_runtime.sip, name), name
