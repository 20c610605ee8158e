"""The runtime process over real sockets on 127.0.0.1: registration, calls, bad credentials,
a malformed-input barrage. Each test is bounded by the UA's receive timeouts."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
import warnings
from pathlib import Path

import pytest
from conftest import DOMAIN, Pbx
from ua import UA

from pbx_runtime.sip import Request

VECTORS = sorted((Path(__file__).resolve().parents[2] / "vectors" / "rfc4475").glob("*.dat"))
SDP = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\n"
)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


async def _ua(pbx: Pbx, transport: str, user: str, *, password: str | None = None,
              algorithm: str = "SHA-256") -> UA:  # fmt: skip
    return await UA.open(
        transport, pbx.address(transport), user,
        pbx.passwords.get(user, "x") if password is None else password,
        DOMAIN, ca=pbx.ca, algorithm=algorithm,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("transport", "algorithm"),
    [("UDP", "SHA-256"), ("UDP", "MD5"), ("TCP", "SHA-256"), ("TLS", "SHA-256"), ("TLS", "MD5")],
)
def test_register_with_digest(pbx: Pbx, transport: str, algorithm: str) -> None:
    async def scenario() -> None:
        ua = await _ua(pbx, transport, "1003", algorithm=algorithm)
        try:
            ok = await ua.register()
            assert ok.status == 200, ok
            assert any(ua.local in c for c in ok.get_all("Contact"))
            gone = await ua.register(expires=0)
            assert gone.status == 200
        finally:
            await ua.close()

    run(scenario())


@pytest.mark.parametrize(("caller_transport", "callee_transport"), [("UDP", "TCP"), ("TLS", "UDP")])
def test_call_between_two_users_with_bye(
    pbx: Pbx, caller_transport: str, callee_transport: str
) -> None:
    async def scenario() -> None:
        caller = await _ua(pbx, caller_transport, "1001")
        callee = await _ua(pbx, callee_transport, "1002")
        try:
            assert (await caller.register()).status == 200
            assert (await callee.register()).status == 200
            call = await caller.call("1002", SDP)
            invite = await callee.request_in("INVITE")
            assert invite.body == SDP  # SDP passes untouched
            assert invite.call_id != call.call_id  # B2BUA: a dialog of its own
            await callee.send(callee.answer(invite, 180))
            await callee.send(callee.answer(invite, 200, body=SDP))
            ok = await caller.final("INVITE")
            assert ok.status == 200 and ok.body == SDP
            await call.ack(ok)
            ack = await callee.request_in("ACK")
            assert ack.call_id == invite.call_id
            await call.bye()
            bye = await callee.request_in("BYE")
            await callee.send(callee.answer(bye, 200))
            assert (await caller.final("BYE")).status == 200
        finally:
            await caller.close()
            await callee.close()

    run(scenario())


def test_cancel_before_answer_gets_487(pbx: Pbx) -> None:
    async def scenario() -> None:
        caller = await _ua(pbx, "UDP", "1001")
        callee = await _ua(pbx, "UDP", "1002")
        try:
            assert (await caller.register()).status == 200
            assert (await callee.register()).status == 200
            call = await caller.call("1002", SDP)
            invite = await callee.request_in("INVITE")
            await callee.send(callee.answer(invite, 180))
            await call.cancel()
            assert (await caller.final("CANCEL")).status == 200
            final = await caller.final("INVITE")
            assert final.status == 487
            await call.ack(final)
            cancel = await callee.request_in("CANCEL")
            await callee.send(callee.answer(cancel, 200))
            await callee.send(callee.answer(invite, 487))
        finally:
            await caller.close()
            await callee.close()

    run(scenario())


def test_unknown_number_gets_404(pbx: Pbx) -> None:
    async def scenario() -> None:
        caller = await _ua(pbx, "TCP", "1001")
        try:
            call = await caller.call("4242", SDP)
            final = await caller.final("INVITE")
            assert final.status == 404
            await call.ack(final)
        finally:
            await caller.close()

    run(scenario())


def test_bad_credentials_get_identical_answers(pbx: Pbx) -> None:
    async def scenario() -> list:
        answers = []
        for user, password in (("1002", "wrong-password"), ("8888", "whatever")):
            ua = await _ua(pbx, "UDP", user, password=password)
            try:
                answers.append(await ua.register())
            finally:
                await ua.close()
        # authenticated as 1001 but registering 1002's AOR
        ua = await _ua(pbx, "UDP", "1001")
        try:
            answers.append(await ua.register(aor_user="1002"))
        finally:
            await ua.close()
        return answers

    wrong, unknown, other_aor = run(scenario())
    assert wrong.status == unknown.status == 401
    assert other_aor.status == 403

    def shape(response):
        skip = {"Via", "From", "To", "Call-ID", "CSeq", "WWW-Authenticate"}
        names = [n for n, _ in response.headers]
        return response.reason, names, [(n, v) for n, v in response.headers if n not in skip]

    assert shape(wrong) == shape(unknown)
    assert wrong.to.tag == unknown.to.tag
    records = _events_until(pbx, lambda r: r["kind"] == "auth_failed" and r["user"] == "8888")
    assert records and all(r["tenant"] == "demo" for r in records)
    assert any(r["kind"] == "auth_failed" and r["user"] == "8888" for r in records)


def _events_until(pbx: Pbx, wanted, timeout: float = 10.0) -> list[dict]:
    """The runtime writes security events after answering: wait (bounded) for the one wanted."""
    deadline = time.monotonic() + timeout
    while True:
        text = pbx.events.read_text() if pbx.events.exists() else ""
        records = [json.loads(line) for line in text.splitlines() if line.endswith("}")]
        if any(wanted(r) for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.1)


def test_tls_server_certificate_is_verified_against_the_demo_ca(pbx: Pbx, tmp_path: Path) -> None:
    async def scenario() -> None:
        context = ssl.create_default_context()  # system CAs only: the demo CA is unknown
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.open_connection(*pbx.address("TLS"), ssl=context,
                                          server_hostname="localhost")  # fmt: skip
        context = ssl.create_default_context(cafile=str(pbx.ca))
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer TLS 1.1 …
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1_1  # … which the server refuses
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await asyncio.open_connection(*pbx.address("TLS"), ssl=context,
                                          server_hostname="localhost")  # fmt: skip

    run(scenario())


def _send_and_wait_for_close(address: tuple[str, int], payload: bytes) -> None:
    """Send, half-close, and read until the runtime closes too (so the per-source connection
    count is back down before the next connection)."""
    with socket.create_connection(address, timeout=3) as stream:
        stream.sendall(payload)
        stream.shutdown(socket.SHUT_WR)
        try:
            while stream.recv(65536):
                pass
        except ConnectionResetError:
            pass


def test_malformed_barrage_then_options_still_answered(pbx: Pbx) -> None:
    assert len(VECTORS) >= 49
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for vector in VECTORS:
            udp.sendto(vector.read_bytes(), pbx.address("UDP"))
            udp.sendto(vector.read_bytes()[: len(vector.read_bytes()) // 2], pbx.address("UDP"))
        udp.sendto(b"\x00\xff" * 4000, pbx.address("UDP"))
    finally:
        udp.close()
    for payload in [v.read_bytes() for v in VECTORS] + [b"".join(v.read_bytes() for v in VECTORS)]:
        _send_and_wait_for_close(pbx.address("TCP"), payload)

    async def probe() -> None:
        for transport in ("UDP", "TCP", "TLS"):
            ua = await _ua(pbx, transport, "1003")
            try:
                ok = await ua.options()
                assert ok.status == 200 and "INVITE" in (ok.get("Allow") or "")
            finally:
                await ua.close()

    run(probe())
    assert pbx.alive()


def test_incoming_invite_request_is_topology_hidden(pbx: Pbx) -> None:
    async def scenario() -> Request:
        caller = await _ua(pbx, "UDP", "1001")
        callee = await _ua(pbx, "UDP", "1002")
        try:
            assert (await callee.register()).status == 200
            call = await caller.call("1002", SDP)
            invite = await callee.request_in("INVITE")
            await callee.send(callee.answer(invite, 486))
            final = await caller.final("INVITE")
            assert final.status == 486
            await call.ack(final)
            return invite
        finally:
            await caller.close()
            await callee.close()

    invite = run(scenario())
    head = invite.to_bytes().split(b"\r\n\r\n")[0].decode()
    assert "bulkhead-test-ua" not in head and len(invite.get_all("Via")) == 1
