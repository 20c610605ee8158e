from __future__ import annotations

import copy
from typing import Any

import pytest
from pbx_common.compartment import compartment_plan, uplink_networks

UNDERLAY = {"pbx1": "10.254.0.11", "pbx2": "10.254.0.12"}
ACME: dict[str, Any] = {
    "slug": "acme", "id": 1, "state": "present", "subnet": "172.20.1.0/24",
    "segment": {"type": "vxlan", "vni": 1001},
    "addresses": {"pbx1": "172.20.1.11", "pbx2": "172.20.1.12"},
}
NORTHWIND: dict[str, Any] = {
    "slug": "northwind", "id": 10, "subnet": "10.41.10.0/24",
    "segment": {"type": "vlan", "vlan": 110, "parent": "ens4"},
    "addresses": {"pbx1": "10.41.10.11"},
}


def test_vxlan_tenant_on_a_host() -> None:
    [entry] = compartment_plan([ACME], "pbx1", UNDERLAY, ["10.254.0.1"])
    assert entry["state"] == "present"
    assert entry["netns"] == "tn-acme"
    assert entry["segment_link"] == "vx-acme"
    assert entry["address"] == "172.20.1.11/24"
    assert entry["peers"] == ["10.254.0.1", "10.254.0.12"]  # other hosts + the lab site
    assert entry["uplink_host_ifname"] == "up-acme"
    assert (entry["uplink_host_address"], entry["uplink_tenant_address"]) == (
        "169.254.0.5/30", "169.254.0.6/30")


def test_vlan_tenant_has_no_peers() -> None:
    [entry] = compartment_plan([NORTHWIND], "pbx1", UNDERLAY)
    assert (entry["segment_link"], entry["vlan"], entry["vlan_parent"]) == ("vl-northwind", 110,
                                                                           "ens4")
    assert entry["peers"] == []


@pytest.mark.parametrize("change", [{"state": "absent"}, {"addresses": {"pbx2": "172.20.1.12"}}])
def test_absent_or_moved_tenant_is_removed_from_the_host(change: dict[str, Any]) -> None:
    tenant = copy.deepcopy(ACME) | change
    [entry] = compartment_plan([tenant], "pbx1", UNDERLAY)
    assert entry["state"] == "absent"
    assert entry["address"] is None and entry["peers"] == []


def test_uplinks_are_disjoint_and_stable_per_tenant_id() -> None:
    nets = {uplink_networks(tenant_id)[0] for tenant_id in range(1, 4001)}
    assert len(nets) == 4000
    assert uplink_networks(7) == ("169.254.0.28/30", "169.254.0.29/30", "169.254.0.30/30")


def test_tenant_id_beyond_the_pool_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        uplink_networks(64, "10.99.0.0/24")


def test_networks_of_version_splits_and_canonicalises() -> None:
    from pbx_common.compartment import networks_of_version

    cidrs = ["10.254.0.0/24", "2001:db8::/64", "192.0.2.7"]
    assert networks_of_version(cidrs, 4) == ["10.254.0.0/24", "192.0.2.7/32"]
    assert networks_of_version(cidrs, 6) == ["2001:db8::/64"]
