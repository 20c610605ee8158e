"""RFC 3261 §17 transactions, sans-I/O: four table-driven state machines and their manager.

Rule 1 (after h11's ``_state.py``): everything that decides a transition lives in the four
tables below. A row maps ``(state, input)`` to a :class:`Transition`: the next state and the
steps to take, in order. The :class:`Transaction` class only *interprets* steps (which message
to send, which delay a timer gets); it never decides where to go.

Rule 2: nothing here reads a clock or touches a socket. Machines emit :class:`StartTimer` /
:class:`CancelTimer` with delays; the :class:`TransactionManager` turns them into deadlines from
the ``now`` each call is given, exposes :meth:`~TransactionManager.next_deadline` and fires them
in :meth:`~TransactionManager.handle_timers` (aioquic's ``get_timer`` / ``handle_timer``).

The machines are RFC 3261 Figures 5-8 with RFC 6026 applied: an INVITE client transaction goes
to *Accepted* on a 2xx (absorbing nothing, passing every further 2xx to the TU, Timer M) and an
INVITE server transaction goes to *Accepted* when the TU sends a 2xx (absorbing INVITE
retransmissions, sending the TU's 2xx retransmissions, passing ACKs up, Timer L).

Matching follows §17.1.3 (client: top-Via branch + CSeq method) and §17.2.3 (server: branch
with the ``z9hG4bK`` magic cookie + sent-by + method, ACK matching its INVITE). The RFC 2543
fallback is not implemented: a request whose branch lacks the cookie is answered 400 statelessly
(an ACK is never answered; it goes to the TU as :class:`AckReceived`).
"""

from __future__ import annotations

import enum
import heapq
import itertools
import secrets
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, TypeAlias

from .abnf import _KEY_CACHE, header_key
from .errors import SIPProtocolError
from .message import Message, Request, Response, build_response, forget_parsed_views
from .timers import DEFAULT_TIMERS, Timer, TimerSettings, is_reliable_transport
from .value import Value

__all__ = [
    "INVITE_CLIENT",
    "INVITE_SERVER",
    "MACHINES",
    "MAGIC_COOKIE",
    "MAX_TRANSACTIONS",
    "NON_INVITE_CLIENT",
    "NON_INVITE_SERVER",
    "RETRY_AFTER_SECONDS",
    "TIMER_INPUT",
    "AckReceived",
    "Action",
    "Address",
    "CancelTimer",
    "Do",
    "Event",
    "Input",
    "Interval",
    "Machine",
    "PassToTU",
    "RequestReceived",
    "RequestRejected",
    "Role",
    "SendMessage",
    "Start",
    "StartTimer",
    "State",
    "Stop",
    "TerminationReason",
    "TimedOut",
    "Transaction",
    "TransactionKey",
    "TransactionManager",
    "TransactionTerminated",
    "Transition",
    "TransportFailed",
    "build_ack",
    "build_cancel",
    "machine_for",
    "new_branch",
    "render_table",
    "response_input",
]

#: RFC 3261 §8.1.1.7: every branch created by an RFC 3261 element starts with this.
MAGIC_COOKIE = "z9hG4bK"

#: Named limit: live transactions (client + server) one manager holds. Over it, new requests
#: are answered 503 with Retry-After (RFC 3261 §21.5.4) and no transaction is created.
MAX_TRANSACTIONS = 10_000
#: Retry-After (seconds) on the 503 sent when :data:`MAX_TRANSACTIONS` is reached.
RETRY_AFTER_SECONDS = 5

#: Where a message goes or came from. Opaque to the core: the transport shell chooses it (an
#: ``(host, port)`` pair, a connection id...) and gets it back in :class:`SendMessage`.
Address: TypeAlias = Hashable


# =============================================================================================
# Vocabulary: states, inputs, roles, keys


class State(enum.Enum):
    """Transaction states (RFC 3261 §17, RFC 6026 "Accepted"). INITIAL exists only until the
    machine's start input; TERMINATED is final and ignores everything."""

    __hash__ = object.__hash__  # members are singletons: identity hash, in C

    INITIAL = "Initial"
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


# States in which a transaction has its outcome and only absorbs retransmissions until a timer.
_SETTLED = frozenset({State.COMPLETED, State.CONFIRMED, State.ACCEPTED, State.TERMINATED})


class Input(enum.Enum):
    """What can happen to a transaction: a message class, a TU call, a timer, a transport error."""

    __hash__ = object.__hash__  # members are singletons: identity hash, in C

    TU_REQUEST = "TU sends request"  # client start input
    RESPONSE_1XX = "1xx received"
    RESPONSE_2XX = "2xx received"
    RESPONSE_300_699 = "300-699 received"
    REQUEST = "request received"  # server start input, then retransmissions
    ACK = "ACK received"
    TU_1XX = "TU sends 1xx"
    TU_2XX = "TU sends 2xx"
    TU_300_699 = "TU sends 300-699"
    TIMER_A = "Timer A"
    TIMER_B = "Timer B"
    TIMER_D = "Timer D"
    TIMER_E = "Timer E"
    TIMER_F = "Timer F"
    TIMER_G = "Timer G"
    TIMER_H = "Timer H"
    TIMER_I = "Timer I"
    TIMER_J = "Timer J"
    TIMER_K = "Timer K"
    TIMER_L = "Timer L"
    TIMER_M = "Timer M"
    TRANSPORT_ERROR = "transport error"


TIMER_INPUT: Mapping[Timer, Input] = MappingProxyType({t: Input[f"TIMER_{t.name}"] for t in Timer})
_INPUT_TIMER: dict[Input, Timer] = {v: k for k, v in TIMER_INPUT.items()}
_TIMER_INPUT: dict[Timer, Input] = dict(TIMER_INPUT)


class Role(enum.Enum):
    __hash__ = object.__hash__  # members are singletons: identity hash, in C

    CLIENT = "client"
    SERVER = "server"


class TerminationReason(enum.Enum):
    COMPLETED = "completed"  # a wait timer (D, I, J, K, L, M) fired: the normal end
    TIMED_OUT = "timed out"  # Timer B, F or H: the TU was told with TimedOut
    TRANSPORT_ERROR = "transport error"


