"""Datagram parsing: start lines, folding, framing, validation, limits, drop rules."""

from __future__ import annotations

import pytest

from pbx_runtime import COMPILED
from pbx_runtime.sip import (
    Limits,
    Request,
    Response,
    SIPProtocolError,
    SipUri,
    TelUri,
    parse_datagram,
)

CRLF = "\r\n"


def req(
    *extra: str,
    start: str = "OPTIONS sip:bob@example.com SIP/2.0",
    cseq: str = "1 OPTIONS",
    body: str = "",
    length: bool = True,
) -> bytes:
    lines = [
        start,
        "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKabc",
        "From: <sip:alice@example.com>;tag=1",
        "To: <sip:bob@example.com>",
        "Call-ID: abc@host",
        f"CSeq: {cseq}",
        "Max-Forwards: 70",
        *extra,
    ]
    if length:
        lines.append(f"Content-Length: {len(body.encode())}")
    return (CRLF.join(lines) + CRLF + CRLF + body).encode()


def resp(*extra: str, start: str = "SIP/2.0 200 OK") -> bytes:
    lines = [
        start,
        "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKabc",
        "From: <sip:alice@example.com>;tag=1",
        "To: <sip:bob@example.com>;tag=2",
        "Call-ID: abc@host",
        "CSeq: 1 OPTIONS",
        *extra,
        "Content-Length: 0",
    ]
    return (CRLF.join(lines) + CRLF + CRLF).encode()


def status_of(data: bytes, limits: Limits | None = None) -> int | None:
    with pytest.raises(SIPProtocolError) as caught:
        parse_datagram(data) if limits is None else parse_datagram(data, limits)
    assert caught.value.status is None or 400 <= caught.value.status <= 599
    assert not caught.value.fatal
    return caught.value.status


def test_minimal_request() -> None:
    msg = parse_datagram(req())
    assert isinstance(msg, Request)
    assert msg.method == "OPTIONS"
    assert isinstance(msg.uri, SipUri) and msg.uri.user == "bob"
    assert msg.call_id == "abc@host" and msg.cseq.number == 1
    assert msg.headers[0] == ("Via", "SIP/2.0/UDP host.example.com;branch=z9hG4bKabc")
    assert msg.body == b"" and msg.content_length == 0
    assert msg.start_line == "OPTIONS sip:bob@example.com SIP/2.0"


def test_tel_request_uri_and_lowercase_version() -> None:
    msg = parse_datagram(req(start="INVITE tel:+15551234 sip/2.0", cseq="1 INVITE"))
    assert isinstance(msg, Request) and isinstance(msg.uri, TelUri)


def test_minimal_response() -> None:
    msg = parse_datagram(resp())
    assert isinstance(msg, Response)
    assert (msg.status, msg.reason) == (200, "OK")
    assert msg.to.tag == "2"
    assert parse_datagram(resp(start="SIP/2.0 180 ")).reason == ""  # type: ignore[union-attr]
    multi = parse_datagram(resp(start="SIP/2.0 486 Busy  Here "))
    assert multi.reason == "Busy  Here "  # type: ignore[union-attr]


def test_leading_crlf_is_skipped() -> None:
    assert isinstance(parse_datagram(b"\r\n\r\n" + req()), Request)


def test_header_folding_and_whitespace() -> None:
    data = req(
        "Subject: first line\r\n second line\r\n\t third",
        "X-Empty:",
        "X-Spaced   :   value   ",
        "X-Fold:\r\n  only-continuation",
    )
    msg = parse_datagram(data)
    assert msg.get("subject") == "first line second line third"
    assert msg.get("x-empty") == ""
    assert msg.get("X-Spaced") == "value"
    assert msg.get("x-fold") == "only-continuation"
    assert ("X-Spaced", "value") in msg.headers


def test_compact_forms_and_case_insensitive_lookup() -> None:
    data = (
        b"INVITE sip:bob@example.com SIP/2.0\r\n"
        b"v: SIP/2.0/UDP a;branch=z9hG4bK1\r\n"
        b"V: SIP/2.0/TCP b;branch=z9hG4bK2\r\n"
        b"f: <sip:alice@example.com>;tag=1\r\n"
        b"t: sip:bob@example.com\r\n"
        b"i: cid\r\n"
        b"cseq: 7 INVITE\r\n"
        b"m: <sip:alice@10.0.0.1>\r\n"
        b"k: replaces, 100rel\r\n"
        b"c: application/sdp\r\n"
        b"l: 4\r\n\r\nv=0\r\n"
    )
    msg = parse_datagram(data)
    assert [v.host for v in msg.via] == ["a", "b"]
    assert msg.get("Call-ID") == msg.get("i") == msg.get("CALL-ID") == "cid"
    assert msg.get_all("Supported") == ["replaces", "100rel"]
    assert msg.get("Content-Type") == "application/sdp"
    assert msg.body == b"v=0\r" and msg.content_length == 4


