#!/usr/bin/env python3
"""SIP benchmark: Bulkhead's runtime against Kamailio, both measured in the same run.

For each target (``kamailio`` and/or ``runtime``) this starts the server on 127.0.0.1, then for
two workloads -- authenticated REGISTER and a full authenticated call -- it

1. steps the offered rate (SIPp ``-r``) to find the highest *clean* rate: 0 failed operations,
   at most 0.1 % retransmissions and >= 95 % of the operations done within the window (+1 s),
   over a window of at least 8 s (bounded number of steps and bounded time);
2. records the server's CPU time per successful operation at that rate: (utime + stime) delta
   of every process of the server, read from ``/proc/<pid>/stat``, divided by the successes;
3. offers twice the clean rate for 8 s and reports the goodput (successful operations per
   second while overloaded).

It prints one table with both targets and the ratios runtime / Kamailio, and writes the same
data as JSON. Performance is a ratio against a peer measured in the same run on the same
machine, never an absolute threshold: the VM is noisy (runs differ by up to ~40 %).

Everything runs on loopback; every SIPp run has a call limit (``-m``) and a global timeout, the
rate search has a step limit and a time budget, and the whole run has a deadline.

Usage::

    python bench/sip_bench.py results.json                          # both targets, UDP
    python bench/sip_bench.py --targets kamailio results.json
    python bench/sip_bench.py --transport tls results.json          # SIPp -> stunnel -> TLS
    python bench/sip_bench.py --quick /tmp/smoke.json               # short smoke run

Needs the Debian packages ``kamailio``, ``sip-tester`` (SIPp 3.6) and, for TLS,
``kamailio-tls-modules``, ``stunnel4`` and ``openssl``. See docs/bench.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
SIPP_DIR = BENCH / "sipp"
KAMAILIO_CFG = BENCH / "kamailio" / "kamailio.cfg"

HOST = "127.0.0.1"  # every socket of the benchmark is on loopback
DOMAIN = "bench.test"  # SIP domain and digest realm of both targets
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: A server using at most this share of one core over a window is idle (before each step).
QUIET_CPU_SHARE = 0.05
QUIET_WINDOW_S = 1.0
QUIET_LIMIT_S = 40.0  # above Timer B/F (64*T1 = 32 s): every leftover transaction has ended
#: After a step that was not clean, the next one starts this long after it ended: Timers B, F,
#: H and the 2xx retransmission window (64*T1 = 32 s over UDP) have then run out, and no
#: retransmission aimed at that step's SIPp reaches the next one (e.g. its fresh UAS, which
#: listens on the same port). Sparse tails (thousands of transactions retransmitting every
#: T2 = 4 s) stay under QUIET_CPU_SHARE, so the idle check alone lets them through.
TAIL_S = 64 * 0.5 + 1.0

WORKLOADS = ("register", "call")


class Unavailable(Exception):
    """A target (or a transport of it) cannot be started; the reason is the message."""


# ---------------------------------------------------------------------------------------------
# users


@dataclass(frozen=True)
class User:
    name: str
    password: str  # random per run, written only to the run's temporary directory

    def ha1(self, algorithm: str = "MD5", realm: str = DOMAIN) -> str:
        data = f"{self.name}:{realm}:{self.password}".encode()
        if algorithm == "MD5":
            return hashlib.md5(data).hexdigest()
        return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Population:
    """Disjoint user sets, so no workload rewrites another's bindings."""

    registrants: tuple[User, ...]  # REGISTER workload
    callers: tuple[User, ...]
    # pre-registered with Contact = the SIPp UAS. One: SIPp 3.6 signs one digest uri per run
    # (-auth_uri) and the runtime checks it against the Request-URI, so all calls go to it.
    callees: tuple[User, ...]

    @property
    def all(self) -> tuple[User, ...]:
        return self.registrants + self.callers + self.callees

    @classmethod
    def make(cls, registrants: int, callers: int) -> Population:
        def users(prefix: str, n: int) -> tuple[User, ...]:
            return tuple(User(f"{prefix}{i:05d}", secrets.token_hex(8)) for i in range(n))

        return cls(users("r", registrants), users("c", callers), users("d", 1 if callers else 0))


def _auth_field(user: User) -> str:
    # SIPp 3.6 cannot nest [fieldN] inside [authentication ...]; a field can hold the keyword.
    return f"[authentication username={user.name} password={user.password}]"


