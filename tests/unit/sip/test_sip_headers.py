"""Structured header values: Via, CSeq, Call-ID, Max-Forwards, name-addr, params, lists."""

from __future__ import annotations

import pytest

from pbx_runtime.sip import (
    STAR,
    NameAddr,
    SIPProtocolError,
    SipUri,
    canonical_name,
    header_key,
    parse_call_id,
    parse_contact_list,
    parse_cseq,
    parse_header_params,
    parse_max_forwards,
    parse_name_addr,
    parse_via,
    parse_via_list,
    split_list,
)
from pbx_runtime.sip.abnf import quote, unquote


def _status(call: object, *args: str) -> int | None:
    assert callable(call)
    with pytest.raises(SIPProtocolError) as caught:
        call(*args)
    return caught.value.status


# -- Via -------------------------------------------------------------------------------------------


def test_via_components() -> None:
    via = parse_via(
        "SIP/2.0/UDP pc33.atlanta.com:5066;branch=z9hG4bK776asdhds;received=192.0.2.1"
        ";rport=5070;ttl=16;maddr=224.2.0.1"
    )
    assert (via.transport, via.host, via.port) == ("UDP", "pc33.atlanta.com", 5066)
    assert via.sent_by == ("pc33.atlanta.com", 5066)
    assert via.branch == "z9hG4bK776asdhds" and via.has_rfc3261_branch
    assert via.received == "192.0.2.1" and via.rport == 5070 and via.wants_rport
    assert str(via) == (
        "SIP/2.0/UDP pc33.atlanta.com:5066;branch=z9hG4bK776asdhds;"
        "received=192.0.2.1;rport=5070;ttl=16;maddr=224.2.0.1"
    )


def test_via_tolerates_lws_everywhere_the_grammar_does() -> None:
    via = parse_via("SIP  /  2.0 / tls     spindle.example.com   ;  branch  =   z9hG4bK9ikj8  ")
    assert (via.transport, via.host, via.branch) == ("TLS", "spindle.example.com", "z9hG4bK9ikj8")


def test_via_rport_without_value_and_ipv6() -> None:
    via = parse_via("SIP/2.0/TCP [2001:db8::9:1]:6050;branch=z9hG4bKx;rport")
    assert via.host == "[2001:db8::9:1]" and via.port == 6050
    assert via.wants_rport and via.rport is None
    assert parse_via("SIP/2.0/UDP h;received=[2001:db8::9:255]").received == "2001:db8::9:255"
    assert parse_via("SIP/2.0/UDP h;received=2001:db8::9:255").received == "2001:db8::9:255"


def test_via_unknown_transport_is_kept() -> None:
    assert parse_via("SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKa").transport == "UNKNOWN"


def test_via_bare_magic_cookie_parses_but_is_not_rfc3261() -> None:
    assert not parse_via("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK").has_rfc3261_branch
    assert not parse_via("SIP/2.0/UDP 192.0.2.1;branch=1234").has_rfc3261_branch
    assert not parse_via("SIP/2.0/UDP 192.0.2.1").has_rfc3261_branch


@pytest.mark.parametrize(
    "value",
    [
        "SIP/2.0/UDP 192.0.2.15;;",
        "SIP/2.0/UDP 192.0.2.15;",
        "SIP/2.0 UDP host",
        "SIP/3.0/UDP host",
        "HTTP/2.0/UDP host",
        "SIP/2.0/UDP",
        "SIP/2.0/UDPhost",
        "SIP/2.0/UDP host extra",
        "SIP/2.0/UDP host:99999",
        "SIP/2.0/UDP bad_host",
        "SIP/2.0/UDP host;received=example.com",
        "SIP/2.0/UDP host;received",
        "SIP/2.0/UDP host;rport=x",
        "SIP/2.0/UDP host;ttl=256",
        "SIP/2.0/UDP host;maddr",
        "SIP/2.0/UDP host;branch",
        "SIP/2.0/UDP host;branch=a b",
        'SIP/2.0/UDP host;x="unterminated',
    ],
)
def test_invalid_via_is_400(value: str) -> None:
    assert _status(parse_via, value) == 400


