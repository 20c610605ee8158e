"""Sans-I/O phones for core and call-control tests: wire bytes in and out of a Core."""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from pbx_runtime.config import parse_config
from pbx_runtime.core import Core, ListenerInfo, Output, Peer, Send
from pbx_runtime.sip import Request, Response, parse_datagram

DOMAIN = "acme.example.com"
PASSWORDS = {"1001": "alpha-pass", "1002": "bravo-pass", "1003": "charlie-pass"}
T0 = 1_700_000_000.0
PBX_UDP = "192.0.2.1:5060"
SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"

_counter = itertools.count(1)
_PARAM_RE = re.compile(r'(\w+)=(?:"([^"]*)"|([^,\s]+))')


def ha1(user: str, password: str, algorithm: str) -> str:
    name = {"MD5": "md5", "SHA-256": "sha256"}[algorithm]
    return hashlib.new(name, f"{user}:{DOMAIN}:{password}".encode()).hexdigest()


def config_dict(**limits: Any) -> dict[str, Any]:
    return {
        "tenant": "acme",
        "domain": DOMAIN,
        "security": {"allow_insecure_transports": True},
        "listeners": [
            {"transport": "udp", "address": "192.0.2.1", "port": 5060},
            {"transport": "tcp", "address": "192.0.2.1", "port": 5060},
        ],
        "users": {
            u: {"ha1_md5": ha1(u, p, "MD5"), "ha1_sha256": ha1(u, p, "SHA-256")}
            for u, p in PASSWORDS.items()
        },
        "abuse": {"rate": 10_000, "burst": 10_000},
        "limits": limits,
    }


def make_core(**limits: Any) -> Core:
    config = parse_config(config_dict(**limits))
    listeners = [ListenerInfo("UDP", PBX_UDP), ListenerInfo("TCP", "192.0.2.1:5060")]
    return Core(config, listeners, secret=b"k" * 32)


def parse_challenge(value: str) -> dict[str, str]:
    return {m[0].lower(): m[1] or m[2] for m in _PARAM_RE.findall(value.partition(" ")[2])}


def digest(algorithm: str, user: str, password: str, method: str, uri: str, nonce: str,
           nc: str, cnonce: str) -> str:  # fmt: skip
    name = {"MD5": "md5", "SHA-256": "sha256"}[algorithm]

    def h(text: str) -> str:
        return hashlib.new(name, text.encode()).hexdigest()

    a1 = h(f"{user}:{DOMAIN}:{password}")
    return h(f"{a1}:{nonce}:{nc}:{cnonce}:auth:{h(f'{method}:{uri}')}")


@dataclass
class Net:
    """Collects what the core sends, per destination peer."""

    core: Core
    now: float = T0
    inbox: dict[Peer, list[Request | Response]] = field(default_factory=dict)
    closed: list[Peer] = field(default_factory=list)

    def deliver(self, outputs: list[Output]) -> None:
        for output in outputs:
            if isinstance(output, Send):
                if output.data.strip():
                    self.inbox.setdefault(output.peer, []).append(parse_datagram(output.data))
            else:
                self.closed.append(output.peer)

    def send(self, data: bytes, peer: Peer) -> None:
        if peer.is_stream:
            self.deliver(self.core.stream_received(data, peer, self.now))
        else:
            self.deliver(self.core.datagram_received(data, peer, self.now))

    def tick(self, seconds: float) -> None:
        end = self.now + seconds
        while True:
            deadline = self.core.next_deadline()
            if deadline is None or deadline > end:
                break
            self.now = max(self.now, deadline)
            self.deliver(self.core.handle_timers(self.now))
        self.now = end

    def take(self, peer: Peer) -> list[Request | Response]:
        return self.inbox.pop(peer, [])


