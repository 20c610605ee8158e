"""Location service: RFC 3261 §10.3 steps 6-8 — expiry rules, wildcard, ordering, caps, purging."""

from __future__ import annotations

import pytest

from pbx_runtime.registrar.location import (
    Binding,
    ContactChange,
    LocationError,
    LocationLimits,
    LocationService,
    contact_key,
    plan_update,
)
from pbx_runtime.sip import STAR, Request, SIPProtocolError, SipUri, parse_datagram, parse_uri

AOR = "sip:1001@acme.example.com"
NOW = 1_000.0
LIMITS = LocationLimits(min_expires=60, max_expires=3600, default_expires=1800)


def request(contacts: list[str], expires: int | str | None = None) -> Request:
    lines = [
        "REGISTER sip:acme.example.com SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1",
        "From: <sip:1001@acme.example.com>;tag=a",
        "To: <sip:1001@acme.example.com>",
        "Call-ID: c1",
        "CSeq: 1 REGISTER",
        *(f"Contact: {c}" for c in contacts),
    ]
    if expires is not None:
        lines.append(f"Expires: {expires}")
    message = parse_datagram(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


def plan(contacts: list[str], expires: int | str | None = None) -> tuple[ContactChange, ...]:
    update = plan_update(request(contacts, expires), LIMITS)
    assert update != STAR
    return update


# -- plan_update: Expires rules --------------------------------------------------------------


def test_contact_param_beats_header_beats_default() -> None:
    changes = plan(["<sip:a@h1>;expires=120", "<sip:b@h2>"], expires=600)
    assert [c.expires for c in changes] == [120, 600]
    assert [c.expires for c in plan(["<sip:a@h1>"])] == [1800]


def test_long_expiry_is_clamped_to_max() -> None:
    assert plan(["<sip:a@h1>"], expires=86400)[0].expires == 3600
    assert plan(["<sip:a@h1>;expires=4294967295"])[0].expires == 3600


@pytest.mark.parametrize(("contact", "expires"), [("<sip:a@h1>", 59), ("<sip:a@h1>;expires=1", 0)])
def test_too_brief_is_423_with_min_expires(contact: str, expires: int) -> None:
    with pytest.raises(LocationError) as info:
        plan([contact, "<sip:b@h2>;expires=3600"], expires=expires)
    assert info.value.status == 423
    assert info.value.headers == (("Min-Expires", "60"),)


def test_zero_is_not_too_brief() -> None:
    assert plan(["<sip:a@h1>"], expires=0)[0].expires == 0
    assert plan(["<sip:a@h1>;expires=0"], expires=3600)[0].expires == 0


def test_wildcard_requires_expires_zero_and_standing_alone() -> None:
    assert plan_update(request(["*"], expires=0), LIMITS) == STAR
    for expires in (None, 3600):
        with pytest.raises(LocationError) as info:
            plan_update(request(["*"], expires=expires), LIMITS)
        assert info.value.status == 400
    with pytest.raises(SIPProtocolError) as err:
        plan_update(request(["*", "<sip:a@h1>"], expires=0), LIMITS)
    assert err.value.status == 400


@pytest.mark.parametrize(
    "contact",
    [
        "<tel:+15551234>",
        "<mailto:a@b.example>",
        "<sip:a@h1>;expires=soon",
        "<sip:a@h1>;expires",
        "<sip:a@h1>;q=1.5",
        "<sip:a@h1>;q",
    ],
)
def test_bad_contacts_are_400(contact: str) -> None:
    with pytest.raises(LocationError) as info:
        plan([contact], expires=600)
    assert info.value.status == 400


def test_malformed_expires_header_is_400() -> None:
    with pytest.raises(SIPProtocolError) as info:
        plan(["<sip:a@h1>"], expires="soon")
    assert info.value.status == 400


def test_q_and_other_params_are_kept_for_the_reply() -> None:
    (change,) = plan(['<sip:a@h1>;q=0.7;+sip.instance="<urn:uuid:1>";reg-id=1'], expires=600)
    assert change.q == "0.7"
    assert [name for name, _ in change.params] == ["+sip.instance", "reg-id"]


def test_no_contact_is_a_query() -> None:
    assert plan_update(request([]), LIMITS) == ()


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError):
        LocationLimits(min_expires=0)
    with pytest.raises(ValueError):
        LocationLimits(min_expires=600, default_expires=300)
    with pytest.raises(ValueError):
        LocationLimits(max_contacts_per_aor=0)


# -- apply: bindings -------------------------------------------------------------------------


