"""The runtime's configuration: one TOML file per tenant, validated into frozen dataclasses.

Every error names the field (``listeners[1].port: must be 1-65535``), so ``python -m
pbx_runtime check-config FILE`` can tell an operator exactly what to fix. Secure defaults
(DESIGN §3): a UDP or TCP listener is refused unless ``[security] allow_insecure_transports``
is set; users carry HA1 digests only, and a key that looks like a plaintext secret is refused.

Sans-I/O apart from :func:`load_config`, which reads the file (stdlib ``tomllib``); certificate
files are only located here, the transport loads them.

Shape (see ``examples/demo/`` for a complete file)::

    tenant = "acme"
    domain = "acme.example.com"

    [[listeners]]
    transport = "tls"            # tls | tcp | udp
    address = "127.0.0.1"
    port = 5061                  # 0: any free port (tests)

    [tls]
    cert = "server.pem"          # paths relative to this file
    key = "server.key"
    ca = "ca.pem"                # optional: verify client certificates against it
    verify_client = "optional"   # none | optional | required
    crl = "crl.pem"              # optional

    [users."1001"]
    ha1_md5 = "…32 hex…"
    ha1_sha256 = "…64 hex…"
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pbx_runtime.policy import AbuseConfig, LockoutRule

__all__ = [
    "ConfigError",
    "EventsConfig",
    "Limits",
    "ListenerConfig",
    "RuntimeConfig",
    "TlsConfig",
    "load_config",
    "parse_config",
]

TRANSPORTS = ("udp", "tcp", "tls")
VERIFY_MODES = ("none", "optional", "required")
SHED_MODES = ("drop", "503")
_SLUG_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
_HOST_RE = re.compile(r"[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\]")
_USER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+\-]{0,63}")
_HA1_KEYS = {"ha1_md5": ("MD5", 32), "ha1_sha256": ("SHA-256", 64)}
#: Keys that would mean a plaintext secret on the host (DESIGN §3): refused by name.
_SECRET_KEYS = frozenset({"password", "secret", "passwd", "pass", "plaintext"})


class ConfigError(ValueError):
    """Invalid configuration; :attr:`field` is the dotted path of the offending setting."""

    def __init__(self, field_path: str, message: str) -> None:
        super().__init__(f"{field_path}: {message}")
        self.field = field_path
        self.message = message


@dataclass(frozen=True, slots=True)
class ListenerConfig:
    transport: str  # "udp" | "tcp" | "tls"
    address: str
    port: int
    advertise: str | None = None  # host put in Via/Contact (default: address)


@dataclass(frozen=True, slots=True)
class TlsConfig:
    cert: Path
    key: Path
    ca: Path | None = None
    verify_client: str = "none"
    crl: Path | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """Every bound of the process (house rule 8: every buffer has a limit)."""

    max_transactions: int = 10_000
    max_calls: int = 1_000  # concurrent calls of the tenant; over → 503
    calls_per_user: int = 1  # a callee in this many calls is busy → 486
    ring_timeout: float = 120.0  # no answer → CANCEL the callee, 480 to the caller
    max_bindings: int = 100_000
    max_connections: int = 4_096  # TCP + TLS, all sources
    max_connections_per_source: int = 32
    idle_timeout: float = 900.0  # a stream connection with no traffic is closed
    slow_client_timeout: float = 10.0  # a partial message must complete within this
    tls_handshake_timeout: float = 10.0
    max_write_buffer: int = 1_048_576  # a peer that does not read is cut off
    # Bytes queued in the UDP receive buffer (kernel accounting: 1,280 B per datagram up to
    # about 500 B of SIP, 2,304 B up to 1.5 KB) over which new work is shed before parsing.
    # 4 MiB is 1,800-3,300 datagrams, 0.2-0.35 s of work at about 100 us each: it rides out
    # collector pauses and bursts, and what it admits is answered before T1 (500 ms), when
    # the phones would retransmit it. (1 MiB shed on 50-ms pauses once requests cost 100 us.)
    udp_backlog_bytes: int = 4_194_304
    shed: str = "drop"  # "drop" new requests before parsing, or answer "503"
    retry_after: int = 5
    drain_timeout: float = 10.0  # SIGTERM: finish transactions for at most this long
    t1: float = 0.5


@dataclass(frozen=True, slots=True)
class EventsConfig:
    destination: str = "stdout"  # "stdout" or a file path (appended, one JSON per line)


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    tenant: str
    domain: str
    listeners: tuple[ListenerConfig, ...]
    users: Mapping[str, Mapping[str, str]]  # user → {"MD5": ha1, "SHA-256": ha1}
    tls: TlsConfig | None = None
    realm: str = ""
    allow_insecure_transports: bool = False
    call_auth_status: int = 407
    #: Digest algorithms offered, most preferred first (RFC 8760: one challenge each).
    digest_algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    abuse: AbuseConfig = field(default_factory=AbuseConfig)
    limits: Limits = field(default_factory=Limits)
    events: EventsConfig = field(default_factory=EventsConfig)
    event_loop: str = "asyncio"
    source: Path | None = None  # the file it came from (for reloads)

    def credentials(self) -> dict[str, object]:
        """The mapping :class:`~pbx_runtime.registrar.InMemoryCredentialStore` expects."""
        return {"realm": self.realm, "users": {u: dict(h) for u, h in self.users.items()}}


# ---------------------------------------------------------------------------------------------


def load_config(path: str | Path) -> RuntimeConfig:
    """Read and validate a TOML configuration file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError("config", f"cannot read {path}: {err.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError("config", f"not valid TOML: {err}") from None
    return parse_config(data, base=path.resolve().parent, source=path.resolve())


def parse_config(
    data: Mapping[str, Any], *, base: Path = Path("."), source: Path | None = None
) -> RuntimeConfig:
    """Validate a decoded TOML document; relative file paths are resolved against *base*."""
    _only(data, "", {"tenant", "domain", "realm", "listeners", "tls", "security", "users",
                      "abuse", "limits", "events", "runtime", "calls",
                      "digest_algorithms"})  # fmt: skip
    tenant = _string(data, "tenant")
    if _SLUG_RE.fullmatch(tenant) is None:
        raise ConfigError("tenant", "must be a slug: a-z, 0-9 and '-', at most 32 characters")
    domain = _string(data, "domain").lower()
    if _HOST_RE.fullmatch(domain) is None:
        raise ConfigError("domain", "must be a host name or IP address")
    realm = data.get("realm", domain)
    if not isinstance(realm, str) or not realm or '"' in realm or "\\" in realm:
        raise ConfigError("realm", "must be a non-empty string without quotes or backslashes")

    security = _table(data, "security")
    _only(security, "security", {"allow_insecure_transports"})
    insecure = _bool(security, "allow_insecure_transports", "security", False)
    listeners = _listeners(data.get("listeners"), insecure)
    tls = _tls(data.get("tls"), base)
    if tls is None and any(item.transport == "tls" for item in listeners):
        raise ConfigError("tls", "a tls listener needs a [tls] table with cert and key")

    algorithms = data.get("digest_algorithms", ["SHA-256", "MD5"])
    if (
        not isinstance(algorithms, list)
        or not algorithms
        or any(a not in ("SHA-256", "MD5") for a in algorithms)
        or len(set(algorithms)) != len(algorithms)
    ):
        raise ConfigError("digest_algorithms", 'must list "SHA-256" and/or "MD5", once each')

    calls = _table(data, "calls")
    _only(calls, "calls", {"auth_status"})
    auth_status = calls.get("auth_status", 407)
    if auth_status not in (401, 407):
        raise ConfigError("calls.auth_status", "must be 401 or 407")

    runtime = _table(data, "runtime")
    _only(runtime, "runtime", {"event_loop"})
    event_loop = runtime.get("event_loop", "asyncio")
    if event_loop not in ("asyncio", "uvloop"):
        raise ConfigError("runtime.event_loop", "must be 'asyncio' or 'uvloop'")

    events = _table(data, "events")
    _only(events, "events", {"destination"})
    destination = events.get("destination", "stdout")
    if not isinstance(destination, str) or not destination:
        raise ConfigError("events.destination", "must be 'stdout' or a file path")
    if destination != "stdout":
        destination = str(_path(destination, base))

    return RuntimeConfig(
        tenant=tenant,
        domain=domain,
        realm=realm,
        listeners=listeners,
        tls=tls,
        users=_users(data.get("users", {})),
        allow_insecure_transports=insecure,
        call_auth_status=int(auth_status),
        digest_algorithms=tuple(algorithms),
        abuse=_abuse(_table(data, "abuse")),
        limits=_limits(_table(data, "limits")),
        events=EventsConfig(destination=destination),
        event_loop=str(event_loop),
        source=source,
    )


# -- pieces -----------------------------------------------------------------------------------


def _listeners(value: object, insecure: bool) -> tuple[ListenerConfig, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError("listeners", "must be a non-empty array of tables ([[listeners]])")
    out: list[ListenerConfig] = []
    seen: set[tuple[str, str, int]] = set()
    for i, item in enumerate(value):
        where = f"listeners[{i}]"
        if not isinstance(item, Mapping):
            raise ConfigError(where, "must be a table")
        _only(item, where, {"transport", "address", "port", "advertise"})
        transport = item.get("transport")
        if transport not in TRANSPORTS:
            raise ConfigError(f"{where}.transport", f"must be one of {', '.join(TRANSPORTS)}")
        if transport != "tls" and not insecure:
            raise ConfigError(
                f"{where}.transport",
                f"{transport} is plaintext SIP; set [security] allow_insecure_transports = true "
                "to opt in (TLS only by default)",
            )
        address = item.get("address")
        try:
            ipaddress.ip_address(address if isinstance(address, str) else "")
        except ValueError:
            raise ConfigError(f"{where}.address", "must be an IP address") from None
        port = item.get("port")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise ConfigError(f"{where}.port", "must be an integer 0-65535 (0: any free port)")
        advertise = item.get("advertise")
        if advertise is not None and (
            not isinstance(advertise, str) or _HOST_RE.fullmatch(advertise) is None
        ):
            raise ConfigError(f"{where}.advertise", "must be a host name or IP address")
        key = (str(transport), str(address), port)
        if port and key in seen:
            raise ConfigError(where, "duplicates another listener")
        seen.add(key)
        out.append(ListenerConfig(str(transport), str(address), port, advertise))
    return tuple(out)


def _tls(value: object, base: Path) -> TlsConfig | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError("tls", "must be a table")
    _only(value, "tls", {"cert", "key", "ca", "verify_client", "crl"})
    cert = _path(_string(value, "cert", "tls"), base)
    key = _path(_string(value, "key", "tls"), base)
    ca = _path(_string(value, "ca", "tls"), base) if "ca" in value else None
    crl = _path(_string(value, "crl", "tls"), base) if "crl" in value else None
    verify = value.get("verify_client", "optional" if ca is not None else "none")
    if verify not in VERIFY_MODES:
        raise ConfigError("tls.verify_client", f"must be one of {', '.join(VERIFY_MODES)}")
    if verify != "none" and ca is None:
        raise ConfigError("tls.ca", "client verification needs a CA file")
    if crl is not None and ca is None:
        raise ConfigError("tls.crl", "a CRL needs tls.ca")
    for name, path in (("cert", cert), ("key", key), ("ca", ca), ("crl", crl)):
        if path is not None and not path.is_file():
            raise ConfigError(f"tls.{name}", f"file not found: {path}")
    return TlsConfig(cert=cert, key=key, ca=ca, verify_client=str(verify), crl=crl)


def _users(value: object) -> Mapping[str, Mapping[str, str]]:
    if not isinstance(value, Mapping):
        raise ConfigError("users", "must be a table of user name → HA1 digests")
    out: dict[str, Mapping[str, str]] = {}
    for user, entry in value.items():
        where = f"users.{user}"
        if not isinstance(user, str) or _USER_RE.fullmatch(user) is None:
            raise ConfigError(where, "invalid user name (letters, digits, . _ + -)")
        if not isinstance(entry, Mapping):
            raise ConfigError(where, "must be a table with ha1_md5 and ha1_sha256")
        for key in entry:
            if str(key).lower() in _SECRET_KEYS:
                raise ConfigError(
                    f"{where}.{key}", "plaintext secrets are not accepted; give HA1 digests only"
                )
        _only(entry, where, set(_HA1_KEYS))
        digests: dict[str, str] = {}
        for key, (algorithm, length) in _HA1_KEYS.items():
            digest = entry.get(key)
            if (
                not isinstance(digest, str)
                or re.fullmatch(f"[0-9a-fA-F]{{{length}}}", digest) is None
            ):
                raise ConfigError(f"{where}.{key}", f"must be {length} hex digits")
            digests[algorithm] = digest.lower()
        out[user] = digests
    return out


def _abuse(table: Mapping[str, Any]) -> AbuseConfig:
    simple = {"rate", "burst", "max_sources", "max_users", "max_locks", "max_trusted",
              "trust_ttl", "report_interval"}  # fmt: skip
    _only(table, "abuse", simple | {"source_lockout", "user_lockout", "exempt_networks"})
    kwargs: dict[str, Any] = {}
    for name in simple:
        if name in table:
            kwargs[name] = _number(table, name, "abuse")
    for name in ("source_lockout", "user_lockout"):
        if name in table:
            rule = table[name]
            if not isinstance(rule, Mapping):
                raise ConfigError(f"abuse.{name}", "must be a table")
            names = {f.name for f in fields(LockoutRule)}
            _only(rule, f"abuse.{name}", names)
            try:
                values: dict[str, Any] = {k: _number(rule, k, f"abuse.{name}") for k in rule}
                if "threshold" in values:
                    values["threshold"] = int(values["threshold"])
                kwargs[name] = LockoutRule(**values)
            except (TypeError, ValueError) as err:
                raise ConfigError(f"abuse.{name}", str(err)) from None
    if "exempt_networks" in table:
        networks = table["exempt_networks"]
        if not isinstance(networks, list) or not all(isinstance(n, str) for n in networks):
            raise ConfigError("abuse.exempt_networks", "must be a list of CIDR strings")
        for n in networks:
            try:
                ipaddress.ip_network(n, strict=False)
            except ValueError:
                raise ConfigError("abuse.exempt_networks", f"{n!r} is not a CIDR") from None
        kwargs["exempt_networks"] = tuple(networks)
    for name in ("max_sources", "max_users", "max_locks", "max_trusted"):
        if name in kwargs:
            kwargs[name] = int(kwargs[name])
    try:
        return AbuseConfig(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError("abuse", str(err)) from None


def _limits(table: Mapping[str, Any]) -> Limits:
    defaults = Limits()
    _only(table, "limits", {f.name for f in fields(Limits)})
    kwargs: dict[str, Any] = {}
    for f in fields(Limits):
        if f.name not in table:
            continue
        where = f"limits.{f.name}"
        value = table[f.name]
        default = getattr(defaults, f.name)
        if isinstance(default, str):
            if value not in SHED_MODES:
                raise ConfigError(where, f"must be one of {', '.join(SHED_MODES)}")
        elif isinstance(default, int):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(where, "must be a positive integer")
        else:
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(where, "must be a positive number")
            value = float(value)
        kwargs[f.name] = value
    return Limits(**kwargs)


# -- small validators -------------------------------------------------------------------------


def _only(table: Mapping[str, Any], where: str, allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            path = f"{where}.{key}" if where else str(key)
            raise ConfigError(path, "unknown setting")


def _table(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, Mapping):
        raise ConfigError(name, "must be a table")
    return value


def _string(data: Mapping[str, Any], name: str, where: str = "") -> str:
    value = data.get(name)
    path = f"{where}.{name}" if where else name
    if not isinstance(value, str) or not value:
        raise ConfigError(path, "required, must be a non-empty string")
    return value


def _bool(data: Mapping[str, Any], name: str, where: str, default: bool) -> bool:
    value = data.get(name, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.{name}", "must be true or false")
    return value


def _number(data: Mapping[str, Any], name: str, where: str) -> float:
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{where}.{name}", "must be a non-negative number")
    return value


def _path(text: str, base: Path) -> Path:
    path = Path(text)
    return path if path.is_absolute() else (base / path)