@dataclass
class Phone:
    net: Net
    user: str
    host: str
    port: int = 5060
    transport: str = "UDP"
    conn: int = 0
    password: str | None = None
    algorithm: str = "SHA-256"
    cseq: int = 0
    nonce: dict[str, str] = field(default_factory=dict)
    nc: int = 0

    def __post_init__(self) -> None:
        if self.password is None:
            self.password = PASSWORDS.get(self.user, "nope")
        listener = 0 if self.transport == "UDP" else 1
        self.peer = Peer(self.transport, self.host, self.port, listener, self.conn)
        if self.peer.is_stream:
            self.net.core.connection_opened(self.peer)

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

    def received(self) -> list[Request | Response]:
        return self.net.take(self.peer)

    def last(self) -> Request | Response:
        messages = self.received()
        assert messages, f"{self.user} received nothing"
        return messages[-1]

    # -- building ----------------------------------------------------------------------------

    def build(self, method: str, uri: str, *, to: str, call_id: str, cseq: int,
              from_tag: str, to_tag: str | None = None, branch: str | None = None,
              headers: list[tuple[str, str]] = (), body: bytes = b"") -> bytes:  # fmt: skip
        transport = self.transport
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/{transport} {self.addr};branch={branch or f'z9hG4bK{next(_counter)}'}",
            "Max-Forwards: 70",
            f"From: <sip:{self.user}@{DOMAIN}>;tag={from_tag}",
            f"To: <{to}>" + (f";tag={to_tag}" if to_tag else ""),
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:{self.user}@{self.addr}"
            + ("" if transport == "UDP" else f";transport={transport.lower()}")
            + ">",
        ]
        lines += [f"{n}: {v}" for n, v in headers]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def authorization(self, header: str, method: str, uri: str) -> tuple[str, str]:
        self.nc += 1
        nc = f"{self.nc:08x}"
        nonce = self.nonce[self.algorithm]
        response = digest(self.algorithm, self.user, self.password or "", method, uri, nonce,
                          nc, "abc")  # fmt: skip
        value = (
            f'Digest username="{self.user}", realm="{DOMAIN}", nonce="{nonce}", uri="{uri}", '
            f'response="{response}", algorithm={self.algorithm}, cnonce="abc", qop=auth, nc={nc}'
        )
        return header, value

    def learn(self, response: Request | Response) -> None:
        assert isinstance(response, Response) and response.status in (401, 407), response
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        for value in response.get_all(header):
            params = parse_challenge(value)
            self.nonce[params["algorithm"]] = params["nonce"]
        self.nc = 0

    # -- flows -------------------------------------------------------------------------------

    def register(self, expires: int = 3600) -> Response:
        call_id = f"reg-{self.user}-{self.host}"
        uri = f"sip:{DOMAIN}"
        to = f"sip:{self.user}@{DOMAIN}"
        self.cseq += 1
        data = self.build("REGISTER", uri, to=to, call_id=call_id, cseq=self.cseq,
                          from_tag="r1", headers=[("Expires", str(expires))])  # fmt: skip
        self.net.send(data, self.peer)
        self.learn(self.last())
        self.cseq += 1
        auth = self.authorization("Authorization", "REGISTER", uri)
        data = self.build("REGISTER", uri, to=to, call_id=call_id, cseq=self.cseq,
                          from_tag="r1", headers=[("Expires", str(expires)), auth])  # fmt: skip
        self.net.send(data, self.peer)
        final = self.last()
        assert isinstance(final, Response)
        return final

    def invite(self, target: str, *, call_id: str | None = None, body: bytes = SDP,
               authenticate: bool = True) -> Call:  # fmt: skip
        call = Call(self, target, call_id or f"call-{next(_counter)}")
        call.send_invite(body)
        if authenticate:
            reply = [m for m in self.received() if isinstance(m, Response) and m.status >= 200]
            assert reply and reply[-1].status == 407, reply
            self.learn(reply[-1])
            call.ack_failure(reply[-1])
            call.send_invite(body, auth=True)
        return call


@dataclass
class Call:
    phone: Phone
    target: str
    call_id: str
    cseq: int = 0
    branch: str = ""
    remote_tag: str | None = None

    @property
    def uri(self) -> str:
        return f"sip:{self.target}@{DOMAIN}"

    def send_invite(self, body: bytes, auth: bool = False) -> None:
        self.cseq += 1
        self.branch = f"z9hG4bKinv{next(_counter)}"
        headers = (
            [self.phone.authorization("Proxy-Authorization", "INVITE", self.uri)] if auth else []
        )
        data = self.phone.build("INVITE", self.uri, to=self.uri, call_id=self.call_id,
                                cseq=self.cseq, from_tag="caller", branch=self.branch,
                                headers=headers, body=body)  # fmt: skip
        self.phone.net.send(data, self.phone.peer)

    def ack_failure(self, response: Response) -> None:
        data = self.phone.build("ACK", self.uri, to=self.uri, call_id=self.call_id,
                                cseq=self.cseq, from_tag="caller", branch=self.branch,
                                to_tag=response.to.tag)  # fmt: skip
        self.phone.net.send(data, self.phone.peer)

    def ack(self, response: Response, body: bytes = b"") -> None:
        self.remote_tag = response.to.tag
        self.phone.net.send(self.in_dialog("ACK", cseq=self.cseq, body=body), self.phone.peer)

    def cancel(self) -> None:
        data = self.phone.build("CANCEL", self.uri, to=self.uri, call_id=self.call_id,
                                cseq=self.cseq, from_tag="caller", branch=self.branch)  # fmt: skip
        self.phone.net.send(data, self.phone.peer)

    def in_dialog(self, method: str, *, cseq: int | None = None, body: bytes = b"") -> bytes:
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        return self.phone.build(method, self.uri, to=self.uri, call_id=self.call_id, cseq=cseq,
                                from_tag="caller", to_tag=self.remote_tag, body=body)  # fmt: skip

    def bye(self) -> None:
        self.phone.net.send(self.in_dialog("BYE"), self.phone.peer)


def answer(phone: Phone, request: Request, status: int, *, tag: str = "callee",
           body: bytes = b"", contact: bool = True) -> bytes:  # fmt: skip
    """A phone's response to *request* (copies Via/From/To/Call-ID/CSeq)."""
    lines = [f"SIP/2.0 {status} Whatever"]
    for name in ("Via", "From"):
        lines += [f"{name}: {v}" for v in request.get_all(name)]
    to = request.get("To") or ""
    if status > 100 and ";tag=" not in to:
        to += f";tag={tag}"
    lines += [f"To: {to}", f"Call-ID: {request.call_id}", f"CSeq: {request.get('CSeq')}"]
    if contact and status < 300:
        lines.append(f"Contact: <sip:{phone.user}@{phone.addr}>")
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def in_dialog_from_callee(phone: Phone, invite: Request, method: str, cseq: int,
                          *, tag: str = "callee", body: bytes = b"") -> bytes:  # fmt: skip
    """A request from the callee inside the dialog the B2BUA opened with *invite*."""
    lines = [
        f"{method} {invite.get('Contact', '').strip('<>')} SIP/2.0",
        f"Via: SIP/2.0/{phone.transport} {phone.addr};branch=z9hG4bK{next(_counter)}",
        "Max-Forwards: 70",
        f"From: {invite.get('To')};tag={tag}",
        f"To: {invite.get('From')}",
        f"Call-ID: {invite.call_id}",
        f"CSeq: {cseq} {method}",
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
