"""Bytes → :class:`Request` / :class:`Response`, for datagrams; shared head parsing for streams.

The common path does no per-byte Python work: the head is found with ``bytes.find``, decoded
once, split on CRLF and each field is ``partition``-ed on ``:``. Structured values are checked
with linear patterns from :mod:`.abnf` and :mod:`.uri`.

Policy (see ``docs/runtime/sip-parser.md`` for the reasoning):

* Leading CRLFs are skipped (RFC 3261 §7.5). An empty/CRLF-only datagram is dropped (keep-alive).
* Input whose first line is neither ``SIP/...`` (a response) nor ``... SIP/x.y`` (a request) is
  not SIP: dropped (``status=None``). Every error in a response is a drop as well.
* Request errors carry 400, except: unsupported SIP version → 505; well-formed Request-URI of an
  unsupported scheme → 416; size limits → 513/413 (:mod:`.limits`).
* Datagram framing (RFC 3261 §18.3): the body is exactly Content-Length bytes; extra bytes are
  ignored, too few is 400; no Content-Length means "to the end of the datagram".
"""

from __future__ import annotations

import re
from enum import Enum

from .abnf import (
    CTL_RE,
    DATE_RE,
    DIGITS_RE,
    QUOTED_RE,
    REASON_PHRASES,
    SINGLETON_HEADERS,
    TOKEN_RE,
    VERSION_RE,
    canonical_name,
    header_key,
    is_token,
)
from .errors import SIPProtocolError
from .headers import (
    MAX_CSEQ,
    parse_call_id,
    parse_contact_list,
    parse_cseq,
    parse_max_forwards,
    parse_name_addr,
    parse_via_list,
)
from .limits import DEFAULT_LIMITS, STATUS_BODY_TOO_LARGE, STATUS_MESSAGE_TOO_LARGE, Limits
from .message import Headers, Message, Request, Response, build_index, new_tag
from .uri import parse_request_uri

__all__ = [
    "MessageKind",
    "classify_start_line",
    "parse_datagram",
    "parse_head",
    "stateless_error_response",
]

_REQUIRED = ("via", "from", "to", "call-id", "cseq")
_REQUIRED_KEYS = frozenset(_REQUIRED)
_TAG_RE = re.compile(r";[ \t]*tag[ \t]*=", re.IGNORECASE)


class MessageKind(Enum):
    REQUEST = "request"
    RESPONSE = "response"


def classify_start_line(line: bytes) -> MessageKind | None:
    """Decide from the first line whether input is a request, a response, or not SIP at all."""
    if line[:4].upper() == b"SIP/":
        return MessageKind.RESPONSE
    stripped = line.rstrip(b" \t")
    space = stripped.rfind(b" ")
    if space > 0 and stripped[space + 1 : space + 5].upper() == b"SIP/":
        return MessageKind.REQUEST
    return None


def _too_large(what: str) -> SIPProtocolError:
    return SIPProtocolError(STATUS_MESSAGE_TOO_LARGE, f"{what} exceeds the configured limit")


def _ctl_outside_quoted_pair(value: str) -> bool:
    """``True`` if *value* has a control character that is not escaped inside a quoted-string."""
    position = 0
    length = len(value)
    while position < length:
        char = value[position]
        if char == '"':
            match = QUOTED_RE.match(value, position)
            if match is None:
                return True
            position = match.end()
            continue
        if CTL_RE.match(char):
            return True
        position += 1
    return False


# Deleting every byte that is neither a control character nor CR/LF leaves, for a clean head,
# exactly one CRLF per line break: one C-speed pass checks line structure and control chars.
_NOT_CTL = bytes(b for b in range(256) if b == 0x09 or 0x20 <= b <= 0x7E or b >= 0x80)
#: Header names as written (before the colon) already checked → the name without trailing
#: SP/HT, one shared string object per spelling (every message holds its header names).
_NAME_OK: dict[str, str] = {}
_NAME_OK_MAX = 4096


