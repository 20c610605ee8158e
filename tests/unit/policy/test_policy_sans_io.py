"""House rule 7 for the layers built here: registrar/, policy/ and events.py do no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pbx_runtime

FORBIDDEN = {"asyncio", "socket", "ssl", "time", "selectors", "threading", "subprocess", "os"}
ROOT = Path(pbx_runtime.__file__).resolve().parent
MODULES = [
    *sorted((ROOT / "registrar").glob("*.py")),
    *sorted((ROOT / "policy").glob("*.py")),
    ROOT / "events.py",
]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("__import__", "open"):
            names.add(node.func.id)  # type: ignore[attr-defined]
    return names


@pytest.mark.parametrize("module", MODULES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_io_imports(module: Path) -> None:
    bad = _imports(module) & (FORBIDDEN | {"__import__", "open"})
    assert not bad, f"{module.name} uses {sorted(bad)}"


def test_policy_does_not_import_higher_layers() -> None:
    for module in sorted((ROOT / "policy").glob("*.py")):
        imported = {
            node.module
            for node in ast.walk(ast.parse(module.read_text(encoding="utf-8")))
            if isinstance(node, ast.ImportFrom) and node.module
        }
        assert not any(name.startswith("pbx_runtime.registrar") for name in imported), module
