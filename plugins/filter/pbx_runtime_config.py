"""Ansible filter adapter: per-tenant runtime plan and configuration (logic in module_utils)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleFilterError

# The pure logic lives in plugins/module_utils; on the controller it is a plain package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "module_utils"))
from pbx_common.runtime_config import render_config, restart_key, runtime_tenants

DOCUMENTATION = r"""
name: pbx_runtime_config
short_description: Render a tenant's pbx_runtime configuration (TOML, users as HA1)
version_added: 0.1.0
author: Bulkhead maintainers
description:
  - Renders the runtime configuration of one tenant on one host; extension secrets are turned
    into HA1 digests (MD5 and SHA-256) on the controller and never appear in the output.
  - Companion filters C(pbx_runtime_tenants) (the tenants a host runs or must stop, nothing
    secret) and C(pbx_runtime_restart_key) (fingerprint of what only a restart picks up).
  - The tenant, its C(extensions) and C(runtime) settings are checked by validate_inventory.
positional: host, secrets, settings
options:
  _input:
    description: One tenant (an item of C(pbx_tenants)).
    type: dict
    required: true
  host:
    description: Inventory hostname of the PBX host.
    type: str
    required: true
  secrets:
    description: Extension number to secret, the tenant's part of C(pbx_extension_secrets).
    type: dict
    required: true
  settings:
    description: port (TLS), sip_port (opted-in UDP/TCP), tls_dir (with C({slug})),
      verify_client, limits.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Render acme's configuration
  ansible.builtin.copy:
    content: >-
      {{ tenant | pbx_runtime_config(inventory_hostname, pbx_extension_secrets[tenant.slug]) }}
    dest: /etc/bulkhead/tenants/acme/runtime.toml
    mode: "0640"
  no_log: true
"""

RETURN = r"""
_value:
  description: The configuration file's text (TOML).
  type: str
"""


def _wrap(name: str, func: Any, *args: Any) -> Any:
    try:
        return func(*args)
    except (KeyError, TypeError, ValueError) as exc:
        # The messages of the pure functions never contain a secret.
        raise AnsibleFilterError(f"{name}: {exc}") from None


def pbx_runtime_config(tenant: Any, host: Any, secrets: Any, settings: Any = None) -> str:
    return str(_wrap("pbx_runtime_config", render_config, tenant, str(host), secrets, settings))


def pbx_runtime_restart_key(tenant: Any, host: Any, settings: Any = None) -> str:
    return str(_wrap("pbx_runtime_restart_key", restart_key, tenant, str(host), settings))


def pbx_runtime_tenants(tenants: Any, host: Any) -> list[dict[str, Any]]:
    if not isinstance(tenants, list):
        raise AnsibleFilterError("pbx_runtime_tenants: expects the tenant list (pbx_tenants)")
    return list(_wrap("pbx_runtime_tenants", runtime_tenants, tenants, str(host)))


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "pbx_runtime_config": pbx_runtime_config,
            "pbx_runtime_restart_key": pbx_runtime_restart_key,
            "pbx_runtime_tenants": pbx_runtime_tenants,
        }