def _check_name(name: str, colon: str) -> str:
    if not colon:
        raise SIPProtocolError(400, "header line without a colon")
    stripped = name.rstrip(" \t")
    if TOKEN_RE.fullmatch(stripped) is None:
        raise SIPProtocolError(400, "invalid header name")
    if len(_NAME_OK) < _NAME_OK_MAX:
        _NAME_OK[name] = stripped
    return stripped


def parse_head(raw: bytes, limits: Limits) -> tuple[str, list[tuple[str, str]]]:
    """Split a head (start line + header lines, without the final CRLFCRLF) into fields.

    Returns the decoded start line and the header fields with continuation lines unfolded (each
    ``CRLF 1*WSP`` becomes one SP). Enforces UTF-8, CRLF-only line structure, token header
    names, no raw control characters (except escaped inside a quoted-string), and the field
    count and field length limits.
    """
    leftover = raw.translate(None, _NOT_CTL)
    try:
        head = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SIPProtocolError(400, "message head is not valid UTF-8") from None
    lines = head.split("\r\n")
    separators = len(lines) - 1
    ctl_seen = False
    if len(leftover) != 2 * separators or leftover.count(b"\r\n") != separators:
        if head.count("\r") != separators or head.count("\n") != separators:
            raise SIPProtocolError(400, "bare CR or LF in the message head")
        ctl_seen = True
    start_line = lines[0]
    if len(start_line) > limits.max_header_line_bytes:
        raise _too_large("start line")
    if separators > limits.max_headers and sum(1 for ln in lines if ln[:1] not in " \t") > (
        limits.max_headers + 1
    ):
        raise _too_large("number of header fields")
    if "\r\n " in head or "\r\n\t" in head:
        fields: list[tuple[str, str]] = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t"):
                if not fields:
                    raise SIPProtocolError(400, "continuation line before the first header")
                name, value = fields[-1]
                more = line.strip(" \t")
                if more:
                    fields[-1] = (name, f"{value} {more}" if value else more)
                continue
            name, colon, value = line.partition(":")
            known = _NAME_OK.get(name)
            fields.append((known or _check_name(name, colon), value.strip(" \t")))
    else:
        names = _NAME_OK
        parts = [line.partition(":") for line in lines[1:]]
        fields = [
            (names.get(name) or _check_name(name, colon), value.strip(" \t"))
            for name, colon, value in parts
        ]
    if len(fields) > limits.max_headers:
        raise _too_large("number of header fields")
    if len(head) > limits.max_header_line_bytes:
        for name, value in fields:
            if len(name) + len(value) + 2 > limits.max_header_line_bytes:
                raise _too_large("header field")
    if ctl_seen:
        if CTL_RE.search(start_line) is not None:
            raise SIPProtocolError(400, "control character in the start line")
        for _, value in fields:
            if CTL_RE.search(value) is not None and _ctl_outside_quoted_pair(value):
                raise SIPProtocolError(400, "control character in a header field")
    return start_line, fields


def content_length_of(
    fields: list[tuple[str, str]], index: dict[str, list[int]] | None = None
) -> int | None:
    """The single Content-Length value, ``None`` when absent.

    A negative, non-numeric, duplicated (even if identical) or conflicting Content-Length is a
    400: the message cannot be framed (RFC 4475 §3.1.2.3 ``ncl``, §3.3.9 ``mcl01``).
    """
    if index is None:
        index = build_index(fields)
    positions = index.get("content-length")
    if not positions:
        return None
    if len(positions) > 1:
        raise SIPProtocolError(400, "more than one Content-Length")
    found = fields[positions[0]][1]
    if DIGITS_RE.fullmatch(found) is None:
        raise SIPProtocolError(400, "Content-Length is not a non-negative number")
    significant = found.lstrip("0") or "0"
    if len(significant) > 10 or int(significant) > MAX_CSEQ:
        raise SIPProtocolError(STATUS_BODY_TOO_LARGE, "Content-Length out of range")
    return int(significant)


