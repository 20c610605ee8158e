"""Registrar.handle end to end (parsed requests in, responses out) and the shared Authenticator."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from registrar_support import (
    DOMAIN,
    SOURCE,
    T0,
    Phone,
    digest_response,
    login,
    make_stack,
    parse_challenge,
    wire,
)

from pbx_runtime.events import EventKind
from pbx_runtime.policy import AbuseConfig, LockoutRule, Verdict
from pbx_runtime.registrar import AuthOutcome, LocationLimits
from pbx_runtime.sip import Request, parse_datagram

NO_LOCKOUT = AbuseConfig(
    source_lockout=LockoutRule(threshold=10**6), user_lockout=LockoutRule(threshold=10**6)
)


def kinds(stack) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(e.kind) for e in stack.events.drain()]


# -- the happy path --------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_challenge_then_register(algorithm: str) -> None:
    stack = make_stack()
    phone = Phone(algorithm=algorithm)
    challenge = stack.registrar.handle(phone.register(authorize=False), SOURCE, T0)
    assert challenge is not None and challenge.status == 401
    offered = [parse_challenge(v) for v in challenge.get_all("WWW-Authenticate")]
    assert [c["algorithm"] for c in offered] == ["SHA-256", "MD5"]
    assert {c["realm"] for c in offered} == {DOMAIN} and {c["qop"] for c in offered} == {"auth"}
    assert not challenge.has("Server")
    phone.take_challenge(challenge)
    ok = stack.registrar.handle(phone.register(), SOURCE, T0)
    assert ok is not None and ok.status == 200
    assert ok.get_all("Contact") == ["<sip:1001@192.0.2.10:5060>;expires=3600"]
    assert ok.to.tag is not None
    (event,) = stack.events.drain()
    assert (event.kind, event.user, event.source) == (EventKind.REGISTERED, "1001", SOURCE)


def test_refresh_reuses_the_nonce_with_a_higher_nc() -> None:
    stack = make_stack()
    phone = Phone()
    assert login(stack, phone).status == 200
    stack.events.drain()
    refreshed = stack.registrar.handle(phone.register(expires=600), SOURCE, T0 + 100)
    assert refreshed is not None and refreshed.status == 200
    assert refreshed.get("Contact") == "<sip:1001@192.0.2.10:5060>;expires=600"
    assert kinds(stack) == []  # refreshes are not security events


def test_200_lists_every_binding_and_query_without_contact() -> None:
    stack = make_stack()
    phone = Phone()
    login(stack, phone)
    desk = Phone(contact="sip:1001@192.0.2.11:5062", call_id="desk@x", nonce=phone.nonce, nc=5)
    both = stack.registrar.handle(desk.register(expires=1200), SOURCE, T0 + 10)
    assert both is not None and sorted(both.get_all("Contact")) == [
        "<sip:1001@192.0.2.10:5060>;expires=3590",
        "<sip:1001@192.0.2.11:5062>;expires=1200",
    ]
    phone.nc = 10  # the nonce is shared with desk, which used nc=6
    query = stack.registrar.handle(phone.register(contacts=[]), SOURCE, T0 + 20)
    assert query is not None and len(query.get_all("Contact")) == 2


def test_unregister_one_and_all() -> None:
    stack = make_stack()
    phone = Phone()
    login(stack, phone)
    other = stack.registrar.handle(phone.register(contacts=["<sip:1001@192.0.2.99>"]), SOURCE, T0)
    assert other is not None and len(other.get_all("Contact")) == 2
    stack.events.drain()
    one = stack.registrar.handle(phone.register(expires=0), SOURCE, T0 + 1)
    assert one is not None and one.get_all("Contact") == ["<sip:1001@192.0.2.99>;expires=3599"]
    assert kinds(stack) == ["unregistered"]
    everything = stack.registrar.handle(phone.register(contacts=["*"], expires=0), SOURCE, T0 + 2)
    assert everything is not None and everything.status == 200 and not everything.has("Contact")
    assert kinds(stack) == ["unregistered"]
    assert stack.registrar.location.lookup(stack.registrar.aor("1001"), T0 + 2) == ()


def test_purge_reports_expired_bindings() -> None:
    stack = make_stack()
    login(stack, Phone())
    stack.events.drain()
    assert stack.registrar.purge(T0 + 3599) == []
    assert len(stack.registrar.purge(T0 + 3600)) == 1
    (event,) = stack.events.drain()
    assert event.kind is EventKind.UNREGISTERED and event.reason.startswith("expired")


# -- refusals --------------------------------------------------------------------------------


def raw_register(to: str, from_: str | None = None, extra: str = "") -> Request:
    text = (
        f"REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKx\r\n"
        f"From: {from_ or to};tag=1\r\nTo: {to}\r\nCall-ID: r@x\r\nCSeq: 1 REGISTER\r\n"
        f"Contact: <sip:1001@192.0.2.10>\r\n{extra}Content-Length: 0\r\n\r\n"
    )
    message = parse_datagram(text.encode())
    assert isinstance(message, Request)
    return message


@pytest.mark.parametrize(
    ("to", "from_", "status"),
    [
        ("<sip:1001@globex.example.com>", None, 404),
        ("<sip:acme.example.com>", None, 404),
        ("<tel:+15551001>", None, 404),
        ("<sip:1001@ACME.example.com>", "<sip:1001@evil.example>", 403),
        ("<sip:1001@acme.example.com>", "<tel:+15551001>", 403),
    ],
)
def test_aor_outside_the_domain_is_refused_before_auth(to: str, from_: str, status: int) -> None:
    stack = make_stack()
    response = stack.registrar.handle(raw_register(to, from_), SOURCE, T0)
    assert response is not None and response.status == status
    assert not response.has("WWW-Authenticate")


def test_domain_aliases_and_case() -> None:
    stack = make_stack()
    ok = stack.registrar.handle(raw_register("<sip:1001@Acme.Example.COM>"), SOURCE, T0)
    assert ok is not None and ok.status == 401


def test_require_is_420_and_other_methods_405() -> None:
    stack = make_stack()
    request = raw_register("<sip:1001@acme.example.com>", extra="Require: foo, bar\r\n")
    response = stack.registrar.handle(request, SOURCE, T0)
    assert response is not None and response.status == 420
    assert response.get("Unsupported") == "foo, bar"
    options = parse_datagram(
        b"OPTIONS sip:acme.example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKo\r\n"
        b"From: <sip:a@acme.example.com>;tag=1\r\nTo: <sip:acme.example.com>\r\n"
        b"Call-ID: o\r\nCSeq: 1 OPTIONS\r\n\r\n"
    )
    assert isinstance(options, Request)
    other = stack.registrar.handle(options, SOURCE, T0)
    assert other is not None and other.status == 405 and other.get("Allow") == "REGISTER"


def test_authenticated_user_must_own_the_aor() -> None:
    stack = make_stack()
    phone = Phone(user="1001", auth_user="1002", password="battery staple")
    response = login(stack, phone)
    assert response.status == 403
    (event,) = stack.events.drain()
    assert (event.kind, event.user) == (EventKind.FORBIDDEN, "1002")


def test_423_after_auth_with_min_expires() -> None:
    stack = make_stack(limits=LocationLimits(min_expires=120))
    phone = Phone()
    phone.take_challenge(stack.registrar.handle(phone.register(authorize=False), SOURCE, T0))
    response = stack.registrar.handle(phone.register(expires=30), SOURCE, T0)
    assert response is not None and response.status == 423
    assert response.get("Min-Expires") == "120"


def test_out_of_order_cseq_is_500() -> None:
    stack = make_stack()
    phone = Phone()
    login(stack, phone)
    phone.cseq -= 2  # same Call-ID, lower CSeq
    response = stack.registrar.handle(phone.register(), SOURCE, T0 + 1)
    assert response is not None and response.status == 500


def test_wildcard_without_expires_zero_is_400() -> None:
    stack = make_stack()
    phone = Phone()
    login(stack, phone)
    response = stack.registrar.handle(phone.register(contacts=["*"], expires=60), SOURCE, T0)
    assert response is not None and response.status == 400


def test_malformed_credentials_and_uri_mismatch_are_400() -> None:
    stack = make_stack()
    phone = Phone()
    bad = phone.register(authorize=False, headers=[("Authorization", 'Digest username="1001')])
    response = stack.registrar.handle(bad, SOURCE, T0)
    assert response is not None and response.status == 400
    phone.take_challenge(stack.registrar.handle(phone.register(authorize=False), SOURCE, T0))
    header = phone.authorization("REGISTER", "sip:elsewhere.example")
    mismatch = phone.register(authorize=False, headers=[("Authorization", header)])
    response = stack.registrar.handle(mismatch, SOURCE, T0)
    assert response is not None and response.status == 400


def test_digest_uri_may_differ_in_parameters_and_case() -> None:
    stack = make_stack()
    phone = Phone()
    phone.take_challenge(stack.registrar.handle(phone.register(authorize=False), SOURCE, T0))
    header = phone.authorization("REGISTER", "sip:ACME.example.com;transport=tls")
    response = stack.registrar.handle(
        phone.register(authorize=False, headers=[("Authorization", header)]), SOURCE, T0
    )
    assert response is not None and response.status == 200


def test_credentials_for_other_realms_and_schemes_are_ignored() -> None:
    stack = make_stack()
    phone = Phone(realm="other.example")
    phone.take_challenge(stack.registrar.handle(phone.register(authorize=False), SOURCE, T0))
    basic = ("Authorization", "Basic MTAwMTpwYXNz")
    response = stack.registrar.handle(phone.register(headers=[basic]), SOURCE, T0)
    assert response is not None and response.status == 401
    assert kinds(stack) == []  # not a failed guess: nothing counted


# -- nonces: stale, source binding, replay ----------------------------------------------------


def test_expired_nonce_gets_stale_then_succeeds_with_the_new_one() -> None:
    stack = make_stack(nonce_ttl=300)
    phone = Phone()
    login(stack, phone)
    stale = stack.registrar.handle(phone.register(), SOURCE, T0 + 301)
    assert stale is not None and stale.status == 401
    assert [parse_challenge(v).get("stale") for v in stale.get_all("WWW-Authenticate")] == [
        "true",
        "true",
    ]
    phone.take_challenge(stale)
    again = stack.registrar.handle(phone.register(), SOURCE, T0 + 301)
    assert again is not None and again.status == 200


def test_wrong_password_on_expired_nonce_is_not_stale() -> None:
    stack = make_stack(nonce_ttl=300)
    phone = Phone(password="wrong")
    phone.take_challenge(stack.registrar.handle(phone.register(authorize=False), SOURCE, T0))
    response = stack.registrar.handle(phone.register(), SOURCE, T0 + 400)
    assert response is not None
    assert "stale" not in parse_challenge(response.get("WWW-Authenticate") or "Digest ")


def test_nonce_is_bound_to_the_ip_not_the_port() -> None:
    stack = make_stack()
    phone = Phone()
    phone.take_challenge(stack.registrar.handle(phone.register(authorize=False), SOURCE, T0))
    moved = stack.registrar.handle(phone.register(), "198.51.100.7:5060", T0)
    assert moved is not None and moved.status == 401
    assert kinds(stack) == []  # a foreign nonce is not a counted failure (spoofable)
    rebound = stack.registrar.handle(phone.register(), "192.0.2.10:40000", T0)
    assert rebound is not None and rebound.status == 200


def test_replayed_request_is_rejected_and_counted() -> None:
    stack = make_stack()
    phone = Phone()
    phone.take_challenge(stack.registrar.handle(phone.register(authorize=False), SOURCE, T0))
    request = phone.register()
    first = stack.registrar.handle(request, SOURCE, T0)
    assert first is not None and first.status == 200
    stack.events.drain()
    replay = stack.registrar.handle(request, SOURCE, T0 + 1)
    assert replay is not None and replay.status == 401
    (event,) = stack.events.drain()
    assert (event.kind, event.reason) == (EventKind.AUTH_FAILED, "nc_replay")


# -- enumeration resistance ------------------------------------------------------------------

_NONCE_RE = re.compile(rb'nonce="[0-9a-f]{48}"')


def fixed_register(authorization: str | None) -> Request:
    """The same REGISTER every time except for the Authorization header."""
    auth = f"Authorization: {authorization}\r\n" if authorization else ""
    text = (
        f"REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKenum\r\n"
        f"From: <sip:1001@{DOMAIN}>;tag=1\r\nTo: <sip:1001@{DOMAIN}>\r\nCall-ID: enum@x\r\n"
        f"CSeq: 1 REGISTER\r\nContact: <sip:1001@192.0.2.10>\r\n{auth}Content-Length: 0\r\n\r\n"
    )
    message = parse_datagram(text.encode())
    assert isinstance(message, Request)
    return message


def masked(response: object) -> bytes:
    return _NONCE_RE.sub(b'nonce="N"', wire(response))  # type: ignore[arg-type]


ENUM_STACK = make_stack(abuse=NO_LOCKOUT)
BASELINE = masked(ENUM_STACK.registrar.handle(fixed_register(None), SOURCE, T0))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    user=st.one_of(
        st.sampled_from(["1001", "1002", "1000", "9999", "admin"]),
        st.from_regex(r"[A-Za-z0-9]{1,12}", fullmatch=True),
    ),
    password=st.text(max_size=24),
    algorithm=st.sampled_from(["SHA-256", "MD5"]),
)
def test_failed_auth_is_identical_for_known_and_unknown_users(
    user: str, password: str, algorithm: str
) -> None:
    registrar = ENUM_STACK.registrar
    challenge = registrar.handle(fixed_register(None), SOURCE, T0)
    assert masked(challenge) == BASELINE
    nonce = {
        parse_challenge(v)["algorithm"]: parse_challenge(v)["nonce"]
        for v in challenge.get_all("WWW-Authenticate")
    }[algorithm]  # type: ignore[union-attr]
    if password == {"1001": "correct horse", "1002": "battery staple"}.get(user):
        password += "x"
    response = digest_response(
        algorithm, user, DOMAIN, password, "REGISTER", f"sip:{DOMAIN}", nonce, "00000001", "c"
    )
    header = (
        f'Digest username="{user}", realm="{DOMAIN}", nonce="{nonce}", uri="sip:{DOMAIN}", '
        f'response="{response}", algorithm={algorithm}, cnonce="c", qop=auth, nc=00000001'
    )
    answer = registrar.handle(fixed_register(header), SOURCE, T0)
    assert masked(answer) == BASELINE
    ENUM_STACK.events.drain()


def test_known_and_unknown_users_lock_alike() -> None:
    stack = make_stack(
        abuse=AbuseConfig(
            source_lockout=LockoutRule(threshold=10**6), user_lockout=LockoutRule(threshold=3)
        )
    )
    for user in ("1001", "nosuchuser"):
        phone = Phone(user=user, password="guess")
        outcomes = []
        for _ in range(4):
            phone.take_challenge(
                stack.registrar.handle(phone.register(authorize=False), SOURCE, T0)
            )
            response = stack.registrar.handle(phone.register(), SOURCE, T0)
            outcomes.append(None if response is None else response.status)
        assert outcomes == [401, 401, 401, None], user
    assert kinds(stack).count("lockout") == 2


# -- abuse integration -----------------------------------------------------------------------


def test_source_lockout_after_five_failures() -> None:
    stack = make_stack()
    phone = Phone(password="guess")
    for _ in range(5):
        assert stack.policy.check_source(SOURCE, T0) is Verdict.ALLOW
        phone.take_challenge(stack.registrar.handle(phone.register(authorize=False), SOURCE, T0))
        response = stack.registrar.handle(phone.register(), SOURCE, T0)
        assert response is not None and response.status == 401
    assert stack.policy.check_source(SOURCE, T0) is Verdict.LOCKED
    events = stack.events.drain()
    assert [str(e.kind) for e in events] == ["auth_failed"] * 5 + ["lockout"]
    assert events[-1].reason == "source locked 60s strike 1"


def test_user_lock_spares_a_phone_that_recently_authenticated_there() -> None:
    stack = make_stack(
        abuse=AbuseConfig(
            source_lockout=LockoutRule(threshold=10**6), user_lockout=LockoutRule(threshold=3)
        )
    )
    good = Phone()
    assert login(stack, good).status == 200
    attacker = Phone(password="guess")
    for i in range(3):
        source = f"203.0.113.{i}:5060"
        attacker.take_challenge(
            stack.registrar.handle(attacker.register(authorize=False), source, T0)
        )
        stack.registrar.handle(attacker.register(), source, T0)
    attacker.take_challenge(
        stack.registrar.handle(attacker.register(authorize=False), "203.0.113.9:5060", T0)
    )
    assert stack.registrar.handle(attacker.register(), "203.0.113.9:5060", T0) is None
    refreshed = stack.registrar.handle(good.register(), SOURCE, T0 + 1)
    assert refreshed is not None and refreshed.status == 200


# -- the Authenticator for call control (407) ------------------------------------------------


def invite(authorization: str | None = None, header: str = "Proxy-Authorization") -> Request:
    auth = f"{header}: {authorization}\r\n" if authorization else ""
    text = (
        "INVITE sip:+15551234@acme.example.com SIP/2.0\r\n"
        "Via: SIP/2.0/TLS 192.0.2.10;branch=z9hG4bKinv\r\n"
        f"From: <sip:1001@{DOMAIN}>;tag=9\r\nTo: <sip:+15551234@{DOMAIN}>\r\n"
        f"Call-ID: inv@x\r\nCSeq: 1 INVITE\r\n{auth}Content-Length: 0\r\n\r\n"
    )
    message = parse_datagram(text.encode())
    assert isinstance(message, Request)
    return message


def test_authenticator_challenges_and_verifies_invite_with_407() -> None:
    stack = make_stack()
    result = stack.auth.authenticate(invite(), SOURCE, T0, status=407)
    assert result.outcome is AuthOutcome.CHALLENGE and result.response is not None
    assert result.response.status == 407 and not result.response.has("WWW-Authenticate")
    phone = Phone()
    phone.take_challenge(result.response, header="Proxy-Authenticate")
    header = phone.authorization("INVITE", f"sip:+15551234@{DOMAIN}")
    ok = stack.auth.authenticate(invite(header), SOURCE, T0, status=407)
    assert (ok.outcome, ok.user, ok.response) == (AuthOutcome.OK, "1001", None)
    # WWW-style credentials do not answer a proxy challenge.
    phone.nc += 5
    wrong_header = stack.auth.authenticate(
        invite(phone.authorization("INVITE", f"sip:+15551234@{DOMAIN}"), header="Authorization"),
        SOURCE,
        T0,
        status=407,
    )
    assert wrong_header.outcome is AuthOutcome.CHALLENGE


def test_authenticator_follows_a_realm_change_on_reload() -> None:
    from registrar_support import credentials_config

    stack = make_stack()
    stack.store.reload(credentials_config(realm="acme2.example.com"))
    phone = Phone(realm="acme2.example.com")
    response = stack.auth.authenticate(invite(), SOURCE, T0, status=407)
    assert response.response is not None
    params = phone.take_challenge(response.response, header="Proxy-Authenticate")
    assert params["realm"] == "acme2.example.com"
