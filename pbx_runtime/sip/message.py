"""SIP messages as frozen dataclasses, header access helpers, serialization and responses.

Headers are kept exactly in arrival order as ``(name, value)`` pairs with the name as written
(``"v"``, ``"TO"``...) and the value unfolded. Look-ups go through :func:`header_key`, so
``msg.get("Call-ID")``, ``msg.get("i")`` and ``msg.get("call-id")`` are the same.

Parsed accessors (``via``, ``cseq``, ``call_id``, ``from_``, ``to``, ``contact``, ``max_forwards``,
``content_length``) are filled by the parser after validation; on a message built by hand they
are computed on first use and raise :class:`SIPProtocolError` if the header is malformed.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from typing import Final, Self

from .abnf import (
    _KEY_CACHE,
    LIST_HEADERS,
    REASON_PHRASES,
    canonical_name,
    header_key,
    is_token,
    split_list,
)
from .errors import SIPProtocolError
from .headers import (
    ContactValue,
    CSeq,
    NameAddr,
    Via,
    parse_call_id,
    parse_contact_list,
    parse_cseq,
    parse_max_forwards,
    parse_name_addr,
    parse_non_negative,
    parse_via_list,
)
from .uri import URI
from .value import Value

__all__ = [
    "DIALOG_CREATING_METHODS",
    "Headers",
    "Message",
    "Request",
    "Response",
    "build_response",
    "serialize",
]

Headers = tuple[tuple[str, str], ...]

_NO_POSITIONS: list[int] = []  # shared "absent" answer of _positions (never mutated)

#: Methods whose 101-299 responses carry Record-Route back (RFC 3261 §12.1.1, RFC 6665, 3515).
DIALOG_CREATING_METHODS = frozenset({"INVITE", "SUBSCRIBE", "REFER", "NOTIFY"})


class _Parsed:
    """Per-message cache of parsed header views (mutable, private, excluded from equality)."""

    __slots__ = (
        "call_id",
        "contact",
        "content_length",
        "cseq",
        "from_",
        "index",
        "max_forwards",
        "to",
        "via",
        "wire",
    )

    def __init__(self) -> None:
        self.index: dict[str, list[int]] | None = None
        self.via: tuple[Via, ...] | None = None
        self.cseq: CSeq | None = None
        self.call_id: str | None = None
        self.from_: NameAddr | None = None
        self.to: NameAddr | None = None
        self.contact: tuple[ContactValue, ...] | None = None
        self.max_forwards: int | None = None
        self.content_length: int | None = None
        #: what :func:`serialize` made of the message (messages are immutable; a retransmission
        #: re-sends the same bytes)
        self.wire: bytes | None = None


def build_index(headers: Sequence[tuple[str, str]]) -> dict[str, list[int]]:
    """Map each :func:`header_key` to the positions of its fields in *headers*."""
    index: dict[str, list[int]] = {}
    cached = _KEY_CACHE.get
    for position, (name, _) in enumerate(headers):
        key = cached(name) or header_key(name)
        slot = index.get(key)
        if slot is None:
            index[key] = [position]
        else:
            slot.append(position)
    return index


class _MessageBase(Value):
    """Header look-ups and parsed accessors shared by :class:`Request` and :class:`Response`.

    The parsed views (:class:`_Parsed`) are a private cache, outside equality and hashing.
    """

    __slots__ = ("_parsed", "body", "headers")

    def __init__(self, headers: Headers, body: bytes) -> None:
        self.headers: Final = headers
        self.body: Final = body
        self._parsed: Final = _Parsed()

    # -- raw header access ---------------------------------------------------------------------

    def _positions(self, name: str) -> list[int]:
        index = self._parsed.index
        if index is None:
            index = self._parsed.index = build_index(self.headers)
        return index.get(_KEY_CACHE.get(name) or header_key(name), _NO_POSITIONS)

    def get(self, name: str, default: str | None = None) -> str | None:
        """Value of the first *name* header field (any spelling or compact form), or *default*."""
        positions = self._positions(name)
        return self.headers[positions[0]][1] if positions else default

    def get_all(self, name: str) -> list[str]:
        """Every value of *name*, in order.

        For list headers (Via, Contact, Route, Supported, ...) comma-separated values are split,
        so ``Via: a, b`` and two ``Via`` lines give the same result.
        """
        values = [self.headers[i][1] for i in self._positions(name)]
        if header_key(name) not in LIST_HEADERS:
            return values
        return [item for value in values for item in split_list(value)]

    def has(self, name: str) -> bool:
        return bool(self._positions(name))

    @property
    def start_line(self) -> str:
        """The request or status line, without CRLF."""
        raise NotImplementedError  # Request and Response define it

    def with_headers(self, headers: Iterable[tuple[str, str]]) -> Self:
        """A copy with *headers* as its whole header list (parsed views recomputed lazily)."""
        raise NotImplementedError  # Request and Response define it

    def with_header(self, name: str, value: str, *, first: bool = False) -> Self:
        """A copy with one more header field, appended (or put first)."""
        entry = ((name, value),)
        return self.with_headers(entry + self.headers if first else self.headers + entry)

    def without_header(self, name: str) -> Self:
        """A copy without any *name* header field."""
        key = header_key(name)
        return self.with_headers(h for h in self.headers if header_key(h[0]) != key)

    def replace_header(self, name: str, value: str) -> Self:
        """A copy where *name* has exactly one field, at the first old position (else appended)."""
        key = header_key(name)
        out: list[tuple[str, str]] = []
        placed = False
        for header in self.headers:
            if header_key(header[0]) == key:
                if not placed:
                    out.append((name, value))
                    placed = True
            else:
                out.append(header)
        if not placed:
            out.append((name, value))
        return self.with_headers(out)

    def _single(self, name: str) -> str:
        positions = self._positions(name)
        if not positions:
            raise SIPProtocolError(400, f"missing {canonical_name(name)}")
        if len(positions) > 1:
            raise SIPProtocolError(400, f"more than one {canonical_name(name)}")
        return self.headers[positions[0]][1]

    # -- parsed accessors ------------------------------------------------------------------------

    @property
    def via(self) -> tuple[Via, ...]:
        """Every Via, topmost first."""
        parsed = self._parsed
        if parsed.via is None:
            values = [self.headers[i][1] for i in self._positions("via")]
            parsed.via = tuple(v for value in values for v in parse_via_list(value))
        return parsed.via

    @property
    def top_via(self) -> Via:
        vias = self.via
        if not vias:
            raise SIPProtocolError(400, "missing Via")
        return vias[0]

    @property
    def cseq(self) -> CSeq:
        parsed = self._parsed
        if parsed.cseq is None:
            parsed.cseq = parse_cseq(self._single("cseq"))
        return parsed.cseq

    @property
    def call_id(self) -> str:
        parsed = self._parsed
        if parsed.call_id is None:
            parsed.call_id = parse_call_id(self._single("call-id"))
        return parsed.call_id

    @property
    def from_(self) -> NameAddr:
        """The From header (``from`` is a Python keyword)."""
        parsed = self._parsed
        if parsed.from_ is None:
            parsed.from_ = parse_name_addr(self._single("from"))
        return parsed.from_

    @property
    def to(self) -> NameAddr:
        parsed = self._parsed
        if parsed.to is None:
            parsed.to = parse_name_addr(self._single("to"))
        return parsed.to

    @property
    def contact(self) -> tuple[ContactValue, ...]:
        """Every Contact address in order; ``("*",)`` for the REGISTER wildcard."""
        parsed = self._parsed
        if parsed.contact is None:
            values = [self.headers[i][1] for i in self._positions("contact")]
            contacts = tuple(c for value in values for c in parse_contact_list(value))
            if "*" in contacts and len(contacts) > 1:
                raise SIPProtocolError(400, "Contact '*' must stand alone")
            parsed.contact = contacts
        return parsed.contact

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards, or ``None`` when absent (RFC 2543 peers, RFC 4475 §3.4.1)."""
        parsed = self._parsed
        if parsed.max_forwards is None:
            if not self._positions("max-forwards"):
                return None
            parsed.max_forwards = parse_max_forwards(self._single("max-forwards"))
        return parsed.max_forwards

    @property
    def content_length(self) -> int:
        """Length of :attr:`body` (what the serializer writes, whatever the header said)."""
        return len(self.body)

    @property
    def expires(self) -> int | None:
        """The Expires header in seconds, ``None`` when absent; 400 if malformed or > 2**32-1."""
        if not self._positions("expires"):
            return None
        return parse_non_negative(self._single("expires").strip(" \t"), what="Expires")

    def name_addrs(self, name: str) -> tuple[NameAddr, ...]:
        """Every address of a name-addr list header (Route, Record-Route, Path, ...)."""
        values = [self.headers[i][1] for i in self._positions(name)]
        out: list[NameAddr] = []
        for value in values:
            for item in split_list(value, strict=True):
                out.append(parse_name_addr(item))
        return tuple(out)

    @property
    def route(self) -> tuple[NameAddr, ...]:
        return self.name_addrs("route")

    @property
    def record_route(self) -> tuple[NameAddr, ...]:
        return self.name_addrs("record-route")

    def tokens(self, name: str) -> list[str]:
        """Comma-separated option tags of Require/Supported/Proxy-Require/Allow/..., as written."""
        return [item for value in self.get_all(name) for item in split_list(value)]

    def to_bytes(self) -> bytes:
        """Wire form; see :func:`serialize`."""
        return serialize(self)


