"""The pbx_runtime role end to end on a lab host of its own: offline install, hardened unit in
the tenant namespace, TLS REGISTER from the tenant's site, no plaintext secret on the host,
idempotence, check mode and a SIGHUP reload for changed users.

Boots a one-host lab (prefix "br", bridge brlab0, 10.254.8.0/24) beside any other lab, with
acme placed on pbx1 and the lab PKI settings. Extension secrets are generated here.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.support import (
    PYTHON,
    ROOT,
    ansible_env,
    booted_lab,
    needs_root,
    one_host_inventory,
    run,
)

pytestmark = needs_root
PREFIX = "br"
STATE = ROOT / ".lab" / PREFIX
CONTAINER = f"{PREFIX}-pbx1"
SITE = f"{PREFIX}-site-acme"
DOMAIN = "acme.lab.bulkhead.test"
ADDRESS = "172.20.1.11"
PLAYS = ("validate_inventory", "tenant_network", "pki", "firewall", "pbx_runtime")
UNIT = "pbx-runtime@acme.service"

# Drives tests/integration/runtime/ua.py from the site namespace, checking the server's name
# (the tenant's domain); arguments (with the password) come on stdin.
UA_DRIVER = r"""
import asyncio, json, sys
from pathlib import Path
from tests.integration.runtime.ua import UA

args = json.loads(sys.stdin.read())

async def main():
    ua = await UA.open("TLS", (args["address"], 5061), args["user"], args["password"],
                       args["domain"], ca=Path(args["ca"]), server_name=args["domain"])
    try:
        options = await ua.options()
        register = await ua.register()
        print(json.dumps({"options": options.status, "register": register.status}))
    finally:
        await ua.close()

asyncio.run(main())
"""


EXTENSIONS = [{"number": 1001, "display_name": "Alice"}, {"number": 1002, "display_name": "Bob"}]


def new_secrets() -> dict[str, dict[str, str]]:
    return {"acme": {"1001": secrets.token_urlsafe(18), "1002": secrets.token_urlsafe(18)}}


def write_secrets(inventory: Path, value: dict[str, dict[str, str]]) -> None:
    """This inventory's stand-in for a vaulted pbx_extension_secrets file."""
    (inventory / "group_vars" / "all" / "extensions.yml").write_text(
        yaml.safe_dump({"pbx_extension_secrets": value})
    )


def read_secrets(inventory: Path) -> dict[str, dict[str, str]]:
    text = (inventory / "group_vars" / "all" / "extensions.yml").read_text()
    return dict(yaml.safe_load(text)["pbx_extension_secrets"])


