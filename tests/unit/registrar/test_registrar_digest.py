"""Digest: RFC 7616 vectors, a SIP example computed independently, the header parser
(with a Hypothesis "parses or raises DigestError" property) and the stateless-nonce verifier."""

from __future__ import annotations

import hashlib
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbx_runtime.registrar.digest import (
    DigestCredentials,
    DigestError,
    DigestOutcome,
    DigestVerifier,
    NcOutcome,
    NonceCounter,
    compute_ha1,
    compute_response,
    parse_authorization,
    raw_nonce,
)
from pbx_runtime.sip import SIPProtocolError

# RFC 7616 §3.9.1 (user "Mufasa", password "Circle of Life", GET /dir/index.html).
RFC7616_REALM = "http-auth@example.org"
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_RESPONSES = {
    "MD5": "8ca523f5e9506fed4657c9700eebdbec",
    "SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
}

REALM = "acme.example.com"
HOST = "192.0.2.10"
NOW = 1_700_000_000.0


def rfc7616_header(algorithm: str) -> str:
    return (
        f'Digest username="Mufasa",\r\n realm="{RFC7616_REALM}",'
        f' uri="/dir/index.html", algorithm={algorithm}, nonce="{RFC7616_NONCE}",'
        f' nc=00000001, cnonce="{RFC7616_CNONCE}", qop=auth,'
        f' response="{RFC7616_RESPONSES[algorithm]}", opaque="{RFC7616_OPAQUE}"'
    ).replace("\r\n", "")  # the message layer unfolds header lines before we see them


# -- vectors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_rfc7616_example(algorithm: str) -> None:
    creds = parse_authorization(rfc7616_header(algorithm))
    assert creds is not None
    assert (creds.username, creds.realm, creds.algorithm) == ("Mufasa", RFC7616_REALM, algorithm)
    assert (creds.qop, creds.nc, creds.opaque) == ("auth", "00000001", RFC7616_OPAQUE)
    ha1 = compute_ha1("Mufasa", RFC7616_REALM, "Circle of Life", algorithm)
    response = compute_response(
        algorithm,
        ha1,
        nonce=creds.nonce,
        nc="00000001",
        cnonce=creds.cnonce or "",
        method="GET",
        uri=creds.uri,
    )
    assert response == RFC7616_RESPONSES[algorithm] == creds.response


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_rfc7616_example_adapted_to_sip(algorithm: str) -> None:
    """The RFC's credentials on a SIP REGISTER: only HA2's method and uri change."""
    name = {"MD5": "md5", "SHA-256": "sha256"}[algorithm]

    def h(text: str) -> str:
        return hashlib.new(name, text.encode()).hexdigest()

    ha1 = h(f"Mufasa:{RFC7616_REALM}:Circle of Life")
    ha2 = h("REGISTER:sip:example.org")
    expected = h(f"{ha1}:{RFC7616_NONCE}:00000001:{RFC7616_CNONCE}:auth:{ha2}")
    got = compute_response(
        algorithm,
        compute_ha1("Mufasa", RFC7616_REALM, "Circle of Life", algorithm),
        nonce=RFC7616_NONCE,
        nc="00000001",
        cnonce=RFC7616_CNONCE,
        method="REGISTER",
        uri="sip:example.org",
    )
    assert got == expected != RFC7616_RESPONSES[algorithm]


def test_sip_md5_example_computed_independently() -> None:
    ha1 = hashlib.md5(b"1001:acme.example.com:correct horse").hexdigest()
    ha2 = hashlib.md5(b"REGISTER:sip:acme.example.com").hexdigest()
    expected = hashlib.md5(f"{ha1}:abc:0000000a:xyz:auth:{ha2}".encode()).hexdigest()
    assert compute_ha1("1001", REALM, "correct horse") == ha1
    assert (
        compute_response(
            "md5",
            ha1,
            nonce="abc",
            nc="0000000a",
            cnonce="xyz",
            method="REGISTER",
            uri="sip:acme.example.com",
        )
        == expected
    )