def test_via_list_splits_and_rejects_empty_elements() -> None:
    vias = parse_via_list('SIP/2.0/UDP a;x="1,2", SIP/2.0/TCP b:5060')
    assert [(v.host, v.params.get("x")) for v in vias] == [("a", '"1,2"'), ("b", None)]
    assert _status(parse_via_list, "SIP/2.0/UDP 192.0.2.15;;,;,,") == 400
    assert _status(parse_via_list, "SIP/2.0/UDP a, , SIP/2.0/UDP b") == 400


# -- CSeq / Call-ID / Max-Forwards ---------------------------------------------------------------


def test_cseq() -> None:
    cseq = parse_cseq("0009 INVITE")
    assert (cseq.number, cseq.method, str(cseq)) == (9, "INVITE", "9 INVITE")
    assert parse_cseq("4294967295 REGISTER").number == 2**32 - 1
    assert parse_cseq("0000000000000001\tACK").number == 1
    assert parse_cseq("1 !interesting-Method~").method == "!interesting-Method~"


@pytest.mark.parametrize(
    "value",
    [
        "4294967296 INVITE",
        "36893488147419103232 REGISTER",
        "-1 INVITE",
        "1",
        "INVITE 1",
        "1 INVITE extra",
        "1 INV ITE",
        "1 IN<VITE",
        "",
        "1\u3000INVITE",
        "\uff11 INVITE",
    ],
)
def test_invalid_cseq_is_400(value: str) -> None:
    assert _status(parse_cseq, value) == 400


def test_call_id() -> None:
    assert parse_call_id("a84b4c76e66710@pc33.atlanta.com") == "a84b4c76e66710@pc33.atlanta.com"
    assert parse_call_id("word%ZK-!.*_+'@word`~)(><:\\/\"][?}{") is not None
    for bad in ("", "a@b@c", "has space", "a@", "@b", "a;b"):
        assert _status(parse_call_id, bad) == 400


def test_max_forwards() -> None:
    assert parse_max_forwards("0068") == 68
    assert parse_max_forwards("0") == 0 and parse_max_forwards("255") == 255
    for bad in ("256", "300", "-1", "", "1.0", "ten"):
        assert _status(parse_max_forwards, bad) == 400


# -- parameters, quoted strings, lists -----------------------------------------------------------


def test_header_params() -> None:
    params = parse_header_params(' tag = 1918181833n ; lr ; q=0.5;x="a;b\\"c";received=[::1]')
    assert params == (
        ("tag", "1918181833n"),
        ("lr", None),
        ("q", "0.5"),
        ("x", '"a;b\\"c"'),
        ("received", "[::1]"),
    )
    for bad in ("", ";", "a;;b", "a=", "a b=c", "a=b c", 'a="x', "a=<b>", "=b"):
        assert _status(parse_header_params, bad) == 400


def test_quote_and_unquote() -> None:
    assert quote('He said "hi" \\o/') == '"He said \\"hi\\" \\\\o/"'
    assert unquote('He said \\"hi\\" \\\\o/') == 'He said "hi" \\o/'
    with pytest.raises(ValueError):
        quote("line\r\nbreak")


def test_split_list_respects_quotes_and_brackets() -> None:
    value = '"Doe, John" <sip:a,b@x;p=1>, <sip:c@y>;q=0.1 , sip:d@z'
    assert split_list(value) == ['"Doe, John" <sip:a,b@x;p=1>', "<sip:c@y>;q=0.1", "sip:d@z"]
    assert split_list("a,,b, ") == ["a", "b"]
    assert split_list("a,,b", strict=False) == ["a", "b"]
    with pytest.raises(SIPProtocolError):
        split_list("a,,b", strict=True)
    with pytest.raises(SIPProtocolError):
        split_list('"unbalanced, x', strict=True)
    with pytest.raises(SIPProtocolError):
        split_list("<sip:a@b, c", strict=True)