class Request(_MessageBase):
    """A SIP request. :attr:`uri` is the parsed Request-URI (SIP, SIPS or tel)."""

    __slots__ = ("method", "uri")

    def __init__(self, method: str, uri: URI, headers: Headers = (), body: bytes = b"") -> None:
        super().__init__(headers, body)
        self.method: Final = method
        self.uri: Final = uri

    def _fields(self) -> tuple[object, ...]:
        return (self.method, self.uri, self.headers, self.body)

    @property
    def start_line(self) -> str:
        return f"{self.method} {self.uri} SIP/2.0"

    def with_headers(self, headers: Iterable[tuple[str, str]]) -> Self:
        return type(self)(self.method, self.uri, tuple(headers), self.body)


class Response(_MessageBase):
    """A SIP response."""

    __slots__ = ("reason", "status")

    def __init__(
        self, status: int, reason: str = "", headers: Headers = (), body: bytes = b""
    ) -> None:
        super().__init__(headers, body)
        self.status: Final = status
        self.reason: Final = reason

    def _fields(self) -> tuple[object, ...]:
        return (self.status, self.reason, self.headers, self.body)

    @property
    def start_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}"

    def with_headers(self, headers: Iterable[tuple[str, str]]) -> Self:
        return type(self)(self.status, self.reason, tuple(headers), self.body)


