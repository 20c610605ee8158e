"""One leg of a call: the dialog state (RFC 3261 §12) the B2BUA keeps towards one phone, and
the requests it builds inside that dialog.

Topology hiding: nothing of one leg's addressing (Via, Contact, Record-Route, Call-ID, tags)
appears on the other; each leg carries our own Via, Contact and identifiers.
"""

from __future__ import annotations

import secrets
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from enum import Enum

from pbx_runtime.sip import (
    NameAddr,
    Request,
    Response,
    SIPProtocolError,
    SipUri,
    new_branch,
    parse_uri,
)
from pbx_runtime.sip.timers import is_reliable_transport

__all__ = ["BODY_HEADERS", "Hop", "Leg", "Side", "body_headers", "new_call_id"]

#: Headers that describe a body; they travel with it from one leg to the other. Nothing else
#: does (no Supported/Require: we implement no extensions, so none may be negotiated through us).
BODY_HEADERS = ("Content-Type", "Content-Disposition", "Content-Encoding", "Content-Language")


def body_headers(message: Request | Response) -> list[tuple[str, str]]:
    if not message.body:
        return []
    out: list[tuple[str, str]] = []
    for name in BODY_HEADERS:
        value = message.get(name)
        if value is not None:
            out.append((name, value))
    return out


def new_call_id() -> str:
    return secrets.token_hex(16)


class Side(Enum):
    __hash__ = object.__hash__  # members are singletons: identity hash, in C

    CALLER = "caller"
    CALLEE = "callee"

    @property
    def other(self) -> Side:
        return Side.CALLEE if self is Side.CALLER else Side.CALLER


@dataclass(frozen=True, slots=True)
class Hop:
    """Where a leg's requests go and how we present ourselves there.

    :param destination: opaque address for the transport (the core's ``Peer``).
    :param transport: Via transport token (``UDP``, ``TCP``, ``TLS``).
    :param local: our advertised ``host:port`` on that transport (Via sent-by, Contact).
    """

    destination: Hashable
    transport: str
    local: str

    @property
    def reliable(self) -> bool:
        return is_reliable_transport(self.transport)

    def via(self) -> str:
        return f"SIP/2.0/{self.transport} {self.local};branch={new_branch()};rport"

    def contact(self) -> str:
        suffix = "" if self.transport == "UDP" else f";transport={self.transport.lower()}"
        return f"<sip:{self.local}{suffix}>"


@dataclass(slots=True)
class Leg:
    """Dialog state towards one phone (RFC 3261 §12.1)."""

    side: Side
    hop: Hop
    call_id: str
    local: NameAddr  # our address on this leg, with our tag
    remote: NameAddr  # the phone's address (its tag once known)
    remote_target: SipUri | None  # Request-URI of in-dialog requests (the phone's Contact)
    route_set: tuple[str, ...] = ()
    local_cseq: int = 0
    remote_cseq: int | None = None
    #: Our INVITE transaction on this leg that awaits a final (one at a time, RFC 3261 §14.1).
    invite_pending: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def local_tag(self) -> str:
        return self.local.tag or ""

    @property
    def remote_tag(self) -> str | None:
        return self.remote.tag

    def learn_from_response(self, response: Response) -> None:
        """Adopt the callee's tag, Contact and Record-Route from a 1xx/2xx (§12.1.2)."""
        tag = response.to.tag
        if tag is not None:
            self.remote = response.to
        self._learn_target(response)
        if response.has("record-route"):
            self.route_set = tuple(reversed(response.get_all("record-route")))

    def learn_from_request(self, request: Request) -> None:
        """Track the remote CSeq and a target refresh (re-INVITE/UPDATE Contact, §12.2.2)."""
        self.remote_cseq = request.cseq.number
        if request.method in ("INVITE", "UPDATE"):
            self._learn_target(request)

    def _learn_target(self, message: Request | Response) -> None:
        try:
            contacts = message.contact
        except SIPProtocolError:
            return
        if contacts and isinstance(contacts[0], NameAddr) and isinstance(contacts[0].uri, SipUri):
            self.remote_target = contacts[0].uri

    def request(
        self,
        method: str,
        *,
        body: bytes = b"",
        headers: Iterable[tuple[str, str]] = (),
        cseq: int | None = None,
    ) -> Request:
        """A request inside this dialog (§12.2.1.1); CSeq is the next local number unless
        *cseq* is given (ACK for a 2xx reuses the INVITE's)."""
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        target = self.remote_target if self.remote_target is not None else self.remote.uri
        out: list[tuple[str, str]] = [("Via", self.hop.via()), ("Max-Forwards", "70")]
        out.extend(("Route", route) for route in self.route_set)
        out += [
            ("From", str(self.local)),
            ("To", str(self.remote)),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
        ]
        if method in ("INVITE", "UPDATE"):
            out.append(("Contact", self.hop.contact()))
        out.extend(headers)
        return Request(method=method, uri=target, headers=tuple(out), body=body)

    @staticmethod
    def parse_target(text: str) -> SipUri | None:
        try:
            uri = parse_uri(text)
        except SIPProtocolError:
            return None
        return uri if isinstance(uri, SipUri) else None