def test_header_names() -> None:
    compact = {
        "i": "Call-ID",
        "m": "Contact",
        "e": "Content-Encoding",
        "l": "Content-Length",
        "f": "From",
        "t": "To",
        "v": "Via",
        "s": "Subject",
        "k": "Supported",
        "c": "Content-Type",
        "o": "Event",
        "u": "Allow-Events",
        "r": "Refer-To",
        "x": "Session-Expires",
        "y": "Identity",
        "b": "Referred-By",
        "a": "Accept-Contact",
    }
    for short, long in compact.items():
        assert header_key(short) == header_key(short.upper()) == long.lower()
        assert canonical_name(short) == long
    assert canonical_name("CALL-id") == "Call-ID" and canonical_name("cseq") == "CSeq"
    assert canonical_name("X-Unknown") == "X-Unknown"


# -- name-addr / addr-spec -----------------------------------------------------------------------


def test_name_addr_forms() -> None:
    quoted = parse_name_addr('"J Rosenberg \\\\\\""   <sip:jdrosen@example.com> ; tag = 98asjd8')
    assert quoted.display_name == 'J Rosenberg \\"' and quoted.tag == "98asjd8"
    tokens = parse_name_addr("Bob Smith <sip:bob@biloxi.com>")
    assert tokens.display_name == "Bob Smith"
    assert parse_name_addr("A. Bell <sip:a.g.bell@example.com>").display_name == "A. Bell"
    glued = parse_name_addr("caller<sip:caller@example.com>;tag=323")
    assert glued.display_name == "caller" and glued.tag == "323"
    bare = parse_name_addr("sip:+19725552222@gw1.example.net;unknownparam")
    assert bare.display_name is None and bare.params.has("unknownparam")
    assert isinstance(bare.uri, SipUri) and bare.uri.params == ()
    bracketed = parse_name_addr("<sip:+19725552222@gw1.example.net;unknownparam>")
    assert isinstance(bracketed.uri, SipUri) and bracketed.uri.params.has("unknownparam")
    assert str(bracketed) == "<sip:+19725552222@gw1.example.net;unknownparam>"
    utf8 = parse_name_addr('"Zoë ☎" <sip:zoe@example.com>')
    assert utf8.display_name == "Zoë ☎"
    assert str(utf8.with_tag("abc")) == '"Zoë ☎" <sip:zoe@example.com>;tag=abc'
    assert parse_name_addr('<sip:a@b>;x="q;v"').param("x") == "q;v"


@pytest.mark.parametrize(
    "value",
    [
        '"Mr. J. User <sip:j.user@example.com>',  # quotbal
        '"Watson, Thomas" < sip:t.watson@example.org >',  # badaspec
        "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",  # baddn
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E",  # regbadct
        "<sip:a@b",
        "<sip:a@b> junk",
        "<sip:a@b>;",
        '"x" sip:a@b',
        "",
        "<>",
        "sip:a@b c",
        "sip:a@b,sip:c@d",
        'Na"me <sip:a@b>',
    ],
)
def test_invalid_name_addr_is_400(value: str) -> None:
    assert _status(parse_name_addr, value) == 400


def test_contact_lists() -> None:
    assert parse_contact_list(" * ") == [STAR]
    contacts = parse_contact_list('"Joe, Jr" <sip:joe@a>;expires=60, <sip:joe@b>;q=0.5')
    assert [c.params.get("expires") if isinstance(c, NameAddr) else c for c in contacts] == [
        "60",
        None,
    ]
    assert _status(parse_contact_list, "*, <sip:a@b>") == 400
    assert _status(parse_contact_list, '"Joe" <sip:joe@example.org>;;;;') == 400
