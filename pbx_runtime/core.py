"""Dispatch for one tenant, sans-I/O: bytes and a source in, bytes to send (and closes) out.

Pipeline, cheapest first (performance-security.md §5.2, §5.5)::

    bytes + Peer ─► shed? (UDP backlog over the limit: drop / 503 before parsing)
                 ─► AbusePolicy.check_source (locks, flood meter: drop)
                 ─► AnswerCache (UDP: a retransmission of an answered request, resent unparsed)
                 ─► parse_datagram / StreamFramer (SIPProtocolError → stateless answer or drop)
                 ─► AbusePolicy.check_request (scanner User-Agent: drop)
                 ─► REGISTER / initial INVITE without credentials: answered statelessly
                 ─► TransactionManager (retransmissions absorbed, 503 at the table limit)
                 ─► Registrar (REGISTER) │ OPTIONS → 200 │ CallControl (INVITE, CANCEL, dialogs)
                 ─► outputs: Send(peer, bytes) / Close(peer); security events in ``events``

The transport shell (``pbx_runtime/transport``) owns sockets and the clock; it hands every
input to :class:`Core` with ``now`` (POSIX seconds) and performs the outputs in order. Timers:
:meth:`Core.next_deadline` / :meth:`Core.handle_timers`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Final

from pbx_runtime.answer_cache import AnswerCache
from pbx_runtime.b2bua import (
    ALLOW,
    Abandon,
    CallAction,
    CallControl,
    CallSettings,
    Hop,
    Reply,
    SendAck,
    StartRequest,
)
from pbx_runtime.config import RuntimeConfig
from pbx_runtime.events import EventLog
from pbx_runtime.policy import AbusePolicy, Verdict
from pbx_runtime.registrar import (
    Authenticator,
    Binding,
    InMemoryCredentialStore,
    LocationLimits,
    LocationService,
    Registrar,
)
from pbx_runtime.sip import (
    AckReceived,
    KeepAlive,
    PassToTU,
    Request,
    RequestReceived,
    Response,
    SendMessage,
    SIPProtocolError,
    StreamFramer,
    TimedOut,
    TimerSettings,
    TransactionKey,
    TransactionManager,
    TransactionTerminated,
    TransportFailed,
    build_response,
    parse_datagram,
    serialize,
    stateless_error_response,
)
from pbx_runtime.sip.transaction import Event, Role
from pbx_runtime.sip.uri import is_ipv4, is_ipv6
from pbx_runtime.sip.value import Value

__all__ = ["Close", "Core", "ListenerInfo", "Output", "Peer", "Send"]

#: Requests that start something new; under overload these are shed, everything else (responses,
#: ACK, BYE, CANCEL, requests answering a challenge) finishes work already admitted.
_NEW_WORK_PREFIXES = (b"INVITE ", b"REGISTER ", b"OPTIONS ", b"SUBSCRIBE ", b"MESSAGE ",
                      b"PUBLISH ", b"REFER ", b"NOTIFY ")  # fmt: skip
#: Known methods we do not serve out of dialog: 405 (RFC 3261 §21.4.6); unknown ones get 501.
_NOT_ALLOWED = frozenset({"SUBSCRIBE", "NOTIFY", "MESSAGE", "PUBLISH", "REFER", "PRACK", "INFO",
                          "UPDATE"})  # fmt: skip
PURGE_INTERVAL = 5.0
MAX_FLOWS = 200_000


class Peer(Value):
    """A remote address as the transport saw it; hashable, used as the transaction address.

    ``conn`` identifies a stream connection (0 for UDP); ``listener`` is the index of the local
    listener it arrived on. ``str(peer)`` is the ``"ip:port"`` form the policy layer keys on.
    """

    __slots__ = ("conn", "host", "listener", "port", "transport")

    def __init__(self, transport: str, host: str, port: int, listener: int, conn: int = 0) -> None:
        self.transport: Final = transport  # "UDP" | "TCP" | "TLS"
        self.host: Final = host
        self.port: Final = port
        self.listener: Final = listener
        self.conn: Final = conn

    def _fields(self) -> tuple[object, ...]:
        return (self.transport, self.host, self.port, self.listener, self.conn)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_stream(self) -> bool:
        return self.conn != 0


@dataclass(frozen=True, slots=True)
class ListenerInfo:
    """A bound listener: transport token and the ``host:port`` we advertise in Via/Contact."""

    transport: str
    local: str


class Send(Value):
    __slots__ = ("data", "peer")

    def __init__(self, peer: Peer, data: bytes) -> None:
        self.peer: Final = peer
        self.data: Final = data

    def _fields(self) -> tuple[object, ...]:
        return (self.peer, self.data)


class Close(Value):
    __slots__ = ("peer",)

    def __init__(self, peer: Peer) -> None:
        self.peer: Final = peer

    def _fields(self) -> tuple[object, ...]:
        return (self.peer,)


Output = Send | Close


class Core:
    """Registrar, call control and transactions of one tenant behind one dispatch function."""

    def __init__(
        self,
        config: RuntimeConfig,
        listeners: Sequence[ListenerInfo],
        *,
        events: EventLog | None = None,
        secret: bytes | None = None,
    ) -> None:
        limits = config.limits
        self.config = config
        self.listeners = tuple(listeners)
        self.events = events if events is not None else EventLog(config.tenant)
        self.policy = AbusePolicy(self.events, config.abuse)
        self.credentials = InMemoryCredentialStore.from_config(config.credentials())
        self.authenticator = Authenticator(
            self.credentials,
            policy=self.policy,
            secret=secret,
            algorithms=config.digest_algorithms,
        )
        location = LocationService(LocationLimits(max_bindings=limits.max_bindings))
        self.registrar = Registrar(config.domain, self.authenticator, location, events=self.events)
        timers = TimerSettings(t1=limits.t1, t2=max(4.0, limits.t1))
        self.manager = TransactionManager(
            timers=timers, max_transactions=limits.max_transactions, retry_after=limits.retry_after
        )
        self.calls = CallControl(
            config.domain,
            self.authenticator,
            location,
            known_user=self.credentials.__contains__,
            hop_for_source=self._hop_for_source,
            hop_for_binding=self._hop_for_binding,
            settings=CallSettings(
                auth_status=config.call_auth_status,
                max_calls=limits.max_calls,
                calls_per_user=limits.calls_per_user,
                ring_timeout=limits.ring_timeout,
                t1=timers.t1,
                t2=timers.t2,
            ),
        )
        # UDP retransmissions answered unparsed for as long as a server transaction would
        # absorb them (Timers H and J: 64*T1)
        self._answers = AnswerCache(lifetime=64 * timers.t1)
        self.draining = False
        self.shed_count = 0
        self._framers: dict[int, StreamFramer] = {}
        self._connections: dict[int, Peer] = {}
        self._flows: OrderedDict[str, Peer] = OrderedDict()  # REGISTER source → its flow
        self._next_purge = 0.0

    # =========================================================================================
    # Input

    def datagram_received(
        self, data: bytes, peer: Peer, now: float, *, backlog: int = 0
    ) -> list[Output]:
        """One UDP datagram. *backlog* is the bytes still queued in the socket's receive buffer:
        over ``limits.udp_backlog_bytes`` new work is shed before parsing."""
        source = str(peer)
        if (
            backlog > self.config.limits.udp_backlog_bytes
            and data.startswith(_NEW_WORK_PREFIXES)
            and not self.authenticator.answers_a_challenge(data, source, now)
        ):
            return self._shed(data, peer)
        if self.policy.check_source(source, now) is not Verdict.ALLOW:
            return []
        answer = self._answers.get(data, peer, now)
        if answer is not None:  # a retransmission of a request already answered
            return [Send(peer, answer)]
        try:
            message = parse_datagram(data)
        except SIPProtocolError as error:
            reply = stateless_error_response(data, error)
            return [] if reply is None else [Send(peer, reply)]
        out = self._message(message, peer, source, now)
        answer = _resendable_answer(message, peer, out)
        if answer is not None:
            self._answers.put(data, peer, answer, now)
        return out

    def connection_opened(self, peer: Peer) -> None:
        self._connections[peer.conn] = peer
        self._framers[peer.conn] = StreamFramer()

    def connection_closed(self, peer: Peer) -> None:
        self._connections.pop(peer.conn, None)
        self._framers.pop(peer.conn, None)

    def buffered(self, peer: Peer) -> int:
        """Bytes of an incomplete message waiting on a stream (slow-client detection)."""
        framer = self._framers.get(peer.conn)
        return 0 if framer is None else framer.buffered

    def stream_received(self, data: bytes, peer: Peer, now: float) -> list[Output]:
        """Bytes from a TCP/TLS connection (framed with :class:`StreamFramer`)."""
        framer = self._framers.get(peer.conn)
        if framer is None:
            return []
        source = str(peer)
        items = framer.feed(data)
        out: list[Output] = []
        for item in items:
            if isinstance(item, SIPProtocolError):
                # The framer does not keep a failed message's bytes; the chunk is that message
                # when it is the only thing in it (the normal case), else there is nothing to
                # copy the Via from.
                reply = stateless_error_response(data, item) if len(items) == 1 else None
                if reply is not None:
                    out.append(Send(peer, reply))
                if item.fatal:
                    out.append(Close(peer))
                    break
                continue
            if isinstance(item, KeepAlive):
                out.append(Send(peer, b"\r\n"))  # RFC 5626 §3.5.1 pong
                continue
            verdict = self.policy.check_source(source, now)
            if verdict is Verdict.LOCKED:
                out.append(Close(peer))
                break
            if verdict is Verdict.ALLOW:
                out.extend(self._message(item, peer, source, now))
        return out

    # =========================================================================================
    # Timers and life cycle

    def next_deadline(self) -> float | None:
        deadlines = [self._next_purge]
        for deadline in (self.manager.next_deadline(), self.calls.next_deadline()):
            if deadline is not None:
                deadlines.append(deadline)
        return min(deadlines)

    def handle_timers(self, now: float) -> list[Output]:
        out = self._events(self.manager.handle_timers(now), now)
        out += self._perform(self.calls.handle_timers(now), now)
        if now >= self._next_purge:
            self._next_purge = now + PURGE_INTERVAL
            self.registrar.purge(now)
        return out

    def begin_drain(self) -> None:
        """Stop taking new work (503 + Retry-After); dialogs and transactions carry on."""
        self.draining = True

    @property
    def busy(self) -> bool:
        """Transactions or calls still in progress."""
        return len(self.manager) > 0 or len(self.calls) > 0

    def reload_users(self, config: RuntimeConfig) -> None:
        """Swap the credential table (SIGHUP); registrations and calls are untouched."""
        self.credentials.reload(config.credentials())

    # =========================================================================================
    # Dispatch

    def _message(
        self, message: Request | Response, peer: Peer, source: str, now: float
    ) -> list[Output]:
        if isinstance(message, Request):
            if self.policy.check_request(source, message.get("User-Agent"), now) is not (
                Verdict.ALLOW
            ):
                return []
            if self.draining and _is_new_work(message):
                retry = (("Retry-After", str(self.config.limits.retry_after)),)
                return [Send(peer, serialize(build_response(message, 503, headers=retry)))]
            answer = self._stateless_answer(message, source, now)
            if answer is not None:
                return [Send(peer, serialize(answer))]
        return self._events(self.manager.receive(message, peer, now, reliable=peer.is_stream), now)

    def _stateless_answer(self, request: Request, source: str, now: float) -> Response | None:
        """The answer to a REGISTER or initial INVITE without credentials, sent without a
        transaction; ``None`` for everything else.

        RFC 3261 §26.3.2.4: a single 401/407 and no retransmissions, so a flood of
        unauthenticated requests holds no state here (the To tag is the same for every
        challenge, §8.2.7). Without credentials nothing is registered or called, so a
        retransmitted request is simply answered again, and the ACK of a 407 matches nothing.
        """
        method, has_credentials = request.method, self.authenticator.has_credentials
        if method == "REGISTER" and not has_credentials(request, 401):
            return self.registrar.handle(request, source, now)
        if (
            method == "INVITE"
            and request.to.tag is None
            and not has_credentials(request, self.config.call_auth_status)
        ):
            return self.calls.answer_unauthenticated(request, source, now)
        return None

    def _events(self, events: list[Event], now: float) -> list[Output]:
        out: list[Output] = []
        for event in events:
            if isinstance(event, SendMessage):
                destination = event.destination
                if isinstance(destination, Peer):
                    out.append(Send(destination, serialize(event.message)))
            elif isinstance(event, RequestReceived):
                out.extend(self._dispatch(event, now))
            elif isinstance(event, AckReceived):
                out.extend(self._perform(self.calls.on_ack(event.request, now), now))
            elif isinstance(event, PassToTU):
                out.extend(self._perform(self.calls.on_pass_to_tu(event, now), now))
            elif isinstance(event, TimedOut | TransportFailed):
                if event.key.role is Role.CLIENT:
                    out.extend(self._perform(self.calls.on_client_failed(event.key, now), now))
            elif isinstance(event, TransactionTerminated) and event.key.role is Role.CLIENT:
                self.calls.on_terminated(event.key)
        return out

    def _dispatch(self, event: RequestReceived, now: float) -> list[Output]:
        request = event.request
        method = request.method
        if method == "REGISTER":
            response = self.registrar.handle(request, str(event.source), now)
            if response is None:
                return self._abandon(event.key, now)
            if response.status == 200 and isinstance(event.source, Peer):
                self._remember_flow(event.source)
            return self._events(self.manager.send_response(response, now, key=event.key), now)
        required = request.tokens("require") if method not in ("CANCEL", "BYE") else []
        if required and request.to.tag is None and method != "INVITE":
            unsupported = (("Unsupported", ", ".join(required)),)  # RFC 3261 §8.2.2.3
            return self._respond(build_response(request, 420, headers=unsupported), now)
        if method == "OPTIONS" and request.to.tag is None:
            headers = (("Allow", ALLOW), ("Accept", "application/sdp"))
            return self._respond(build_response(request, 200, headers=headers), now)
        if method in ("INVITE", "CANCEL") or request.to.tag is not None:
            return self._perform(self.calls.on_request(event, now), now)
        status = 405 if method in _NOT_ALLOWED else 501
        return self._respond(build_response(request, status, headers=(("Allow", ALLOW),)), now)

    def _respond(self, response: Response, now: float) -> list[Output]:
        return self._events(self.manager.send_response(response, now), now)

    def _abandon(self, key: TransactionKey, now: float) -> list[Output]:
        # A transport error is the one input that ends a server transaction that has not
        # answered (Trying/Proceeding) without sending anything.
        return self._events(self.manager.transport_error(key, now), now)

    def _perform(self, actions: list[CallAction], now: float) -> list[Output]:
        out: list[Output] = []
        for action in actions:
            if isinstance(action, Reply):
                out.extend(self._respond(action.response, now))
            elif isinstance(action, StartRequest):
                key, events = self.manager.send_request(
                    action.request, action.destination, now, reliable=action.reliable
                )
                if not self._reachable(action.destination):
                    events += self.manager.transport_error(key, now)
                out.extend(self._events(events, now))
            elif isinstance(action, SendAck):
                if isinstance(action.destination, Peer) and self._reachable(action.destination):
                    out.append(Send(action.destination, serialize(action.request)))
            elif isinstance(action, Abandon):
                out.extend(self._abandon(action.key, now))
        return out

    # =========================================================================================
    # Flows: how to reach a phone again

    def _remember_flow(self, peer: Peer) -> None:
        flows = self._flows
        key = str(peer)
        flows[key] = peer
        flows.move_to_end(key)
        if len(flows) > MAX_FLOWS:
            flows.popitem(last=False)

    def _reachable(self, destination: Hashable) -> bool:
        if not isinstance(destination, Peer):
            return False
        return not destination.is_stream or destination.conn in self._connections

    def _local(self, listener: int) -> ListenerInfo:
        return self.listeners[listener]

    def _hop_for_source(self, source: Hashable) -> Hop:
        if not isinstance(source, Peer):
            raise TypeError("sources are Peers")
        info = self._local(source.listener)
        return Hop(source, info.transport, info.local)

    def _hop_for_binding(self, binding: Binding) -> Hop | None:
        """TCP/TLS: the connection the REGISTER came in on (RFC 5923 style reuse; we never dial
        out to a phone). UDP: the Contact address when it is an IP literal, else the source."""
        flow = None if binding.source is None else self._flows.get(binding.source)
        if flow is None:
            return None
        info = self._local(flow.listener)
        if flow.is_stream:
            return Hop(flow, info.transport, info.local) if flow.conn in self._connections else None
        uri = binding.uri
        destination = flow
        host = uri.host_address
        if uri.transport in (None, "udp") and (is_ipv4(host) or is_ipv6(host)):
            destination = Peer("UDP", host, uri.port or 5060, flow.listener)
        return Hop(destination, "UDP", info.local)

    # =========================================================================================
    # Overload

    def _shed(self, data: bytes, peer: Peer) -> list[Output]:
        self.shed_count += 1
        if self.config.limits.shed != "503":
            return []
        reply = stateless_error_response(data, SIPProtocolError(503, "overloaded"))
        if reply is None:
            return []
        retry = f"Retry-After: {self.config.limits.retry_after}\r\n".encode()
        end = reply.rfind(b"Content-Length:")
        return [Send(peer, reply[:end] + retry + reply[end:])]


def _resendable_answer(message: Request | Response, peer: Peer, out: list[Output]) -> bytes | None:
    """The answer a copy of *message* may get again unparsed: the one final response sent at
    once to its source. Never for ACK (it has none) nor a 2xx to INVITE: after that the
    transaction absorbs copies silently and call control retransmits the 2xx (RFC 6026)."""
    if len(out) != 1 or not isinstance(message, Request) or message.method == "ACK":
        return None
    only = out[0]
    if not isinstance(only, Send) or only.peer != peer:
        return None
    wire = only.data
    if not wire.startswith(b"SIP/2.0 ") or wire.startswith(b"SIP/2.0 1"):
        return None
    if message.method == "INVITE" and wire.startswith(b"SIP/2.0 2"):
        return None
    return wire


def _is_new_work(request: Request) -> bool:
    return request.method not in ("ACK", "CANCEL", "BYE") and request.to.tag is None