class TransactionKey(Value):
    """Identifies a transaction (RFC 3261 §17.1.3, §17.2.3).

    The branch is compared case-insensitively (RFC 3261 §7.3.1: parameter values are
    case-insensitive unless stated otherwise) and the method case-sensitively (§7.1). Server keys
    add the top Via sent-by (host lower-cased, port as written: ``host`` and ``host:5060`` differ)
    and use INVITE for ACK; client keys have ``sent_by == ""``.
    """

    __slots__ = ("_hash", "branch", "method", "role", "sent_by")

    def __init__(self, role: Role, branch: str, method: str, sent_by: str = "") -> None:
        self.role: Final = role
        self.branch: Final = branch
        self.method: Final = method
        self.sent_by: Final = sent_by
        # Keys are hashed on every look-up (transactions, armed timers): hash once.
        self._hash: Final = hash((role, branch, method, sent_by))

    def _fields(self) -> tuple[object, ...]:
        return (self.role, self.branch, self.method, self.sent_by)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TransactionKey):
            return NotImplemented
        return (
            self._hash == other._hash
            and self.branch == other.branch
            and self.method == other.method
            and self.sent_by == other.sent_by
            and self.role is other.role
        )

    def __hash__(self) -> int:
        return self._hash

    def with_method(self, method: str) -> TransactionKey:
        return TransactionKey(self.role, self.branch, method, self.sent_by)

    @classmethod
    def for_client(cls, message: Message) -> TransactionKey:
        """The client key of a request we send, or of a response we receive (§17.1.3)."""
        method = message.method if isinstance(message, Request) else message.cseq.method
        return cls(Role.CLIENT, _branch(message), method)

    @classmethod
    def for_server(cls, message: Message) -> TransactionKey:
        """The server key of a request we receive, or of the response the TU answers it with."""
        method = message.method if isinstance(message, Request) else message.cseq.method
        via = message.top_via
        sent_by = via.host.lower() if via.port is None else f"{via.host.lower()}:{via.port}"
        return cls(Role.SERVER, _branch(message), "INVITE" if method == "ACK" else method, sent_by)


def _branch(message: Message) -> str:
    via = message.top_via
    if not via.has_rfc3261_branch:
        raise SIPProtocolError(400, "top Via branch lacks the RFC 3261 magic cookie")
    return (via.branch or "").lower()


def new_branch() -> str:
    """A fresh RFC 3261 branch: the magic cookie and 96 random bits."""
    return MAGIC_COOKIE + secrets.token_hex(12)


# =============================================================================================
# Outputs. Imperative names are commands for the caller; past-tense names are events for the TU.


class SendMessage(Value):
    """Send *message* to *destination* (serialize it with :func:`~pbx_runtime.sip.serialize`)."""

    __slots__ = ("destination", "message")

    def __init__(self, message: Message, destination: Address) -> None:
        self.message: Final = message
        self.destination: Final = destination

    def _fields(self) -> tuple[object, ...]:
        return (self.message, self.destination)


class StartTimer(Value):
    """(Re)start *timer* of transaction *key* to fire after *delay* seconds."""

    __slots__ = ("delay", "key", "timer")

    def __init__(self, key: TransactionKey, timer: Timer, delay: float) -> None:
        self.key: Final = key
        self.timer: Final = timer
        self.delay: Final = delay

    def _fields(self) -> tuple[object, ...]:
        return (self.key, self.timer, self.delay)


class CancelTimer(Value):
    __slots__ = ("key", "timer")

    def __init__(self, key: TransactionKey, timer: Timer) -> None:
        self.key: Final = key
        self.timer: Final = timer

    def _fields(self) -> tuple[object, ...]:
        return (self.key, self.timer)


class PassToTU(Value):
    """A message the TU must see: a response on a client transaction, or an ACK that reached an
    INVITE server transaction in Accepted (RFC 6026 §7.1)."""

    __slots__ = ("key", "message")

    def __init__(self, key: TransactionKey, message: Message) -> None:
        self.key: Final = key
        self.message: Final = message

    def _fields(self) -> tuple[object, ...]:
        return (self.key, self.message)


class TimedOut(Value):
    """Timer B, F or H fired: the transaction failed (RFC 3261 §17.1.1.2, §17.1.2.2, §17.2.1).
    A TU that sent an INVITE/non-INVITE treats it as a 408."""

    __slots__ = ("key", "timer")

    def __init__(self, key: TransactionKey, timer: Timer) -> None:
        self.key: Final = key
        self.timer: Final = timer

    def _fields(self) -> tuple[object, ...]:
        return (self.key, self.timer)


class TransportFailed(Value):
    """The transport could not deliver a message of this transaction (§17.1.4, §17.2.4)."""

    __slots__ = ("key",)

    def __init__(self, key: TransactionKey) -> None:
        self.key: Final = key

    def _fields(self) -> tuple[object, ...]:
        return (self.key,)


class TransactionTerminated(Value):
    """The transaction reached Terminated and is forgotten; nothing about it follows."""

    __slots__ = ("key", "reason")

    def __init__(self, key: TransactionKey, reason: TerminationReason) -> None:
        self.key: Final = key
        self.reason: Final = reason

    def _fields(self) -> tuple[object, ...]:
        return (self.key, self.reason)


class RequestReceived(Value):
    """A new request created server transaction *key*; the TU must answer it.

    For a CANCEL, *cancels* is the INVITE server transaction it matches (§9.2), or ``None``
    (answer 481).
    """

    __slots__ = ("cancels", "key", "request", "source")

    def __init__(
        self,
        key: TransactionKey,
        request: Request,
        source: Address,
        cancels: TransactionKey | None = None,
    ) -> None:
        self.key: Final = key
        self.request: Final = request
        self.source: Final = source
        self.cancels: Final = cancels

    def _fields(self) -> tuple[object, ...]:
        return (self.key, self.request, self.source, self.cancels)


class AckReceived(Value):
    """An ACK that matched no server transaction: the ACK for a 2xx (matched by dialog, RFC 3261
    §13.3.1.4, §17.2.3), or one without an RFC 3261 branch."""

    __slots__ = ("request", "source")

    def __init__(self, request: Request, source: Address) -> None:
        self.request: Final = request
        self.source: Final = source

    def _fields(self) -> tuple[object, ...]:
        return (self.request, self.source)


class RequestRejected(Value):
    """A request answered statelessly with *status* and no transaction (400: branch without the
    magic cookie; 503: :data:`MAX_TRANSACTIONS` reached). For logs and policy counters."""

    __slots__ = ("request", "source", "status")

    def __init__(self, request: Request, source: Address, status: int) -> None:
        self.request: Final = request
        self.source: Final = source
        self.status: Final = status

    def _fields(self) -> tuple[object, ...]:
        return (self.request, self.source, self.status)


