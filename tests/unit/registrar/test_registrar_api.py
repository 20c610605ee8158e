"""The registrar package's public API is exported."""

from __future__ import annotations

import pbx_runtime.policy
import pbx_runtime.registrar


def test_public_api_is_exported() -> None:
    for package in (pbx_runtime.registrar, pbx_runtime.policy):
        for name in package.__all__:
            assert hasattr(package, name), f"{package.__name__}.{name}"
