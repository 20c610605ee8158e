"""Configuration validation: every error names its field; secure defaults hold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from core_support import config_dict

from pbx_runtime.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[3]


def _error(data: dict) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return info.value


def test_valid_config_parses_with_defaults() -> None:
    config = parse_config(config_dict())
    assert config.tenant == "acme" and config.realm == "acme.example.com"
    assert set(config.users["1001"]) == {"MD5", "SHA-256"}
    assert config.limits.max_transactions == 10_000 and config.call_auth_status == 407


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("tenant"), "tenant"),
        (lambda d: d.update(tenant="Acme Corp"), "tenant"),
        (lambda d: d["listeners"][1].update(port=70000), "listeners[1].port"),
        (lambda d: d["listeners"][0].update(transport="sctp"), "listeners[0].transport"),
        (lambda d: d["listeners"][0].update(address="pbx.local"), "listeners[0].address"),
        (lambda d: d.pop("security"), "listeners[0].transport"),  # udp needs the opt-in
        (lambda d: d["users"]["1001"].update(password="hunter2"), "users.1001.password"),
        (lambda d: d["users"]["1001"].update(ha1_md5="abc"), "users.1001.ha1_md5"),
        (lambda d: d["users"]["1002"].pop("ha1_sha256"), "users.1002.ha1_sha256"),
        (lambda d: d["limits"].update(max_calls=0), "limits.max_calls"),
        (lambda d: d["limits"].update(shed="maybe"), "limits.shed"),
        (lambda d: d["abuse"].update(rate=-1), "abuse.rate"),
        (lambda d: d.update(colour="blue"), "colour"),
        (
            lambda d: d["listeners"].append({"transport": "tls", "address": "::1", "port": 5061}),
            "tls",
        ),
    ],
)
def test_errors_name_the_field(mutate, field: str) -> None:
    data = config_dict()
    mutate(data)
    assert _error(data).field == field


def test_tls_paths_must_exist(tmp_path: Path) -> None:
    data = config_dict()
    data["tls"] = {"cert": "missing.pem", "key": "missing.key"}
    with pytest.raises(ConfigError) as info:
        parse_config(data, base=tmp_path)
    assert info.value.field == "tls.cert"


def test_check_config_command_exits_non_zero_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('tenant = "acme"\ndomain = "x.test"\n[[listeners]]\ntransport = "udp"\n'
                   'address = "127.0.0.1"\nport = 5060\n')  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "pbx_runtime", "check-config", str(bad)],
        capture_output=True, text=True, cwd=ROOT, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert (
        "listeners[0].transport" in result.stderr and "allow_insecure_transports" in result.stderr
    )
    assert load_config  # the module-level loader is the one the command uses


def test_call_table_is_documented() -> None:
    from pbx_runtime.b2bua import render_table

    doc = (ROOT / "docs" / "runtime" / "calls.md").read_text(encoding="utf-8")
    assert render_table() in doc
