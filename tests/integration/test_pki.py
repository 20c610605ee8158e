"""The pki role end to end on lab hosts of its own: chains, idempotence, check mode, revocation.

Boots a two-host lab (prefix "bq", bridge bqlab0, 10.254.4.0/24) beside any other lab: acme is
placed on both hosts, globex on pbx1 only. The PKI lives in .lab/bq/pki, the CA passphrase in
.lab/bq/pki-passphrase (written by labctl).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import paramiko
import pytest
import yaml

from tests.integration.support import LABCTL, PYTHON, ROOT, needs_root, run

pytestmark = needs_root
PREFIX = "bq"
STATE = ROOT / ".lab" / PREFIX
PKI = STATE / "pki"
HOSTS = {"pbx1": "10.254.4.11", "pbx2": "10.254.4.12"}
TENANTS = {
    "acme": {"slug": "acme", "id": 1, "sip_domain": "acme.lab.bulkhead.test", "state": "present",
             "segment": {"type": "vxlan", "vni": 4001}, "subnet": "172.20.1.0/24",
             "addresses": {"pbx1": "172.20.1.11", "pbx2": "172.20.1.12"}},
    "globex": {"slug": "globex", "id": 2, "sip_domain": "globex.lab.bulkhead.test",
               "state": "present", "segment": {"type": "vxlan", "vni": 4002},
               "subnet": "172.20.2.0/24", "addresses": {"pbx1": "172.20.2.11"}},
}
TLS = "/etc/bulkhead/tenants/{}/tls"


def write_tenant(inventory: Path, tenant: dict[str, object]) -> None:
    (inventory / "tenants" / f"{tenant['slug']}.yml").write_text(yaml.safe_dump(tenant))


@pytest.fixture
def pki_lab(tmp_path: Path) -> Path:
    """A lab inventory of its own, with the lab's PKI and connection settings."""
    inventory = tmp_path / "inventory"
    lab = ROOT / "inventories" / "lab"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    (inventory / "group_vars" / "pbx_hosts").mkdir(parents=True)
    (inventory / "tenants").mkdir()
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"pbx_hosts": {
        "hosts": {name: {"ansible_host": address} for name, address in HOSTS.items()}}}}}))
    (inventory / "group_vars" / "all" / "lab.yml").write_text(yaml.safe_dump({
        "lab_prefix": PREFIX, "lab_bridge": f"{PREFIX}lab0", "lab_gateway": "10.254.4.1/24",
        "lab_state_dir": str(STATE), "pbx_management_networks": ["10.254.4.0/24"]}))
    for name in ("all/pki.yml", "pbx_hosts/connection.yml"):
        shutil.copy(lab / "group_vars" / name, inventory / "group_vars" / name)
    shutil.copy(lab / "tenants.yml", inventory / "tenants.yml")
    for tenant in TENANTS.values():
        write_tenant(inventory, tenant)
    return inventory


def labctl(inventory: Path, command: str) -> None:
    result = run(PYTHON, LABCTL, f"--inventory={inventory}", command)
    assert result.returncode == 0, result.stderr


def converge(inventory: Path, *extra: str, validate: bool = True) -> dict[str, int]:
    """Run (validation and) the pki play; return changed=N per host from the recaps."""
    plays = [ROOT / "playbooks" / name
             for name in (["validate_inventory.yml"] if validate else []) + ["pki.yml"]]
    result = run("ansible-playbook", "-i", inventory, *plays, *extra)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    changed: dict[str, int] = {}
    for recap in result.stdout.split("PLAY RECAP")[1:]:  # one per playbook
        for m in re.finditer(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", recap, re.MULTILINE):
            changed[m[1]] = changed.get(m[1], 0) + int(m[2])
    return changed


def ssh(host: str, command: str) -> str:
    client = paramiko.SSHClient()
    client.load_host_keys(str(STATE / "ssh" / "known_hosts"))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(HOSTS[host], username="root", key_filename=str(STATE / "ssh" / "id_ed25519"),
                       allow_agent=False, look_for_keys=False, timeout=10)
        _, out, _ = client.exec_command(command, timeout=60)
        return out.read().decode()
    finally:
        client.close()


def verify(cert: Path, intermediate: Path, *crl_args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", "verify", *crl_args, "-CAfile", PKI / "root" / "ca.crt",
                           "-untrusted", intermediate, cert], capture_output=True, text=True)