def _check_version(version: str) -> None:
    if version == "SIP/2.0":  # nearly every message; the pattern handles case and zeros
        return
    match = VERSION_RE.fullmatch(version)
    if match is None:
        raise SIPProtocolError(400, "malformed SIP-Version")
    if match.group(1).lstrip("0") != "2" or match.group(2).lstrip("0") != "":
        raise SIPProtocolError(505, "SIP version not supported")


def _validate(message: Message, is_request: bool, index: dict[str, list[int]]) -> None:
    """Check the headers every layer relies on and fill the message's parsed views."""
    headers = message.headers
    parsed = message._parsed
    parsed.index = index
    if not index.keys() >= _REQUIRED_KEYS:
        for key in _REQUIRED:
            if key not in index:
                raise SIPProtocolError(400, f"missing {canonical_name(key)}")
    if len(index) != len(headers):
        for key, positions in index.items():
            if len(positions) > 1 and key in SINGLETON_HEADERS:
                raise SIPProtocolError(400, f"more than one {canonical_name(key)}")

    positions = index["via"]
    if len(positions) == 1:
        parsed.via = tuple(parse_via_list(headers[positions[0]][1]))
    else:
        parsed.via = tuple(v for p in positions for v in parse_via_list(headers[p][1]))
    cseq = parse_cseq(headers[index["cseq"][0]][1])
    if is_request and isinstance(message, Request) and cseq.method != message.method:
        raise SIPProtocolError(400, "CSeq method does not match the request method")
    parsed.cseq = cseq
    parsed.call_id = parse_call_id(headers[index["call-id"][0]][1])
    parsed.from_ = parse_name_addr(headers[index["from"][0]][1])
    parsed.to = parse_name_addr(headers[index["to"][0]][1])
    found = index.get("max-forwards")
    if found:
        parsed.max_forwards = parse_max_forwards(headers[found[0]][1])
    found = index.get("contact")
    if found:
        contacts = []
        for position in found:
            contacts.extend(parse_contact_list(headers[position][1]))
        if "*" in contacts and len(contacts) > 1:
            raise SIPProtocolError(400, "Contact '*' must stand alone")
        parsed.contact = tuple(contacts)
    else:
        parsed.contact = ()
    found = index.get("date")
    if found and DATE_RE.fullmatch(headers[found[0]][1]) is None:
        raise SIPProtocolError(400, "Date is not an RFC 1123 date in GMT")
    parsed.content_length = len(message.body)


def build_message(
    kind: MessageKind,
    start_line: str,
    fields: list[tuple[str, str]],
    body: bytes,
    index: dict[str, list[int]] | None = None,
) -> Message:
    """Validate a split head plus its body and return the message.

    *index* is ``build_index(fields)`` when the caller already has it. Errors in a response are
    raised as drops (``status=None``).
    """
    headers: Headers = tuple(fields)
    if index is None:
        index = build_index(headers)
    if kind is MessageKind.RESPONSE:
        try:
            response = _parse_status_line(start_line, headers, body)
            _validate(response, False, index)
        except SIPProtocolError as error:
            raise error.dropped() from None
        return response
    parts = start_line.split(" ")
    if len(parts) != 3:
        raise SIPProtocolError(400, "Request-Line is not 'Method SP Request-URI SP SIP-Version'")
    method, uri_text, version = parts
    if not is_token(method):
        raise SIPProtocolError(400, "invalid method")
    _check_version(version)
    request = Request(method=method, uri=parse_request_uri(uri_text), headers=headers, body=body)
    _validate(request, True, index)
    return request


def _parse_status_line(line: str, headers: Headers, body: bytes) -> Response:
    parts = line.split(" ", 2)
    if len(parts) != 3:
        raise SIPProtocolError(None, "malformed Status-Line")
    version, code, reason = parts
    _check_version(version)
    if len(code) != 3 or DIGITS_RE.fullmatch(code) is None or not 100 <= int(code) <= 699:
        raise SIPProtocolError(None, "Status-Code is not 100-699")
    if CTL_RE.search(reason) is not None:
        raise SIPProtocolError(None, "control character in Reason-Phrase")
    return Response(status=int(code), reason=reason, headers=headers, body=body)


