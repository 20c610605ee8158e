#!/usr/bin/env python3
"""Try every pair of compartments in a lab and count the leaks.

    isolation_matrix.py --inventory DIR [--json FILE]

Sources: every site namespace (a tenant's office network, given a default route through its
own PBX address, as an attacker would) and every tenant namespace on every PBX host. Targets:
every tenant's PBX address on every host, every site, and every host's management address.
Each target runs a listener answering TCP (the SIP-TLS port) and UDP (an RTP port) with its
name, so a leak shows as a positive answer, not as a silence. A source must reach exactly the
targets of its own tenant, over ICMP, TCP and UDP; anything else it reaches is a leak.
Exit status: 0 when there are no leaks and no missing own-tenant paths.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lab"))
import labctl  # noqa: E402  (lab/ is a directory of scripts, not a package)
from probe import CONNECTED  # noqa: E402  (beside this script)

PROBE = Path(__file__).resolve().parent / "probe.py"
REMOTE_PROBE = "/run/bulkhead-probe.py"
TCP_PORT, UDP_PORT = 5061, 16384
SSH_PORT = 22  # also tried: an answering sshd anywhere but the own tenant is a leak
LISTEN_SECONDS = 240
PROTOCOLS = ("icmp", "tcp", "udp")


@dataclass(frozen=True)
class Target:
    name: str
    address: str
    tenant: str | None  # None: management, which no compartment may reach


@dataclass(frozen=True)
class Source:
    name: str
    tenant: str
    host: labctl.LabHost | None  # None: a site namespace on this machine
    netns: str


def tenants(inventory: Path) -> list[dict]:
    files = sorted((inventory / "tenants").glob("*.yml"))
    loaded = [yaml.safe_load(path.read_text()) for path in files]
    return [t for t in loaded if t.get("state", "present") == "present"]


def plan(lab: labctl.Lab, inventory: Path) -> tuple[list[Source], list[Target]]:
    hosts = {h.name: h for h in lab.hosts}
    sites = {s.netns: s for s in lab.sites}
    sources, targets = [], []
    for tenant in tenants(inventory):
        slug = tenant["slug"]
        site = sites[f"{lab.prefix}-site-{slug}"]
        sources.append(Source(f"site-{slug}", slug, None, site.netns))
        targets.append(Target(f"site-{slug}", str(site.address.ip), slug))
        for host_name, address in sorted(tenant["addresses"].items()):
            sources.append(Source(f"{slug}@{host_name}", slug, hosts[host_name], f"tn-{slug}"))
            targets.append(Target(f"{slug}@{host_name}", address, slug))
    targets += [Target(f"mgmt@{h.name}", h.address, None) for h in lab.hosts]
    return sources, targets


def host_shell(lab: labctl.Lab, host: labctl.LabHost, command: str) -> str:
    return labctl.ssh(lab, host, command)


def start_listeners(lab: labctl.Lab, targets: list[Target], sources: list[Source]) -> list:
    local = []
    netns_of = {s.name: s for s in sources}
    script = PROBE.read_text()
    for host in lab.hosts:
        host_shell(lab, host, f"cat > {REMOTE_PROBE} <<'EOF'\n{script}\nEOF")
    for target in targets:
        args = (f"listen --tag {target.name} --address {target.address} --tcp {TCP_PORT} "
                f"--udp {UDP_PORT} --seconds {LISTEN_SECONDS}")
        source = netns_of.get(target.name)
        if target.tenant is None:  # management: listen in the host namespace itself
            host = next(h for h in lab.hosts if f"mgmt@{h.name}" == target.name)
            host_shell(lab, host, f"systemd-run --collect --unit=bh-probe-mgmt "
                                  f"python3 {REMOTE_PROBE} {args}")
        elif source is not None and source.host is not None:
            host_shell(lab, source.host,
                       f"systemd-run --collect --unit=bh-probe-{source.tenant} "
                       f"ip netns exec {source.netns} python3 {REMOTE_PROBE} {args}")
        elif source is not None:
            local.append(subprocess.Popen(
                ["ip", "netns", "exec", source.netns, sys.executable, str(PROBE), *args.split()]))
    return local


def stop_listeners(lab: labctl.Lab, local: list) -> None:
    for proc in local:
        proc.terminate()
        proc.wait(timeout=10)
    for host in lab.hosts:
        host_shell(lab, host, "systemctl stop 'bh-probe-*' 2>/dev/null; "
                              f"rm -f {REMOTE_PROBE}")


def probe(lab: labctl.Lab, source: Source, targets: list[Target]) -> dict:
    addresses = " ".join(t.address for t in targets)
    command = f"reach --tcp {TCP_PORT} --tcp {SSH_PORT} --udp {UDP_PORT} {addresses}"
    if source.host is None:
        out = subprocess.run(["ip", "netns", "exec", source.netns, sys.executable, str(PROBE),
                              *command.split()], capture_output=True, text=True, check=True)
        return json.loads(out.stdout)
    return json.loads(host_shell(
        lab, source.host, f"ip netns exec {source.netns} python3 {REMOTE_PROBE} {command}"))


def attack_routes(lab: labctl.Lab, inventory: Path) -> None:
    """Give each site a default route through its own PBX address, as an attacker would."""
    for tenant in tenants(inventory):
        gateway = tenant["addresses"][sorted(tenant["addresses"])[0]]
        subprocess.run(["ip", "-n", f"{lab.prefix}-site-{tenant['slug']}", "route", "replace",
                        "default", "via", gateway], check=True)


def matrix(inventory: Path) -> dict:
    lab = labctl.load_lab(inventory)
    sources, targets = plan(lab, inventory)
    attack_routes(lab, inventory)
    local = start_listeners(lab, targets, sources)
    try:
        time.sleep(1.5)  # listeners bind
        rows = {source.name: probe(lab, source, targets) for source in sources}
    finally:
        stop_listeners(lab, local)
    leaks, missing, cells = [], [], {}
    for source in sources:
        for target in targets:
            if target.name == source.name:
                continue
            result = rows[source.name][target.address]
            got = {p for p in PROTOCOLS if result[p] not in (None, False)}
            # A TCP/UDP answer must come from the listener we meant, not another namespace;
            # a silent TCP listener (the tenant's runtime) counts as reached, unattributed.
            for proto in ("tcp", "udp"):
                if result[proto] not in (None, target.name, CONNECTED):
                    got.add(f"{proto}:{result[proto]}")
            expected = set(PROTOCOLS) if target.tenant == source.tenant else set()
            cells[(source.name, target.name)] = got
            leaks += [f"{source.name} -> {target.name} over {p}" for p in sorted(got - expected)]
            missing += [f"{source.name} -> {target.name} over {p}"
                        for p in sorted(expected - got)]
    print_matrix(sources, targets, cells)
    return {"sources": len(sources), "targets": len(targets),
            "pairs": len(sources) * len(targets) - len(sources), "leaks": leaks,
            "missing": missing}


def print_matrix(sources: list[Source], targets: list[Target], cells: dict) -> None:
    width = max(len(t.name) for t in targets) + 1
    corner = "from \\ to"
    print(f"{corner:<16}" + "".join(f"{t.name:>{width}}" for t in targets))
    for source in sources:
        row = []
        for target in targets:
            got = cells.get((source.name, target.name))
            mark = "self" if got is None else ("".join(p[0].upper() for p in sorted(got)) or "-")
            row.append(f"{mark:>{width}}")
        print(f"{source.name:<16}" + "".join(row))
    print("(I/T/U: ICMP, TCP, UDP reached; -: nothing reached)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", type=Path, required=True)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    result = matrix(args.inventory)
    print(f"pairs tried: {result['pairs']} ({result['sources']} sources x {result['targets']} "
          f"targets, 3 protocols each); leaks: {len(result['leaks'])}; "
          f"missing own-tenant paths: {len(result['missing'])}")
    for line in result["leaks"] + result["missing"]:
        print(f"  {line}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    sys.exit(1 if result["leaks"] or result["missing"] else 0)


if __name__ == "__main__":
    main()
