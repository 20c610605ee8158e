"""End to end: an invalid inventory stops site.yml before any host is touched."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.integration.support import ROOT, run


def edit_tenant(inventory: Path, slug: str, change: dict[str, object]) -> None:
    path = inventory / "tenants" / f"{slug}.yml"
    tenant = yaml.safe_load(path.read_text())
    for key, value in change.items():
        if value is None:
            tenant.pop(key)
        else:
            tenant[key] = value
    path.write_text(yaml.safe_dump(tenant))


def point_hosts_nowhere(inventory: Path) -> None:
    """Any connection attempt would fail loudly as UNREACHABLE, so none must happen."""
    hosts = inventory / "hosts.yml"
    data = yaml.safe_load(hosts.read_text())
    for host in data["all"]["children"]["pbx_hosts"]["hosts"].values():
        host["ansible_host"] = "127.0.0.1"
        host["ansible_port"] = 9  # discard port: nothing listens there
    hosts.write_text(yaml.safe_dump(data))


BREAKAGES = {
    "overlapping subnets": (
        "globex", {"subnet": "172.20.0.0/16"}, "tenants/globex.yml (tenant globex): subnet:"),
    "duplicate VNI": (
        "globex", {"segment": {"type": "vxlan", "vni": 1001}},
        "tenants/globex.yml (tenant globex): segment.vni:"),
    "duplicate VLAN id": (
        "globex", {"segment": {"type": "vlan", "vlan": 101, "parent": "eth1"}},
        "tenants/globex.yml (tenant globex): segment.vlan:"),
    "duplicate domain": (
        "globex", {"sip_domain": "acme.lab.bulkhead.test"},
        "tenants/globex.yml (tenant globex): sip_domain:"),
    "bad slug": ("globex", {"slug": "Globex!"}, "tenants/globex.yml (tenant ?): slug:"),
    "address outside subnet": (
        "acme", {"addresses": {"pbx1": "172.20.9.11", "pbx2": "172.20.1.12"}},
        "tenants/acme.yml (tenant acme): addresses.pbx1:"),
    "missing field": (
        "acme", {"sip_domain": None},
        "tenants/acme.yml (tenant acme): sip_domain: required field is missing"),
    "extension without a secret": (
        "acme", {"extensions": [{"number": 1001}, {"number": 1009, "display_name": "New"}]},
        "tenants/acme.yml (tenant acme): extensions[1]: secret pbx_extension_secrets.acme.1009:"
        " required field is missing"),
    "quota out of range": (
        "globex", {"runtime": {"cpu_quota": 1000}},
        "tenants/globex.yml (tenant globex): runtime.cpu_quota: 1000 is out of range 5..400"),
}


@pytest.mark.parametrize("name", sorted(BREAKAGES))
def test_invalid_inventory_stops_before_hosts(lab_inventory_copy: Path, name: str) -> None:
    slug, change, expected = BREAKAGES[name]
    if name == "duplicate VLAN id":  # both tenants on VLAN 101 of the same parent
        edit_tenant(lab_inventory_copy, "acme", change)
    edit_tenant(lab_inventory_copy, slug, change)
    point_hosts_nowhere(lab_inventory_copy)

    result = run("ansible-playbook", "-i", lab_inventory_copy, ROOT / "playbooks" / "site.yml")

    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert expected in out
    assert "UNREACHABLE" not in out
    assert "TASK [base" not in out


def test_valid_inventory_passes_validation(lab_inventory_copy: Path) -> None:
    result = run("ansible-playbook", "-i", lab_inventory_copy,
                 ROOT / "playbooks" / "validate_inventory.yml")
    assert result.returncode == 0, result.stdout
    assert "failed=0" in result.stdout


def test_broken_tenant_yaml_fails_naming_the_file(lab_inventory_copy: Path) -> None:
    (lab_inventory_copy / "tenants" / "acme.yml").write_text("slug: acme\nid: [1\n")
    result = run("ansible-inventory", "-i", lab_inventory_copy, "--list")
    assert result.returncode != 0
    assert "tenants/acme.yml: cannot read YAML" in result.stderr


def test_example_inventory_is_valid() -> None:
    result = run("ansible-playbook", "-i", ROOT / "inventories" / "example",
                 ROOT / "playbooks" / "validate_inventory.yml")
    assert result.returncode == 0, result.stdout
