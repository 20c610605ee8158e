#!/usr/bin/env python3
"""Verify a converged lab's compartments, remove one tenant, and verify again.

    verify_compartments.py --inventory DIR --remove SLUG

1. the isolation matrix (every pair, ICMP/TCP/UDP) has no leak;
2. a snapshot of every other tenant's compartment: namespace, ruleset, configuration and
   certificate files, per host;
3. SLUG is set to `state: absent` in a copy of the inventory and site.yml runs against it;
4. SLUG's namespace, uplink and files are gone from every host, the other tenants' snapshots
   are unchanged, and the matrix over the remaining tenants still has no leak.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lab"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import isolation_matrix  # noqa: E402
import labctl  # noqa: E402

SNAPSHOT = """
set -eu
ns=tn-{slug}
[ -e /run/netns/$ns ] || {{ echo "no namespace"; exit 0; }}
ip netns exec $ns nft -s -t list ruleset | sha256sum
ip -n $ns -br addr | awk '{{print $1, $3}}' | sort
find /etc/bulkhead/tenants/{slug} -type f | sort | xargs sha256sum
"""


def snapshot(lab: labctl.Lab, slugs: list[str]) -> dict[str, str]:
    return {f"{slug}@{host.name}": labctl.ssh(lab, host, SNAPSHOT.format(slug=slug))
            for host in lab.hosts for slug in slugs}


def leftovers(lab: labctl.Lab, slug: str) -> list[str]:
    found = []
    for host in lab.hosts:
        out = labctl.ssh(lab, host, f"ls /run/netns; ip -br link show up-{slug} 2>/dev/null; "
                                    f"ls -d /etc/bulkhead/tenants/{slug} 2>/dev/null; true")
        found += [f"{host.name}: {line}" for line in out.splitlines() if slug in line]
    return found


def check_matrix(inventory: Path, label: str) -> bool:
    print(f"\n== isolation matrix {label}")
    result = isolation_matrix.matrix(inventory)
    print(f"pairs tried: {result['pairs']}; leaks: {len(result['leaks'])}; "
          f"missing own-tenant paths: {len(result['missing'])}")
    for line in result["leaks"] + result["missing"]:
        print(f"  {line}")
    return not (result["leaks"] or result["missing"])


def remove_tenant(inventory: Path, slug: str, workdir: Path) -> Path:
    copy = workdir / "inventory"
    shutil.copytree(inventory, copy)  # symlinks followed: the copy is a plain tree
    path = copy / "tenants" / f"{slug}.yml"
    tenant = yaml.safe_load(path.read_text())
    tenant["state"] = "absent"
    path.write_text(yaml.safe_dump(tenant, sort_keys=False))
    # The copy's inventory_dir differs: keep the lab state where labctl put it.
    lab_vars = copy / "group_vars" / "all" / "lab.yml"
    settings = yaml.safe_load(lab_vars.read_text())
    settings["lab_state_dir"] = str(ROOT / ".lab" / settings["lab_prefix"])
    lab_vars.write_text(yaml.safe_dump(settings, sort_keys=False))
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", type=Path, required=True)
    parser.add_argument("--remove", required=True, help="tenant slug to set absent")
    args = parser.parse_args()
    lab = labctl.load_lab(args.inventory)
    others = sorted(t["slug"] for t in isolation_matrix.tenants(args.inventory)
                    if t["slug"] != args.remove)

    ok = check_matrix(args.inventory, "with every tenant")
    before = snapshot(lab, others)
    with tempfile.TemporaryDirectory() as tmp:
        reduced = remove_tenant(args.inventory, args.remove, Path(tmp))
        print(f"\n== site.yml with {args.remove} set absent")
        run = subprocess.run(["ansible-playbook", "-i", str(reduced),
                              str(ROOT / "playbooks" / "site.yml")],
                             capture_output=True, text=True)
        print("\n".join(run.stdout.splitlines()[-4:]))
        if run.returncode != 0:
            print(run.stdout[-3000:], run.stderr[-2000:])
            sys.exit(1)
        left = leftovers(lab, args.remove)
        print(f"leftovers of {args.remove}: {left or 'none'}")
        after = snapshot(lab, others)
        changed = sorted(k for k in before if before[k] != after[k])
        print(f"other tenants' compartments changed: {changed or 'none'} "
              f"(compared {len(before)}: namespace, ruleset, addresses, files)")
        ok = check_matrix(reduced, f"without {args.remove}") and ok
    sys.exit(0 if ok and not left and not changed else 1)


if __name__ == "__main__":
    main()
