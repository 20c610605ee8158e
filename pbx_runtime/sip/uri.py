"""SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966), plus opaque absolute URIs.

Components are kept *as written* (still %-escaped), so ``str(parse_uri(text)) == text`` for any
text this module accepts, apart from the scheme, which is lower-cased. Use :func:`unescape` or the
``*_unescaped`` properties to read decoded values. Parsing is cached: phones re-send the same
URIs over and over, and every result is immutable.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import unquote_to_bytes

from .errors import SIPProtocolError
from .params import EMPTY_PARAMS, Params

__all__ = [
    "URI",
    "AbsoluteUri",
    "Params",
    "SipUri",
    "TelUri",
    "is_ipv4",
    "is_ipv6",
    "parse_host",
    "parse_hostport",
    "parse_request_uri",
    "parse_uri",
    "unescape",
]

_UNRESERVED = r"A-Za-z0-9\-_.!~*'()"
_ESC = r"%[0-9A-Fa-f]{2}"
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
# user = 1*( unreserved / escaped / user-unreserved ); user-unreserved = & = + $ , ; ? /
_USER_RE = re.compile(f"(?:[{_UNRESERVED}&=+$,;?/]|{_ESC})+")
# password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
_PASSWORD_RE = re.compile(f"(?:[{_UNRESERVED}&=+$,]|{_ESC})*")
# paramchar = param-unreserved / unreserved / escaped ; param-unreserved = [ ] / : & + $
_PARAMCHARS_RE = re.compile(f"(?:[{_UNRESERVED}\\[\\]/:&+$]|{_ESC})+")
# hname/hvalue chars: hnv-unreserved / unreserved / escaped ; hnv-unreserved = [ ] / ? : + $
_HNAME_RE = re.compile(f"(?:[{_UNRESERVED}\\[\\]/?:+$]|{_ESC})+")
_HVALUE_RE = re.compile(f"(?:[{_UNRESERVED}\\[\\]/?:+$]|{_ESC})*")
# uric = reserved / unreserved / escaped   (absoluteURI body, RFC 2396)
_URIC_RE = re.compile(f"(?:[{_UNRESERVED};/?:@&=+$,]|{_ESC})+")
_HOSTNAME_CHARS_RE = re.compile(r"[A-Za-z0-9.\-]+")
_IPV4_RE = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")
_IPV6_CHARS_RE = re.compile(r"[0-9A-Fa-f:.]+")
_PORT_RE = re.compile(r"[0-9]{1,5}")
# RFC 3966
_TEL_GLOBAL_RE = re.compile(r"\+[0-9\-.()]+")
_TEL_LOCAL_RE = re.compile(r"[0-9A-Fa-f*#\-.()]+")
_TEL_PNAME_RE = re.compile(r"[A-Za-z0-9\-]+")
_DIGIT_RE = re.compile(r"[0-9]")
_TEL_DIGIT_RE = re.compile(r"[0-9A-Fa-f*#]")


def _bad(reason: str) -> SIPProtocolError:
    return SIPProtocolError(400, reason)




def unescape(text: str) -> str:
    """Decode ``%HH`` escapes. Invalid UTF-8 survives as surrogate escapes, so nothing is lost."""
    if "%" not in text:
        return text
    return unquote_to_bytes(text).decode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True, kw_only=True)
class SipUri:
    """``sip:`` / ``sips:`` URI. IPv6 hosts keep their brackets in :attr:`host`."""

    scheme: str = "sip"
    user: str | None = None
    password: str | None = None
    host: str
    port: int | None = None
    params: Params = field(default=EMPTY_PARAMS)
    headers: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        if self.params:
            out.append(self.params.render())
        if self.headers:
            out.append("?" + "&".join(f"{k}={v}" for k, v in self.headers))
        return "".join(out)

    @property
    def user_unescaped(self) -> str | None:
        """The user part with escapes decoded (``null-%00-null`` → ``"null-\\x00-null"``)."""
        return None if self.user is None else unescape(self.user)

    @property
    def host_address(self) -> str:
        """Host without IPv6 brackets, lower-cased (hostnames are case-insensitive)."""
        host = self.host
        if host.startswith("["):
            host = host[1:-1]
        return host.lower()

    @property
    def is_ipv6(self) -> bool:
        return self.host.startswith("[")

    @property
    def transport(self) -> str | None:
        """The ``transport`` URI parameter, lower-cased, if present."""
        value = self.params.get("transport")
        return None if value is None else value.lower()

    def param(self, name: str) -> str | None:
        """Unescaped value of URI parameter *name* (``None`` if absent or valueless)."""
        value = self.params.get(name)
        return None if value is None else unescape(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class TelUri:
    """``tel:`` URI (RFC 3966). :attr:`number` keeps its visual separators."""

    number: str
    params: Params = field(default=EMPTY_PARAMS)

    @property
    def scheme(self) -> str:
        return "tel"

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    @property
    def digits(self) -> str:
        """The number without visual separators (``+1-201-555`` → ``+1201555``)."""
        return "".join(ch for ch in self.number if ch not in "-.()")

    def __str__(self) -> str:
        return f"tel:{self.number}{self.params.render()}"


@dataclass(frozen=True, slots=True, kw_only=True)
class AbsoluteUri:
    """Any other scheme: kept opaque (``isbn:2983792873``, ``http://...``, ``urn:...``)."""

    scheme: str
    opaque: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.opaque}"