def test_sess_variant_rekeys_ha1() -> None:
    ha1 = compute_ha1("u", "r", "p", "MD5")
    sess = hashlib.md5(f"{ha1}:n:c".encode()).hexdigest()
    ha2 = hashlib.md5(b"REGISTER:sip:r").hexdigest()
    expected = hashlib.md5(f"{sess}:n:00000001:c:auth:{ha2}".encode()).hexdigest()
    got = compute_response(
        "MD5-sess", ha1, nonce="n", nc="00000001", cnonce="c", method="REGISTER", uri="sip:r"
    )
    assert got == expected


# -- parser ----------------------------------------------------------------------------------


def test_parser_handles_quotes_commas_escapes_and_spacing() -> None:
    creds = parse_authorization(
        'DIGEST  USERNAME = "a,b\\"c" ,realm="r, with comma",nonce=n1,'
        ' uri="sip:x@y;transport=tls", response="AB", unknown="ignored, really",'
        ' algorithm=sha-256-SESS ,qop="auth", nc=00000001, cnonce="c"  '
    )
    assert creds == DigestCredentials(
        username='a,b"c',
        realm="r, with comma",
        nonce="n1",
        uri="sip:x@y;transport=tls",
        response="AB",
        algorithm="SHA-256-sess",
        qop="auth",
        nc="00000001",
        cnonce="c",
    )


def test_parser_defaults_algorithm_to_md5() -> None:
    creds = parse_authorization('Digest username="u", realm="r", nonce="n", uri="u", response="x"')
    assert creds is not None and creds.algorithm == "MD5" and creds.qop is None


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Bearer abc", "", "   ", "Digestive x=1"])
def test_parser_ignores_other_schemes(value: str) -> None:
    assert parse_authorization(value) is None


@pytest.mark.parametrize(
    "value",
    [
        "Digest",
        "Digest ",
        'Digest username="u"',  # missing realm, nonce, uri, response
        'Digest username="u", realm="r", nonce="n", uri="u"',  # no response
        'Digest username="u" realm="r", nonce="n", uri="u", response="x"',  # missing comma
        'Digest username="u, realm="r", nonce="n", uri="u", response="x"',  # unterminated
        'Digest username="u", username="v", realm="r", nonce="n", uri="u", response="x"',
        'Digest username="u", realm="r", nonce="n", uri="u", response="x",',
        'Digest username="u",, realm="r", nonce="n", uri="u", response="x"',
        'Digest username="u", realm="r", nonce="n", uri="u", response="x", userhash=maybe',
        'Digest username=, realm="r", nonce="n", uri="u", response="x"',
        "Digest " + ", ".join(f"p{i}=1" for i in range(40)),
        'Digest username="' + "u" * 5000 + '"',
    ],
)
def test_parser_rejects_malformed_digest(value: str) -> None:
    with pytest.raises(DigestError) as info:
        parse_authorization(value)
    assert info.value.status == 400
    assert isinstance(info.value, SIPProtocolError)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=300),
        st.lists(
            st.tuples(
                st.sampled_from(
                    [
                        "username",
                        "realm",
                        "nonce",
                        "uri",
                        "response",
                        "qop",
                        "nc",
                        "x",
                        "userhash",
                        "algorithm",
                        "",
                    ]
                ),
                st.sampled_from(["=", " = ", "", "=="]),
                st.one_of(st.text(max_size=20), st.just('"'), st.just('\\"')),
                st.sampled_from([",", ", ", "", " ", ",,"]),
            ),
            max_size=8,
        ).map(lambda ps: "Digest " + "".join(n + e + v + s for n, e, v, s in ps)),
    )
)
def test_parser_parses_or_raises_digest_error(value: str) -> None:
    try:
        result = parse_authorization(value)
    except DigestError as err:
        assert err.status == 400
        return
    assert result is None or isinstance(result, DigestCredentials)


@pytest.mark.parametrize(
    "value",
    [
        "Digest " + "a" * 4000,
        "Digest a=" + "b" * 4000 + " x",
        "Digest a" + " " * 4000 + "x",
        "Digest a=1" + " " * 4000 + ",b=2",
        'Digest a="' + "\\a" * 2000,
        "Digest " + "a=1 ," * 800 + "a",
        "Digest " + 'a="' * 1300,
    ],
)
def test_parser_is_linear_on_hostile_input(value: str) -> None:
    """A quadratic scan would take hundreds of milliseconds on these 4 KB values."""
    started = time.perf_counter()
    for _ in range(10):
        with pytest.raises(DigestError):
            parse_authorization(value)
    assert time.perf_counter() - started < 0.5


