"""Real peer: SIPp (Debian ``sip-tester`` 3.6, UDP and MD5 digest only) against the runtime.

SIPp puts ``sip:remote_ip:port`` in the digest ``uri`` unless ``-auth_uri`` says otherwise, and
the runtime insists that the digest uri names the Request-URI (RFC 7616 §3.4.6): the REGISTER
scenario therefore uses that Request-URI, and the call passes ``-auth_uri``. The tenant offers
MD5 only here, because SIPp answers the first challenge whatever its algorithm.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from conftest import DOMAIN, Pbx, free_port

SIPP = shutil.which("sipp")
SCENARIOS = Path(__file__).resolve().parent / "sipp"
pytestmark = pytest.mark.skipif(
    SIPP is None, reason="sipp not installed (apt-get install -y sip-tester)"
)
CALLS = 5


# SIPp exits 0 only when every call of -m succeeded (1: some failed; -timeout_error: overran).
def _sipp(target: str | None, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    assert SIPP is not None
    command = [SIPP, *([target] if target else []), "-i", "127.0.0.1", "-nostdin",
               "-timeout", "20", "-timeout_error", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def test_sipp_register_with_digest(md5_pbx: Pbx) -> None:
    target = f"127.0.0.1:{md5_pbx.ports['udp']}"
    result = _sipp(target, "-sf", str(SCENARIOS / "register.xml"), "-p", "0",
                   "-s", "1003", "-au", "1003", "-ap", md5_pbx.passwords["1003"],
                   "-key", "domain", DOMAIN, "-m", "50", "-r", "50")  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_sipp_calls_with_digest_and_bye(md5_pbx: Pbx) -> None:
    port = md5_pbx.ports["udp"]
    target = f"127.0.0.1:{port}"
    callee_port = free_port(socket.SOCK_DGRAM)
    registered = _sipp(target, "-sf", str(SCENARIOS / "register.xml"), "-p", str(callee_port),
                       "-s", "1002", "-au", "1002", "-ap", md5_pbx.passwords["1002"],
                       "-key", "domain", DOMAIN, "-m", "1")  # fmt: skip
    assert registered.returncode == 0, registered.stdout[-2000:]
    assert SIPP is not None
    uas = subprocess.Popen(
        [SIPP, "-sn", "uas", "-i", "127.0.0.1", "-p", str(callee_port), "-m", str(CALLS),
         "-nostdin", "-timeout", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        uac = _sipp(target, "-sf", str(SCENARIOS / "uac.xml"), "-p", "0", "-s", "1002",
                    "-au", "1001", "-ap", md5_pbx.passwords["1001"],
                    "-auth_uri", f"1002@127.0.0.1:{port}", "-key", "domain", DOMAIN,
                    "-key", "caller", "1001", "-m", str(CALLS), "-r", "5")  # fmt: skip
        uas_out, _ = uas.communicate(timeout=25)
    finally:
        if uas.poll() is None:
            uas.kill()
            uas.wait(5)
    assert uac.returncode == 0, uac.stdout[-2000:] + uac.stderr[-2000:]
    assert uas.returncode == 0, uas_out[-2000:]
