"""UDP retransmissions of an answered request get the same answer without being parsed
(pbx_runtime.answer_cache), for as long as a server transaction would absorb them."""

from __future__ import annotations

import pytest
from core_support import DOMAIN, SDP, Net, Phone, make_core

from pbx_runtime.answer_cache import AnswerCache
from pbx_runtime.core import Send
from pbx_runtime.sip import Request, Response, parse_datagram

TIMER_J = 64 * 0.5  # 64*T1 with the default T1


def register_without_credentials(phone: Phone, branch: str = "z9hG4bKr1") -> bytes:
    uri, to = f"sip:{DOMAIN}", f"sip:{phone.user}@{DOMAIN}"
    return phone.build("REGISTER", uri, to=to, call_id=f"c-{phone.user}", cseq=1,
                       from_tag="r1", branch=branch)  # fmt: skip


def answers(net: Net, data: bytes, phone: Phone) -> list[bytes]:
    return [o.data for o in net.core.datagram_received(data, phone.peer, net.now)
            if isinstance(o, Send)]  # fmt: skip


def test_a_retransmitted_challenge_is_the_same_bytes_until_timer_j() -> None:
    net = Net(make_core())
    alice = Phone(net, "1001", "192.0.2.10")
    request = register_without_credentials(alice)
    (first,) = answers(net, request, alice)
    net.now += 4.0
    assert answers(net, request, alice) == [first]  # same nonce: not challenged afresh
    net.now += TIMER_J
    (late,) = answers(net, request, alice)
    assert late != first  # past the transaction's lifetime: a new challenge (a new nonce)


def test_the_same_bytes_from_another_source_are_not_answered_from_the_cache() -> None:
    net = Net(make_core())
    alice = Phone(net, "1001", "192.0.2.10")
    mallory = Phone(net, "1001", "192.0.2.66")
    request = register_without_credentials(alice)
    (first,) = answers(net, request, alice)
    (other,) = answers(net, request, mallory)  # replayed elsewhere: parsed, challenged anew
    assert other != first


def test_a_retransmitted_authenticated_register_is_answered_once_and_resent() -> None:
    net = Net(make_core())
    alice = Phone(net, "1001", "192.0.2.10")
    assert alice.register().status == 200
    events = len(net.core.events)
    # the phone's next refresh, then a copy of it as if the 200 had been lost
    alice.cseq += 1
    uri, to = f"sip:{DOMAIN}", f"sip:{alice.user}@{DOMAIN}"
    auth = alice.authorization("Authorization", "REGISTER", uri)
    request = alice.build("REGISTER", uri, to=to, call_id=f"reg-1001-{alice.host}",
                          cseq=alice.cseq, from_tag="r1", headers=[auth])  # fmt: skip
    (ok,) = answers(net, request, alice)
    assert ok.startswith(b"SIP/2.0 200 ")
    assert answers(net, request, alice) == [ok]
    assert len(net.core.events) == events  # a refresh, and its copy changed nothing


def test_an_invite_challenge_is_resent_but_a_proceeding_invite_is_not_cached() -> None:
    net = Net(make_core())
    alice = Phone(net, "1001", "192.0.2.10")
    bob = Phone(net, "1002", "192.0.2.11")
    assert alice.register().status == 200 and bob.register().status == 200
    uri = f"sip:1002@{DOMAIN}"
    invite = alice.build("INVITE", uri, to=uri, call_id="call-1", cseq=1, from_tag="i1",
                         body=SDP)  # fmt: skip
    (challenge,) = answers(net, invite, alice)
    assert challenge.startswith(b"SIP/2.0 407 ")
    assert answers(net, invite, alice) == [challenge]  # the stateless 407, resent as is
    cached = len(net.core._answers)
    alice.learn(parse_datagram(challenge))
    auth = alice.authorization("Proxy-Authorization", "INVITE", uri)
    invite = alice.build("INVITE", uri, to=uri, call_id="call-1", cseq=2, from_tag="i1",
                         headers=[auth], body=SDP)  # fmt: skip
    net.send(invite, alice.peer)  # 100 Trying to alice, the INVITE relayed to bob
    assert [m.status for m in alice.received() if isinstance(m, Response)] == [100]
    assert [m.method for m in bob.received() if isinstance(m, Request)] == ["INVITE"]
    assert len(net.core._answers) == cached  # its answers are the transaction's


def test_a_dropped_request_is_not_remembered() -> None:
    net = Net(make_core())
    scanner = Phone(net, "100", "192.0.2.99")
    uri, to = f"sip:{DOMAIN}", f"sip:100@{DOMAIN}"
    probe = scanner.build("OPTIONS", uri, to=to, call_id="scan", cseq=1, from_tag="s",
                          headers=[("User-Agent", "friendly-scanner")])  # fmt: skip
    assert answers(net, probe, scanner) == [] and answers(net, probe, scanner) == []
    assert len(net.core._answers) == 0


def test_cache_is_bounded_oldest_first() -> None:
    cache = AnswerCache(lifetime=32.0, size=2)
    cache.put(b"a", "src", b"A", 0.0)
    cache.put(b"b", "src", b"B", 1.0)
    cache.put(b"a", "src", b"A2", 2.0)  # re-answered: now the youngest
    cache.put(b"c", "src", b"C", 3.0)
    assert cache.get(b"b", "src", 3.0) is None
    assert cache.get(b"a", "src", 3.0) == b"A2" and cache.get(b"c", "src", 3.0) == b"C"
    assert len(cache) == 2
    assert cache.get(b"c", "elsewhere", 3.0) is None
    assert cache.get(b"c", "src", 35.0) is None
    with pytest.raises(ValueError):
        AnswerCache(lifetime=1.0, size=0)