def test_multi_value_headers_split_outside_quotes_and_brackets() -> None:
    msg = parse_datagram(
        req(
            'Contact: "Doe, John" <sip:john@a;x=1>;q=0.5, <sip:john@b>',
            "Contact: sip:john@c",
            "Route: <sip:p1.example.com;lr>,<sip:p2.example.com;lr>",
            "Allow: INVITE, ACK ,BYE",
            'Authorization: Digest username="a", realm="b"',
        )
    )
    assert len(msg.contact) == 3
    assert msg.get_all("Contact")[0] == '"Doe, John" <sip:john@a;x=1>;q=0.5'
    assert [str(r.uri) for r in msg.route] == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    assert msg.tokens("Allow") == ["INVITE", "ACK", "BYE"]
    assert msg.get_all("Authorization") == ['Digest username="a", realm="b"']


def test_contact_star() -> None:
    msg = parse_datagram(
        req("Contact: *", "Expires: 0", start="REGISTER sip:example.com SIP/2.0", cseq="2 REGISTER")
    )
    assert msg.contact == ("*",) and msg.expires == 0
    assert status_of(req("Contact: *", "Contact: <sip:a@b>")) == 400


# -- framing (RFC 3261 §18.3) ---------------------------------------------------------------------


def test_body_is_exactly_content_length_extra_bytes_ignored() -> None:
    data = req(body="hello") + b"trailing garbage that is ignored"
    assert parse_datagram(data).body == b"hello"


def test_short_body_is_400() -> None:
    data = req(body="hello").replace(b"Content-Length: 5", b"Content-Length: 6")
    assert status_of(data) == 400


def test_no_content_length_means_rest_of_datagram() -> None:
    assert parse_datagram(req(body="whole body", length=False)).body == b"whole body"


@pytest.mark.parametrize(
    "extra",
    [
        ("Content-Length: -1",),
        ("Content-Length: 1", "l: 1"),
        ("Content-Length: x",),
        ("Content-Length: 5", "Content-Length: 6"),
        ("Content-Length: 1 2",),
    ],
)
def test_bad_content_length_is_400(extra: tuple[str, ...]) -> None:
    assert status_of(req(*extra, length=False)) == 400


def test_huge_content_length_is_413() -> None:
    assert status_of(req("Content-Length: 99999999999999999999", length=False)) == 413
    assert status_of(req("Content-Length: 70000", length=False)) == 413


def test_missing_final_empty_line_is_400() -> None:
    assert status_of(req()[:-2]) == 400


# -- start lines ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "status"),
    [
        ("OPTIONS sip:bob@example.com SIP/7.0", 505),
        ("OPTIONS sip:bob@example.com SIP/2.1", 505),
        ("OPTIONS sip:bob@example.com SIP/20", 400),
        ("OPTIONS  sip:bob@example.com SIP/2.0", 400),
        ("OPTIONS sip:bob@example.com SIP/2.0 ", 400),
        ("OPTIONS sip:bob@example.com; lr SIP/2.0", 400),
        ("OPTIONS <sip:bob@example.com> SIP/2.0", 400),
        ("OPTIONS nobodyKnowsThisScheme:opaque SIP/2.0", 416),
        ("OPTIONS soap.beep://192.0.2.103:3002 SIP/2.0", 416),
        ("OPTIONS sip:bob@example.com?Route=x SIP/2.0", 400),
        ("OPT<IONS sip:bob@example.com SIP/2.0", 400),
        ("OPTIONS sip:2001:db8::10 SIP/2.0", 400),
    ],
)
def test_request_line_errors(start: str, status: int) -> None:
    assert status_of(req(start=start)) == status


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n\r\n",
        b"\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
        b"INVITE sip:alan@jasomi.com\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\nVia: x\n\n",  # LF-only line ends: not recognisable SIP
        b"hello",
        b"\x00\x01\x02",
    ],
)
def test_non_sip_input_is_dropped(data: bytes) -> None:
    assert status_of(data) is None


@pytest.mark.parametrize(
    "data",
    [
        resp(start="SIP/2.0 4294967301 better not break the receiver"),
        resp(start="SIP/2.0 099 Low"),
        resp(start="SIP/2.0 700 High"),
        resp(start="SIP/2.0 20 OK"),
        resp(start="SIP/2.0 200"),
        resp(start="SIP/3.0 200 OK"),
        resp(start="SIP/2.0 200 O\x01K"),
        resp("Max-Forwards: 1000"),
        resp("CSeq: 2 OPTIONS"),
        resp().replace(b"Call-ID: abc@host\r\n", b""),
        resp().replace(b"Content-Length: 0", b"Content-Length: 10"),
        resp("X-Ctl: a\x07b"),
        b"SIP/2.0 200 OK\r\n" + b"X: y\r\n" * 200 + b"\r\n",
    ],
)
def test_malformed_responses_are_dropped_never_answered(data: bytes) -> None:
    assert status_of(data) is None


