"""Process behaviour: SIGHUP reloads users and certificates without dropping registrations;
connection limits and slow clients; SIGTERM drains and exits 0."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import signal
import socket
import ssl
import time
from pathlib import Path

import pytest
from conftest import DOMAIN, TEST_TOML, Pbx, make_demo, running_pbx
from ua import UA


@pytest.fixture
def own_pbx(tmp_path: Path):
    extra = TEST_TOML.replace("[limits]\n", "[limits]\nslow_client_timeout = 1\n"
                              "max_connections_per_source = 8\n")  # fmt: skip
    with running_pbx(tmp_path, extra) as instance:
        yield instance


def _add_user(config: Path, user: str, password: str) -> None:
    ha1 = {a: hashlib.new(a, f"{user}:{DOMAIN}:{password}".encode()).hexdigest()
           for a in ("md5", "sha256")}  # fmt: skip
    config.write_text(
        config.read_text()
        + f'\n[users."{user}"]\nha1_md5 = "{ha1["md5"]}"\nha1_sha256 = "{ha1["sha256"]}"\n'
    )


def test_sighup_reloads_users_and_certificate_keeping_registrations(own_pbx: Pbx) -> None:
    old_cert = ssl.get_server_certificate(own_pbx.address("TLS"))

    async def scenario() -> None:
        callee = await UA.open("TLS", own_pbx.address("TLS"), "1002", own_pbx.passwords["1002"],
                               DOMAIN, ca=own_pbx.ca)  # fmt: skip
        try:
            assert (await callee.register()).status == 200
            # new users and a new certificate from the same CA, then SIGHUP
            make_demo.issue(own_pbx.directory, "server", _ca(own_pbx), DOMAIN,
                            (DOMAIN, "localhost", "127.0.0.1"))  # fmt: skip
            _add_user(own_pbx.directory / "demo.toml", "2001", "reloaded-secret")
            own_pbx.process.send_signal(signal.SIGHUP)
            await asyncio.sleep(0.5)
            newcomer = await UA.open("UDP", own_pbx.address("UDP"), "2001", "reloaded-secret",
                                     DOMAIN)  # fmt: skip
            try:
                assert (await newcomer.register()).status == 200
                call = await newcomer.call("1002", b"v=0\r\n")
                # 1002's binding survived, reached over its original TLS connection
                invite = await callee.request_in("INVITE")
                await callee.send(callee.answer(invite, 486))
                final = await newcomer.final("INVITE")
                assert final.status == 486
                await call.ack(final)
            finally:
                await newcomer.close()
        finally:
            await callee.close()

    asyncio.run(asyncio.wait_for(scenario(), 20))
    assert ssl.get_server_certificate(own_pbx.address("TLS")) != old_cert


def _ca(pbx: Pbx):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate((pbx.directory / "ca.pem").read_bytes())
    key = serialization.load_pem_private_key((pbx.directory / "ca.key").read_bytes(), None)
    return cert, key


def test_slow_client_is_cut_off_and_per_source_limit_holds(own_pbx: Pbx) -> None:
    address = own_pbx.address("TCP")
    slow = socket.create_connection(address, timeout=5)
    slow.sendall(b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKs\r\n")
    started = time.monotonic()
    assert slow.recv(100) == b""  # closed by the runtime, not by us
    assert 0.9 <= time.monotonic() - started < 4
    slow.close()
    held = [socket.create_connection(address, timeout=5) for _ in range(8)]
    try:
        extra = socket.create_connection(address, timeout=5)
        extra.settimeout(3)
        with contextlib.suppress(ConnectionResetError):  # refused at accept: closed at once
            assert extra.recv(100) == b""
        extra.close()
    finally:
        for sock in held:
            sock.close()
