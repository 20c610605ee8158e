"""RFC 3261 §25 grammar pieces, as compiled patterns and small helpers.

Every pattern here is linear: alternatives inside a repetition are disjoint (``%`` never starts a
plain character class member, ``@`` never appears in ``word``), so no input can make the regex
engine backtrack quadratically. Patterns are applied with ``fullmatch`` to already-delimited
pieces; the delimiting itself is done with ``str.partition``/``split``, not with regexes.
"""

from __future__ import annotations

import re

from .errors import SIPProtocolError

__all__ = [
    "CANONICAL_NAMES",
    "COMPACT_FORMS",
    "LIST_HEADERS",
    "REASON_PHRASES",
    "canonical_name",
    "header_key",
    "is_token",
    "quote",
    "split_list",
    "unquote",
]

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN_CLASS = r"A-Za-z0-9\-.!%*_+`'~"
TOKEN_RE = re.compile(f"[{TOKEN_CLASS}]+")

# display-name = *(token LWS) / quoted-string  (the token form; LWS already unfolded to SP/HT)
DISPLAY_TOKENS_RE = re.compile(f"[{TOKEN_CLASS}]+(?:[ \\t]+[{TOKEN_CLASS}]+)*")

# quoted-string = SWS DQUOTE *(qdtext / quoted-pair) DQUOTE
# qdtext      = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII   (no raw CTLs)
# quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
QUOTED_RE = re.compile(r'"((?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\x00-\x09\x0b\x0c\x0e-\x7f])*)"')
_QUOTED_PAIR_RE = re.compile(r"\\([\x00-\x7f])")

# gen-value = token / host / quoted-string ; host adds ":" "[" "]" to the token characters
GEN_VALUE_RE = re.compile(f"[{TOKEN_CLASS}:\\[\\]]+")

# callid = word [ "@" word ]
_WORD_CLASS = TOKEN_CLASS + r"()<>:\\\"/\[\]?{}"
CALLID_RE = re.compile(f"[{_WORD_CLASS}]+(?:@[{_WORD_CLASS}]+)?")

DIGITS_RE = re.compile(r"[0-9]+")
LWS_SPLIT_RE = re.compile(r"[ \t]+")

# SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT   (ABNF literals are case-insensitive)
VERSION_RE = re.compile(r"[Ss][Ii][Pp]/([0-9]+)\.([0-9]+)")

# Control characters that may never appear raw in a header field (HT is LWS; CR/LF are checked
# separately as line structure). They may appear escaped inside a quoted-string.
CTL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

# rfc1123-date = wkday "," SP date1 SP time SP "GMT"  (RFC 3261 §25.1: only GMT is allowed)
DATE_RE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} "
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
    r"[0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
)

# RFC 3261 §7.3.3 and later registrations (RFC 3265, 3515, 3841, 3892, 4028, 4474, 4538, 8224).
COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_KNOWN_NAMES = (
    "Accept",
    "Accept-Contact",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Error-Info",
    "Event",
    "Expires",
    "From",
    "History-Info",
    "Identity",
    "In-Reply-To",
    "Max-Forwards",
    "Min-Expires",
    "Min-SE",
    "MIME-Version",
    "Organization",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Path",
    "Priority",
    "Privacy",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "RAck",
    "Reason",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Reject-Contact",
    "Replaces",
    "Reply-To",
    "Request-Disposition",
    "Require",
    "Retry-After",
    "Route",
    "RSeq",
    "Security-Client",
    "Security-Server",
    "Security-Verify",
    "Server",
    "Service-Route",
    "Session-Expires",
    "SIP-ETag",
    "SIP-If-Match",
    "Subject",
    "Subscription-State",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
)

#: lower-case key → canonical spelling, for every known header name (compact forms included)
CANONICAL_NAMES: dict[str, str] = {name.lower(): name for name in _KNOWN_NAMES}

#: Headers whose values are comma-separated lists (RFC 3261 §7.3.1). Authentication headers and
#: Date are deliberately absent: commas inside them do not separate values.
LIST_HEADERS: frozenset[str] = frozenset(
    {
        "accept",
        "accept-contact",
        "accept-encoding",
        "accept-language",
        "alert-info",
        "allow",
        "allow-events",
        "call-info",
        "contact",
        "content-encoding",
        "content-language",
        "error-info",
        "history-info",
        "in-reply-to",
        "p-asserted-identity",
        "p-preferred-identity",
        "path",
        "proxy-require",
        "reason",
        "record-route",
        "reject-contact",
        "request-disposition",
        "require",
        "route",
        "security-client",
        "security-server",
        "security-verify",
        "service-route",
        "supported",
        "unsupported",
        "via",
        "warning",
    }
)