def change(uri: str, expires: int = 600, q: str | None = None) -> ContactChange:
    parsed = parse_uri(uri)
    assert isinstance(parsed, SipUri)
    return ContactChange(uri=parsed, expires=expires, q=q)


def test_add_refresh_and_lookup() -> None:
    loc = LocationService(LIMITS)
    applied = loc.apply(AOR, (change("sip:a@h1"),), call_id="c1", cseq=1, now=NOW, source="s:1")
    assert [str(b.uri) for b in applied.added] == ["sip:a@h1"]
    refreshed = loc.apply(AOR, (change("sip:a@H1", 900),), call_id="c1", cseq=2, now=NOW + 10)
    assert refreshed.added == () and refreshed.removed == ()
    (binding,) = loc.lookup(AOR, NOW + 10)
    assert binding.expires_at == NOW + 910
    assert binding.registered_at == NOW  # a refresh keeps the first registration time
    assert binding.contact_value(NOW + 10) == "<sip:a@H1>;expires=900"
    assert len(loc) == 1


def test_multiple_contacts_sorted_by_q_then_recency() -> None:
    loc = LocationService(LIMITS)
    loc.apply(AOR, (change("sip:a@h1", q="0.5"),), call_id="c1", cseq=1, now=NOW)
    loc.apply(AOR, (change("sip:b@h2"),), call_id="c2", cseq=1, now=NOW + 1)
    loc.apply(AOR, (change("sip:c@h3", q="1.0"),), call_id="c3", cseq=1, now=NOW + 2)
    assert [b.uri.user for b in loc.lookup(AOR, NOW + 3)] == ["c", "b", "a"]


def test_uri_comparison_follows_rfc3261() -> None:
    base = contact_key(parse_uri("sip:alice@Host.Example:5060;transport=TCP;foo=1"))  # type: ignore[arg-type]
    same = contact_key(parse_uri("sip:%61lice@host.example:5060;Transport=tcp"))  # type: ignore[arg-type]
    assert base == same
    for other in (
        "sips:alice@host.example:5060;transport=tcp",
        "sip:alice@host.example;transport=tcp",
        "sip:Alice@host.example:5060;transport=tcp",
        "sip:alice@host.example:5060",
    ):
        assert contact_key(parse_uri(other)) != base  # type: ignore[arg-type]


def test_same_call_id_lower_or_equal_cseq_is_500_and_changes_nothing() -> None:
    loc = LocationService(LIMITS)
    loc.apply(AOR, (change("sip:a@h1"),), call_id="c1", cseq=5, now=NOW)
    for cseq in (4, 5):
        with pytest.raises(LocationError) as info:
            loc.apply(
                AOR,
                (change("sip:b@h2"), change("sip:a@h1", 0)),
                call_id="c1",
                cseq=cseq,
                now=NOW,
            )
        assert info.value.status == 500
    assert [b.uri.user for b in loc.lookup(AOR, NOW)] == ["a"]
    # Another Call-ID (a rebooted phone) may update whatever its CSeq.
    loc.apply(AOR, (change("sip:a@h1", 0),), call_id="c2", cseq=1, now=NOW)
    assert loc.lookup(AOR, NOW) == ()


def test_unregister_one_contact_with_expires_zero() -> None:
    loc = LocationService(LIMITS)
    loc.apply(AOR, (change("sip:a@h1"), change("sip:b@h2")), call_id="c1", cseq=1, now=NOW)
    applied = loc.apply(AOR, (change("sip:a@h1", 0),), call_id="c1", cseq=2, now=NOW)
    assert [b.uri.user for b in applied.removed] == ["a"]
    assert [b.uri.user for b in applied.bindings] == ["b"]
    assert loc.apply(AOR, (change("sip:zz@h9", 0),), call_id="c1", cseq=3, now=NOW).removed == ()
    assert len(loc) == 1


def test_wildcard_removes_all_and_respects_ordering() -> None:
    loc = LocationService(LIMITS)
    loc.apply(AOR, (change("sip:a@h1"),), call_id="c1", cseq=7, now=NOW)
    loc.apply(AOR, (change("sip:b@h2"),), call_id="c2", cseq=1, now=NOW)
    with pytest.raises(LocationError) as info:
        loc.apply(AOR, STAR, call_id="c1", cseq=7, now=NOW)
    assert info.value.status == 500
    applied = loc.apply(AOR, STAR, call_id="c1", cseq=8, now=NOW)
    assert sorted(b.uri.user or "" for b in applied.removed) == ["a", "b"]
    assert loc.lookup(AOR, NOW) == () and len(loc) == 0


