"""Credential store: HA1 digests per user and algorithm, never a plaintext password.

Provisioning (the controller, from ansible-vault) computes ``HA1 = H(user:realm:password)`` for
every algorithm the tenant offers; the runtime only holds the hex digests. One HA1 cannot be
derived from another, so :meth:`InMemoryCredentialStore.from_config` insists that every user has
one for each *required* algorithm: a phone that picks SHA-256 (offered first) must not fail just
because only an MD5 HA1 was provisioned.

Configuration shape (YAML shown)::

    realm: acme.example.com
    users:
      "1001":
        MD5: 3f1c...            # 32 hex digits
        SHA-256: 9a7e...        # 64 hex digits
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from .digest import ALGORITHMS, DEFAULT_ALGORITHMS, canonical_algorithm

__all__ = [
    "CredentialConfigError",
    "CredentialStore",
    "InMemoryCredentialStore",
    "UserCredential",
]

_HEX_RE = re.compile(r"[0-9a-f]+")
#: User names are extension numbers or words; no separators that would confuse a URI or log line.
_USER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+\-]{0,63}")


class CredentialConfigError(ValueError):
    """Invalid credential configuration; the message names the user and the field."""


@dataclass(frozen=True, slots=True)
class UserCredential:
    """One user's HA1 digests (lower-case hex) keyed by base algorithm name."""

    user: str
    ha1: Mapping[str, str]


class CredentialStore(Protocol):
    """What the authenticator needs: the realm, and an HA1 lookup."""

    @property
    def realm(self) -> str: ...

    def ha1(self, user: str, algorithm: str) -> str | None:
        """HA1 of *user* for base *algorithm* (``"MD5"``, ``"SHA-256"``), or ``None``."""
        ...


@dataclass(frozen=True, slots=True)
class _Table:
    realm: str
    users: Mapping[str, UserCredential]


class InMemoryCredentialStore:
    """A :class:`CredentialStore` backed by an immutable table that :meth:`reload` swaps whole.

    Readers take one attribute read per look-up, so they see either the old or the new table,
    never a mix; a configuration that fails validation leaves the old table in place.
    """

    __slots__ = ("_table",)

    def __init__(self, realm: str, users: Iterable[UserCredential] = ()) -> None:
        self._table = _build(realm, users)

    @classmethod
    def from_config(
        cls, config: Mapping[str, object], *, required: Iterable[str] = DEFAULT_ALGORITHMS
    ) -> InMemoryCredentialStore:
        realm, users = _parse_config(config, required)
        return cls(realm, users)

    def reload(
        self, config: Mapping[str, object], *, required: Iterable[str] = DEFAULT_ALGORITHMS
    ) -> None:
        """Validate *config* completely, then replace the table in one assignment."""
        realm, users = _parse_config(config, required)
        self._table = _build(realm, users)

    @property
    def realm(self) -> str:
        return self._table.realm

    def ha1(self, user: str, algorithm: str) -> str | None:
        entry = self._table.users.get(user)
        return None if entry is None else entry.ha1.get(algorithm)

    def __contains__(self, user: object) -> bool:
        return user in self._table.users

    def __len__(self) -> int:
        return len(self._table.users)


def _build(realm: str, users: Iterable[UserCredential]) -> _Table:
    table: dict[str, UserCredential] = {}
    for credential in users:
        if credential.user in table:
            raise CredentialConfigError(f"user {credential.user!r}: defined twice")
        table[credential.user] = credential
    return _Table(realm=realm, users=MappingProxyType(table))


def _parse_config(
    config: Mapping[str, object], required: Iterable[str]
) -> tuple[str, list[UserCredential]]:
    realm = config.get("realm")
    if (
        not isinstance(realm, str)
        or not realm
        or not realm.isprintable()
        or '"' in realm
        or "\\" in realm
    ):
        raise CredentialConfigError("realm: must be a non-empty printable string without quotes")
    users = config.get("users", {})
    if not isinstance(users, Mapping):
        raise CredentialConfigError("users: must be a mapping of user name to HA1 digests")
    needed = [canonical_algorithm(a) for a in required]
    for name in needed:
        if name not in ALGORITHMS or ALGORITHMS[name].base != name:
            raise CredentialConfigError(f"required algorithm {name!r} is not a base algorithm")
    out: list[UserCredential] = []
    for user, digests in users.items():
        if not isinstance(user, str) or _USER_RE.fullmatch(user) is None:
            raise CredentialConfigError(f"user {user!r}: invalid user name")
        if not isinstance(digests, Mapping):
            raise CredentialConfigError(f"user {user!r}: HA1 digests must be a mapping")
        ha1: dict[str, str] = {}
        for algorithm, value in digests.items():
            name = canonical_algorithm(str(algorithm))
            spec = ALGORITHMS.get(name)
            if spec is None or spec.base != name:
                raise CredentialConfigError(f"user {user!r}: unknown algorithm {algorithm!r}")
            if not isinstance(value, str):
                raise CredentialConfigError(f"user {user!r}: {name} HA1 must be a string")
            hexed = value.lower()
            if len(hexed) != spec.hex_length or _HEX_RE.fullmatch(hexed) is None:
                raise CredentialConfigError(
                    f"user {user!r}: {name} HA1 must be {spec.hex_length} hex digits"
                )
            ha1[name] = hexed
        missing = [name for name in needed if name not in ha1]
        if missing:
            raise CredentialConfigError(f"user {user!r}: missing HA1 for {', '.join(missing)}")
        out.append(UserCredential(user=user, ha1=MappingProxyType(ha1)))
    return realm, out