def converge(inventory: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return run("ansible-playbook", "-i", inventory, *options,
               *(ROOT / "playbooks" / f"{play}.yml" for play in PLAYS))  # fmt: skip


def changed_counts(output: str) -> list[int]:
    return [int(n) for n in re.findall(r"^pbx1\s*:.*?changed=(\d+)", output, re.MULTILINE)]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("pbx_runtime")
    # A snapshot of the sources: edits to the tree while the test runs do not make a new
    # version (and a restart) between its converges.
    snapshot = source_copy(base, (ROOT / "VERSION").read_text().strip())
    inventory = one_host_inventory(base / "inventory", PREFIX, 8,
                                   {"addresses": {"pbx1": ADDRESS}, "extensions": EXTENSIONS},
                                   {"pbx_runtime_source_dir": str(snapshot)}, ("pki.yml",))
    write_secrets(inventory, new_secrets())
    with booted_lab(inventory):
        first = converge(inventory)
        assert first.returncode == 0, first.stdout[-4000:]
        yield inventory


def on_host(command: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """A command on the lab host through podman (not Ansible: nothing lands in its journal)."""
    return subprocess.run(["podman", "exec", "-i", CONTAINER, "sh", "-c", command],
                          input=stdin, capture_output=True, text=True, env=ansible_env(),
                          timeout=120, check=False)  # fmt: skip


def register_from_site(user: str, password: str) -> dict[str, int]:
    args = {"domain": DOMAIN, "address": ADDRESS, "user": user, "password": password,
            "ca": str(STATE / "pki" / "tenants" / "acme" / "chain.pem")}  # fmt: skip
    result = subprocess.run(
        ["ip", "netns", "exec", SITE, str(PYTHON), "-c", UA_DRIVER],
        input=json.dumps(args), capture_output=True, text=True, cwd=ROOT, timeout=60,
        env=ansible_env() | {"PYTHONPATH": str(ROOT)}, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return dict(json.loads(result.stdout))


def main_pid() -> str:
    return on_host(f"systemctl show --property=MainPID --value {UNIT}").stdout.strip()


def test_unit_is_active_hardened_and_runs_as_the_tenant(lab: Path) -> None:
    assert on_host(f"systemctl is-active {UNIT}").stdout.strip() == "active"
    owner = on_host(f"ps -o user= -p {main_pid()}").stdout.strip()
    assert owner == "tn-acme"
    # The listener is in the tenant's namespace, and nowhere in the host's.
    listening = "ss -Hltn 'sport = :5061'"
    assert f"{ADDRESS}:5061" in on_host(f"ip netns exec tn-acme {listening}").stdout
    assert on_host(listening).stdout.strip() == ""
    security = on_host(f"systemd-analyze security --no-pager {UNIT}").stdout
    exposure = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", security)[1])
    assert exposure <= 2.5, security
    config = on_host("stat -c '%a %U %G' /etc/bulkhead/tenants/acme/runtime.toml").stdout
    assert config.split() == ["640", "root", "tn-acme"]
    assert on_host("readlink /opt/bulkhead/runtime/current").stdout.strip().startswith("0.1.0-")


def test_the_compiled_build_runs_and_a_foreign_abi_is_refused(lab: Path) -> None:
    # the default build: the runtime's start line says which one it loaded
    journal = on_host(f"journalctl --no-pager -o cat -u {UNIT}").stdout
    started = [line for line in journal.splitlines() if "pbx_runtime ready" in line]
    assert started and "build=compiled" in started[-1], journal[-2000:]
    compiled = on_host("find -L /opt/bulkhead/runtime/current/lib -name 'core.*.so'").stdout
    assert "pbx_runtime/core.cpython-" in compiled
    # a host interpreter of another ABI stops the play before anything is copied
    before = current_version()
    fake = "/usr/local/bin/python3-foreign-abi"
    on_host(f"printf '#!/bin/sh\\necho cpython-399-linux-riscv64\\n' > {fake} && chmod 755 {fake}")
    try:
        result = converge(lab, "-e", f"pbx_runtime_python={fake}")
    finally:
        on_host(f"rm -f {fake}")
    assert result.returncode != 0
    assert "is cpython-399-linux-riscv64" in result.stdout
    assert current_version() == before


def test_tls_options_and_register_from_the_tenant_site(lab: Path) -> None:
    alice = read_secrets(lab)["acme"]["1001"]
    assert register_from_site("1001", alice) == {"options": 200, "register": 200}
    assert register_from_site("1001", "not-the-password")["register"] in (401, 403)


def test_no_plaintext_secret_anywhere_on_the_host(lab: Path) -> None:
    secrets_ = "\n".join(read_secrets(lab)["acme"].values()) + "\n"
    found = on_host("grep -rlsF -f /dev/stdin /etc /var /opt", stdin=secrets_)
    assert found.returncode == 1, f"plaintext secret found in: {found.stdout}"


def test_second_run_and_check_mode_change_nothing(lab: Path) -> None:
    again = converge(lab)
    assert again.returncode == 0, again.stdout[-3000:]
    assert changed_counts(again.stdout) == [0] * len(PLAYS), again.stdout[-3000:]
    check = converge(lab, "--check", "--diff")
    assert check.returncode == 0, check.stdout[-3000:]
    assert changed_counts(check.stdout) == [0] * len(PLAYS), check.stdout[-3000:]


def test_changed_secret_is_reloaded_without_restart(lab: Path) -> None:
    before = main_pid()
    value = read_secrets(lab)
    old = value["acme"]["1001"]
    value["acme"]["1001"] = secrets.token_urlsafe(18)
    write_secrets(lab, value)
    result = converge(lab)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Reload (SIGHUP) the runtime of acme" in result.stdout
    assert main_pid() == before  # reloaded, not restarted
    assert register_from_site("1001", value["acme"]["1001"])["register"] == 200
    assert register_from_site("1001", old)["register"] in (401, 403)
    # The configuration kept for rollback is gone once the runtime answered.
    assert on_host("ls /etc/bulkhead/tenants/acme").stdout.split() == [
        "network.env",
        "nftables.nft",
        "runtime.restart-key",
        "runtime.tls-key",
        "runtime.toml",
        "tls",
    ]


def served_certificate() -> str:
    """The serial of the certificate the runtime presents to a phone in the tenant's site."""
    ca = STATE / "pki" / "tenants" / "acme" / "chain.pem"
    result = subprocess.run(
        ["ip", "netns", "exec", SITE, "sh", "-c",
         f"openssl s_client -connect {ADDRESS}:5061 -servername {DOMAIN} -CAfile {ca} "
         "-verify_return_error </dev/null 2>/dev/null | openssl x509 -noout -serial"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0 and "serial=" in result.stdout, result.stderr
    return result.stdout.strip()


def test_renewed_certificate_is_reloaded_without_restart(lab: Path) -> None:
    before, serial = main_pid(), served_certificate()
    # Longer lifetimes with a renewal window that the current certificate and CRL fall in:
    # both are re-issued (the CAs are not).
    result = converge(lab, "-e", "pki_server_cert_days=1000", "-e", "pki_crl_days=1000",
                      "-e", "pki_renew_days=900")  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Reload (SIGHUP) the runtime of acme" in result.stdout
    assert main_pid() == before
    assert served_certificate() != serial


def source_copy(tmp_path: Path, version: str, *, broken: bool = False) -> Path:
    """A copy of the runtime's sources with another version (and, if broken, a runtime that
    exits at once: it still installs and passes check-config)."""
    tree = tmp_path / f"src-{version}"
    shutil.copytree(ROOT / "pbx_runtime", tree / "pbx_runtime",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    for name in ("pyproject.toml", "setup.py"):
        shutil.copy(ROOT / name, tree / name)
    (tree / "VERSION").write_text(f"{version}\n")
    if broken:
        main = tree / "pbx_runtime" / "__main__.py"
        text = main.read_text()
        hook = "    args = _parser().parse_args(argv)\n"
        assert hook in text
        main.write_text(
            text.replace(
                hook,
                hook + "    if args.command == 'run':\n"
                "        raise SystemExit('broken build (rollback test)')\n",
            )
        )
    return tree


def current_version() -> str:
    return on_host("readlink /opt/bulkhead/runtime/current").stdout.strip()


def test_new_version_is_installed_beside_and_restarted_into(lab: Path, tmp_path: Path) -> None:
    old_version, old_pid = current_version(), main_pid()
    source = source_copy(tmp_path, "0.1.1")
    # pure Python: a version switch is the same for both builds, and this saves a compilation
    result = converge(lab, "-e", f"pbx_runtime_source_dir={source}",
                      "-e", "pbx_runtime_compiled=false")  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    assert current_version().startswith("0.1.1-")
    assert on_host("readlink /opt/bulkhead/runtime/previous").stdout.strip() == old_version
    assert main_pid() != old_pid  # restarted on the new version
    assert register_from_site("1001", read_secrets(lab)["acme"]["1001"])["register"] == 200


def test_version_that_does_not_answer_is_rolled_back(lab: Path, tmp_path: Path) -> None:
    good = current_version()
    source = source_copy(tmp_path, "0.1.2", broken=True)
    options = ("pbx_runtime_ready_timeout=8", "pbx_runtime_compiled=false")
    result = converge(lab, "-e", f"pbx_runtime_source_dir={source}",
                      *(arg for option in options for arg in ("-e", option)))  # fmt: skip
    assert result.returncode != 0
    assert "did not answer OPTIONS over TLS" in result.stdout
    assert "broken build (rollback test)" in result.stdout  # the runtime's journal lines
    assert current_version() == good
    assert on_host(f"systemctl is-active {UNIT}").stdout.strip() == "active"
    assert register_from_site("1001", read_secrets(lab)["acme"]["1001"])["register"] == 200
