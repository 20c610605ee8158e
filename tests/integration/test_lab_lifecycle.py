"""The lab boots real systemd hosts reached over SSH with pinned keys, and leaves no trace."""

from __future__ import annotations

import os
from pathlib import Path

import paramiko
import pytest
import yaml

from tests.integration.support import LABCTL, PYTHON, ROOT, needs_root, run

pytestmark = needs_root
# Processes a lab could leave behind: container monitors, the hosts' init and sshd.
LAB_PROCESSES = ("conmon", "/sbin/init", "sshd", "runc")


def snapshot() -> dict[str, object]:
    procs = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if any(name in cmdline for name in LAB_PROCESSES):
            procs.append(cmdline.strip())
    return {
        "netns": sorted(run("ip", "netns", "list", check=True).stdout.split("\n")),
        "links": sorted(line.split()[0] for line in
                        run("ip", "-br", "link", check=True).stdout.splitlines()),
        "containers": run("podman", "ps", "-a", "--format", "{{.Names}}",
                          check=True).stdout.split(),
        "processes": sorted(procs),
    }


@pytest.fixture
def test_lab(tmp_path: Path) -> Path:
    """A one-host lab with its own prefix, bridge and addresses, beside any other lab."""
    inventory = tmp_path / "inventory"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    (inventory / "tenants").mkdir()
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"pbx_hosts": {
        "hosts": {"pbx1": {"ansible_host": "10.254.2.11"}}}}}}))
    (inventory / "group_vars" / "all" / "lab.yml").write_text(yaml.safe_dump({
        "lab_prefix": "bt", "lab_bridge": "btlab0", "lab_gateway": "10.254.2.1/24",
        "lab_sites_address": "10.254.2.2/24"}))
    (inventory / "tenants" / "acme.yml").write_text(
        (ROOT / "inventories" / "lab" / "tenants" / "acme.yml").read_text())
    return inventory


def labctl(inventory: Path, command: str) -> str:
    result = run(PYTHON, LABCTL, f"--inventory={inventory}", command)
    assert result.returncode == 0, result.stderr
    return result.stdout


def ssh_client(known_hosts: Path) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return client


def test_up_reaches_pinned_hosts_and_down_leaves_no_trace(test_lab: Path) -> None:
    labctl(test_lab, "down")  # a leftover from an interrupted run must not skew the snapshot
    before = snapshot()
    try:
        out = labctl(test_lab, "up")
        assert "pbx1 10.254.2.11 ssh ok (pinned host key), systemd running" in out
        assert (Path("/run/netns") / "bt-site-acme").exists()

        ssh_dir = ROOT / ".lab" / "bt" / "ssh"
        client = ssh_client(ssh_dir / "known_hosts")
        client.connect("10.254.2.11", username="root", key_filename=str(ssh_dir / "id_ed25519"),
                       allow_agent=False, look_for_keys=False, timeout=10)
        _, stdout, _ = client.exec_command("cat /proc/1/comm")
        assert stdout.read().decode().strip() == "systemd"
        client.close()

        # The same host presenting a key other than the pinned one is refused.
        other = paramiko.Ed25519Key.from_private_key_file(str(ssh_dir / "id_ed25519"))
        forged = test_lab / "forged_known_hosts"
        forged.write_text(f"10.254.2.11 {other.get_name()} {other.get_base64()}\n")
        client = ssh_client(forged)
        with pytest.raises(paramiko.BadHostKeyException):
            client.connect("10.254.2.11", username="root",
                           key_filename=str(ssh_dir / "id_ed25519"),
                           allow_agent=False, look_for_keys=False, timeout=10)
        client.close()
    finally:
        labctl(test_lab, "down")
    assert snapshot() == before


def test_down_without_a_lab_succeeds(test_lab: Path) -> None:
    labctl(test_lab, "down")
    assert "bt down" in labctl(test_lab, "down")