def write_register_csv(
    path: Path, users: Sequence[User], domain: str, contact: str, transport: str = "udp"
) -> Path:
    """*contact* is host:port (';' separates SIPp fields, so the transport is its own field)."""
    lines = ["SEQUENTIAL"]
    lines += [f"{u.name};{_auth_field(u)};{domain};{contact};{transport}" for u in users]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_call_csv(path: Path, pop: Population, domain: str) -> Path:
    lines = ["SEQUENTIAL"]
    callee = pop.callees[0].name
    lines += [f"{c.name};{_auth_field(c)};{domain};{callee}" for c in pop.callers]
    path.write_text("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------------------------------------
# processes


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((HOST, 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((HOST, port))
                except OSError:
                    continue
            return int(port)
    raise RuntimeError("no free port on 127.0.0.1")


def process_tree(root: int) -> list[int]:
    """*root* and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def cpu_ticks(pids: Sequence[int]) -> int:
    """utime + stime (clock ticks) of *pids*, from /proc/<pid>/stat."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2 :].split()
        total += int(rest[11]) + int(rest[12])  # fields 14 and 15 of proc(5)
    return total


def peak_rss_kib(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
    return total


def stop(popen: subprocess.Popen[bytes] | None, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after *grace*; only the process the benchmark started."""
    if popen is None or popen.poll() is not None:
        return
    popen.terminate()
    try:
        popen.wait(grace)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait(5)


def tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


@dataclass
class Process:
    """A started server target.

    ``port`` is where the server listens for ``transport`` (``udp`` or ``tls``) on
    127.0.0.1; ``domain`` is its SIP domain (also the digest realm); CPU is counted over the
    process tree of ``popen`` only (never SIPp or stunnel).
    """

    name: str
    popen: subprocess.Popen[bytes]
    port: int
    transport: str
    domain: str
    log: Path
    cleanup: list[Callable[[], None]] = field(default_factory=list)
    #: False for a server that reaches a TCP/TLS phone only over the connection the phone
    #: registered on (it never dials one): the benchmark's callee then keeps its own.
    dials_stream_contacts: bool = True

    def pids(self) -> list[int]:
        return process_tree(self.popen.pid)

    def cpu_ticks(self) -> int:
        return cpu_ticks(self.pids())

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_quiet(self, limit: float = QUIET_LIMIT_S) -> float:
        """Wait until the server is idle, at most *limit* s; the seconds waited.

        After an overloaded step the server still retransmits to peers that are gone (INVITE
        and BYE client transactions, 2xx waiting for an ACK: 64*T1 = 32 s). A step that starts
        in that tail measures it too, so every step starts from an idle server.
        """
        started = time.monotonic()
        while time.monotonic() - started < limit:
            before = self.cpu_ticks()
            time.sleep(QUIET_WINDOW_S)
            if (self.cpu_ticks() - before) / CLK_TCK <= QUIET_CPU_SHARE * QUIET_WINDOW_S:
                break
        return time.monotonic() - started

    def stop(self) -> None:
        stop(self.popen)
        for fn in reversed(self.cleanup):
            with contextlib.suppress(Exception):
                fn()


def wait_ready(proc: Process, timeout: float = 15.0) -> None:
    """Until the server answers (UDP: any SIP response to OPTIONS; TLS: accepts TCP)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise Unavailable(f"{proc.name} exited with {proc.popen.returncode}:\n{tail(proc.log)}")
        if proc.transport == "udp":
            if _options_answered(proc.port, proc.domain):
                return
        else:
            with socket.socket() as s, contextlib.suppress(OSError):
                s.settimeout(0.5)
                s.connect((HOST, proc.port))
                return
        time.sleep(0.2)
    raise Unavailable(f"{proc.name} not answering on {proc.transport} port {proc.port}")


def _options_answered(port: int, domain: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        s.settimeout(0.5)
        lport = s.getsockname()[1]
        branch = "z9hG4bK" + secrets.token_hex(8)
        msg = (
            f"OPTIONS sip:{domain} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{lport};branch={branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@{domain}>;tag={secrets.token_hex(4)}\r\n"
            f"To: <sip:{domain}>\r\n"
            f"Call-ID: {secrets.token_hex(8)}@{HOST}\r\n"
            "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        try:
            s.sendto(msg.encode(), (HOST, port))
            data = s.recv(65535)
        except OSError:
            return False
        return data.startswith(b"SIP/2.0 ")


# ---------------------------------------------------------------------------------------------
# TLS plumbing: a self-made certificate and stunnel (SIPp 3.6 has no TLS transport)


def make_cert(workdir: Path) -> tuple[Path, Path]:
    """Self-signed ECDSA P-256 certificate for 127.0.0.1, made for this run only."""
    cert, key = workdir / "server.pem", workdir / "server.key"
    if not cert.exists():
        if shutil.which("openssl") is None:
            raise Unavailable("openssl not installed (apt-get install openssl)")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
             "-subj", f"/CN={DOMAIN}", "-addext", f"subjectAltName=IP:{HOST},DNS:{DOMAIN}"],
            check=True, capture_output=True,
        )  # fmt: skip
        key.chmod(0o600)
    return cert, key


def start_stunnel(workdir: Path, name: str, *, client: bool, accept: int, connect: int) -> Process:
    """stunnel in the foreground: client mode (plain TCP in, TLS out) or server mode."""
    exe = shutil.which("stunnel4") or shutil.which("stunnel")
    if exe is None:
        raise Unavailable("stunnel not installed (apt-get install stunnel4)")
    cert, key = make_cert(workdir)
    conf = workdir / f"stunnel-{name}.conf"
    log = workdir / f"stunnel-{name}.log"
    lines = [
        "foreground = yes", f"pid = {workdir / f'stunnel-{name}.pid'}", "debug = 3",
        f"output = {log}", "socket = l:TCP_NODELAY=1", "socket = r:TCP_NODELAY=1",
        f"[{name}]", f"client = {'yes' if client else 'no'}",
        f"accept = {HOST}:{accept}", f"connect = {HOST}:{connect}",
        "sslVersionMin = TLSv1.2",
    ]  # fmt: skip
    lines += ["verifyChain = no"] if client else [f"cert = {cert}", f"key = {key}"]
    conf.write_text("\n".join(lines) + "\n")
    popen = subprocess.Popen(
        [exe, str(conf)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    proc = Process(f"stunnel-{name}", popen, accept, "tls", DOMAIN, log)
    wait_ready(proc, 10)
    return proc


# ---------------------------------------------------------------------------------------------
# targets


def start_kamailio(workdir: Path, users: Sequence[User], port: int, transport: str) -> Process:
    """Kamailio from bench/kamailio/kamailio.cfg, one worker per CPU, credentials in htable."""
    exe = shutil.which("kamailio")
    if exe is None:
        raise Unavailable("kamailio not installed (apt-get install kamailio)")
    kdir = workdir / "kamailio"
    db = kdir / "db"
    db.mkdir(parents=True, exist_ok=True)
    (kdir / "run").mkdir(exist_ok=True)
    rows = [
        "id(int,auto) key_name(string) key_type(int) value_type(int) key_value(string) "
        "expires(int) "
    ]
    rows += [f"{i}:{u.name}:0:0:{u.ha1()}:0" for i, u in enumerate(users, 1)]
    (db / "htable").write_text("\n".join(rows) + "\n")
    (db / "htable").chmod(0o600)
    (db / "version").write_text("table_name(string) table_version(int) \nhtable:2\n")
    workers = os.cpu_count() or 2
    cmd = [
        exe, "-f", str(KAMAILIO_CFG), "-DD", "-E", "-m", "512", "-M", "16",
        # TLSF allocator for shm and pkg: Debian's default (qm, a debugging allocator) costs
        # ~3x the CPU per request on this machine (56 vs 18-20 us for a stateless reply)
        "-x", "tlsf", "-X", "tlsf",
        "-Y", str(kdir / "run"),
        "-A", f"WORKERS={workers}",
        "-A", f'AUTH_DB_URL="text://{db}"',
        "-A", f'REALM="{DOMAIN}"',
    ]  # fmt: skip
    if transport == "udp":
        cmd += ["-A", f"SIP_LISTEN=udp:{HOST}:{port}"]
    elif transport == "tls":
        cert, key = make_cert(workdir)
        tls_cfg = kdir / "tls.cfg"
        common = ["method = TLSv1.2+", "verify_certificate = no", "require_certificate = no"]
        tls_cfg.write_text(
            "\n".join(
                ["[server:default]", *common, f"private_key = {key}", f"certificate = {cert}",
                 "", "[client:default]", *common, ""]
            )
        )  # fmt: skip
        # UDP stays on (a port nobody uses) so the config needs no second variant
        cmd += [
            "-A", f"SIP_LISTEN=udp:{HOST}:{free_port()}",
            "-A", "WITH_TLS", "-A", f"TLS_LISTEN=tls:{HOST}:{port}",
            "-A", f'TLS_CONFIG="{tls_cfg}"',
        ]  # fmt: skip
    else:
        raise Unavailable(f"transport {transport!r} not supported")
    log = kdir / "kamailio.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=kdir
        )
    proc = Process("kamailio", popen, port, transport, DOMAIN, log)
    try:
        wait_ready(proc)
    except Unavailable:
        proc.stop()
        raise
    return proc


def runtime_python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


#: ``compiled``: the mypyc wheel the pbx_runtime role ships (scripts/compiled_runtime.sh);
#: ``source``: this checkout's Python sources.
BUILDS = ("compiled", "source")
RUNTIME_BUILD = {"build": "compiled"}


def compiled_runtime_dir(python: str | None = None) -> str:
    """Build (once per source tree) and unpack the compiled wheel; the directory to import from.

    :raises subprocess.CalledProcessError: the build failed.
    """
    env = os.environ if python is None else dict(os.environ, PYTHON=python)
    built = subprocess.run([str(REPO / "scripts" / "compiled_runtime.sh")], capture_output=True,
                           text=True, env=env, timeout=900, check=True)  # fmt: skip
    return built.stdout.strip()


def runtime_env(python: str) -> tuple[dict[str, str], Path]:
    """Environment and working directory that run the chosen build of the runtime."""
    if RUNTIME_BUILD["build"] == "source":
        return dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1"), REPO
    try:
        path = compiled_runtime_dir(python)
    except (OSError, subprocess.SubprocessError) as err:
        raise Unavailable(f"cannot build the compiled runtime: {err}") from None
    # not REPO: ``python -m`` puts the working directory first, and the sources would win
    return dict(os.environ, PYTHONPATH=path, PYTHONUNBUFFERED="1"), BENCH


def _runtime_limit_names(python: str) -> set[str]:
    """The ``[limits]`` settings this checkout's runtime knows (the schema is still moving)."""
    code = (
        "import dataclasses, pbx_runtime.config as c; "
        "print(' '.join(f.name for f in dataclasses.fields(c.Limits)))"
    )
    out = subprocess.run([python, "-c", code], cwd=REPO, capture_output=True, text=True)
    return set(out.stdout.split()) if out.returncode == 0 else set()


#: Limits opened for load: the benchmark measures signalling cost, not policy refusals.
RUNTIME_LIMITS = {
    "max_transactions": 1_000_000,
    "max_calls": 100_000,
    "calls_per_user": 100_000,  # every call goes to one callee (see Population)
    "max_bindings": 1_000_000,
    "max_connections_per_source": 4096,
}


USER_LIMITS: set[str] = set()  # names given with --runtime-limit


def write_runtime_config(
    path: Path, users: Sequence[User], port: int, transport: str, workdir: Path,
    limit_names: set[str],
) -> Path:  # fmt: skip
    """A one-tenant TOML config (shape: pbx_runtime/config.py, examples/demo/README.md).

    MD5 only (SIPp 3.6 answers the first challenge and knows MD5 only); the abuse meters are
    opened wide (every SIPp call comes from 127.0.0.1) and the call caps raised.
    """
    lines = [
        'tenant = "bench"',
        f'domain = "{DOMAIN}"',
        f'realm = "{DOMAIN}"',
        'digest_algorithms = ["MD5"]',
        "",
        "[[listeners]]",
        f'transport = "{transport}"',
        f'address = "{HOST}"',
        f"port = {port}",
        "",
    ]
    if transport == "tls":
        cert, key = make_cert(workdir)
        lines += ["[tls]", f'cert = "{cert}"', f'key = "{key}"', ""]
    else:
        lines += ["[security]", "allow_insecure_transports = true", ""]
    lines += [
        "[abuse]",
        "rate = 1000000.0",
        "burst = 1000000.0",
        f'exempt_networks = ["{HOST}/32"]',
        "",
        "[limits]",
        # bench defaults only where this runtime knows them; --runtime-limit always (an unknown
        # name then fails check-config with the runtime's own message)
        *(f"{k} = {v}" for k, v in RUNTIME_LIMITS.items() if k in limit_names | USER_LIMITS),
        "",
        "[events]",
        f'destination = "{workdir / "runtime-events.jsonl"}"',
        "",
    ]
    for u in users:
        lines += [
            f'[users."{u.name}"]',
            f'ha1_md5 = "{u.ha1("MD5")}"',
            f'ha1_sha256 = "{u.ha1("SHA-256")}"',
        ]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def start_runtime(workdir: Path, users: Sequence[User], port: int, transport: str) -> Process:
    """Start Bulkhead's runtime (``python -m pbx_runtime --config FILE``) for the benchmark.

    Contract: *users* get HA1 credentials (realm ``DOMAIN``) in a one-tenant TOML file written
    under *workdir*, shaped like ``examples/demo`` makes it (``examples/demo/README.md``: MD5
    only for SIPp, abuse meters raised for load); the process listens on 127.0.0.1:*port* for
    *transport* (``udp``, or ``tls`` with a self-made certificate). Returns once the runtime
    answers; raises :class:`Unavailable` with the reason when it cannot be started (no entry
    point, config refused, process exits or never answers).
    """
    python = runtime_python()
    env, cwd = runtime_env(python)
    try:
        probe = subprocess.run(
            [python, "-c", "import pbx_runtime.__main__"], cwd=cwd, env=env, capture_output=True,
            text=True, timeout=60,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as err:
        raise Unavailable(f"cannot run {python}: {err}") from None
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["import failed"])[-1]
        raise Unavailable(f"pbx_runtime cannot be imported as a program ({reason})")
    rdir = workdir / "runtime"
    rdir.mkdir(parents=True, exist_ok=True)
    config = write_runtime_config(
        rdir / "bench.toml", users, port, transport, rdir, _runtime_limit_names(python)
    )
    check = subprocess.run(
        [python, "-m", "pbx_runtime", "check-config", str(config)],
        cwd=cwd, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if check.returncode != 0:
        raise Unavailable(f"runtime refused the config: {(check.stderr or check.stdout).strip()}")
    log = rdir / "runtime.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [python, "-m", "pbx_runtime", "--config", str(config), "--log-level", "WARNING"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env,
        )  # fmt: skip
    proc = Process("runtime", popen, port, transport, DOMAIN, log, dials_stream_contacts=False)
    try:
        wait_ready(proc, 20)
    except Unavailable:
        proc.stop()
        raise
    return proc


STARTERS: dict[str, Callable[[Path, Sequence[User], int, str], Process]] = {
    "kamailio": start_kamailio,
    "runtime": start_runtime,
}


# ---------------------------------------------------------------------------------------------
# SIPp


@dataclass
class SippStats:
    rows: list[dict[str, str]]

    def last(self, name: str) -> int:
        if not self.rows:
            return 0
        raw = self.rows[-1].get(name, "0") or "0"
        return int(float(raw))

    def elapsed(self, row: dict[str, str] | None = None) -> float:
        row = row if row is not None else (self.rows[-1] if self.rows else None)
        if row is None:
            return 0.0
        return _parse_elapsed(row.get("ElapsedTime(C)", "0"))

    def successes_by(self, seconds: float) -> tuple[int, float]:
        """Cumulative successes at the first periodic row at or after *seconds*."""
        for row in self.rows:
            t = self.elapsed(row)
            if t >= seconds:
                return int(float(row.get("SuccessfulCall(C)", "0") or 0)), t
        return self.last("SuccessfulCall(C)"), self.elapsed()


def _parse_elapsed(text: str) -> float:
    parts = text.split(":")
    if len(parts) == 4:
        h, m, s, us = parts
        return int(h) * 3600 + int(m) * 60 + int(s) + int(us) / 1e6
    if len(parts) == 3:
        h, m, s = parts
        return int(h) * 3600 + int(m) * 60 + float(s)
    return 0.0


def read_stats(path: Path) -> SippStats:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return SippStats([])
    if not lines:
        return SippStats([])
    header = lines[0].rstrip(";").split(";")
    rows = [dict(zip(header, ln.rstrip(";").split(";"), strict=False)) for ln in lines[1:]]
    return SippStats(rows)


def sipp_cmd(
    scenario: str, *, remote: int | None, local: int, transport: str, stat: Path,
    inf: Path | None = None, rate: int | None = None, calls: int | None = None,
    timeout: float, extra: Sequence[str] = (),
) -> list[str]:  # fmt: skip
    cmd = ["sipp"]
    if remote is not None:
        cmd.append(f"{HOST}:{remote}")
    cmd += [
        "-sf", str(SIPP_DIR / scenario), "-i", HOST, "-p", str(local),
        "-t", "u1" if transport == "udp" else "t1",
        "-nostdin", "-trace_stat", "-stf", str(stat), "-fd", "1",
        "-timeout", f"{int(timeout)}s", "-timeout_error",
        "-recv_timeout", "20000", "-buff_size", "1048576",
    ]  # fmt: skip
    if inf is not None:
        cmd += ["-inf", str(inf)]
    if rate is not None and calls is not None:
        cmd += ["-r", str(rate), "-rp", "1000", "-m", str(calls), "-l", str(calls)]
    cmd += list(extra)
    return cmd


def run_sipp(cmd: list[str], log: Path, timeout: float) -> int:
    with log.open("wb") as out:
        popen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        try:
            return popen.wait(timeout)
        except subprocess.TimeoutExpired:
            stop(popen, 2)
            return -9


# ---------------------------------------------------------------------------------------------
# one measurement


@dataclass
class Step:
    rate: int  # offered, per second
    duration: float  # offer window, s
    attempted: int
    succeeded: int
    failed: int
    retransmissions: int
    elapsed: float  # SIPp run, s
    cpu_us: float  # server CPU over the run
    goodput: float  # successes per second within the offer window (+1 s)
    generator_bound: bool  # SIPp could not offer the requested rate
    server_died: bool = False
    callee_failed: int = 0  # of ``failed``: calls the UAS (callee side) saw fail

    @property
    def retrans_pct(self) -> float:
        return 100.0 * self.retransmissions / max(self.attempted, 1)

    @property
    def cpu_us_per_op(self) -> float:
        return self.cpu_us / self.succeeded if self.succeeded else float("nan")

    @property
    def achieved(self) -> float:
        return self.succeeded / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def clean(self) -> bool:
        return (
            not self.server_died
            and not self.generator_bound
            and self.failed == 0
            and self.succeeded == self.attempted
            and self.retrans_pct <= 0.1
            # keeping up: over TCP/TLS nothing is retransmitted, a late server shows here
            and self.goodput >= 0.95 * self.rate
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "rate": self.rate, "duration_s": self.duration, "attempted": self.attempted,
            "succeeded": self.succeeded, "failed": self.failed,
            "callee_failed": self.callee_failed,
            "retransmissions": self.retransmissions, "retrans_pct": round(self.retrans_pct, 4),
            "elapsed_s": round(self.elapsed, 3), "achieved_per_s": round(self.achieved, 1),
            "goodput_per_s": round(self.goodput, 1),
            "server_cpu_us_per_op": _round(self.cpu_us_per_op),
            "generator_bound": self.generator_bound, "server_died": self.server_died,
            "clean": self.clean,
        }  # fmt: skip

    def line(self) -> str:
        verdict = "clean" if self.clean else "DIRTY"
        if self.generator_bound:
            verdict += " (SIPp-bound)"
        if self.server_died:
            verdict += " (server died)"
        return (
            f"rate {self.rate:>6}/s x {self.duration:.0f}s: {self.succeeded}/{self.attempted} ok, "
            f"{self.failed} failed, {self.retransmissions} retrans "
            f"({self.retrans_pct:.3f}%), {self.cpu_us_per_op:.0f} us CPU/op, "
            f"goodput {self.goodput:.0f}/s -> {verdict}"
        )


def _round(x: float) -> float | None:
    return None if x != x else round(x, 1)  # NaN -> null


class Bench:
    """One target, one transport: starts the server and runs the workloads against it."""

    def __init__(self, target: str, transport: str, pop: Population, workdir: Path,
                 duration: float, log: Callable[[str], None]) -> None:  # fmt: skip
        self.target = target
        self.transport = transport
        self.pop = pop
        self.dir = workdir / target
        self.dir.mkdir(parents=True, exist_ok=True)
        self.duration = duration
        self.log = log
        self.server: Process | None = None
        self.helpers: list[Process] = []
        self.sipp_remote = 0  # where SIPp sends: the server (UDP) or the stunnel client (TLS)
        self.uas_port = free_port()  # SIPp UAS (TCP behind stunnel for TLS)
        self.callee_contact = (f"{HOST}:{self.uas_port}", "udp")
        # "dial": the callee SIPp listens and the server sends to its registered contact;
        # "flow": the callee SIPp registers over its own connection and takes calls on it
        self.callee_mode = "dial"
        self.runs = 0
        self.tail_ends = 0.0  # time.monotonic() when the last dirty step's tail has run out

    # -- life cycle

    def start(self) -> None:
        port = free_port()
        self.server = STARTERS[self.target](self.dir, self.pop.all, port, self.transport)
        if self.transport == "udp":
            self.sipp_remote = port
        else:
            self.sipp_remote = free_port()
            self.helpers.append(
                start_stunnel(self.dir, "uac", client=True, accept=self.sipp_remote, connect=port)
            )
            if not self.server.dials_stream_contacts:
                self.callee_mode = "flow"
                self.callee_contact = (f"{HOST}:{self.uas_port}", "tls")
                return
            uas_tls = free_port()
            self.helpers.append(
                start_stunnel(self.dir, "uas", client=False, accept=uas_tls, connect=self.uas_port)
            )
            self.callee_contact = (f"{HOST}:{uas_tls}", "tls")

    def stop(self) -> None:
        for h in self.helpers:
            h.stop()
        if self.server is not None:
            self.server.stop()

    # -- workloads

    def _sipp_transport(self) -> str:
        return "udp" if self.transport == "udp" else "tcp"

    def _paths(self, tag: str) -> tuple[Path, Path]:
        self.runs += 1
        base = self.dir / f"{self.runs:03d}-{tag}"
        return base.with_suffix(".stat.csv"), base.with_suffix(".log")

    def preregister_callees(self) -> None:
        assert self.server is not None
        if self.callee_mode == "flow":
            return  # the callee registers at the start of every step, on its own connection
        n = len(self.pop.callees)
        csv = write_register_csv(
            self.dir / "callees.csv", self.pop.callees, self.server.domain, *self.callee_contact
        )
        rate = min(500, n)
        timeout = n / rate + 30
        stat, log = self._paths("callees")
        cmd = sipp_cmd(
            "register.xml", remote=self.sipp_remote, local=free_port(),
            transport=self._sipp_transport(), stat=stat, inf=csv, rate=rate, calls=n,
            timeout=timeout,
        )  # fmt: skip
        run_sipp(cmd, log, timeout + 10)
        stats = read_stats(stat)
        ok = stats.last("SuccessfulCall(C)")
        if ok != n:
            raise Unavailable(
                f"{self.target}: only {ok}/{n} callees registered (see {log}):\n{tail(log, 8)}"
            )

    def step(self, workload: str, rate: int, duration: float | None = None) -> Step:
        """Offer *rate* operations/s for *duration* s; measure server CPU over the run."""
        assert self.server is not None
        duration = duration or self.duration
        calls = max(1, int(rate * duration))
        timeout = duration + 25
        stat, log = self._paths(f"{workload}-{rate}")
        waited = max(0.0, self.tail_ends - time.monotonic())
        time.sleep(waited)
        waited += self.server.wait_quiet()
        if waited > 2 * QUIET_WINDOW_S:
            self.log(f"  [{self.target}] waited {waited:.0f} s for the server to go idle")
        uas: subprocess.Popen[bytes] | None = None
        uas_stat = stat.with_name(stat.name.replace(".stat", ".uas.stat"))
        if workload == "register":
            csv = write_register_csv(
                self.dir / "registrants.csv", self.pop.registrants, self.server.domain,
                f"{HOST}:{self.uas_port}", self.callee_contact[1],
            )  # fmt: skip
            scenario = "register.xml"
        else:
            csv = write_call_csv(self.dir / "calls.csv", self.pop, self.server.domain)
            scenario = "call_uac.xml"
            # a fresh UAS per step: stale 200 retransmissions must not pollute the next one
            if self.callee_mode == "dial":
                uas_cmd = sipp_cmd(
                    "call_uas.xml", remote=None, local=self.uas_port,
                    transport=self._sipp_transport(), stat=uas_stat, timeout=timeout + 10,
                )  # fmt: skip
            else:
                callee_csv = write_register_csv(
                    self.dir / "callee.csv", self.pop.callees, self.server.domain,
                    *self.callee_contact,
                )  # fmt: skip
                uas_cmd = sipp_cmd(
                    "callee_flow.xml", remote=self.sipp_remote, local=self.uas_port,
                    transport="tcp", stat=uas_stat, inf=callee_csv, timeout=timeout + 10,
                    extra=["-oocsf", str(SIPP_DIR / "call_uas.xml"), "-m", "1",
                           "-d", str(int((timeout + 5) * 1000))],
                )  # fmt: skip
            uas = subprocess.Popen(
                uas_cmd, stdin=subprocess.DEVNULL,
                stdout=log.with_suffix(".uas.log").open("wb"), stderr=subprocess.STDOUT,
            )  # fmt: skip
            time.sleep(0.5 if self.callee_mode == "dial" else 1.5)
        extra: list[str] = []
        if workload == "call":
            extra = ["-auth_uri", f"{self.pop.callees[0].name}@{HOST}:{self.sipp_remote}"]
        cmd = sipp_cmd(
            scenario, remote=self.sipp_remote, local=free_port(),
            transport=self._sipp_transport(), stat=stat, inf=csv, rate=rate, calls=calls,
            timeout=timeout, extra=extra,
        )  # fmt: skip
        pids = self.server.pids()
        try:
            cpu0 = cpu_ticks(pids)
            run_sipp(cmd, log, timeout + 10)
            cpu1 = cpu_ticks(pids)
            if uas is not None:
                time.sleep(1.2)  # the UAS writes its statistics once a second
        finally:
            stop(uas, 3)
        died = not self.server.alive()
        uas_retrans = uas_failed = 0
        if uas is not None:
            uas_stats = read_stats(uas_stat)
            uas_retrans = uas_stats.last("Retransmissions(C)")
            uas_failed = uas_stats.last("FailedCall(C)")
        stats = read_stats(stat)
        attempted = stats.last("OutgoingCall(C)")
        good, at = stats.successes_by(duration + 1)
        elapsed = stats.elapsed()
        # SIPp-bound: it created clearly fewer calls than asked within the window (+1 s)
        created_by = next(
            (int(float(r.get("OutgoingCall(C)", 0) or 0)) for r in stats.rows
             if stats.elapsed(r) >= duration + 1), attempted,
        )  # fmt: skip
        gen_bound = created_by < 0.95 * calls and attempted > 0
        step = Step(
            rate=rate, duration=duration, attempted=attempted,
            succeeded=stats.last("SuccessfulCall(C)"),
            failed=stats.last("FailedCall(C)") + uas_failed, callee_failed=uas_failed,
            retransmissions=stats.last("Retransmissions(C)") + uas_retrans, elapsed=elapsed,
            cpu_us=(cpu1 - cpu0) * 1e6 / CLK_TCK, goodput=good / at if at else 0.0,
            generator_bound=gen_bound, server_died=died,
        )  # fmt: skip
        if not step.clean:
            self.tail_ends = time.monotonic() + TAIL_S
        return step

    def search(self, workload: str, start: int, max_rate: int, max_steps: int,
               budget: float, settle: float = 2.0) -> dict[str, Any]:  # fmt: skip
        """Highest clean rate: double until dirty, then bisect; bounded steps and time.

        A dirty step is run once more before it counts (the VM is noisy and may be shared):
        the rate is clean if either window was.
        """
        deadline = time.monotonic() + budget
        best: Step | None = None
        bad: int | None = None
        steps: list[Step] = []
        rate = start
        retried: set[int] = set()
        while len(steps) < max_steps and time.monotonic() + self.duration + 10 < deadline:
            s = self.step(workload, rate)
            steps.append(s)
            self.log(f"  [{self.target} {workload}] {s.line()}")
            if s.server_died:
                break
            if (
                not s.clean and not s.generator_bound and rate not in retried
                and len(steps) < max_steps and time.monotonic() + self.duration + 10 < deadline
            ):  # fmt: skip
                retried.add(rate)
                time.sleep(settle)
                s = self.step(workload, rate)
                steps.append(s)
                self.log(f"  [{self.target} {workload}] {s.line()} (repeat)")
                if s.server_died:
                    break
            if s.clean:
                best = s if best is None or s.rate > best.rate else best
            else:
                bad = rate if bad is None else min(bad, rate)
                if s.generator_bound and s.failed == 0 and s.retrans_pct <= 0.1:
                    # the load generator, not the server, is the limit: no higher rate is
                    # measurable, so stop here
                    break
            lo = best.rate if best else 0
            if bad is None:
                nxt = min(rate * 2, max_rate)
                if nxt == rate:
                    break
            else:
                if bad - lo <= max(25, lo // 10):
                    break
                nxt = (lo + bad) // 2
            rate = _nice(nxt)
            if any(x.rate == rate for x in steps):
                break
            time.sleep(settle)
        return {"best": best, "steps": steps}

    def overload(self, workload: str, clean_rate: int) -> Step:
        s = self.step(workload, clean_rate * 2)
        self.log(f"  [{self.target} {workload} 2x] {s.line()}")
        return s


def _nice(rate: int) -> int:
    """Round a rate to two significant digits (50, 1200, 13000)."""
    if rate < 100:
        return max(1, rate)
    digits = len(str(rate)) - 2
    return int(round(rate / 10**digits) * 10**digits)


# ---------------------------------------------------------------------------------------------
# the run


@dataclass
class Settings:
    targets: list[str]
    transport: str
    duration: float
    registrants: int
    callers: int
    register_start: int
    call_start: int
    max_steps: int
    budget: float  # per search, s
    deadline: float  # whole run, s


def measure_target(target: str, cfg: Settings, pop: Population, workdir: Path,
                   log: Callable[[str], None], run_deadline: float) -> dict[str, Any]:  # fmt: skip
    bench = Bench(target, cfg.transport, pop, workdir, cfg.duration, log)
    result: dict[str, Any] = {"available": True}
    try:
        log(f"[{target}] starting ({cfg.transport})")
        bench.start()
        assert bench.server is not None
        result["pids"] = len(bench.server.pids())
        for workload in WORKLOADS:
            remaining = run_deadline - time.monotonic()
            if remaining < 3 * cfg.duration + 30:
                result[workload] = {"skipped": "run deadline reached"}
                log(f"[{target}] {workload}: skipped, run deadline reached")
                continue
            if workload == "call":
                bench.preregister_callees()
            start = cfg.register_start if workload == "register" else cfg.call_start
            found = bench.search(
                workload, start, max_rate=start * 64, max_steps=cfg.max_steps,
                budget=min(cfg.budget, remaining - 2 * cfg.duration - 30),
            )  # fmt: skip
            best: Step | None = found["best"]
            entry: dict[str, Any] = {"steps": [s.as_dict() for s in found["steps"]]}
            if best is None:
                entry["clean"] = None
                log(f"[{target}] {workload}: no clean rate found")
            else:
                entry["clean"] = best.as_dict()
                time.sleep(2)
                if bench.server.alive():
                    over = bench.overload(workload, best.rate)
                    entry["overload_2x"] = over.as_dict()
                    if over.clean:
                        entry["note"] = "2x the clean rate was clean too: noise hid a higher rate"
            if not bench.server.alive():
                entry["error"] = f"server exited:\n{tail(bench.server.log)}"
                result[workload] = entry
                break
            result[workload] = entry
        result["peak_rss_kib"] = peak_rss_kib(bench.server.pids())
    except Unavailable as err:
        result = {"available": False, "reason": str(err)}
        log(f"[{target}] unavailable: {err}")
    finally:
        bench.stop()
    return result


def summary(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """The headline numbers per target."""
    out: dict[str, dict[str, float | None]] = {}
    for target, res in results.items():
        row: dict[str, float | None] = {}
        for workload in WORKLOADS:
            entry = res.get(workload) or {}
            clean = entry.get("clean") or {}
            over = entry.get("overload_2x") or {}
            row[f"{workload}_clean_per_s"] = clean.get("achieved_per_s")
            row[f"{workload}_cpu_us"] = clean.get("server_cpu_us_per_op")
            row[f"{workload}_goodput_2x_per_s"] = over.get("goodput_per_s")
            # 1.0: SIPp could not offer 2x, the goodput describes the load generator too
            row[f"{workload}_goodput_2x_generator_bound"] = (
                float(bool(over.get("generator_bound"))) if over else None
            )
        out[target] = row
    return out


METRICS = [
    ("register_clean_per_s", "REGISTER/s clean (auth)", "higher"),
    ("register_cpu_us", "server CPU us / REGISTER", "lower"),
    ("register_goodput_2x_per_s", "REGISTER goodput at 2x, /s", "higher"),
    ("call_clean_per_s", "calls/s clean (auth)", "higher"),
    ("call_cpu_us", "server CPU us / call", "lower"),
    ("call_goodput_2x_per_s", "call goodput at 2x, /s", "higher"),
]


def ratios(summ: dict[str, dict[str, float | None]]) -> dict[str, float | None]:
    rt, ka = summ.get("runtime", {}), summ.get("kamailio", {})
    out: dict[str, float | None] = {}
    for key, _, _ in METRICS:
        a, b = rt.get(key), ka.get(key)
        out[key] = round(a / b, 3) if a and b else None
    return out


def table(summ: dict[str, dict[str, float | None]], rat: dict[str, float | None]) -> str:
    def cell(v: float | None) -> str:
        return "-" if v is None else f"{v:,.0f}" if v >= 100 else f"{v:.1f}"

    cols = ["kamailio", "runtime"]
    lines = [f"{'metric':<30} {'kamailio':>10} {'runtime':>10} {'runtime/kamailio':>17}"]
    lines.append("-" * len(lines[0]))
    starred = False
    for key, label, better in METRICS:
        vals = []
        for c in cols:
            v = cell(summ.get(c, {}).get(key))
            if key.endswith("_2x_per_s"):
                flag = key.replace("_per_s", "_generator_bound")
                if summ.get(c, {}).get(flag):
                    v, starred = v + "*", True
            vals.append(v)
        r = rat.get(key)
        rs = "-" if r is None else f"{r:.2f}x ({better} is better)"
        lines.append(f"{label:<30} {vals[0]:>10} {vals[1]:>10} {rs:>17}")
    if starred:
        lines.append("* SIPp could not offer 2x: that goodput describes the load generator too")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break

    def version(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        text = (out.stdout + out.stderr).strip().splitlines()
        return next((ln.strip() for ln in text if ln.strip()), "")

    return {
        "cores": os.cpu_count(), "cpu": model, "kernel": platform.release(),
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        "python": platform.python_version(), "kamailio": version(["kamailio", "-v"]),
        "sipp": version(["sipp", "-v"]), "runtime_build": RUNTIME_BUILD["build"],
    }  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("output", type=Path, help="where to write the JSON results")
    p.add_argument("--targets", default="kamailio,runtime",
                   help="comma-separated: kamailio, runtime (default both)")  # fmt: skip
    p.add_argument("--transport", choices=("udp", "tls"), default="udp")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 3 s windows, few steps, small populations (not a result)",
    )
    p.add_argument("--duration", type=float, default=8.0, help="seconds per step (>= 8)")
    p.add_argument("--users", type=int, default=10000, help="REGISTER population")
    p.add_argument("--callers", type=int, default=2000, help="calling users")
    p.add_argument("--register-start", type=int, default=1000, help="first REGISTER rate")
    p.add_argument("--call-start", type=int, default=250, help="first call rate")
    p.add_argument("--max-steps", type=int, default=12, help="rate steps per search")
    p.add_argument("--budget", type=float, default=480, help="seconds per rate search")
    p.add_argument("--max-minutes", type=float, default=40, help="deadline of the whole run")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--runtime-build", choices=BUILDS, default="compiled",
                   help="run the mypyc wheel the role ships (default) or the sources")  # fmt: skip
    p.add_argument(
        "--runtime-limit", action="append", default=[], metavar="NAME=INT",
        help="set a runtime [limits] value, e.g. udp_backlog_bytes=8388608 (repeatable)",
    )  # fmt: skip
    a = p.parse_args(argv)

    RUNTIME_BUILD["build"] = a.runtime_build
    for item in a.runtime_limit:
        name, _, value = item.partition("=")
        if not name or not value.isdigit():
            p.error(f"--runtime-limit wants NAME=INT, got {item!r}")
        RUNTIME_LIMITS[name] = int(value)
        USER_LIMITS.add(name)
    targets = [t.strip() for t in a.targets.split(",") if t.strip()]
    unknown = [t for t in targets if t not in STARTERS]
    if unknown or not targets:
        p.error(f"unknown target(s): {', '.join(unknown) or '(none)'}")
    if shutil.which("sipp") is None:
        p.error("sipp not installed (apt-get install sip-tester)")
    if a.quick:
        cfg = Settings(targets, a.transport, 3.0, 2000, 500, 500, 100, 3, 40, 15 * 60)
    else:
        if a.duration < 8:
            p.error("--duration must be at least 8 s (use --quick for a smoke run)")
        cfg = Settings(
            targets, a.transport, a.duration, a.users, a.callers, a.register_start,
            a.call_start, a.max_steps, a.budget, a.max_minutes * 60,
        )  # fmt: skip

    def log(msg: str) -> None:
        print(msg, flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="bulkhead-sip-bench-"))
    workdir.chmod(0o700)
    started = time.monotonic()
    load_before = round(os.getloadavg()[0], 2)  # other work on the machine skews the numbers
    run_deadline = started + cfg.deadline
    old_term = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    results: dict[str, dict[str, Any]] = {}
    try:
        pop = Population.make(cfg.registrants, cfg.callers)
        log(f"workdir {workdir}; {len(pop.all)} users; transport {cfg.transport}; "
            f"{cfg.duration:.0f} s per step")  # fmt: skip
        for target in targets:
            results[target] = measure_target(target, cfg, pop, workdir, log, run_deadline)
    except KeyboardInterrupt:
        log("interrupted")
    finally:
        signal.signal(signal.SIGTERM, old_term)
        if not a.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"kept {workdir} (it holds generated passwords: delete it when done)")

    summ = summary(results)
    rat = ratios(summ)
    doc = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {**machine(), "loadavg_1m_at_start": load_before},
        "transport": cfg.transport,
        "quick": a.quick,
        "settings": {
            "runtime_limits": dict(RUNTIME_LIMITS),
            "step_s": cfg.duration,
            "registrants": cfg.registrants,
            "callers": cfg.callers,
            "clean": "0 failed, retransmissions <= 0.1% of operations, goodput >= 95% of "
            "the offered rate, SIPp not the limit",
        },
        "summary": summ,
        "ratios_runtime_over_kamailio": rat,
        "targets": results,
        "wall_s": round(time.monotonic() - started, 1),
    }
    a.output.parent.mkdir(parents=True, exist_ok=True)
    a.output.write_text(json.dumps(doc, indent=2) + "\n")
    print()
    for target, res in results.items():
        if not res.get("available", False):
            print(f"{target}: unavailable: {res.get('reason', '').splitlines()[0]}")
    print(table(summ, rat))
    print(f"\nJSON: {a.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