#: What a single :class:`Transaction` returns.
Action: TypeAlias = (
    SendMessage
    | StartTimer
    | CancelTimer
    | PassToTU
    | TimedOut
    | TransportFailed
    | TransactionTerminated
)
#: What the :class:`TransactionManager` returns (timers stay inside it).
Event: TypeAlias = (
    SendMessage
    | PassToTU
    | TimedOut
    | TransportFailed
    | TransactionTerminated
    | RequestReceived
    | AckReceived
    | RequestRejected
)


# =============================================================================================
# Steps and transitions


class Do(enum.Enum):
    """Message steps of a transition."""

    SEND_REQUEST = "send request"  # (re)transmit the request that created the transaction
    SEND_ACK = "send ACK"  # build the ACK for this non-2xx final (§17.1.1.3) and send it
    RESEND_ACK = "resend ACK"
    SEND_TRYING = "send 100"  # §17.2.1: generate 100 Trying (always: the TU may be slow)
    SEND_RESPONSE = "send TU response"  # send the TU's response; it becomes the last response
    RESEND_RESPONSE = "resend last response"
    PASS_TO_TU = "pass to TU"
    REPORT_TIMEOUT = "report timeout"
    REPORT_TRANSPORT_ERROR = "report transport error"


class Interval(enum.Enum):
    INITIAL = "initial"  # the timer's start value for this transport (see TimerSettings.initial)
    DOUBLED = "doubled"  # twice the previous interval (A uncapped; E, G capped at T2)
    T2 = "T2"  # §17.1.2.2: E in Proceeding is reset to T2


@dataclass(frozen=True, slots=True)
class Start:
    """Start (or restart) a timer. Skipped if the timer is not used on this transport; a zero
    value fires it at once, after the current transition."""

    timer: Timer
    interval: Interval = Interval.INITIAL

    def __str__(self) -> str:
        suffix = "" if self.interval is Interval.INITIAL else f" ({self.interval.value})"
        return f"start {self.timer.name}{suffix}"


@dataclass(frozen=True, slots=True)
class Stop:
    """Cancel a running timer (a no-op when it is not running)."""

    timer: Timer

    def __str__(self) -> str:
        return f"stop {self.timer.name}"


Step: TypeAlias = Do | Start | Stop


@dataclass(frozen=True, slots=True)
class Transition:
    target: State
    steps: tuple[Step, ...] = ()


Table: TypeAlias = Mapping[tuple[State, Input], Transition]


@dataclass(frozen=True, slots=True, eq=False)
class Machine:
    """One transaction state machine: its table and input alphabet.

    Every ``(state, input)`` with *state* in :attr:`live_states` and *input* in :attr:`inputs`
    has a row (a test enforces it); INITIAL has exactly one, for :attr:`start_input`.
    Machines compare and hash by identity (there are four).
    """

    name: str
    role: Role
    invite: bool
    start_input: Input
    inputs: frozenset[Input]
    live_states: tuple[State, ...]
    table: Table


def _go(target: State, *steps: Step) -> Transition:
    return Transition(target, steps)


def _stay(state: State, *inputs: Input) -> dict[tuple[State, Input], Transition]:
    """Rows that absorb *inputs* in *state*: no state change, nothing sent."""
    return {(state, i): Transition(state) for i in inputs}


S = State
I = Input  # noqa: E741  # short alias for the tables only
A, B, D, E, F, G, H, TI, J, K, L, M = (
    Timer.A, Timer.B, Timer.D, Timer.E, Timer.F, Timer.G, Timer.H, Timer.I, Timer.J, Timer.K,
    Timer.L, Timer.M,
)  # fmt: skip

# --- INVITE client transaction: RFC 3261 §17.1.1.2 (Figure 5) + RFC 6026 §7.2 ---------------

_ICT: dict[tuple[State, Input], Transition] = {
    (S.INITIAL, I.TU_REQUEST): _go(S.CALLING, Do.SEND_REQUEST, Start(A), Start(B)),
    # Calling: retransmit on A (doubling), give up on B.
    (S.CALLING, I.RESPONSE_1XX): _go(S.PROCEEDING, Stop(A), Stop(B), Do.PASS_TO_TU),
    (S.CALLING, I.RESPONSE_2XX): _go(S.ACCEPTED, Stop(A), Stop(B), Do.PASS_TO_TU, Start(M)),
    (S.CALLING, I.RESPONSE_300_699): _go(
        S.COMPLETED, Stop(A), Stop(B), Do.SEND_ACK, Do.PASS_TO_TU, Start(D)
    ),
    (S.CALLING, I.TIMER_A): _go(S.CALLING, Do.SEND_REQUEST, Start(A, Interval.DOUBLED)),
    (S.CALLING, I.TIMER_B): _go(S.TERMINATED, Do.REPORT_TIMEOUT),
    (S.CALLING, I.TRANSPORT_ERROR): _go(S.TERMINATED, Do.REPORT_TRANSPORT_ERROR),
    **_stay(S.CALLING, I.TIMER_D, I.TIMER_M),
    # Proceeding: no more retransmissions, no timeout (the TU CANCELs, §9.1).
    (S.PROCEEDING, I.RESPONSE_1XX): _go(S.PROCEEDING, Do.PASS_TO_TU),
    (S.PROCEEDING, I.RESPONSE_2XX): _go(S.ACCEPTED, Do.PASS_TO_TU, Start(M)),
    (S.PROCEEDING, I.RESPONSE_300_699): _go(S.COMPLETED, Do.SEND_ACK, Do.PASS_TO_TU, Start(D)),
    # A lost connection means no final response can come on it.
    (S.PROCEEDING, I.TRANSPORT_ERROR): _go(S.TERMINATED, Do.REPORT_TRANSPORT_ERROR),
    **_stay(S.PROCEEDING, I.TIMER_A, I.TIMER_B, I.TIMER_D, I.TIMER_M),
    # Completed: re-ACK every retransmitted final, never bother the TU again.
    (S.COMPLETED, I.RESPONSE_300_699): _go(S.COMPLETED, Do.RESEND_ACK),
    (S.COMPLETED, I.TIMER_D): _go(S.TERMINATED),
    (S.COMPLETED, I.TRANSPORT_ERROR): _go(S.TERMINATED),  # the TU already has its final
    **_stay(S.COMPLETED, I.RESPONSE_1XX, I.RESPONSE_2XX, I.TIMER_A, I.TIMER_B, I.TIMER_M),
    # Accepted (RFC 6026): every 2xx (retransmission or another fork) goes to the TU.
    (S.ACCEPTED, I.RESPONSE_2XX): _go(S.ACCEPTED, Do.PASS_TO_TU),
    (S.ACCEPTED, I.TIMER_M): _go(S.TERMINATED),
    **_stay(
        S.ACCEPTED, I.RESPONSE_1XX, I.RESPONSE_300_699, I.TIMER_A, I.TIMER_B, I.TIMER_D,
        I.TRANSPORT_ERROR,
    ),
}  # fmt: skip

