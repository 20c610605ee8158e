"""Hypothesis properties of the SIP message layer.

* generated valid messages: ``parse(serialize(m)) == m`` and ``serialize(parse(x)) == x``;
* any bytes (random, and RFC vectors mutated by bit flips, truncation, line duplication...):
  ``parse_datagram`` returns a message or raises :class:`SIPProtocolError`, nothing else, and a
  parsed message re-serializes to something that parses to the same message;
* the stream framer yields the same events whether fed whole, byte-at-a-time or in random chunks.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pbx_runtime.sip import (
    KeepAlive,
    NameAddr,
    Params,
    Request,
    Response,
    SIPProtocolError,
    SipUri,
    StreamEvent,
    StreamFramer,
    TelUri,
    Via,
    parse_datagram,
    serialize,
)
from pbx_runtime.sip.abnf import quote

VECTORS = Path(__file__).resolve().parents[2] / "vectors"
SEEDS = sorted(
    p.read_bytes()
    for d in ("rfc4475", "rfc5118")
    for p in (VECTORS / d).iterdir()
    if p.suffix in (".dat", ".sip")
)

SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- generators of valid pieces ------------------------------------------------------------------

TOKEN = st.from_regex(r"[A-Za-z0-9\-.!%*_+`'~]{1,12}", fullmatch=True)
LABEL = st.from_regex(r"[a-z]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)
HOSTNAME = st.lists(LABEL, min_size=1, max_size=4).map(".".join)
IPV4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
IPV6 = st.ip_addresses(v=6).map(lambda a: f"[{a}]")
HOST = st.one_of(HOSTNAME, IPV4, IPV6)
PORT = st.none() | st.integers(0, 65535)
USER = st.from_regex(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-F]{2}){1,12}", fullmatch=True)
PASSWORD = st.from_regex(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,]|%[0-9A-F]{2}){0,8}", fullmatch=True)
PARAMCHARS = st.from_regex(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$]|%[0-9A-F]{2}){1,10}", fullmatch=True)
HNVCHARS = st.from_regex(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|%[0-9A-F]{2}){1,10}", fullmatch=True)
URI_PARAMS = st.lists(st.tuples(PARAMCHARS, st.none() | PARAMCHARS), max_size=3).map(Params)
TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=24)
CLEAN_TEXT = TEXT.map(lambda t: t.strip(" \t"))


@st.composite
def sip_uris(draw: st.DrawFn, *, with_headers: bool = False) -> SipUri:
    user = draw(st.none() | USER)
    password = draw(st.none() | PASSWORD) if user is not None else None
    headers = draw(st.lists(st.tuples(HNVCHARS, HNVCHARS), max_size=2)) if with_headers else []
    return SipUri(
        scheme=draw(st.sampled_from(["sip", "sips"])),
        user=user,
        password=password,
        host=draw(HOST),
        port=draw(PORT),
        params=draw(URI_PARAMS),
        headers=tuple(headers),
    )


TEL_URIS = st.builds(
    lambda number, params: TelUri(number=number, params=Params(params)),
    st.from_regex(r"\+[0-9][0-9\-.()]{0,12}", fullmatch=True),
    st.lists(st.tuples(st.from_regex(r"[a-z0-9\-]{1,8}", fullmatch=True), PARAMCHARS), max_size=2),
)
GEN_VALUE = st.one_of(TOKEN, IPV4, IPV6, CLEAN_TEXT.map(quote))
HEADER_PARAMS = st.lists(st.tuples(TOKEN, st.none() | GEN_VALUE), max_size=3).map(Params)


@st.composite
def name_addrs(draw: st.DrawFn) -> NameAddr:
    uri = draw(sip_uris(with_headers=True) | TEL_URIS)
    return NameAddr(uri=uri, display_name=draw(st.none() | TEXT), params=draw(HEADER_PARAMS))


@st.composite
def vias(draw: st.DrawFn) -> Via:
    params: list[tuple[str, str | None]] = [("branch", "z9hG4bK" + draw(TOKEN))]
    if draw(st.booleans()):
        params.append(("rport", draw(st.none() | st.integers(0, 65535).map(str))))
    if draw(st.booleans()):
        params.append(("received", draw(IPV4 | IPV6)))
    params += draw(st.lists(st.tuples(TOKEN.map(lambda t: "x" + t), st.none() | TOKEN), max_size=2))
    transport = draw(st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "WS", "WSS"]) | TOKEN)
    return Via(transport=transport.upper(), host=draw(HOST), port=draw(PORT), params=Params(params))


def spelling(*names: str) -> st.SearchStrategy[str]:
    return st.sampled_from(names)


@st.composite
def header_lists(draw: st.DrawFn, method: str, body: bytes) -> tuple[tuple[str, str], ...]:
    headers: list[tuple[str, str]] = []
    for via in draw(st.lists(vias(), min_size=1, max_size=3)):
        headers.append((draw(spelling("Via", "v", "VIA")), str(via)))
    headers.append((draw(spelling("From", "f", "FROM")), str(draw(name_addrs()))))
    headers.append((draw(spelling("To", "t", "to")), str(draw(name_addrs()))))
    call_id = draw(
        st.from_regex(
            r"[A-Za-z0-9\-.!%*_+`'~()<>:/\[\]?{}]{1,16}"
            r"(@[A-Za-z0-9.\-]{1,10})?",
            fullmatch=True,
        )
    )
    headers.append((draw(spelling("Call-ID", "i", "call-id")), call_id))
    headers.append(("CSeq", f"{draw(st.integers(0, 2**32 - 1))} {method}"))
    if draw(st.booleans()):
        headers.append(("Max-Forwards", str(draw(st.integers(0, 255)))))
    contacts = draw(st.lists(name_addrs(), max_size=2))
    if contacts:
        headers.append((draw(spelling("Contact", "m")), ", ".join(map(str, contacts))))
    for name, value in draw(st.lists(st.tuples(TOKEN, CLEAN_TEXT), max_size=4)):
        headers.append(("X-" + name, value))
    headers = draw(st.permutations(headers))
    position = draw(st.integers(0, len(headers)))
    headers.insert(position, (draw(spelling("Content-Length", "l")), str(len(body))))
    return tuple(headers)


METHODS = st.sampled_from(["INVITE", "REGISTER", "OPTIONS", "BYE", "ACK", "MESSAGE"]) | TOKEN
BODIES = st.binary(max_size=200)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    method = draw(METHODS)
    body = draw(BODIES)
    uri = draw(sip_uris() | TEL_URIS)
    return Request(method=method, uri=uri, headers=draw(header_lists(method, body)), body=body)


@st.composite
def responses(draw: st.DrawFn) -> Response:
    body = draw(BODIES)
    reason = draw(TEXT)
    return Response(
        status=draw(st.integers(100, 699)),
        reason=reason,
        headers=draw(header_lists(draw(METHODS), body)),
        body=body,
    )


MESSAGES = requests() | responses()

# -- mutations -----------------------------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(
        draw(st.sampled_from(SEEDS)) if draw(st.booleans()) else serialize(draw(MESSAGES))
    )
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(
            st.sampled_from(
                ["flip", "truncate", "dup_line", "drop_line", "insert", "delete", "splice"]
            )
        )
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[at:]
        elif kind in ("dup_line", "drop_line"):
            lines = bytes(data).split(b"\r\n")
            i = draw(st.integers(0, len(lines) - 1))
            if kind == "dup_line":
                lines.insert(i, lines[i])
            else:
                del lines[i]
            data = bytearray(b"\r\n".join(lines))
        elif kind == "insert":
            piece = draw(
                st.sampled_from(
                    [
                        b",",
                        b";",
                        b'"',
                        b"<",
                        b">",
                        b"%",
                        b"[",
                        b"]",
                        b":",
                        b"\r\n",
                        b" ",
                        b"\t",
                        b"\x00",
                        b"\\",
                        b"@",
                        b"\r",
                        b"\n",
                        b"\r\n ",
                        b"9" * 30,
                        b"\xff",
                    ]
                )
            )
            data[at:at] = piece * draw(st.integers(1, 3))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 20))]
        else:
            other = draw(st.sampled_from(SEEDS))
            data[at:] = other[draw(st.integers(0, len(other))) :]
    return bytes(data)


# -- properties ----------------------------------------------------------------------------------


@SETTINGS
@given(MESSAGES)
def test_generated_messages_round_trip(message: Request | Response) -> None:
    wire = serialize(message)
    parsed = parse_datagram(wire)
    assert parsed == message
    assert serialize(parsed) == wire
    assert StreamFramer().feed(wire) == [parsed]


@SETTINGS
@given(requests())
def test_parsed_views_match_generated_values(message: Request) -> None:
    parsed = parse_datagram(serialize(message))
    assert isinstance(parsed, Request)
    assert parsed.uri == message.uri
    assert [str(v) for v in parsed.via] == [
        v for n, v in message.headers if n.lower() in ("via", "v")
    ]
    assert parsed.cseq.method == message.method
    assert parsed.body == message.body


def _check_parse(data: bytes) -> None:
    try:
        message = parse_datagram(data)
    except SIPProtocolError as error:
        assert error.status is None or 400 <= error.status <= 599
        assert not error.fatal
        return
    assert isinstance(message, Request | Response)
    wire = serialize(message)
    again = parse_datagram(wire)
    assert again.without_header("Content-Length") == message.without_header("Content-Length")
    assert serialize(again) == wire


@SETTINGS
@given(st.binary(max_size=3000))
def test_any_bytes_parse_or_raise_protocol_error(data: bytes) -> None:
    _check_parse(data)


@settings(SETTINGS, max_examples=300)
@given(mutated())
def test_mutated_vectors_parse_or_raise_protocol_error(data: bytes) -> None:
    _check_parse(data)


def _normal(events: list[StreamEvent | SIPProtocolError]) -> list[object]:
    return [(e.status, e.reason, e.fatal) if isinstance(e, SIPProtocolError) else e for e in events]


@settings(SETTINGS, max_examples=60)
@given(
    st.lists(
        MESSAGES.map(serialize) | st.just(b"\r\n\r\n") | st.sampled_from(SEEDS),
        min_size=1,
        max_size=4,
    ),
    st.lists(st.integers(1, 400), min_size=1, max_size=50),
)
def test_framer_is_independent_of_chunking(parts: list[bytes], sizes: list[int]) -> None:
    stream = b"".join(parts)
    whole = _normal(StreamFramer().feed(stream))
    framer = StreamFramer()
    chunked: list[StreamEvent | SIPProtocolError] = []
    position, i = 0, 0
    while position < len(stream):
        size = sizes[i % len(sizes)]
        chunked += framer.feed(stream[position : position + size])
        position += size
        i += 1
    assert _normal(chunked) == whole
    bytewise = StreamFramer()
    single: list[StreamEvent | SIPProtocolError] = []
    for k in range(len(stream)):
        single += bytewise.feed(stream[k : k + 1])
    assert _normal(single) == whole


@SETTINGS
@given(st.lists(MESSAGES.map(serialize) | st.just(b"\r\n\r\n"), min_size=1, max_size=6))
def test_framer_yields_every_valid_message_in_order(parts: list[bytes]) -> None:
    events = StreamFramer().feed(b"".join(parts))
    expected = [KeepAlive() if p == b"\r\n\r\n" else parse_datagram(p) for p in parts]
    assert events == expected


@settings(SETTINGS, max_examples=100)
@given(st.lists(mutated(), min_size=1, max_size=3), st.integers(1, 64))
def test_framer_on_garbage_raises_nothing_else(parts: list[bytes], size: int) -> None:
    stream = b"".join(parts)
    framer = StreamFramer()
    for k in range(0, len(stream), size):
        for event in framer.feed(stream[k : k + size]):
            assert isinstance(event, Request | Response | KeepAlive | SIPProtocolError)
