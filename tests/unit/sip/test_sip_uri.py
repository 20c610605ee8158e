"""SIP/SIPS/tel/absolute URI parsing (RFC 3261 §19.1, §25.1; RFC 3966)."""

from __future__ import annotations

import pytest

from pbx_runtime.sip import (
    AbsoluteUri,
    Params,
    SIPProtocolError,
    SipUri,
    TelUri,
    parse_request_uri,
    parse_uri,
    unescape,
)


def sip(text: str) -> SipUri:
    uri = parse_uri(text)
    assert isinstance(uri, SipUri)
    return uri


def test_full_sip_uri_components() -> None:
    uri = sip(
        "sips:alice:secret@Atlanta.Example.com:5061;transport=tcp;lr;maddr=239.255.255.1"
        "?subject=project%20x&priority=urgent"
    )
    assert uri.scheme == "sips"
    assert (uri.user, uri.password) == ("alice", "secret")
    assert (uri.host, uri.port) == ("Atlanta.Example.com", 5061)
    assert uri.host_address == "atlanta.example.com"
    assert uri.transport == "tcp"
    assert uri.params.has("LR") and uri.params.get("lr") is None
    assert uri.params == (("transport", "tcp"), ("lr", None), ("maddr", "239.255.255.1"))
    assert uri.headers == (("subject", "project%20x"), ("priority", "urgent"))
    assert str(uri) == (
        "sips:alice:secret@Atlanta.Example.com:5061;transport=tcp;lr;"
        "maddr=239.255.255.1?subject=project%20x&priority=urgent"
    )


@pytest.mark.parametrize(
    "text",
    [
        "sip:alice@atlanta.com",
        "sip:alice@192.0.2.4",
        "sip:+1-212-555-1212:1234@gateway.com;user=phone",
        "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
        "sip:alice;day=tuesday@atlanta.com",
        "sip:[2001:db8::10]",
        "sip:[2001:db8::10]:5070",
        "sip:user@[::ffff:192.0.2.2]:5060;transport=udp",
        "sip:host.example.com.",
        "sip:a-b.c-d.example",
        "sip:%61lice@example.com",
        "sip:user:@example.com",
    ],
)
def test_valid_sip_uris_round_trip(text: str) -> None:
    assert str(sip(text)) == text


def test_scheme_is_case_insensitive_and_lowered() -> None:
    uri = sip("SIP:bob@example.com")
    assert uri.scheme == "sip" and str(uri) == "sip:bob@example.com"


def test_user_part_may_hold_reserved_characters_and_escapes() -> None:
    uri = sip("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com")
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.host == "example.com" and uri.params == ()
    assert sip("sip:user;par=u%40example.net@example.com").user_unescaped == (
        "user;par=u@example.net"
    )


def test_ipv6_brackets_and_port() -> None:
    uri = sip("sip:[2001:db8::10:5070]")
    assert uri.is_ipv6 and uri.host_address == "2001:db8::10:5070" and uri.port is None
    uri = sip("sip:[2001:db8::10]:5070")
    assert uri.host_address == "2001:db8::10" and uri.port == 5070


def test_uri_param_helper_unescapes() -> None:
    uri = sip("sip:a@b;n%61me=v%61lue%25%34%31")
    assert uri.params.get("n%61me") == "v%61lue%25%34%31"
    assert uri.param("n%61me") == "value%41"


@pytest.mark.parametrize(
    "text",
    [
        "sip:",
        "sip:@example.com",
        "sip:user@",
        "sip:user@exa mple.com",
        "sip:2001:db8::10",  # RFC 5118 §4.2: IPv6 without brackets
        "sip:user@[2001:db8:::192.0.2.1]",  # RFC 5118 §4.10: not an IPv6 address
        "sip:user@[2001:db8::1",
        "sip:user@[fe80::1%25eth0]",
        "sip:user@[::1]x",
        "sip:user@host:",
        "sip:user@host:65536",
        "sip:user@host:abc",
        "sip:user@-host.example.com",
        "sip:user@host-.example.com",
        "sip:user@host..example.com",
        "sip:user@example.123",
        "sip:user@256.1.1.1",
        "sip:us er@example.com",
        "sip:user@example.com;",
        "sip:user@example.com;;lr",
        "sip:user@example.com;a=",
        "sip:user@example.com;a=b=c",
        "sip:user@example.com?",
        "sip:user@example.com?a",
        "sip:a@b@c",
        "sip:%zz@example.com",
        "sip:user<@example.com",
        "<sip:user@example.com>",
        "1sip:user@example.com",
        "nocolon",
        ":opaque",
        "http:",
        "http:has space",
    ],
)
def test_invalid_uris_are_400(text: str) -> None:
    with pytest.raises(SIPProtocolError) as caught:
        parse_uri(text)
    assert caught.value.status == 400


def test_tel_uris() -> None:
    uri = parse_uri("tel:+1-201-555-0123;ext=1234")
    assert isinstance(uri, TelUri)
    assert uri.is_global and uri.digits == "+12015550123"
    assert uri.params.get("ext") == "1234"
    assert str(uri) == "tel:+1-201-555-0123;ext=1234"
    local = parse_uri("tel:7042;phone-context=example.com")
    assert isinstance(local, TelUri) and not local.is_global
    for bad in ("tel:", "tel:+", "tel:+--", "tel:7042", "tel:+1 555", "tel:+1;=x", "tel:+1;a=b c"):
        with pytest.raises(SIPProtocolError):
            parse_uri(bad)


def test_absolute_uris_are_opaque() -> None:
    for text in (
        "isbn:2983792873",
        "http://www.example.com",
        "name:John_Smith",
        "urn:service:sos",
        "soap.beep://192.0.2.103:3002",
    ):
        uri = parse_uri(text)
        assert isinstance(uri, AbsoluteUri) and str(uri) == text


def test_request_uri_rules() -> None:
    assert isinstance(parse_request_uri("sip:a@b"), SipUri)
    assert isinstance(parse_request_uri("tel:+15551234"), TelUri)
    with pytest.raises(SIPProtocolError) as caught:
        parse_request_uri("nobodyKnowsThisScheme:totallyopaquecontent")
    assert caught.value.status == 416
    with pytest.raises(SIPProtocolError) as caught:
        parse_request_uri("sip:user@example.com?Route=%3Csip:example.com%3E")
    assert caught.value.status == 400
    with pytest.raises(SIPProtocolError) as caught:
        parse_request_uri("<sip:user@example.com>")
    assert caught.value.status == 400


def test_unescape() -> None:
    assert unescape("plain") == "plain"
    assert unescape("a%20b%00") == "a b\x00"
    assert unescape("%E2%82%AC") == "€"
    assert unescape("%FF").encode("utf-8", "surrogateescape") == b"\xff"


def test_params_helpers() -> None:
    params = Params((("Tag", "1"), ("lr", None)))
    assert params.get("tag") == "1" and params.get("missing", "d") == "d"
    assert params.has("LR") and not params.has("x")
    assert params.with_param("TAG", "2") == (("Tag", "2"), ("lr", None))
    assert params.with_param("new") == (("Tag", "1"), ("lr", None), ("new", None))
    assert params.without("lr") == (("Tag", "1"),)
    assert params.render() == ";Tag=1;lr"
    assert Params().render() == ""


def test_parsed_uris_are_cached_and_immutable() -> None:
    first = sip("sip:cache@example.com")
    assert parse_uri("sip:cache@example.com") is first
    with pytest.raises(AttributeError):
        first.host = "other"  # type: ignore[misc]