#: Headers that may appear at most once in a message (RFC 3261 §7.3.1: only list headers repeat).
SINGLETON_HEADERS: frozenset[str] = frozenset(
    {
        "call-id",
        "content-disposition",
        "content-length",
        "content-type",
        "cseq",
        "date",
        "event",
        "expires",
        "from",
        "max-forwards",
        "mime-version",
        "min-expires",
        "min-se",
        "organization",
        "priority",
        "rack",
        "refer-to",
        "referred-by",
        "replaces",
        "reply-to",
        "retry-after",
        "rseq",
        "server",
        "session-expires",
        "sip-etag",
        "sip-if-match",
        "subject",
        "subscription-state",
        "timestamp",
        "to",
        "user-agent",
    }
)


_KEY_CACHE: dict[str, str] = {}
_KEY_CACHE_MAX = 4096


def header_key(name: str) -> str:
    """Lookup key for a header name: lower-case, compact forms expanded (``"v"`` → ``"via"``)."""
    key = _KEY_CACHE.get(name)
    if key is None:
        lower = name.lower()
        compact = COMPACT_FORMS.get(lower)
        key = compact.lower() if compact is not None else lower
        if len(_KEY_CACHE) < _KEY_CACHE_MAX:
            _KEY_CACHE[name] = key
    return key


def canonical_name(name: str) -> str:
    """Canonical spelling of a header name (``"CALL-id"``/``"i"`` → ``"Call-ID"``).

    Unknown names are returned unchanged.
    """
    return CANONICAL_NAMES.get(header_key(name), name)


def is_token(text: str) -> bool:
    """``True`` if *text* is a non-empty RFC 3261 ``token``."""
    return TOKEN_RE.fullmatch(text) is not None


def unquote(inner: str) -> str:
    """Resolve quoted-pairs in the inside of a quoted-string (without the quotes)."""
    if "\\" not in inner:
        return inner
    return _QUOTED_PAIR_RE.sub(r"\1", inner)


def quote(text: str) -> str:
    """Render *text* as a quoted-string, escaping ``"`` and ``\\``.

    :raises ValueError: *text* contains CR or LF, which no quoted-string can carry.
    """
    if "\r" in text or "\n" in text:
        raise ValueError("a quoted-string cannot contain CR or LF")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# A list element is made of quoted-strings, <...> spans and plain runs; "," separates elements.
# The last alternative catches an unterminated quote or bracket (a lone '"' or '<').
_LIST_PIECE_RE = re.compile(r'"(?:[^"\\]|\\.)*"|<[^>]*>|[^,"<]+|,|.', re.S)


def split_list(value: str, *, strict: bool = False) -> list[str]:
    """Split a comma-separated header value, ignoring commas inside quotes and ``<>``.

    Elements are stripped of surrounding SP/HT. With ``strict=True`` an empty element or an
    unbalanced ``"``/``<`` raises :class:`SIPProtocolError` (400); otherwise empty elements are
    skipped and everything from an unbalanced ``"``/``<`` on is one last element.
    """
    if '"' not in value and "<" not in value:
        parts = [p.strip(" \t") for p in value.split(",")]
    else:
        parts = []
        current: list[str] = []
        for match in _LIST_PIECE_RE.finditer(value):
            piece = match.group()
            if piece == ",":
                parts.append("".join(current).strip(" \t"))
                current = []
                continue
            if piece in ('"', "<"):
                # Unbalanced: no closing quote/bracket exists anywhere after this point, so the
                # rest is one element. Stopping here keeps the scan linear (no rescans).
                if strict:
                    raise SIPProtocolError(400, "unbalanced quote or angle bracket in header list")
                current.append(value[match.start() :])
                break
            current.append(piece)
        parts.append("".join(current).strip(" \t"))
    if strict:
        if any(not p for p in parts):
            raise SIPProtocolError(400, "empty element in header list")
        return parts
    return [p for p in parts if p]


#: Reason phrases, RFC 3261 §21 plus the registrations a PBX meets in practice.
REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    428: "Use Identity Header",
    429: "Provide Referrer Identity",
    433: "Anonymity Disallowed",
    436: "Bad Identity Info",
    437: "Unsupported Credential",
    438: "Invalid Identity Header",
    439: "First Hop Lacks Outbound Support",
    440: "Max-Breadth Exceeded",
    469: "Bad Info Package",
    470: "Consent Needed",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    555: "Push Notification Service Not Supported",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
    607: "Unwanted",
    608: "Rejected",
}