def _skip_crlf(data: bytes) -> int:
    start = 0
    while data.startswith(b"\r\n", start):
        start += 2
    return start


def parse_datagram(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Message:
    """Parse one SIP message received as a datagram (UDP, or any message-oriented transport).

    :raises SIPProtocolError: the message is malformed or over a limit; ``status`` is what to
        answer (``None``: drop silently).
    """
    start = _skip_crlf(data)
    if start >= len(data):
        raise SIPProtocolError(None, "empty or keep-alive datagram")
    line_end = data.find(b"\r\n", start)
    kind = classify_start_line(data[start : line_end if line_end >= 0 else len(data)])
    if kind is None:
        raise SIPProtocolError(None, "not a SIP message")
    try:
        if len(data) > limits.max_message_bytes:
            raise _too_large("message")
        head_end = data.find(b"\r\n\r\n", start)
        if head_end < 0:
            raise SIPProtocolError(400, "header section is not terminated by an empty line")
        start_line, fields = parse_head(data[start:head_end], limits)
        index = build_index(fields)
        rest = data[head_end + 4 :]
        length = content_length_of(fields, index)
        if length is None:
            body = rest
        elif length > limits.max_body_bytes:
            raise SIPProtocolError(STATUS_BODY_TOO_LARGE, "Content-Length exceeds the body limit")
        elif len(rest) < length:
            raise SIPProtocolError(400, "body shorter than Content-Length")
        else:
            body = rest[:length]
        if len(body) > limits.max_body_bytes:
            raise SIPProtocolError(STATUS_BODY_TOO_LARGE, "body exceeds the configured limit")
    except SIPProtocolError as error:
        if kind is MessageKind.RESPONSE:
            raise error.dropped() from None
        raise
    return build_message(kind, start_line, fields, body, index)


_ERROR_COPY = {"via": "Via", "from": "From", "to": "To", "call-id": "Call-ID", "cseq": "CSeq"}
_MAX_COPIED_FIELDS = 32


def stateless_error_response(
    data: bytes, error: SIPProtocolError, *, to_tag: str | None = None
) -> bytes | None:
    """Best-effort wire response to a request that failed to parse, or ``None``.

    Copies whatever Via, From, To, Call-ID and CSeq lines can be read from *data* (RFC 3261
    §8.2.6; RFC 4475 §3.3.1 notes a stateless 400 may only manage Via and CSeq) and adds a To
    tag. Returns ``None`` when the error is a drop or no Via can be read (nowhere to send it).
    Copied values must be valid UTF-8 without control characters; anything else is left out.
    """
    if error.status is None:
        return None
    start = _skip_crlf(data)
    head_end = data.find(b"\r\n\r\n", start)
    head = data[start : head_end if head_end >= 0 else len(data)]
    fields: list[tuple[str, str]] = []
    for raw in head.split(b"\r\n")[1:]:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if line[:1] in (" ", "\t"):
            if fields:
                name, value = fields[-1]
                more = line.strip(" \t")
                fields[-1] = (name, f"{value} {more}".strip())
            continue
        name, colon, value = line.partition(":")
        key = header_key(name.rstrip(" \t")) if colon else ""
        if key in _ERROR_COPY:
            fields.append((_ERROR_COPY[key], value.strip(" \t")))
        else:
            fields.append(("", ""))
    usable = [
        (name, value) for name, value in fields if name and value and CTL_RE.search(value) is None
    ]
    copied = [f for f in usable if f[0] == "Via"][:_MAX_COPIED_FIELDS]
    if not copied:
        return None
    for wanted in ("From", "To", "Call-ID", "CSeq"):
        copied.extend([f for f in usable if f[0] == wanted][:1])
    tag = to_tag if to_tag is not None else new_tag()
    lines = [f"SIP/2.0 {error.status} {REASON_PHRASES.get(error.status, 'Error')}"]
    for name, value in copied:
        if name == "To" and _TAG_RE.search(value) is None:
            value = f"{value};tag={tag}"
        lines.append(f"{name}: {value}")
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