# --- non-INVITE client transaction: RFC 3261 §17.1.2.2 (Figure 6) ---------------------------

_NICT: dict[tuple[State, Input], Transition] = {
    (S.INITIAL, I.TU_REQUEST): _go(S.TRYING, Do.SEND_REQUEST, Start(E), Start(F)),
    (S.TRYING, I.RESPONSE_1XX): _go(S.PROCEEDING, Do.PASS_TO_TU),
    (S.TRYING, I.RESPONSE_2XX): _go(S.COMPLETED, Stop(E), Stop(F), Do.PASS_TO_TU, Start(K)),
    (S.TRYING, I.RESPONSE_300_699): _go(S.COMPLETED, Stop(E), Stop(F), Do.PASS_TO_TU, Start(K)),
    (S.TRYING, I.TIMER_E): _go(S.TRYING, Do.SEND_REQUEST, Start(E, Interval.DOUBLED)),
    (S.TRYING, I.TIMER_F): _go(S.TERMINATED, Do.REPORT_TIMEOUT),
    (S.TRYING, I.TRANSPORT_ERROR): _go(S.TERMINATED, Do.REPORT_TRANSPORT_ERROR),
    **_stay(S.TRYING, I.TIMER_K),
    (S.PROCEEDING, I.RESPONSE_1XX): _go(S.PROCEEDING, Do.PASS_TO_TU),
    (S.PROCEEDING, I.RESPONSE_2XX): _go(S.COMPLETED, Stop(E), Stop(F), Do.PASS_TO_TU, Start(K)),
    (S.PROCEEDING, I.RESPONSE_300_699): _go(
        S.COMPLETED, Stop(E), Stop(F), Do.PASS_TO_TU, Start(K)
    ),
    (S.PROCEEDING, I.TIMER_E): _go(S.PROCEEDING, Do.SEND_REQUEST, Start(E, Interval.T2)),
    (S.PROCEEDING, I.TIMER_F): _go(S.TERMINATED, Do.REPORT_TIMEOUT),
    (S.PROCEEDING, I.TRANSPORT_ERROR): _go(S.TERMINATED, Do.REPORT_TRANSPORT_ERROR),
    **_stay(S.PROCEEDING, I.TIMER_K),
    # Completed: absorb response retransmissions until K.
    (S.COMPLETED, I.TIMER_K): _go(S.TERMINATED),
    **_stay(
        S.COMPLETED, I.RESPONSE_1XX, I.RESPONSE_2XX, I.RESPONSE_300_699, I.TIMER_E, I.TIMER_F,
        I.TRANSPORT_ERROR,
    ),
}  # fmt: skip

# --- INVITE server transaction: RFC 3261 §17.2.1 (Figure 7) + RFC 6026 §7.1 -----------------

_TU_ANY = (I.TU_1XX, I.TU_2XX, I.TU_300_699)

_IST: dict[tuple[State, Input], Transition] = {
    (S.INITIAL, I.REQUEST): _go(S.PROCEEDING, Do.SEND_TRYING),
    # Proceeding: the TU decides; retransmitted INVITEs get the last provisional again.
    (S.PROCEEDING, I.REQUEST): _go(S.PROCEEDING, Do.RESEND_RESPONSE),
    (S.PROCEEDING, I.TU_1XX): _go(S.PROCEEDING, Do.SEND_RESPONSE),
    (S.PROCEEDING, I.TU_2XX): _go(S.ACCEPTED, Do.SEND_RESPONSE, Start(L)),
    (S.PROCEEDING, I.TU_300_699): _go(S.COMPLETED, Do.SEND_RESPONSE, Start(G), Start(H)),
    (S.PROCEEDING, I.TRANSPORT_ERROR): _go(S.TERMINATED, Do.REPORT_TRANSPORT_ERROR),
    **_stay(S.PROCEEDING, I.ACK, I.TIMER_G, I.TIMER_H, I.TIMER_I, I.TIMER_L),
    # Completed: retransmit the final on G (doubling to T2) and on each INVITE until the ACK.
    (S.COMPLETED, I.REQUEST): _go(S.COMPLETED, Do.RESEND_RESPONSE),
    (S.COMPLETED, I.ACK): _go(S.CONFIRMED, Stop(G), Stop(H), Start(TI)),
    (S.COMPLETED, I.TIMER_G): _go(S.COMPLETED, Do.RESEND_RESPONSE, Start(G, Interval.DOUBLED)),
    (S.COMPLETED, I.TIMER_H): _go(S.TERMINATED, Do.REPORT_TIMEOUT),
    (S.COMPLETED, I.TRANSPORT_ERROR): _go(S.TERMINATED, Do.REPORT_TRANSPORT_ERROR),
    **_stay(S.COMPLETED, *_TU_ANY, I.TIMER_I, I.TIMER_L),
    # Confirmed: absorb ACK retransmissions until I.
    (S.CONFIRMED, I.TIMER_I): _go(S.TERMINATED),
    **_stay(
        S.CONFIRMED, I.REQUEST, I.ACK, *_TU_ANY, I.TIMER_G, I.TIMER_H, I.TIMER_L,
        I.TRANSPORT_ERROR,
    ),
    # Accepted (RFC 6026): absorb INVITE retransmissions (the TU retransmits the 2xx itself),
    # send the TU's 2xx, pass ACKs up. A transport error is reported but the state is kept, or
    # the next INVITE retransmission would look like a new call.
    (S.ACCEPTED, I.ACK): _go(S.ACCEPTED, Do.PASS_TO_TU),
    (S.ACCEPTED, I.TU_2XX): _go(S.ACCEPTED, Do.SEND_RESPONSE),
    (S.ACCEPTED, I.TIMER_L): _go(S.TERMINATED),
    (S.ACCEPTED, I.TRANSPORT_ERROR): _go(S.ACCEPTED, Do.REPORT_TRANSPORT_ERROR),
    **_stay(S.ACCEPTED, I.REQUEST, I.TU_1XX, I.TU_300_699, I.TIMER_G, I.TIMER_H, I.TIMER_I),
}  # fmt: skip

# --- non-INVITE server transaction: RFC 3261 §17.2.2 (Figure 8) -----------------------------