# -- nonces and verification -----------------------------------------------------------------


def make_verifier(**kwargs: object) -> DigestVerifier:
    return DigestVerifier(REALM, secret=b"k" * 32, **kwargs)  # type: ignore[arg-type]


HA1 = {alg: compute_ha1("1001", REALM, "pw", alg) for alg in ("MD5", "SHA-256")}


def answer(
    nonce: str,
    *,
    algorithm: str = "SHA-256",
    password: str = "pw",
    nc: str = "00000001",
    qop: str | None = "auth",
    user: str = "1001",
    realm: str = REALM,
) -> DigestCredentials:
    base = algorithm.removesuffix("-sess")
    ha1 = compute_ha1(user, realm, password, base)
    response = compute_response(
        algorithm, ha1, nonce=nonce, nc=nc, cnonce="c0", method="REGISTER", uri=f"sip:{REALM}"
    )
    return DigestCredentials(
        username=user,
        realm=realm,
        nonce=nonce,
        uri=f"sip:{REALM}",
        response=response,
        algorithm=algorithm,
        qop=qop,
        nc=nc,
        cnonce="c0",
    )


def check(
    v: DigestVerifier,
    creds: DigestCredentials,
    now: float = NOW,
    host: str = HOST,
    ha1: str | bool | None = True,
) -> tuple[DigestOutcome, str]:
    base = creds.algorithm.removesuffix("-sess")
    stored = HA1.get(base) if ha1 is True else (ha1 or None)
    result = v.verify(creds, "REGISTER", stored, host, now)
    return result.outcome, result.reason


def test_challenges_one_per_algorithm_sha256_first_sharing_a_nonce() -> None:
    values = make_verifier().challenges(HOST, NOW)
    assert [v.split("algorithm=")[1].split(",")[0] for v in values] == ["SHA-256", "MD5"]
    assert all(v.startswith(f'Digest realm="{REALM}", nonce="') for v in values)
    assert all(v.endswith(', qop="auth"') for v in values)
    assert len({v.split('nonce="')[1][:48] for v in values}) == 1
    assert make_verifier().challenges(HOST, NOW, stale=True)[0].endswith("stale=true")


def test_nonces_are_unique_even_within_one_second() -> None:
    v = make_verifier()
    assert len({v.new_nonce(HOST, NOW) for _ in range(100)}) == 100


def test_correct_answer_is_ok() -> None:
    v = make_verifier()
    assert check(v, answer(v.new_nonce(HOST, NOW))) == (DigestOutcome.OK, "ok")
    assert check(v, answer(v.new_nonce(HOST, NOW), algorithm="MD5")) == (DigestOutcome.OK, "ok")


def test_sess_algorithms_only_when_offered() -> None:
    v = make_verifier(algorithms=("SHA-256-sess", "MD5"))
    assert check(v, answer(v.new_nonce(HOST, NOW), algorithm="SHA-256-sess"))[0] is DigestOutcome.OK
    plain = make_verifier()
    creds = answer(plain.new_nonce(HOST, NOW), algorithm="MD5-sess")
    assert check(plain, creds) == (DigestOutcome.REJECTED, "algorithm_not_offered")


def test_wrong_password_and_unknown_user_fail_alike() -> None:
    v = make_verifier()
    wrong = check(v, answer(v.new_nonce(HOST, NOW), password="nope"))
    unknown = check(v, answer(v.new_nonce(HOST, NOW), user="9999"), ha1=None)
    assert wrong == (DigestOutcome.FAILED, "bad_response")
    assert unknown == (DigestOutcome.FAILED, "unknown_user")


