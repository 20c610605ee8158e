#!/usr/bin/env python3
"""Verify a converged lab's per-tenant runtimes with real phones and on the hosts.

    verify_runtime.py --inventory DIR

From each tenant's site (its office network), with SIPp phones behind a verifying stunnel
(lab/phones.py):
1. two of its phones register over TLS and one calls the other;
2. registering to any other tenant's runtime fails at the network layer;
3. another tenant's credential presented to this tenant's runtime is refused (SIP);
4. a phone that trusts another tenant's CA cannot complete the TLS handshake.
On each host:
5. `pbx-runtime@<slug>` is active for every tenant it serves;
6. no plaintext extension secret is found in any file under /etc, /var, /opt, /run, /tmp;
7. no file readable by a tenant's user holds another tenant's HA1 digests or TLS key.
Exit status 0 only when every check passes; one line per check.
"""

from __future__ import annotations

import argparse
import re
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lab"))
import labctl  # noqa: E402

# Another tenant's HA1 digests (from its runtime.toml) and the body line of its TLS key: a
# match in anything tenant X can read means X can impersonate or decrypt that tenant.
FOREIGN_PATTERNS = """
sed -n 's/^ha1_[a-z0-9]* = "\\([0-9a-f]*\\)"$/\\1/p' /etc/bulkhead/tenants/{slug}/runtime.toml
sed -n '2p' /etc/bulkhead/tenants/{slug}/tls/server.key
"""
SEARCHED = "/etc /var /opt /run /tmp /srv /home /root"
# A world-readable file holding a fresh token proves each search could read and match: a
# search that does not list it (unreadable patterns, wrong user, ...) fails the check.
SEARCH = """
control=$(mktemp /tmp/bulkhead-verify.XXXXXX); chmod 0644 "$control"; echo {token} > "$control"
{user} grep -rlsF -f - {dirs}; rm -f "$control"
"""


def check(ok: bool, label: str, detail: str) -> bool:
    print(f"{'PASS' if ok else 'FAIL'} {label}: {detail}")
    return ok


def phone_checks(lab: labctl.Lab) -> list[bool]:
    results = []
    for site in lab.sites:
        if len(site.phones) < 2:
            results.append(check(False, f"{site.slug} call", "needs two extensions"))
            continue
        call = labctl.site_call(lab, site)
        results.append(check(call.ok, f"{site.slug} call", call.detail))
        mine = labctl.site_phones(lab, site)[0]
        for other in (o for o in lab.sites if o is not site):
            with labctl.phone_line(lab, site, other.servers[0][1], trust=other) as line:
                got = line.register(mine)
            results.append(check(got.stage == "network",
                                 f"{site.slug} site -> {other.slug} runtime", got.detail))
            if other.phones:
                with labctl.phone_line(lab, site, site.servers[0][1]) as line:
                    got = line.register(labctl.site_phones(lab, other)[0])
                results.append(check(got.stage == "sip" and re.search(r" 40[13] ", got.detail) is
                                     not None, f"{other.slug} credential at {site.slug}",
                                     got.detail))  # fmt: skip
            with labctl.phone_line(lab, site, site.servers[0][1], trust=other) as line:
                got = line.register(mine)
            results.append(check(got.stage == "tls",
                                 f"{site.slug} phone trusting {other.slug}'s CA", got.detail))
    return results


def search(lab: labctl.Lab, host: labctl.LabHost, patterns: str, user: str = "") -> str:
    """Files under SEARCHED (readable by *user*) holding any of *patterns*, comma-separated,
    or an explanation when the search itself did not work."""
    token = f"bulkhead-verify-{secrets.token_hex(8)}"
    run_as = f"runuser -u {user} --" if user else ""
    out = labctl.ssh(lab, host, SEARCH.format(token=token, user=run_as, dirs=SEARCHED),
                     f"{token}\n{patterns.strip()}\n")  # fmt: skip
    found = out.splitlines()
    controls = [line for line in found if line.startswith("/tmp/bulkhead-verify.")]
    if not controls:
        return "search failed: the control file was not found"
    return ", ".join(line for line in found if line not in controls)


def host_checks(lab: labctl.Lab) -> list[bool]:
    plaintext = "".join(f"{secret}\n" for numbers in labctl.extension_secrets(lab).values()
                        for secret in numbers.values())  # fmt: skip
    results = []
    for host in lab.hosts:
        served = [s.slug for s in lab.sites if host.name in dict(s.servers)]
        for slug in served:
            active = labctl.ssh(lab, host, f"systemctl is-active pbx-runtime@{slug}.service")
            results.append(check(active == "active", f"{host.name} pbx-runtime@{slug}", active))
        found = search(lab, host, plaintext)
        results.append(check(found == "", f"{host.name} plaintext secrets", found or "none found"))
        foreign = {slug: labctl.ssh(lab, host, FOREIGN_PATTERNS.format(slug=slug))
                   for slug in served}  # fmt: skip
        for slug in served:
            for other in (o for o in served if o != slug):
                patterns = foreign[other]
                found = search(lab, host, patterns, f"tn-{slug}") if patterns else "no patterns"
                results.append(check(found == "", f"{host.name} tn-{slug} reads {other}'s HA1/key",
                                     found or "nowhere"))  # fmt: skip
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", type=Path, required=True)
    lab = labctl.load_lab(parser.parse_args().inventory)
    results = host_checks(lab) + phone_checks(lab)
    print(f"{results.count(True)} passed, {results.count(False)} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