_NIST: dict[tuple[State, Input], Transition] = {
    (S.INITIAL, I.REQUEST): _go(S.TRYING),
    # Trying: "retransmissions of the request ... MUST be discarded" (nothing to resend yet).
    (S.TRYING, I.TU_1XX): _go(S.PROCEEDING, Do.SEND_RESPONSE),
    (S.TRYING, I.TU_2XX): _go(S.COMPLETED, Do.SEND_RESPONSE, Start(J)),
    (S.TRYING, I.TU_300_699): _go(S.COMPLETED, Do.SEND_RESPONSE, Start(J)),
    (S.TRYING, I.TRANSPORT_ERROR): _go(S.TERMINATED, Do.REPORT_TRANSPORT_ERROR),
    **_stay(S.TRYING, I.REQUEST, I.TIMER_J),
    (S.PROCEEDING, I.REQUEST): _go(S.PROCEEDING, Do.RESEND_RESPONSE),
    (S.PROCEEDING, I.TU_1XX): _go(S.PROCEEDING, Do.SEND_RESPONSE),
    (S.PROCEEDING, I.TU_2XX): _go(S.COMPLETED, Do.SEND_RESPONSE, Start(J)),
    (S.PROCEEDING, I.TU_300_699): _go(S.COMPLETED, Do.SEND_RESPONSE, Start(J)),
    (S.PROCEEDING, I.TRANSPORT_ERROR): _go(S.TERMINATED, Do.REPORT_TRANSPORT_ERROR),
    **_stay(S.PROCEEDING, I.TIMER_J),
    # Completed: resend the final for each retransmission; later TU responses are discarded.
    (S.COMPLETED, I.REQUEST): _go(S.COMPLETED, Do.RESEND_RESPONSE),
    (S.COMPLETED, I.TIMER_J): _go(S.TERMINATED),
    (S.COMPLETED, I.TRANSPORT_ERROR): _go(S.TERMINATED, Do.REPORT_TRANSPORT_ERROR),
    **_stay(S.COMPLETED, *_TU_ANY),
}  # fmt: skip

del S, I, A, B, D, E, F, G, H, TI, J, K, L, M

_CLIENT_RESPONSES = frozenset({Input.RESPONSE_1XX, Input.RESPONSE_2XX, Input.RESPONSE_300_699})
_SERVER_TU = frozenset(_TU_ANY)

INVITE_CLIENT = Machine(
    name="INVITE client transaction",
    role=Role.CLIENT,
    invite=True,
    start_input=Input.TU_REQUEST,
    inputs=_CLIENT_RESPONSES
    | {Input.TIMER_A, Input.TIMER_B, Input.TIMER_D, Input.TIMER_M, Input.TRANSPORT_ERROR},
    live_states=(State.CALLING, State.PROCEEDING, State.COMPLETED, State.ACCEPTED),
    table=MappingProxyType(_ICT),
)
NON_INVITE_CLIENT = Machine(
    name="non-INVITE client transaction",
    role=Role.CLIENT,
    invite=False,
    start_input=Input.TU_REQUEST,
    inputs=_CLIENT_RESPONSES | {Input.TIMER_E, Input.TIMER_F, Input.TIMER_K, Input.TRANSPORT_ERROR},
    live_states=(State.TRYING, State.PROCEEDING, State.COMPLETED),
    table=MappingProxyType(_NICT),
)
INVITE_SERVER = Machine(
    name="INVITE server transaction",
    role=Role.SERVER,
    invite=True,
    start_input=Input.REQUEST,
    inputs=_SERVER_TU
    | {
        Input.REQUEST,
        Input.ACK,
        Input.TIMER_G,
        Input.TIMER_H,
        Input.TIMER_I,
        Input.TIMER_L,
        Input.TRANSPORT_ERROR,
    },
    live_states=(State.PROCEEDING, State.COMPLETED, State.CONFIRMED, State.ACCEPTED),
    table=MappingProxyType(_IST),
)
NON_INVITE_SERVER = Machine(
    name="non-INVITE server transaction",
    role=Role.SERVER,
    invite=False,
    start_input=Input.REQUEST,
    inputs=_SERVER_TU | {Input.REQUEST, Input.TIMER_J, Input.TRANSPORT_ERROR},
    live_states=(State.TRYING, State.PROCEEDING, State.COMPLETED),
    table=MappingProxyType(_NIST),
)
MACHINES = (INVITE_CLIENT, NON_INVITE_CLIENT, INVITE_SERVER, NON_INVITE_SERVER)
_ALL_TIMERS = tuple(Timer)
#: The timers each machine's table can start (the only ones a terminated one can leave armed).
_MACHINE_TIMERS: dict[str, tuple[Timer, ...]] = {
    m.name: tuple(
        t
        for t in Timer
        if any(Start(t, i) in row.steps for row in m.table.values() for i in Interval)
    )
    for m in MACHINES
}

_TIMEOUT_TIMERS = frozenset({Timer.B, Timer.F, Timer.H})


def machine_for(role: Role, method: str) -> Machine:
    """The machine a *method* request gets in *role* (ACK never gets one)."""
    if role is Role.CLIENT:
        return INVITE_CLIENT if method == "INVITE" else NON_INVITE_CLIENT
    return INVITE_SERVER if method == "INVITE" else NON_INVITE_SERVER


def render_table(machine: Machine) -> str:
    """The machine's table as Markdown (docs/runtime/transactions.md embeds these)."""
    lines = [
        f"#### {machine.name}",
        "",
        "| state | input | next state | steps |",
        "|---|---|---|---|",
    ]
    for (state, inp), row in machine.table.items():
        if not row.steps and row.target is state:
            continue
        steps = ", ".join(s.value if isinstance(s, Do) else str(s) for s in row.steps)
        lines.append(f"| {state.value} | {inp.value} | {row.target.value} | {steps or '—'} |")
    absorbed: dict[State, list[str]] = {}
    for (state, inp), row in machine.table.items():
        if not row.steps and row.target is state:
            absorbed.setdefault(state, []).append(inp.value)
    for state, inputs in absorbed.items():
        lines.append(f"| {state.value} | {', '.join(inputs)} | {state.value} | absorbed |")
    return "\n".join(lines) + "\n"


# =============================================================================================
# Messages the transaction layer builds


