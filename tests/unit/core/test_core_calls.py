"""Call control through the sans-I/O core: two phones, wire bytes, no sockets."""

from __future__ import annotations

from core_support import SDP, Net, Phone, answer, in_dialog_from_callee, make_core

from pbx_runtime.b2bua import CallState
from pbx_runtime.core import Send
from pbx_runtime.sip import Request, Response, parse_datagram


def _setup(**limits):
    net = Net(make_core(**limits))
    alice = Phone(net, "1001", "192.0.2.10")
    bob = Phone(net, "1002", "192.0.2.11")
    assert alice.register().status == 200
    assert bob.register().status == 200
    return net, alice, bob


def _finals(phone: Phone) -> list[Response]:
    return [m for m in phone.received() if isinstance(m, Response) and m.status >= 200]


def _ring(net, alice, bob):
    call = alice.invite("1002")
    invite = bob.last()
    assert isinstance(invite, Request) and invite.method == "INVITE"
    net.send(answer(bob, invite, 180), bob.peer)
    ringing = alice.last()
    assert isinstance(ringing, Response) and ringing.status == 180
    return call, invite


def test_call_with_bye_from_caller() -> None:
    net, alice, bob = _setup()
    call, invite = _ring(net, alice, bob)
    # topology hiding: the callee sees our Call-ID, Via and Contact, not the caller's
    assert invite.call_id != call.call_id
    head = invite.to_bytes().split(b"\r\n\r\n")[0].decode()  # the SDP passes untouched
    assert "192.0.2.10" not in head
    assert invite.body == SDP
    assert invite.from_.uri.user == "1001"

    net.send(answer(bob, invite, 200, body=b"v=0 answer"), bob.peer)
    ok = alice.last()
    assert isinstance(ok, Response) and ok.status == 200 and ok.body == b"v=0 answer"
    assert "192.0.2.11" not in ok.to_bytes().split(b"\r\n\r\n")[0].decode()
    call.ack(ok)
    ack = bob.last()
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert net.core.calls.calls()[0].state is CallState.CONFIRMED

    call.bye()
    assert [m.status for m in _finals(alice)] == [200]
    bye = bob.last()
    assert isinstance(bye, Request) and bye.method == "BYE" and bye.call_id == invite.call_id
    net.send(answer(bob, bye, 200), bob.peer)
    assert len(net.core.calls) == 0


def test_bye_from_callee_and_reinvite_pass_through() -> None:
    net, alice, bob = _setup()
    call, invite = _ring(net, alice, bob)
    net.send(answer(bob, invite, 200, body=SDP), bob.peer)
    call.ack(alice.last())
    bob.received()

    # re-INVITE from the caller reaches the callee with the new body, and back
    net.send(call.in_dialog("INVITE", body=b"v=0 hold"), alice.peer)
    reinvite = bob.last()
    assert isinstance(reinvite, Request) and reinvite.body == b"v=0 hold"
    assert reinvite.call_id == invite.call_id
    net.send(answer(bob, reinvite, 200, body=b"v=0 held"), bob.peer)
    ok = _finals(alice)[-1]
    assert ok.status == 200 and ok.body == b"v=0 held"
    net.send(call.in_dialog("ACK", cseq=call.cseq), alice.peer)
    assert bob.last().method == "ACK"

    net.send(in_dialog_from_callee(bob, invite, "BYE", 7), bob.peer)
    assert _finals(bob)[-1].status == 200
    bye = alice.last()
    assert isinstance(bye, Request) and bye.method == "BYE" and bye.call_id == call.call_id
    net.send(answer(alice, bye, 200), alice.peer)
    assert len(net.core.calls) == 0


def test_cancel_before_answer_gives_487_and_cancels_callee() -> None:
    net, alice, bob = _setup()
    call, invite = _ring(net, alice, bob)
    call.cancel()
    statuses = sorted(m.status for m in _finals(alice))
    assert statuses == [200, 487]
    cancel = bob.last()
    assert isinstance(cancel, Request) and cancel.method == "CANCEL"
    net.send(answer(bob, cancel, 200), bob.peer)
    net.send(answer(bob, invite, 487), bob.peer)
    assert bob.last().method == "ACK"  # the transaction layer ACKs the 487
    assert len(net.core.calls) == 0


