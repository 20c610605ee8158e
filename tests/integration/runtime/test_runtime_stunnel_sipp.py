"""Real peers over TLS: SIPp 3.6 (no TLS of its own) in TCP mode behind an stunnel 5 client that
verifies the runtime's certificate against the demo CA (``verifyChain``, ``checkHost``), into
the runtime's TLS listener: authenticated REGISTERs, and calls between two registered users
with BYE. The callee keeps the connection it registered on, as a TLS phone must (the runtime
reaches TCP/TLS phones only over that connection). A client trusting another CA never gets in.

As in test_runtime_sipp.py the tenant offers MD5 only (SIPp answers the first challenge).
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import DOMAIN, Pbx, free_port, make_demo

SIPP = shutil.which("sipp")
STUNNEL = shutil.which("stunnel4") or shutil.which("stunnel")
SCENARIOS = Path(__file__).resolve().parent / "sipp"
pytestmark = pytest.mark.skipif(
    SIPP is None or STUNNEL is None,
    reason="sipp or stunnel not installed (apt-get install -y sip-tester stunnel4)",
)
CALLS = 3


class Stunnel:
    """An stunnel client in the foreground: plain TCP on ``port`` → TLS to *connect*."""

    def __init__(self, directory: Path, name: str, connect: tuple[str, int], ca: Path) -> None:
        assert STUNNEL is not None
        self.port = free_port()
        self.log = directory / f"stunnel-{name}.log"
        conf = directory / f"stunnel-{name}.conf"
        conf.write_text("\n".join([
            "foreground = yes", f"pid = {directory / f'stunnel-{name}.pid'}",
            f"output = {self.log}", "debug = 5",
            f"[{name}]", "client = yes", f"accept = 127.0.0.1:{self.port}",
            f"connect = {connect[0]}:{connect[1]}", "sslVersionMin = TLSv1.2",
            f"CAfile = {ca}", "verifyChain = yes", f"checkHost = {DOMAIN}", f"sni = {DOMAIN}",
        ]) + "\n")  # fmt: skip
        self.process = subprocess.Popen(
            [STUNNEL, str(conf)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while "Configuration successful" not in self.text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"stunnel did not start:\n{self.text()}")
            time.sleep(0.05)
        while True:  # bound right after the configuration is read
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"stunnel is not listening:\n{self.text()}")
            time.sleep(0.05)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@pytest.fixture(scope="module")
def tunnel(md5_pbx: Pbx) -> Iterator[Stunnel]:
    instance = Stunnel(md5_pbx.directory, "sip", md5_pbx.address("TLS"), md5_pbx.ca)
    try:
        yield instance
    finally:
        instance.stop()


def _sipp(port: int, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """SIPp in TCP mode (one connection for all its calls) towards stunnel on *port*."""
    assert SIPP is not None
    command = [SIPP, f"127.0.0.1:{port}", "-t", "t1", "-i", "127.0.0.1", "-nostdin",
               "-timeout", "20", "-timeout_error", "-key", "domain", DOMAIN, *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def test_sipp_registers_over_tls_through_stunnel(md5_pbx: Pbx, tunnel: Stunnel) -> None:
    result = _sipp(tunnel.port, "-sf", str(SCENARIOS / "register.xml"), "-p", "0",
                   "-s", "1003", "-au", "1003", "-ap", md5_pbx.passwords["1003"],
                   "-m", "5", "-r", "5")  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    # stunnel checked the chain and the name before any SIP went through
    assert f"Certificate accepted at depth=0: O=Bulkhead demo, CN={DOMAIN}" in tunnel.text()


def test_sipp_calls_over_tls_through_stunnel(md5_pbx: Pbx, tunnel: Stunnel) -> None:
    assert SIPP is not None
    trace = md5_pbx.directory / "callee.msg"
    callee = subprocess.Popen(
        [SIPP, f"127.0.0.1:{tunnel.port}", "-t", "t1", "-i", "127.0.0.1",
         "-p", str(free_port()), "-nostdin", "-timeout", "25", "-timeout_error",
         "-sf", str(SCENARIOS / "register_flow.xml"), "-oocsf", str(SCENARIOS / "uas.xml"),
         "-s", "1002", "-au", "1002", "-ap", md5_pbx.passwords["1002"], "-key", "domain", DOMAIN,
         "-m", "1", "-d", "5000", "-trace_msg", "-message_file", str(trace)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while '"user":"1002"' not in (md5_pbx.events.read_text() if md5_pbx.events.exists()
                                      else ""):  # fmt: skip
            assert callee.poll() is None and time.monotonic() < deadline, "1002 not registered"
            time.sleep(0.05)
        caller = _sipp(tunnel.port, "-sf", str(SCENARIOS / "uac.xml"), "-p", "0", "-s", "1002",
                       "-au", "1001", "-ap", md5_pbx.passwords["1001"],
                       "-auth_uri", f"1002@127.0.0.1:{tunnel.port}", "-key", "caller", "1001",
                       "-m", str(CALLS), "-r", str(CALLS))  # fmt: skip
        callee_out, _ = callee.communicate(timeout=25)
    finally:
        if callee.poll() is None:
            callee.kill()
            callee.wait(5)
    assert caller.returncode == 0, caller.stdout[-2000:] + caller.stderr[-2000:]
    assert callee.returncode == 0, callee_out[-2000:]
    # every INVITE and BYE reached the callee over the connection it registered on
    received = re.findall(r"message received \[\d+\] bytes :\n\n(\w+) ", trace.read_text())
    assert received.count("INVITE") == CALLS and received.count("BYE") == CALLS, received


def test_stunnel_trusting_another_ca_never_reaches_the_runtime(
    md5_pbx: Pbx, tmp_path: Path
) -> None:
    make_demo.make_ca(tmp_path)  # same subject "Bulkhead demo CA", another key
    rogue = Stunnel(tmp_path, "other-ca", md5_pbx.address("TLS"), tmp_path / "ca.pem")
    try:
        result = _sipp(rogue.port, "-sf", str(SCENARIOS / "register.xml"), "-p", "0",
                       "-s", "1003", "-au", "1003", "-ap", md5_pbx.passwords["1003"],
                       "-m", "1", timeout=20)  # fmt: skip
    finally:
        rogue.stop()
    assert result.returncode != 0
    assert "certificate verify failed" in rogue.text(), rogue.text()[-2000:]
