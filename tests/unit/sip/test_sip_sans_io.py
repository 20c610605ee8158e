"""House rule 7: pbx_runtime.sip is sans-I/O — no asyncio, socket, ssl or time, anywhere."""

from __future__ import annotations

import ast
from pathlib import Path

import pbx_runtime.sip

FORBIDDEN = {"asyncio", "socket", "ssl", "time", "selectors", "threading", "subprocess"}
PACKAGE = Path(pbx_runtime.sip.__file__).resolve().parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__":
            names.add("__import__")
    return names


def test_no_io_imports_in_sip_package() -> None:
    modules = sorted(PACKAGE.glob("*.py"))
    assert len(modules) >= 8
    for module in modules:
        bad = _imports(module) & (FORBIDDEN | {"__import__"})
        assert not bad, f"{module.name} imports {sorted(bad)}"


def test_public_api_is_exported() -> None:
    for name in pbx_runtime.sip.__all__:
        assert hasattr(pbx_runtime.sip, name), name
