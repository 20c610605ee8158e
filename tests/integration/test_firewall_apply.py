"""Safe apply of the host firewall on a real lab host: nft -c first, commit-confirm after."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.support import ROOT, needs_root, run

pytestmark = needs_root
PYTHON = ROOT / ".venv" / "bin" / "python"
LABCTL = ROOT / "lab" / "labctl.py"
RULESET = "nft -s -t list ruleset | sha256sum; sha256sum /etc/bulkhead/firewall/host.nft"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One converged host with one tenant, in a lab of its own (prefix bf)."""
    inventory = tmp_path_factory.mktemp("firewall") / "inventory"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    (inventory / "tenants").mkdir()
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"pbx_hosts": {
        "hosts": {"pbx1": {"ansible_host": "10.254.6.11"}}}}}}))
    (inventory / "group_vars" / "all" / "lab.yml").write_text(yaml.safe_dump({
        "lab_prefix": "bf", "lab_bridge": "bflab0", "lab_gateway": "10.254.6.1/24",
        "lab_sites_address": "10.254.6.2/24", "lab_state_dir": str(ROOT / ".lab" / "bf"),
        "pbx_management_networks": ["10.254.6.0/24"]}))
    (inventory / "group_vars" / "pbx_hosts").symlink_to(
        ROOT / "inventories" / "lab" / "group_vars" / "pbx_hosts")
    (inventory / "tenants.yml").write_text("plugin: tenants\n")
    acme = yaml.safe_load((ROOT / "inventories" / "lab" / "tenants" / "acme.yml").read_text())
    acme["addresses"] = {"pbx1": "172.20.1.11"}
    acme.pop("extensions")  # no runtime here, so no extension secrets either
    (inventory / "tenants" / "acme.yml").write_text(yaml.safe_dump(acme))
    try:
        up = run(PYTHON, LABCTL, f"--inventory={inventory}", "up")
        assert up.returncode == 0, up.stderr
        converge = apply(inventory)
        assert converge.returncode == 0, converge.stdout[-3000:]
        yield inventory
    finally:
        run(PYTHON, LABCTL, f"--inventory={inventory}", "down")


def apply(inventory: Path, **extra: object) -> object:
    args = ["ansible-playbook", "-i", str(inventory)]
    if extra:
        args += ["-e", json.dumps(extra)]
    for play in ("validate_inventory", "tenant_network", "firewall"):
        args.append(str(ROOT / "playbooks" / f"{play}.yml"))
    return run(*args)


def on_host(inventory: Path, command: str) -> str:
    result = run("ansible", "-i", str(inventory), "pbx1", "-m", "shell", "-a", command, "-o")
    assert result.returncode == 0, result.stdout
    return result.stdout.split("(stdout)", 1)[-1].strip()


def test_ruleset_failing_nft_check_leaves_the_running_ruleset_unchanged(lab: Path) -> None:
    before = on_host(lab, RULESET)
    result = apply(lab, firewall_host_input_extra_rules=["this is not an nft rule"])
    assert result.returncode != 0
    assert "failed to validate" in result.stdout
    assert on_host(lab, RULESET) == before


def test_ruleset_cutting_off_ssh_is_rolled_back_within_the_window(lab: Path) -> None:
    before = on_host(lab, RULESET)
    started = time.monotonic()
    result = apply(lab, pbx_management_networks=["192.0.2.0/24"],
                   firewall_confirm_timeout=20, firewall_confirm_reconnect_timeout=8)
    assert result.returncode != 0
    assert "The new host ruleset cut this controller off" in result.stdout
    # The host comes back by itself once the window has passed: no action from here.
    deadline = started + 20 + 30
    while time.monotonic() < deadline:
        ping = run("ansible", "-i", str(lab), "pbx1", "-m", "ping", "-o")
        if ping.returncode == 0:
            break
        time.sleep(2)
    else:
        pytest.fail("host not reachable again after the rollback window")
    assert on_host(lab, RULESET) == before
    assert "rolled back" in on_host(lab, "journalctl -t bulkhead-firewall --no-pager")
