"""Ansible filter adapter: the tenant compartments of one PBX host (logic in module_utils)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleFilterError

# The pure logic lives in plugins/module_utils; on the controller it is a plain package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "module_utils"))
from pbx_common.compartment import DEFAULT_UPLINK_POOL, compartment_plan, networks_of_version

DOCUMENTATION = r"""
name: pbx_compartments
short_description: Plan the tenant compartments of one PBX host
version_added: 0.1.0
author: Bulkhead maintainers
description:
  - Turns the validated tenant list into one entry per tenant for the given host, with the
    namespace, segment link, address, VXLAN peers and uplink addresses derived from it.
  - Tenants that are absent or no longer placed on the host come out with C(state=absent).
positional: host, underlay, extra_peers, uplink_pool
options:
  _input:
    description: The tenants (C(pbx_tenants)), already checked by validate_inventory.
    type: list
    elements: dict
    required: true
  host:
    description: Inventory hostname of the PBX host.
    type: str
    required: true
  underlay:
    description: PBX hostname to the address its VXLAN tunnels use.
    type: dict
    required: true
  extra_peers:
    description: Further VXLAN endpoints on every VXLAN segment (e.g. the lab's sites).
    type: list
    elements: str
    default: []
  uplink_pool:
    description: IPv4 pool the per-tenant uplink /30s are taken from, by tenant id.
    type: str
    default: 169.254.0.0/16
"""

EXAMPLES = r"""
- name: Plan this host's compartments
  ansible.builtin.set_fact:
    __plan: "{{ pbx_tenants | pbx_compartments(inventory_hostname, underlay_by_host) }}"
"""

RETURN = r"""
_value:
  description: One mapping per tenant (slug, state, netns, segment_type, segment_link, vni,
    vlan, vlan_parent, subnet, subnet_version, sip_transports, address, peers,
    uplink_host_ifname, uplink_network, uplink_host_address, uplink_tenant_address).
  type: list
  elements: dict
"""


def pbx_compartments(
    tenants: Any,
    host: Any,
    underlay: Any,
    extra_peers: Any = None,
    uplink_pool: Any = DEFAULT_UPLINK_POOL,
) -> list[dict[str, Any]]:
    if not isinstance(tenants, list) or not isinstance(underlay, dict):
        raise AnsibleFilterError("pbx_compartments: expects a tenant list and an underlay dict")
    try:
        return compartment_plan(tenants, str(host), underlay, extra_peers or (), str(uplink_pool))
    except (KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"pbx_compartments: {exc} (run validate_inventory first)") from exc


def pbx_networks_of_version(cidrs: Any, version: Any) -> list[str]:
    """Keep the IPv4 (version 4) or IPv6 (version 6) networks of a list of CIDRs."""
    try:
        return networks_of_version(cidrs, int(version))
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"pbx_networks_of_version: {exc}") from exc


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "pbx_compartments": pbx_compartments,
            "pbx_networks_of_version": pbx_networks_of_version,
        }