def test_unknown_user_never_succeeds_even_against_the_dummy_ha1() -> None:
    v = make_verifier()
    nonce = v.new_nonce(HOST, NOW)
    creds = answer(nonce)
    forged = DigestCredentials(
        username="ghost",
        realm=REALM,
        nonce=nonce,
        uri=creds.uri,
        algorithm="SHA-256",
        response=compute_response(
            "SHA-256",
            v._dummy_ha1["SHA-256"],
            nonce=nonce,
            nc="00000001",
            cnonce="c0",
            method="REGISTER",
            uri=creds.uri,
        ),
        qop="auth",
        nc="00000001",
        cnonce="c0",
    )
    assert check(v, forged, ha1=None)[0] is DigestOutcome.FAILED


def test_expired_nonce_is_stale_only_when_the_digest_is_correct() -> None:
    v = make_verifier(nonce_ttl=300.0)
    nonce = v.new_nonce(HOST, NOW)
    assert check(v, answer(nonce), now=NOW + 300)[0] is DigestOutcome.OK
    later = NOW + 301
    assert check(v, answer(nonce, nc="00000002"), now=later) == (
        DigestOutcome.STALE,
        "nonce_expired",
    )
    assert check(v, answer(nonce, password="x"), now=later)[0] is DigestOutcome.FAILED
    assert check(v, answer(nonce, user="9"), now=later, ha1=None)[0] is DigestOutcome.FAILED


def test_nonce_from_another_source_or_secret_or_realm_is_invalid() -> None:
    v = make_verifier()
    nonce = v.new_nonce(HOST, NOW)
    assert check(v, answer(nonce), host="198.51.100.1") == (
        DigestOutcome.REJECTED,
        "invalid_nonce",
    )
    other = DigestVerifier(REALM, secret=b"x" * 32)
    assert check(other, answer(nonce))[1] == "invalid_nonce"
    other_realm = DigestVerifier("globex.example.com", secret=b"k" * 32)
    foreign = answer(other_realm.new_nonce(HOST, NOW))
    assert check(v, foreign)[1] == "invalid_nonce"


@pytest.mark.parametrize(
    "nonce",
    ["", "abc", "6553f100" + "0" * 40, "G" * 48, "6553f10000000000" + "0" * 33],
)
def test_forged_nonces_are_invalid(nonce: str) -> None:
    assert check(make_verifier(), answer(nonce)) == (DigestOutcome.REJECTED, "invalid_nonce")


def test_a_fresh_nonce_is_one_issued_to_that_host_within_its_lifetime() -> None:
    v = make_verifier()
    nonce = v.new_nonce(HOST, NOW)
    assert v.is_fresh(nonce, HOST, NOW + 300)
    assert not v.is_fresh(nonce, HOST, NOW + 301)
    assert not v.is_fresh(nonce, "192.0.2.11", NOW)
    assert not v.is_fresh(v.new_nonce(HOST, NOW + 60), HOST, NOW)
    assert not v.is_fresh("0" * 48, HOST, NOW)


def test_raw_nonce_reads_the_first_credentials_line_of_unparsed_bytes() -> None:
    nonce = "0123456789abcdef" * 3
    head = "REGISTER sip:a SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"

    def found(line: str) -> str | None:
        return raw_nonce(f"{head}{line}\r\nContent-Length: 0\r\n\r\n".encode())

    assert found(f'Authorization: Digest username="u", nonce="{nonce}", uri="sip:a"') == nonce
    assert found(f'proxy-authorization:Digest nonce="{nonce}"') == nonce
    assert found(f'X-Note: nonce="{nonce}"') is None
    assert found(f'Authorization: Digest xnonce="{nonce}"') is None
    # folded credentials are not read, so they are not spared
    assert found(f'Authorization: Digest username="u",\r\n nonce="{nonce}"') is None
    assert found('Authorization: Digest nonce="abc"') is None


def test_nonce_from_the_future_is_invalid() -> None:
    v = make_verifier()
    nonce = v.new_nonce(HOST, NOW + 60)
    assert check(v, answer(nonce), now=NOW)[1] == "invalid_nonce"


def test_realm_must_match() -> None:
    v = make_verifier()
    creds = answer(v.new_nonce(HOST, NOW), realm="other")
    assert check(v, creds) == (DigestOutcome.REJECTED, "realm_mismatch")