URI = SipUri | TelUri | AbsoluteUri


def is_ipv4(text: str) -> bool:
    """``True`` for a dotted-quad IPv4 address (each octet 0-255)."""
    return _IPV4_RE.fullmatch(text) is not None and all(int(o) <= 255 for o in text.split("."))


def _valid_hostname(text: str) -> bool:
    # hostname = *( domainlabel "." ) toplabel [ "." ]
    if _HOSTNAME_CHARS_RE.fullmatch(text) is None:
        return False
    labels = text[:-1].split(".") if text.endswith(".") else text.split(".")
    for label in labels:
        if not label or label[0] == "-" or label[-1] == "-":
            return False
    return labels[-1][0].isalpha()


def parse_host(text: str) -> str:
    """Validate a ``host`` (hostname, IPv4address or bracketed IPv6reference); return it.

    :raises SIPProtocolError: 400 if *text* is not a host. ``[2001:db8:::192.0.2.1]`` (the RFC
        3261 ABNF bug shown in RFC 5118 §4.10) is rejected: it is not an IPv6 address.
    """
    if text.startswith("["):
        inner = text[1:-1]
        if not text.endswith("]") or not is_ipv6(inner):
            raise _bad("invalid IPv6 reference")
        return text
    if is_ipv4(text) or (not _IPV4_RE.fullmatch(text) and _valid_hostname(text)):
        return text
    raise _bad("invalid host")


