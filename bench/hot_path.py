#!/usr/bin/env python3
"""In-process microbenchmark of the runtime's hot path: SIPp-shaped datagrams through the core.

Feeds the same bytes SIPp sends in ``bench/sipp/register.xml`` and ``call_uac.xml`` /
``call_uas.xml`` to :meth:`pbx_runtime.core.Core.datagram_received`, exactly as the UDP transport
does (one :class:`~pbx_runtime.core.Peer` per datagram, ``next_deadline`` and the security-event
flush after each input, timers fired when due), and reports the core's CPU time per operation.
Only the core's calls are timed; the simulated phones (building requests, computing digests,
reading responses) are not. A virtual clock advances by ``1 / --rate`` per operation, so
transaction timers (Timer J/K, 32 s over UDP) fire as they would under that load.

    .venv/bin/python bench/hot_path.py                       # REGISTER and call, µs per op
    .venv/bin/python bench/hot_path.py --only register --ops 20000
    .venv/bin/python bench/hot_path.py --profile register    # cProfile of the core's calls
    .venv/bin/python bench/hot_path.py --json /tmp/hot.json

One operation is what ``bench/sip_bench.py`` counts: an authenticated REGISTER (REGISTER →
401 → REGISTER with an MD5 qop=auth digest → 200), or an authenticated call (INVITE → 407 →
ACK → INVITE with digest → 100, relayed INVITE → 180 → 200 → ACK → BYE → 200, with the callee
side played by a second simulated phone). Every response is checked: a wrong status stops the
run. The figure is CPU time in the core only; the real process adds the event loop and the
socket calls (compare with ``sip_bench.py``'s "server CPU µs / op").
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import io
import json
import pstats
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sip_bench  # bench/ is this script's directory; it imports no runtime module


def runtime_path() -> str:
    """Where ``--build`` (read before the runtime is imported) finds the runtime."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--build", choices=sip_bench.BUILDS, default="source")
    if early.parse_known_args()[0].build == "source":
        return str(sip_bench.REPO)
    return sip_bench.compiled_runtime_dir()


sys.path.insert(0, runtime_path())

from pbx_runtime import COMPILED  # noqa: E402
from pbx_runtime.config import parse_config  # noqa: E402
from pbx_runtime.core import Close, Core, ListenerInfo, Output, Peer, Send  # noqa: E402
from pbx_runtime.transport import collector  # noqa: E402

DOMAIN = "bench.example"
HOST = "127.0.0.1"
PBX_PORT = 5060
T0 = 1_800_000_000.0
SDP = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
_CHALLENGE_RE = re.compile(
    rb'(?:WWW|Proxy)-Authenticate: Digest realm="[^"]*", nonce="([0-9a-f]+)"'
)
_STATUS_RE = re.compile(rb"SIP/2\.0 (\d{3}) ")
_HEADER_RE = re.compile(rb"^([A-Za-z-]+): (.*)$", re.M)


def password(user: str) -> str:
    return f"pw-{user}-x"


def ha1(user: str, algorithm: str = "md5") -> str:
    return hashlib.new(algorithm, f"{user}:{DOMAIN}:{password(user)}".encode()).hexdigest()


def make_core(users: list[str]) -> Core:
    config = parse_config(
        {
            "tenant": "bench",
            "domain": DOMAIN,
            "realm": DOMAIN,
            "digest_algorithms": ["MD5"],
            "security": {"allow_insecure_transports": True},
            "listeners": [{"transport": "udp", "address": HOST, "port": PBX_PORT}],
            "abuse": {"rate": 1_000_000.0, "burst": 1_000_000.0, "exempt_networks": [f"{HOST}/32"]},
            "limits": {
                "max_transactions": 1_000_000,
                "max_calls": 100_000,
                "calls_per_user": 100_000,
                "max_bindings": 1_000_000,
            },
            "users": {u: {"ha1_md5": ha1(u), "ha1_sha256": ha1(u, "sha256")} for u in users},
        }
    )
    core = Core(config, [ListenerInfo("UDP", f"{HOST}:{PBX_PORT}")])
    collector.install()  # what Runtime.start does once the core is built
    return core


