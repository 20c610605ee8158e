"""Real attacker tools: SIPVicious (Debian ``sipvicious`` 0.3.3) ``svwar`` and ``svcrack`` over
UDP against the demo configuration (its ``[abuse]`` defaults: a source is locked after 5 failed
logins in 60 s, a user after 10 in 600 s; nothing exempt).

The tools run unchanged through ``sipvicious_shim.py``, which only restores their ignored
``-b`` (so each run speaks from its own loopback address and the per-source defences can be
told apart) and, where asked, replaces their ``User-Agent: friendly-scanner``: with the default
User-Agent the runtime drops every request silently; with a neutral one the test reaches the
enumeration and lockout defences themselves.

svcrack computes MD5 digests only and uses the *first* challenge whatever its algorithm (it
fails outright on SHA-256), so its tenants offer MD5 only, as for SIPp. A control runtime with
lockout disabled shows that the same word list *does* find the password (9th guess): the
lockout is what stops the guesser, not an interop problem.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import DOMAIN, MD5_ONLY, Pbx, free_port, running_pbx
from ua import UA

SVWAR = shutil.which("svwar")
SVCRACK = shutil.which("svcrack")
SHIM = Path(__file__).resolve().parent / "sipvicious_shim.py"
pytestmark = pytest.mark.skipif(
    SVWAR is None or SVCRACK is None, reason="sipvicious not installed (apt-get install sipvicious)"
)

#: What a phone might send: neither the scanner list nor anything else matches it.
NEUTRAL_UA = "Linphone/5.2.5 (belle-sip/5.2.0)"
#: The demo's users first, then 97 that do not exist: 100 extensions.
EXTENSIONS = "1001-1003,1000,1004-1099"
DEMO_TOML = "\n[limits]\ndrain_timeout = 3\n"  # the demo's [abuse] defaults, untouched
NO_LOCKOUT_TOML = """
[abuse]
exempt_networks = ["127.0.0.0/8"]
user_lockout = { threshold = 1000 }

