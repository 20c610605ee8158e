from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pbx_common.runtime_config import ha1, render_config, restart_key, runtime_tenants

from pbx_runtime.config import parse_config

SECRET = "correct-horse-battery"
EXTENSIONS: list[dict[str, Any]] = [
    {"number": "1002", "display_name": "Bob", "state": "present"},
    {"number": 1001, "display_name": "Alice", "state": "present"},
    {"number": "1003", "display_name": "Gone", "state": "absent"},
]
SECRETS: dict[Any, str] = {1001: SECRET, "1002": SECRET + "2", "1003": SECRET + "3"}
BARE: dict[str, Any] = {
    "slug": "acme",
    "id": 1,
    "sip_domain": "Acme.Lab.Bulkhead.Test",
    "state": "present",
    "subnet": "172.20.1.0/24",
    "segment": {"type": "vxlan", "vni": 1001},
    "addresses": {"pbx1": "172.20.1.11", "pbx2": "172.20.1.12"},
}
ACME = BARE | {"extensions": EXTENSIONS}
GLOBEX: dict[str, Any] = BARE | {"slug": "globex", "sip_domain": "globex.test",
                                 "addresses": {"pbx2": "172.20.2.12"}}  # fmt: skip


def tls_settings(tmp_path: Path) -> dict[str, Any]:
    for name in ("server.crt", "server.key", "chain.pem", "crl.pem"):
        (tmp_path / name).write_text("x")
    return {"tls_dir": str(tmp_path)}


def test_config_is_accepted_by_the_runtime(tmp_path: Path) -> None:
    text = render_config(ACME, "pbx1", SECRETS, tls_settings(tmp_path))
    config = parse_config(tomllib.loads(text))
    assert (config.tenant, config.domain, config.realm) == (
        "acme",
        "acme.lab.bulkhead.test",
        "acme.lab.bulkhead.test",
    )
    [listener] = config.listeners
    assert (listener.transport, listener.address, listener.port) == ("tls", "172.20.1.11", 5061)
    assert config.tls is not None and config.tls.crl == tmp_path / "crl.pem"
    assert config.tls.verify_client == "optional"
    assert sorted(config.users) == ["1001", "1002"]  # the absent extension is left out


def test_users_are_ha1_of_user_realm_secret_and_no_secret_is_written(tmp_path: Path) -> None:
    text = render_config(ACME, "pbx1", SECRETS, tls_settings(tmp_path))
    users = tomllib.loads(text)["users"]
    realm = "acme.lab.bulkhead.test"
    assert users["1001"]["ha1_md5"] == hashlib.md5(f"1001:{realm}:{SECRET}".encode()).hexdigest()
    assert users["1001"]["ha1_sha256"] == ha1("1001", realm, SECRET, "SHA-256")
    assert SECRET not in text


def test_default_tls_paths_are_the_pki_role_paths() -> None:
    data = tomllib.loads(render_config(BARE, "pbx2", SECRETS))
    assert data["tls"]["key"] == "/etc/bulkhead/tenants/acme/tls/server.key"
    assert data["listeners"][0]["address"] == "172.20.1.12"
    assert "users" not in data


def test_output_is_stable_and_restart_key_ignores_users(tmp_path: Path) -> None:
    settings = tls_settings(tmp_path)
    reordered = ACME | {"extensions": list(reversed(EXTENSIONS))}
    assert render_config(ACME, "pbx1", SECRETS, settings) == render_config(
        reordered, "pbx1", SECRETS, settings
    )
    assert restart_key(ACME, "pbx1", settings) == restart_key(BARE, "pbx1", settings)
    assert restart_key(ACME, "pbx1", settings) == restart_key(ACME, "pbx1", settings)
    assert restart_key(ACME, "pbx1", settings) != restart_key(
        ACME, "pbx1", settings | {"port": 5071}
    )


def test_operator_tuning_reaches_limits_and_lockouts(tmp_path: Path) -> None:
    tuned = ACME | {"runtime": {"max_calls": 20, "cpu_quota": 80, "digest_algorithms": ["MD5"],
                                "user_lockout": {"threshold": 3, "lock": 120}}}  # fmt: skip
    settings = tls_settings(tmp_path) | {"limits": {"max_calls": 5, "ring_timeout": 30}}
    config = parse_config(tomllib.loads(render_config(tuned, "pbx1", SECRETS, settings)))
    assert (config.limits.max_calls, config.limits.ring_timeout) == (20, 30)
    assert (config.abuse.user_lockout.threshold, config.abuse.user_lockout.lock) == (3, 120)
    assert config.digest_algorithms == ("MD5",)
    assert config.abuse.source_lockout == parse_config(
        tomllib.loads(render_config(ACME, "pbx1", SECRETS, settings))
    ).abuse.source_lockout


def test_plain_transports_only_for_tenants_that_opt_in(tmp_path: Path) -> None:
    settings = tls_settings(tmp_path)
    udp = ACME | {"sip_transports": ["tls", "udp"]}
    opted = parse_config(tomllib.loads(render_config(udp, "pbx1", SECRETS, settings)))
    assert [(item.transport, item.port) for item in opted.listeners] == [
        ("tls", 5061), ("udp", 5060)]  # fmt: skip
    assert opted.allow_insecure_transports
    plain = parse_config(tomllib.loads(render_config(ACME, "pbx1", SECRETS, settings)))
    assert not plain.allow_insecure_transports


def test_runtime_tenants_per_host() -> None:
    plan = runtime_tenants([GLOBEX, ACME | {"state": "absent"}], "pbx2")
    assert [(e["slug"], e["state"], e["address"]) for e in plan] == [
        ("acme", "absent", None),
        ("globex", "present", "172.20.2.12"),
    ]
    assert plan[1]["unit"] == "pbx-runtime@globex.service"
    assert (plan[1]["cpu_quota"], plan[1]["memory_max_mb"]) == (None, None)
    assert not any("extensions" in entry or SECRET in str(entry) for entry in plan)


def test_missing_secret_is_an_error_naming_the_extension() -> None:
    with pytest.raises(ValueError, match="tenant acme: extension 1002 has no secret"):
        render_config(ACME, "pbx1", {"1001": SECRET})


def test_absent_tenant_has_no_config() -> None:
    with pytest.raises(ValueError, match="not served"):
        render_config(GLOBEX, "pbx1", SECRETS)