def digest_response(user: str, method: str, uri: str, nonce: str, nc: str, cnonce: str) -> str:
    def h(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()  # SIP digest is MD5

    return h(f"{ha1(user)}:{nonce}:{nc}:{cnonce}:auth:{h(f'{method}:{uri}')}")


def authorization(header: str, user: str, method: str, uri: str, nonce: str) -> str:
    cnonce = "6b8b4567"
    response = digest_response(user, method, uri, nonce, "00000001", cnonce)
    return (
        f'{header}: Digest username="{user}",realm="{DOMAIN}",cnonce="{cnonce}",nc=00000001,'
        f'qop=auth,uri="{uri}",nonce="{nonce}",response="{response}",algorithm=MD5'
    )


def status_of(data: bytes) -> int:
    match = _STATUS_RE.match(data)
    return int(match.group(1)) if match else 0


def headers_of(data: bytes) -> dict[str, list[str]]:
    head = data.split(b"\r\n\r\n", 1)[0]
    out: dict[str, list[str]] = {}
    for name, value in _HEADER_RE.findall(head):
        out.setdefault(name.decode().lower(), []).append(value.decode().rstrip("\r"))
    return out


class Unexpected(RuntimeError):
    pass


@dataclass
class Harness:
    """The core plus the transport's per-input work, with only the core's calls timed."""

    core: Core
    rate: float
    now: float = T0
    spent_ns: int = 0
    profiler: cProfile.Profile | None = None
    inbox: dict[tuple[str, int], list[bytes]] = field(default_factory=dict)
    events_written: int = 0

    def _timed(self, call: Callable[[], list[Output]]) -> list[Output]:
        profiler = self.profiler
        if profiler is not None:
            profiler.enable()
        start = time.thread_time_ns()
        outputs = call()
        core = self.core
        if len(core.events):  # Runtime._flush_events
            self.events_written += len("".join(e.to_json() + "\n" for e in core.events.drain()))
        core.next_deadline()  # Runtime._arm_timer
        self.spent_ns += time.thread_time_ns() - start
        if profiler is not None:
            profiler.disable()
        return outputs

    def _deliver(self, outputs: list[Output]) -> None:
        for output in outputs:
            if isinstance(output, Send):
                self.inbox.setdefault((output.peer.host, output.peer.port), []).append(output.data)
            elif isinstance(output, Close):
                raise Unexpected(f"Close on UDP: {output}")

    def send(self, data: bytes, port: int) -> None:
        peer = Peer("UDP", HOST, port, 0)
        core, now = self.core, self.now
        self._deliver(self._timed(lambda: core.datagram_received(data, peer, now)))

    def take(self, port: int) -> list[bytes]:
        return self.inbox.pop((HOST, port), [])

    def tick(self) -> None:
        """Advance the virtual clock by one operation and fire the timers that are due."""
        self.now += 1.0 / self.rate
        deadline = self.core.next_deadline()
        if deadline is not None and deadline <= self.now:
            core, now = self.core, self.now
            self._deliver(self._timed(lambda: core.handle_timers(now)))
            self.inbox.clear()  # retransmissions nobody waits for (none expected)


def expect(messages: list[bytes], *statuses: int) -> list[bytes]:
    got = [status_of(m) for m in messages]
    if got != list(statuses):
        text = b"\n---\n".join(messages).decode(errors="replace")
        raise Unexpected(f"expected {list(statuses)}, got {got}:\n{text}")
    return messages


# ---------------------------------------------------------------------------------------------
# REGISTER (bench/sipp/register.xml)


def register_request(user: str, port: int, cseq: int, call_id: str, branch: str,
                     auth: str | None) -> bytes:  # fmt: skip
    lines = [
        f"REGISTER sip:{HOST}:{PBX_PORT} SIP/2.0",
        f"Via: SIP/2.0/UDP {HOST}:{port};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{DOMAIN}>;tag=4242SIPpTag00{call_id}",
        f"To: <sip:{user}@{DOMAIN}>",
        f"Call-ID: {call_id}-4242@{HOST}",
        f"CSeq: {cseq} REGISTER",
        f"Contact: <sip:{user}@{HOST}:{port + 1};transport=udp>",
    ]
    if auth is not None:
        lines.append(auth)
    lines += ["Expires: 3600", "User-Agent: bulkhead-bench", "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def register_once(h: Harness, user: str, n: int, port: int) -> None:
    call_id = f"{n}"
    h.send(register_request(user, port, 1, call_id, f"z9hG4bK-{n}-1", None), port)
    (challenge,) = expect(h.take(port), 401)
    match = _CHALLENGE_RE.search(challenge)
    if match is None:
        raise Unexpected(f"no challenge in {challenge!r}")
    uri = f"sip:{HOST}:{PBX_PORT}"
    auth = authorization("Authorization", user, "REGISTER", uri, match.group(1).decode())
    h.send(register_request(user, port, 2, call_id, f"z9hG4bK-{n}-2", auth), port)
    expect(h.take(port), 200)


# ---------------------------------------------------------------------------------------------
# Calls (bench/sipp/call_uac.xml, call_uas.xml)

CALLER_PORT = 5070
CALLEE_PORT = 5080


def invite(caller: str, callee: str, n: int, cseq: int, branch: str, auth: str | None) -> bytes:
    lines = [
        f"INVITE sip:{callee}@{HOST}:{PBX_PORT} SIP/2.0",
        f"Via: SIP/2.0/UDP {HOST}:{CALLER_PORT};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:{caller}@{DOMAIN}>;tag=4242SIPpTag00{n}",
        f"To: <sip:{callee}@{DOMAIN}>",
        f"Call-ID: {n}-4242@{HOST}",
        f"CSeq: {cseq} INVITE",
        f"Contact: <sip:{caller}@{HOST}:{CALLER_PORT};transport=UDP>",
    ]
    if auth is not None:
        lines.append(auth)
    lines += ["User-Agent: bulkhead-bench", "Content-Type: application/sdp",
              f"Content-Length: {len(SDP)}"]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + SDP


def in_dialog(method: str, caller: str, n: int, cseq: int, branch: str, uri: str,
              to: str, routes: list[str]) -> bytes:  # fmt: skip
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/UDP {HOST}:{CALLER_PORT};branch={branch};rport",
        *(f"Route: {r}" for r in routes),
        "Max-Forwards: 70",
        f"From: <sip:{caller}@{DOMAIN}>;tag=4242SIPpTag00{n}",
        f"To: {to}",
        f"Call-ID: {n}-4242@{HOST}",
        f"CSeq: {cseq} {method}",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def uas_response(request: bytes, status: int, reason: str, n: int, *, tag: bool,
                 body: bytes = b"") -> bytes:  # fmt: skip
    """What call_uas.xml sends: the request's Via/From/To/Call-ID/CSeq/Record-Route echoed."""
    headers = headers_of(request)
    lines = [f"SIP/2.0 {status} {reason}"]
    lines += [f"Via: {v}" for v in headers["via"]]
    lines.append(f"From: {headers['from'][0]}")
    to = headers["to"][0]
    lines.append(f"To: {to};tag=4343SIPpTag01{n}" if tag and ";tag=" not in to else f"To: {to}")
    lines.append(f"Call-ID: {headers['call-id'][0]}")
    lines.append(f"CSeq: {headers['cseq'][0]}")
    lines += [f"Record-Route: {v}" for v in headers.get("record-route", [])]
    lines.append(f"Contact: <sip:{HOST}:{CALLEE_PORT};transport=UDP>")
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def call_once(h: Harness, caller: str, callee: str, n: int) -> None:
    h.send(invite(caller, callee, n, 1, f"z9hG4bK-c{n}-1", None), CALLER_PORT)
    (challenge,) = expect(h.take(CALLER_PORT), 407)  # stateless: no 100 Trying
    match = _CHALLENGE_RE.search(challenge)
    if match is None:
        raise Unexpected(f"no challenge in {challenge!r}")
    to = headers_of(challenge)["to"][0]
    request_uri = f"sip:{callee}@{HOST}:{PBX_PORT}"
    h.send(in_dialog("ACK", caller, n, 1, f"z9hG4bK-c{n}-1", request_uri, to, []), CALLER_PORT)
    expect(h.take(CALLER_PORT))
    auth = authorization("Proxy-Authorization", caller, "INVITE", request_uri,
                         match.group(1).decode())  # fmt: skip
    h.send(invite(caller, callee, n, 2, f"z9hG4bK-c{n}-2", auth), CALLER_PORT)
    expect(h.take(CALLER_PORT), 100)
    (relayed,) = h.take(CALLEE_PORT)
    if not relayed.startswith(b"INVITE "):
        raise Unexpected(f"callee got {relayed[:60]!r}")
    h.send(uas_response(relayed, 180, "Ringing", n, tag=True), CALLEE_PORT)
    expect(h.take(CALLER_PORT), 180)
    h.send(uas_response(relayed, 200, "OK", n, tag=True, body=SDP), CALLEE_PORT)
    (ok,) = expect(h.take(CALLER_PORT), 200)
    ok_headers = headers_of(ok)
    to = ok_headers["to"][0]
    contact = ok_headers["contact"][0].strip("<>")
    routes = ok_headers.get("record-route", [])[::-1]
    h.send(in_dialog("ACK", caller, n, 2, f"z9hG4bK-c{n}-3", contact, to, routes), CALLER_PORT)
    expect(h.take(CALLER_PORT))
    (ack,) = h.take(CALLEE_PORT)
    if not ack.startswith(b"ACK "):
        raise Unexpected(f"callee got {ack[:60]!r}")
    h.send(in_dialog("BYE", caller, n, 3, f"z9hG4bK-c{n}-4", contact, to, routes), CALLER_PORT)
    (bye,) = h.take(CALLEE_PORT)
    if not bye.startswith(b"BYE "):
        raise Unexpected(f"callee got {bye[:60]!r}")
    h.send(uas_response(bye, 200, "OK", n, tag=False), CALLEE_PORT)
    expect(h.take(CALLER_PORT), 200)
    expect(h.take(CALLEE_PORT))


# ---------------------------------------------------------------------------------------------
# Runs


def user_port(index: int) -> int:
    """A user's source port; its Contact is the next one, the same at every REGISTER as in
    SIPp's injection file, so a user's second REGISTER refreshes its binding."""
    return 6000 + (index % 1000) * 2


def run_register(ops: int, users: int, rate: float, profiler: cProfile.Profile | None) -> float:
    names = [f"u{i:05d}" for i in range(users)]
    h = Harness(make_core(names), rate)
    for n in range(min(users, 500)):  # warm-up: first bindings, caches
        register_once(h, names[n], n, user_port(n))
        h.tick()
    h.spent_ns = 0
    h.profiler = profiler
    for i in range(ops):
        n = 500 + i
        register_once(h, names[n % users], n, user_port(n % users))
        h.tick()
    return h.spent_ns / ops / 1000


def run_call(ops: int, users: int, rate: float, profiler: cProfile.Profile | None) -> float:
    callers = [f"c{i:05d}" for i in range(users)]
    callee = "callee"
    h = Harness(make_core([*callers, callee]), rate)
    register_once(h, callee, 0, CALLEE_PORT - 1)  # Contact = CALLEE_PORT
    for n in range(200):
        call_once(h, callers[n % users], callee, n)
        h.tick()
    h.spent_ns = 0
    h.profiler = profiler
    for i in range(ops):
        n = 200 + i
        call_once(h, callers[n % users], callee, n)
        h.tick()
    return h.spent_ns / ops / 1000


RUNS = {"register": run_register, "call": run_call}
DEFAULT_OPS = {"register": 20_000, "call": 5_000}
DEFAULT_RATES = {"register": 2_000.0, "call": 500.0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--only", choices=tuple(RUNS), action="append", help="workload (repeatable)")
    p.add_argument("--ops", type=int, help="operations per workload (default 20k REG, 5k call)")
    p.add_argument("--users", type=int, default=10_000, help="REGISTER population / callers")
    p.add_argument("--rate", type=float, help="virtual operations per second (default: 2,000 "
                   "REGISTER/s, 500 calls/s)")  # fmt: skip
    p.add_argument("--repeat", type=int, default=3, help="runs per workload; the best is kept")
    p.add_argument("--profile", choices=tuple(RUNS), help="cProfile one run of this workload")
    p.add_argument("--sort", default="tottime", help="pstats sort key for --profile")
    p.add_argument("--lines", type=int, default=40, help="rows of the profile to print")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--build", choices=sip_bench.BUILDS, default="source",
                   help="the sources, or the compiled wheel the role ships")  # fmt: skip
    a = p.parse_args(argv)

    if a.profile:
        profiler = cProfile.Profile()
        ops = a.ops or DEFAULT_OPS[a.profile] // 4
        users = a.users if a.profile == "register" else min(a.users, 2_000)
        us = RUNS[a.profile](ops, users, a.rate or DEFAULT_RATES[a.profile], profiler)
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(a.sort).print_stats(a.lines)
        print(out.getvalue())
        print(f"{a.profile}: {us:,.1f} µs per operation under the profiler")
        return 0

    results: dict[str, Any] = {"build": "compiled" if COMPILED else "source"}
    print(f"runtime build: {results['build']}")
    for name in a.only or list(RUNS):
        ops = a.ops or DEFAULT_OPS[name]
        users = a.users if name == "register" else min(a.users, 2_000)
        best = float("inf")
        runs = []
        for _ in range(a.repeat):
            gc.collect()
            us = RUNS[name](ops, users, a.rate or DEFAULT_RATES[name], None)
            runs.append(round(us, 1))
            best = min(best, us)
        results[name] = {"us_per_op": round(best, 1), "runs": runs, "ops": ops}
        print(f"{name:9s} {best:8.1f} µs/op  (runs: {', '.join(f'{r:.1f}' for r in runs)}; "
              f"{ops:,} ops, {1e6 / best:,.0f} ops/s of core CPU)")  # fmt: skip
    if a.json:
        a.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
