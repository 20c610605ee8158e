"""Parsed views of structured header values: Via, CSeq, name-addr/addr-spec, parameters.

Each ``parse_*`` function takes one already-unfolded header value (for list headers, one element
of :func:`~pbx_runtime.sip.abnf.split_list`) and raises :class:`SIPProtocolError` (400) when it
does not match the RFC 3261 grammar. Results are immutable values; ``str()`` renders them back
to a canonical wire form.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final, Literal

from .abnf import (
    CALLID_RE,
    DIGITS_RE,
    DISPLAY_TOKENS_RE,
    GEN_VALUE_RE,
    LWS_SPLIT_RE,
    QUOTED_RE,
    TOKEN_CLASS,
    is_token,
    quote,
    split_list,
    unquote,
)
from .errors import SIPProtocolError
from .params import EMPTY_PARAMS, Params
from .uri import (
    URI,
    is_ipv4,
    is_ipv6,
    parse_host,
    parse_hostport,
    parse_uri,
)
from .value import Value

__all__ = [
    "STAR",
    "CSeq",
    "ContactValue",
    "NameAddr",
    "Via",
    "parse_call_id",
    "parse_contact_list",
    "parse_cseq",
    "parse_header_params",
    "parse_max_forwards",
    "parse_name_addr",
    "parse_non_negative",
    "parse_via",
    "parse_via_list",
]

MAX_CSEQ = 2**32 - 1
MAX_FORWARDS_LIMIT = 255

#: The ``Contact: *`` wildcard (RFC 3261 §10.2.2), as returned by :func:`parse_contact_list`.
STAR: Literal["*"] = "*"


def _bad(reason: str) -> SIPProtocolError:
    return SIPProtocolError(400, reason)


# Splits a parameter list on ";" while keeping quoted-strings whole.
_PARAM_PIECE_RE = re.compile(r'"(?:[^"\\]|\\.)*"|[^;"]+|;|"', re.S)


def _split_semicolons(text: str) -> list[str]:
    if '"' not in text:
        return text.split(";")
    parts: list[str] = []
    current: list[str] = []
    for match in _PARAM_PIECE_RE.finditer(text):
        piece = match.group()
        if piece == ";":
            parts.append("".join(current))
            current = []
        elif piece == '"':
            raise _bad("unterminated quoted-string in parameters")
        else:
            current.append(piece)
    parts.append("".join(current))
    return parts


def parse_header_params(text: str) -> Params:
    """Parse ``generic-param *(SEMI generic-param)`` — the text *after* the first ``;``.

    ``gen-value = token / host / quoted-string``; SWS around ``;`` and ``=`` is allowed.
    """
    items: list[tuple[str, str | None]] = []
    for piece in _split_semicolons(text):
        name, eq, value = piece.partition("=")
        name = name.strip(" \t")
        if not is_token(name):
            raise _bad("invalid header parameter")
        if not eq:
            items.append((name, None))
            continue
        value = value.strip(" \t")
        if value.startswith('"'):
            if QUOTED_RE.fullmatch(value) is None:
                raise _bad("invalid quoted parameter value")
        elif GEN_VALUE_RE.fullmatch(value) is None:
            raise _bad("invalid header parameter value")
        items.append((name, value))
    return Params(items)


def _simple_params(text: str) -> list[tuple[str, str | None]]:
    """``;a=b;c`` (already matched as token names and token values) → parameter items."""
    items: list[tuple[str, str | None]] = []
    for piece in text[1:].split(";"):
        name, eq, value = piece.partition("=")
        items.append((name, value if eq else None))
    return items


#: ``<uri>;name=value;flag`` with nothing quoted, no whitespace and token parameters.
_SIMPLE_NAME_ADDR_RE = re.compile(f'<([^<>"\\s]+)>((?:;[{TOKEN_CLASS}]+(?:=[{TOKEN_CLASS}]+)?)*)')


def _param_value(params: Params, name: str) -> str | None:
    value = params.get(name)
    if value is not None and value.startswith('"'):
        return unquote(value[1:-1])
    return value


# ---------------------------------------------------------------------------------------------
# Via

_VIA_RE = re.compile(f"([{TOKEN_CLASS}]+)[ \\t]+([^ \\t;]+)[ \\t]*(?:;(.*))?", re.S)


class Via(Value):
    """One ``via-parm``: ``SIP/2.0/<transport> <host>[:<port>];params``."""

    __slots__ = ("branch", "host", "params", "port", "transport")

    def __init__(
        self, *, transport: str, host: str, port: int | None = None, params: Params = EMPTY_PARAMS
    ) -> None:
        self.transport: Final = transport
        self.host: Final = host
        self.port: Final = port
        self.params: Final = params
        #: the ``branch`` parameter (read for every transaction match, so looked up once)
        self.branch: Final = params.get("branch")

    def _fields(self) -> tuple[object, ...]:
        return (self.transport, self.host, self.port, self.params)

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"SIP/2.0/{self.transport} {self.host}{port}{self.params.render()}"

    @property
    def has_rfc3261_branch(self) -> bool:
        """Branch starts with the magic cookie and carries something after it (RFC 3261 §8.1.1.7).

        RFC 4475 §3.2.1 (``badbranch``) is a bare ``z9hG4bK``: the transaction layer answers 400.
        """
        branch = self.branch
        return branch is not None and branch.startswith("z9hG4bK") and len(branch) > 7

    @property
    def received(self) -> str | None:
        """The ``received`` address without IPv6 brackets (RFC 5118 §4.5 allows both forms)."""
        value = self.params.get("received")
        if value is not None and value.startswith("["):
            return value[1:-1]
        return value

    @property
    def rport(self) -> int | None:
        """The ``rport`` value if it has one (bare ``;rport``: see :attr:`wants_rport`)."""
        value = self.params.get("rport")
        return None if value is None else int(value)

    @property
    def wants_rport(self) -> bool:
        return self.params.has("rport")

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self.host, self.port


def _check_via_params(params: Params) -> None:
    for name, value in params:
        key = name.lower()
        if key == "received":
            address = value or ""
            if address.startswith("[") and address.endswith("]"):
                address = address[1:-1]
            if not (is_ipv4(address) or (":" in address and is_ipv6(address))):
                raise _bad("Via received is not an IP address")
        elif key == "rport":
            if value is not None and (DIGITS_RE.fullmatch(value) is None or int(value) > 65535):
                raise _bad("invalid Via rport")
        elif key == "ttl":
            if value is None or DIGITS_RE.fullmatch(value) is None or int(value) > 255:
                raise _bad("invalid Via ttl")
        elif key == "maddr":
            if value is None:
                raise _bad("Via maddr without a value")
            parse_host(value)
        elif key == "branch" and (value is None or not is_token(value)):
            raise _bad("invalid Via branch")


@lru_cache(maxsize=1024)
def _parse_sent_by(text: str) -> tuple[str, int | None]:
    return parse_hostport(text)


# The usual shape of a via-parm: no whitespace but the one SP, no quoted or empty parameter,
# token names and values. A match is parsed without the general machinery below and gives the
# same Via (the sent-by and the parameters still go through the same checks).
_SIMPLE_VIA_RE = re.compile(
    f"SIP/2\\.0/([{TOKEN_CLASS}]+) ([^ \t;]+)((?:;[{TOKEN_CLASS}]+(?:=[{TOKEN_CLASS}]+)?)*)"
)


def parse_via(value: str) -> Via:
    """Parse one ``via-parm`` (``sent-protocol LWS sent-by *( SEMI via-params )``)."""
    simple = _SIMPLE_VIA_RE.fullmatch(value)
    if simple is not None:
        transport, sent_by, param_text = simple.groups()
        host, port = _parse_sent_by(sent_by)
        params = EMPTY_PARAMS
        if param_text:
            params = Params(_simple_params(param_text))
            _check_via_params(params)
        return Via(transport=transport.upper(), host=host, port=port, params=params)
    parts = value.split("/", 2)
    if len(parts) != 3:
        raise _bad("malformed Via sent-protocol")
    if parts[0].strip(" \t").upper() != "SIP" or parts[1].strip(" \t") != "2.0":
        raise _bad("Via sent-protocol is not SIP/2.0")
    match = _VIA_RE.fullmatch(parts[2].lstrip(" \t"))
    if match is None:
        raise _bad("malformed Via")
    transport, sent_by, param_text = match.groups()
    host, port = _parse_sent_by(sent_by)
    params = EMPTY_PARAMS
    if param_text is not None:
        params = parse_header_params(param_text)
        _check_via_params(params)
    return Via(transport=transport.upper(), host=host, port=port, params=params)


def parse_via_list(value: str) -> list[Via]:
    """Parse a Via header value that may hold several comma-separated ``via-parm``."""
    if "," not in value:
        return [parse_via(value)]
    return [parse_via(part) for part in split_list(value, strict=True)]


# ---------------------------------------------------------------------------------------------
# CSeq, Call-ID, Max-Forwards


class CSeq(Value):
    """``CSeq: <number> <method>``; *number* fits 32 bits (RFC 3261 §8.1.1.5)."""

    __slots__ = ("method", "number")

    def __init__(self, number: int, method: str) -> None:
        self.number: Final = number
        self.method: Final = method

    def _fields(self) -> tuple[object, ...]:
        return (self.number, self.method)

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


def _bounded_int(text: str, maximum: int, what: str) -> int:
    if DIGITS_RE.fullmatch(text) is None:
        raise _bad(f"{what} is not a number")
    significant = text.lstrip("0") or "0"
    if len(significant) > len(str(maximum)) or int(significant) > maximum:
        raise _bad(f"{what} out of range")
    return int(significant)


def parse_cseq(value: str) -> CSeq:
    """Parse ``1*DIGIT LWS Method``; leading zeros allowed, value ≤ 2**32-1."""
    parts = value.split() if value.isascii() else LWS_SPLIT_RE.split(value.strip(" \t"))
    if len(parts) != 2:
        raise _bad("malformed CSeq")
    number, method = parts
    if method not in _METHODS and not is_token(method):
        raise _bad("invalid CSeq method")
    if len(number) <= 9 and number.isascii() and number.isdigit():  # [0-9]+, below 2**32
        return CSeq(int(number), method)
    return CSeq(_bounded_int(number, MAX_CSEQ, "CSeq number"), method)


_METHODS = frozenset({"REGISTER", "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "UPDATE",
                      "PRACK", "SUBSCRIBE", "NOTIFY", "MESSAGE", "REFER", "PUBLISH"})  # fmt: skip


def parse_call_id(value: str) -> str:
    """Validate ``callid = word [ "@" word ]`` and return it."""
    if CALLID_RE.fullmatch(value) is None:
        raise _bad("invalid Call-ID")
    return value


def parse_max_forwards(value: str) -> int:
    """Parse ``Max-Forwards`` (0-255; larger values are rejected, RFC 4475 §3.1.2.4)."""
    return _bounded_int(value, MAX_FORWARDS_LIMIT, "Max-Forwards")


def parse_non_negative(value: str, maximum: int = MAX_CSEQ, what: str = "value") -> int:
    """Parse a ``delta-seconds``-style number (``Expires``, ``Content-Length``...)."""
    return _bounded_int(value, maximum, what)


# ---------------------------------------------------------------------------------------------
# name-addr / addr-spec (From, To, Contact, Route, Record-Route, Reply-To, ...)


class NameAddr(Value):
    """``[display-name] <uri> *(;param)`` or ``addr-spec *(;param)``.

    :attr:`display_name` is unquoted (``None`` when absent). Header parameters (``tag``,
    ``expires``, ``q``...) are in :attr:`params`; URI parameters stay inside :attr:`uri`.
    """

    __slots__ = ("display_name", "params", "uri")

    def __init__(
        self, *, uri: URI, display_name: str | None = None, params: Params = EMPTY_PARAMS
    ) -> None:
        self.uri: Final = uri
        self.display_name: Final = display_name
        self.params: Final = params

    def _fields(self) -> tuple[object, ...]:
        return (self.uri, self.display_name, self.params)

    def __str__(self) -> str:
        display = "" if self.display_name is None else quote(self.display_name) + " "
        return f"{display}<{self.uri}>{self.params.render()}"

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def param(self, name: str) -> str | None:
        """Parameter value with quoted-strings unquoted."""
        return _param_value(self.params, name)

    def with_tag(self, tag: str) -> NameAddr:
        return NameAddr(
            uri=self.uri, display_name=self.display_name, params=self.params.with_param("tag", tag)
        )


def _after_laquot(text: str, display: str | None) -> NameAddr:
    end = text.find(">")
    if end < 0:
        raise _bad("unterminated <addr-spec>")
    inner = text[1:end]
    if not inner or inner[0] in " \t" or inner[-1] in " \t":
        raise _bad("whitespace inside <addr-spec>")
    uri = parse_uri(inner)
    rest = text[end + 1 :].lstrip(" \t")
    if not rest:
        return NameAddr(uri=uri, display_name=display)
    if rest[0] != ";":
        raise _bad("garbage after <addr-spec>")
    return NameAddr(uri=uri, display_name=display, params=parse_header_params(rest[1:]))


@lru_cache(maxsize=4096)
def parse_name_addr(value: str) -> NameAddr:
    """Parse ``( name-addr / addr-spec ) *( SEMI generic-param )``.

    In the addr-spec form everything after the first ``;`` is a header parameter (RFC 3261
    §20.10), and a URI containing ``,`` ``?`` or whitespace must have been bracketed (RFC 4475
    §3.1.2.13 ``regbadct``). A token display name needs no LWS before ``<`` (§3.1.1.6).
    """
    text = value.strip(" \t")
    if not text:
        raise _bad("empty address")
    simple = _SIMPLE_NAME_ADDR_RE.fullmatch(text)
    if simple is not None:  # the common shape, same result as _after_laquot
        uri_text, param_text = simple.groups()
        params = Params(_simple_params(param_text)) if param_text else EMPTY_PARAMS
        return NameAddr(uri=parse_uri(uri_text), params=params)
    if text[0] == '"':
        match = QUOTED_RE.match(text)
        if match is None:
            raise _bad("unterminated or invalid quoted display-name")
        rest = text[match.end() :].lstrip(" \t")
        if not rest.startswith("<"):
            raise _bad("quoted display-name not followed by <addr-spec>")
        return _after_laquot(rest, unquote(match.group(1)))
    lt = text.find("<")
    if lt >= 0:
        display = text[:lt].rstrip(" \t")
        if display and DISPLAY_TOKENS_RE.fullmatch(display) is None:
            raise _bad("display-name is neither tokens nor a quoted-string")
        return _after_laquot(text[lt:], display or None)
    uri_text, semi, param_text = text.partition(";")
    uri_text = uri_text.rstrip(" \t")
    for forbidden in " \t,?":
        if forbidden in uri_text:
            raise _bad("addr-spec with ',', '?' or whitespace must be enclosed in <>")
    uri = parse_uri(uri_text)
    params = parse_header_params(param_text) if semi else EMPTY_PARAMS
    return NameAddr(uri=uri, params=params)


ContactValue = NameAddr | Literal["*"]


def parse_contact_list(value: str) -> list[ContactValue]:
    """Parse one Contact header value: ``*`` or a comma-separated list of addresses."""
    if value.strip(" \t") == STAR:
        return [STAR]
    parts = split_list(value, strict=True) if "," in value else [value]
    result: list[ContactValue] = []
    for part in parts:
        if part == STAR:
            raise _bad("Contact '*' must stand alone")
        result.append(parse_name_addr(part))
    return result
