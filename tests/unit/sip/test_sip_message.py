"""Message model: header helpers, parsed accessors, serialization, responses."""

from __future__ import annotations

import pytest

from pbx_runtime.sip import (
    NameAddr,
    Request,
    Response,
    SIPProtocolError,
    SipUri,
    build_response,
    parse_datagram,
    parse_uri,
    serialize,
    stateless_error_response,
)

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TLS client.atlanta.example.com:5061;branch=z9hG4bK74bf9;received=192.0.2.101\r\n"
    b"v: SIP/2.0/UDP proxy.example.com;branch=z9hG4bK2\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Alice" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n'
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Record-Route: <sip:p1.example.com;lr>\r\n"
    b"Contact: <sip:alice@client.atlanta.example.com;transport=tls>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"l: 4\r\n"
    b"\r\nv=0\r\n"
)


def invite() -> Request:
    msg = parse_datagram(INVITE)
    assert isinstance(msg, Request)
    return msg


def test_get_and_get_all() -> None:
    msg = invite()
    assert msg.get("Max-Forwards") == "70"
    assert msg.get("missing") is None and msg.get("missing", "x") == "x"
    assert msg.get("V") == msg.get("via")
    assert msg.get_all("Via") == [
        "SIP/2.0/TLS client.atlanta.example.com:5061;branch=z9hG4bK74bf9;received=192.0.2.101",
        "SIP/2.0/UDP proxy.example.com;branch=z9hG4bK2",
    ]
    assert msg.get_all("Content-Length") == ["4"]
    assert msg.has("record-route") and not msg.has("route")


def test_parsed_accessors() -> None:
    msg = invite()
    assert [v.transport for v in msg.via] == ["TLS", "UDP"] and msg.top_via.port == 5061
    assert msg.top_via.received == "192.0.2.101"
    assert (msg.cseq.number, msg.cseq.method) == (1, "INVITE")
    assert msg.call_id == "3848276298220188511@atlanta.example.com"
    assert msg.from_.display_name == "Alice" and msg.from_.tag == "9fxced76sl"
    assert msg.to.display_name == "Bob" and msg.to.tag is None
    (contact,) = msg.contact
    assert isinstance(contact, NameAddr) and isinstance(contact.uri, SipUri)
    assert contact.uri.transport == "tls"
    assert msg.max_forwards == 70 and msg.content_length == 4
    assert [str(r.uri) for r in msg.record_route] == ["sip:p1.example.com;lr"]
    assert msg.route == () and msg.expires is None


def test_hand_built_messages_parse_lazily() -> None:
    uri = parse_uri("sip:bob@example.com")
    msg = Request(
        method="OPTIONS",
        uri=uri,
        headers=(
            ("Via", "SIP/2.0/UDP h;branch=z9hG4bKx"),
            ("CSeq", "3 OPTIONS"),
            ("Call-ID", "c"),
            ("From", "<sip:a@b>;tag=1"),
            ("To", "<sip:bob@example.com>"),
            ("Expires", "bogus"),
        ),
    )
    assert msg.cseq.number == 3 and msg.top_via.branch == "z9hG4bKx"
    assert msg.max_forwards is None and msg.contact == ()
    with pytest.raises(SIPProtocolError):
        _ = msg.expires
    empty = Request(method="OPTIONS", uri=uri)
    for accessor in ("call_id", "cseq", "from_", "to", "top_via"):
        with pytest.raises(SIPProtocolError):
            getattr(empty, accessor)


def test_header_editing_returns_new_messages() -> None:
    msg = invite()
    added = msg.with_header("X-Tenant", "acme")
    assert added.get("x-tenant") == "acme" and msg.get("x-tenant") is None
    first = msg.with_header("Via", "SIP/2.0/UDP me.example;branch=z9hG4bKme", first=True)
    assert first.top_via.host == "me.example" and len(first.via) == 3
    assert msg.top_via.host == "client.atlanta.example.com"
    assert not msg.without_header("v").has("Via")
    replaced = msg.replace_header("Max-Forwards", "69")
    assert replaced.max_forwards == 69
    assert [h[0] for h in replaced.headers] == [h[0] for h in msg.headers]
    assert msg.replace_header("X-New", "1").headers[-1] == ("X-New", "1")