def tls_listing(host: str, slug: str) -> str:
    """Names, modes, owners, mtimes and digests of a tenant's tls directory on a host."""
    tls = TLS.format(slug)
    return ssh(host, f"test -d {tls} && cd {tls} && find . -printf '%p %m %u %g %T@\\n' | sort"
                     f" && sha256sum * || echo missing")


def test_pki_converges_idempotently_and_revokes_absent_tenants(pki_lab: Path,
                                                                tmp_path: Path) -> None:
    labctl(pki_lab, "down")  # leftovers of an interrupted run
    shutil.rmtree(PKI, ignore_errors=True)
    try:
        labctl(pki_lab, "up")
        assert sum(converge(pki_lab).values()) > 0
        # A second run and a check-mode run must both leave the converged lab alone, so they
        # run side by side (the inventory is unchanged since the first run validated it).
        with ThreadPoolExecutor(max_workers=2) as pool:
            again = pool.submit(converge, pki_lab, validate=False)
            check = pool.submit(converge, pki_lab, "--check", "--diff", validate=False)
        assert again.result() == {"pbx1": 0, "pbx2": 0}
        assert check.result() == {"pbx1": 0, "pbx2": 0}

        # Controller: keys stay private, the root key is encrypted.
        assert (PKI / "root" / "ca.key").stat().st_mode & 0o777 == 0o600
        assert (PKI / "tenants" / "acme").stat().st_mode & 0o777 == 0o700
        assert "ENCRYPTED PRIVATE KEY" in (PKI / "root" / "ca.key").read_text()

        # Hosts: each gets its own tenants' material only; the server key is the tenant's.
        for host, slug in (("pbx1", "acme"), ("pbx1", "globex"), ("pbx2", "acme")):
            listing = tls_listing(host, slug)
            assert f"./server.key 600 tn-{slug} tn-{slug}" in listing, listing
            for name in ("server.crt", "chain.pem", "crl.pem", "provisioning.pub"):
                assert f"./{name} 644 root root" in listing, listing
            assert ssh(host, f"stat -c '%a %U %G' {TLS.format(slug)}").split() == \
                ["750", "root", f"tn-{slug}"]
            assert ssh(host, f"getent passwd tn-{slug} | cut -d: -f6,7").strip() == \
                "/nonexistent:/usr/sbin/nologin"
        assert tls_listing("pbx2", "globex").strip() == "missing"

        # The acme server certificate (as deployed) chains to the root only through acme's CA.
        acme_crt = tmp_path / "acme-server.crt"
        acme_crt.write_text(ssh("pbx2", f"cat {TLS.format('acme')}/server.crt"))
        acme_ca, globex_ca = (PKI / "tenants" / slug / "ca.crt" for slug in ("acme", "globex"))
        assert verify(acme_crt, acme_ca).returncode == 0
        assert verify(acme_crt, globex_ca).returncode != 0
        crl = str(PKI / "tenants" / "acme" / "crl.pem")
        assert verify(acme_crt, acme_ca, "-crl_check", "-CRLfile", crl).returncode == 0

        # acme leaves: its certificate is revoked and its material leaves every host.
        globex_before = tls_listing("pbx1", "globex")
        write_tenant(pki_lab, {**TENANTS["acme"], "state": "absent"})
        converge(pki_lab)
        revoked = verify(acme_crt, acme_ca, "-crl_check", "-CRLfile", crl)
        assert revoked.returncode != 0
        assert "certificate revoked" in revoked.stdout + revoked.stderr
        assert not (PKI / "tenants" / "acme" / "server.key").exists()
        for host in HOSTS:
            assert tls_listing(host, "acme").strip() == "missing"
        assert tls_listing("pbx1", "globex") == globex_before
    finally:
        labctl(pki_lab, "down")
