"""Build, boot and tear down the embedded lab: systemd PBX hosts reached over SSH.

The topology comes from the lab inventory itself (inventories/lab): each host in `pbx_hosts`
becomes a podman container running systemd in its own network namespace, with `ansible_host`
on a veth attached to the lab bridge; each lab tenant gets a "site" namespace (its office
network). Every object the lab creates carries the `bh` prefix or the `bulkhead.lab` label, so
`down` can remove exactly what `up` made and nothing else.

    python lab/labctl.py [--inventory DIR] up | down | status | image

Several labs can coexist (the README's lab, molecule's, the tests'): each inventory sets its own
`lab_prefix`, bridge and addresses, and names, labels and state are keyed on that prefix.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import inspect
import ipaddress
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko
import phones  # lab/phones.py, beside this script
import yaml

ROOT = Path(__file__).resolve().parent.parent
LAB_DIR = Path(__file__).resolve().parent
PACKAGES_FILE = LAB_DIR / "image-packages.txt"
IMAGE_REPO = "localhost/bulkhead-lab"
MIRROR = "http://deb.debian.org/debian"
READY_TIMEOUT = 90.0

os.environ.setdefault("CONTAINERS_CONF", str(LAB_DIR / "containers.conf"))


@dataclass(frozen=True)
class LabHost:
    name: str
    address: str  # ansible_host, on the lab bridge
    netns: str  # also the container's name and the host-side veth's name

    @property
    def host_veth(self) -> str:
        return self.netns[:15]


@dataclass(frozen=True)
class Site:
    """A tenant's office network: a namespace on the tenant's VXLAN segment, phones live here."""

    netns: str
    link: str  # VXLAN link, created on the lab bridge's address, then moved into the netns
    vni: int | None
    address: ipaddress.IPv4Interface  # the 100th address of the tenant subnet
    peers: tuple[str, ...]  # underlay addresses of the PBX hosts serving the tenant
    slug: str = ""
    domain: str = ""
    servers: tuple[tuple[str, str], ...] = ()  # (PBX host, tenant address on it)
    extensions: tuple[str, ...] = ()  # every listed extension number (present or absent)
    phones: tuple[str, ...] = ()  # the present ones


@dataclass(frozen=True)
class Lab:
    prefix: str
    bridge: str
    gateway: ipaddress.IPv4Interface
    sites_address: ipaddress.IPv4Interface  # VXLAN endpoint of all sites, on the lab bridge
    hosts: tuple[LabHost, ...]
    sites: tuple[Site, ...]  # one per lab tenant

    @property
    def sites_netns(self) -> str:
        """Holds the sites' VXLAN sockets, so labs side by side can reuse the same VNIs."""
        return f"{self.prefix}-sites"

    @property
    def label(self) -> str:
        return f"bulkhead.lab={self.prefix}"

    @property
    def state_dir(self) -> Path:
        return ROOT / ".lab" / self.prefix

    @property
    def secrets_file(self) -> Path:
        """Extension secrets, slug -> number -> secret (the lab's pbx_extension_secrets)."""
        return self.state_dir / "extension-secrets.yml"

    @property
    def ssh_dir(self) -> Path:
        return self.state_dir / "ssh"


def load_lab(inventory: Path) -> Lab:
    """Read the lab topology from a lab inventory (the single source of truth)."""
    hosts_yml = yaml.safe_load((inventory / "hosts.yml").read_text())
    pbx = hosts_yml["all"]["children"]["pbx_hosts"]["hosts"]
    settings = yaml.safe_load((inventory / "group_vars" / "all" / "lab.yml").read_text())
    prefix = settings["lab_prefix"]
    hosts = tuple(LabHost(name, str(v["ansible_host"]), f"{prefix}-{name}")
                  for name, v in sorted(pbx.items()))
    underlay = {host.name: host.address for host in hosts}
    gateway = ipaddress.IPv4Interface(settings["lab_gateway"])
    sites = []
    for path in sorted((inventory / "tenants").glob("*.yml")):
        tenant = yaml.safe_load(path.read_text())
        subnet = ipaddress.ip_network(tenant["subnet"])
        extensions = tenant.get("extensions", [])
        sites.append(Site(
            netns=f"{prefix}-site-{tenant['slug']}",
            link=f"{prefix}-vs{tenant['id']}",
            vni=tenant["segment"].get("vni"),
            address=ipaddress.IPv4Interface(f"{subnet[100]}/{subnet.prefixlen}"),
            peers=tuple(underlay[h] for h in sorted(tenant["addresses"]) if h in underlay),
            slug=tenant["slug"],
            domain=tenant["sip_domain"],
            servers=tuple(sorted((h, str(a)) for h, a in tenant["addresses"].items())),
            extensions=tuple(str(e["number"]) for e in extensions),
            phones=tuple(str(e["number"]) for e in extensions
                         if e.get("state", "present") == "present"),
        ))
    return Lab(
        prefix=prefix,
        bridge=settings["lab_bridge"],
        gateway=gateway,
        sites_address=ipaddress.IPv4Interface(settings.get(
            "lab_sites_address", f"{gateway.ip + 1}/{gateway.network.prefixlen}")),
        hosts=hosts,
        sites=tuple(sites),
    )


