"""Integration tests run real tools (ansible-playbook, podman, ip) as root on this machine."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = VENV_BIN / "python"
LABCTL = ROOT / "lab" / "labctl.py"
LAB_INVENTORY = ROOT / "inventories" / "lab"


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


def one_host_inventory(inventory: Path, prefix: str, net: int, acme: dict[str, Any],
                       settings: dict[str, Any] | None = None,
                       group_vars: tuple[str, ...] = ()) -> Path:  # fmt: skip
    """A lab inventory of its own: pbx1 at 10.254.<net>.11 (prefix *prefix*) and the lab's
    acme with the *acme* changes, plus *settings* in group_vars/all and the lab's
    group_vars/all files named in *group_vars* linked in."""
    (inventory / "group_vars" / "all").mkdir(parents=True)
    (inventory / "tenants").mkdir()
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"pbx_hosts": {
        "hosts": {"pbx1": {"ansible_host": f"10.254.{net}.11"}}}}}}))  # fmt: skip
    (inventory / "group_vars" / "all" / "lab.yml").write_text(yaml.safe_dump({
        "lab_prefix": prefix, "lab_bridge": f"{prefix}lab0",
        "lab_gateway": f"10.254.{net}.1/24", "lab_sites_address": f"10.254.{net}.2/24",
        "lab_state_dir": str(ROOT / ".lab" / prefix),
        "pbx_management_networks": [f"10.254.{net}.0/24"], **(settings or {})}))  # fmt: skip
    for name in group_vars:
        (inventory / "group_vars" / "all" / name).symlink_to(
            LAB_INVENTORY / "group_vars" / "all" / name
        )
    (inventory / "group_vars" / "pbx_hosts").symlink_to(LAB_INVENTORY / "group_vars" / "pbx_hosts")
    (inventory / "tenants.yml").write_text("plugin: tenants\n")
    tenant = yaml.safe_load((LAB_INVENTORY / "tenants" / "acme.yml").read_text())
    tenant.update(acme)
    (inventory / "tenants" / "acme.yml").write_text(
        yaml.safe_dump({k: v for k, v in tenant.items() if v is not None})
    )
    return inventory


@contextlib.contextmanager
def booted_lab(inventory: Path) -> Iterator[Path]:
    """The inventory's lab hosts for the ``with`` block; always torn down afterwards."""
    try:
        up = run(PYTHON, LABCTL, f"--inventory={inventory}", "up")
        assert up.returncode == 0, up.stderr
        yield inventory
    finally:
        run(PYTHON, LABCTL, f"--inventory={inventory}", "down")
