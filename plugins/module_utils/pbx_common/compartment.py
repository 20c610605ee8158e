"""Tenant compartments on one PBX host: names and addresses derived from validated tenants.

Pure functions (stdlib + netaddr) shared by the filter plugins and the unit tests. Input is a
tenant list that validate_inventory has already accepted, so this module trusts its shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from netaddr import IPNetwork

VXLAN_PORT = 4789
SEGMENT_IFNAME = "seg0"  # tenant segment, inside the tenant namespace
UPLINK_IFNAME = "up0"  # uplink veth end, inside the tenant namespace
DEFAULT_UPLINK_POOL = "169.254.0.0/16"
DEFAULT_SIP_TRANSPORTS = ("tls",)  # secure by default: plain SIP is a per-tenant opt-in


def netns_name(slug: str) -> str:
    """The tenant's network namespace (also its service user and group)."""
    return f"tn-{slug}"


def uplink_host_ifname(slug: str) -> str:
    """Host-side end of the uplink veth; slugs are at most 11 chars, so this fits 15."""
    return f"up-{slug}"


def segment_ifname(slug: str, kind: str) -> str:
    """Name of the segment link while it is still in the host namespace, before the move."""
    return f"{'vx' if kind == 'vxlan' else 'vl'}-{slug}"


def uplink_networks(tenant_id: int, pool: str = DEFAULT_UPLINK_POOL) -> tuple[str, str, str]:
    """The tenant's /30 from the uplink pool: (network, host side, tenant side), as CIDRs.

    Derived from the tenant id alone, so adding or removing a tenant never renumbers another.
    """
    pool_net = IPNetwork(pool)
    capacity = pool_net.size // 4
    if not 1 <= tenant_id < capacity:
        raise ValueError(f"tenant id {tenant_id} does not fit uplink pool {pool} ({capacity} /30s)")
    first = pool_net.first + 4 * tenant_id
    net = IPNetwork((first, 30), version=4)
    return str(net.cidr), f"{net[1]}/30", f"{net[2]}/30"


def networks_of_version(cidrs: Iterable[str], version: int) -> list[str]:
    """The networks of one IP version, canonical (nft sets are typed per family)."""
    return [str(net.cidr) for net in map(IPNetwork, cidrs) if net.version == version]


def serves(tenant: Mapping[str, Any], host: str) -> bool:
    """A host serves a tenant when the tenant is present and has an address on it."""
    return tenant.get("state", "present") == "present" and host in tenant["addresses"]


def compartment_plan(
    tenants: Iterable[Mapping[str, Any]],
    host: str,
    underlay: Mapping[str, str],
    extra_peers: Iterable[str] = (),
    uplink_pool: str = DEFAULT_UPLINK_POOL,
) -> list[dict[str, Any]]:
    """One entry per tenant that has (or had) a compartment on `host`.

    `underlay` maps PBX hostnames to the address their VXLAN tunnels use; `extra_peers` are
    further VXLAN endpoints on every VXLAN segment (the lab's site namespaces). Tenants
    that are absent, or no longer placed on this host, get `state: absent` so their compartment
    is removed; a tenant whose file was deleted is not listed and is left alone.
    """
    plan = []
    for tenant in tenants:
        slug = tenant["slug"]
        state = "present" if serves(tenant, host) else "absent"
        subnet = IPNetwork(tenant["subnet"])
        segment = tenant["segment"]
        uplink_net, uplink_host, uplink_tenant = uplink_networks(tenant["id"], uplink_pool)
        entry: dict[str, Any] = {
            "slug": slug,
            "state": state,
            "netns": netns_name(slug),
            "segment_type": segment["type"],
            "segment_link": segment_ifname(slug, segment["type"]),
            "vni": segment.get("vni"),
            "vlan": segment.get("vlan"),
            "vlan_parent": segment.get("parent"),
            "subnet": str(subnet.cidr),
            "subnet_version": subnet.version,
            "sip_transports": list(tenant.get("sip_transports", DEFAULT_SIP_TRANSPORTS)),
            "address": None,
            "peers": [],
            "uplink_host_ifname": uplink_host_ifname(slug),
            "uplink_network": uplink_net,
            "uplink_host_address": uplink_host,
            "uplink_tenant_address": uplink_tenant,
        }
        if state == "present":
            entry["address"] = f"{tenant['addresses'][host]}/{subnet.prefixlen}"
            if segment["type"] == "vxlan":
                peers = [underlay[other] for other in sorted(tenant["addresses"])
                         if other != host and other in underlay]
                peers += list(extra_peers)
                entry["peers"] = sorted(set(peers))
        plan.append(entry)
    return plan