# -- header validation ----------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["Via", "From", "To", "Call-ID", "CSeq"])
def test_missing_required_header_is_400(missing: str) -> None:
    data = b"\r\n".join(
        line for line in req().split(b"\r\n") if not line.startswith(missing.encode() + b":")
    )
    assert status_of(data) == 400


def test_max_forwards_may_be_absent() -> None:
    data = req().replace(b"Max-Forwards: 70\r\n", b"")
    assert parse_datagram(data).max_forwards is None


@pytest.mark.parametrize(
    "duplicate",
    [
        "Call-ID: other@host",
        "To: <sip:x@y>",
        "From: <sip:x@y>;tag=9",
        "CSeq: 2 OPTIONS",
        "Max-Forwards: 5",
        "Content-Type: a/b\r\nc: a/b",
        "Expires: 5\r\nExpires: 6",
    ],
)
def test_duplicate_single_value_header_is_400(duplicate: str) -> None:
    assert status_of(req(duplicate)) == 400


def test_cseq_must_match_method() -> None:
    assert status_of(req(cseq="1 INVITE")) == 400
    assert status_of(req(start="NEWMETHOD sip:a@b SIP/2.0", cseq="1 INVITE")) == 400
    assert parse_datagram(req(start="NEWMETHOD sip:a@b SIP/2.0", cseq="1 NEWMETHOD")) is not None
    assert status_of(req(cseq="1 options")) == 400  # methods are case-sensitive


@pytest.mark.parametrize(
    "line",
    [
        "Bad Header: x",
        "NoColonHere",
        ": empty name",
        "X-Ctl: a\x00b",
        "X-Ctl: a\x1bb",
        "X-Ctl: a\x7fb",
        "Date: Fri, 01 Jan 2010 16:00:00 EST",
        "Date: yesterday",
        "Contact: <sip:a@b>;;",
        "Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E",
        "Route: <sip:a@b",
    ],
)
def test_malformed_header_is_400(line: str) -> None:
    data = req(line)
    if line.startswith("Route"):
        msg = parse_datagram(data)  # Route is parsed lazily, by who needs it
        with pytest.raises(SIPProtocolError):
            _ = msg.route
        return
    assert status_of(data) == 400


def test_escaped_control_character_inside_quotes_is_allowed() -> None:
    msg = parse_datagram(
        req('X-Q: "a\\\x07b"', 'To: "NUL:\\\x00" <sip:bob@example.com>').replace(
            b"To: <sip:bob@example.com>\r\n", b""
        )
    )
    assert msg.to.display_name == "NUL:\x00"
    assert status_of(req('X-Q: "a\x07b"')) == 400  # raw, not escaped


def test_valid_date_is_accepted() -> None:
    assert parse_datagram(req("Date: Sat, 13 Nov 2010 23:29:00 GMT")) is not None


@pytest.mark.parametrize(
    "raw",
    [
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\rX: y\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\nX: y\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\n continuation first\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nX: \xff\xfe\r\n\r\n",
    ],
)
def test_structural_errors_are_400(raw: bytes) -> None:
    assert status_of(raw) == 400


# -- limits -------------------------------------------------------------------------------------


def test_limits_defaults_and_validation() -> None:
    limits = Limits()
    assert (
        limits.max_message_bytes,
        limits.max_headers,
        limits.max_header_line_bytes,
        limits.max_body_bytes,
    ) == (65535, 128, 8192, 65535)
    with pytest.raises(ValueError):
        Limits(max_headers=0)
    if not COMPILED:  # compiled, a bool reaches an int field as 0/1 (config.py refuses bools)
        with pytest.raises(ValueError):
            Limits(max_body_bytes=True)


def test_message_too_large_is_513() -> None:
    assert status_of(req(body="x" * 70000)) == 513
    small = Limits(max_message_bytes=300)
    assert status_of(req(body="x" * 200), small) == 513


def test_body_too_large_is_413() -> None:
    assert status_of(req(body="x" * 101), Limits(max_body_bytes=100)) == 413
    assert status_of(req(body="x" * 101, length=False), Limits(max_body_bytes=100)) == 413


def test_too_many_headers_is_513() -> None:
    extra = [f"X-H{i}: v" for i in range(130)]
    assert status_of(req(*extra)) == 513
    assert parse_datagram(req(*extra[:100])) is not None


def test_header_line_too_long_is_513() -> None:
    assert status_of(req("X-Long: " + "a" * 9000)) == 513
    folded = "X-Long: " + "\r\n ".join(["a" * 1000] * 10)
    assert status_of(req(folded)) == 513
    assert status_of(req(start="OPTIONS sip:" + "a" * 9000 + "@b SIP/2.0")) == 513


def test_limits_on_responses_drop() -> None:
    assert status_of(resp("X-Long: " + "a" * 9000)) is None


def test_messages_are_frozen() -> None:
    msg = parse_datagram(req())
    if COMPILED:  # Final attributes: mypy refuses the assignment in both builds
        with pytest.raises(AttributeError):
            msg.body = b"x"  # type: ignore[misc]
    assert isinstance(msg.headers, tuple)
    assert hash(msg) == hash(parse_datagram(req()))
