"""Ansible filter adapter for the tenant inventory validator (logic lives in module_utils)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleFilterError

# The pure logic lives in plugins/module_utils; on the controller it is a plain package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "module_utils"))
from pbx_common.tenant_model import inventory_errors

DOCUMENTATION = r"""
name: pbx_inventory_errors
short_description: Validate the Bulkhead tenant inventory
version_added: 0.1.0
author: Bulkhead maintainers
description:
  - Checks every tenant mapping (one C(inventories/<env>/tenants/<slug>.yml) file each) and
    the tenant set as a whole, and returns the list of problems found.
  - 'Each problem reads "<file> (tenant <slug>): <field>: <what is wrong>". An empty list
    means the inventory is valid.'
  - Checks field presence and types, unknown fields, slug vs. file name, unique C(slug),
    C(id), C(sip_domain), C(segment.vni) and C(segment.vlan), subnet shape and special
    ranges, subnet overlaps between tenants and with O(reserved_networks), and each
    per-host address against its subnet and the PBX host list.
  - Checks each tenant's C(extensions) (unique numbers, display names, state) and C(runtime)
    settings (quota and lockout ranges), and that every present extension has a strong
    secret in O(extension_secrets). No message ever contains a secret.
  - Malformed tenant data is reported, never raised; only wrong argument types fail the task.
positional: pbx_hosts, reserved_networks, extension_secrets
options:
  _input:
    description:
      - The tenant mappings (usually C(pbx_tenants)), each carrying a C(_file) key with its
        path relative to the inventory directory.
    type: list
    elements: dict
    required: true
  pbx_hosts:
    description:
      - Inventory hostnames of the PBX hosts. Keys of each tenant's C(addresses) must be
        among them.
    type: list
    elements: string
    required: true
  reserved_networks:
    description:
      - CIDRs no tenant subnet may overlap, for example the management and lab networks.
    type: list
    elements: string
    default: []
  extension_secrets:
    description:
      - C(pbx_extension_secrets) (ansible-vault), tenant slug to extension number to secret.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Refuse to provision an invalid tenant inventory
  ansible.builtin.assert:
    that: tenant_errors | length == 0
    fail_msg: "{{ tenant_errors }}"
    quiet: true
  vars:
    tenant_errors: >-
      {{ pbx_tenants | pbx_inventory_errors(groups['pbx'], ['10.254.0.0/24']) }}
"""

RETURN = r"""
_value:
  description:
    - 'One message per problem, in the form "<file> (tenant <slug>): <field>: <problem>";
      the slug reads C(?) when it is missing or invalid.'
    - Empty when the inventory is valid.
  type: list
  elements: string
  sample:
    - "tenants/globex.yml (tenant globex): id: 1 is already used by tenants/acme.yml (tenant acme)"
"""


def _require_list(value: Any, name: str, elements: type | None = None) -> None:
    # Only the argument shapes are enforced here; bad tenant *data* is reported, not raised.
    if not isinstance(value, (list, tuple)):
        raise AnsibleFilterError(f"pbx_inventory_errors: {name} must be a list, "
                                 f"got {type(value).__name__}")
    for item in value if elements else ():
        if not isinstance(item, elements):
            raise AnsibleFilterError(f"pbx_inventory_errors: {name} must contain only "
                                     f"{elements.__name__} items, got {item!r:.60}")


def pbx_inventory_errors(tenants: Any, pbx_hosts: Any, reserved_networks: Any = None,
                         extension_secrets: Any = None) -> list[str]:
    _require_list(tenants, "the input (tenant list)")
    _require_list(pbx_hosts, "pbx_hosts", str)
    reserved_networks = [] if reserved_networks is None else reserved_networks
    _require_list(reserved_networks, "reserved_networks", str)
    return inventory_errors(tenants, pbx_hosts, reserved_networks, extension_secrets)


class FilterModule:
    """Bulkhead tenant inventory filters."""

    def filters(self) -> dict[str, Any]:
        return {"pbx_inventory_errors": pbx_inventory_errors}
