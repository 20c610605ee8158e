"""Every RFC 4475 / RFC 5118 vector against its recorded parser and stream expectations."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from pbx_runtime.sip import (
    KeepAlive,
    NameAddr,
    Request,
    Response,
    SIPProtocolError,
    SipUri,
    StreamFramer,
    parse_datagram,
    serialize,
)

VECTORS = Path(__file__).resolve().parents[2] / "vectors"
RFC4475 = VECTORS / "rfc4475"
RFC5118 = VECTORS / "rfc5118"


def _load(directory: Path) -> dict[str, dict[str, Any]]:
    with (directory / "expected.yaml").open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    assert isinstance(data, dict)
    return data


EXPECTED_4475 = _load(RFC4475)
EXPECTED_5118 = _load(RFC5118)
CASES = [(RFC4475, name, spec) for name, spec in EXPECTED_4475.items()] + [
    (RFC5118, name, spec) for name, spec in EXPECTED_5118.items()
]
IDS = [name for _, name, _ in CASES]
PARSED = [(directory, name) for directory, name, spec in CASES if spec["parser"] == "parse"]


def _outcome(data: bytes) -> object:
    try:
        message = parse_datagram(data)
    except SIPProtocolError as error:
        return "drop" if error.status is None else error.status
    assert isinstance(message, Request | Response)
    return "parse"


@pytest.mark.parametrize(("directory", "sums"), [(RFC4475, 50), (RFC5118, 12)])
def test_every_vector_file_is_pinned_and_classified(directory: Path, sums: int) -> None:
    pinned = {}
    for line in (directory / "SHA256SUMS").read_text(encoding="ascii").splitlines():
        digest, name = line.split("  ", 1)
        pinned[name] = digest
    assert len(pinned) == sums
    for name, digest in pinned.items():
        assert hashlib.sha256((directory / name).read_bytes()).hexdigest() == digest, name
    files = {p.name for p in directory.iterdir() if p.suffix in (".dat", ".sip")}
    assert files == set(pinned) == set(_load(directory))


def test_rfc4475_archive_is_wire_format() -> None:
    # RFC 4475's archive has real CRLFs; a byte-level check that nothing re-wrote them.
    wsinv = (RFC4475 / "wsinv.dat").read_bytes()
    assert wsinv.count(b"\r\n") == wsinv.count(b"\n")
    assert (
        (RFC4475 / "trws.dat")
        .read_bytes()
        .startswith(b"OPTIONS sip:remote-target@example.com SIP/2.0  \r\n")
    )
    assert b"%00" in (RFC4475 / "escnull.dat").read_bytes()
    assert not (RFC4475 / "baddn.dat").read_bytes().endswith(b"\r\n\r\n")


@pytest.mark.parametrize(("directory", "name", "spec"), CASES, ids=IDS)
def test_parser_outcome(directory: Path, name: str, spec: dict[str, Any]) -> None:
    assert _outcome((directory / name).read_bytes()) == spec["parser"]


@pytest.mark.parametrize(("directory", "name", "spec"), CASES, ids=IDS)
def test_expectations_are_well_formed(directory: Path, name: str, spec: dict[str, Any]) -> None:
    allowed = {"parse", "drop"}
    for column in ("parser", "uas"):
        value = spec[column]
        assert value in allowed or (isinstance(value, int) and 400 <= value <= 699), (name, value)
    if spec["parser"] != "parse":
        assert spec["uas"] == spec["parser"], "a parser rejection is the final answer"
    assert spec.get("stream") in (None, "incomplete", "close")
    assert spec["title"]


@pytest.mark.parametrize(("directory", "name", "spec"), CASES, ids=IDS)
def test_stream_outcome(directory: Path, name: str, spec: dict[str, Any]) -> None:
    data = (directory / name).read_bytes()
    framer = StreamFramer()
    events = framer.feed(data)
    stream = spec.get("stream")
    if stream == "incomplete":
        assert events == []
        assert framer.buffered == len(data)
        return
    if stream == "close":
        last = events[-1]
        assert isinstance(last, SIPProtocolError) and last.fatal
        assert framer.error is last
        return
    assert len(events) == 1, events
    event = events[0]
    assert not isinstance(event, KeepAlive)
    if isinstance(event, SIPProtocolError):
        assert ("drop" if event.status is None else event.status) == spec["parser"]
        assert not event.fatal
    else:
        assert spec["parser"] == "parse"
        assert event == parse_datagram(data)
    assert framer.buffered == 0


@pytest.mark.parametrize(("directory", "name"), PARSED, ids=[name for _, name in PARSED])
def test_parsed_vectors_reserialize_stably(directory: Path, name: str) -> None:
    message = parse_datagram((directory / name).read_bytes())
    wire = serialize(message)
    again = parse_datagram(wire)
    assert again.without_header("Content-Length") == message.without_header("Content-Length")
    assert serialize(again) == wire


# -- what the accepted torture messages must parse *to* -------------------------------------------


def _req(directory: Path, name: str) -> Request:
    message = parse_datagram((directory / name).read_bytes())
    assert isinstance(message, Request)
    return message


def _sip(uri: object) -> SipUri:
    assert isinstance(uri, SipUri)
    return uri


def _addr(contact: object) -> NameAddr:
    assert isinstance(contact, NameAddr)
    return contact


def test_wsinv_values() -> None:
    msg = _req(RFC4475, "wsinv.dat")
    assert msg.method == "INVITE"
    assert str(msg.uri) == "sip:vivekg@chair-dnrc.example.com;unknownparam"
    assert msg.to.tag == "1918181833n"
    assert msg.from_.display_name == 'J Rosenberg \\"'
    assert msg.from_.tag == "98asjd8"
    assert msg.max_forwards == 68
    assert (msg.cseq.number, msg.cseq.method) == (9, "INVITE")
    assert [(v.transport, v.host, v.branch) for v in msg.via] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert msg.get("s") == "" and msg.get("Subject") == ""
    assert msg.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert msg.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    (contact,) = msg.contact
    assert isinstance(contact, NameAddr)
    assert contact.display_name == 'Quoted string ""'
    assert contact.params.get("q") == "0.33" and contact.params.has("secondparam")
    assert len(msg.body) == 150


def test_intmeth_values() -> None:
    msg = _req(RFC4475, "intmeth.dat")
    assert msg.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert msg.cseq.method == msg.method
    assert msg.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert msg.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert msg.from_.param("fromParam''~+*_!.-%") == "работающий"
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert msg.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_escapes_are_kept_and_decodable() -> None:
    msg = _req(RFC4475, "esc01.dat")
    assert _sip(msg.uri).user == "sips%3Auser%40example.com"
    assert _sip(msg.uri).user_unescaped == "sips:user@example.com"
    nulls = _req(RFC4475, "escnull.dat")
    users = [_sip(_addr(c).uri).user_unescaped for c in nulls.contact]
    assert users == ["\x00", "\x00\x00"]
    semi = _sip(_req(RFC4475, "semiuri.dat").uri)
    assert semi.user_unescaped == "user;par=u@example.net"
    assert semi.params == ()


def test_esc02_percent_is_not_an_escape_in_tokens() -> None:
    msg = _req(RFC4475, "esc02.dat")
    assert msg.method == "RE%47IST%45R"
    assert len(msg.contact) == 2  # C%6Fntact is an unknown header, not Contact
    assert msg.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_contact_param_versus_uri_param() -> None:
    c1 = _addr(_req(RFC4475, "cparam01.dat").contact[0])
    c2 = _addr(_req(RFC4475, "cparam02.dat").contact[0])
    assert c1.params.has("unknownparam") and not _sip(c1.uri).params.has("unknownparam")
    assert _sip(c2.uri).params.has("unknownparam") and not c2.params.has("unknownparam")
    escaped = _sip(_addr(_req(RFC4475, "regescrt.dat").contact[0]).uri)
    assert escaped.headers == (("Route", "%3Csip:sip.example.com%3E"),)


def test_dblreq_ignores_trailing_octets() -> None:
    msg = _req(RFC4475, "dblreq.dat")
    assert msg.method == "REGISTER" and msg.body == b""


def test_mpart01_binary_body_framed_by_length() -> None:
    msg = _req(RFC4475, "mpart01.dat")
    assert len(msg.body) == 553 and b"\x00" in msg.body


def test_unknown_schemes_in_headers_parse() -> None:
    msg = _req(RFC4475, "unksm2.dat")
    assert str(msg.to.uri) == "isbn:2983792873"
    assert msg.to.uri.scheme == "isbn"
    assert str(msg.from_.uri) == "http://www.example.com"


def test_rfc2543_request_has_no_branch_tag_or_max_forwards() -> None:
    msg = _req(RFC4475, "inv2543.dat")
    assert msg.max_forwards is None and msg.from_.tag is None
    assert msg.top_via.branch is None and not msg.top_via.has_rfc3261_branch
    assert len(msg.body) == 105  # no Content-Length: the rest of the datagram
    assert not _req(RFC4475, "badbranch.dat").top_via.has_rfc3261_branch


def test_responses_parse() -> None:
    noreason = parse_datagram((RFC4475 / "noreason.dat").read_bytes())
    assert isinstance(noreason, Response) and (noreason.status, noreason.reason) == (100, "")
    unreason = parse_datagram((RFC4475 / "unreason.dat").read_bytes())
    assert isinstance(unreason, Response) and unreason.reason.endswith("простое")


def test_rfc5118_ipv6_values() -> None:
    good = _req(RFC5118, "4.1_ipv6-good.sip")
    assert _sip(good.uri).host == "[2001:db8::10]"
    assert _sip(good.uri).host_address == "2001:db8::10"
    assert good.top_via.host == "[2001:db8::9:1]"
    ambiguous = _sip(_req(RFC5118, "4.3_port-ambiguous.sip").uri)
    assert ambiguous.host_address == "2001:db8::10:5070" and ambiguous.port is None
    clear = _sip(_req(RFC5118, "4.4_port-unambiguous.sip").uri)
    assert (clear.host_address, clear.port) == ("2001:db8::10", 5070)
    for name in ("4.5_via-received-param-with-delim.sip", "4.5_via-received-param-no-delim.sip"):
        assert _req(RFC5118, name).top_via.received == "2001:db8::9:255"
    mixed = _req(RFC5118, "4.7_mult-ip-in-header.sip")
    assert [(v.transport, v.host, v.port) for v in mixed.via] == [
        ("UDP", "[2001:db8::9:1]", 6050),
        ("UDP", "192.0.2.1", None),
        ("TCP", "[2001:db8::9:255]", None),
    ]
    assert mixed.via[2].received == "192.0.2.200"
    mapped = _req(RFC5118, "4.9_ipv4-mapped-ipv6.sip")
    assert (mapped.top_via.host, mapped.top_via.port) == ("[::ffff:192.0.2.10]", 19823)
    assert b"c=IN IP6 ::ffff:192.0.2.2" in mapped.body


@pytest.mark.parametrize(
    "name", ["4.6_ipv6-in-sdp.sip", "4.8_mult-ip-in-sdp.sip", "4.9_ipv4-mapped-ipv6.sip"]
)
def test_rfc5118_corrected_content_length_frames_whole_sdp(name: str) -> None:
    msg = _req(RFC5118, name)
    assert msg.body.endswith(b"a=rtpmap:107 H263-1998/90000\r\n")
    assert EXPECTED_5118[name]["rfc_content_length"] != len(msg.body)
