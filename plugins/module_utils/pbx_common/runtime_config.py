"""Per-tenant runtime configuration (TOML) rendered on the controller from the tenant model.

Pure functions shared by the ``pbx_runtime_config`` filter plugin and the unit tests. Secrets
(extension passwords from ansible-vault) enter here and leave only as HA1 digests (MD5 and
SHA-256 of ``user:realm:secret``, RFC 7616): no plaintext secret reaches a host (DESIGN §3).
The tenant model (extensions, runtime settings) has been checked by validate_inventory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

DEFAULT_TLS_PORT = 5061
DEFAULT_SIP_PORT = 5060
DEFAULT_TLS_DIR = "/etc/bulkhead/tenants/{slug}/tls"
VERIFY_MODES = ("none", "optional", "required")


def ha1(user: str, realm: str, secret: str, algorithm: str) -> str:
    """HA1 = H(user:realm:secret) with H one of MD5 or SHA-256 (RFC 7616 §3.4.2)."""
    name = {"MD5": "md5", "SHA-256": "sha256"}[algorithm]
    return hashlib.new(name, f"{user}:{realm}:{secret}".encode()).hexdigest()


def _present(tenant: Mapping[str, Any], host: str) -> bool:
    return tenant.get("state", "present") == "present" and host in tenant.get("addresses", {})


def runtime_tenants(tenants: list[Mapping[str, Any]], host: str) -> list[dict[str, Any]]:
    """The tenants whose runtime this host runs (state present) or must stop (state absent).

    Nothing secret: safe to loop over in tasks that log their items.
    """
    plan = []
    for tenant in tenants:
        slug = tenant["slug"]
        present = _present(tenant, host)
        plan.append({
            "slug": slug,
            "state": "present" if present else "absent",
            "domain": str(tenant["sip_domain"]).lower(),
            "address": str(tenant["addresses"][host]).split("/")[0] if present else None,
            "netns": f"tn-{slug}",
            "user": f"tn-{slug}",
            "unit": f"pbx-runtime@{slug}.service",
            # systemd resource controls; None: the role's defaults.
            "cpu_quota": tenant.get("runtime", {}).get("cpu_quota"),
            "memory_max_mb": tenant.get("runtime", {}).get("memory_max_mb"),
        })  # fmt: skip
    return sorted(plan, key=lambda entry: entry["slug"])


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string (ASCII, escaped) is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise ValueError(f"cannot write {type(value).__name__} as TOML")


def _settings(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    merged: dict[str, Any] = {"port": DEFAULT_TLS_PORT, "sip_port": DEFAULT_SIP_PORT,
                              "tls_dir": DEFAULT_TLS_DIR, "verify_client": "optional",
                              "limits": {}}  # fmt: skip
    merged.update(settings or {})
    for name in ("port", "sip_port"):
        port = merged[name]
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"{name}: {port!r} is not a TCP port")
    if merged["verify_client"] not in VERIFY_MODES:
        raise ValueError(f"verify_client: must be one of {', '.join(VERIFY_MODES)}")
    if not isinstance(merged["limits"], Mapping):
        raise ValueError("limits: must be a mapping (the runtime's [limits] table)")
    return merged


def render_base(tenant: Mapping[str, Any], host: str, settings: Mapping[str, Any] | None) -> str:
    """Everything but the users: what only a restart of the runtime picks up."""
    if not _present(tenant, host):
        raise ValueError(f"tenant {tenant.get('slug')!r} is not served by {host}")
    opts = _settings(settings)
    slug = tenant["slug"]
    domain = str(tenant["sip_domain"]).lower()
    address = str(tenant["addresses"][host]).split("/")[0]
    tls_dir = str(opts["tls_dir"]).format(slug=slug).rstrip("/")
    tuning = tenant.get("runtime", {})
    plain = [t for t in tenant.get("sip_transports", ["tls"]) if t != "tls"]
    lines = [
        "# Managed by Ansible (role pbx_runtime). Users carry HA1 digests only.",
        f"tenant = {_toml(slug)}",
        f"domain = {_toml(domain)}",
        f"realm = {_toml(domain)}",
    ]
    if "digest_algorithms" in tuning:
        lines.append(f"digest_algorithms = {_toml(tuning['digest_algorithms'])}")
    lines += [
        "",
        "[security]",
        # Plain SIP only for tenants whose sip_transports opt in (the firewall opens it too).
        f"allow_insecure_transports = {_toml(bool(plain))}",
        "",
    ]
    listeners = [("tls", opts["port"])] + [(t, opts["sip_port"]) for t in plain]
    for transport, port in listeners:
        lines += ["[[listeners]]", f"transport = {_toml(transport)}",
                  f"address = {_toml(address)}", f"port = {port}", ""]  # fmt: skip
    lines += [
        "[tls]",
        f"cert = {_toml(tls_dir + '/server.crt')}",
        f"key = {_toml(tls_dir + '/server.key')}",
        f"ca = {_toml(tls_dir + '/chain.pem')}",
        f"crl = {_toml(tls_dir + '/crl.pem')}",
        f"verify_client = {_toml(opts['verify_client'])}",
        "",
    ]
    lines += _table("limits", {**opts["limits"], **_pick(tuning, "max_calls")})
    for rule in ("source_lockout", "user_lockout"):
        lines += _table(f"abuse.{rule}", tuning.get(rule, {}))
    return "\n".join(lines)


def _pick(mapping: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {key: mapping[key] for key in keys if key in mapping}


def _table(name: str, values: Mapping[str, Any]) -> list[str]:
    if not values:
        return []
    return [f"[{name}]", *(f"{key} = {_toml(value)}" for key, value in sorted(values.items())),
            ""]  # fmt: skip


def restart_key(tenant: Mapping[str, Any], host: str, settings: Mapping[str, Any] | None) -> str:
    """A fingerprint of the settings a SIGHUP does not pick up (listener, domain, TLS paths)."""
    return hashlib.sha256(render_base(tenant, host, settings).encode()).hexdigest()[:16]


def render_config(
    tenant: Mapping[str, Any],
    host: str,
    secrets: Mapping[Any, str] | None,
    settings: Mapping[str, Any] | None = None,
) -> str:
    """The tenant's runtime configuration for `host`, users as HA1 (MD5 and SHA-256).

    ``secrets``: extension number → secret (the tenant's part of ``pbx_extension_secrets``).
    """
    secrets = {str(number): secret for number, secret in (secrets or {}).items()}
    realm = str(tenant["sip_domain"]).lower()
    lines = [render_base(tenant, host, settings)]
    present = [e for e in tenant.get("extensions", []) if e.get("state", "present") == "present"]
    for user in sorted(str(extension["number"]) for extension in present):
        if not isinstance(secrets.get(user), str):
            raise ValueError(f"tenant {tenant['slug']}: extension {user} has no secret in "
                             "pbx_extension_secrets")
        lines += [
            f"[users.{_toml(user)}]",
            f"ha1_md5 = {_toml(ha1(user, realm, secrets[user], 'MD5'))}",
            f"ha1_sha256 = {_toml(ha1(user, realm, secrets[user], 'SHA-256'))}",
            "",
        ]
    return "\n".join(lines)