def build_ack(request: Request, response: Response) -> Request:
    """The ACK for a non-2xx final *response* to INVITE *request* (RFC 3261 §17.1.1.3).

    Request-URI, Call-ID and From of the request; To of the response (with its tag); one Via,
    the request's top Via (same branch); CSeq number with method ACK; the request's Route
    header fields; Max-Forwards of the request (70 if it had none).
    """
    via = request.get_all("via")[0]
    headers: list[tuple[str, str]] = [("Via", via)]
    headers.append(("Max-Forwards", request.get("max-forwards") or "70"))
    headers.extend(("Route", v) for n, v in request.headers if header_key(n) == "route")
    headers.append(("From", request.get("from") or ""))
    headers.append(("To", response.get("to") or ""))
    headers.append(("Call-ID", request.get("call-id") or ""))
    headers.append(("CSeq", f"{request.cseq.number} ACK"))
    return Request(method="ACK", uri=request.uri, headers=tuple(headers))


def build_cancel(request: Request) -> Request:
    """A CANCEL for *request* (RFC 3261 §9.1): same Request-URI, Call-ID, From, To and CSeq
    number, one Via equal to the request's top Via, the request's Route header fields.

    Send it only once a provisional response has arrived (§9.1); it is a client transaction of
    its own (``TransactionManager.send_request``).
    """
    headers: list[tuple[str, str]] = [("Via", request.get_all("via")[0])]
    headers.append(("Max-Forwards", request.get("max-forwards") or "70"))
    headers.extend(("Route", v) for n, v in request.headers if header_key(n) == "route")
    headers.append(("From", request.get("from") or ""))
    headers.append(("To", request.get("to") or ""))
    headers.append(("Call-ID", request.get("call-id") or ""))
    headers.append(("CSeq", f"{request.cseq.number} CANCEL"))
    return Request(method="CANCEL", uri=request.uri, headers=tuple(headers))


def _trying(request: Request) -> Response:
    # RFC 3261 §8.2.6.1: a 100 copies the request's Timestamp header field.
    timestamp = request.get("timestamp")
    extra = () if timestamp is None else (("Timestamp", timestamp),)
    return build_response(request, 100, headers=extra)


def response_input(role: Role, status: int) -> Input:
    """The input a response of *status* is: received (client) or sent by the TU (server)."""
    if not 100 <= status <= 699:
        raise ValueError(f"status {status} is outside 100-699")
    if role is Role.CLIENT:
        if status < 200:
            return Input.RESPONSE_1XX
        return Input.RESPONSE_2XX if status < 300 else Input.RESPONSE_300_699
    if status < 200:
        return Input.TU_1XX
    return Input.TU_2XX if status < 300 else Input.TU_300_699


# =============================================================================================
# One transaction


class Transaction:
    """One client or server transaction: a :class:`Machine` plus the messages it remembers.

    Create it, call :meth:`start`, then feed it responses (client), retransmitted requests, ACKs
    and TU responses (server), fired timers and transport errors. Every call returns the
    actions to perform, in order. After :class:`TransactionTerminated` every call returns
    ``[]``; the caller drops the transaction's pending timers.

    A timer input for a timer that is not running (stale, cancelled, never started on this
    transport) is ignored before the table is consulted.
    """

    __slots__ = (
        "_compacted",
        "_intervals",
        "_running",
        "ack",
        "key",
        "last_response",
        "machine",
        "peer",
        "reliable",
        "request",
        "state",
        "timers",
    )

    def __init__(
        self,
        machine: Machine,
        request: Request,
        peer: Address,
        *,
        reliable: bool,
        timers: TimerSettings = DEFAULT_TIMERS,
        key: TransactionKey | None = None,
    ) -> None:
        if key is None:
            key = (
                TransactionKey.for_client(request)
                if machine.role is Role.CLIENT
                else TransactionKey.for_server(request)
            )
        self.machine = machine
        self.key = key
        self.request = request
        #: destination of requests (client) or of responses (server: the request's source).
        self.peer = peer
        self.reliable = reliable
        self.timers = timers
        self.state = State.INITIAL
        self.last_response: Response | None = None
        self.ack: Request | None = None
        self._running: list[Timer] = []  # at most four: a list is a third of a set's size
        self._intervals: dict[Timer, float] = {}
        self._compacted = False

    def __repr__(self) -> str:
        return f"<Transaction {self.machine.name} {self.key.branch} {self.state.value}>"

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    @property
    def running_timers(self) -> frozenset[Timer]:
        return frozenset(self._running)

    # -- typed entry points ----------------------------------------------------------------------

    def start(self) -> list[Action]:
        """Client: send the request. Server: take the request in (INVITE: send 100 Trying)."""
        return self.handle(self.machine.start_input, self.request)

    def receive_response(self, response: Response) -> list[Action]:
        return self.handle(response_input(Role.CLIENT, response.status), response)

    def receive_request(self, request: Request) -> list[Action]:
        """A retransmission of the request, or an ACK (server transactions)."""
        return self.handle(Input.ACK if request.method == "ACK" else Input.REQUEST, request)

    def send_response(self, response: Response) -> list[Action]:
        return self.handle(response_input(Role.SERVER, response.status), response)

    def fire_timer(self, timer: Timer) -> list[Action]:
        return self.handle(TIMER_INPUT[timer])

    def transport_error(self) -> list[Action]:
        return self.handle(Input.TRANSPORT_ERROR)

    # -- the interpreter -------------------------------------------------------------------------

    def handle(self, event: Input, message: Message | None = None) -> list[Action]:
        """Apply the table row for ``(state, event)``; inputs without a row are ignored."""
        out: list[Action] = []
        # Inputs queued by zero-delay timers (reliable transports) are handled in turn.
        pending: list[tuple[Input, Message | None]] = [(event, message)]
        table = self.machine.table
        running = self._running
        index = 0
        while index < len(pending) and self.state is not State.TERMINATED:
            current, msg = pending[index]
            index += 1
            timer = _INPUT_TIMER.get(current)
            if timer is not None:
                if timer not in running:
                    continue  # stale
                running.remove(timer)
            row = table.get((self.state, current))
            if row is None:
                continue
            self.state = row.target
            for step in row.steps:
                self._apply(step, current, msg, out, pending)
            if self.state is State.TERMINATED:
                running.clear()
                out.append(TransactionTerminated(self.key, _reason(current)))
        if self.state in _WAITING_STATES and not self.reliable and not self._compacted:
            self._compact()
        return out

    def _apply(
        self,
        step: Step,
        current: Input,
        msg: Message | None,
        out: list[Action],
        pending: list[tuple[Input, Message | None]],
    ) -> None:
        kind = type(step)
        if kind is Start:
            self._start(step, out, pending)  # type: ignore[arg-type]  # narrowed by type()
        elif kind is Stop:
            timer = step.timer  # type: ignore[union-attr]
            if timer in self._running:
                self._running.remove(timer)
                out.append(CancelTimer(self.key, timer))
        elif step is Do.SEND_RESPONSE:
            if isinstance(msg, Response):
                self.last_response = msg
                out.append(SendMessage(msg, self.peer))
        elif step is Do.SEND_REQUEST:
            out.append(SendMessage(self.request, self.peer))
        elif step is Do.PASS_TO_TU:
            if msg is not None:
                out.append(PassToTU(self.key, msg))
        elif step is Do.RESEND_RESPONSE:
            if self.last_response is not None:
                out.append(SendMessage(self.last_response, self.peer))
        elif step is Do.SEND_TRYING:
            self.last_response = _trying(self.request)
            out.append(SendMessage(self.last_response, self.peer))
        elif step is Do.SEND_ACK:
            if isinstance(msg, Response):
                self.ack = build_ack(self.request, msg)
                out.append(SendMessage(self.ack, self.peer))
        elif step is Do.RESEND_ACK:
            if self.ack is not None:
                out.append(SendMessage(self.ack, self.peer))
        elif step is Do.REPORT_TIMEOUT:
            out.append(TimedOut(self.key, _INPUT_TIMER[current]))
        elif step is Do.REPORT_TRANSPORT_ERROR:
            out.append(TransportFailed(self.key))

    def _compact(self) -> None:
        """Once a transaction has its final response it never sends its request again: in
        Completed or Accepted it only absorbs retransmissions, resends the final response
        (server) or the ACK (client), for up to 32 s over UDP (Timers D, J, L, M). Keep of the
        request only what a response or an ACK is built from, so that thousands of waiting
        transactions cost little memory; a server's final response (the TU is done with it)
        also drops its parsed views, keeping its wire form for retransmissions."""
        self._compacted = True
        final = self.last_response
        if final is not None and self.machine.role is Role.SERVER and self.state is State.COMPLETED:
            forget_parsed_views(final)
        request = self.request
        keys = _KEY_CACHE
        kept = [
            h for h in request.headers if (keys.get(h[0]) or header_key(h[0])) in _KEPT_IN_COMPLETED
        ]
        if len(kept) < len(request.headers) or request.body:
            self.request = Request(method=request.method, uri=request.uri, headers=tuple(kept))

    def _start(
        self, step: Start, out: list[Action], pending: list[tuple[Input, Message | None]]
    ) -> None:
        timer = step.timer
        initial = self.timers.initial(timer, reliable=self.reliable)
        if initial is None:
            return  # not used on this transport
        if step.interval is Interval.DOUBLED:
            delay = self.timers.doubled(timer, self._intervals.get(timer, initial))
        elif step.interval is Interval.T2:
            delay = self.timers.t2
        else:
            delay = initial
        if timer in _DOUBLING:
            self._intervals[timer] = delay  # only read to double A, E and G
        if timer not in self._running:
            self._running.append(timer)
        if delay <= 0:
            pending.append((_TIMER_INPUT[timer], None))
        else:
            out.append(StartTimer(self.key, timer, delay))


