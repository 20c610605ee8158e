"""Safe apply of the host firewall on a real lab host: nft -c first, commit-confirm after."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.support import ROOT, booted_lab, needs_root, one_host_inventory, run

pytestmark = needs_root
RULESET = "nft -s -t list ruleset | sha256sum; sha256sum /etc/bulkhead/firewall/host.nft"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One converged host with one tenant, in a lab of its own (prefix bf)."""
    # No runtime here, so no extensions and no extension secrets either.
    inventory = one_host_inventory(tmp_path_factory.mktemp("firewall") / "inventory", "bf", 6,
                                   {"addresses": {"pbx1": "172.20.1.11"}, "extensions": None})
    with booted_lab(inventory):
        converge = apply(inventory)
        assert converge.returncode == 0, converge.stdout[-3000:]
        yield inventory


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
