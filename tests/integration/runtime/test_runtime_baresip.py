"""Real phone over TLS: baresip (Debian ``baresip-core`` 1.0, libre 1.1) registers with its own
account configuration through the runtime's TLS listener, calls a registered test UA and is
called by it; driven through its ``ctrl_tcp`` module (JSON netstrings: commands in, events
out), no terminal. Audio goes through ``aubridge`` (no sound card); SIP stays on loopback and
DNS is pointed at 127.0.0.1 so nothing leaves the host.

Found with it (see docs/runtime/interop.md): libre 1.1 gives up ("Function not implemented")
on a 401 that lists SHA-256 before MD5 instead of using the MD5 challenge (RFC 8760 §2.4), so
the tenant offers MD5 only, as for SIPp; and baresip 1.0 has no setting to verify the server's
certificate (it registers with a foreign ``sip_cafile`` too), so what the TLS test proves is
the runtime's side; stunnel (test_runtime_stunnel_sipp.py) is the verifying client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import DOMAIN, MD5_ONLY, TEST_TOML, Pbx, free_port, running_pbx
from ua import UA

BARESIP = shutil.which("baresip")
MODULES = Path("/usr/lib/baresip/modules")
pytestmark = pytest.mark.skipif(
    BARESIP is None or not (MODULES / "ctrl_tcp.so").exists(),
    reason="baresip not installed (apt-get install -y baresip-core)",
)
SDP = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")  # fmt: skip


def _events(pbx: Pbx) -> list[dict[str, Any]]:
    text = pbx.events.read_text() if pbx.events.exists() else ""
    return [json.loads(line) for line in text.splitlines() if line]


def _wait_event(pbx: Pbx, kind: str, user: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        for event in _events(pbx):
            if event["kind"] == kind and event["user"] == user:
                return event
        assert time.monotonic() < deadline, f"no {kind} event for {user}: {_events(pbx)}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def md5_pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    with running_pbx(tmp_path_factory.mktemp("baresip"), TEST_TOML, MD5_ONLY) as instance:
        yield instance


class Baresip:
    """baresip as user 1001 over TLS, in its own config directory, with a control socket."""

    def __init__(self, pbx: Pbx, directory: Path) -> None:
        assert BARESIP is not None
        self.control = free_port()
        directory.mkdir()
        (directory / "config").write_text("\n".join([
            "poll_method epoll", "net_interface 127.0.0.1", "dns_server 127.0.0.1:53",
            "sip_listen 127.0.0.1:0", f"sip_cafile {pbx.ca}",
            "audio_player aubridge,nil", "audio_source aubridge,nil", "audio_alert aubridge,nil",
            f"module_path {MODULES}", "module g711.so", "module aubridge.so",
            "module_app account.so", "module_app menu.so", "module_app ctrl_tcp.so",
            f"ctrl_tcp_listen 127.0.0.1:{self.control}",
        ]) + "\n")  # fmt: skip
        tls = pbx.ports["tls"]
        (directory / "accounts").write_text(
            f"<sip:1001@{DOMAIN};transport=tls>;auth_pass={pbx.passwords['1001']};"
            f'outbound="sip:127.0.0.1:{tls};transport=tls";regint=600;answermode=auto\n'
        )
        self.log = directory / "baresip.log"
        with self.log.open("wb") as sink:
            # -t: quit after 120 s whatever happens (the tests take a few seconds)
            self.process = subprocess.Popen(
                [BARESIP, "-f", str(directory), "-t", "120", "-v"],
                stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.seen: list[dict[str, Any]] = []

    async def connect(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.control)
                return
            except OSError:
                assert self.process.poll() is None, self.log.read_text(errors="replace")
                assert time.monotonic() < deadline, "baresip control socket did not open"
                await asyncio.sleep(0.05)

    async def _next(self, timeout: float) -> dict[str, Any]:
        assert self.reader is not None
        length = await asyncio.wait_for(self.reader.readuntil(b":"), timeout)
        data = await asyncio.wait_for(self.reader.readexactly(int(length[:-1]) + 1), timeout)
        message: dict[str, Any] = json.loads(data[:-1])
        self.seen.append(message)
        return message

    async def command(self, command: str, params: str = "", timeout: float = 5.0) -> str:
        assert self.writer is not None
        token = f"t{len(self.seen)}-{time.monotonic_ns()}"
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self.writer.write(str(len(body)).encode() + b":" + body + b",")
        await self.writer.drain()
        while True:
            message = await self._next(timeout)
            if message.get("response") and message.get("token") == token:
                assert message["ok"], message
                return str(message.get("data", ""))

    async def event(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        for message in self.seen:
            if message.get("event") and message.get("type") == kind:
                self.seen.remove(message)
                return message
        while True:
            message = await self._next(timeout)
            if message.get("event") and message.get("type") == kind:
                self.seen.remove(message)
                return message

    async def close(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):
                await self.command("quit", timeout=2)
            self.writer.close()

    def wait(self, timeout: float = 10.0) -> int | None:
        """Its exit status, or None when it had to be killed (after *timeout* s)."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            return None


