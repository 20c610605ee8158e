"""A small asyncio test UA: UDP, TCP or TLS (server certificate verified against the demo CA),
MD5 and SHA-256 digest computed here from the password with hashlib. It parses with the
project's own message layer; everything it sends is built by hand as text."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import re
import secrets
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from pbx_runtime.sip import (
    KeepAlive,
    Request,
    Response,
    SIPProtocolError,
    StreamFramer,
    parse_datagram,
)

_PARAM_RE = re.compile(r'(\w+)=(?:"([^"]*)"|([^,\s]+))')
_seq = itertools.count(1)
Message = Request | Response


def digest_response(algorithm: str, user: str, realm: str, password: str, method: str,
                    uri: str, nonce: str, nc: str, cnonce: str) -> str:  # fmt: skip
    name = {"MD5": "md5", "SHA-256": "sha256"}[algorithm]

    def h(text: str) -> str:
        return hashlib.new(name, text.encode()).hexdigest()

    return h(f"{h(f'{user}:{realm}:{password}')}:{nonce}:{nc}:{cnonce}:auth:{h(f'{method}:{uri}')}")


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, queue: asyncio.Queue[Message]) -> None:
        self.queue = queue

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        with contextlib.suppress(SIPProtocolError):  # a test UA ignores what it cannot parse
            self.queue.put_nowait(parse_datagram(data))


@dataclass
class UA:
    transport: str  # "UDP" | "TCP" | "TLS"
    server: tuple[str, int]
    user: str
    password: str
    domain: str
    algorithm: str = "SHA-256"
    queue: asyncio.Queue[Message] = field(default_factory=asyncio.Queue)
    local: str = ""
    cseq: int = 0
    _udp: asyncio.DatagramTransport | None = None
    _writer: asyncio.StreamWriter | None = None
    _reader_task: asyncio.Task[None] | None = None
    _nc: int = 0
    _challenge: dict[str, str] = field(default_factory=dict)

    @classmethod
    async def open(cls, transport: str, server: tuple[str, int], user: str, password: str,
                   domain: str, *, ca: Path | None = None, algorithm: str = "SHA-256",
                   client_cert: tuple[Path, Path] | None = None,
                   server_name: str = "localhost") -> UA:  # fmt: skip
        ua = cls(transport, server, user, password, domain, algorithm)
        loop = asyncio.get_running_loop()
        if transport == "UDP":
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(ua.queue), local_addr=("127.0.0.1", 0)
            )
            ua._udp = udp
            host, port = udp.get_extra_info("sockname")[:2]
        else:
            context = None
            if transport == "TLS":
                context = ssl.create_default_context(cafile=str(ca) if ca else None)
                if client_cert is not None:
                    context.load_cert_chain(*client_cert)
            reader, writer = await asyncio.open_connection(
                *server, ssl=context, server_hostname=server_name if context else None
            )
            ua._writer = writer
            ua._reader_task = asyncio.create_task(ua._read(reader))
            host, port = writer.get_extra_info("sockname")[:2]
        ua.local = f"{host}:{port}"
        return ua

    async def _read(self, reader: asyncio.StreamReader) -> None:
        framer = StreamFramer()
        while data := await reader.read(65536):
            for item in framer.feed(data):
                if isinstance(item, Request | Response):
                    self.queue.put_nowait(item)
                elif not isinstance(item, KeepAlive):
                    return

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await self._writer.wait_closed()
        if self._reader_task is not None:
            self._reader_task.cancel()

    # -- wire --------------------------------------------------------------------------------

    async def send(self, data: bytes) -> None:
        if self._udp is not None:
            self._udp.sendto(data, self.server)
        else:
            assert self._writer is not None
            self._writer.write(data)
            await self._writer.drain()

    async def recv(self, timeout: float = 3.0) -> Message:
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def final(self, method: str, timeout: float = 3.0) -> Response:
        """The next final response to *method* (provisionals skipped)."""
        while True:
            message = await self.recv(timeout)
            if (
                isinstance(message, Response)
                and message.cseq.method == method
                and message.status >= 200
            ):
                return message

    async def request_in(self, method: str, timeout: float = 3.0) -> Request:
        while True:
            message = await self.recv(timeout)
            if isinstance(message, Request) and message.method == method:
                return message

    # -- building ------------------------------------------------------------------------------

    @property
    def aor(self) -> str:
        return f"sip:{self.user}@{self.domain}"

    def contact(self) -> str:
        suffix = "" if self.transport == "UDP" else f";transport={self.transport.lower()}"
        return f"<sip:{self.user}@{self.local}{suffix}>"

    def build(self, method: str, uri: str, *, to: str, call_id: str, cseq: int,
              from_tag: str = "ua", to_tag: str | None = None, branch: str | None = None,
              headers: list[tuple[str, str]] | None = None, body: bytes = b"",
              from_uri: str | None = None) -> bytes:  # fmt: skip
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/{self.transport} {self.local};branch="
            f"{branch or 'z9hG4bK' + secrets.token_hex(6)};rport",
            "Max-Forwards: 70",
            f"From: <{from_uri or self.aor}>;tag={from_tag}",
            f"To: <{to}>" + (f";tag={to_tag}" if to_tag else ""),
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: {self.contact()}",
            "User-Agent: bulkhead-test-ua",
        ]
        lines += [f"{n}: {v}" for n, v in headers or []]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def answer(
        self, request: Request, status: int, *, tag: str = "uas", body: bytes = b""
    ) -> bytes:
        lines = [f"SIP/2.0 {status} Answer"]
        lines += [f"Via: {v}" for v in request.get_all("Via")]
        to = request.get("To") or ""
        if status > 100 and ";tag=" not in to:
            to += f";tag={tag}"
        lines += [f"From: {request.get('From')}", f"To: {to}", f"Call-ID: {request.call_id}",
                  f"CSeq: {request.get('CSeq')}"]  # fmt: skip
        if status < 300:
            lines.append(f"Contact: {self.contact()}")
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def authorization(self, header: str, method: str, uri: str) -> tuple[str, str]:
        self._nc += 1
        nc = f"{self._nc:08x}"
        cnonce = secrets.token_hex(4)
        ch = self._challenge
        response = digest_response(self.algorithm, self.user, ch["realm"], self.password,
                                   method, uri, ch["nonce"], nc, cnonce)  # fmt: skip
        return header, (
            f'Digest username="{self.user}", realm="{ch["realm"]}", nonce="{ch["nonce"]}", '
            f'uri="{uri}", response="{response}", algorithm={self.algorithm}, '
            f'cnonce="{cnonce}", qop=auth, nc={nc}'
        )

    def learn(self, response: Response) -> None:
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        for value in response.get_all(header):
            params = {m[0].lower(): m[1] or m[2] for m in _PARAM_RE.findall(value[7:])}
            if params.get("algorithm") == self.algorithm:
                self._challenge = params
                self._nc = 0
                return
        raise AssertionError(f"no {self.algorithm} challenge in {response}")

    # -- flows -------------------------------------------------------------------------------

    async def register(self, expires: int = 3600, *, aor_user: str | None = None) -> Response:
        """REGISTER, answer the challenge, return the final response."""
        call_id = f"reg-{self.user}-{self.local}"
        uri = f"sip:{self.domain}"
        to = f"sip:{aor_user or self.user}@{self.domain}"
        extra = [("Expires", str(expires))]
        self.cseq += 1
        await self.send(self.build("REGISTER", uri, to=to, call_id=call_id, cseq=self.cseq,
                                   headers=extra, from_uri=to))  # fmt: skip
        first = await self.final("REGISTER")
        if first.status != 401:
            return first
        self.learn(first)
        self.cseq += 1
        auth = self.authorization("Authorization", "REGISTER", uri)
        await self.send(self.build("REGISTER", uri, to=to, call_id=call_id, cseq=self.cseq,
                                   headers=[*extra, auth], from_uri=to))  # fmt: skip
        return await self.final("REGISTER")

    async def options(self) -> Response:
        call_id = f"opt-{next(_seq)}"
        uri = f"sip:{self.domain}"
        await self.send(self.build("OPTIONS", uri, to=uri, call_id=call_id, cseq=1))
        return await self.final("OPTIONS")

    async def call(self, target: str, body: bytes) -> OutgoingCall:
        """INVITE *target*, answer the 407; returns the call with its second INVITE sent."""
        call = OutgoingCall(self, target, f"call-{next(_seq)}-{secrets.token_hex(4)}", body)
        await call.invite()
        first = await self.final("INVITE")
        assert first.status == 407, first
        await call.ack(first)
        self.learn(first)
        await call.invite(authorize=True)
        return call


@dataclass
class OutgoingCall:
    ua: UA
    target: str
    call_id: str
    body: bytes
    cseq: int = 0
    branch: str = ""
    remote_tag: str | None = None

    @property
    def uri(self) -> str:
        return f"sip:{self.target}@{self.ua.domain}"

    async def invite(self, *, authorize: bool = False) -> None:
        self.cseq += 1
        self.branch = "z9hG4bK" + secrets.token_hex(6)
        headers = (
            [self.ua.authorization("Proxy-Authorization", "INVITE", self.uri)]
            if (authorize)
            else []
        )
        await self.ua.send(self.ua.build("INVITE", self.uri, to=self.uri, call_id=self.call_id,
                                         cseq=self.cseq, branch=self.branch, headers=headers,
                                         body=self.body))  # fmt: skip

    async def ack(self, response: Response) -> None:
        """ACK a final: same branch for a non-2xx (hop-by-hop), a new one for a 2xx."""
        branch = self.branch if response.status >= 300 else None
        if response.status < 300:
            self.remote_tag = response.to.tag
        await self.ua.send(self.ua.build("ACK", self.uri, to=self.uri, call_id=self.call_id,
                                         cseq=self.cseq, branch=branch,
                                         to_tag=response.to.tag))  # fmt: skip

    async def cancel(self) -> None:
        await self.ua.send(self.ua.build("CANCEL", self.uri, to=self.uri, call_id=self.call_id,
                                         cseq=self.cseq, branch=self.branch))  # fmt: skip

    async def bye(self) -> None:
        self.cseq += 1
        await self.ua.send(self.ua.build("BYE", self.uri, to=self.uri, call_id=self.call_id,
                                         cseq=self.cseq, to_tag=self.remote_tag))  # fmt: skip
