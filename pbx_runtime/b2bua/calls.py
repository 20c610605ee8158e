"""In-tenant call control: a B2BUA between two registered extensions, sans-I/O.

The core feeds it transaction-layer events (a new INVITE, CANCEL, in-dialog request, ACK, a
response or timeout on one of our client transactions) and performs the
:mod:`~pbx_runtime.b2bua.actions` it returns. Call life is the table in
:mod:`~pbx_runtime.b2bua.table`; this module interprets its steps, relays in-dialog requests and
keeps the two timers the transaction layer leaves to a UAS core: 2xx retransmission until the
ACK (RFC 3261 §13.3.1.4) and the ring timeout. SDP bodies pass through untouched.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from enum import Enum

from pbx_runtime.registrar import Authenticator, AuthOutcome, Binding, LocationService
from pbx_runtime.sip import (
    NameAddr,
    Params,
    PassToTU,
    Request,
    RequestReceived,
    Response,
    SipUri,
    TelUri,
    TransactionKey,
    build_cancel,
    build_response,
    new_tag,
    unescape,
)

from .actions import Abandon, CallAction, Reply, SendAck, StartRequest
from .legs import Hop, Leg, Side, body_headers, new_call_id
from .table import CALL_TABLE, CallInput, CallState, Step

__all__ = ["ALLOW", "Call", "CallControl", "CallSettings", "caller_status"]

#: Methods we answer (OPTIONS ``Allow``, and 405/501 answers).
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE"
#: In-dialog methods relayed to the other leg once the call is up.
RELAYED_METHODS = frozenset({"INVITE", "INFO", "UPDATE", "OPTIONS", "MESSAGE"})
SDP = "application/sdp"


@dataclass(frozen=True, slots=True)
class CallSettings:
    auth_status: int = 407  # 407 Proxy-Authenticate (PBX convention) or 401
    max_calls: int = 1_000
    calls_per_user: int = 1
    ring_timeout: float = 120.0
    t1: float = 0.5
    t2: float = 4.0

    @property
    def timeout(self) -> float:
        return 64 * self.t1


#: Timer entries kept before those of ended calls are dropped (then: 8 per live call, or
#: twice what was left, whichever is more).
_TIMER_SLACK = 1024


class Purpose(Enum):
    __hash__ = object.__hash__  # members are singletons: identity hash, in C

    INVITE = "invite"
    CANCEL = "cancel"
    BYE = "bye"
    RELAY = "relay"


@dataclass(eq=False, slots=True)
class Relay:
    """An in-dialog request from one leg, re-issued on the other."""

    origin: Side
    request: Request  # as received (server transaction)
    out_cseq: int  # its CSeq on the other leg
    answer: Response | None = None  # the 2xx relayed back (INVITE), until the ACK


@dataclass(eq=False, slots=True)
class Call:
    state: CallState
    caller_user: str
    callee_user: str
    invite: Request  # the caller's INVITE
    server_key: TransactionKey
    caller: Leg
    callee: Leg
    callee_invite: Request
    started_at: float
    answered_at: float | None = None
    got_provisional: bool = False
    cancel_sent: bool = False
    answer: Response | None = None  # the 2xx relayed to the caller, retransmitted until ACK
    ack_body: bytes = b""
    ack_headers: list[tuple[str, str]] = field(default_factory=list)
    callee_ack: Request | None = None
    byes: set[TransactionKey] = field(default_factory=set)
    client_keys: set[TransactionKey] = field(default_factory=set)
    reinvite: Relay | None = None  # one INVITE transaction at a time (RFC 3261 §14.1)
    awaiting_ack: dict[tuple[Side, int], Relay] = field(default_factory=dict)

    def leg(self, side: Side) -> Leg:
        return self.caller if side is Side.CALLER else self.callee


class _Timer(Enum):
    __hash__ = object.__hash__  # members are singletons: identity hash, in C

    RETRANSMIT_2XX = "retransmit 2xx"
    NO_ACK = "no ACK"
    NO_ANSWER = "ring timeout"
    GIVE_UP = "cancelled callee never answered"


def caller_status(status: int) -> int:
    """The final the caller gets for the callee's *status*: the callee's own failures pass
    through, but nothing that would make the caller act on the callee's network (a redirect,
    an auth challenge of another realm) or blame us (5xx, 408) does."""
    if 300 <= status < 400 or status in (401, 407, 408) or 500 <= status < 600:
        return 480
    return status


class CallControl:
    """Calls between extensions of one tenant.

    :param hop_for_source: how to reach the sender of a request (its flow).
    :param hop_for_binding: how to reach a registered contact, ``None`` if unreachable.
    :param known_user: whether an extension exists (404 otherwise).
    """

    def __init__(
        self,
        domain: str,
        authenticator: Authenticator,
        location: LocationService,
        *,
        known_user: Callable[[str], bool],
        hop_for_source: Callable[[Hashable], Hop],
        hop_for_binding: Callable[[Binding], Hop | None],
        settings: CallSettings | None = None,
    ) -> None:
        self.domain = domain.lower()
        self.authenticator = authenticator
        self.location = location
        self.known_user = known_user
        self.hop_for_source = hop_for_source
        self.hop_for_binding = hop_for_binding
        self.settings = settings if settings is not None else CallSettings()
        self._calls: set[Call] = set()
        self._by_server_key: dict[TransactionKey, Call] = {}
        self._dialogs: dict[tuple[str, str], tuple[Call, Side]] = {}
        self._clients: dict[TransactionKey, tuple[Call, Purpose, Relay | None]] = {}
        self._active: dict[str, int] = {}
        self._timers: list[tuple[float, int, _Timer, Call, Relay | None, float]] = []
        self._compact_at = _TIMER_SLACK  # timer entries that trigger dropping ended calls
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._calls)

    def calls(self) -> list[Call]:
        return list(self._calls)

    # =========================================================================================
    # Requests from the transaction layer

    def on_request(self, event: RequestReceived, now: float) -> list[CallAction]:
        """A new server transaction: INVITE, CANCEL, or any request inside a dialog."""
        request = event.request
        if request.method == "CANCEL":
            return self._on_cancel(event, now)
        if request.to.tag is not None:
            return self._on_in_dialog(event, now)
        if request.method == "INVITE":
            return self._on_invite(event, now)
        return [Reply(build_response(request, 501, headers=(("Allow", ALLOW),)))]

    def on_ack(self, request: Request, now: float) -> list[CallAction]:
        """An ACK for a 2xx (no transaction), or one passed up by an Accepted INVITE server."""
        tag = request.to.tag
        found = None if tag is None else self._dialogs.get((request.call_id, tag))
        if found is None:
            return []
        call, side = found
        cseq = request.cseq.number
        if side is Side.CALLER and cseq == call.invite.cseq.number:
            if call.state is CallState.ANSWERED:
                call.ack_body = request.body
                call.ack_headers = body_headers(request)
            return self._fire(call, CallInput.CALLER_ACK, now, request)
        relay = call.awaiting_ack.pop((side, cseq), None)
        if relay is None:
            return []
        other = call.leg(side.other)
        ack = other.request("ACK", body=request.body, headers=body_headers(request),
                            cseq=relay.out_cseq)  # fmt: skip
        return [SendAck(ack, other.hop.destination)]

    def on_pass_to_tu(self, event: PassToTU, now: float) -> list[CallAction]:
        message = event.message
        if isinstance(message, Request):
            return self.on_ack(message, now) if message.method == "ACK" else []
        return self.on_response(event.key, message, now)

    # =========================================================================================
    # Responses and failures of our client transactions

    def on_response(self, key: TransactionKey, response: Response, now: float) -> list[CallAction]:
        entry = self._clients.get(key)
        if entry is None:
            return []
        call, purpose, relay = entry
        status = response.status
        if purpose is Purpose.INVITE:
            if status < 200:
                call.got_provisional = True
                if status == 100:  # only a deferred CANCEL cares about a 100
                    if call.state is not CallState.CANCELLING:
                        return []
                    return self._fire(call, CallInput.CALLEE_1XX, now)
                call.callee.learn_from_response(response)
                return self._fire(call, CallInput.CALLEE_1XX, now, response)
            if status < 300:
                call.callee.learn_from_response(response)
                call.answered_at = call.answered_at or now
                return self._fire(call, CallInput.CALLEE_2XX, now, response)
            return self._fire(call, CallInput.CALLEE_FAILED, now, response)
        if purpose is Purpose.BYE:
            return self._bye_done(call, key, now) if status >= 200 else []
        if purpose is Purpose.RELAY and relay is not None:
            return self._relay_response(call, relay, response, now)
        return []  # CANCEL answers need nothing

    def on_client_failed(self, key: TransactionKey, now: float) -> list[CallAction]:
        """Timer B/F fired or the transport failed on one of our client transactions."""
        entry = self._clients.get(key)
        if entry is None:
            return []
        call, purpose, relay = entry
        if purpose is Purpose.INVITE:
            return self._fire(call, CallInput.CALLEE_FAILED, now)
        if purpose is Purpose.BYE:
            return self._bye_done(call, key, now)
        if purpose is Purpose.RELAY and relay is not None:
            if call.reinvite is relay:
                call.reinvite = None
            return [Reply(build_response(relay.request, 408))]
        return []

    def on_terminated(self, key: TransactionKey) -> None:
        entry = self._clients.pop(key, None)
        if entry is not None:
            entry[0].client_keys.discard(key)

    # =========================================================================================
    # Timers (the transaction layer's are separate)

    def next_deadline(self) -> float | None:
        return self._timers[0][0] if self._timers else None

    def handle_timers(self, now: float) -> list[CallAction]:
        out: list[CallAction] = []
        while self._timers and self._timers[0][0] <= now:
            _, _, kind, call, relay, interval = heapq.heappop(self._timers)
            if call.state is CallState.ENDED:
                continue
            if kind is _Timer.RETRANSMIT_2XX:
                out.extend(self._retransmit(call, relay, interval, now))
            elif kind is _Timer.NO_ACK:
                if relay is None:
                    out.extend(self._fire(call, CallInput.NO_ACK, now))
                else:
                    call.awaiting_ack.pop((relay.origin, relay.request.cseq.number), None)
            elif kind is _Timer.NO_ANSWER:
                out.extend(self._fire(call, CallInput.NO_ANSWER, now))
            elif kind is _Timer.GIVE_UP and call.state is CallState.CANCELLING:
                out.extend(self._fire(call, CallInput.CALLEE_FAILED, now))
        return out

    def _start_timer(
        self, kind: _Timer, delay: float, call: Call, now: float, relay: Relay | None = None
    ) -> None:
        entry = (now + delay, next(self._seq), kind, call, relay, delay)
        timers = self._timers
        heapq.heappush(timers, entry)
        if len(timers) > self._compact_at:
            # Entries of ended calls are skipped when they come due, but until then they keep
            # the whole call alive (a ring timeout is 120 s): drop them now and then.
            self._timers = [e for e in timers if e[3].state is not CallState.ENDED]
            heapq.heapify(self._timers)
            self._compact_at = _TIMER_SLACK + max(8 * len(self._calls), 2 * len(self._timers))

    def _retransmit(
        self, call: Call, relay: Relay | None, interval: float, now: float
    ) -> list[CallAction]:
        if relay is None:
            answer = call.answer if call.state is CallState.ANSWERED else None
        else:
            key = (relay.origin, relay.request.cseq.number)
            answer = relay.answer if call.awaiting_ack.get(key) is relay else None
        if answer is None:
            return []
        delay = min(2 * interval, self.settings.t2)
        self._start_timer(_Timer.RETRANSMIT_2XX, delay, call, now, relay)
        return [Reply(answer)]

    # =========================================================================================
    # A new call

    def answer_unauthenticated(self, request: Request, source: str, now: float) -> Response:
        """An initial INVITE without credentials: a refusal or the challenge, which the core
        sends without a transaction (RFC 3261 §26.3.2.4)."""
        refused = self._refuse_before_auth(request)
        if refused is not None:
            return refused
        return self.authenticator.challenge(request, source, now, status=self.settings.auth_status)

    def _refuse_before_auth(self, request: Request) -> Response | None:
        refused = _refuse_early(request)
        if refused is None and len(self._calls) >= self.settings.max_calls:
            return build_response(request, 503, headers=(("Retry-After", "5"),))
        return refused

    def _on_invite(self, event: RequestReceived, now: float) -> list[CallAction]:
        request = event.request
        refused = self._refuse_before_auth(request)
        if refused is not None:
            return [Reply(refused)]
        source = str(event.source)  # the core's Peer renders as "ip:port"
        auth = self.authenticator.authenticate(
            request, source, now, status=self.settings.auth_status
        )
        if auth.outcome is AuthOutcome.LOCKED:
            return [Abandon(event.key)]
        if auth.outcome is not AuthOutcome.OK or auth.user is None:
            return [Reply(auth.response)] if auth.response is not None else [Abandon(event.key)]
        caller_user = auth.user
        callee_user = _target_user(request)
        if callee_user is None or not self.known_user(callee_user):
            return [Reply(build_response(request, 404))]
        hop = self._reachable(callee_user, now)
        if hop is None:
            return [Reply(build_response(request, 480))]
        binding, callee_hop = hop
        if self._active.get(callee_user, 0) >= self.settings.calls_per_user:
            return [Reply(build_response(request, 486))]
        return self._start_call(event, caller_user, callee_user, binding, callee_hop, now)

    def _reachable(self, user: str, now: float) -> tuple[Binding, Hop] | None:
        for binding in self.location.lookup(f"sip:{user}@{self.domain}", now):
            hop = self.hop_for_binding(binding)
            if hop is not None:
                return binding, hop
        return None

    def _start_call(
        self,
        event: RequestReceived,
        caller_user: str,
        callee_user: str,
        binding: Binding,
        callee_hop: Hop,
        now: float,
    ) -> list[CallAction]:
        request = event.request
        caller = Leg(
            side=Side.CALLER,
            hop=self.hop_for_source(event.source),
            call_id=request.call_id,
            local=request.to.with_tag(new_tag()),
            remote=request.from_,
            remote_target=None,
            route_set=tuple(request.get_all("record-route")),
        )
        caller.learn_from_request(request)
        callee = Leg(
            side=Side.CALLEE,
            hop=callee_hop,
            call_id=new_call_id(),
            local=NameAddr(
                uri=SipUri(user=caller_user, host=self.domain),
                display_name=request.from_.display_name,
                params=Params((("tag", new_tag()),)),
            ),
            remote=NameAddr(uri=SipUri(user=callee_user, host=self.domain)),
            remote_target=binding.uri,
        )
        max_forwards = request.max_forwards
        forwards = 70 if max_forwards is None else min(70, max_forwards - 1)
        invite = callee.request(
            "INVITE", body=request.body, headers=[("Allow", ALLOW), *body_headers(request)]
        ).replace_header("Max-Forwards", str(forwards))
        call = Call(
            state=CallState.CALLING,
            caller_user=caller_user,
            callee_user=callee_user,
            invite=request,
            server_key=event.key,
            caller=caller,
            callee=callee,
            callee_invite=invite,
            started_at=now,
        )
        self._calls.add(call)
        self._by_server_key[event.key] = call
        self._dialogs[(caller.call_id, caller.local_tag)] = (call, Side.CALLER)
        self._dialogs[(callee.call_id, callee.local_tag)] = (call, Side.CALLEE)
        for user in (caller_user, callee_user):
            self._active[user] = self._active.get(user, 0) + 1
        self._start_timer(_Timer.NO_ANSWER, self.settings.ring_timeout, call, now)
        return [self._client(call, Purpose.INVITE, invite, callee.hop)]

    def _client(
        self, call: Call, purpose: Purpose, request: Request, hop: Hop, relay: Relay | None = None
    ) -> StartRequest:
        key = TransactionKey.for_client(request)
        self._clients[key] = (call, purpose, relay)
        call.client_keys.add(key)
        return StartRequest(request, hop.destination, hop.reliable)

    # =========================================================================================
    # CANCEL and in-dialog requests

    def _on_cancel(self, event: RequestReceived, now: float) -> list[CallAction]:
        cancel = event.request
        call = None if event.cancels is None else self._by_server_key.get(event.cancels)
        if event.cancels is None:
            return [Reply(build_response(cancel, 481))]
        tag = call.caller.local_tag if call is not None else None
        out: list[CallAction] = [Reply(build_response(cancel, 200, to_tag=tag))]
        if call is not None:
            out.extend(self._fire(call, CallInput.CALLER_CANCEL, now))
        return out

    def _on_in_dialog(self, event: RequestReceived, now: float) -> list[CallAction]:
        request = event.request
        found = self._dialogs.get((request.call_id, request.to.tag or ""))
        if found is None:
            return [Reply(build_response(request, 481))]
        call, side = found
        leg = call.leg(side)
        if leg.remote_tag is not None and request.from_.tag != leg.remote_tag:
            return [Reply(build_response(request, 481))]
        if leg.remote_cseq is not None and request.cseq.number <= leg.remote_cseq:
            return [Reply(build_response(request, 500, headers=(("Retry-After", "1"),)))]
        leg.learn_from_request(request)
        method = request.method
        if method == "BYE":
            event_input = CallInput.CALLER_BYE if side is Side.CALLER else CallInput.CALLEE_BYE
            if (call.state, event_input) not in CALL_TABLE:
                return [Reply(build_response(request, 481))]
            return self._fire(call, event_input, now, request)
        if method not in RELAYED_METHODS:
            return [Reply(build_response(request, 501, headers=(("Allow", ALLOW),)))]
        if call.state not in (CallState.CONFIRMED, CallState.ANSWERED):
            return [Reply(build_response(request, 481))]
        if method == "INVITE" and (
            call.reinvite is not None or call.state is not CallState.CONFIRMED
        ):
            return [Reply(build_response(request, 491))]
        return self._relay(call, side, request)

    def _relay(self, call: Call, side: Side, request: Request) -> list[CallAction]:
        other = call.leg(side.other)
        out = other.request(request.method, body=request.body, headers=body_headers(request))
        relay = Relay(origin=side, request=request, out_cseq=out.cseq.number)
        if request.method == "INVITE":
            call.reinvite = relay
        return [self._client(call, Purpose.RELAY, out, other.hop, relay)]

    def _relay_response(
        self, call: Call, relay: Relay, response: Response, now: float
    ) -> list[CallAction]:
        status = response.status
        request = relay.request
        is_invite = request.method == "INVITE"
        if status < 200:
            if status == 100 or not is_invite:
                return []
            return [Reply(self._answer(call, relay.origin, request, response))]
        if is_invite and call.reinvite is relay:
            call.reinvite = None
        if status >= 300:
            return [Reply(build_response(request, caller_status(status)))]
        if request.method in ("INVITE", "UPDATE"):
            call.leg(relay.origin.other).learn_from_response(response)
        answer = self._answer(call, relay.origin, request, response)
        if is_invite:
            relay.answer = answer
            call.awaiting_ack[(relay.origin, request.cseq.number)] = relay
            if not call.leg(relay.origin).hop.reliable:
                self._start_timer(_Timer.RETRANSMIT_2XX, self.settings.t1, call, now, relay)
            self._start_timer(_Timer.NO_ACK, self.settings.timeout, call, now, relay)
        return [Reply(answer)]

    def _answer(self, call: Call, side: Side, request: Request, response: Response) -> Response:
        """*response* of the other leg, re-issued on leg *side* as the answer to *request*."""
        leg = call.leg(side)
        headers: list[tuple[str, str]] = []
        if request.method in ("INVITE", "UPDATE"):
            headers.append(("Contact", leg.hop.contact()))
        headers += body_headers(response)
        return build_response(
            request,
            response.status,
            response.reason or None,
            to_tag=leg.local_tag,
            headers=headers,
            body=response.body,
        )

    # =========================================================================================
    # The table interpreter

    def _fire(
        self,
        call: Call,
        event: CallInput,
        now: float,
        message: Request | Response | None = None,
    ) -> list[CallAction]:
        row = CALL_TABLE.get((call.state, event))
        if row is None:
            return []
        call.state = row.target
        out: list[CallAction] = []
        for step in row.steps:
            out.extend(self._apply(call, step, message, now))
        if call.state is CallState.CANCELLING and event is not CallInput.CALLEE_1XX:
            self._start_timer(_Timer.GIVE_UP, self.settings.timeout, call, now)
        if call.state is CallState.ENDED:
            self._forget(call)
        return out

    def _apply(
        self, call: Call, step: Step, message: Request | Response | None, now: float
    ) -> list[CallAction]:
        caller, callee = call.caller, call.callee
        if step is Step.RELAY_1XX:
            if not isinstance(message, Response):
                return []
            return [Reply(self._answer(call, Side.CALLER, call.invite, message))]
        if step is Step.RELAY_2XX:
            if not isinstance(message, Response):
                return []
            call.answer = self._answer(call, Side.CALLER, call.invite, message)
            if not caller.hop.reliable:
                self._start_timer(_Timer.RETRANSMIT_2XX, self.settings.t1, call, now)
            self._start_timer(_Timer.NO_ACK, self.settings.timeout, call, now)
            return [Reply(call.answer)]
        if step is Step.RELAY_FINAL:
            status = caller_status(message.status) if isinstance(message, Response) else 480
            return [Reply(build_response(call.invite, status, to_tag=caller.local_tag))]
        if step is Step.ANSWER_487 or step is Step.ANSWER_480:
            status = 487 if step is Step.ANSWER_487 else 480
            return [Reply(build_response(call.invite, status, to_tag=caller.local_tag))]
        if step is Step.CANCEL_CALLEE:
            if call.cancel_sent or not call.got_provisional:
                return []  # deferred until the first provisional (RFC 3261 §9.1)
            call.cancel_sent = True
            cancel = build_cancel(call.callee_invite)
            return [self._client(call, Purpose.CANCEL, cancel, callee.hop)]
        if step is Step.ACK_CALLEE:
            if call.callee_ack is None:
                call.callee_ack = callee.request(
                    "ACK",
                    body=call.ack_body,
                    headers=call.ack_headers,
                    cseq=call.callee_invite.cseq.number,
                )
            return [SendAck(call.callee_ack, callee.hop.destination)]
        if step is Step.STOP_2XX:
            call.answer = None
            return []
        if step is Step.ANSWER_BYE:
            if not isinstance(message, Request):
                return []
            return [Reply(build_response(message, 200))]
        leg = caller if step is Step.BYE_CALLER else callee
        bye = leg.request("BYE")
        action = self._client(call, Purpose.BYE, bye, leg.hop)
        call.byes.add(TransactionKey.for_client(bye))
        return [action]

    def _bye_done(self, call: Call, key: TransactionKey, now: float) -> list[CallAction]:
        call.byes.discard(key)
        if call.byes:
            return []
        return self._fire(call, CallInput.BYE_DONE, now)

    def _forget(self, call: Call) -> None:
        self._calls.discard(call)
        self._by_server_key.pop(call.server_key, None)
        for leg in (call.caller, call.callee):
            self._dialogs.pop((leg.call_id, leg.local_tag), None)
        for key in call.client_keys:
            self._clients.pop(key, None)
        call.client_keys.clear()
        for user in (call.caller_user, call.callee_user):
            left = self._active.get(user, 0) - 1
            if left > 0:
                self._active[user] = left
            else:
                self._active.pop(user, None)


# ---------------------------------------------------------------------------------------------


def _refuse_early(request: Request) -> Response | None:
    """Cheap, public refusals before any digest work (they reveal nothing about users)."""
    required = request.tokens("require")
    if required:
        return build_response(request, 420, headers=(("Unsupported", ", ".join(required)),))
    if request.max_forwards == 0:
        return build_response(request, 483)
    if request.body:
        content_type = (request.get("content-type") or "").partition(";")[0].strip().lower()
        if content_type != SDP:
            return build_response(request, 415, headers=(("Accept", SDP),))
    accept = request.get_all("accept")
    if accept:
        types = {value.partition(";")[0].strip().lower() for value in accept}
        if not types & {SDP, "application/*", "*/*"}:
            return build_response(request, 406, headers=(("Accept", SDP),))
    return None


def _target_user(request: Request) -> str | None:
    uri = request.uri
    if isinstance(uri, SipUri):
        return unescape(uri.user) if uri.user else None
    if isinstance(uri, TelUri):
        return uri.digits
    return None
