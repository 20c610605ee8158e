"""The hot-path shortcuts give exactly what the general code gives (issue #3 performance work).

Each shortcut is checked against the general path it bypasses: the simple Via and name-addr
shapes against the same values written with optional whitespace (which the shortcut does not
take), the one-pass Digest split against the validate-then-findall reference, the copied parsed
views of a response against a fresh parse of its wire form. Plus what the transaction layer
now forgets in Completed, and that every cache keeps its bound.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from transaction_support import PEER, make_request

from pbx_runtime.registrar.digest import (
    _PARAM_RE,
    _TOKEN,
    MAX_AUTH_PARAMS,
    DigestCredentials,
    DigestError,
    parse_authorization,
)
from pbx_runtime.sip import (
    Request,
    Response,
    SIPProtocolError,
    Via,
    parse_datagram,
    parse_name_addr,
    parse_via,
    serialize,
)
from pbx_runtime.sip.headers import _after_laquot, parse_cseq
from pbx_runtime.sip.limits import DEFAULT_LIMITS
from pbx_runtime.sip.message import build_response, forget_parsed_views
from pbx_runtime.sip.parser import parse_head
from pbx_runtime.sip.transaction import (
    Role,
    SendMessage,
    State,
    TransactionKey,
    TransactionManager,
)

# -- Via -----------------------------------------------------------------------------------------

VIAS = [
    "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1-2;rport",
    "SIP/2.0/udp host.example.com;branch=z9hG4bKabc",
    "SIP/2.0/TCP [2001:db8::1]:5060;branch=z9hG4bK1;received=192.0.2.1;rport=5061",
    "SIP/2.0/TLS h.example;branch=z9hG4bK1;ttl=16;maddr=224.0.0.1;x-y",
    "SIP/2.0/UDP h.example;rport=70000",  # invalid rport: same error both ways
    "SIP/2.0/UDP h.example;received=not-an-ip",
    "SIP/2.0/UDP 300.1.1.1:5060;branch=z9hG4bK1",
    "SIP/2.0/UDP h.example:99999;branch=z9hG4bK1",
    "SIP/2.0/UDP -bad-.example;branch=z9hG4bK1",
    "SIP/2.0/UDP h.example;ttl",
    "SIP/2.0/UDP h.example;branch=z9hG4bK%41",
]


def _outcome(call: object, value: str) -> object:
    assert callable(call)
    try:
        return call(value)
    except SIPProtocolError as error:
        return ("error", error.status, str(error))


@pytest.mark.parametrize("value", VIAS)
def test_simple_via_matches_the_general_parser(value: str) -> None:
    # The general path takes "SIP/2.0/UDP  host ;p" (SWS) and strips it; the shortcut does not.
    spaced = value.replace(" ", "  ", 1).replace(";", " ;", 1)
    assert _outcome(parse_via, value) == _outcome(parse_via, spaced)


def test_via_branch_is_looked_up_once_from_the_params() -> None:
    via = parse_via("SIP/2.0/UDP h.example;BRANCH=z9hG4bKx;rport")
    assert via.branch == "z9hG4bKx" and via.has_rfc3261_branch
    params = via.params.with_param("branch", "z9hG4bKy")
    other = Via(transport=via.transport, host=via.host, port=via.port, params=params)
    assert other.branch == "z9hG4bKy" and other != via
    assert other == Via(transport="UDP", host="h.example", params=params)


# -- name-addr -----------------------------------------------------------------------------------

ADDRESSES = [
    "<sip:alice@example.com>;tag=abc",
    "<sip:alice@example.com;transport=udp>",
    "<sip:u@127.0.0.1:6001;transport=udp;lr>;expires=60;q=0.5",
    "<sips:bob@[2001:db8::2]:5061>;+sip.instance=x",
    "<tel:+1-201-555-0123>;tag=1",
    "<sip:a@300.0.0.1>",
    "<sip:a@h.example:77777>",
    "<sip:%zz@h.example>",
    "<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>",
]


@pytest.mark.parametrize("value", ADDRESSES)
def test_simple_name_addr_matches_the_general_parser(value: str) -> None:
    # the general path for "<addr-spec> *(;param)" without a display name
    assert _outcome(parse_name_addr.__wrapped__, value) == _outcome(
        lambda text: _after_laquot(text, None), value
    )


# -- CSeq ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1 INVITE", (1, "INVITE")),
        ("000000007 BYE", (7, "BYE")),
        ("4294967295 X", (2**32 - 1, "X")),
    ],
)
def test_cseq_numbers(value: str, expected: tuple[int, str]) -> None:
    cseq = parse_cseq(value)
    assert (cseq.number, cseq.method) == expected


@pytest.mark.parametrize("value", ["4294967296 INVITE", "\u0663 INVITE", "1\u00b2 BYE", "-1 BYE"])
def test_cseq_out_of_range_or_non_ascii_digits_are_400(value: str) -> None:
    with pytest.raises(SIPProtocolError) as caught:
        parse_cseq(value)
    assert caught.value.status == 400


# -- header names --------------------------------------------------------------------------------


def test_header_names_are_shared_strings_and_still_checked() -> None:
    head = b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\nCall-ID: 1"
    _, first = parse_head(head, DEFAULT_LIMITS)
    _, second = parse_head(bytes(head), DEFAULT_LIMITS)
    assert first == second and first[0][0] is second[0][0]
    with pytest.raises(SIPProtocolError):
        parse_head(b"OPTIONS sip:a@b SIP/2.0\r\nVi a: x", DEFAULT_LIMITS)
    with pytest.raises(SIPProtocolError):
        parse_head(b"OPTIONS sip:a@b SIP/2.0\r\n: x", DEFAULT_LIMITS)


# -- Digest credentials --------------------------------------------------------------------------

_VALUE = r'(?:"[^"\\]*+(?:\\.[^"\\]*+)*+"|[^\s,"]++)'
_ITEM = rf"[ \t]*+{_TOKEN}+[ \t]*+=[ \t]*+{_VALUE}[ \t]*+"
_LIST_RE = re.compile(rf"(?:{_ITEM},)*+{_ITEM}", re.S)


def _reference_items(rest: str) -> list[tuple[str, str, str]] | None:
    """The split by its definition: validate the whole list, then findall its items."""
    if _LIST_RE.fullmatch(rest) is None:
        return None
    return _PARAM_RE.findall(rest)


PIECES = ["a=b", 'realm="r"', 'nonce=""', 'x="a\\"b"', ",", " ", "\t", '"', "=", "\\", "a", ", "]


@given(st.lists(st.sampled_from(PIECES), max_size=12))
def test_digest_split_agrees_with_the_reference(pieces: list[str]) -> None:
    rest = "".join(pieces)
    expected = _reference_items(rest)
    value = "Digest " + rest
    if expected is None:
        with pytest.raises(DigestError):
            parse_authorization(value)
        return
    try:
        credentials = parse_authorization(value)
    except DigestError as error:
        # the reference accepted the list; only the checks after the split may refuse it
        assert str(error) != "malformed Digest credentials"
        return
    assert isinstance(credentials, DigestCredentials)


def test_digest_full_value_and_too_many_parameters() -> None:
    good = (
        'Digest username="u",realm="r",cnonce="c",nc=00000001,qop=auth,uri="sip:h",'
        'nonce="n",response="abc",algorithm=MD5'
    )
    credentials = parse_authorization(good)
    assert credentials is not None and (credentials.uri, credentials.nc) == ("sip:h", "00000001")
    many = good + "".join(f",p{i}=1" for i in range(MAX_AUTH_PARAMS))
    with pytest.raises(DigestError, match="too many"):
        parse_authorization(many)
    with pytest.raises(DigestError, match="malformed"):
        parse_authorization(good + ",")


# -- responses and serialization -----------------------------------------------------------------


def test_response_views_copied_from_the_request_equal_a_fresh_parse() -> None:
    request = make_request("REGISTER")
    response = build_response(request, 200, to_tag="t1", headers=[("Contact", "<sip:a@b>")])
    again = parse_datagram(serialize(response))
    assert isinstance(again, Response)
    assert response.via == again.via and response.cseq == again.cseq
    assert response.call_id == again.call_id and response.from_ == again.from_
    assert response.to == again.to and response.to.tag == "t1"


def test_extra_via_or_cseq_in_a_response_is_not_masked_by_copied_views() -> None:
    request = make_request("OPTIONS")
    response = build_response(request, 200, headers=[("CSeq", "9 OPTIONS")])
    with pytest.raises(SIPProtocolError):
        response.cseq  # noqa: B018  # two CSeq fields: the copied view must not hide that


def test_serialize_caches_the_wire_form_per_message() -> None:
    response = build_response(make_request("OPTIONS"), 200, to_tag="x")
    wire = serialize(response)
    assert serialize(response) is wire
    other = response.with_header("Allow", "INVITE")
    assert serialize(other) != wire and b"Allow: INVITE\r\n" in serialize(other)
    forget_parsed_views(response)
    assert serialize(response) is wire and response.cseq.method == "OPTIONS"
    with pytest.raises(ValueError, match="not a token"):
        serialize(response.with_header("Bad Name", "x"))


# -- transactions --------------------------------------------------------------------------------


def test_transaction_key_hash_is_cached_and_consistent() -> None:
    a = TransactionKey(Role.SERVER, "z9hg4bk1", "INVITE", "h:5060")
    b = TransactionKey(Role.SERVER, "z9hg4bk1", "INVITE", "h:5060")
    assert a == b and hash(a) == hash(b) and {a: 1}[b] == 1
    c = a.with_method("CANCEL")
    assert c != a and hash(c) == hash(TransactionKey(Role.SERVER, "z9hg4bk1", "CANCEL", "h:5060"))
    assert "_hash" not in repr(a)


def _register_with_body() -> Request:
    data = (
        b"REGISTER sip:example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP client.example.com:5060;branch=z9hG4bK-reg\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: <sip:a@example.com>;tag=a1\r\n"
        b"To: <sip:a@example.com>\r\n"
        b"Call-ID: reg-1@example.com\r\n"
        b"CSeq: 1 REGISTER\r\n"
        b"Contact: <sip:a@192.0.2.1>\r\n"
        b'Authorization: Digest username="a", realm="example.com", nonce="n", uri="sip:x", '
        b'response="r"\r\n'
        b"User-Agent: phone\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    request = parse_datagram(data)
    assert isinstance(request, Request)
    return request


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
def test_completed_server_transaction_keeps_only_what_a_response_needs(transport: str) -> None:
    request = _register_with_body()
    if transport == "TCP":
        request = request.replace_header(
            "Via", "SIP/2.0/TCP client.example.com:5060;branch=z9hG4bK-reg"
        )
    manager = TransactionManager()
    (received,) = manager.receive(request, PEER, 0.0)
    final = build_response(request, 200, to_tag="t")
    sent = manager.send_response(final, 0.0, key=received.key)
    assert isinstance(sent[0], SendMessage)
    tx = manager.transaction(received.key)
    if transport == "TCP":
        assert tx is None  # Timer J is zero on a reliable transport: nothing to keep
        return
    assert tx is not None and tx.state is State.COMPLETED
    kept = {name for name, _ in tx.request.headers}
    assert kept == {"Via", "Max-Forwards", "From", "To", "Call-ID", "CSeq"}
    assert tx.request.method == "REGISTER" and tx.request.uri == request.uri
    # a retransmission gets the very same bytes, and a response can still be built from it
    (again,) = manager.receive(request, PEER, 1.0)
    assert isinstance(again, SendMessage) and serialize(again.message) == serialize(final)
    assert build_response(tx.request, 500).cseq == request.cseq


def test_send_response_with_the_key_of_its_request() -> None:
    request = make_request("OPTIONS")
    manager = TransactionManager()
    (received,) = manager.receive(request, PEER, 0.0)
    events = manager.send_response(build_response(request, 200), 0.0, key=received.key)
    assert isinstance(events[0], SendMessage)
    assert manager.send_response(build_response(request, 200), 0.0, key=received.key) == []


# -- nonce MAC -----------------------------------------------------------------------------------


def test_nonce_mac_with_any_secret_length_binds_secret_host_and_time() -> None:
    from pbx_runtime.registrar.digest import DigestVerifier

    for secret in (b"s" * 16, b"s" * 32, b"s" * 64):
        verifier = DigestVerifier("example.com", secret=secret)
        nonce = verifier.new_nonce("192.0.2.1", 1000.0)
        assert re.fullmatch(r"[0-9a-f]{48}", nonce)
        assert verifier.nonce_issued(nonce, "192.0.2.1") == 1000
        assert verifier.nonce_issued(nonce, "192.0.2.2") is None
        other = DigestVerifier("example.com", secret=secret[:-1] + b"t")
        assert other.nonce_issued(nonce, "192.0.2.1") is None
        forged = f"{1001:08x}" + nonce[8:]
        assert verifier.nonce_issued(forged, "192.0.2.1") is None
