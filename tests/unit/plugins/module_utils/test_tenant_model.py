"""Unit tests for the tenant inventory validator and its filter adapter."""

from __future__ import annotations

import copy
import importlib.util
import itertools
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from netaddr import IPAddress, IPNetwork
from pbx_common.compartment import netns_name
from pbx_common.tenant_model import SLUG_PATTERN, inventory_errors

HOSTS = ["pbx1", "pbx2"]
RESERVED = ["10.254.0.0/24"]
ACME = "tenants/acme.yml (tenant acme)"
GLOBEX = "tenants/globex.yml (tenant globex)"
DELETE = object()  # sentinel: remove the field instead of setting it


def make_tenant(slug: str, tenant_id: int, net: int) -> dict[str, Any]:
    return {
        "_file": f"tenants/{slug}.yml",
        "slug": slug,
        "id": tenant_id,
        "sip_domain": f"{slug}.lab.bulkhead.test",
        "state": "present",
        "segment": {"type": "vxlan", "vni": 1000 + tenant_id},
        "subnet": f"172.20.{net}.0/24",
        "addresses": {"pbx1": f"172.20.{net}.11", "pbx2": f"172.20.{net}.12"},
    }


VALID = [make_tenant("acme", 1, 1), make_tenant("globex", 2, 2)]


@pytest.fixture
def tenants() -> list[dict[str, Any]]:
    return copy.deepcopy(VALID)


def check(tenants: Any, hosts: Any = HOSTS, reserved: Any = RESERVED,
          secrets: Any = None) -> list[str]:
    errors = inventory_errors(tenants, hosts, reserved, secrets)
    assert isinstance(errors, list)
    assert all(isinstance(error, str) for error in errors)
    return errors