def test_unknown_number_404_unregistered_480_busy_486() -> None:
    net, alice, bob = _setup()
    alice.invite("9999")
    assert _finals(alice)[-1].status == 404
    alice.invite("1003")  # exists, never registered
    assert _finals(alice)[-1].status == 480
    carol = Phone(net, "1003", "192.0.2.12")
    assert carol.register().status == 200
    _ring(net, alice, bob)
    carol.invite("1002")
    assert _finals(carol)[-1].status == 486


def test_invite_challenge_is_identical_for_unknown_and_known_users() -> None:
    net = Net(make_core())
    ghost = Phone(net, "7777", "192.0.2.20")
    known = Phone(net, "1001", "192.0.2.20", password="wrong")
    replies = []
    for phone in (ghost, known):
        phone.invite("1002", call_id="same")  # challenged, answers with bad credentials
        second = _finals(phone)[-1]
        assert second.status == 407
        replies.append(second)
    ignore = {"Proxy-Authenticate", "Via", "From"}
    assert [h for h in replies[0].headers if h[0] not in ignore] == [
        h for h in replies[1].headers if h[0] not in ignore
    ]
    assert replies[0].reason == replies[1].reason


def test_callee_busy_response_is_relayed_and_call_forgotten() -> None:
    net, alice, bob = _setup()
    _call, invite = _ring(net, alice, bob)
    net.send(answer(bob, invite, 486), bob.peer)
    assert _finals(alice)[-1].status == 486
    assert len(net.core.calls) == 0


def test_no_ack_from_caller_hangs_up_both_legs() -> None:
    net, alice, bob = _setup()
    _call, invite = _ring(net, alice, bob)
    net.send(answer(bob, invite, 200, body=SDP), bob.peer)
    assert alice.last().status == 200
    net.tick(5)
    retransmitted = [m for m in alice.received() if isinstance(m, Response)]
    assert len(retransmitted) >= 3  # 2xx retransmitted over UDP (0.5, 1.5, 3.5 s)
    net.tick(30)
    assert any(isinstance(m, Request) and m.method == "BYE" for m in alice.received())
    assert any(isinstance(m, Request) and m.method == "BYE" for m in bob.received())


def test_options_answered_with_allow_and_unknown_method_501() -> None:
    net = Net(make_core())
    phone = Phone(net, "1001", "192.0.2.10")
    data = phone.build("OPTIONS", "sip:acme.example.com", to="sip:acme.example.com",
                       call_id="o1", cseq=1, from_tag="x")  # fmt: skip
    net.send(data, phone.peer)
    ok = phone.last()
    assert ok.status == 200 and "INVITE" in (ok.get("Allow") or "")
    net.send(data.replace(b"OPTIONS", b"FOOBAR"), phone.peer)
    assert phone.last().status == 501


def test_call_to_callee_registered_over_tcp_uses_its_connection() -> None:
    net = Net(make_core())
    alice = Phone(net, "1001", "192.0.2.10")
    bob = Phone(net, "1002", "192.0.2.11", port=40000, transport="TCP", conn=7)
    assert alice.register().status == 200
    assert bob.register().status == 200
    alice.invite("1002")
    invite = bob.last()
    assert isinstance(invite, Request) and invite.top_via.transport == "TCP"
    net.core.connection_closed(bob.peer)
    alice.invite("1002")
    assert _finals(alice)[-1].status == 480  # its connection is gone; we never dial out


def test_shedding_drops_new_requests_before_parsing() -> None:
    net = Net(make_core(udp_backlog_bytes=4096))
    phone = Phone(net, "1001", "192.0.2.10")
    data = phone.build("OPTIONS", "sip:x@acme.example.com", to="sip:x@acme.example.com",
                       call_id="o2", cseq=1, from_tag="x")  # fmt: skip
    assert net.core.datagram_received(data, phone.peer, net.now, backlog=5000) == []
    assert net.core.shed_count == 1