Message = Request | Response


def serialize(message: _MessageBase) -> bytes:
    """Render *message* to bytes with a correct Content-Length.

    Existing Content-Length fields are dropped and one is written with ``len(body)`` at the
    position of the first old one (keeping its spelling, e.g. compact ``l``), else last.

    :raises ValueError: a header name is not a token, or the start line or a header value
        contains CR or LF (header injection).
    """
    parsed = message._parsed
    if parsed.wire is not None:
        return parsed.wire
    body = message.body
    lines = [message.start_line]
    wrote_length = False
    checked = _TOKEN_NAMES
    keys = _KEY_CACHE
    for name, value in message.headers:
        if (keys.get(name) or header_key(name)) == "content-length":
            if not wrote_length:
                lines.append(f"{name}: {len(body)}")
                wrote_length = True
            continue
        if name not in checked:
            if not is_token(name):
                raise ValueError(f"header name {name!r} is not a token")
            if len(checked) < _TOKEN_NAMES_MAX:
                checked.add(name)
        lines.append(f"{name}: {value}")
    if not wrote_length:
        lines.append(f"Content-Length: {len(body)}")
    head = "\r\n".join(lines)
    separators = len(lines) - 1
    if head.count("\r") != separators or head.count("\n") != separators:
        raise ValueError("CR or LF inside a start line or header field (header injection)")
    wire = head.encode("utf-8") + b"\r\n\r\n" + body
    parsed.wire = wire
    return wire