def test_repeated_contact_in_one_request_last_wins() -> None:
    loc = LocationService(LIMITS)
    applied = loc.apply(
        AOR, (change("sip:a@h1", 600), change("sip:a@h1", 900)), call_id="c1", cseq=1, now=NOW
    )
    assert [b.expires_at for b in applied.added] == [NOW + 900]
    gone = loc.apply(
        AOR, (change("sip:b@h2", 600), change("sip:b@h2", 0)), call_id="c1", cseq=2, now=NOW
    )
    assert gone.added == () and len(loc) == 1


def test_contact_cap_per_aor_is_403_but_refresh_still_works() -> None:
    loc = LocationService(LocationLimits(max_contacts_per_aor=2))
    loc.apply(AOR, (change("sip:a@h1"), change("sip:b@h2")), call_id="c1", cseq=1, now=NOW)
    with pytest.raises(LocationError) as info:
        loc.apply(AOR, (change("sip:c@h3"),), call_id="c1", cseq=2, now=NOW)
    assert info.value.status == 403
    loc.apply(AOR, (change("sip:a@h1", 900),), call_id="c1", cseq=3, now=NOW)
    # Swapping one contact for another in one request keeps the count and is allowed.
    loc.apply(AOR, (change("sip:a@h1", 0), change("sip:c@h3")), call_id="c1", cseq=4, now=NOW)
    assert sorted(b.uri.user or "" for b in loc.lookup(AOR, NOW)) == ["b", "c"]


def test_total_binding_cap_is_503_after_purging_expired() -> None:
    loc = LocationService(LocationLimits(max_bindings=2))
    loc.apply("sip:1@d", (change("sip:a@h1", 60),), call_id="c1", cseq=1, now=NOW)
    loc.apply("sip:2@d", (change("sip:b@h2", 600),), call_id="c2", cseq=1, now=NOW)
    with pytest.raises(LocationError) as info:
        loc.apply("sip:3@d", (change("sip:c@h3"),), call_id="c3", cseq=1, now=NOW)
    assert info.value.status == 503 and ("Retry-After", "60") in info.value.headers
    # Once the first binding has expired, the cap makes room by purging it.
    applied = loc.apply("sip:3@d", (change("sip:c@h3"),), call_id="c3", cseq=1, now=NOW + 61)
    assert [b.aor for b in applied.expired] == ["sip:1@d"]
    assert len(loc) == 2


def test_expired_bindings_vanish_from_lookup_and_are_purged() -> None:
    loc = LocationService(LIMITS)
    loc.apply(AOR, (change("sip:a@h1", 60), change("sip:b@h2", 120)), call_id="c", cseq=1, now=NOW)
    assert len(loc.lookup(AOR, NOW + 60)) == 1  # expiry is inclusive: at expires_at it is gone
    assert loc.purge(NOW + 59) == []
    assert [b.uri.user for b in loc.purge(NOW + 60)] == ["a"]
    assert len(loc) == 1
    assert [b.uri.user for b in loc.purge(NOW + 1000)] == ["b"]
    assert len(loc) == 0 and list(loc.all_bindings()) == []


def test_purge_skips_refreshed_bindings_and_the_heap_stays_bounded() -> None:
    loc = LocationService(LIMITS)
    for i in range(3000):  # many refreshes of one contact
        loc.apply(AOR, (change("sip:a@h1", 60),), call_id="c", cseq=i + 1, now=NOW + i)
    assert len(loc._heap) <= 2 * len(loc) + 1024 + 1
    assert loc.purge(NOW + 3000) == []
    (binding,) = loc.purge(NOW + 3059)
    assert isinstance(binding, Binding) and len(loc) == 0


def test_apply_reports_lazily_expired_bindings_of_the_aor() -> None:
    loc = LocationService(LIMITS)
    loc.apply(AOR, (change("sip:a@h1", 60),), call_id="c", cseq=1, now=NOW)
    applied = loc.apply(AOR, (change("sip:b@h2"),), call_id="c", cseq=2, now=NOW + 100)
    assert [b.uri.user for b in applied.expired] == ["a"]
    assert [b.uri.user for b in applied.bindings] == ["b"]
    assert len(loc) == 1 and loc.purge(NOW + 100) == []


def test_remove_aor() -> None:
    loc = LocationService(LIMITS)
    loc.apply(AOR, (change("sip:a@h1"), change("sip:b@h2")), call_id="c", cseq=1, now=NOW)
    assert len(loc.remove_aor(AOR)) == 2 and len(loc) == 0