def test_serialize_writes_correct_content_length() -> None:
    msg = invite()
    wire = serialize(msg)
    assert wire.startswith(b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n")
    assert b"\r\nl: 4\r\n" in wire and wire.endswith(b"\r\n\r\nv=0\r")
    longer = Request(method=msg.method, uri=msg.uri, headers=msg.headers, body=b"v=0\r\no=x\r\n")
    assert b"\r\nl: 10\r\n" in serialize(longer)
    bare = Request(method="OPTIONS", uri=parse_uri("sip:a@b"), headers=(("X", "y"),))
    assert serialize(bare) == b"OPTIONS sip:a@b SIP/2.0\r\nX: y\r\nContent-Length: 0\r\n\r\n"
    twice = bare.with_header("Content-Length", "99").with_header("Content-Length", "1")
    assert twice.to_bytes().count(b"Content-Length") == 1


@pytest.mark.parametrize(
    "headers",
    [
        (("X-Evil", "a\r\nInjected: 1"),),
        (("X-Evil", "a\nb"),),
        (("Bad Name", "x"),),
        (("X:Y", "x"),),
    ],
)
def test_serialize_refuses_header_injection(headers: tuple[tuple[str, str], ...]) -> None:
    with pytest.raises(ValueError):
        serialize(Request(method="OPTIONS", uri=parse_uri("sip:a@b"), headers=headers))


def test_build_response_copies_and_tags() -> None:
    msg = invite()
    ringing = build_response(msg, 180, to_tag="xyz")
    assert isinstance(ringing, Response)
    assert (ringing.status, ringing.reason) == (180, "Ringing")
    assert ringing.get_all("Via") == msg.get_all("Via")
    assert ringing.from_ == msg.from_ and ringing.call_id == msg.call_id
    assert ringing.cseq == msg.cseq
    assert ringing.to.tag == "xyz" and ringing.to.uri == msg.to.uri
    assert [str(r.uri) for r in ringing.record_route] == ["sip:p1.example.com;lr"]
    assert ringing.contact == ()
    wire = serialize(ringing)
    assert wire.startswith(b"SIP/2.0 180 Ringing\r\nVia: ")
    assert wire.endswith(b"Content-Length: 0\r\n\r\n")
    assert parse_datagram(wire) == ringing.with_header("Content-Length", "0")


def test_build_response_tag_rules() -> None:
    msg = invite()
    trying = build_response(msg, 100)
    assert trying.to.tag is None and not trying.has("Record-Route")
    random_tag = build_response(msg, 486).to.tag
    assert random_tag is not None and len(random_tag) == 16
    assert build_response(msg, 486).to.tag != random_tag
    assert not build_response(msg, 486).has("Record-Route")
    in_dialog = msg.replace_header("To", "Bob <sip:bob@biloxi.example.com>;tag=existing")
    assert build_response(in_dialog, 200, to_tag="new").to.tag == "existing"


def test_build_response_options() -> None:
    msg = invite()
    ok = build_response(
        msg,
        200,
        "Fine",
        to_tag="t",
        headers=[("Contact", "<sip:b@c>")],
        body=b"v=0\r\n",
        copy_record_route=False,
    )
    assert ok.reason == "Fine" and not ok.has("Record-Route")
    assert ok.get("Contact") == "<sip:b@c>" and ok.body == b"v=0\r\n"
    assert b"Content-Length: 5\r\n" in serialize(ok)
    assert build_response(msg, 299).reason == "Unknown"
    for bad in (99, 700):
        with pytest.raises(ValueError):
            build_response(msg, bad)


def test_stateless_error_response() -> None:
    data = (
        b"INVITE sip:user@example.com SIP/2.0\r\n"
        b"CSeq: 193942 INVITE\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf\r\n"
        b"To: <sip:user@example.com>\r\n"
        b"X-Ignored: yes\r\n"
        b"Content-Type: application/sdp\r\n"
        b"l: 152\r\n\r\n"
    )
    wire = stateless_error_response(data, SIPProtocolError(400, "missing From"), to_tag="abc")
    assert wire is not None
    reply = parse_datagram(
        wire.replace(
            b"\r\nContent-Length",
            b"\r\nFrom: <sip:x@y>;tag=1\r\nCall-ID: filled@in\r\nContent-Length",
        )
    )
    assert isinstance(reply, Response) and reply.status == 400
    assert reply.to.tag == "abc" and reply.top_via.branch == "z9hG4bKkdj.insuf"
    assert reply.headers[0][0] == "Via"
    assert b"X-Ignored" not in wire and b"152" not in wire
    assert stateless_error_response(data, SIPProtocolError(None, "drop")) is None
    no_via = data.replace(b"Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf\r\n", b"")
    assert stateless_error_response(no_via, SIPProtocolError(400, "x")) is None
    version = stateless_error_response(
        data.replace(b"SIP/2.0\r\n", b"SIP/7.0\r\n", 1), SIPProtocolError(505, "version")
    )
    assert version is not None and version.startswith(b"SIP/2.0 505 Version Not Supported\r\n")


def test_stateless_error_response_keeps_existing_to_tag_and_skips_garbage() -> None:
    data = (
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
        b"To: <sip:a@b>;tag=present\r\nFrom: \xff\xfe\r\nCall-ID: x\x01y\r\n"
        b"Via:\r\n continued.example;branch=z9hG4bK2\r\n\r\n"
    )
    wire = stateless_error_response(data, SIPProtocolError(400, "x"))
    assert wire is not None
    text = wire.decode()
    assert "tag=present" in text and text.count(";tag=") == 1
    assert "From:" not in text and "Call-ID" not in text
    assert "Via: continued.example;branch=z9hG4bK2" in text


def test_error_type() -> None:
    error = SIPProtocolError(400, "bad")
    assert (error.status, error.reason, error.fatal) == (400, "bad", False)
    assert str(error) == "400: bad"
    dropped = error.dropped()
    assert dropped.status is None and str(dropped) == "drop: bad"
    assert dropped.dropped() is dropped
    fatal = error.as_fatal()
    assert fatal.fatal and fatal.as_fatal() is fatal and str(fatal) == "400: bad (fatal)"
    assert repr(fatal) == "SIPProtocolError(400, 'bad', fatal=True)"
