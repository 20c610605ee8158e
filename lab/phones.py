"""Lab phones: real SIP clients in a tenant's site namespace (the tenant's office network).

SIPp 3.6 (Debian) has no TLS of its own, so each phone talks through an stunnel client that
verifies the runtime's certificate against a CA chain and checks its name (the tenant's SIP
domain), as a provisioned phone does. The SIPp scenarios are the benchmark's (bench/sipp/).

    with PhoneLine(netns, domain, address, chain, state_dir) as line:
        line.register(alice)          # REGISTER -> 401 -> REGISTER with MD5 digest -> 200
        line.call(alice, bob)         # bob registers and keeps his flow; alice calls him

Every result says how far it got (network, tls, sip, or ok), so the same code proves both
that a call works and that a foreign tenant, a foreign credential or an untrusted CA do not.
Passwords live only in a 0700 temporary directory under the lab's state directory while the
phones run; every process is bounded in time.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "bench" / "sipp"
LOOPBACK = "127.0.0.1"
TLS_PORT = 5061
# Inside the site namespace, where nothing else listens: stunnel's plain side for each
# phone role, and the SIPp processes' own ports.
STUNNEL_PORTS = {"caller": 5001, "callee": 5002}
SIPP_PORTS = {"callee": 5070, "register": 5071, "call": 5072}
TIMEOUT = 20  # seconds for any one SIPp run


@dataclass(frozen=True)
class Phone:
    number: str
    secret: str

    def auth(self) -> str:
        """One SIPp injection field holding the whole [authentication] keyword."""
        return f"[authentication username={self.number} password={self.secret}]"


@dataclass(frozen=True)
class Result:
    stage: str  # how far it got: "network", "tls", "sip" (each a failure) or "ok"
    detail: str

    @property
    def ok(self) -> bool:
        return self.stage == "ok"


class PhoneLine:
    """An stunnel client in *netns* towards the runtime at *address*, trusting *chain*."""

    def __init__(self, netns: str, domain: str, address: str, chain: Path,
                 state_dir: Path) -> None:  # fmt: skip
        self.netns, self.domain, self.address, self.chain = netns, domain, address, chain
        self.state_dir = state_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._stunnel: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PhoneLine:
        exe = shutil.which("stunnel4") or shutil.which("stunnel")
        if exe is None or shutil.which("sipp") is None:
            raise RuntimeError("the lab phones need sipp and stunnel4 on the controller")
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._tmp = tempfile.TemporaryDirectory(dir=self.state_dir, prefix="phones-")
        self.work = Path(self._tmp.name)
        lines = ["foreground = yes", f"pid = {self.work / 'stunnel.pid'}", "debug = 5",
                 f"output = {self.log}", "TIMEOUTconnect = 3"]  # fmt: skip
        for role, port in STUNNEL_PORTS.items():
            lines += [f"[{role}]", "client = yes", f"accept = {LOOPBACK}:{port}",
                      f"connect = {self.address}:{TLS_PORT}", f"CAfile = {self.chain}",
                      "verifyChain = yes", f"checkHost = {self.domain}",
                      "sslVersionMin = TLSv1.2"]  # fmt: skip
        (self.work / "stunnel.conf").write_text("\n".join(lines) + "\n")
        self._stunnel = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, exe, str(self.work / "stunnel.conf")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        if not _wait_for(self.log, "Configuration successful", 10):
            self.__exit__(None, None, None)
            raise RuntimeError(f"stunnel did not start in {self.netns}: {self._log_tail()}")
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 trace: TracebackType | None) -> None:  # fmt: skip
        if self._stunnel is not None:
            self._stunnel.terminate()
            self._stunnel.wait(timeout=10)
        if self._tmp is not None:
            self._tmp.cleanup()

    @property
    def log(self) -> Path:
        return self.work / "stunnel.log"

    def register(self, phone: Phone) -> Result:
        self._csv("register.csv", f"{phone.number};{phone.auth()};{self.domain};"
                                  f"{LOOPBACK}:{SIPP_PORTS['register']};tls")  # fmt: skip
        run = self._sipp("caller", "register.xml", "register.csv", SIPP_PORTS["register"])
        done = subprocess.run(run, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=TIMEOUT + 10, check=False)  # fmt: skip
        if done.returncode == 0:
            return Result("ok", f"{phone.number} registered over TLS (chain and name "
                                f"{self.domain} verified)")  # fmt: skip
        return self._failure(f"{phone.number} did not register", "register.xml")

    def call(self, caller: Phone, callee: Phone) -> Result:
        """The callee registers and keeps its connection (the runtime reaches it over that
        flow, never by dialling a phone); the caller registers, then calls it."""
        started = time.monotonic()
        self._csv("callee.csv", f"{callee.number};{callee.auth()};{self.domain};"
                                f"{LOOPBACK}:{SIPP_PORTS['callee']};tls")  # fmt: skip
        self._csv("call.csv", f"{caller.number};{caller.auth()};{self.domain};{callee.number}")
        uas = subprocess.Popen(
            self._sipp("callee", "callee_flow.xml", "callee.csv", SIPP_PORTS["callee"],
                       "-oocsf", str(SCENARIOS / "call_uas.xml"), "-d", str(TIMEOUT * 1000)),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            time.sleep(1.0)  # the callee's REGISTER goes first
            registered = self.register(caller)
            if not registered.ok:
                return registered
            auth_uri = f"{callee.number}@{LOOPBACK}:{STUNNEL_PORTS['caller']}"
            run = self._sipp("caller", "call_uac.xml", "call.csv", SIPP_PORTS["call"],
                             "-auth_uri", auth_uri)  # fmt: skip
            done = subprocess.run(run, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=TIMEOUT + 10, check=False)  # fmt: skip
            if done.returncode != 0:
                return self._failure(f"{caller.number} -> {callee.number} failed",
                                     "call_uac.xml")  # fmt: skip
        finally:
            uas.terminate()
            uas.wait(timeout=10)
        seconds = time.monotonic() - started
        return Result("ok", f"{caller.number} and {callee.number} registered over TLS (chain "
                            f"and name {self.domain} verified); {caller.number} called "
                            f"{callee.number}: answered, hung up ({seconds:.1f} s)")  # fmt: skip

    # -- helpers

    def _sipp(self, role: str, scenario: str, inf: str, port: int, *extra: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns, "sipp", f"{LOOPBACK}:{STUNNEL_PORTS[role]}",
                "-sf", str(SCENARIOS / scenario), "-inf", str(self.work / inf), "-m", "1",
                "-i", LOOPBACK, "-p", str(port), "-t", "t1", "-nostdin",
                "-timeout", f"{TIMEOUT}s", "-timeout_error", "-trace_err",
                "-error_file", str(self.work / f"{Path(scenario).stem}.errors"),
                *extra]  # fmt: skip

    def _csv(self, name: str, line: str) -> None:
        (self.work / name).write_text(f"SEQUENTIAL\n{line}\n")

    def _failure(self, what: str, scenario: str) -> Result:
        """Classify a failed SIPp run by how far stunnel got with the runtime."""
        log = self.log.read_text(errors="replace") if self.log.exists() else ""
        errors = self.work / f"{Path(scenario).stem}.errors"
        text = errors.read_text(errors="replace") if errors.exists() else ""
        answer = re.search(r"SIP/2\.0 \d{3}[^\r\n']*", text)
        if "connected remote server" not in log:
            why = [line for line in log.splitlines() if "s_connect" in line][-1:]
            return Result("network", f"{what}: no TCP connection to {self.address}:{TLS_PORT} "
                                     f"({' '.join(why) or self._log_tail(1)})")  # fmt: skip
        if "Certificate accepted at depth=0" not in log:
            return Result("tls", f"{what}: TLS handshake refused ({self._log_tail(2)})")
        if answer:
            return Result("sip", f"{what}: {answer[0]}")
        # No status: SIPp's own complaint (e.g. a challenge it cannot answer).
        said = [line.strip() for line in text.splitlines() if ": " in line][-1:]
        return Result("sip", f"{what}: no SIP answer it accepted ({' '.join(said) or 'silent'})")

    def _log_tail(self, lines: int = 3) -> str:
        if not self.log.exists():
            return "no stunnel log"
        return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-lines:])


def _wait_for(path: Path, text: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return True
        time.sleep(0.1)
    return False
