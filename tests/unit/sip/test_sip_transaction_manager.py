"""TransactionManager: matching (§17.1.3, §17.2.3), retransmission absorption, ACK and CANCEL
(§17.1.1.3, §9), the magic-cookie rule (RFC 4475 badbranch → 400), the 503 limit, and two
managers talking to each other over a lossy in-memory "UDP"."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbx_runtime.sip import (
    AckReceived,
    PassToTU,
    Request,
    RequestReceived,
    RequestRejected,
    Response,
    SendMessage,
    TransactionKey,
    TransactionManager,
    TransactionTerminated,
    TransportFailed,
    build_ack,
    build_cancel,
    build_response,
    new_branch,
    parse_datagram,
    serialize,
)
from pbx_runtime.sip.transaction import (
    MAX_TRANSACTIONS,
    Event,
    Role,
    State,
    TerminationReason,
)

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "rfc4475"
PEER = ("192.0.2.10", 5060)
OTHER = ("192.0.2.11", 5060)


def make_request(
    method: str = "INVITE",
    *,
    branch: str = "z9hG4bK-1",
    sent_by: str = "client.example.com:5060",
    transport: str = "UDP",
    extra: str = "",
) -> Request:
    data = (
        f"{method} sip:bob@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {sent_by};branch={branch}\r\n"
        "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bK-p\r\n"
        "Max-Forwards: 69\r\n"
        f"{extra}"
        "From: Alice <sip:alice@example.com>;tag=a1\r\n"
        "To: Bob <sip:bob@example.com>\r\n"
        "Call-ID: call-1@example.com\r\n"
        f"CSeq: 7 {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    message = parse_datagram(data)
    assert isinstance(message, Request)
    return message


def reply(request: Request, status: int, tag: str = "b1") -> Response:
    return build_response(request, status, to_tag=tag)


def received(events: list[Event]) -> RequestReceived:
    (event,) = [e for e in events if isinstance(e, RequestReceived)]
    return event


def sent(events: list[Event]) -> list[Request | Response]:
    return [e.message for e in events if isinstance(e, SendMessage)]


# -- server matching (§17.2.3) -------------------------------------------------------------------


def test_new_request_creates_server_transaction_and_sends_100_first() -> None:
    manager = TransactionManager()
    invite = make_request()
    events = manager.receive(invite, PEER, 0.0)
    assert isinstance(events[0], SendMessage) and events[0].destination == PEER
    assert isinstance(events[0].message, Response) and events[0].message.status == 100
    event = received(events)
    assert event == RequestReceived(event.key, invite, PEER, None)
    sent_by = "client.example.com:5060"
    assert event.key == TransactionKey(Role.SERVER, "z9hg4bk-1", "INVITE", sent_by)
    assert len(manager) == 1 and event.key in manager


def test_non_invite_gets_no_100() -> None:
    manager = TransactionManager()
    events = manager.receive(make_request("OPTIONS"), PEER, 0.0)
    assert [type(e) for e in events] == [RequestReceived]


def test_retransmitted_invite_resends_last_provisional_without_tu() -> None:
    manager = TransactionManager()
    invite = make_request()
    manager.receive(invite, PEER, 0.0)
    assert [m.status for m in sent(manager.receive(invite, PEER, 0.5))] == [100]  # type: ignore[union-attr]
    ringing = reply(invite, 180)
    manager.send_response(ringing, 0.6)
    assert manager.receive(invite, PEER, 1.0) == [SendMessage(ringing, PEER)]


def test_retransmitted_non_invite_absorbed_then_final_resent() -> None:
    manager = TransactionManager()
    register = make_request("REGISTER")
    manager.receive(register, PEER, 0.0)
    assert manager.receive(register, PEER, 0.5) == []  # Trying: discarded
    ok = reply(register, 200)
    assert manager.send_response(ok, 0.6) == [SendMessage(ok, PEER)]
    assert manager.receive(register, PEER, 1.0) == [SendMessage(ok, PEER)]
    assert manager.send_response(reply(register, 500), 1.1) == []  # second final discarded


def test_only_transactions_without_an_outcome_are_unsettled() -> None:
    """Drain waits for these; Completed/Accepted ones only absorb retransmissions."""
    manager = TransactionManager()
    register, invite = make_request("REGISTER"), make_request(branch="z9hG4bK-2")
    manager.receive(register, PEER, 0.0)
    manager.receive(invite, PEER, 0.0)
    assert (len(manager), manager.unsettled()) == (2, 2)
    manager.send_response(reply(register, 200), 0.1)  # Completed (Timer J, 32 s over UDP)
    assert (len(manager), manager.unsettled()) == (2, 1)
    manager.send_response(reply(invite, 200), 0.2)  # Accepted (RFC 6026, Timer L)
    assert (len(manager), manager.unsettled()) == (2, 0)


def test_branch_case_insensitive_sent_by_and_method_distinguish() -> None:
    manager = TransactionManager()
    manager.receive(make_request(branch="z9hG4bKabc"), PEER, 0.0)
    # same branch, different case: the same transaction (a retransmission)
    assert [type(e) for e in manager.receive(make_request(branch="z9hG4bKABC"), PEER, 0.1)] == [
        SendMessage
    ]
    # same branch from another sent-by: a different transaction (§17.2.3 rule 2)
    other = make_request(branch="z9hG4bKabc", sent_by="evil.example.com")
    assert isinstance(manager.receive(other, OTHER, 0.2)[-1], RequestReceived)
    # same branch, another method: a different transaction (rule 3)
    options = make_request("OPTIONS", branch="z9hG4bKabc")
    assert isinstance(manager.receive(options, PEER, 0.3)[-1], RequestReceived)
    assert len(manager) == 3


def test_ack_for_non_2xx_matches_the_invite_transaction() -> None:
    manager = TransactionManager()
    invite = make_request()
    key = received(manager.receive(invite, PEER, 0.0)).key
    busy = reply(invite, 486)
    manager.send_response(busy, 0.1)
    assert manager.receive(build_ack(invite, busy), PEER, 0.2) == []
    tx = manager.transaction(key)
    assert tx is not None and tx.state is State.CONFIRMED


def test_ack_for_2xx_and_ack_without_cookie_go_to_the_tu() -> None:
    manager = TransactionManager()
    invite = make_request()
    key = received(manager.receive(invite, PEER, 0.0)).key
    manager.send_response(reply(invite, 200), 0.1)
    ack_2xx = make_request("ACK", branch="z9hG4bK-new")  # §13.2.2.4: a new branch
    assert manager.receive(ack_2xx, PEER, 0.2) == [AckReceived(ack_2xx, PEER)]
    same_branch_ack = make_request("ACK")  # reuses the INVITE branch: Accepted passes it up
    assert manager.receive(same_branch_ack, PEER, 0.3) == [PassToTU(key, same_branch_ack)]
    old_ack = make_request("ACK", branch="1234")
    assert manager.receive(old_ack, PEER, 0.4) == [AckReceived(old_ack, PEER)]


# -- the magic cookie (RFC 4475 §3.2.1, expected.yaml: badbranch → uas 400) ---------------------


def test_badbranch_vector_is_answered_400_statelessly() -> None:
    request = parse_datagram((VECTORS / "badbranch.dat").read_bytes())
    assert isinstance(request, Request)
    manager = TransactionManager()
    events = manager.receive(request, PEER, 0.0)
    assert [type(e) for e in events] == [SendMessage, RequestRejected]
    (response,) = sent(events)
    assert isinstance(response, Response) and response.status == 400
    assert response.get("Call-ID") == request.get("Call-ID") and response.to.tag is not None
    assert events[1] == RequestRejected(request, PEER, 400)
    assert len(manager) == 0 and manager.next_deadline() is None


@pytest.mark.parametrize("branch", ["z9hG4bK", "1234abcd", "Z9HG4BKabc"])
def test_requests_without_rfc3261_branch_get_400(branch: str) -> None:
    manager = TransactionManager()
    events = manager.receive(make_request("OPTIONS", branch=branch), PEER, 0.0)
    assert [m.status for m in sent(events)] == [400]  # type: ignore[union-attr]


def test_request_without_via_is_rejected() -> None:
    invite = make_request().without_header("Via")
    events = TransactionManager().receive(invite, PEER, 0.0)
    assert events[-1] == RequestRejected(invite, PEER, 400)


# -- the limit ----------------------------------------------------------------------------------


def test_over_the_limit_new_requests_get_503_with_retry_after() -> None:
    assert MAX_TRANSACTIONS == 10_000
    manager = TransactionManager(max_transactions=2, retry_after=7)
    first = make_request("OPTIONS", branch="z9hG4bK-a")
    manager.receive(first, PEER, 0.0)
    manager.send_request(make_request("OPTIONS", branch="z9hG4bK-out"), OTHER, 0.0)
    third = make_request("OPTIONS", branch="z9hG4bK-c")
    events = manager.receive(third, PEER, 0.1)
    (response,) = sent(events)
    assert isinstance(response, Response)
    assert (response.status, response.get("Retry-After")) == (503, "7")
    assert events[-1] == RequestRejected(third, PEER, 503)
    assert len(manager) == 2
    # retransmissions of live transactions and ACKs still work at the limit
    assert manager.receive(first, PEER, 0.2) == []
    ack = make_request("ACK", branch="z9hG4bK-z")
    assert manager.receive(ack, PEER, 0.2) == [AckReceived(ack, PEER)]
    # once one terminates there is room again
    manager.send_response(reply(first, 200), 0.3)
    manager.handle_timers(100.0)
    assert isinstance(manager.receive(third, PEER, 101.0)[-1], RequestReceived)


def test_manager_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        TransactionManager(max_transactions=0)


# -- client side (§17.1.3) ------------------------------------------------------------------------


def test_responses_match_by_branch_and_cseq_method() -> None:
    manager = TransactionManager()
    invite = make_request(branch=new_branch())
    key, events = manager.send_request(invite, PEER, 0.0)
    assert sent(events) == [invite] and events[0] == SendMessage(invite, PEER)
    assert key == TransactionKey.for_client(invite) and key.role is Role.CLIENT
    ringing = reply(invite, 180)
    assert manager.receive(ringing, PEER, 0.1) == [PassToTU(key, ringing)]
    # a CANCEL shares the branch but is its own transaction (§9.1, §17.1.3 rule 2)
    cancel = build_cancel(invite)
    cancel_key, _ = manager.send_request(cancel, PEER, 0.2)
    assert cancel_key != key and cancel_key.method == "CANCEL"
    ok_cancel = reply(cancel, 200)
    assert manager.receive(ok_cancel, PEER, 0.3)[0] == PassToTU(cancel_key, ok_cancel)
    terminated = reply(invite, 487)
    events = manager.receive(terminated, PEER, 0.4)
    assert [type(e) for e in events] == [SendMessage, PassToTU]
    assert events[1] == PassToTU(key, terminated)


def test_stray_and_odd_responses_are_dropped() -> None:
    manager = TransactionManager()
    invite = make_request()
    manager.send_request(invite, PEER, 0.0)
    assert manager.receive(reply(make_request(branch="z9hG4bK-other"), 200), PEER, 0.1) == []
    assert manager.receive(reply(make_request("OPTIONS"), 200), PEER, 0.1) == []  # other method
    assert manager.receive(reply(make_request(branch="no-cookie"), 200), PEER, 0.1) == []
    odd = Response(status=999, headers=reply(invite, 200).headers)
    assert manager.receive(odd, PEER, 0.1) == []


def test_send_request_rejects_misuse() -> None:
    manager = TransactionManager()
    with pytest.raises(ValueError, match="ACK"):
        manager.send_request(make_request("ACK"), PEER, 0.0)
    with pytest.raises(ValueError, match="client transaction"):
        manager.send_request(make_request(branch="nocookie"), PEER, 0.0)
    manager.send_request(make_request(), PEER, 0.0)
    with pytest.raises(ValueError, match="live"):
        manager.send_request(make_request(), PEER, 0.0)


def test_send_response_rejects_misuse_and_ignores_unknown() -> None:
    manager = TransactionManager()
    ack = make_request("ACK")
    with pytest.raises(ValueError, match="ACK"):
        manager.send_response(reply(ack, 200), 0.0)
    with pytest.raises(ValueError):
        manager.send_response(Response(status=200), 0.0)
    assert manager.send_response(reply(make_request(), 200), 0.0) == []


def test_new_branch_is_rfc3261_and_unique() -> None:
    branches = {new_branch() for _ in range(100)}
    assert len(branches) == 100 and all(b.startswith("z9hG4bK") and len(b) > 7 for b in branches)


# -- ACK and CANCEL construction (§17.1.1.3, §9.1) ---------------------------------------------


def test_ack_for_non_2xx_is_built_per_17_1_1_3() -> None:
    routes = "Route: <sip:p1.example.com;lr>\r\nRoute: <sip:p2.example.com;lr>\r\n"
    invite = make_request(extra=routes)
    busy = reply(invite, 486, tag="uas-tag")
    manager = TransactionManager()
    manager.send_request(invite, PEER, 0.0)
    events = manager.receive(busy, PEER, 0.1)
    assert events[0] == SendMessage(build_ack(invite, busy), PEER)
    ack = build_ack(invite, busy)
    assert ack.method == "ACK" and ack.uri == invite.uri
    assert ack.get_all("Via") == [invite.get_all("Via")[0]]  # single Via = top Via, same branch
    assert ack.get_all("Route") == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    assert ack.get("From") == invite.get("From") and ack.get("Call-ID") == invite.get("Call-ID")
    assert ack.to.tag == "uas-tag"
    assert (ack.cseq.number, ack.cseq.method) == (7, "ACK")
    assert ack.max_forwards == 69
    reparsed = parse_datagram(serialize(ack))
    assert reparsed.get("Content-Length") == "0"
    assert reparsed.without_header("Content-Length") == ack


def test_cancel_is_built_per_9_1() -> None:
    invite = make_request(extra="Route: <sip:p1.example.com;lr>\r\n")
    cancel = build_cancel(invite)
    assert cancel.method == "CANCEL" and cancel.uri == invite.uri
    assert cancel.get_all("Via") == [invite.get_all("Via")[0]]
    assert cancel.get("To") == invite.get("To") and cancel.get("From") == invite.get("From")
    assert (cancel.cseq.number, cancel.cseq.method) == (7, "CANCEL")
    assert cancel.get_all("Route") == ["<sip:p1.example.com;lr>"]
    assert parse_datagram(serialize(cancel)).without_header("Content-Length") == cancel


# -- CANCEL matching (§9.2) ---------------------------------------------------------------------


def test_cancel_is_its_own_transaction_and_finds_the_invite() -> None:
    manager = TransactionManager()
    invite = make_request()
    invite_key = received(manager.receive(invite, PEER, 0.0)).key
    cancel = build_cancel(invite)
    events = manager.receive(cancel, PEER, 1.0)
    event = received(events)
    assert event.key != invite_key and event.key.method == "CANCEL"
    assert event.cancels == invite_key
    assert manager.find_cancelled(cancel) == invite_key
    # the TU answers both (§9.2): 200 to the CANCEL, 487 to the INVITE
    ok = reply(cancel, 200)
    assert manager.send_response(ok, 1.1) == [SendMessage(ok, PEER)]
    terminated = reply(invite, 487)
    assert manager.send_response(terminated, 1.1) == [SendMessage(terminated, PEER)]
    assert manager.receive(cancel, PEER, 1.2) == [SendMessage(ok, PEER)]  # retransmitted CANCEL


def test_cancel_without_invite_transaction() -> None:
    manager = TransactionManager()
    cancel = build_cancel(make_request())
    assert received(manager.receive(cancel, PEER, 0.0)).cancels is None  # the TU answers 481
    assert manager.find_cancelled(cancel) is None
    other = build_cancel(make_request(sent_by="elsewhere.example.com"))
    manager.receive(make_request(), PEER, 0.0)
    assert manager.find_cancelled(other) is None  # sent-by differs
    assert manager.find_cancelled(build_cancel(make_request(branch="nocookie"))) is None


# -- transport errors, timers bookkeeping -----------------------------------------------------


def test_transport_error_terminates_and_reports() -> None:
    manager = TransactionManager()
    key, _ = manager.send_request(make_request("OPTIONS"), PEER, 0.0)
    assert manager.transport_error(key, 0.1) == [
        TransportFailed(key),
        TransactionTerminated(key, TerminationReason.TRANSPORT_ERROR),
    ]
    assert manager.next_deadline() is None and len(manager) == 0
    assert manager.transport_error(key, 0.2) == []


def test_cancelled_timers_leave_no_deadline() -> None:
    manager = TransactionManager()
    invite = make_request()
    manager.send_request(invite, PEER, 0.0)
    assert manager.next_deadline() == 0.5
    manager.receive(reply(invite, 180), PEER, 0.1)  # A and B stop in Proceeding
    assert manager.next_deadline() is None
    assert manager.handle_timers(1000.0) == []
    assert len(manager) == 1  # Proceeding waits for the final (the TU CANCELs, §9.1)


def test_heap_stays_bounded_under_retransmission_churn() -> None:
    manager = TransactionManager()
    requests = [make_request("OPTIONS", branch=f"z9hG4bK-{i}") for i in range(50)]
    for request in requests:
        manager.send_request(request, PEER, 0.0)
    now = 0.0
    while (deadline := manager.next_deadline()) is not None:
        now = deadline
        manager.handle_timers(now)
        assert len(manager._heap) <= 64 + 4 * len(manager._armed) + 100
    assert now == 32.0 and len(manager) == 0


# -- two managers over a lossy in-memory UDP ------------------------------------------------------


class Wire:
    """Delivers SendMessage outputs between two managers as bytes, dropping chosen ones."""

    def __init__(self) -> None:
        self.uac = TransactionManager()
        self.uas = TransactionManager()
        self.drop: set[int] = set()  # indexes of datagrams to lose
        self.count = 0
        self.log: list[tuple[str, str]] = []
        self.tu_uac: list[Event] = []
        self.tu_uas: list[Event] = []

    def deliver(self, events: list[Event], sender: str, now: float) -> None:
        for event in events:
            if not isinstance(event, SendMessage):
                (self.tu_uac if sender == "uac" else self.tu_uas).append(event)
                continue
            index, self.count = self.count, self.count + 1
            line = event.message.start_line
            if index in self.drop:
                self.log.append((sender, f"lost {line}"))
                continue
            self.log.append((sender, line))
            message = parse_datagram(serialize(event.message))
            if sender == "uac":
                self.deliver(self.uas.receive(message, "uac", now), "uas", now)
            else:
                self.deliver(self.uac.receive(message, "uas", now), "uac", now)

    def run(self, until: float) -> None:
        while True:
            deadlines = [d for d in (self.uac.next_deadline(), self.uas.next_deadline()) if d]
            if not deadlines or min(deadlines) > until:
                return
            now = min(deadlines)
            self.deliver(self.uac.handle_timers(now), "uac", now)
            self.deliver(self.uas.handle_timers(now), "uas", now)


def test_lost_invite_and_lost_ack_recover_by_retransmission() -> None:
    wire = Wire()
    wire.drop = {0, 4}  # the first INVITE, and the first ACK
    invite = make_request(branch=new_branch())
    key, events = wire.uac.send_request(invite, "uas", 0.0)
    wire.deliver(events, "uac", 0.0)
    wire.run(until=0.5)  # Timer A: INVITE again, 100 Trying back
    server_key = received(wire.tu_uas).key
    busy = build_response(received(wire.tu_uas).request, 486, to_tag="x")
    wire.deliver(wire.uas.send_response(busy, 0.6), "uas", 0.6)
    wire.run(until=2.0)  # Timer G resends the 486 at 1.1; the UAC re-ACKs
    assert wire.log == [
        ("uac", "lost INVITE sip:bob@example.com SIP/2.0"),
        ("uac", "INVITE sip:bob@example.com SIP/2.0"),
        ("uas", "SIP/2.0 100 Trying"),
        ("uas", "SIP/2.0 486 Busy Here"),
        ("uac", "lost ACK sip:bob@example.com SIP/2.0"),
        ("uas", "SIP/2.0 486 Busy Here"),
        ("uac", "ACK sip:bob@example.com SIP/2.0"),
    ]
    assert [e.message.status for e in wire.tu_uac if isinstance(e, PassToTU)] == [100, 486]  # type: ignore[union-attr]
    tx = wire.uas.transaction(server_key)
    assert tx is not None and tx.state is State.CONFIRMED
    wire.run(until=100.0)
    assert len(wire.uac) == 0 and len(wire.uas) == 0
    reasons = [e.reason for e in wire.tu_uac + wire.tu_uas if isinstance(e, TransactionTerminated)]
    assert reasons == [TerminationReason.COMPLETED] * 2
    assert key.role is Role.CLIENT