def set_path(tenant: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for key in parents:
        tenant = tenant[key]
    if value is DELETE:
        del tenant[leaf]
    else:
        tenant[leaf] = value


def test_valid_fixture_has_no_errors(tenants):
    assert check(tenants) == []


@pytest.mark.parametrize(
    "tenant",
    [
        pytest.param({"state": "absent"}, id="absent"),
        pytest.param({"state": None}, id="state-defaults-to-present"),
        pytest.param({"_note": "metadata keys are allowed"}, id="metadata-key"),
        pytest.param({"segment": {"type": "vlan", "vlan": 101, "parent": "eth1"}}, id="vlan"),
        pytest.param({"subnet": "2001:db8:1::/64",
                      "addresses": {"pbx1": "2001:db8:1::11", "pbx2": "2001:db8:1::12"}},
                     id="ipv6"),
        pytest.param({"subnet": "172.20.8.0/29", "addresses": {"pbx1": "172.20.8.6"}},
                     id="smallest-ipv4-subnet"),
    ],
)
def test_valid_variants(tenants, tenant):
    tenants[0].update(tenant)
    assert check(tenants) == []


@pytest.mark.parametrize("field", ["slug", "id", "sip_domain", "segment", "subnet", "addresses",
                                   "segment.type"])
@pytest.mark.parametrize("value", [DELETE, None], ids=["absent", "empty"])
def test_missing_required_field(tenants, field, value):
    set_path(tenants[1], field, value)
    label = "tenants/globex.yml (tenant ?)" if field == "slug" else GLOBEX
    assert f"{label}: {field}: required field is missing" in check(tenants)


# (tenant index, field path, new value, expected message prefix, expected fragment)
RULES = [
    # unknown keys
    (0, "subnett", "172.20.9.0/24", f"{ACME}: subnett:", "unknown field"),
    (0, "segment.vnii", 7, f"{ACME}: segment.vnii:", "unknown field"),
    # slug
    (0, "slug", "Acme", "tenants/acme.yml (tenant ?): slug:", "is not a valid slug"),
    (0, "slug", "a", "tenants/acme.yml (tenant ?): slug:", "is not a valid slug"),
    (0, "slug", "a" * 12, "tenants/acme.yml (tenant ?): slug:", "is not a valid slug"),
    (0, "slug", "acme\n", "tenants/acme.yml (tenant ?): slug:", "is not a valid slug"),
    (0, "slug", 7, "tenants/acme.yml (tenant ?): slug:", "must be a string"),
    (0, "slug", "acme2", "tenants/acme.yml (tenant acme2): slug:",
     "must equal the file's basename 'acme'"),
    # id
    (0, "id", "1", f"{ACME}: id:", "must be an integer, got string"),
    (0, "id", True, f"{ACME}: id:", "must be an integer, got boolean"),
    (0, "id", 1.0, f"{ACME}: id:", "must be an integer, got number"),
    (0, "id", 0, f"{ACME}: id:", "out of range 1..4000"),
    (0, "id", 4001, f"{ACME}: id:", "out of range 1..4000"),
    # sip_domain
    (0, "sip_domain", "Acme.lab.test", f"{ACME}: sip_domain:", "lowercase FQDN"),
    (0, "sip_domain", "localhost", f"{ACME}: sip_domain:", "at least two labels"),
    (0, "sip_domain", "-acme.test", f"{ACME}: sip_domain:", "lowercase FQDN"),
    (0, "sip_domain", "acme-.test", f"{ACME}: sip_domain:", "lowercase FQDN"),
    (0, "sip_domain", "acme.test.", f"{ACME}: sip_domain:", "lowercase FQDN"),
    (0, "sip_domain", "a" * 64 + ".test", f"{ACME}: sip_domain:", "lowercase FQDN"),
    (0, "sip_domain", ".".join(["a" * 63] * 4), f"{ACME}: sip_domain:", "lowercase FQDN"),
    (0, "sip_domain", ["acme.test"], f"{ACME}: sip_domain:", "must be a string, got list"),
    # state
    (0, "state", "gone", f"{ACME}: state:", "must be one of: present, absent"),
    # segment
    (0, "segment", "vxlan", f"{ACME}: segment:", "must be a mapping, got string"),
    (0, "segment.type", "gre", f"{ACME}: segment.type:", "must be one of: vlan, vxlan"),
    (0, "segment.vni", DELETE, f"{ACME}: segment.vni:", "required field is missing"),
    (0, "segment.vni", 0, f"{ACME}: segment.vni:", "out of range 1..16777215"),
    (0, "segment.vni", 16777216, f"{ACME}: segment.vni:", "out of range 1..16777215"),
    (0, "segment.vni", "1001", f"{ACME}: segment.vni:", "must be an integer"),
    (0, "segment.vlan", 101, f"{ACME}: segment.vlan:", "not allowed for segment type vxlan"),
    (0, "segment.parent", "eth1", f"{ACME}: segment.parent:", "not allowed for segment type vxlan"),
    (0, "segment", {"type": "vlan", "parent": "eth1"}, f"{ACME}: segment.vlan:",
     "required field is missing"),
    (0, "segment", {"type": "vlan", "vlan": 101}, f"{ACME}: segment.parent:",
     "required field is missing"),
    (0, "segment", {"type": "vlan", "vlan": 1, "parent": "eth1"}, f"{ACME}: segment.vlan:",
     "out of range 2..4094"),
    (0, "segment", {"type": "vlan", "vlan": 4095, "parent": "eth1"}, f"{ACME}: segment.vlan:",
     "out of range 2..4094"),
    (0, "segment", {"type": "vlan", "vlan": 101, "parent": "eth1.but-too-long"},
     f"{ACME}: segment.parent:", "is not an interface name"),
    (0, "segment", {"type": "vlan", "vlan": 101, "parent": "eth1", "vni": 5},
     f"{ACME}: segment.vni:", "not allowed for segment type vlan"),
    # subnet shape
    (0, "subnet", 5, f"{ACME}: subnet:", "must be a CIDR string"),
    (0, "subnet", "172.20.1.300/24", f"{ACME}: subnet:", "is not a valid CIDR"),
    (0, "subnet", "172.20.1.0", f"{ACME}: subnet:", "has no prefix length"),
    (0, "subnet", "172.20.1.5/24", f"{ACME}: subnet:", "has host bits set"),
    (0, "subnet", "172.20.1.0/255.255.255.0", f"{ACME}: subnet:", "canonical form 172.20.1.0/24"),
    (0, "subnet", "172.20.0.0/15", f"{ACME}: subnet:", "prefix length must be /16../29"),
    (0, "subnet", "172.20.1.0/30", f"{ACME}: subnet:", "prefix length must be /16../29"),
    (0, "subnet", "2001:db8::/47", f"{ACME}: subnet:", "prefix length must be /48../126"),
    (0, "subnet", "2001:db8::/127", f"{ACME}: subnet:", "prefix length must be /48../126"),
    # special ranges
    (0, "subnet", "127.0.0.0/24", f"{ACME}: subnet:", "loopback range 127.0.0.0/8"),
    (0, "subnet", "169.254.1.0/24", f"{ACME}: subnet:", "link-local range 169.254.0.0/16"),
    (0, "subnet", "224.0.1.0/24", f"{ACME}: subnet:", "multicast range 224.0.0.0/4"),
    (0, "subnet", "0.0.0.0/16", f"{ACME}: subnet:", "unspecified ('this network') range"),
    (0, "subnet", "240.0.0.0/24", f"{ACME}: subnet:", "reserved range 240.0.0.0/4"),
    (0, "subnet", "255.255.255.248/29", f"{ACME}: subnet:", "limited broadcast range"),
    (0, "subnet", "::/126", f"{ACME}: subnet:", "unspecified range ::/128"),
    (0, "subnet", "fe80::/64", f"{ACME}: subnet:", "link-local range fe80::/10"),
    (0, "subnet", "ff02::/64", f"{ACME}: subnet:", "multicast range ff00::/8"),
    # addresses
    (0, "addresses", ["172.20.1.11"], f"{ACME}: addresses:", "must be a mapping, got list"),
    (0, "addresses", {}, f"{ACME}: addresses:", "must map at least one PBX host"),
    (0, "addresses.pbx9", "172.20.1.19", f"{ACME}: addresses.pbx9:", "unknown PBX host"),
    (0, "addresses.pbx1", "172.20.1.300", f"{ACME}: addresses.pbx1:", "not a valid IP address"),
    (0, "addresses.pbx1", "172.20.1.11/24", f"{ACME}: addresses.pbx1:", "not a valid IP"),
    (0, "addresses.pbx1", 11, f"{ACME}: addresses.pbx1:", "must be an IP address string"),
    (0, "addresses.pbx1", "2001:db8::11", f"{ACME}: addresses.pbx1:",
     "is IPv6 but subnet 172.20.1.0/24 is IPv4"),
    (0, "addresses.pbx1", "172.20.2.11", f"{ACME}: addresses.pbx1:",
     "outside subnet 172.20.1.0/24"),
    (0, "addresses.pbx1", "172.20.1.0", f"{ACME}: addresses.pbx1:", "is the network address"),
    (0, "addresses.pbx1", "172.20.1.255", f"{ACME}: addresses.pbx1:", "is the broadcast address"),
    (0, "addresses.pbx2", "172.20.1.11", f"{ACME}: addresses.pbx2:",
     "172.20.1.11 is also used by addresses.pbx1"),
    # duplicates across tenants name both tenants and files
    (1, "id", 1, f"{GLOBEX}: id:", f"1 is already used by {ACME}"),
    (1, "sip_domain", "acme.lab.bulkhead.test", f"{GLOBEX}: sip_domain:",
     f"acme.lab.bulkhead.test is already used by {ACME}"),
    (1, "segment.vni", 1001, f"{GLOBEX}: segment.vni:", f"1001 is already used by {ACME}"),
    (1, "slug", "acme", "tenants/globex.yml (tenant acme): slug:",
     f"acme is already used by {ACME}"),
]


@pytest.mark.parametrize(("index", "path", "value", "prefix", "fragment"), RULES,
                         ids=[f"{r[1]}={'<delete>' if r[2] is DELETE else repr(r[2])[:30]}"
                              for r in RULES])
def test_rule(tenants, index, path, value, prefix, fragment):
    set_path(tenants[index], path, value)
    errors = check(tenants)
    matching = [e for e in errors if e.startswith(prefix + " ") and fragment in e]
    assert matching, errors


def test_duplicate_vlan(tenants):
    for tenant in tenants:
        tenant["segment"] = {"type": "vlan", "vlan": 101, "parent": "eth1"}
    assert check(tenants) == [f"{GLOBEX}: segment.vlan: 101 is already used by {ACME}"]


def test_overlapping_subnets_name_both_tenants(tenants):
    tenants[1]["subnet"] = "172.20.0.0/16"
    assert check(tenants) == [
        f"{GLOBEX}: subnet: 172.20.0.0/16 overlaps {ACME} subnet 172.20.1.0/24"]


def test_overlap_is_reported_on_the_later_tenant(tenants):
    tenants[0]["subnet"] = "172.20.0.0/16"
    assert check(tenants) == [
        f"{GLOBEX}: subnet: 172.20.2.0/24 overlaps {ACME} subnet 172.20.0.0/16"]


def test_absent_tenant_still_owns_its_resources(tenants):
    tenants[0]["state"] = "absent"
    tenants[1].update(id=1, subnet="172.20.0.0/16")
    errors = check(tenants)
    assert any(e.startswith(f"{GLOBEX}: id: 1 is already used by {ACME}") for e in errors)
    assert any(e.startswith(f"{GLOBEX}: subnet: 172.20.0.0/16 overlaps {ACME}") for e in errors)


def test_subnet_overlapping_reserved_network(tenants):
    errors = check(tenants, reserved=["10.254.0.0/24", "172.20.0.0/22"])
    assert errors == [
        f"{ACME}: subnet: 172.20.1.0/24 overlaps reserved network 172.20.0.0/22",
        f"{GLOBEX}: subnet: 172.20.2.0/24 overlaps reserved network 172.20.0.0/22",
    ]


def test_invalid_reserved_network_is_reported(tenants):
    assert check(tenants, reserved=["10.254.0.0/24", "nope", 7]) == [
        "reserved_networks: 'nope' is not a valid CIDR",
        "reserved_networks: 7 is not a valid CIDR",
    ]


def test_unknown_pbx_host_lists_known_hosts(tenants):
    assert check(tenants, hosts=["pbx1"]) == [
        f"{ACME}: addresses.pbx2: unknown PBX host (known PBX hosts: pbx1)",
        f"{GLOBEX}: addresses.pbx2: unknown PBX host (known PBX hosts: pbx1)",
    ]


def test_tenant_that_is_not_a_mapping(tenants):
    tenants.append("oops")
    assert check(tenants) == ["pbx_tenants[2] (tenant ?): tenant: must be a mapping of tenant "
                              "fields, got string"]


def test_file_without_a_mapping(tenants):
    # How the inventory plugin passes on a file whose YAML is not a mapping.
    tenants.append({"_file": "tenants/broken.yml", "_content": ["slug: broken"]})
    assert check(tenants) == ["tenants/broken.yml (tenant ?): tenant: file must hold a mapping "
                              "of tenant fields, got list"]


def test_slug_must_match_yaml_basename(tenants):
    tenants[0]["_file"] = "tenants/acme.yaml"
    assert check(tenants) == []
    tenants[0]["_file"] = "tenants/other.yml"
    assert check(tenants) == ["tenants/other.yml (tenant acme): slug: acme must equal the "
                              "file's basename 'other'"]


@pytest.mark.parametrize(
    "garbage",
    [None, "acme", 42, [1, 2, 3], [None], {"slug": None},
     {"segment": [1], "addresses": "pbx1", "subnet": {"a": 1}, "id": [1], "slug": {}},
     {"segment": {"type": ["vxlan"], "vni": {}}, "addresses": {1: None, None: []}}],
)
def test_garbage_tenant_is_reported(tenants, garbage):
    tenants.append(garbage)
    assert check(tenants)


@pytest.mark.parametrize("args", [(None, HOSTS, RESERVED), ("acme", HOSTS, RESERVED),
                                  ({"slug": "acme"}, HOSTS, RESERVED), ([], None, None),
                                  ([], "pbx1", "10.0.0.0/8")])
def test_garbage_arguments_are_reported(args):
    assert check(*args)


def test_helpers():
    assert netns_name("acme") == "tn-acme"
    assert re.fullmatch(SLUG_PATTERN, "a" * 11)
    # The longest slug still fits the 15-char interface name limit with a 3-char prefix.
    assert len(netns_name("a" * 11)) <= 15


# --- property tests: garbage never raises; overlap sweep matches brute force ------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
FIELDS = ["slug", "id", "sip_domain", "state", "segment", "segment.type", "segment.vni",
          "subnet", "addresses", "addresses.pbx1", "_file", "segment.extra", "extra"]


@given(JSON)
def test_arbitrary_tenant_never_raises(garbage):
    errors = check([copy.deepcopy(VALID[0]), garbage])
    assert errors or garbage == VALID[0]


@given(st.sampled_from(FIELDS), JSON)
def test_arbitrary_field_value_never_raises(path, value):
    tenants = copy.deepcopy(VALID)
    set_path(tenants[0], path, value)
    check(tenants)


@given(JSON, JSON, JSON)
def test_arbitrary_arguments_never_raise(tenants, hosts, reserved):
    check(tenants, hosts, reserved)


@given(st.lists(st.tuples(st.integers(0, 2**16 - 1), st.integers(16, 29)), max_size=12))
def test_overlap_detection_matches_brute_force(blocks):
    # Random blocks inside 172.16.0.0/16: nested, disjoint and duplicate subnets all occur.
    nets = [IPNetwork(f"{IPAddress(0xAC100000 + offset)}/{prefix}").cidr
            for offset, prefix in blocks]
    tenants = []
    for i, net in enumerate(nets, start=1):
        tenant = make_tenant(f"t{i}", i, 0)
        tenant.update(subnet=str(net.cidr), addresses={"pbx1": str(net[1])})
        tenants.append(tenant)
    expected = {
        f"tenants/t{j + 1}.yml (tenant t{j + 1}): subnet: {b} overlaps "
        f"tenants/t{i + 1}.yml (tenant t{i + 1}) subnet {a}"
        for (i, a), (j, b) in itertools.combinations(enumerate(nets), 2)
        if a.first <= b.last and b.first <= a.last
    }
    assert set(check(tenants)) == expected


# --- the Ansible filter adapter ---------------------------------------------------------------

FILTER_PATH = Path(__file__).resolve().parents[4] / "plugins" / "filter" / "pbx_inventory.py"


@pytest.fixture(scope="module")
def pbx_filter():
    spec = importlib.util.spec_from_file_location("pbx_inventory_filter", FILTER_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FilterModule().filters()["pbx_inventory_errors"]


def test_filter_returns_model_errors(pbx_filter, tenants):
    assert pbx_filter(tenants, HOSTS, RESERVED) == []
    assert pbx_filter(tenants, HOSTS) == []
    tenants[1]["id"] = 1
    assert pbx_filter(tenants, HOSTS) == [f"{GLOBEX}: id: 1 is already used by {ACME}"]


@pytest.mark.parametrize("args", [("x", HOSTS), ({}, HOSTS), (None, HOSTS), ([], "pbx1"),
                                  ([], [1]), ([], HOSTS, "10.0.0.0/8"), ([], HOSTS, [None])])
def test_filter_rejects_wrong_argument_types(pbx_filter, args):
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError):
        pbx_filter(*args)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ([], "non-empty list"),
        ("tls", "non-empty list"),
        (["tls", "sctp"], "'sctp' must be one of"),
        (["tls", "tls"], "twice"),
    ],
)
def test_sip_transports_rules(
    tenants: list[dict[str, Any]], value: object, problem: str
) -> None:
    tenants[0]["sip_transports"] = value
    errors = check(tenants)
    assert len(errors) == 1
    assert errors[0].startswith(f"{ACME}: sip_transports:") and problem in errors[0]