_DOUBLING = frozenset({Timer.A, Timer.E, Timer.G})
#: States where a transaction only waits out its last timer (see ``Transaction._compact``).
_WAITING_STATES = frozenset({State.COMPLETED, State.ACCEPTED})
#: Header fields a completed server transaction keeps of its request (see ``_compact``).
_KEPT_IN_COMPLETED = frozenset(
    {"via", "from", "to", "call-id", "cseq", "timestamp", "max-forwards", "route", "record-route"}
)


def _reason(last: Input) -> TerminationReason:
    timer = _INPUT_TIMER.get(last)
    if timer in _TIMEOUT_TIMERS:
        return TerminationReason.TIMED_OUT
    if last is Input.TRANSPORT_ERROR:
        return TerminationReason.TRANSPORT_ERROR
    return TerminationReason.COMPLETED


# =============================================================================================
# The manager


class TransactionManager:
    """All transactions of one transport-independent core, and their timers.

    >>> manager = TransactionManager()
    >>> events = manager.receive(message, source, now)       # from the transport
    >>> key, events = manager.send_request(request, destination, now)
    >>> events = manager.send_response(response, now)        # TU answers a server transaction
    >>> deadline = manager.next_deadline()                   # sleep until then (or new input)
    >>> events = manager.handle_timers(now)

    Every call returns :data:`Event` outputs; perform them in order (a 100 Trying precedes the
    :class:`RequestReceived` it belongs to). Timers never leave the manager.
    """

    def __init__(
        self,
        *,
        timers: TimerSettings = DEFAULT_TIMERS,
        max_transactions: int = MAX_TRANSACTIONS,
        retry_after: int = RETRY_AFTER_SECONDS,
    ) -> None:
        if isinstance(max_transactions, bool) or max_transactions <= 0:
            raise ValueError(f"max_transactions must be positive, got {max_transactions!r}")
        self.timers = timers
        self.max_transactions = max_transactions
        self.retry_after = retry_after
        self._transactions: dict[TransactionKey, Transaction] = {}
        self._heap: list[tuple[float, int, TransactionKey, Timer]] = []
        self._armed: dict[tuple[TransactionKey, Timer], int] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._transactions)

    def __contains__(self, key: object) -> bool:
        return key in self._transactions

    def unsettled(self) -> int:
        """Transactions still waiting for a final response or an ACK. The others (Completed,
        Confirmed, Accepted) only wait out a timer to absorb retransmissions, up to 32 s over
        UDP: a draining process need not wait for them."""
        return sum(t.state not in _SETTLED for t in self._transactions.values())

    def transaction(self, key: TransactionKey) -> Transaction | None:
        """The live transaction *key* (read its ``state``; do not drive it directly)."""
        return self._transactions.get(key)

    # -- input from the transport ----------------------------------------------------------------

    def receive(
        self, message: Message, source: Address, now: float, *, reliable: bool | None = None
    ) -> list[Event]:
        """A parsed message from the network. *reliable* defaults to the top Via transport."""
        if isinstance(message, Response):
            return self._receive_response(message, now)
        return self._receive_request(message, source, now, reliable)

    def _receive_response(self, response: Response, now: float) -> list[Event]:
        if not 100 <= response.status <= 699:
            return []
        try:
            key = TransactionKey.for_client(response)
        except SIPProtocolError:
            return []  # no RFC 3261 branch: cannot be ours (§17.1.3), never answered
        tx = self._transactions.get(key)
        if tx is None:
            return []  # stray response: discarded (§17.1.3, §18.1.2)
        return self._run(tx.receive_response(response), now)

    def _receive_request(
        self, request: Request, source: Address, now: float, reliable: bool | None
    ) -> list[Event]:
        try:
            via = request.top_via
        except SIPProtocolError:
            return self._reject(request, source, 400, "Missing or malformed Via")
        if request.method == "ACK":
            if via.has_rfc3261_branch:
                tx = self._transactions.get(TransactionKey.for_server(request))
                if tx is not None:
                    return self._run(tx.receive_request(request), now)
            return [AckReceived(request, source)]
        if not via.has_rfc3261_branch:
            return self._reject(request, source, 400, "Missing RFC 3261 Branch")
        key = TransactionKey.for_server(request)
        tx = self._transactions.get(key)
        if tx is not None:
            return self._run(tx.receive_request(request), now)  # retransmission
        if len(self._transactions) >= self.max_transactions:
            retry = (("Retry-After", str(self.retry_after)),)
            return self._reject(request, source, 503, "Service Unavailable", retry)
        if reliable is None:
            reliable = is_reliable_transport(via.transport)
        machine = machine_for(Role.SERVER, request.method)
        tx = Transaction(machine, request, source, reliable=reliable, timers=self.timers, key=key)
        self._transactions[key] = tx
        cancels = self._cancelled_key(key) if request.method == "CANCEL" else None
        events = self._run(tx.start(), now)
        events.append(RequestReceived(key, request, source, cancels))
        return events

    def _reject(
        self,
        request: Request,
        source: Address,
        status: int,
        reason: str,
        headers: Iterable[tuple[str, str]] = (),
    ) -> list[Event]:
        if request.method == "ACK":
            return []  # an ACK is never answered (§17.2.3)
        try:
            response = build_response(request, status, reason, headers=headers)
        except SIPProtocolError:
            return [RequestRejected(request, source, status)]
        return [SendMessage(response, source), RequestRejected(request, source, status)]

    def transport_error(self, key: TransactionKey, now: float) -> list[Event]:
        """The transport failed to send a message of transaction *key* (§17.1.4, §17.2.4)."""
        tx = self._transactions.get(key)
        return [] if tx is None else self._run(tx.transport_error(), now)

    # -- input from the TU -----------------------------------------------------------------------

    def send_request(
        self, request: Request, destination: Address, now: float, *, reliable: bool | None = None
    ) -> tuple[TransactionKey, list[Event]]:
        """Create and start a client transaction for *request* (which carries its final top Via
        with an RFC 3261 branch: see :func:`new_branch`).

        Client transactions are not refused at :data:`MAX_TRANSACTIONS` (the TU is trusted; they
        still count toward the limit for incoming requests).

        :raises ValueError: ACK (never a transaction), no RFC 3261 branch, or a live client
            transaction with the same key.
        """
        if request.method == "ACK":
            raise ValueError("ACK is not a transaction (RFC 3261 §17.1.1.3, §13.2.2.4)")
        try:
            key = TransactionKey.for_client(request)
            via = request.top_via
        except SIPProtocolError as err:
            raise ValueError(f"request cannot start a client transaction: {err}") from err
        if key in self._transactions:
            raise ValueError(f"a client transaction with branch {key.branch} is live")
        if reliable is None:
            reliable = is_reliable_transport(via.transport)
        machine = machine_for(Role.CLIENT, request.method)
        tx = Transaction(
            machine, request, destination, reliable=reliable, timers=self.timers, key=key
        )
        self._transactions[key] = tx
        return key, self._run(tx.start(), now)

    def send_response(
        self, response: Response, now: float, *, key: TransactionKey | None = None
    ) -> list[Event]:
        """The TU's response to a server transaction (found from its top Via and CSeq, or
        *key*: the key of the :class:`RequestReceived` it answers).

        Returns ``[]`` when no transaction is live (it terminated: e.g. a 2xx retransmitted after
        Timer L) or when the transaction's state discards it (a second final).

        :raises ValueError: a response without a usable top Via / CSeq, or to an ACK.
        """
        try:
            if response.cseq.method == "ACK":
                raise ValueError("ACK is never answered")
            if key is None:
                key = TransactionKey.for_server(response)
        except SIPProtocolError as err:
            raise ValueError(f"response matches no server transaction: {err}") from err
        tx = self._transactions.get(key)
        return [] if tx is None else self._run(tx.send_response(response), now)

    # -- CANCEL (§9.2) ---------------------------------------------------------------------------

    def find_cancelled(self, cancel: Request) -> TransactionKey | None:
        """The live INVITE server transaction a CANCEL matches (§9.2 with §17.2.3), or None."""
        try:
            return self._cancelled_key(TransactionKey.for_server(cancel))
        except SIPProtocolError:
            return None

    def _cancelled_key(self, cancel_key: TransactionKey) -> TransactionKey | None:
        key = cancel_key.with_method("INVITE")
        return key if key in self._transactions else None

    # -- timers ----------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timers` next has work, or ``None`` with no timer running."""
        heap = self._heap
        while heap and self._armed.get((heap[0][2], heap[0][3])) != heap[0][1]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def handle_timers(self, now: float) -> list[Event]:
        """Fire every timer due at *now*, earliest first."""
        events: list[Event] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, seq, key, timer = heapq.heappop(heap)
            if self._armed.get((key, timer)) != seq:
                continue  # cancelled or restarted
            del self._armed[key, timer]
            tx = self._transactions.get(key)
            if tx is not None:
                events.extend(self._run(tx.fire_timer(timer), now))
        return events

    def _run(self, actions: list[Action], now: float) -> list[Event]:
        events: list[Event] = []
        for action in actions:
            if isinstance(action, StartTimer):
                seq = next(self._seq)
                self._armed[action.key, action.timer] = seq
                heapq.heappush(self._heap, (now + action.delay, seq, action.key, action.timer))
            elif isinstance(action, CancelTimer):
                self._armed.pop((action.key, action.timer), None)
            else:
                if isinstance(action, TransactionTerminated):
                    self._forget(action.key)
                events.append(action)
        if len(self._heap) > 64 + 4 * len(self._armed):
            self._compact()
        return events

    def _forget(self, key: TransactionKey) -> None:
        tx = self._transactions.pop(key, None)
        armed = self._armed
        for timer in Timer if tx is None else _MACHINE_TIMERS.get(tx.machine.name, _ALL_TIMERS):
            armed.pop((key, timer), None)

    def _compact(self) -> None:
        armed = self._armed
        self._heap = [e for e in self._heap if armed.get((e[2], e[3])) == e[1]]
        heapq.heapify(self._heap)
