"""RFC 3261 §17 transaction machines, row by row.

Each machine is driven into every live state along an RFC path (UDP, default timers), then given
every input of its alphabet. The expected outcomes below are a second, independent statement
of RFC 3261 §17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2 and RFC 6026 §7: every row not listed must
absorb its input (same state, no action). A test checks the list names exactly the table's
non-absorbing rows, so the two statements cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from transaction_support import PEER, make_request

from pbx_runtime.sip import (
    Request,
    Response,
    build_response,
)
from pbx_runtime.sip.timers import Timer
from pbx_runtime.sip.transaction import (
    INVITE_CLIENT,
    INVITE_SERVER,
    MACHINES,
    NON_INVITE_CLIENT,
    NON_INVITE_SERVER,
    Action,
    CancelTimer,
    Input,
    Machine,
    PassToTU,
    SendMessage,
    StartTimer,
    State,
    TimedOut,
    Transaction,
    TransactionTerminated,
    TransportFailed,
    build_ack,
    render_table,
)


def describe(actions: list[Action]) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for action in actions:
        if isinstance(action, SendMessage):
            msg = action.message
            out.append(("send", msg.method if isinstance(msg, Request) else msg.status))
            assert action.destination == PEER
        elif isinstance(action, StartTimer):
            out.append(("start", action.timer.name, action.delay))
        elif isinstance(action, CancelTimer):
            out.append(("cancel", action.timer.name))
        elif isinstance(action, PassToTU):
            msg = action.message
            out.append(("tu", msg.method if isinstance(msg, Request) else msg.status))
        elif isinstance(action, TimedOut):
            out.append(("timeout", action.timer.name))
        elif isinstance(action, TransportFailed):
            out.append(("transport",))
        else:
            assert isinstance(action, TransactionTerminated)
            out.append(("terminated", action.reason.value))
    return out


# -- reaching each live state along an RFC path -----------------------------------------------


def new(machine: Machine, *, reliable: bool = False) -> Transaction:
    method = "INVITE" if machine.invite else "OPTIONS"
    tx = Transaction(machine, make_request(method), PEER, reliable=reliable)
    tx.start()
    return tx


def reply(tx: Transaction, status: int) -> Response:
    return build_response(tx.request, status, to_tag="b1")


PATHS: dict[tuple[str, State], Callable[[Transaction], object]] = {
    ("ict", State.CALLING): lambda tx: None,
    ("ict", State.PROCEEDING): lambda tx: tx.receive_response(reply(tx, 180)),
    ("ict", State.COMPLETED): lambda tx: tx.receive_response(reply(tx, 486)),
    ("ict", State.ACCEPTED): lambda tx: tx.receive_response(reply(tx, 200)),
    ("nict", State.TRYING): lambda tx: None,
    ("nict", State.PROCEEDING): lambda tx: tx.receive_response(reply(tx, 100)),
    ("nict", State.COMPLETED): lambda tx: tx.receive_response(reply(tx, 200)),
    ("ist", State.PROCEEDING): lambda tx: None,
    ("ist", State.COMPLETED): lambda tx: tx.send_response(reply(tx, 486)),
    ("ist", State.CONFIRMED): lambda tx: (
        tx.send_response(reply(tx, 486)),
        tx.receive_request(build_ack(tx.request, reply(tx, 486))),
    ),
    ("ist", State.ACCEPTED): lambda tx: tx.send_response(reply(tx, 200)),
    ("nist", State.TRYING): lambda tx: None,
    ("nist", State.PROCEEDING): lambda tx: tx.send_response(reply(tx, 183)),
    ("nist", State.COMPLETED): lambda tx: tx.send_response(reply(tx, 200)),
}

SHORT = {INVITE_CLIENT: "ict", NON_INVITE_CLIENT: "nict", INVITE_SERVER: "ist"}
SHORT[NON_INVITE_SERVER] = "nist"


def reach(machine: Machine, state: State) -> Transaction:
    tx = new(machine)
    PATHS[SHORT[machine], state](tx)
    assert tx.state is state
    return tx


def message_for(tx: Transaction, event: Input) -> Request | Response | None:
    statuses = {
        Input.RESPONSE_1XX: 180,
        Input.RESPONSE_2XX: 200,
        Input.RESPONSE_300_699: 486,
        Input.TU_1XX: 180,
        Input.TU_2XX: 200,
        Input.TU_300_699: 486,
    }
    if event in statuses:
        return reply(tx, statuses[event])
    if event is Input.REQUEST:
        return tx.request
    if event is Input.ACK:
        return build_ack(tx.request, reply(tx, 486))
    return None


# -- the RFC, restated --------------------------------------------------------------------------

TERMINATED_OK = ("terminated", "completed")
TERMINATED_TIMEOUT = ("terminated", "timed out")
TERMINATED_TRANSPORT = ("terminated", "transport error")

EXPECTED: dict[tuple[str, State, Input], tuple[State, list[tuple[object, ...]]]] = {
    # INVITE client, §17.1.1.2 + RFC 6026 §7.2
    ("ict", State.CALLING, Input.RESPONSE_1XX): (
        State.PROCEEDING,
        [("cancel", "A"), ("cancel", "B"), ("tu", 180)],
    ),
    ("ict", State.CALLING, Input.RESPONSE_2XX): (
        State.ACCEPTED,
        [("cancel", "A"), ("cancel", "B"), ("tu", 200), ("start", "M", 32.0)],
    ),
    ("ict", State.CALLING, Input.RESPONSE_300_699): (
        State.COMPLETED,
        [("cancel", "A"), ("cancel", "B"), ("send", "ACK"), ("tu", 486), ("start", "D", 32.0)],
    ),
    ("ict", State.CALLING, Input.TIMER_A): (
        State.CALLING,
        [("send", "INVITE"), ("start", "A", 1.0)],
    ),
    ("ict", State.CALLING, Input.TIMER_B): (
        State.TERMINATED,
        [("timeout", "B"), TERMINATED_TIMEOUT],
    ),
    ("ict", State.CALLING, Input.TRANSPORT_ERROR): (
        State.TERMINATED,
        [("transport",), TERMINATED_TRANSPORT],
    ),
    ("ict", State.PROCEEDING, Input.RESPONSE_1XX): (State.PROCEEDING, [("tu", 180)]),
    ("ict", State.PROCEEDING, Input.RESPONSE_2XX): (
        State.ACCEPTED,
        [("tu", 200), ("start", "M", 32.0)],
    ),
    ("ict", State.PROCEEDING, Input.RESPONSE_300_699): (
        State.COMPLETED,
        [("send", "ACK"), ("tu", 486), ("start", "D", 32.0)],
    ),
    ("ict", State.PROCEEDING, Input.TRANSPORT_ERROR): (
        State.TERMINATED,
        [("transport",), TERMINATED_TRANSPORT],
    ),
    ("ict", State.COMPLETED, Input.RESPONSE_300_699): (State.COMPLETED, [("send", "ACK")]),
    ("ict", State.COMPLETED, Input.TIMER_D): (State.TERMINATED, [TERMINATED_OK]),
    ("ict", State.COMPLETED, Input.TRANSPORT_ERROR): (State.TERMINATED, [TERMINATED_TRANSPORT]),
    ("ict", State.ACCEPTED, Input.RESPONSE_2XX): (State.ACCEPTED, [("tu", 200)]),
    ("ict", State.ACCEPTED, Input.TIMER_M): (State.TERMINATED, [TERMINATED_OK]),
    # non-INVITE client, §17.1.2.2
    ("nict", State.TRYING, Input.RESPONSE_1XX): (State.PROCEEDING, [("tu", 180)]),
    ("nict", State.TRYING, Input.RESPONSE_2XX): (
        State.COMPLETED,
        [("cancel", "E"), ("cancel", "F"), ("tu", 200), ("start", "K", 5.0)],
    ),
    ("nict", State.TRYING, Input.RESPONSE_300_699): (
        State.COMPLETED,
        [("cancel", "E"), ("cancel", "F"), ("tu", 486), ("start", "K", 5.0)],
    ),
    ("nict", State.TRYING, Input.TIMER_E): (
        State.TRYING,
        [("send", "OPTIONS"), ("start", "E", 1.0)],
    ),
    ("nict", State.TRYING, Input.TIMER_F): (
        State.TERMINATED,
        [("timeout", "F"), TERMINATED_TIMEOUT],
    ),
    ("nict", State.TRYING, Input.TRANSPORT_ERROR): (
        State.TERMINATED,
        [("transport",), TERMINATED_TRANSPORT],
    ),
    ("nict", State.PROCEEDING, Input.RESPONSE_1XX): (State.PROCEEDING, [("tu", 180)]),
    ("nict", State.PROCEEDING, Input.RESPONSE_2XX): (
        State.COMPLETED,
        [("cancel", "E"), ("cancel", "F"), ("tu", 200), ("start", "K", 5.0)],
    ),
    ("nict", State.PROCEEDING, Input.RESPONSE_300_699): (
        State.COMPLETED,
        [("cancel", "E"), ("cancel", "F"), ("tu", 486), ("start", "K", 5.0)],
    ),
    ("nict", State.PROCEEDING, Input.TIMER_E): (
        State.PROCEEDING,
        [("send", "OPTIONS"), ("start", "E", 4.0)],
    ),
    ("nict", State.PROCEEDING, Input.TIMER_F): (
        State.TERMINATED,
        [("timeout", "F"), TERMINATED_TIMEOUT],
    ),
    ("nict", State.PROCEEDING, Input.TRANSPORT_ERROR): (
        State.TERMINATED,
        [("transport",), TERMINATED_TRANSPORT],
    ),
    ("nict", State.COMPLETED, Input.TIMER_K): (State.TERMINATED, [TERMINATED_OK]),
    # INVITE server, §17.2.1 + RFC 6026 §7.1
    ("ist", State.PROCEEDING, Input.REQUEST): (State.PROCEEDING, [("send", 100)]),
    ("ist", State.PROCEEDING, Input.TU_1XX): (State.PROCEEDING, [("send", 180)]),
    ("ist", State.PROCEEDING, Input.TU_2XX): (
        State.ACCEPTED,
        [("send", 200), ("start", "L", 32.0)],
    ),
    ("ist", State.PROCEEDING, Input.TU_300_699): (
        State.COMPLETED,
        [("send", 486), ("start", "G", 0.5), ("start", "H", 32.0)],
    ),
    ("ist", State.PROCEEDING, Input.TRANSPORT_ERROR): (
        State.TERMINATED,
        [("transport",), TERMINATED_TRANSPORT],
    ),
    ("ist", State.COMPLETED, Input.REQUEST): (State.COMPLETED, [("send", 486)]),
    ("ist", State.COMPLETED, Input.ACK): (
        State.CONFIRMED,
        [("cancel", "G"), ("cancel", "H"), ("start", "I", 5.0)],
    ),
    ("ist", State.COMPLETED, Input.TIMER_G): (
        State.COMPLETED,
        [("send", 486), ("start", "G", 1.0)],
    ),
    ("ist", State.COMPLETED, Input.TIMER_H): (
        State.TERMINATED,
        [("timeout", "H"), TERMINATED_TIMEOUT],
    ),
    ("ist", State.COMPLETED, Input.TRANSPORT_ERROR): (
        State.TERMINATED,
        [("transport",), TERMINATED_TRANSPORT],
    ),
    ("ist", State.CONFIRMED, Input.TIMER_I): (State.TERMINATED, [TERMINATED_OK]),
    ("ist", State.ACCEPTED, Input.ACK): (State.ACCEPTED, [("tu", "ACK")]),
    ("ist", State.ACCEPTED, Input.TU_2XX): (State.ACCEPTED, [("send", 200)]),
    ("ist", State.ACCEPTED, Input.TIMER_L): (State.TERMINATED, [TERMINATED_OK]),
    ("ist", State.ACCEPTED, Input.TRANSPORT_ERROR): (State.ACCEPTED, [("transport",)]),
    # non-INVITE server, §17.2.2
    ("nist", State.TRYING, Input.TU_1XX): (State.PROCEEDING, [("send", 180)]),
    ("nist", State.TRYING, Input.TU_2XX): (State.COMPLETED, [("send", 200), ("start", "J", 32.0)]),
    ("nist", State.TRYING, Input.TU_300_699): (
        State.COMPLETED,
        [("send", 486), ("start", "J", 32.0)],
    ),
    ("nist", State.TRYING, Input.TRANSPORT_ERROR): (
        State.TERMINATED,
        [("transport",), TERMINATED_TRANSPORT],
    ),
    ("nist", State.PROCEEDING, Input.REQUEST): (State.PROCEEDING, [("send", 183)]),
    ("nist", State.PROCEEDING, Input.TU_1XX): (State.PROCEEDING, [("send", 180)]),
    ("nist", State.PROCEEDING, Input.TU_2XX): (
        State.COMPLETED,
        [("send", 200), ("start", "J", 32.0)],
    ),
    ("nist", State.PROCEEDING, Input.TU_300_699): (
        State.COMPLETED,
        [("send", 486), ("start", "J", 32.0)],
    ),
    ("nist", State.PROCEEDING, Input.TRANSPORT_ERROR): (
        State.TERMINATED,
        [("transport",), TERMINATED_TRANSPORT],
    ),
    ("nist", State.COMPLETED, Input.REQUEST): (State.COMPLETED, [("send", 200)]),
    ("nist", State.COMPLETED, Input.TIMER_J): (State.TERMINATED, [TERMINATED_OK]),
    ("nist", State.COMPLETED, Input.TRANSPORT_ERROR): (
        State.TERMINATED,
        [("transport",), TERMINATED_TRANSPORT],
    ),
}

ROWS = [
    pytest.param(machine, state, event, id=f"{SHORT[machine]}-{state.name}-{event.name}")
    for machine in MACHINES
    for state in machine.live_states
    for event in sorted(machine.inputs, key=lambda i: i.name)
]


@pytest.mark.parametrize(("machine", "state", "event"), ROWS)
def test_every_row(machine: Machine, state: State, event: Input) -> None:
    tx = reach(machine, state)
    actions = tx.handle(event, message_for(tx, event))
    target, expected = EXPECTED.get((SHORT[machine], state, event), (state, []))
    assert (tx.state, describe(actions)) == (target, expected)
    if target is State.TERMINATED:
        assert tx.terminated and not tx.running_timers
        for later in machine.inputs:
            assert tx.handle(later, message_for(tx, later)) == []


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: SHORT[m])
def test_table_is_complete_and_closed(machine: Machine) -> None:
    live = set(machine.live_states)
    expected_keys = {(s, i) for s in live for i in machine.inputs}
    expected_keys.add((State.INITIAL, machine.start_input))
    assert set(machine.table) == expected_keys
    for row in machine.table.values():
        assert row.target in live | {State.TERMINATED}
    # every live state is reachable from INITIAL, and Terminated from every live state
    reachable = {State.INITIAL}
    changed = True
    while changed:
        before = len(reachable)
        reachable |= {row.target for (s, _), row in machine.table.items() if s in reachable}
        changed = len(reachable) != before
    assert live | {State.TERMINATED} <= reachable
    for state in live:
        seen, frontier = {state}, [state]
        while frontier:
            current = frontier.pop()
            for (s, _), row in machine.table.items():
                if s is current and row.target not in seen:
                    seen.add(row.target)
                    frontier.append(row.target)
        assert State.TERMINATED in seen, state


def test_expectations_name_exactly_the_non_absorbing_rows() -> None:
    acting = {
        (SHORT[machine], state, event)
        for machine in MACHINES
        for (state, event), row in machine.table.items()
        if state is not State.INITIAL and (row.steps or row.target is not state)
    }
    assert acting == set(EXPECTED)


def test_table_sizes() -> None:
    assert [len(m.table) for m in MACHINES] == [33, 22, 41, 19]


@pytest.mark.parametrize(
    ("machine", "expected"),
    [
        (INVITE_CLIENT, [("send", "INVITE"), ("start", "A", 0.5), ("start", "B", 32.0)]),
        (NON_INVITE_CLIENT, [("send", "OPTIONS"), ("start", "E", 0.5), ("start", "F", 32.0)]),
        (INVITE_SERVER, [("send", 100)]),
        (NON_INVITE_SERVER, []),
    ],
    ids=lambda x: SHORT.get(x, "") if isinstance(x, Machine) else "",
)
def test_start_rows(machine: Machine, expected: list[tuple[object, ...]]) -> None:
    method = "INVITE" if machine.invite else "OPTIONS"
    tx = Transaction(machine, make_request(method), PEER, reliable=False)
    assert tx.state is State.INITIAL
    assert describe(tx.start()) == expected
    assert tx.state is machine.live_states[0]
    if machine.role.value == "client":
        assert tx.start() == []  # the TU passes its request once


def test_initial_ignores_everything_but_the_start_input() -> None:
    for machine in MACHINES:
        tx = Transaction(machine, make_request(), PEER, reliable=False)
        for event in machine.inputs - {machine.start_input}:
            assert tx.handle(event, message_for(tx, event)) == []
        assert tx.state is State.INITIAL


def test_inputs_outside_the_alphabet_and_stale_timers_are_ignored() -> None:
    tx = reach(NON_INVITE_SERVER, State.TRYING)
    assert tx.handle(Input.TIMER_A) == [] and tx.handle(Input.RESPONSE_2XX) == []
    assert tx.fire_timer(Timer.J) == []  # J is not running yet
    tx = reach(INVITE_CLIENT, State.PROCEEDING)
    assert tx.fire_timer(Timer.B) == []  # cancelled on the 1xx
    assert tx.state is State.PROCEEDING


def test_100_trying_copies_timestamp() -> None:
    request = make_request().with_header("Timestamp", "54.2")
    tx = Transaction(INVITE_SERVER, request, PEER, reliable=False)
    (send,) = tx.start()
    assert isinstance(send, SendMessage) and isinstance(send.message, Response)
    assert send.message.status == 100 and send.message.get("Timestamp") == "54.2"
    assert send.message.to.tag is None  # §8.2.6.2: a 100 carries no To tag


def test_render_table_lists_every_row() -> None:
    for machine in MACHINES:
        text = render_table(machine)
        acting = [r for (s, _), r in machine.table.items() if r.steps or r.target is not s]
        assert text.count("\n| ") == 1 + len(acting) + len(
            {s for (s, _), r in machine.table.items() if not r.steps and r.target is s}
        )


def test_docs_embed_the_generated_tables() -> None:
    doc = Path(__file__).resolve().parents[3] / "docs" / "runtime" / "transactions.md"
    text = doc.read_text(encoding="utf-8")
    for machine in MACHINES:
        assert render_table(machine) in text, f"regenerate the {machine.name} table in {doc}"