def test_sip_transports_opt_in_is_valid(tenants: list[dict[str, Any]]) -> None:
    tenants[0]["sip_transports"] = ["tls", "udp"]
    assert check(tenants) == []


# --- extensions and runtime settings ---------------------------------------------------------

SECRET = "Zq7-wL2p_Vx9sKf4Rt"
SECRETS = {"acme": {"1001": SECRET, 1002: SECRET + "2"}}


def extension(**fields: Any) -> dict[str, Any]:
    return {"number": "1001", "display_name": "Alice", "state": "present"} | fields


def test_extensions_and_runtime_settings_are_valid(tenants: list[dict[str, Any]]) -> None:
    tenants[0]["extensions"] = [extension(), extension(number=1002, display_name="Bob Ö"),
                                {"number": "1003", "state": "absent"}]  # fmt: skip
    tenants[0]["runtime"] = {"cpu_quota": 50, "memory_max_mb": 256, "max_calls": 20,
                             "source_lockout": {"threshold": 5, "lock": 60, "max_lock": 3600}}
    assert check(tenants, secrets=SECRETS) == []


@pytest.mark.parametrize(("value", "fragment"), [
    ("not a list", "extensions: must be a list, got string"),
    ([42], "extensions[0]: must be a mapping of extension fields, got integer"),
    ([extension(number="10-01")], "extensions[0].number: '10-01' is not an extension number"),
    ([extension(number=True)], "extensions[0].number: True is not an extension number"),
    ([extension(), extension(number=1001)], "extensions[1].number: 1001 is also extensions[0]"),
    ([extension(number="1009")],
     "extensions[0]: secret pbx_extension_secrets.acme.1009: required field is missing"),
    ([extension(display_name='Al"ice')], "extensions[0].display_name:"),
    ([extension(secret="inline")], "extensions[0].secret: unknown field"),
    ([extension(state="gone")], "extensions[0].state: 'gone' must be one of: present, absent"),
])  # fmt: skip
def test_extension_rules(tenants: list[dict[str, Any]], value: Any, fragment: str) -> None:
    tenants[0]["extensions"] = value
    errors = check(tenants, secrets=SECRETS)
    assert any(error.startswith(f"{ACME}: ") and fragment in error for error in errors), errors