def is_ipv6(text: str) -> bool:
    """``True`` for an IPv6 address without brackets (no zone index)."""
    if _IPV6_CHARS_RE.fullmatch(text) is None:
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=4096)
def parse_hostport(text: str) -> tuple[str, int | None]:
    """Split and validate ``host [":" port]``."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise _bad("unterminated IPv6 reference")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise _bad("garbage after IPv6 reference")
        port_text = rest[1:] if rest else None
    else:
        host, sep, port_text_ = text.rpartition(":")
        if sep:
            port_text = port_text_
        else:
            host, port_text = text, None
    parse_host(host)
    if port_text is None:
        return host, None
    if _PORT_RE.fullmatch(port_text) is None or int(port_text) > 65535:
        raise _bad("invalid port")
    return host, int(port_text)


def _parse_uri_params(text: str) -> Params:
    items: list[tuple[str, str | None]] = []
    for piece in text.split(";"):
        name, eq, value = piece.partition("=")
        if _PARAMCHARS_RE.fullmatch(name) is None:
            raise _bad("invalid URI parameter")
        if eq:
            if _PARAMCHARS_RE.fullmatch(value) is None:
                raise _bad("invalid URI parameter value")
            items.append((name, value))
        else:
            items.append((name, None))
    return Params(items)


def _parse_uri_headers(text: str) -> tuple[tuple[str, str], ...]:
    items: list[tuple[str, str]] = []
    for piece in text.split("&"):
        name, eq, value = piece.partition("=")
        if not eq or _HNAME_RE.fullmatch(name) is None or _HVALUE_RE.fullmatch(value) is None:
            raise _bad("invalid URI header")
        items.append((name, value))
    return tuple(items)


def _parse_sip(scheme: str, rest: str) -> SipUri:
    user: str | None = None
    password: str | None = None
    at = rest.find("@")
    if at >= 0:
        userinfo, hostpart = rest[:at], rest[at + 1 :]
        user_, colon, password_ = userinfo.partition(":")
        if _USER_RE.fullmatch(user_) is None:
            raise _bad("invalid user part in SIP URI")
        user = user_
        if colon:
            if _PASSWORD_RE.fullmatch(password_) is None:
                raise _bad("invalid password in SIP URI")
            password = password_
    else:
        hostpart = rest
    hostpart, qmark, header_text = hostpart.partition("?")
    hostport, semi, param_text = hostpart.partition(";")
    host, port = parse_hostport(hostport)
    params = _parse_uri_params(param_text) if semi else EMPTY_PARAMS
    headers = _parse_uri_headers(header_text) if qmark else ()
    return SipUri(
        scheme=scheme,
        user=user,
        password=password,
        host=host,
        port=port,
        params=params,
        headers=headers,
    )


def _parse_tel(rest: str) -> TelUri:
    number, semi, param_text = rest.partition(";")
    items: list[tuple[str, str | None]] = []
    if semi:
        for piece in param_text.split(";"):
            name, eq, value = piece.partition("=")
            if _TEL_PNAME_RE.fullmatch(name) is None:
                raise _bad("invalid tel URI parameter")
            if eq and _PARAMCHARS_RE.fullmatch(value) is None:
                raise _bad("invalid tel URI parameter value")
            items.append((name, value if eq else None))
    params = Params(items)
    if number.startswith("+"):
        if _TEL_GLOBAL_RE.fullmatch(number) is None or _DIGIT_RE.search(number) is None:
            raise _bad("invalid global tel number")
    else:
        if _TEL_LOCAL_RE.fullmatch(number) is None or _TEL_DIGIT_RE.search(number) is None:
            raise _bad("invalid local tel number")
        if not params.has("phone-context"):
            raise _bad("local tel number without phone-context")
    return TelUri(number=number, params=params)


#: Entries of the :func:`parse_uri` cache: about two URIs per registered phone (its AOR and
#: its Contact), for a tenant of 10,000 phones or more. Most entries are shared with bindings.
URI_CACHE_SIZE = 32768


@lru_cache(maxsize=URI_CACHE_SIZE)
def parse_uri(text: str) -> URI:
    """Parse any URI allowed in a SIP header: SIP/SIPS, tel, or an opaque absolute URI.

    :raises SIPProtocolError: 400 if *text* is not a valid URI of its scheme.
    """
    scheme, colon, rest = text.partition(":")
    if not colon or _SCHEME_RE.fullmatch(scheme) is None:
        raise _bad("invalid URI scheme")
    lower = scheme.lower()
    if lower == "sip" or lower == "sips":
        return _parse_sip(lower, rest)
    if lower == "tel":
        return _parse_tel(rest)
    if _URIC_RE.fullmatch(rest) is None:
        raise _bad("invalid absolute URI")
    return AbsoluteUri(scheme=lower, opaque=rest)


def parse_request_uri(text: str) -> SipUri | TelUri:
    """Parse a Request-URI.

    :raises SIPProtocolError: 416 for a well-formed URI of another scheme (RFC 3261 §8.2.2.1);
        400 for a malformed URI, or for a SIP URI carrying ``?headers`` (RFC 3261 §19.1.1: not
        allowed in a Request-URI; RFC 4475 §3.1.2.11).
    """
    uri = parse_uri(text)
    if isinstance(uri, AbsoluteUri):
        raise SIPProtocolError(416, "unsupported Request-URI scheme")
    if isinstance(uri, SipUri) and uri.headers:
        raise _bad("escaped headers are not allowed in a Request-URI")
    return uri