#: Header names :func:`serialize` has already found to be tokens (bounded).
_TOKEN_NAMES: set[str] = set()
_TOKEN_NAMES_MAX = 4096


def forget_parsed_views(message: _MessageBase) -> None:
    """Drop the parsed header views and the header index of *message*, keeping its wire form.

    For messages kept only to be re-sent (a final response waiting out Timer J): the views are
    recomputed on first use, and give the same values.
    """
    parsed = message._parsed
    wire = parsed.wire
    parsed.__init__()  # type: ignore[misc]  # reset every slot to "not computed"
    parsed.wire = wire


def new_tag() -> str:
    """A fresh random tag (64 bits, hex) for To/From (RFC 3261 §19.3 asks for ≥ 32 bits)."""
    return secrets.token_hex(8)


def build_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    copy_record_route: bool | None = None,
) -> Response:
    """Build a response to *request* (RFC 3261 §8.2.6.2).

    Copies every Via (in order), From, To, Call-ID and CSeq. For any status above 100 a To
    without a tag gets *to_tag* (a random one when ``None``); a To that already has a tag keeps
    it. Record-Route is copied for 101-299 answers to dialog-creating methods unless
    *copy_record_route* says otherwise. *headers* are appended; Content-Length is written by
    :func:`serialize`.
    """
    if not 100 <= status <= 699:
        raise ValueError(f"status {status} is outside 100-699")
    if reason is None:
        reason = REASON_PHRASES.get(status, "Unknown")
    if copy_record_route is None:
        copy_record_route = 100 < status < 300 and request.method in DIALOG_CREATING_METHODS
    fields = request.headers
    index = request._parsed.index
    if index is None:
        index = request._parsed.index = build_index(fields)
    get = index.get
    out = [("Via", fields[i][1]) for i in get("via", _NO_POSITIONS)]
    out += [("From", fields[i][1]) for i in get("from", _NO_POSITIONS)]
    to_positions = get("to", _NO_POSITIONS)
    if to_positions and status > 100 and request.to.tag is None:
        tag = to_tag if to_tag is not None else new_tag()
        out += [("To", f"{fields[i][1]};tag={tag}") for i in to_positions]
    else:
        out += [("To", fields[i][1]) for i in to_positions]
    out += [("Call-ID", fields[i][1]) for i in get("call-id", _NO_POSITIONS)]
    out += [("CSeq", fields[i][1]) for i in get("cseq", _NO_POSITIONS)]
    if copy_record_route:
        out += [("Record-Route", fields[i][1]) for i in get("record-route", _NO_POSITIONS)]
    extra = tuple(headers)
    out.extend(extra)
    response = Response(status=status, reason=reason, headers=tuple(out), body=body)
    # The response carries the request's Via, From, Call-ID and CSeq values unchanged: their
    # parsed views are the same (the transaction layer reads Via and CSeq of every response).
    keys = _KEY_CACHE
    if not any((keys.get(name) or header_key(name)) in _COPIED_KEYS for name, _ in extra):
        source, parsed = request._parsed, response._parsed
        parsed.via = source.via
        parsed.cseq = source.cseq
        parsed.call_id = source.call_id
        parsed.from_ = source.from_
    return response


_COPIED_KEYS = frozenset({"via", "from", "call-id", "cseq"})