@pytest.mark.parametrize(
    ("qop", "nc", "reason"),
    [
        (None, "00000001", "qop_auth_required"),
        ("auth-int", "00000001", "qop_auth_required"),
        ("auth", "1", "bad_nc_or_cnonce"),
        ("auth", "00000000", "bad_nc_or_cnonce"),
        ("auth", "0000000g", "bad_nc_or_cnonce"),
    ],
)
def test_qop_auth_and_a_valid_nc_are_required(qop: str | None, nc: str, reason: str) -> None:
    v = make_verifier()
    assert check(v, answer(v.new_nonce(HOST, NOW), qop=qop, nc=nc)) == (
        DigestOutcome.REJECTED,
        reason,
    )


def test_nonce_count_must_increase() -> None:
    v = make_verifier()
    nonce = v.new_nonce(HOST, NOW)
    assert check(v, answer(nonce, nc="00000001"))[0] is DigestOutcome.OK
    assert check(v, answer(nonce, nc="00000001")) == (DigestOutcome.FAILED, "nc_replay")
    assert check(v, answer(nonce, nc="00000003"))[0] is DigestOutcome.OK
    assert check(v, answer(nonce, nc="00000002")) == (DigestOutcome.FAILED, "nc_replay")
    assert check(v, answer(nonce, nc="00000004"))[0] is DigestOutcome.OK


def test_bad_response_does_not_advance_the_nonce_count() -> None:
    v = make_verifier()
    nonce = v.new_nonce(HOST, NOW)
    assert check(v, answer(nonce, nc="000000ff", password="x"))[0] is DigestOutcome.FAILED
    assert check(v, answer(nonce, nc="00000001"))[0] is DigestOutcome.OK


def test_evicted_nonces_are_stale_never_replayable() -> None:
    v = make_verifier(max_tracked_nonces=2)
    first = v.new_nonce(HOST, NOW)
    assert check(v, answer(first))[0] is DigestOutcome.OK
    for i in range(2):  # two newer nonces push the first out of the LRU
        assert check(v, answer(v.new_nonce(HOST, NOW + 1 + i)), now=NOW + 1 + i)[0] is (
            DigestOutcome.OK
        )
    assert check(v, answer(first), now=NOW + 5) == (DigestOutcome.STALE, "nonce_evicted")
    assert len(v.counter) == 2


def test_nonce_counter_floor() -> None:
    counter = NonceCounter(capacity=1)
    a, b = "00000010" + "0" * 40, "00000020" + "0" * 40
    assert counter.observe(a, 0x10, 1) is NcOutcome.FRESH
    assert counter.observe(b, 0x20, 1) is NcOutcome.FRESH  # evicts a
    assert counter.floor == 0x10
    assert counter.observe(a, 0x10, 2) is NcOutcome.EVICTED


def test_verifier_validates_its_configuration() -> None:
    with pytest.raises(ValueError):
        DigestVerifier(REALM, secret=b"short")
    with pytest.raises(ValueError):
        DigestVerifier(REALM, algorithms=("SHA-512",))
    with pytest.raises(ValueError):
        DigestVerifier(REALM, algorithms=("MD5", "md5"))
    with pytest.raises(ValueError):
        DigestVerifier(REALM, nonce_ttl=0)
    assert DigestVerifier(REALM).algorithms == ("SHA-256", "MD5")


def test_response_comparison_is_case_insensitive_hex_and_safe_on_garbage() -> None:
    v = make_verifier()
    creds = answer(v.new_nonce(HOST, NOW))
    upper = DigestCredentials(**{**_fields(creds), "response": creds.response.upper()})
    assert check(v, upper)[0] is DigestOutcome.OK
    garbage = DigestCredentials(**{**_fields(creds), "response": "ü\ud800", "nc": "00000002"})
    assert check(v, garbage)[0] is DigestOutcome.FAILED


_CREDENTIAL_FIELDS = ("username", "realm", "nonce", "uri", "response", "algorithm", "qop", "nc",
                      "cnonce", "opaque", "userhash")  # fmt: skip


def _fields(creds: DigestCredentials) -> dict[str, object]:
    return {name: getattr(creds, name) for name in _CREDENTIAL_FIELDS}
