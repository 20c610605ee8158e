from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pbx_common.runtime_config import (
    check_extensions,
    ha1,
    render_config,
    restart_key,
    runtime_tenants,
)

from pbx_runtime.config import parse_config

SECRET = "correct-horse-battery"
ACME: dict[str, Any] = {
    "slug": "acme",
    "id": 1,
    "sip_domain": "Acme.Lab.Bulkhead.Test",
    "state": "present",
    "subnet": "172.20.1.0/24",
    "segment": {"type": "vxlan", "vni": 1001},
    "addresses": {"pbx1": "172.20.1.11", "pbx2": "172.20.1.12"},
}
GLOBEX: dict[str, Any] = ACME | {"slug": "globex", "sip_domain": "globex.test",
                                 "addresses": {"pbx2": "172.20.2.12"}}  # fmt: skip
EXTENSIONS: dict[str, Any] = {
    "acme": [
        {"number": "1002", "display_name": "Bob", "secret": SECRET + "2", "state": "present"},
        {"number": "1001", "display_name": "Alice", "secret": SECRET, "state": "present"},
        {"number": "1003", "display_name": "Gone", "secret": SECRET + "3", "state": "absent"},
    ]
}


def tls_settings(tmp_path: Path) -> dict[str, Any]:
    for name in ("server.crt", "server.key", "chain.pem", "crl.pem"):
        (tmp_path / name).write_text("x")
    return {"tls_dir": str(tmp_path)}


def test_config_is_accepted_by_the_runtime(tmp_path: Path) -> None:
    text = render_config(ACME, "pbx1", EXTENSIONS, tls_settings(tmp_path))
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
    text = render_config(ACME, "pbx1", EXTENSIONS, tls_settings(tmp_path))
    users = tomllib.loads(text)["users"]
    realm = "acme.lab.bulkhead.test"
    assert users["1001"]["ha1_md5"] == hashlib.md5(f"1001:{realm}:{SECRET}".encode()).hexdigest()
    assert users["1001"]["ha1_sha256"] == ha1("1001", realm, SECRET, "SHA-256")
    assert SECRET not in text


def test_default_tls_paths_are_the_pki_role_paths() -> None:
    data = tomllib.loads(render_config(ACME, "pbx2", {}))
    assert data["tls"]["key"] == "/etc/bulkhead/tenants/acme/tls/server.key"
    assert data["listeners"][0]["address"] == "172.20.1.12"
    assert "users" not in data


def test_output_is_stable_and_restart_key_ignores_users(tmp_path: Path) -> None:
    settings = tls_settings(tmp_path)
    assert render_config(ACME, "pbx1", EXTENSIONS, settings) == render_config(
        ACME, "pbx1", {"acme": list(reversed(EXTENSIONS["acme"]))}, settings
    )
    assert restart_key(ACME, "pbx1", settings) == restart_key(ACME, "pbx1", settings)
    assert restart_key(ACME, "pbx1", settings) != restart_key(
        ACME, "pbx1", settings | {"port": 5071}
    )


def test_limits_table_is_rendered(tmp_path: Path) -> None:
    text = render_config(ACME, "pbx1", {}, tls_settings(tmp_path) | {"limits": {"max_calls": 20}})
    assert parse_config(tomllib.loads(text)).limits.max_calls == 20


def test_runtime_tenants_per_host() -> None:
    plan = runtime_tenants([GLOBEX, ACME | {"state": "absent"}], "pbx2")
    assert [(e["slug"], e["state"], e["address"]) for e in plan] == [
        ("acme", "absent", None),
        ("globex", "present", "172.20.2.12"),
    ]
    assert plan[1]["unit"] == "pbx-runtime@globex.service"


@pytest.mark.parametrize(("extensions", "message"), [
    ({"nobody": []}, "pbx_runtime_extensions.nobody: no tenant"),
    ({"acme": [{"number": "10 01", "secret": SECRET}]}, "acme[0].number"),
    ({"acme": [{"number": "1001", "secret": "short"}]}, "acme[0].secret: extension 1001"),
    ({"acme": [{"number": "1001", "secret": SECRET, "pin": 1}]}, "unknown keys pin"),
    ({"acme": [{"number": "1001", "secret": SECRET, "state": "gone"}]}, "acme[0].state"),
    ({"acme": [{"number": "1", "secret": SECRET}, {"number": "1", "secret": SECRET}]},
     "acme[1].number: 1 is listed twice"),
])  # fmt: skip
def test_extension_errors_name_the_field(extensions: dict[str, Any], message: str) -> None:
    errors = check_extensions(extensions, [ACME])
    assert any(message in error for error in errors), errors
    assert not any(SECRET in error for error in errors)


def test_render_refuses_bad_extensions_without_showing_the_secret() -> None:
    with pytest.raises(ValueError, match="secret") as info:
        render_config(ACME, "pbx1", {"acme": [{"number": "1001", "secret": "tiny"}]})
    assert "tiny" not in str(info.value)


def test_absent_tenant_has_no_config() -> None:
    with pytest.raises(ValueError, match="not served"):
        render_config(GLOBEX, "pbx1", {})