@pytest.mark.parametrize("secret", ["aaaaaaaaaaaaaaaaaaaa", "Sh0rt!x", "abcdefgabcdefgabcdefg", 17])
def test_weak_secret_is_refused_and_never_shown(tenants: list[dict[str, Any]],
                                                secret: Any) -> None:
    tenants[0]["extensions"] = [extension()]
    errors = check(tenants, secrets={"acme": {"1001": secret}})
    assert len(errors) == 1 and errors[0].startswith(
        f"{ACME}: extensions[0]: secret pbx_extension_secrets.acme.1001: "), errors
    assert str(secret) not in errors[0]


def test_stray_and_malformed_secrets_are_reported(tenants: list[dict[str, Any]]) -> None:
    tenants[0]["extensions"] = [extension()]
    errors = check(tenants, secrets={"acme": {"1001": SECRET, "1010": SECRET},
                                     "nobody": {"1": SECRET}, "globex": "x"})  # fmt: skip
    assert errors == [
        "pbx_extension_secrets.acme.1010: no such extension in the tenant files",
        "pbx_extension_secrets.nobody.1: no such extension in the tenant files",
        "pbx_extension_secrets.globex: must be a mapping of extension number to secret",
    ]
    assert check(tenants, secrets=[SECRET]) == [
        "pbx_extension_secrets: must be a mapping of tenant slug to {number: secret}, got list",
        f"{ACME}: extensions[0]: secret pbx_extension_secrets.acme.1001: required field is missing",
    ]


@pytest.mark.parametrize(("runtime", "fragment"), [
    ({"cpu_quota": 1}, "runtime.cpu_quota: 1 is out of range 5..400"),
    ({"memory_max_mb": 10**6}, "runtime.memory_max_mb: 1000000 is out of range"),
    ({"max_calls": 0}, "runtime.max_calls: 0 is out of range"),
    ({"digest_algorithms": ["SHA-512"]}, "runtime.digest_algorithms: 'SHA-512' must be one of"),
    ({"threads": 4}, "runtime.threads: unknown field"),
    ({"user_lockout": 5}, "runtime.user_lockout: must be a mapping"),
    ({"user_lockout": {"threshold": 0}}, "runtime.user_lockout.threshold: 0 is out of range"),
    ({"source_lockout": {"lock": 600, "max_lock": 60}},
     "runtime.source_lockout.max_lock: 60 is less than lock (600)"),
])  # fmt: skip
def test_runtime_rules(tenants: list[dict[str, Any]], runtime: Any, fragment: str) -> None:
    tenants[0]["runtime"] = runtime
    errors = check(tenants)
    assert any(error.startswith(f"{ACME}: ") and fragment in error for error in errors), errors
