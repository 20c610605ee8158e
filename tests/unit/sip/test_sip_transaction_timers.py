"""Transaction timer sequences (RFC 3261 §17, Table 4; RFC 6026 Timers L and M).

Driven through :class:`TransactionManager` with an injected clock: ``next_deadline()`` says when,
``handle_timers(now)`` fires. Times are exact binary fractions, so equality is safe.
"""

from __future__ import annotations

import pytest
from transaction_support import PEER, make_request

from pbx_runtime import COMPILED
from pbx_runtime.sip import (
    Request,
    Response,
    SendMessage,
    TimedOut,
    Timer,
    TimerSettings,
    TransactionManager,
    TransactionTerminated,
    build_response,
)
from pbx_runtime.sip.timers import (
    DEFAULT_TIMERS,
    TIMER_A,
    TIMER_B,
    TIMER_D,
    TIMER_E,
    TIMER_F,
    TIMER_G,
    TIMER_H,
    TIMER_I,
    TIMER_J,
    TIMER_K,
    TIMER_L,
    TIMER_M,
    is_reliable_transport,
)
from pbx_runtime.sip.transaction import (
    Event,
    PassToTU,
    State,
    TerminationReason,
    build_ack,
)


def run_timers(manager: TransactionManager, until: float = 1e9) -> list[tuple[float, Event]]:
    """Fire timers in deadline order up to *until*; return ``(time, event)`` pairs."""
    out: list[tuple[float, Event]] = []
    while (deadline := manager.next_deadline()) is not None and deadline <= until:
        out.extend((deadline, event) for event in manager.handle_timers(deadline))
    return out


def send_times(timeline: list[tuple[float, Event]]) -> list[float]:
    return [t for t, e in timeline if isinstance(e, SendMessage)]


def reply(request: Request, status: int) -> Response:
    return build_response(request, status, to_tag="b1")


# -- the defaults are RFC 3261 Table 4 ------------------------------------------------------------


def test_default_values_are_table_4() -> None:
    assert (DEFAULT_TIMERS.t1, DEFAULT_TIMERS.t2, DEFAULT_TIMERS.t4) == (0.5, 4.0, 5.0)
    expected = {
        Timer.A: TIMER_A,
        Timer.B: TIMER_B,
        Timer.D: TIMER_D,
        Timer.E: TIMER_E,
        Timer.F: TIMER_F,
        Timer.G: TIMER_G,
        Timer.H: TIMER_H,
        Timer.I: TIMER_I,
        Timer.J: TIMER_J,
        Timer.K: TIMER_K,
        Timer.L: TIMER_L,
        Timer.M: TIMER_M,
    }
    assert {t: DEFAULT_TIMERS.initial(t, reliable=False) for t in Timer} == expected
    assert expected == {
        Timer.A: 0.5,
        Timer.B: 32.0,
        Timer.D: 32.0,
        Timer.E: 0.5,
        Timer.F: 32.0,
        Timer.G: 0.5,
        Timer.H: 32.0,
        Timer.I: 5.0,
        Timer.J: 32.0,
        Timer.K: 5.0,
        Timer.L: 32.0,
        Timer.M: 32.0,
    }


def test_reliable_transport_values() -> None:
    reliable = {t: DEFAULT_TIMERS.initial(t, reliable=True) for t in Timer}
    assert reliable == {
        Timer.A: None,  # not used
        Timer.B: 32.0,
        Timer.D: 0.0,
        Timer.E: None,
        Timer.F: 32.0,
        Timer.G: None,
        Timer.H: 32.0,
        Timer.I: 0.0,
        Timer.J: 0.0,
        Timer.K: 0.0,
        Timer.L: 32.0,  # RFC 6026: "64*T1 for all transports"
        Timer.M: 32.0,
    }


def test_custom_settings_scale_with_t1() -> None:
    slow = TimerSettings(t1=1.0, t2=8.0, t4=10.0)
    assert slow.initial(Timer.B, reliable=False) == 64.0
    assert slow.initial(Timer.D, reliable=False) == 64.0  # max(32 s, 64*T1)
    assert slow.initial(Timer.K, reliable=False) == 10.0
    assert slow.doubled(Timer.E, 4.0) == 8.0 and slow.doubled(Timer.E, 8.0) == 8.0
    assert TimerSettings(timer_d=40.0).initial(Timer.D, reliable=False) == 40.0
    assert DEFAULT_TIMERS.termination_bound == 64.0
    assert slow.termination_bound == 128.0


