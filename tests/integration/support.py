"""Integration tests run real tools (ansible-playbook, podman, ip) as root on this machine."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"


def ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        CONTAINERS_CONF=str(ROOT / "lab" / "containers.conf"),
        PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
    )
    return env


def run(*args: str | Path, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=ansible_env(), cwd=ROOT,
        check=check, timeout=600,
    )


@pytest.fixture
def lab_inventory_copy(tmp_path: Path) -> Path:
    """A private copy of the lab inventory that a test may break, with fresh random secrets
    for its extensions in place of the lab's (which live beside the lab, not the copy)."""
    copy = tmp_path / "inventory"
    shutil.copytree(ROOT / "inventories" / "lab", copy, symlinks=False)
    tenants = [yaml.safe_load(path.read_text()) for path in (copy / "tenants").glob("*.yml")]
    value = {t["slug"]: {str(e["number"]): secrets.token_urlsafe(18) for e in t["extensions"]}
             for t in tenants if t.get("extensions")}  # fmt: skip
    (copy / "group_vars" / "all" / "extensions.yml").write_text(
        yaml.safe_dump({"pbx_extension_secrets": value})
    )
    return copy


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, podman)")
