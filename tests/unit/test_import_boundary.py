"""House rule 7 for the whole runtime: only ``pbx_runtime/transport/`` and ``__main__.py`` may
import asyncio, socket, ssl, time (or selectors/threading); everything else is sans-I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pbx_runtime

FORBIDDEN = {"asyncio", "socket", "ssl", "time", "selectors", "threading", "subprocess", "uvloop"}
ROOT = Path(pbx_runtime.__file__).resolve().parent
ALLOWED = {ROOT / "__main__.py", *(ROOT / "transport").glob("*.py")}
MODULES = sorted(p for p in ROOT.rglob("*.py") if p not in ALLOWED)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__":
            names.add("__import__")
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
            names.add("importlib.import_module")
    return names


def test_every_package_is_covered() -> None:
    packages = {p.parent.name for p in MODULES}
    assert {"sip", "registrar", "policy", "b2bua", "pbx_runtime"} <= packages
    assert ROOT / "core.py" in MODULES and ROOT / "config.py" in MODULES


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_io_imports_outside_the_transport(module: Path) -> None:
    bad = _imports(module) & (FORBIDDEN | {"__import__", "importlib.import_module"})
    assert not bad, f"{module.relative_to(ROOT)} imports {sorted(bad)}"


def test_lower_layers_do_not_import_higher_ones() -> None:
    """DESIGN §4: imports flow down (transport → core → b2bua/registrar → sip/policy/config)."""
    higher = {
        "sip": ("pbx_runtime.registrar", "pbx_runtime.b2bua", "pbx_runtime.core",
                "pbx_runtime.transport", "pbx_runtime.config"),
        "registrar": ("pbx_runtime.b2bua", "pbx_runtime.core", "pbx_runtime.transport"),
        "b2bua": ("pbx_runtime.core", "pbx_runtime.transport"),
        "policy": ("pbx_runtime.registrar", "pbx_runtime.b2bua", "pbx_runtime.core"),
    }  # fmt: skip
    for module in MODULES:
        forbidden = higher.get(module.parent.name, ())
        if module.name == "core.py":
            forbidden = ("pbx_runtime.transport",)
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(forbidden), f"{module.name}: {node.module}"
