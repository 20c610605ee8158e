"""Stream framing (TCP/TLS): incremental feeding, keep-alives, fatal vs message errors."""

from __future__ import annotations

import pytest

from pbx_runtime.sip import (
    KeepAlive,
    Limits,
    Request,
    Response,
    SIPProtocolError,
    StreamEvent,
    StreamFramer,
    parse_datagram,
)


def message(n: int, body: bytes = b"", *, length: str | None = None) -> bytes:
    cl = str(len(body)) if length is None else length
    return (
        f"OPTIONS sip:bob@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP h.example.com;branch=z9hG4bK{n}\r\n"
        f"From: <sip:a@example.com>;tag={n}\r\nTo: <sip:bob@example.com>\r\n"
        f"Call-ID: call{n}@h\r\nCSeq: {n} OPTIONS\r\nContent-Length: {cl}\r\n\r\n"
    ).encode() + body


RESPONSE = (
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n"
    b"To: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
)


def test_whole_and_split_feeds_agree() -> None:
    stream = message(1) + message(2, b"hello") + RESPONSE + message(3, b"\r\n\r\nx")
    whole = StreamFramer().feed(stream)
    assert [type(e) for e in whole] == [Request, Request, Response, Request]
    assert whole[1] == parse_datagram(message(2, b"hello"))
    assert isinstance(whole[3], Request) and whole[3].body == b"\r\n\r\nx"
    for cut in range(len(stream) + 1):
        framer = StreamFramer()
        events = framer.feed(stream[:cut]) + framer.feed(stream[cut:])
        assert events == whole, cut
        assert framer.buffered == 0


def test_byte_at_a_time() -> None:
    stream = message(1, b"abc") + b"\r\n\r\n" + message(2)
    framer = StreamFramer()
    events: list[StreamEvent | SIPProtocolError] = []
    for i in range(len(stream)):
        events += framer.feed(stream[i : i + 1])
    assert events == StreamFramer().feed(stream)
    assert [type(e) for e in events] == [Request, KeepAlive, Request]


def test_keepalive_ping_and_stray_crlf() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n") == []  # could still become a ping
    assert framer.feed(b"\r") == []
    assert framer.feed(b"\n") == [KeepAlive()]
    assert framer.feed(b"\r\n" + message(1)) == [parse_datagram(message(1))]  # lone CRLF: skipped
    assert framer.feed(b"\r\n\r\n\r\n\r\n") == [KeepAlive(), KeepAlive()]
    assert framer.buffered == 0


def test_partial_message_waits() -> None:
    data = message(1, b"0123456789")
    framer = StreamFramer()
    assert framer.feed(data[:-1]) == []
    assert framer.buffered == len(data) - 1
    assert framer.next_event() is None
    framer.receive_data(data[-1:])
    event = framer.next_event()
    assert isinstance(event, Request) and event.body == b"0123456789"
    assert framer.next_event() is None


def test_message_level_error_is_not_fatal() -> None:
    bad = message(1).replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE")
    events = StreamFramer().feed(bad + message(2))
    assert isinstance(events[0], SIPProtocolError) and events[0].status == 400
    assert not events[0].fatal
    assert events[1] == parse_datagram(message(2))


def test_next_event_raises_message_errors() -> None:
    framer = StreamFramer()
    framer.receive_data(message(1).replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE") + message(2))
    with pytest.raises(SIPProtocolError) as caught:
        framer.next_event()
    assert not caught.value.fatal
    assert isinstance(framer.next_event(), Request)


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (message(1, length="-5"), 400),
        (
            message(1, b"x", length="1").replace(
                b"Content-Length: 1", b"l: 1\r\nContent-Length: 1"
            ),
            400,
        ),
        (message(1).replace(b"Content-Length: 0\r\n", b""), 400),  # mandatory on streams
        (message(1, length="70000"), 413),
        (message(1, length="99999999999999999999"), 413),
        (b"INVITE sip:a@b SIP/2.0\r\n" + b"X: " + b"y" * 70000, 513),
        (b"OPTIONS sip:a@b SIP/2.0\r\nX: \xff\r\n\r\n", 400),
        (b"OPTIONS sip:a@b SIP/2.0\r\nNo colon\r\nContent-Length: 0\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", None),
        (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 80000, None),
        (RESPONSE.replace(b"Content-Length: 0", b"Content-Length: -1"), None),
        (b"SIP/2.0 200 OK\r\n" + b"X: y\r\n" * 20000, None),
    ],
)
def test_framing_errors_are_fatal(data: bytes, status: int | None) -> None:
    framer = StreamFramer()
    events = framer.feed(data)
    error = events[-1]
    assert isinstance(error, SIPProtocolError) and error.fatal and error.status == status
    assert framer.error is error and framer.buffered == 0
    framer.receive_data(message(9))
    assert framer.buffered == 0
    with pytest.raises(SIPProtocolError) as again:
        framer.next_event()
    assert again.value is error
    assert framer.feed(message(9)) == []


def test_head_larger_than_limit_is_fatal_before_it_ends() -> None:
    framer = StreamFramer(Limits(max_message_bytes=200))
    events = framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\n" + b"X: " + b"a" * 300)
    assert len(events) == 1 and isinstance(events[0], SIPProtocolError)
    assert events[0].status == 513 and events[0].fatal


def test_complete_message_over_limit_is_fatal() -> None:
    framer = StreamFramer(Limits(max_message_bytes=400, max_body_bytes=1000))
    events = framer.feed(message(1, b"x" * 300))
    assert isinstance(events[0], SIPProtocolError) and events[0].status == 513


def test_waits_for_body_without_reparsing() -> None:
    data = message(1, b"z" * 1000)
    framer = StreamFramer()
    head_end = data.index(b"\r\n\r\n") + 4
    assert framer.feed(data[:head_end]) == []
    for i in range(head_end, len(data) - 1, 100):
        assert framer.feed(data[i : min(i + 100, len(data) - 1)]) == []
    assert framer.feed(data[-1:]) == [parse_datagram(data)]
