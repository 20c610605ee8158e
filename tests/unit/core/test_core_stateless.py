"""Unauthenticated REGISTER and INVITE are answered without a transaction (RFC 3261 §26.3.2.4)."""

from __future__ import annotations

from core_support import DOMAIN, SDP, Net, Phone, make_core

from pbx_runtime.sip import Response


def _register_without_credentials(phone: Phone, branch: str, cseq: int = 1) -> bytes:
    uri, to = f"sip:{DOMAIN}", f"sip:{phone.user}@{DOMAIN}"
    return phone.build("REGISTER", uri, to=to, call_id=f"c-{phone.user}", cseq=cseq,
                       from_tag="r1", branch=branch)  # fmt: skip


def test_register_challenge_holds_no_state_and_a_retransmission_is_challenged_again() -> None:
    net = Net(make_core())
    alice = Phone(net, "1001", "192.0.2.10")
    request = _register_without_credentials(alice, "z9hG4bKreg1")
    net.send(request, alice.peer)
    first = alice.received()
    assert [m.status for m in first if isinstance(m, Response)] == [401]
    assert len(net.core.manager) == 0 and net.core.next_deadline() == net.core._next_purge
    net.now += 0.5
    net.send(request, alice.peer)  # the retransmission: answered again, the same To tag
    (again,) = alice.received()
    assert isinstance(again, Response) and again.status == 401
    assert again.to.tag == first[0].to.tag
    assert len(net.core.manager) == 0
    # credentials still work after stateless challenges, through a transaction
    assert alice.register().status == 200


def test_a_flood_of_unauthenticated_requests_fills_no_transaction_table() -> None:
    net = Net(make_core(max_transactions=10))
    mallory = Phone(net, "7777", "192.0.2.66")
    for n in range(200):
        net.send(_register_without_credentials(mallory, f"z9hG4bKflood{n}", n + 1), mallory.peer)
        mallory.invite("1001", body=SDP, authenticate=False)
    statuses = [m.status for m in mallory.received() if isinstance(m, Response)]
    assert statuses == [401, 407] * 200  # no 100 Trying, no 503 from a full table
    assert len(net.core.manager) == 0
    # the table is still free for a real phone
    bob = Phone(net, "1002", "192.0.2.11")
    assert bob.register().status == 200


def test_invite_challenge_is_stateless_and_its_ack_matches_nothing() -> None:
    net = Net(make_core())
    alice = Phone(net, "1001", "192.0.2.10")
    bob = Phone(net, "1002", "192.0.2.11")
    assert alice.register().status == 200 and bob.register().status == 200
    waiting = len(net.core.manager)  # the two authenticated REGISTERs wait out Timer J
    call = alice.invite("1002", authenticate=False)
    (challenge,) = alice.received()
    assert isinstance(challenge, Response) and challenge.status == 407
    assert len(net.core.manager) == waiting
    call.ack_failure(challenge)
    assert alice.received() == [] and len(net.core.manager) == waiting
    # the authenticated INVITE goes through a transaction as before and reaches bob
    alice.learn(challenge)
    call.send_invite(SDP, auth=True)
    assert [m.status for m in alice.received() if isinstance(m, Response)] == [100]
    assert bob.last().method == "INVITE"


def test_refusals_before_authentication_are_stateless_too() -> None:
    net = Net(make_core())
    alice = Phone(net, "1001", "192.0.2.10")
    uri = f"sip:1002@{DOMAIN}"
    invite = alice.build("INVITE", uri, to=uri, call_id="req", cseq=1, from_tag="a",
                         headers=[("Require", "foo")], body=SDP)  # fmt: skip
    net.send(invite, alice.peer)
    (refused,) = alice.received()
    assert isinstance(refused, Response) and refused.status == 420
    assert refused.get("Unsupported") == "foo"
    assert len(net.core.manager) == 0
