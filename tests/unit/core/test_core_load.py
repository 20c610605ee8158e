"""What the core keeps under sustained load stays bounded (issue #3): ended calls are not held
by their timers, benign User-Agents are remembered within a bound, the UDP shed limit."""

from __future__ import annotations

from core_support import Net, Phone, answer, make_core

from pbx_runtime.b2bua import calls as calls_module
from pbx_runtime.config import Limits
from pbx_runtime.events import EventLog
from pbx_runtime.policy import AbusePolicy, Verdict
from pbx_runtime.policy.abuse import MAX_BENIGN_AGENTS
from pbx_runtime.sip import Request, Response


def test_ended_calls_are_not_kept_alive_by_their_timers(monkeypatch) -> None:
    monkeypatch.setattr(calls_module, "_TIMER_SLACK", 8)
    net = Net(make_core())
    alice = Phone(net, "1001", "192.0.2.10")
    bob = Phone(net, "1002", "192.0.2.11")
    assert alice.register().status == 200 and bob.register().status == 200
    control = net.core.calls
    control._compact_at = 8
    for _ in range(12):
        call = alice.invite("1002")
        invite = bob.last()
        assert isinstance(invite, Request)
        net.send(answer(bob, invite, 200, body=b"v=0"), bob.peer)
        ok = alice.last()
        assert isinstance(ok, Response) and ok.status == 200
        call.ack(ok)
        bob.received()
        call.bye()
        bye = bob.last()
        assert isinstance(bye, Request) and bye.method == "BYE"
        net.send(answer(bob, bye, 200), bob.peer)
        alice.received()
    assert len(control) == 0
    # each call leaves a ring-timeout (120 s), a no-ACK (32 s) and a 2xx-retransmission entry:
    # without compaction 12 calls would leave 36 entries pinning 12 ended calls
    assert len(control._timers) <= control._compact_at < 3 * 12
    net.tick(200.0)  # what is left fires harmlessly
    assert len(control) == 0


def test_benign_user_agents_are_remembered_within_a_bound() -> None:
    policy = AbusePolicy(EventLog("acme"))
    for i in range(MAX_BENIGN_AGENTS + 10):
        assert policy.check_request("192.0.2.1:5060", f"phone/{i}", 0.0) is Verdict.ALLOW
    assert len(policy._benign_agents) <= MAX_BENIGN_AGENTS
    assert policy.check_request("192.0.2.1:5060", "phone/1", 0.0) is Verdict.ALLOW
    assert policy.check_request("192.0.2.9:5060", "friendly-scanner", 0.0) is Verdict.DROP
    assert policy.check_request("192.0.2.9:5060", "friendly-scanner", 0.0) is Verdict.DROP


def test_udp_shed_limit_default_is_a_few_hundred_milliseconds_of_work() -> None:
    assert Limits().udp_backlog_bytes == 4 << 20
    net = Net(make_core())
    phone = Phone(net, "1001", "192.0.2.10")
    data = phone.build("OPTIONS", "sip:x@acme.example.com", to="sip:x@acme.example.com",
                       call_id="o1", cseq=1, from_tag="x")  # fmt: skip
    assert net.core.datagram_received(data, phone.peer, net.now, backlog=2 << 20) != []
    assert net.core.shed_count == 0
    assert net.core.datagram_received(data, phone.peer, net.now, backlog=5 << 20) == []
    assert net.core.shed_count == 1