def test_shedding_admits_the_answer_to_a_challenge() -> None:
    """Under overload the REGISTER that carries credentials finishes what its challenged first
    half started; only requests without credentials are shed."""
    net = Net(make_core(udp_backlog_bytes=4096))
    phone = Phone(net, "1001", "192.0.2.10")
    uri, to = "sip:acme.example.com", "sip:1001@acme.example.com"
    first = phone.build("REGISTER", uri, to=to, call_id="r", cseq=1, from_tag="r")
    (challenge,) = net.core.datagram_received(first, phone.peer, net.now)
    assert isinstance(challenge, Send)
    phone.learn(parse_datagram(challenge.data))
    auth = phone.authorization("Authorization", "REGISTER", uri)
    second = phone.build("REGISTER", uri, to=to, call_id="r", cseq=2, from_tag="r",
                         headers=[auth])  # fmt: skip
    assert net.core.datagram_received(first, phone.peer, net.now, backlog=5000) == []
    (ok,) = net.core.datagram_received(second, phone.peer, net.now, backlog=5000)
    assert isinstance(ok, Send) and ok.data.startswith(b"SIP/2.0 200 ")
    assert net.core.shed_count == 1


def _challenged_register(net: Net, phone: Phone, call_id: str) -> bytes:
    """Fetch a challenge for *phone* and return the REGISTER answering it (not sent)."""
    uri, to = "sip:acme.example.com", f"sip:{phone.user}@acme.example.com"
    first = phone.build("REGISTER", uri, to=to, call_id=call_id, cseq=1, from_tag="r")
    (challenge,) = net.core.datagram_received(first, phone.peer, net.now)
    assert isinstance(challenge, Send)
    phone.learn(parse_datagram(challenge.data))
    auth = phone.authorization("Authorization", "REGISTER", uri)
    return phone.build("REGISTER", uri, to=to, call_id=call_id, cseq=2, from_tag="r",
                       headers=[auth])  # fmt: skip


def test_shedding_spares_only_nonces_issued_to_the_source_and_still_fresh() -> None:
    """A credentials line alone buys nothing under overload: a forged nonce, one issued to
    another address, or an expired one is shed like any new work."""
    net = Net(make_core(udp_backlog_bytes=4096))
    alice = Phone(net, "1001", "192.0.2.10")
    mallory = Phone(net, "1002", "198.51.100.7")
    genuine = _challenged_register(net, alice, "a")
    nonce = alice.nonce[alice.algorithm]
    forged = genuine.replace(nonce.encode(), b"0" * 48)
    assert net.core.datagram_received(forged, alice.peer, net.now, backlog=5000) == []
    # alice's nonce, sent from another address (bound to the IP, not the port)
    assert net.core.datagram_received(genuine, mallory.peer, net.now, backlog=5000) == []
    later = net.now + 301  # past the 300-s nonce lifetime
    assert net.core.datagram_received(genuine, alice.peer, later, backlog=5000) == []
    assert net.core.shed_count == 3
    (ok,) = net.core.datagram_received(genuine, alice.peer, net.now, backlog=5000)
    assert isinstance(ok, Send) and ok.data.startswith(b"SIP/2.0 200 ")


def test_shedding_admits_the_invite_answering_a_407() -> None:
    net, alice, bob = _setup(udp_backlog_bytes=4096)
    call = alice.invite("1002", authenticate=False)
    (challenge,) = _finals(alice)
    assert challenge.status == 407
    alice.learn(challenge)
    call.ack_failure(challenge)
    call.cseq += 1
    auth = alice.authorization("Proxy-Authorization", "INVITE", call.uri)
    invite = alice.build("INVITE", call.uri, to=call.uri, call_id=call.call_id, cseq=call.cseq,
                         from_tag="caller", branch="z9hG4bKshed1", headers=[auth],
                         body=SDP)  # fmt: skip
    net.deliver(net.core.datagram_received(invite, alice.peer, net.now, backlog=5000))
    assert net.core.shed_count == 0
    relayed = bob.last()
    assert isinstance(relayed, Request) and relayed.method == "INVITE"
