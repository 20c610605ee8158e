"""Hypothesis properties of the transaction machines and the manager.

For random sequences over every (state, input) pair (all four machines, UDP and TCP, inputs of
other machines and spurious/early timer firings included), with simulated time:

* the machines never raise;
* nothing is emitted after :class:`TransactionTerminated`, and the running timers the machine
  reports always equal those its StartTimer/CancelTimer actions imply;
* once the RFC's "waiting for the TU" states are left (INVITE client Proceeding waits for a
  final, server Trying/Proceeding for the TU's final), the transaction terminates on timers
  alone within 64*T1 + max(D, J, K, L, M) of its last input.

A rule-based machine does the same through :class:`TransactionManager`, with real messages,
CANCELs, ACKs, requests without the magic cookie and the transaction limit.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)
from transaction_support import PEER, make_request

from pbx_runtime.sip import (
    PassToTU,
    Request,
    RequestReceived,
    Response,
    SendMessage,
    TimedOut,
    Timer,
    TransactionKey,
    TransactionManager,
    TransactionTerminated,
    TransportFailed,
    build_ack,
    build_cancel,
    build_response,
)
from pbx_runtime.sip.timers import DEFAULT_TIMERS, TimerSettings
from pbx_runtime.sip.transaction import (
    INVITE_CLIENT,
    INVITE_SERVER,
    MACHINES,
    NON_INVITE_CLIENT,
    NON_INVITE_SERVER,
    Action,
    CancelTimer,
    Event,
    Input,
    Machine,
    Role,
    StartTimer,
    State,
    Transaction,
)

SETTINGS = settings(deadline=None, max_examples=250, suppress_health_check=[HealthCheck.too_slow])
BOUND = DEFAULT_TIMERS.termination_bound  # 64*T1 + max(D, J, K, L, M) = 64 s


STATUS_OF = {
    Input.RESPONSE_1XX: (100, 180, 183),
    Input.RESPONSE_2XX: (200, 202),
    Input.RESPONSE_300_699: (302, 404, 486, 487, 500, 603),
    Input.TU_1XX: (100, 180, 183),
    Input.TU_2XX: (200, 202),
    Input.TU_300_699: (302, 404, 486, 487, 500, 603),
}
NON_TIMER_INPUTS = sorted(
    (i for i in Input if not i.name.startswith("TIMER_")), key=lambda i: i.name
)
#: States where the RFC leaves the next move to the TU (or, for an INVITE client in Proceeding,
#: to the peer's final response after the TU's CANCEL), and the input that ends the wait.
WAITING = {
    (INVITE_CLIENT.name, State.PROCEEDING): (Input.RESPONSE_300_699, 487),
    (INVITE_SERVER.name, State.PROCEEDING): (Input.TU_300_699, 487),
    (NON_INVITE_SERVER.name, State.TRYING): (Input.TU_2XX, 200),
    (NON_INVITE_SERVER.name, State.PROCEEDING): (Input.TU_2XX, 200),
}


class Driver:
    """One machine plus a simulated clock and timer wheel, checking invariants on each call."""

    def __init__(
        self, machine: Machine, *, reliable: bool, timers: TimerSettings = DEFAULT_TIMERS
    ) -> None:
        method = "INVITE" if machine.invite else "OPTIONS"
        request = make_request(method, transport="TCP" if reliable else "UDP")
        self.tx = Transaction(machine, request, PEER, reliable=reliable, timers=timers)
        self.bound = timers.termination_bound
        self.now = 0.0
        self.last_input = 0.0
        self.deadlines: dict[Timer, float] = {}
        self.terminated_at: float | None = None
        self.apply(self.tx.start())

    def apply(self, actions: list[Action]) -> None:
        for action in actions:
            assert self.terminated_at is None, f"{action} after termination"
            if isinstance(action, StartTimer):
                assert action.delay > 0
                self.deadlines[action.timer] = self.now + action.delay
            elif isinstance(action, CancelTimer):
                assert self.deadlines.pop(action.timer, None) is not None
            elif isinstance(action, TransactionTerminated):
                assert action == actions[-1]
                self.terminated_at = self.now
                self.deadlines.clear()
        assert set(self.deadlines) == self.tx.running_timers
        assert (self.terminated_at is not None) == self.tx.terminated

    def message(self, event: Input, pick: int) -> Request | Response | None:
        request = self.tx.request
        if event in STATUS_OF:
            statuses = STATUS_OF[event]
            return build_response(request, statuses[pick % len(statuses)], to_tag="b")
        if event in (Input.REQUEST, Input.TU_REQUEST):
            return request
        if event is Input.ACK:
            return build_ack(request, build_response(request, 486, to_tag="b"))
        return None

    def feed(self, event: Input, pick: int = 0) -> None:
        self.last_input = self.now
        self.apply(self.tx.handle(event, self.message(event, pick)))

    def fire_early(self, timer: Timer) -> None:
        self.deadlines.pop(timer, None)
        self.apply(self.tx.fire_timer(timer))

    def advance(self, dt: float) -> None:
        target = self.now + dt
        while self.deadlines and min(self.deadlines.values()) <= target:
            timer = min(self.deadlines, key=lambda t: (self.deadlines[t], t.name))
            self.now = self.deadlines.pop(timer)
            self.apply(self.tx.fire_timer(timer))
        self.now = target

    def settle(self) -> None:
        """End any TU wait, then let timers run out; check the termination bound."""
        ending = WAITING.get((self.tx.machine.name, self.tx.state))
        if ending is not None:
            event, status = ending
            self.last_input = self.now
            self.apply(self.tx.handle(event, build_response(self.tx.request, status, to_tag="b")))
        self.advance(10 * self.bound)
        assert self.terminated_at is not None, self.tx.state
        assert self.terminated_at - self.last_input <= self.bound


STEP = st.one_of(
    st.tuples(st.just("input"), st.sampled_from(NON_TIMER_INPUTS), st.integers(0, 5)),
    st.tuples(st.just("advance"), st.floats(0, 40, allow_nan=False), st.just(0)),
    st.tuples(st.just("fire"), st.sampled_from(list(Timer)), st.just(0)),
)


@SETTINGS
@given(
    machine=st.sampled_from(MACHINES),
    reliable=st.booleans(),
    steps=st.lists(STEP, max_size=30),
)
def test_random_sequences(
    machine: Machine, reliable: bool, steps: list[tuple[str, object, int]]
) -> None:
    driver = Driver(machine, reliable=reliable)
    for kind, what, pick in steps:
        if kind == "input":
            assert isinstance(what, Input)
            driver.feed(what, pick)
        elif kind == "advance":
            assert isinstance(what, float)
            driver.advance(what)
        else:
            assert isinstance(what, Timer)
            driver.fire_early(what)
    driver.settle()


@SETTINGS
@given(
    machine=st.sampled_from(MACHINES),
    reliable=st.booleans(),
    t1=st.sampled_from([0.1, 0.5, 1.0, 2.0]),
    steps=st.lists(st.sampled_from(NON_TIMER_INPUTS), max_size=12),
)
def test_other_timer_settings_keep_the_bound(
    machine: Machine, reliable: bool, t1: float, steps: list[Input]
) -> None:
    timers = TimerSettings(t1=t1, t2=max(4.0, t1))
    driver = Driver(machine, reliable=reliable, timers=timers)
    for event in steps:
        driver.feed(event)
        driver.advance(t1)
    driver.settle()


# -- the manager, rule-based ----------------------------------------------------------------------


class ManagerMachine(RuleBasedStateMachine):
    """Peers send requests (with retransmissions, ACKs, CANCELs, bad branches) and answer our
    requests; the TU answers; time passes. Nothing raises, nothing is said about a terminated
    transaction, the limit holds, and everything is forgotten once the TU has answered."""

    LIMIT = 4

    def __init__(self) -> None:
        super().__init__()
        self.manager = TransactionManager(max_transactions=self.LIMIT)
        self.now = 0.0
        self.last_input = 0.0
        self.dead: set[TransactionKey] = set()
        self.live: set[TransactionKey] = set()
        self.server_requests: dict[TransactionKey, Request] = {}
        self.client_requests: list[Request] = []
        self.branches = 0
        self.last_termination = 0.0

    def absorb(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, RequestReceived):
                self.dead.discard(event.key)
                self.live.add(event.key)
                self.server_requests[event.key] = event.request
                if event.cancels is not None:
                    assert event.request.method == "CANCEL" and event.cancels in self.manager
            elif isinstance(event, PassToTU | TimedOut | TransportFailed | TransactionTerminated):
                assert event.key not in self.dead, event
                assert event.key in self.live
                if isinstance(event, TransactionTerminated):
                    self.last_termination = self.now
                    self.dead.add(event.key)
                    self.live.discard(event.key)
                    assert event.key not in self.manager

    def inbound(self, method: str, branch: int) -> Request:
        return make_request(method, branch=f"z9hG4bK-in{branch}")

    @rule(
        method=st.sampled_from(["INVITE", "OPTIONS", "REGISTER", "BYE"]),
        branch=st.integers(0, 5),
    )
    def peer_sends_request(self, method: str, branch: int) -> None:
        self.last_input = self.now
        self.absorb(self.manager.receive(self.inbound(method, branch), PEER, self.now))

    @rule(branch=st.integers(0, 5), new_branch=st.booleans())
    def peer_sends_ack(self, branch: int, new_branch: bool) -> None:
        invite = self.inbound("INVITE", branch)
        ack = build_ack(invite, build_response(invite, 486, to_tag="b"))
        if new_branch:
            ack = make_request("ACK", branch=f"z9hG4bK-ack{branch}")
        self.last_input = self.now
        self.absorb(self.manager.receive(ack, PEER, self.now))

    @rule(branch=st.integers(0, 5))
    def peer_sends_cancel(self, branch: int) -> None:
        self.last_input = self.now
        cancel = build_cancel(self.inbound("INVITE", branch))
        self.absorb(self.manager.receive(cancel, PEER, self.now))

    @rule()
    def peer_sends_without_cookie(self) -> None:
        events = self.manager.receive(make_request("OPTIONS", branch="old"), PEER, self.now)
        assert [type(e).__name__ for e in events] == ["SendMessage", "RequestRejected"]

    @precondition(lambda self: bool(self.live))
    @rule(data=st.data(), status=st.sampled_from([100, 180, 200, 202, 404, 486, 487, 603]))
    def tu_answers(self, data: st.DataObject, status: int) -> None:
        servers = sorted((k for k in self.live if k.role is Role.SERVER), key=str)
        if not servers:
            return
        key = data.draw(st.sampled_from(servers))
        self.last_input = self.now
        request = self.server_requests[key]
        self.absorb(self.manager.send_response(build_response(request, status), self.now))

    @rule(method=st.sampled_from(["INVITE", "OPTIONS", "CANCEL"]), reliable=st.booleans())
    def tu_sends_request(self, method: str, reliable: bool) -> None:
        self.branches += 1
        request = make_request(
            method, branch=f"z9hG4bK-out{self.branches}", transport="TCP" if reliable else "UDP"
        )
        self.last_input = self.now
        key, events = self.manager.send_request(request, PEER, self.now)
        self.dead.discard(key)
        self.live.add(key)
        self.client_requests.append(request)
        self.absorb(events)

    @precondition(lambda self: bool(self.client_requests))
    @rule(data=st.data(), status=st.sampled_from([100, 180, 200, 486, 503]))
    def peer_answers(self, data: st.DataObject, status: int) -> None:
        request = data.draw(st.sampled_from(self.client_requests))
        self.last_input = self.now
        response = build_response(request, status, to_tag="b")
        self.absorb(self.manager.receive(response, PEER, self.now))

    @precondition(lambda self: bool(self.live))
    @rule(data=st.data())
    def transport_fails(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.live, key=str)))
        self.last_input = self.now
        self.absorb(self.manager.transport_error(key, self.now))

    @rule(dt=st.floats(0, 40, allow_nan=False))
    def time_passes(self, dt: float) -> None:
        self.advance(self.now + dt)

    def advance(self, target: float) -> None:
        while (deadline := self.manager.next_deadline()) is not None and deadline <= target:
            assert deadline >= self.now - 1e-9
            self.now = max(self.now, deadline)
            self.absorb(self.manager.handle_timers(self.now))
        self.now = target

    @invariant()
    def bookkeeping_agrees(self) -> None:
        assert len(self.manager) == len(self.live)
        servers = sum(1 for k in self.live if k.role is Role.SERVER)
        assert servers <= self.LIMIT

    def teardown(self) -> None:
        # End the waits the RFC leaves to the TU (and to the peer for INVITE client Proceeding).
        for key in sorted(self.live, key=str):
            tx = self.manager.transaction(key)
            assert tx is not None
            self.last_input = self.now
            if key.role is Role.SERVER and tx.state in (State.TRYING, State.PROCEEDING):
                final = build_response(tx.request, 500)
                self.absorb(self.manager.send_response(final, self.now))
            elif key.role is Role.CLIENT and tx.state is State.PROCEEDING:
                final = build_response(tx.request, 487, to_tag="b")
                self.absorb(self.manager.receive(final, PEER, self.now))
        self.advance(self.now + 10 * BOUND)
        assert len(self.manager) == 0 and not self.live
        assert self.manager.next_deadline() is None
        assert self.last_termination - self.last_input <= BOUND


ManagerMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestManagerMachine = ManagerMachine.TestCase


def test_send_message_destinations_are_the_peer() -> None:
    # a tiny sanity check that the property harness sees real outputs
    manager = TransactionManager()
    events = manager.receive(make_request("INVITE"), PEER, 0.0)
    assert isinstance(events[0], SendMessage) and events[0].destination == PEER
    assert isinstance(events[0].message, Response)
    assert NON_INVITE_CLIENT in MACHINES