@pytest.fixture
def baresip(md5_pbx: Pbx, tmp_path: Path) -> Iterator[Baresip]:
    phone = Baresip(md5_pbx, tmp_path / "baresip")
    try:
        yield phone
    finally:
        if phone.process.poll() is None:  # a failed test: do not wait for its -t
            phone.process.terminate()
            phone.wait(5)


@contextlib.asynccontextmanager
async def _callee(pbx: Pbx) -> AsyncIterator[UA]:
    ua = await UA.open("TLS", pbx.address("TLS"), "1002", pbx.passwords["1002"], DOMAIN,
                       ca=pbx.ca, algorithm="MD5")  # fmt: skip
    try:
        assert (await ua.register()).status == 200
        yield ua
    finally:
        await ua.close()


def test_baresip_registers_calls_and_is_called_over_tls(md5_pbx: Pbx, baresip: Baresip) -> None:
    async def scenario() -> None:
        await baresip.connect()
        registered = _wait_event(md5_pbx, "registered", "1001")
        assert ";transport=tls" in registered["reason"], registered
        assert "OK" in await baresip.command("reginfo")
        async with _callee(md5_pbx) as ua:
            # baresip calls 1002: INVITE over 1002's TLS connection, 180, 200, ACK, BYE
            await baresip.command("dial", f"sip:1002@{DOMAIN}")
            invite = await ua.request_in("INVITE", 5)
            assert invite.get("From", "").startswith(f"<sip:1001@{DOMAIN}>")
            assert b"m=audio" in invite.body
            await ua.send(ua.answer(invite, 180))
            await ua.send(ua.answer(invite, 200, body=SDP))
            await ua.request_in("ACK", 5)
            await baresip.event("CALL_ESTABLISHED")
            await baresip.command("hangup")
            bye = await ua.request_in("BYE", 5)
            await ua.send(ua.answer(bye, 200))
            await baresip.event("CALL_CLOSED")

            # 1002 calls baresip (answermode=auto): the runtime reaches it over its TLS flow
            call = await ua.call("1001", SDP)
            final = await ua.final("INVITE", 5)
            assert final.status == 200, final
            assert b"m=audio" in final.body
            await call.ack(final)
            await baresip.event("CALL_ESTABLISHED")
            await call.bye()
            assert (await ua.final("BYE", 5)).status == 200
            await baresip.event("CALL_CLOSED")
        await baresip.close()

    asyncio.run(asyncio.wait_for(scenario(), 45))
    assert baresip.wait() == 0, baresip.log.read_text(errors="replace")
    # quitting unregistered (REGISTER with expires 0 over the same TLS connection)
    assert "by request" in _wait_event(md5_pbx, "unregistered", "1001")["reason"]
