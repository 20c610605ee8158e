"""The UDP drain loop on a real loopback socket: a burst larger than one batch is answered
whole and in order, whether answers are sent as they are made or once per batch."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from pbx_runtime.config import parse_config
from pbx_runtime.transport.runtime import Runtime
from pbx_runtime.transport.udp import MAX_BATCH

BURST = 2 * MAX_BATCH + 7  # two full batches and a partial one


def options(n: int, port: int) -> bytes:
    return (
        f"OPTIONS sip:acme.example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-drain-{n};rport\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:probe@acme.example.com>;tag=t{n}\r\n"
        f"To: <sip:acme.example.com>\r\n"
        f"Call-ID: drain-{n}@127.0.0.1\r\n"
        f"CSeq: {n} OPTIONS\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


async def burst_answers(events: Path) -> list[bytes]:
    config = parse_config({
        "tenant": "acme",
        "domain": "acme.example.com",
        "security": {"allow_insecure_transports": True},
        "listeners": [{"transport": "udp", "address": "127.0.0.1", "port": 0}],
        "abuse": {"rate": 100_000, "burst": 100_000},
        "events": {"destination": str(events)},
    })
    runtime = Runtime(config)
    await runtime.start()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        client.bind(("127.0.0.1", 0))
        client.setblocking(False)
        port = client.getsockname()[1]
        server = ("127.0.0.1", runtime.bound[0][2])
        for n in range(1, BURST + 1):  # all queued before the loop runs the drain once
            client.sendto(options(n, port), server)
        answers: list[bytes] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while len(answers) < BURST and loop.time() < deadline:
            try:
                answers.append(client.recv(65535))
            except BlockingIOError:
                await asyncio.sleep(0.01)
        return answers
    finally:
        client.close()
        await runtime.close()


def test_a_burst_over_several_batches_is_answered_whole_and_in_order(tmp_path: Path) -> None:
    answers = asyncio.run(burst_answers(tmp_path / "events.jsonl"))
    assert len(answers) == BURST
    assert all(a.startswith(b"SIP/2.0 200 ") for a in answers)
    cseqs = [int(a.split(b"\r\nCSeq: ", 1)[1].split(b" ", 1)[0]) for a in answers]
    assert cseqs == list(range(1, BURST + 1))