def run(*args: str, check: bool = True, quiet: bool = False, **kw: object) -> str:
    result = subprocess.run(args, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if check and result.returncode != 0:
        raise SystemExit(f"lab: {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    if not quiet and result.returncode != 0:
        print(f"lab: note: {' '.join(args)}: {result.stderr.strip()}", file=sys.stderr)
    return result.stdout


def exists(*args: str) -> bool:
    return subprocess.run(args, capture_output=True).returncode == 0


# --- image -------------------------------------------------------------------------------


def image_packages() -> list[str]:
    lines = PACKAGES_FILE.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def image_tag() -> str:
    """The tag changes whenever the package list or this build recipe changes."""
    digest = hashlib.sha256()
    digest.update("\n".join(image_packages()).encode())
    digest.update(inspect.getsource(build_image).encode())
    digest.update(SSHD_CONFIG.encode())
    return f"{IMAGE_REPO}:{digest.hexdigest()[:12]}"


SSHD_CONFIG = """\
# Lab sshd: keys only, root by key (Ansible's lab user), host key placed by labctl.
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
HostKey /etc/ssh/ssh_host_ed25519_key
UsePAM yes
"""


def build_image(tag: str) -> None:
    with tempfile.TemporaryDirectory(prefix="bh-rootfs-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        print(f"lab: debootstrap Debian 12 into {rootfs} (about a minute) …")
        run("debootstrap", "--variant=minbase", f"--include={','.join(image_packages())}",
            "bookworm", str(rootfs), MIRROR)
        # Host keys are per lab host and placed at boot; the image must not carry any.
        for key in (rootfs / "etc" / "ssh").glob("ssh_host_*"):
            key.unlink()
        (rootfs / "etc" / "ssh" / "sshd_config.d" / "bulkhead-lab.conf").write_text(SSHD_CONFIG)
        # No consoles in a container; keep the unit set small and boot fast.
        # systemd-sysctl is masked because lab hosts share this machine's kernel: its defaults
        # would set host-wide kernel.* keys. The base role applies namespaced net.* keys itself.
        for unit in ("getty.target", "console-getty.service", "systemd-firstboot.service",
                     "systemd-sysctl.service"):
            (rootfs / "etc" / "systemd" / "system" / unit).symlink_to("/dev/null")
        (rootfs / "etc" / "machine-id").write_text("")
        (rootfs / "root" / ".ssh").mkdir(mode=0o700, exist_ok=True)
        shutil.rmtree(rootfs / "var" / "cache" / "apt" / "archives", ignore_errors=True)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        run("podman", "import", "--change", 'CMD ["/sbin/init"]', "-", tag, stdin=tar.stdout)
        tar.wait()


def ensure_image() -> str:
    tag = image_tag()
    if exists("podman", "image", "exists", tag):
        return tag
    build_image(tag)
    # Older lab images are unused from now on.
    for old in run("podman", "images", "--format", "{{.Repository}}:{{.Tag}}",
                   IMAGE_REPO).split():
        if old != tag:
            run("podman", "rmi", old, check=False)
    return tag


# --- keys --------------------------------------------------------------------------------


def ensure_client_key(lab: Lab) -> Path:
    lab.ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = lab.ssh_dir / "id_ed25519"
    if not key.exists():
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bulkhead-lab", "-f", str(key))
    return key


def make_host_key(lab: Lab, host: LabHost) -> Path:
    """A fresh host key per boot; its public half is what known_hosts pins."""
    key = lab.ssh_dir / f"host_{host.name}_ed25519"
    for path in (key, key.with_suffix(".pub")):
        path.unlink(missing_ok=True)
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", host.name, "-f", str(key))
    return key


def write_known_hosts(lab: Lab) -> None:
    lines = []
    for host in lab.hosts:
        pub = (lab.ssh_dir / f"host_{host.name}_ed25519.pub").read_text().split()
        lines.append(f"{host.address},{host.name} {pub[0]} {pub[1]}\n")
    (lab.ssh_dir / "known_hosts").write_text("".join(lines))


def ensure_pki_passphrase(lab: Lab) -> Path:
    """The lab's stand-in for the vaulted CA passphrase: random, made once, never committed."""
    lab.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = lab.state_dir / "pki-passphrase"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(32) + "\n")
    return path


def ensure_extension_secrets(lab: Lab) -> Path:
    """The lab's stand-in for the vaulted pbx_extension_secrets: one random secret per listed
    extension, kept across runs (phones keep their passwords), never committed."""
    path = lab.secrets_file
    old = yaml.safe_load(path.read_text()) if path.exists() else {}
    old = old if isinstance(old, dict) else {}
    new = {site.slug: {number: str(old.get(site.slug, {}).get(number)
                                   or secrets.token_urlsafe(18))
                       for number in site.extensions}
           for site in lab.sites if site.extensions}
    if new != old or not path.exists():
        partial = path.with_suffix(".tmp")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            yaml.safe_dump(new, handle)
        partial.replace(path)
    return path


# --- network -----------------------------------------------------------------------------


def ensure_netns(name: str) -> None:
    if not Path("/run/netns", name).exists():
        run("ip", "netns", "add", name)
    run("ip", "-n", name, "link", "set", "lo", "up")


def ensure_bridge(lab: Lab) -> None:
    if not exists("ip", "link", "show", lab.bridge):
        run("ip", "link", "add", lab.bridge, "type", "bridge")
        run("ip", "addr", "add", str(lab.gateway), "dev", lab.bridge)
    run("ip", "link", "set", lab.bridge, "up")


def ensure_bridge_port(lab: Lab, netns: str, address: str) -> None:
    """A namespace with `eth0` at `address` on the lab bridge (host-side veth named netns)."""
    ensure_netns(netns)
    veth = netns[:15]
    if exists("ip", "link", "show", veth):
        return
    tmp = f"{lab.prefix}-tmp"
    run("ip", "link", "add", veth, "type", "veth", "peer", "name", tmp)
    run("ip", "link", "set", tmp, "netns", netns)
    run("ip", "-n", netns, "link", "set", tmp, "name", "eth0")
    prefix = lab.gateway.network.prefixlen
    run("ip", "-n", netns, "addr", "add", f"{address}/{prefix}", "dev", "eth0")
    run("ip", "-n", netns, "link", "set", "eth0", "up")
    run("ip", "link", "set", veth, "master", lab.bridge, "up")


def ensure_site(lab: Lab, site: Site) -> None:
    """The site namespace, on its tenant's VXLAN segment and on nothing else."""
    ensure_netns(site.netns)
    if site.vni is None or exists("ip", "-n", site.netns, "link", "show", "seg0"):
        return
    run("ip", "-n", lab.sites_netns, "link", "add", site.link, "type", "vxlan",
        "id", str(site.vni), "local", str(lab.sites_address.ip), "dev", "eth0",
        "dstport", "4789", "nolearning")
    run("ip", "-n", lab.sites_netns, "link", "set", site.link, "netns", site.netns)
    run("ip", "-n", site.netns, "link", "set", site.link, "name", "seg0")
    for peer in site.peers:
        run("ip", "netns", "exec", site.netns, "bridge", "fdb", "append", "00:00:00:00:00:00",
            "dev", "seg0", "dst", peer)
    run("ip", "-n", site.netns, "addr", "add", str(site.address), "dev", "seg0")
    run("ip", "-n", site.netns, "link", "set", "seg0", "up")


# --- containers --------------------------------------------------------------------------


def start_host(lab: Lab, host: LabHost, tag: str, client_key: Path) -> None:
    state = run("podman", "container", "inspect", "--format", "{{.State.Status}}",
                host.netns, check=False, quiet=True).strip()
    if state == "running":
        return
    if state:
        run("podman", "rm", "-f", host.netns)
    host_key = make_host_key(lab, host)
    run("podman", "create", "--name", host.netns, "--hostname", host.name,
        "--label", lab.label, "--network", f"ns:/run/netns/{host.netns}",
        "--cap-add", "NET_ADMIN,SYS_ADMIN", "--systemd", "always",
        # Writable /proc/sys for the namespaced net.* sysctls the base role sets.
        "--security-opt", "systempaths=unconfined", tag, "/sbin/init")
    with tempfile.TemporaryDirectory() as tmp:
        seed = Path(tmp)
        (seed / "ssh_host_ed25519_key").write_bytes(host_key.read_bytes())
        (seed / "ssh_host_ed25519_key.pub").write_bytes(host_key.with_suffix(".pub").read_bytes())
        (seed / "authorized_keys").write_bytes(client_key.with_suffix(".pub").read_bytes())
        os.chmod(seed / "ssh_host_ed25519_key", 0o600)
        for name in ("ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"):
            run("podman", "cp", str(seed / name), f"{host.netns}:/etc/ssh/{name}")
        run("podman", "cp", str(seed / "authorized_keys"),
            f"{host.netns}:/root/.ssh/authorized_keys")
    run("podman", "start", host.netns)


def ssh(lab: Lab, host: LabHost, command: str, stdin: str = "") -> str:
    """Run one command over SSH, accepting only the host key pinned in the lab known_hosts."""
    client = paramiko.SSHClient()
    client.load_host_keys(str(lab.ssh_dir / "known_hosts"))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(host.address, username="root", key_filename=str(lab.ssh_dir / "id_ed25519"),
                       timeout=5, allow_agent=False, look_for_keys=False)
        into, out, _ = client.exec_command(command, timeout=60)
        into.write(stdin)
        into.channel.shutdown_write()
        return out.read().decode().strip()
    finally:
        client.close()


def wait_ready(lab: Lab, host: LabHost, deadline: float) -> str:
    """Prove the host answers SSH with its pinned key and that systemd finished booting."""
    last_error = ""
    while time.monotonic() < deadline:
        try:
            return ssh(lab, host, "systemctl is-system-running --wait")
        except (OSError, paramiko.SSHException) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(1)
    raise SystemExit(f"lab: {host.name} ({host.address}) not ready over SSH: {last_error}")


# --- commands ----------------------------------------------------------------------------


def up(lab: Lab) -> None:
    tag = ensure_image()
    client_key = ensure_client_key(lab)
    ensure_pki_passphrase(lab)
    ensure_extension_secrets(lab)
    ensure_bridge(lab)
    for host in lab.hosts:
        ensure_bridge_port(lab, host.netns, host.address)
        start_host(lab, host, tag, client_key)
    ensure_bridge_port(lab, lab.sites_netns, str(lab.sites_address.ip))
    for site in lab.sites:
        ensure_site(lab, site)
    write_known_hosts(lab)
    deadline = time.monotonic() + READY_TIMEOUT
    for host in lab.hosts:
        state = wait_ready(lab, host, deadline)
        print(f"lab: {host.name} {host.address} ssh ok (pinned host key), systemd {state}")
    for site in lab.sites:
        print(f"lab: site {site.netns} {site.address} on VNI {site.vni}")


def down(lab: Lab) -> None:
    """Remove every container, namespace and link the lab made; fine when there is no lab."""
    ids = run("podman", "ps", "-aq", "--filter", f"label={lab.label}", check=False).split()
    if ids:
        run("podman", "rm", "-f", "-t", "5", *ids)
    names = {h.netns for h in lab.hosts} | {s.netns for s in lab.sites} | {lab.sites_netns}
    # Also namespaces of this lab's prefix left by an earlier topology (other hosts/tenants).
    if Path("/run/netns").is_dir():
        names |= {n for n in os.listdir("/run/netns") if n.startswith(f"{lab.prefix}-")}
    for name in sorted(names):
        if Path("/run/netns", name).exists():
            run("ip", "netns", "delete", name)
    for veth in [h.host_veth for h in lab.hosts] + [lab.sites_netns[:15]]:
        if exists("ip", "link", "show", veth):
            run("ip", "link", "delete", veth)
    if exists("ip", "link", "show", lab.bridge):
        run("ip", "link", "delete", lab.bridge)
    for path in lab.ssh_dir.glob("host_*"):
        path.unlink()
    (lab.ssh_dir / "known_hosts").unlink(missing_ok=True)
    print(f"lab: {lab.prefix} down")


def summary(lab: Lab) -> None:
    """What the lab holds now, read from the hosts themselves over SSH, then a demo call per
    tenant from its site (lab/phones.py). Exits non-zero when a runtime or a call fails."""
    print(f"\nBulkhead lab '{lab.prefix}': bridge {lab.bridge} {lab.gateway}")
    for host in lab.hosts:
        release = ssh(lab, host, "cat /etc/bulkhead/release 2>/dev/null | grep -v '^#'")
        state = ssh(lab, host, "systemctl is-system-running")
        print(f"  host {host.name:<8} {host.address:<15} ssh pinned-key ok  systemd {state:<9}"
              f" {release or 'not converged'}")
    failed = 0
    for site in lab.sites:
        print(f"  site {site.netns:<15} {site.address} (phones; tenant segment VNI {site.vni})")
        for name, address in site.servers:
            host = next(h for h in lab.hosts if h.name == name)
            active = ssh(lab, host, f"systemctl is-active pbx-runtime@{site.slug}.service")
            failed += active != "active"
            print(f"    runtime of {site.slug} on {name} ({address}): {active}")
        result = site_call(lab, site)
        failed += not result.ok
        print(f"    demo call {site.slug}: {'OK' if result.ok else 'FAILED'}: {result.detail}")
    print("  reach a host: ansible -i inventories/lab pbx1 -m ping")
    if failed:
        raise SystemExit(f"lab: {failed} runtime(s) or demo call(s) failed (see above)")


@functools.cache
def extension_secrets(lab: Lab) -> dict[str, dict[str, str]]:
    """The lab's extension secrets, read once per process (`up` writes them)."""
    return dict(yaml.safe_load(lab.secrets_file.read_text()))


def site_phones(lab: Lab, site: Site) -> list[phones.Phone]:
    """The site's present extensions with their lab secrets."""
    return [phones.Phone(n, extension_secrets(lab)[site.slug][n]) for n in site.phones]


def phone_line(lab: Lab, site: Site, address: str, trust: Site | None = None) -> phones.PhoneLine:
    """Phones in *site*'s namespace towards *address*, trusting the CA chain of *trust*
    (default: the site's own tenant) and expecting that tenant's SIP domain."""
    trust = trust or site
    chain = lab.state_dir / "pki" / "tenants" / trust.slug / "chain.pem"
    return phones.PhoneLine(site.netns, trust.domain, address, chain, lab.state_dir)


def site_call(lab: Lab, site: Site) -> phones.Result:
    """Two of the site's phones register over TLS to the tenant's first runtime; one calls."""
    if len(site.phones) < 2:
        return phones.Result("ok", "skipped: the tenant lists fewer than two extensions")
    caller, callee = site_phones(lab, site)[:2]
    with phone_line(lab, site, site.servers[0][1]) as line:
        return line.call(caller, callee)


def status(lab: Lab) -> None:
    print(run("podman", "ps", "-a", "--filter", f"label={lab.label}",
              "--format", "{{.Names}}\t{{.Status}}\t{{.Image}}", check=False), end="")
    print(run("ip", "netns", "list", check=False), end="")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", type=Path, default=ROOT / "inventories" / "lab",
                        help="lab inventory directory (default: inventories/lab)")
    parser.add_argument("command", choices=["up", "down", "status", "summary", "image"])
    args = parser.parse_args()
    command = args.command
    if os.geteuid() != 0:
        raise SystemExit("lab: must run as root (network namespaces, podman)")
    lab = load_lab(args.inventory)
    if command == "image":
        print(ensure_image())
    else:
        {"up": up, "down": down, "status": status, "summary": summary}[command](lab)


if __name__ == "__main__":
    main()