@pytest.mark.parametrize(
    "kwargs",
    [{"t1": 0}, {"t1": -1.0}, {"t2": 0.1}, {"t4": 0}, {"timer_d": -1.0},
     # compiled, a bool reaches a float field as 0.0/1.0 (config.py refuses bools)
     pytest.param({"t1": True}, marks=pytest.mark.skipif(COMPILED, reason="mypyc coerces"))],
)  # fmt: skip
def test_settings_are_validated(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TimerSettings(**kwargs)


def test_transport_reliability() -> None:
    assert not is_reliable_transport("UDP")
    assert all(is_reliable_transport(t) for t in ("TCP", "tls", "SCTP", "WS", "WSS"))
    assert not is_reliable_transport("FOO")  # unknown: retransmit to be safe


# -- UDP sequences ---------------------------------------------------------------------------


def test_invite_client_timer_a_doubles_without_cap_then_b_times_out() -> None:
    manager = TransactionManager()
    key, started = manager.send_request(make_request(), PEER, 0.0)
    assert [type(e) for e in started] == [SendMessage]
    timeline = run_timers(manager)
    # §17.1.1.2: A = T1 doubling after every retransmission (0.5, 1, 2, 4, 8, 16): 7 sends in
    # 64*T1. A has no T2 cap (E and G have one).
    assert [0.0, *send_times(timeline)] == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    tail = [(t, e) for t, e in timeline if not isinstance(e, SendMessage)]
    assert tail == [
        (32.0, TimedOut(key, Timer.B)),
        (32.0, TransactionTerminated(key, TerminationReason.TIMED_OUT)),
    ]
    assert len(manager) == 0 and manager.next_deadline() is None


def test_non_invite_client_timer_e_caps_at_t2_then_f_times_out() -> None:
    manager = TransactionManager()
    key, _ = manager.send_request(make_request("OPTIONS"), PEER, 0.0)
    timeline = run_timers(manager)
    # §17.1.2.2: E = MIN(2*E, T2): 0.5, 1, 2, 4, 4, 4 ...
    assert send_times(timeline) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert timeline[-2:] == [
        (32.0, TimedOut(key, Timer.F)),
        (32.0, TransactionTerminated(key, TerminationReason.TIMED_OUT)),
    ]


def test_non_invite_client_proceeding_retransmits_every_t2() -> None:
    manager = TransactionManager()
    request = make_request("REGISTER")
    key, _ = manager.send_request(request, PEER, 0.0)
    assert manager.receive(reply(request, 100), PEER, 0.25) == [PassToTU(key, reply(request, 100))]
    timeline = run_timers(manager)
    # E fires at 0.5 in Proceeding and is then reset to T2 (§17.1.2.2).
    assert send_times(timeline) == [0.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5]
    assert isinstance(timeline[-2][1], TimedOut) and timeline[-2][0] == 32.0


def test_non_invite_client_final_then_timer_k() -> None:
    manager = TransactionManager()
    request = make_request("BYE")
    key, _ = manager.send_request(request, PEER, 0.0)
    ok = reply(request, 200)
    assert manager.receive(ok, PEER, 1.0) == [PassToTU(key, ok)]
    assert manager.next_deadline() == 6.0  # K = T4 after the final; E and F cancelled
    assert manager.receive(ok, PEER, 2.0) == []  # retransmission absorbed
    assert run_timers(manager) == [(6.0, TransactionTerminated(key, TerminationReason.COMPLETED))]


def test_invite_server_timer_g_caps_at_t2_then_h_times_out() -> None:
    manager = TransactionManager()
    request = make_request()
    events = manager.receive(request, PEER, 0.0)
    key = events[-1].key  # type: ignore[union-attr]
    busy = reply(request, 486)
    assert manager.send_response(busy, 1.0) == [SendMessage(busy, PEER)]
    timeline = run_timers(manager)
    # §17.2.1: G = T1, then MIN(2*G, T2); H = 64*T1 after entering Completed.
    assert send_times(timeline) == [1.5, 2.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5, 32.5]
    assert timeline[-2:] == [
        (33.0, TimedOut(key, Timer.H)),
        (33.0, TransactionTerminated(key, TerminationReason.TIMED_OUT)),
    ]


def test_invite_server_ack_stops_g_and_h_then_timer_i() -> None:
    manager = TransactionManager()
    request = make_request()
    key = manager.receive(request, PEER, 0.0)[-1].key  # type: ignore[union-attr]
    busy = reply(request, 486)
    manager.send_response(busy, 0.0)
    assert send_times(run_timers(manager, until=2.0)) == [0.5, 1.5]
    ack = build_ack(request, busy)
    assert manager.receive(ack, PEER, 2.0) == []  # absorbed
    tx = manager.transaction(key)
    assert tx is not None and tx.state is State.CONFIRMED
    assert manager.receive(ack, PEER, 3.0) == []  # ACK retransmission absorbed
    assert manager.receive(request, PEER, 3.5) == []  # so is a late INVITE
    assert run_timers(manager) == [(7.0, TransactionTerminated(key, TerminationReason.COMPLETED))]


def test_invite_client_non_2xx_acks_and_waits_timer_d() -> None:
    manager = TransactionManager()
    request = make_request()
    key, _ = manager.send_request(request, PEER, 0.0)
    busy = reply(request, 486)
    events = manager.receive(busy, PEER, 0.2)
    assert [type(e) for e in events] == [SendMessage, PassToTU]
    ack = events[0].message  # type: ignore[union-attr]
    assert ack.method == "ACK"
    assert manager.next_deadline() == 32.2
    assert manager.receive(busy, PEER, 1.0) == [SendMessage(ack, PEER)]  # re-ACK, TU not told
    assert run_timers(manager) == [(32.2, TransactionTerminated(key, TerminationReason.COMPLETED))]


def test_invite_client_accepted_passes_2xx_until_timer_m() -> None:
    manager = TransactionManager()
    request = make_request()
    key, _ = manager.send_request(request, PEER, 0.0)
    ok = reply(request, 200)
    other_fork = build_response(request, 200, to_tag="fork2")
    assert manager.receive(ok, PEER, 0.1) == [PassToTU(key, ok)]
    assert manager.receive(ok, PEER, 0.6) == [PassToTU(key, ok)]  # RFC 6026: not absorbed
    assert manager.receive(other_fork, PEER, 0.7) == [PassToTU(key, other_fork)]
    assert manager.next_deadline() == 32.1
    assert run_timers(manager) == [(32.1, TransactionTerminated(key, TerminationReason.COMPLETED))]


def test_invite_server_accepted_absorbs_retransmissions_until_timer_l() -> None:
    manager = TransactionManager()
    request = make_request()
    key = manager.receive(request, PEER, 0.0)[-1].key  # type: ignore[union-attr]
    ok = reply(request, 200)
    assert manager.send_response(ok, 0.5) == [SendMessage(ok, PEER)]
    assert manager.receive(request, PEER, 1.0) == []  # absorbed, no 2xx from us (TU's job)
    assert manager.send_response(ok, 1.5) == [SendMessage(ok, PEER)]  # TU retransmits 2xx
    assert run_timers(manager) == [(32.5, TransactionTerminated(key, TerminationReason.COMPLETED))]
    assert manager.send_response(ok, 40.0) == []  # too late: nothing live


# -- reliable transports: A/E/G unused, D/I/J/K zero ------------------------------------------


def test_reliable_invite_client_has_no_timer_a_and_ends_on_final() -> None:
    manager = TransactionManager()
    request = make_request(transport="TCP")
    manager.send_request(request, PEER, 0.0)
    assert manager.next_deadline() == 32.0  # B only
    busy = reply(request, 486)
    events = manager.receive(busy, PEER, 1.0)
    # D is zero: ACK, pass up, terminate in the same call.
    assert [type(e) for e in events] == [SendMessage, PassToTU, TransactionTerminated]
    assert len(manager) == 0 and manager.next_deadline() is None


def test_reliable_non_invite_client_ends_on_final() -> None:
    manager = TransactionManager()
    request = make_request("OPTIONS", transport="TLS")
    key, _ = manager.send_request(request, PEER, 0.0)
    assert run_timers(manager, until=31.0) == []  # no E retransmissions
    ok = reply(request, 200)
    assert manager.receive(ok, PEER, 1.0) == [
        PassToTU(key, ok),
        TransactionTerminated(key, TerminationReason.COMPLETED),
    ]


def test_reliable_invite_server_no_timer_g_and_zero_timer_i() -> None:
    manager = TransactionManager()
    request = make_request(transport="TCP")
    key = manager.receive(request, PEER, 0.0)[-1].key  # type: ignore[union-attr]
    busy = reply(request, 486)
    manager.send_response(busy, 0.0)
    assert manager.next_deadline() == 32.0  # H only, no G
    assert manager.receive(build_ack(request, busy), PEER, 0.1) == [
        TransactionTerminated(key, TerminationReason.COMPLETED)
    ]


def test_reliable_non_invite_server_zero_timer_j() -> None:
    manager = TransactionManager()
    request = make_request("OPTIONS", transport="TCP")
    key = manager.receive(request, PEER, 0.0)[-1].key  # type: ignore[union-attr]
    ok = reply(request, 200)
    assert manager.send_response(ok, 0.1) == [
        SendMessage(ok, PEER),
        TransactionTerminated(key, TerminationReason.COMPLETED),
    ]


def test_explicit_reliable_flag_overrides_via() -> None:
    manager = TransactionManager()
    manager.send_request(make_request(transport="UDP"), PEER, 0.0, reliable=True)
    assert manager.next_deadline() == 32.0  # no Timer A


def test_timer_l_and_m_apply_on_reliable_transports() -> None:
    manager = TransactionManager()
    request = make_request(transport="TCP", branch="z9hG4bK-srv")
    manager.receive(request, PEER, 0.0)
    manager.send_response(reply(request, 200), 0.0)
    outgoing = make_request(transport="TCP", branch="z9hG4bK-cli")
    manager.send_request(outgoing, PEER, 0.0)
    manager.receive(reply(outgoing, 200), PEER, 1.0)
    assert len(manager) == 2
    timeline = run_timers(manager)
    assert [t for t, e in timeline] == [32.0, 33.0]
    assert len(manager) == 0
