"""Per-tenant runtime configuration (TOML) rendered on the controller from the tenant model.

Pure functions shared by the ``pbx_runtime_config`` filter plugin and the unit tests. Secrets
(extension passwords from ansible-vault) enter here and leave only as HA1 digests (MD5 and
SHA-256 of ``user:realm:secret``, RFC 7616): no plaintext secret reaches a host (DESIGN §3).
The tenant list has been checked by validate_inventory; extensions are checked here.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

DEFAULT_TLS_PORT = 5061
DEFAULT_TLS_DIR = "/etc/bulkhead/tenants/{slug}/tls"
VERIFY_MODES = ("none", "optional", "required")
#: The runtime's own rule for user names (pbx_runtime/config.py).
_USER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+\-]{0,63}")
_EXTENSION_KEYS = frozenset({"number", "display_name", "secret", "state"})
MIN_SECRET_LENGTH = 12


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
        })  # fmt: skip
    return sorted(plan, key=lambda entry: entry["slug"])


def check_extensions(extensions: Mapping[str, Any], tenants: list[Mapping[str, Any]]) -> list[str]:
    """Every problem with ``pbx_runtime_extensions``, naming tenant, item and field.

    Messages never contain a secret.
    """
    if not isinstance(extensions, Mapping):
        return ["pbx_runtime_extensions: must be a mapping of tenant slug to a list of extensions"]
    slugs = {tenant["slug"] for tenant in tenants}
    errors = []
    for slug, items in extensions.items():
        where = f"pbx_runtime_extensions.{slug}"
        if slug not in slugs:
            errors.append(f"{where}: no tenant {slug!r} in the inventory")
            continue
        if not isinstance(items, list):
            errors.append(f"{where}: must be a list of extensions")
            continue
        seen: set[str] = set()
        for index, item in enumerate(items):
            at = f"{where}[{index}]"
            if not isinstance(item, Mapping):
                errors.append(f"{at}: must be a mapping")
                continue
            unknown = sorted(set(item) - _EXTENSION_KEYS)
            if unknown:
                errors.append(f"{at}: unknown keys {', '.join(map(str, unknown))}")
            number = str(item.get("number", ""))
            if _USER_RE.fullmatch(number) is None:
                errors.append(f"{at}.number: must be a user name (letters, digits, . _ + -)")
            elif number in seen:
                errors.append(f"{at}.number: {number} is listed twice")
            seen.add(number)
            state = item.get("state", "present")
            if state not in ("present", "absent"):
                errors.append(f"{at}.state: must be present or absent")
            secret = item.get("secret")
            if state == "present" and (
                not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH
            ):
                errors.append(
                    f"{at}.secret: extension {number}: must be a string of at least "
                    f"{MIN_SECRET_LENGTH} characters (keep it in ansible-vault)"
                )
            name = item.get("display_name", "")
            if not isinstance(name, str):
                errors.append(f"{at}.display_name: must be a string")
    return errors


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
    merged: dict[str, Any] = {"port": DEFAULT_TLS_PORT, "tls_dir": DEFAULT_TLS_DIR,
                              "verify_client": "optional", "limits": {}}  # fmt: skip
    merged.update(settings or {})
    port = merged["port"]
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port: {port!r} is not a TCP port")
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
    tls_dir = str(opts["tls_dir"]).format(slug=slug).rstrip("/")
    lines = [
        "# Managed by Ansible (role pbx_runtime). Users carry HA1 digests only.",
        f"tenant = {_toml(slug)}",
        f"domain = {_toml(domain)}",
        f"realm = {_toml(domain)}",
        "",
        "[[listeners]]",
        'transport = "tls"',
        f"address = {_toml(str(tenant['addresses'][host]).split('/')[0])}",
        f"port = {opts['port']}",
        "",
        "[tls]",
        f"cert = {_toml(tls_dir + '/server.crt')}",
        f"key = {_toml(tls_dir + '/server.key')}",
        f"ca = {_toml(tls_dir + '/chain.pem')}",
        f"crl = {_toml(tls_dir + '/crl.pem')}",
        f"verify_client = {_toml(opts['verify_client'])}",
        "",
    ]
    if opts["limits"]:
        lines.append("[limits]")
        lines += [f"{key} = {_toml(value)}" for key, value in sorted(opts["limits"].items())]
        lines.append("")
    return "\n".join(lines)


def restart_key(tenant: Mapping[str, Any], host: str, settings: Mapping[str, Any] | None) -> str:
    """A fingerprint of the settings a SIGHUP does not pick up (listener, domain, TLS paths)."""
    return hashlib.sha256(render_base(tenant, host, settings).encode()).hexdigest()[:16]


def render_config(
    tenant: Mapping[str, Any],
    host: str,
    extensions: Mapping[str, Any] | None,
    settings: Mapping[str, Any] | None = None,
) -> str:
    """The tenant's runtime configuration for `host`, users as HA1 (MD5 and SHA-256)."""
    extensions = extensions or {}
    slug = tenant["slug"]
    errors = check_extensions({slug: extensions.get(slug, [])}, [tenant])
    if errors:
        raise ValueError("; ".join(errors))
    realm = str(tenant["sip_domain"]).lower()
    lines = [render_base(tenant, host, settings)]
    items = extensions.get(slug, [])
    for item in sorted(items, key=lambda i: str(i["number"])):
        if item.get("state", "present") != "present":
            continue
        user = str(item["number"])
        lines += [
            f"[users.{_toml(user)}]",
            f"ha1_md5 = {_toml(ha1(user, realm, item['secret'], 'MD5'))}",
            f"ha1_sha256 = {_toml(ha1(user, realm, item['secret'], 'SHA-256'))}",
            "",
        ]
    return "\n".join(lines)