[limits]
drain_timeout = 3
"""
WRONG = [f"guess-{n}" for n in range(1, 9)]  # 8 wrong guesses come before the password


def _interpreter() -> str:
    """The tools' own interpreter (their shebang: Debian's python3, which has scapy)."""
    assert SVWAR is not None
    with open(os.path.realpath(SVWAR), encoding="utf-8") as script:
        first = script.readline()
    return first[2:].strip() if first.startswith("#!") else "/usr/bin/python3"


class Tool:
    """One svwar/svcrack run from *host*, bounded by *timeout*."""

    def __init__(self, pbx: Pbx, tool: str, host: str, *args: str,
                 user_agent: str | None = NEUTRAL_UA, timeout: float = 30) -> None:  # fmt: skip
        self.host = host
        self.port = free_port(socket.SOCK_DGRAM, host)
        self.timeout = timeout
        shim = ["--sv-bind", host] + (["--sv-user-agent", user_agent] if user_agent else [])
        command = [_interpreter(), str(SHIM), tool, *shim, "--",
                   "-P", str(self.port), "-p", str(pbx.ports["udp"]), "--domain", DOMAIN,
                   "--maximumtime", "2", "-vv", *args, "127.0.0.1"]  # fmt: skip
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.output = ""
        self.seconds = 0.0

    @property
    def source(self) -> str:
        return f"{self.host}:{self.port}"

    def finish(self) -> Tool:
        try:
            self.output, _ = self.process.communicate(timeout=self.timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(5)
        self.seconds = time.monotonic() - self.started
        return self


def _events(pbx: Pbx) -> list[dict[str, Any]]:
    if not pbx.events.exists():
        return []
    return [json.loads(line) for line in pbx.events.read_text().splitlines() if line]


def _wait_events(
    pbx: Pbx, ready: Callable[[list[dict[str, Any]]], bool], timeout: float = 5.0
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        events = _events(pbx)
        if ready(events) or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


def _options_from(pbx: Pbx, host: str, timeout: float = 1.5) -> bytes | None:
    """One OPTIONS from *host* (any 127/8 address); the answer, or None when dropped."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        sock.settimeout(timeout)
        host_port = sock.getsockname()
        tag = time.time_ns()
        request = (
            f"OPTIONS sip:{DOMAIN} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {host_port[0]}:{host_port[1]};branch=z9hG4bK{tag};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:probe@{DOMAIN}>;tag=p\r\nTo: <sip:{DOMAIN}>\r\n"
            f"Call-ID: probe-{tag}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        sock.sendto(request.encode(), pbx.address("udp"))
        try:
            return sock.recv(65536)
        except TimeoutError:
            return None


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    with running_pbx(tmp_path_factory.mktemp("sv-demo"), DEMO_TOML) as instance:
        yield instance


@pytest.fixture
def md5_demo(tmp_path: Path) -> Iterator[Pbx]:
    with running_pbx(tmp_path, DEMO_TOML, MD5_ONLY) as instance:
        yield instance


@pytest.fixture
def no_lockout(tmp_path: Path) -> Iterator[Pbx]:
    with running_pbx(tmp_path, NO_LOCKOUT_TOML, MD5_ONLY) as instance:
        yield instance


# -- svwar -----------------------------------------------------------------------------------


def test_svwar_finds_no_extension(demo: Pbx) -> None:
    """svwar over 100 extensions, the three demo users first, with REGISTER, INVITE and OPTIONS
    (neutral User-Agent, --force past its own sanity check), plainly, and with its default
    User-Agent: it reports no extension in any run."""
    runs = {
        "default-ua": Tool(demo, "svwar", "127.0.0.20", "-m", "REGISTER", "--force",
                           "-e", EXTENSIONS, user_agent=None),
        "plain": Tool(demo, "svwar", "127.0.0.24", "-m", "REGISTER", "-e", EXTENSIONS),
        **{method: Tool(demo, "svwar", f"127.0.0.{21 + n}", "-m", method, "--force",
                        "-e", EXTENSIONS, "-t", "0.02")
           for n, method in enumerate(("REGISTER", "INVITE", "OPTIONS"))},
    }  # fmt: skip
    for run in runs.values():
        run.finish()
    for name, run in runs.items():
        assert "found nothing" in run.output, f"{name}:\n{run.output[-3000:]}"
        assert "exists" not in run.output, f"{name}:\n{run.output[-3000:]}"
        assert run.seconds < 15, (name, run.seconds)

    # Unforced, it gives up at once: an unknown extension is challenged like a real one.
    assert "authentication request for an unknown extension" in runs["plain"].output
    # REGISTER and INVITE: a real user (1001) got exactly the answer of a random extension,
    # which svwar cannot classify, so it stops there without a result.
    for method, status in (("REGISTER", "401 Unauthorized"),
                           ("INVITE", "407 Proxy Authentication Required")):  # fmt: skip
        output = runs[method].output
        assert "sending request for 1001" in output, output[-3000:]
        assert f"Bad user = SIP/2.0 {status}" in output, output[-3000:]
        assert f"1st line: 'SIP/2.0 {status}'" in output, output[-3000:]
    # OPTIONS is answered 200 for any user name: the whole range is walked, nothing stands out.
    assert "sending request for 1099" in runs["OPTIONS"].output
    assert "Bad user = SIP/2.0 200 OK" in runs["OPTIONS"].output

    # The default User-Agent was dropped without an answer, and logged once per source.
    assert "timed out" in runs["default-ua"].output
    scanner = runs["default-ua"].source
    events = _wait_events(demo, lambda e: any(x["source"] == scanner for x in e))
    dropped = [{k: v for k, v in e.items() if k != "at"} for e in events if e["source"] == scanner]
    assert dropped == [{"kind": "scanner_dropped", "reason": "user-agent friendly-scanner",
                        "source": scanner, "tenant": "demo", "user": None}], dropped  # fmt: skip
    # Nothing was hidden by the flood meter or a lock: every other probe was answered.
    assert not [e for e in events if e["kind"] in ("flood", "lockout", "auth_failed")], events
    assert _options_from(demo, "127.0.0.1") is not None


# -- svcrack ---------------------------------------------------------------------------------


def _cracked(output: str) -> dict[str, str]:
    """svcrack's result table: ``| 1001 | password |`` rows (none when it found nothing)."""
    rows = re.findall(r"^\|\s*(\S+)\s*\|\s*(\S+)\s*\|$", output, re.MULTILINE)
    return {user: password for user, password in rows if user != "Extension"}


def _word_list(directory: Path, name: str, password: str, position: int) -> Path:
    words = [*WRONG, "guess-last"]
    words.insert(position, password)
    path = directory / name
    path.write_text("\n".join(words) + "\n")
    return path


def test_svcrack_finds_the_password_without_lockout(no_lockout: Pbx, tmp_path: Path) -> None:
    """Control: with lockout off, svcrack interoperates and finds the password, 9th guess."""
    password = no_lockout.passwords["1001"]
    words = _word_list(tmp_path, "words", password, len(WRONG))
    run = Tool(no_lockout, "svcrack", "127.0.0.30", "-u", "1001", "-d", str(words)).finish()
    assert _cracked(run.output) == {"1001": password}, run.output[-3000:]
    assert run.output.count("trying ") == len(WRONG) + 1
    events = _wait_events(no_lockout, lambda e: any(x["kind"] == "registered" for x in e))
    assert [e["kind"] for e in events] == ["auth_failed"] * len(WRONG) + ["registered"]


def test_svcrack_is_locked_out(md5_demo: Pbx, tmp_path: Path) -> None:
    """The same word list from two addresses at once (each locked after 5 failures; the user
    after 10 in all), then the right password *first* from a third address (dropped: the user
    is locked), and the default User-Agent (dropped as a scanner): no run finds the password,
    the lockouts are in the structured log, and the runtime still answers everybody else."""
    password = md5_demo.passwords["1001"]
    late = _word_list(tmp_path, "late", password, len(WRONG))
    first = _word_list(tmp_path, "first", password, 0)
    first_1002 = _word_list(tmp_path, "first-1002", md5_demo.passwords["1002"], 0)
    guessers = [Tool(md5_demo, "svcrack", host, "-u", "1001", "-d", str(late))
                for host in ("127.0.0.31", "127.0.0.32")]  # fmt: skip
    scanner = Tool(md5_demo, "svcrack", "127.0.0.35", "-u", "1002", "-d", str(first_1002),
                   user_agent=None)  # fmt: skip
    for run in [*guessers, scanner]:
        run.finish()
    events = _wait_events(md5_demo, lambda e: sum(x["kind"] == "lockout" for x in e) >= 3)
    fresh = Tool(md5_demo, "svcrack", "127.0.0.33", "-u", "1001", "-d", str(first)).finish()

    for run in [*guessers, scanner, fresh]:
        assert _cracked(run.output) == {}, run.output[-3000:]
        assert "found nothing" in run.output, run.output[-3000:]
        assert run.seconds < 25, run.seconds
    assert "no server response" in scanner.output  # its REGISTER was never answered

    events = _events(md5_demo)
    assert all(e["tenant"] == "demo" for e in events), events
    assert not [e for e in events if e["kind"] == "registered"], events
    for run in guessers:
        mine = [e for e in events if e["source"] == run.source]
        kinds = [e["kind"] for e in mine]
        # the 5th failure locks the source; nothing it sends afterwards is even looked at
        assert kinds[:6] == ["auth_failed"] * 5 + ["lockout"], kinds
        assert mine[5]["reason"] == "source locked 60s strike 1", mine[5]
        assert {e["user"] for e in mine} == {"1001"}, mine
        assert all(e["reason"] == "bad_response" for e in mine if e["kind"] == "auth_failed")
    failures = [e for e in events if e["kind"] == "auth_failed"]
    assert len(failures) == 10, failures
    user_locks = [e for e in events if e["kind"] == "lockout" and e["reason"].startswith("user")]
    assert len(user_locks) == 1, user_locks
    assert user_locks[0]["user"] == "1001"
    assert user_locks[0]["reason"] == "user locked 300s strike 1"
    assert user_locks[0]["source"] in {run.source for run in guessers}
    # the right password first from a fresh address, then every other guess (svcrack asks for a
    # new challenge when one goes unanswered): all dropped before verification, none counted
    assert fresh.output.count("trying ") == len(WRONG) + 2, fresh.output[-3000:]
    assert not [e for e in events if e["source"] == fresh.source], events
    # the scanner: one event, no authentication attempt
    dropped = [e for e in events if e["source"] == scanner.source]
    assert [{k: v for k, v in e.items() if k != "at"} for e in dropped] == [
        {"kind": "scanner_dropped", "reason": "user-agent friendly-scanner",
         "source": scanner.source, "tenant": "demo", "user": None}
    ], dropped  # fmt: skip

    # Still serving: the locked sources get nothing, any other source gets its 200.
    assert _options_from(md5_demo, "127.0.0.31") is None
    answer = _options_from(md5_demo, "127.0.0.1")
    assert answer is not None and answer.startswith(b"SIP/2.0 200 ")

    async def phone() -> int:
        ua = await UA.open("UDP", md5_demo.address("udp"), "1003", md5_demo.passwords["1003"],
                           DOMAIN, algorithm="MD5")  # fmt: skip
        try:
            return (await ua.register()).status
        finally:
            await ua.close()

    assert asyncio.run(asyncio.wait_for(phone(), 10)) == 200  # another user is unaffected
