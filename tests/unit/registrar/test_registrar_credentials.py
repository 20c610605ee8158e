"""Credential store: HA1 per algorithm from configuration, validation, atomic reload."""

from __future__ import annotations

import pytest

from pbx_runtime.registrar import (
    CredentialConfigError,
    InMemoryCredentialStore,
    UserCredential,
    compute_ha1,
)

REALM = "acme.example.com"


def config(**users: dict[str, str]) -> dict[str, object]:
    return {"realm": REALM, "users": users}


def ha1s(user: str, password: str = "pw") -> dict[str, str]:
    return {alg: compute_ha1(user, REALM, password, alg) for alg in ("MD5", "SHA-256")}


def test_from_config_holds_ha1_per_algorithm_only() -> None:
    store = InMemoryCredentialStore.from_config(config(**{"1001": ha1s("1001")}))
    assert store.realm == REALM
    assert store.ha1("1001", "MD5") == compute_ha1("1001", REALM, "pw", "MD5")
    assert store.ha1("1001", "SHA-256") == compute_ha1("1001", REALM, "pw", "SHA-256")
    assert store.ha1("1001", "MD5-sess") is None  # -sess uses the base HA1 (digest.py)
    assert store.ha1("1002", "MD5") is None
    assert "1001" in store and len(store) == 1


def test_algorithm_names_and_hex_case_are_normalised() -> None:
    digests = ha1s("1001")
    store = InMemoryCredentialStore.from_config(
        config(**{"1001": {"md5": digests["MD5"].upper(), "sha-256": digests["SHA-256"]}})
    )
    assert store.ha1("1001", "MD5") == digests["MD5"]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"users": {}}, "realm"),
        ({"realm": "", "users": {}}, "realm"),
        ({"realm": 'a"b', "users": {}}, "realm"),
        ({"realm": "a\r\nb", "users": {}}, "realm"),
        ({"realm": REALM, "users": []}, "users"),
        ({"realm": REALM, "users": {"10 01": ha1s("x")}}, "invalid user name"),
        ({"realm": REALM, "users": {"1001": "secret"}}, "must be a mapping"),
        ({"realm": REALM, "users": {"1001": {"MD5": "00" * 16}}}, "missing HA1 for SHA-256"),
        ({"realm": REALM, "users": {"1001": {**ha1s("1001"), "SHA-512": "0"}}}, "unknown"),
        ({"realm": REALM, "users": {"1001": {**ha1s("1001"), "MD5-sess": "0" * 32}}}, "unknown"),
        ({"realm": REALM, "users": {"1001": {**ha1s("1001"), "MD5": "xyz"}}}, "32 hex digits"),
        ({"realm": REALM, "users": {"1001": {**ha1s("1001"), "MD5": "0" * 64}}}, "32 hex"),
        ({"realm": REALM, "users": {"1001": {**ha1s("1001"), "MD5": 12}}}, "must be a string"),
    ],
)
def test_invalid_configuration_names_the_field(bad: dict[str, object], message: str) -> None:
    with pytest.raises(CredentialConfigError, match=message):
        InMemoryCredentialStore.from_config(bad)


def test_required_algorithms_are_configurable() -> None:
    only_md5 = config(**{"1001": {"MD5": ha1s("1001")["MD5"]}})
    store = InMemoryCredentialStore.from_config(only_md5, required=("MD5",))
    assert store.ha1("1001", "SHA-256") is None
    with pytest.raises(CredentialConfigError, match="base algorithm"):
        InMemoryCredentialStore.from_config(only_md5, required=("MD5-sess",))


def test_reload_replaces_the_table_atomically() -> None:
    store = InMemoryCredentialStore.from_config(config(**{"1001": ha1s("1001", "old")}))
    before = store._table
    with pytest.raises(CredentialConfigError):
        store.reload(config(**{"1002": ha1s("1002"), "1003": {"MD5": "bad"}}))
    assert store._table is before  # a failed reload changes nothing
    store.reload({"realm": "new.example.com", "users": {"1002": ha1s("1002")}})
    assert store.realm == "new.example.com"
    assert "1001" not in store and "1002" in store


def test_constructor_rejects_duplicate_users() -> None:
    entry = UserCredential(user="1001", ha1={"MD5": "0" * 32})
    with pytest.raises(CredentialConfigError, match="defined twice"):
        InMemoryCredentialStore(REALM, [entry, entry])
    table = InMemoryCredentialStore(REALM, [entry])._table.users
    with pytest.raises(TypeError):
        table["x"] = entry  # type: ignore[index]
