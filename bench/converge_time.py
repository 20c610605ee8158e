#!/usr/bin/env python3
"""Time site.yml on a lab of two PBX hosts with N tenants: first converge and a no-change re-run.

    bench/converge_time.py [--tenants 3,30] [--json FILE]

Each size gets a lab of its own (prefix "bn", bridge bnlab0, 10.254.7.0/24) that is torn down
afterwards. Tenants are generated: ids 101…, VXLAN VNIs 2001…, subnets 172.21.<n>.0/24, each
placed on both hosts. Prints wall-clock seconds and the per-tenant marginal cost.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv" / "bin" / "python"


def make_inventory(base: Path, tenants: int) -> Path:
    inventory = base / f"inventory-{tenants}"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    (inventory / "tenants").mkdir()
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"pbx_hosts": {
        "hosts": {"pbx1": {"ansible_host": "10.254.7.11"},
                  "pbx2": {"ansible_host": "10.254.7.12"}}}}}}))
    (inventory / "group_vars" / "all" / "lab.yml").write_text(yaml.safe_dump({
        "lab_prefix": "bn", "lab_bridge": "bnlab0", "lab_gateway": "10.254.7.1/24",
        "lab_sites_address": "10.254.7.2/24", "lab_state_dir": str(ROOT / ".lab" / "bn"),
        "pbx_management_networks": ["10.254.7.0/24"]}))
    for extra in ("pki.yml",):
        source = ROOT / "inventories" / "lab" / "group_vars" / "all" / extra
        if source.exists():
            (inventory / "group_vars" / "all" / extra).symlink_to(source)
    (inventory / "group_vars" / "pbx_hosts").symlink_to(
        ROOT / "inventories" / "lab" / "group_vars" / "pbx_hosts")
    (inventory / "tenants.yml").write_text("plugin: tenants\n")
    for n in range(1, tenants + 1):
        slug = f"t{n:03d}"
        (inventory / "tenants" / f"{slug}.yml").write_text(yaml.safe_dump({
            "slug": slug, "id": 100 + n, "sip_domain": f"{slug}.bench.bulkhead.test",
            "segment": {"type": "vxlan", "vni": 2000 + n}, "subnet": f"172.21.{n}.0/24",
            "addresses": {"pbx1": f"172.21.{n}.11", "pbx2": f"172.21.{n}.12"}}))
    return inventory


def site_yml(inventory: Path) -> tuple[float, str]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}")
    started = time.monotonic()
    result = subprocess.run(["ansible-playbook", "-i", str(inventory),
                             str(ROOT / "playbooks" / "site.yml")],
                            capture_output=True, text=True, env=env, cwd=ROOT)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"site.yml failed:\n{result.stdout[-3000:]}")
    changed = re.findall(r"changed=(\d+)", result.stdout)
    return elapsed, ",".join(changed)


def measure(base: Path, tenants: int) -> dict[str, object]:
    inventory = make_inventory(base, tenants)
    labctl = [str(PYTHON), str(ROOT / "lab" / "labctl.py"), f"--inventory={inventory}"]
    subprocess.run([*labctl, "down"], check=True, capture_output=True)
    try:
        subprocess.run([*labctl, "up"], check=True, capture_output=True)
        first, first_changed = site_yml(inventory)
        rerun, rerun_changed = site_yml(inventory)
    finally:
        subprocess.run([*labctl, "down"], check=True, capture_output=True)
    return {"tenants": tenants, "converge_s": round(first, 1), "rerun_s": round(rerun, 1),
            "converge_changed": first_changed, "rerun_changed": rerun_changed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", default="3,30")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sizes = [int(n) for n in args.tenants.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        results = [measure(Path(tmp), n) for n in sizes]
    print(f"{'tenants':>8} {'converge s':>11} {'re-run s':>9} {'re-run changed':>15}")
    for r in results:
        print(f"{r['tenants']:>8} {r['converge_s']:>11} {r['rerun_s']:>9} "
              f"{r['rerun_changed']:>15}")
    if len(results) >= 2:
        a, b = results[0], results[-1]
        span = b["tenants"] - a["tenants"]  # type: ignore[operator]
        print(f"marginal cost per tenant: converge "
              f"{(b['converge_s'] - a['converge_s']) / span:.2f} s, "  # type: ignore[operator]
              f"re-run {(b['rerun_s'] - a['rerun_s']) / span:.2f} s")  # type: ignore[operator]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
