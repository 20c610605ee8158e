"""Tenant inventory model: validation of the per-tenant YAML mappings.

Pure functions (stdlib + netaddr, no Ansible) so the filter plugin, other plugins and the
unit tests share one implementation. Validation never raises on malformed data: every
problem becomes one message ``"<file> (tenant <slug>): <field>: <what is wrong>"``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from netaddr import AddrFormatError, IPAddress, IPNetwork

# 2-11 chars so derived names (tn-<slug>, vx-<slug>, ...) fit Linux's 15-char ifname limit.
# Match with re.fullmatch: "$" alone would also accept a trailing newline.
SLUG_PATTERN = r"^[a-z][a-z0-9]{1,10}$"
IFNAME_PATTERN = r"^[a-zA-Z0-9_.-]{1,15}$"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
FQDN_PATTERN = rf"^(?=.{{1,253}}$)(?:{_LABEL}\.)+{_LABEL}$"

MISSING = "required field is missing"
PREFIX_LENGTHS = {4: (16, 29), 6: (48, 126)}

# Never routable as tenant networks (RFC 6890); any overlap is refused.
SPECIAL_NETWORKS = tuple(
    (IPNetwork(cidr), what)
    for cidr, what in (
        ("0.0.0.0/8", "unspecified ('this network')"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "limited broadcast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("fe80::/10", "link-local"),
        ("ff00::/8", "multicast"),
    )
)


def is_valid_slug(value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(SLUG_PATTERN, value) is not None


# --- value parsers: return the normalised value or raise _Invalid(<what is wrong>) ----------


class _Invalid(ValueError):
    """What is wrong with one value; turned into a message by the caller."""


Parser = Callable[[Any], Any]


def _kind(value: object) -> str:
    """User-facing YAML type name (Ansible hands us str/dict/list subclasses)."""
    for cls, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
                      (Mapping, "mapping"), ((list, tuple), "list")):
        if isinstance(value, cls):
            return name
    return "null" if value is None else type(value).__name__


def _show(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _integer(low: int, high: int) -> Parser:
    def parse(value: Any) -> int:
        # bool is an int subclass, but `id: yes` is a mistake, not the number 1.
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(f"must be an integer, got {_kind(value)}")
        if not low <= value <= high:
            raise _Invalid(f"{value} is out of range {low}..{high}")
        return int(value)

    return parse


def _string(pattern: str, expected: str) -> Parser:
    def parse(value: Any) -> str:
        if not isinstance(value, str):
            raise _Invalid(f"must be a string, got {_kind(value)}")
        if re.fullmatch(pattern, value) is None:
            raise _Invalid(f"{_show(value)} is not {expected}")
        return str(value)

    return parse


def _choice(*choices: str) -> Parser:
    def parse(value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise _Invalid(f"{_show(value)} must be one of: {', '.join(choices)}")
        return str(value)

    return parse


def _subset(*choices: str) -> Parser:
    def parse(value: Any) -> list[str]:
        if not isinstance(value, list) or not value:
            raise _Invalid(f"must be a non-empty list of: {', '.join(choices)}")
        for item in value:
            if item not in choices:
                raise _Invalid(f"{_show(item)} must be one of: {', '.join(choices)}")
        if len(set(value)) != len(value):
            raise _Invalid("lists an item twice")
        return list(value)

    return parse


def _mapping(value: Any) -> Mapping:
    if not isinstance(value, Mapping):
        raise _Invalid(f"must be a mapping, got {_kind(value)}")
    return value


def _list(value: Any) -> list:
    if not isinstance(value, list):
        raise _Invalid(f"must be a list, got {_kind(value)}")
    return value


def _subnet(value: Any) -> IPNetwork:
    if not isinstance(value, str):
        raise _Invalid(f"must be a CIDR string such as 172.20.1.0/24, got {_kind(value)}")
    try:
        net = IPNetwork(value)
    except (AddrFormatError, ValueError, TypeError):
        raise _Invalid(f"{_show(value)} is not a valid CIDR") from None
    if "/" not in value:
        raise _Invalid(f"{_show(value)} has no prefix length; write e.g. {net.ip}/24")
    if net.ip != net.network:
        raise _Invalid(f"{value} has host bits set; the network is {net.cidr}")
    if str(net.cidr) != value:
        # One spelling per network keeps templates, comparisons and diffs predictable.
        raise _Invalid(f"{_show(value)} must be written in canonical form {net.cidr}")
    low, high = PREFIX_LENGTHS[net.version]
    if not low <= net.prefixlen <= high:
        raise _Invalid(f"{net}: IPv{net.version} prefix length must be /{low}../{high}")
    for special, what in SPECIAL_NETWORKS:
        if _overlap(net, special):
            raise _Invalid(f"{net} overlaps the {what} range {special}")
    return net


def _address(value: Any, subnet: IPNetwork | None) -> IPAddress:
    if not isinstance(value, str):
        raise _Invalid(f"must be an IP address string, got {_kind(value)}")
    try:
        addr = IPAddress(value)
    except (AddrFormatError, ValueError, TypeError):
        raise _Invalid(f"{_show(value)} is not a valid IP address") from None
    if subnet is None:  # subnet itself is invalid and already reported
        return addr
    if addr.version != subnet.version:
        raise _Invalid(f"{addr} is IPv{addr.version} but subnet {subnet} is IPv{subnet.version}")
    if addr not in subnet:
        raise _Invalid(f"{addr} is outside subnet {subnet}")
    if addr == subnet.network:
        raise _Invalid(f"{addr} is the network address of subnet {subnet}")
    if subnet.version == 4 and addr == subnet.broadcast:
        raise _Invalid(f"{addr} is the broadcast address of subnet {subnet}")
    return addr


def _overlap(a: IPNetwork, b: IPNetwork) -> bool:
    return a.version == b.version and a.first <= b.last and b.first <= a.last


# --- field tables ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    parse: Parser
    required: bool = False


TENANT_FIELDS: dict[str, _Field] = {
    "slug": _Field(_string(SLUG_PATTERN, f"a valid slug ({SLUG_PATTERN})"), required=True),
    "id": _Field(_integer(1, 4000), required=True),
    "sip_domain": _Field(_string(FQDN_PATTERN, "a lowercase FQDN with at least two labels"),
                         required=True),
    "state": _Field(_choice("present", "absent")),
    "segment": _Field(_mapping, required=True),
    "subnet": _Field(_subnet, required=True),
    "addresses": _Field(_mapping, required=True),
    # SIP over TLS only unless the tenant opts in to plain transports (an audited opt-out).
    "sip_transports": _Field(_subset("tls", "tcp", "udp")),
    # Phones: [{number, display_name, secret (ansible-vault), state}]; checked below.
    "extensions": _Field(_list),
    # What an operator tunes per tenant: quotas and lockout thresholds; checked below.
    "runtime": _Field(_mapping),
}


# --- extensions and runtime settings ----------------------------------------------------------

EXTENSION_PATTERN = r"^[0-9]{2,15}$"
DISPLAY_NAME_PATTERN = r"^[^\x00-\x1f\x7f\"\\]{1,64}$"
MIN_SECRET_LENGTH = 16
MIN_SECRET_DISTINCT = 8


def _extension_number(value: Any) -> str:
    # `number: 1001` (YAML integer) and `number: "1001"` name the same extension.
    text = _number_key(value)
    if not isinstance(text, str) or re.fullmatch(EXTENSION_PATTERN, text) is None:
        raise _Invalid(f"{_show(value)} is not an extension number (2-15 digits)")
    return text


def secret_problem(value: Any) -> str | None:
    """What makes a digest password unusable, or None. Never echoes the secret."""
    if not isinstance(value, str):
        return f"must be a string, got {_kind(value)}"
    if len(value) < MIN_SECRET_LENGTH or len(set(value)) < MIN_SECRET_DISTINCT:
        return (f"too weak: needs at least {MIN_SECRET_LENGTH} characters with "
                f"{MIN_SECRET_DISTINCT} different ones (generate it)")
    return None


EXTENSION_FIELDS: dict[str, _Field] = {
    "number": _Field(_extension_number, required=True),
    "display_name": _Field(_string(DISPLAY_NAME_PATTERN,
                                   "1-64 printable characters without quotes or backslashes")),
    "state": _Field(_choice("present", "absent")),
}

# Failed-auth lockout: `threshold` failures within `window` s lock for `lock` s, doubling per
# repeat up to `max_lock` s (pbx_runtime's LockoutRule).
LOCKOUT_FIELDS: dict[str, _Field] = {
    "threshold": _Field(_integer(1, 1000)),
    "window": _Field(_integer(1, 86400)),
    "lock": _Field(_integer(1, 86400)),
    "max_lock": _Field(_integer(1, 604800)),
}

RUNTIME_FIELDS: dict[str, _Field] = {
    "cpu_quota": _Field(_integer(5, 400)),  # percent of one CPU (systemd CPUQuota=)
    "memory_max_mb": _Field(_integer(64, 8192)),  # systemd MemoryMax=
    "max_calls": _Field(_integer(1, 100000)),  # concurrent calls; more get 503
    # Digest challenges offered, most preferred first (RFC 8760); default SHA-256, MD5.
    "digest_algorithms": _Field(_subset("SHA-256", "MD5")),
    "source_lockout": _Field(_mapping),
    "user_lockout": _Field(_mapping),
}


def _check_extensions(extensions: list, slug: str, secrets: Mapping, report: Report) -> None:
    """Numbers unique, and each present extension has a strong secret in
    ``pbx_extension_secrets[slug][number]`` (ansible-vault)."""
    mine = secrets.get(slug)
    mine = {_number_key(k): v for k, v in mine.items()} if isinstance(mine, Mapping) else {}
    seen: dict[str, int] = {}
    for index, item in enumerate(extensions):
        at = f"extensions[{index}]"
        if not isinstance(item, Mapping):
            report(at, f"must be a mapping of extension fields, got {_kind(item)}")
            continue
        valid = _check_fields(item, EXTENSION_FIELDS, at + ".", report)
        number = valid.get(at + ".number")
        if number is not None:
            if number in seen:
                report(at + ".number", f"{number} is also extensions[{seen[number]}]")
            seen.setdefault(number, index)
        if number is None or valid.get(at + ".state", "present") != "present":
            continue
        secret = mine.get(number)
        problem = MISSING if secret is None else secret_problem(secret)
        if problem:
            report(at, f"secret pbx_extension_secrets.{slug}.{number}: {problem}")


def _stray_secrets(secrets: Mapping, tenants: list | tuple) -> list[str]:
    """Secrets of no listed extension: usually a typo that leaves a phone without one."""
    listed = {(t.get("slug"), _number_key(e.get("number")))
              for t in tenants if isinstance(t, Mapping) and isinstance(t.get("extensions"), list)
              for e in t["extensions"] if isinstance(e, Mapping)}  # fmt: skip
    errors = []
    for slug, numbers in secrets.items():
        where = f"pbx_extension_secrets.{_key(slug)}"
        if not isinstance(numbers, Mapping):
            errors.append(f"{where}: must be a mapping of extension number to secret")
            continue
        errors += [f"{where}.{_key(number)}: no such extension in the tenant files"
                   for number in numbers if (slug, _number_key(number)) not in listed]
    return errors


def _number_key(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _check_runtime(runtime: Mapping, report: Report) -> None:
    valid = _check_fields(runtime, RUNTIME_FIELDS, "runtime.", report)
    for name in ("source_lockout", "user_lockout"):
        rule = valid.get(f"runtime.{name}")
        if rule is None:
            continue
        times = _check_fields(rule, LOCKOUT_FIELDS, f"runtime.{name}.", report)
        lock = times.get(f"runtime.{name}.lock", 1)
        max_lock = times.get(f"runtime.{name}.max_lock")
        if max_lock is not None and max_lock < lock:
            report(f"runtime.{name}.max_lock", f"{max_lock} is less than lock ({lock})")


SEGMENT_FIELDS: dict[str, _Field] = {
    "type": _Field(_choice("vlan", "vxlan"), required=True),
    "vni": _Field(_integer(1, 16777215)),
    "vlan": _Field(_integer(2, 4094)),
    "parent": _Field(_string(IFNAME_PATTERN, f"an interface name ({IFNAME_PATTERN})")),
}
# Which optional segment fields each segment type requires; the others are forbidden.
SEGMENT_TYPE_FIELDS = {"vxlan": ("vni",), "vlan": ("vlan", "parent")}

# Field paths whose values must be unique across all tenants (whatever their state).
UNIQUE_FIELDS = ("slug", "id", "sip_domain", "segment.vni", "segment.vlan")

Report = Callable[[str, str], None]


def _key(key: object) -> str:
    return key if isinstance(key, str) and len(key) <= 60 else _show(key)


def _check_fields(data: Mapping, fields: Mapping[str, _Field], prefix: str,
                  report: Report) -> dict[str, Any]:
    """Report unknown, missing and invalid fields; return the valid values by field path."""
    for key in data:
        # Keys starting with "_" are metadata added by the inventory plugin (e.g. _file).
        if key not in fields and not (isinstance(key, str) and key.startswith("_")):
            report(prefix + _key(key), f"unknown field (expected one of: {', '.join(fields)})")
    valid = {}
    for name, spec in fields.items():
        value = data.get(name)
        if value is None:  # an empty YAML value (`subnet:`) counts as missing
            if spec.required:
                report(prefix + name, MISSING)
            continue
        try:
            valid[prefix + name] = spec.parse(value)
        except _Invalid as exc:
            report(prefix + name, str(exc))
    return valid


def _check_segment(segment: Mapping, report: Report) -> dict[str, Any]:
    valid = _check_fields(segment, SEGMENT_FIELDS, "segment.", report)
    kind = valid.get("segment.type")
    if kind is None:
        return valid
    for other, names in SEGMENT_TYPE_FIELDS.items():
        for name in names:
            if other == kind and segment.get(name) is None:
                report(f"segment.{name}", f"{MISSING} (needed for segment type {kind})")
            elif other != kind and segment.get(name) is not None:
                report(f"segment.{name}", f"not allowed for segment type {kind}")
                valid.pop(f"segment.{name}", None)
    return valid


def _check_addresses(addresses: Mapping, subnet: IPNetwork | None, pbx_hosts: frozenset[str],
                     report: Report) -> None:
    if not addresses:
        report("addresses", "must map at least one PBX host to an address")
    seen: dict[IPAddress, str] = {}
    for host, value in addresses.items():
        path = f"addresses.{_key(host)}"
        if not isinstance(host, str) or host not in pbx_hosts:
            known = ", ".join(sorted(pbx_hosts)) or "none"
            report(path, f"unknown PBX host (known PBX hosts: {known})")
        try:
            addr = _address(value, subnet)
        except _Invalid as exc:
            report(path, str(exc))
            continue
        if addr in seen:
            report(path, f"{addr} is also used by {seen[addr]}")
        else:
            seen[addr] = path


# --- whole inventory -------------------------------------------------------------------------


@dataclass
class _Tenant:
    index: int
    label: str  # "<file> (tenant <slug-or-?>)"
    values: dict[str, Any] = field(default_factory=dict)  # valid values by field path


def _label(tenant: object, index: int) -> str:
    data = tenant if isinstance(tenant, Mapping) else {}
    source = data.get("_file")
    source = source if isinstance(source, str) else f"pbx_tenants[{index}]"
    slug = data.get("slug")
    return f"{source} (tenant {slug if is_valid_slug(slug) else '?'})"


def _check_tenant(tenant: object, index: int, pbx_hosts: frozenset[str], secrets: Mapping,
                  errors: list[str]) -> _Tenant:
    result = _Tenant(index, _label(tenant, index))

    def report(path: str, problem: str) -> None:
        errors.append(f"{result.label}: {path}: {problem}")

    if not isinstance(tenant, Mapping):
        report("tenant", f"must be a mapping of tenant fields, got {_kind(tenant)}")
        return result
    if "_content" in tenant:  # the inventory plugin wraps files that hold no mapping
        report("tenant", "file must hold a mapping of tenant fields, "
                         f"got {_kind(tenant['_content'])}")
        return result
    values = result.values
    values.update(_check_fields(tenant, TENANT_FIELDS, "", report))
    if "segment" in values:
        values.update(_check_segment(values.pop("segment"), report))
    if "addresses" in values:
        _check_addresses(values.pop("addresses"), values.get("subnet"), pbx_hosts, report)
    if "extensions" in values:
        _check_extensions(values.pop("extensions"), str(values.get("slug", "?")), secrets,
                          report)
    if "runtime" in values:
        _check_runtime(values.pop("runtime"), report)

    source, slug = tenant.get("_file"), values.get("slug")
    if isinstance(source, str) and slug is not None:
        stem = PurePosixPath(source).name.removesuffix(".yml").removesuffix(".yaml")
        if slug != stem:
            report("slug", f"{slug} must equal the file's basename {stem!r}")
    return result


def _overlapping(tenants: list[_Tenant]) -> Iterator[tuple[_Tenant, _Tenant]]:
    """Yield every pair of tenants whose subnets overlap, in O(n log n + pairs).

    CIDR blocks are either nested or disjoint, so after sorting by start (widest first) the
    stack of still-open blocks is exactly the set of blocks containing the next one.
    """
    nets = sorted((t for t in tenants if "subnet" in t.values),
                  key=lambda t: (t.values["subnet"].version, t.values["subnet"].first,
                                 -t.values["subnet"].last))
    stack: list[_Tenant] = []
    for tenant in nets:
        net = tenant.values["subnet"]
        while stack and not _overlap(stack[-1].values["subnet"], net):
            stack.pop()
        for outer in stack:
            yield outer, tenant
        stack.append(tenant)


def inventory_errors(tenants: Any, pbx_hosts: Any, reserved_networks: Any,
                     secrets: Any = None) -> list[str]:
    """Validate the tenant list; return human-readable errors, empty when valid.

    ``tenants``: tenant mappings (with ``_file`` metadata); ``pbx_hosts``: inventory names of
    the PBX hosts; ``reserved_networks``: CIDRs tenants must not overlap (management, lab);
    ``secrets``: ``pbx_extension_secrets``, slug → extension number → secret. No message
    ever contains a secret.
    """
    if not isinstance(tenants, (list, tuple)):
        return [f"pbx_tenants: must be a list of tenant mappings, got {_kind(tenants)}"]
    errors: list[str] = []
    if not isinstance(pbx_hosts, (list, tuple, set, frozenset)):
        errors.append(f"pbx_hosts: must be a list of host names, got {_kind(pbx_hosts)}")
        pbx_hosts = ()
    if not isinstance(reserved_networks, (list, tuple)):
        errors.append(f"reserved_networks: must be a list of CIDRs, got {_kind(reserved_networks)}")
        reserved_networks = ()
    reserved = []
    for value in reserved_networks:
        try:
            if not isinstance(value, str):
                raise TypeError(value)
            reserved.append(IPNetwork(value).cidr)
        except (AddrFormatError, ValueError, TypeError):
            errors.append(f"reserved_networks: {_show(value)} is not a valid CIDR")

    if secrets is None:
        secrets = {}
    if not isinstance(secrets, Mapping):
        errors.append(f"pbx_extension_secrets: must be a mapping of tenant slug to "
                      f"{{number: secret}}, got {_kind(secrets)}")
        secrets = {}
    hosts = frozenset(h for h in pbx_hosts if isinstance(h, str))
    checked = [_check_tenant(t, i, hosts, secrets, errors) for i, t in enumerate(tenants)]
    errors += _stray_secrets(secrets, tenants)

    # An absent tenant keeps its id, VNI, subnet, ... until it is removed from the inventory.
    for path in UNIQUE_FIELDS:
        owners: dict[Any, _Tenant] = {}
        for tenant in checked:
            value = tenant.values.get(path)
            if value is None:
                continue
            if value in owners:
                errors.append(f"{tenant.label}: {path}: {value} is already used by "
                              f"{owners[value].label}")
            else:
                owners[value] = tenant

    for first, second in _overlapping(checked):
        # Report on the later tenant in file order, like the duplicate checks above.
        earlier, later = sorted((first, second), key=lambda t: t.index)
        errors.append(f"{later.label}: subnet: {later.values['subnet']} overlaps "
                      f"{earlier.label} subnet {earlier.values['subnet']}")
    for tenant in checked:
        net = tenant.values.get("subnet")
        for network in reserved:
            if net is not None and _overlap(net, network):
                errors.append(f"{tenant.label}: subnet: {net} overlaps reserved network "
                              f"{network}")
    return errors
