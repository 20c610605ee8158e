"""Start the runtime as a subprocess (``python -m pbx_runtime --config …``) on loopback, on
ports the kernel picks, from the demo generator's CA, certificate and users; always stop it."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("make_demo", ROOT / "examples/demo/make_demo.py")
assert _spec is not None and _spec.loader is not None
make_demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_demo)

DOMAIN = "demo.bulkhead.test"
TEST_TOML = """
[abuse]
rate = 2000
burst = 2000
exempt_networks = ["127.0.0.0/8"]

[limits]
drain_timeout = 3
"""
#: For clients that do MD5 only and answer the first challenge (SIPp, svcrack, baresip 1.0).
MD5_ONLY = 'digest_algorithms = ["MD5"]'


@dataclass
class Pbx:
    directory: Path
    process: subprocess.Popen[bytes]
    ports: dict[str, int]
    passwords: dict[str, str]
    log: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def events(self) -> Path:
        return self.directory / "events.jsonl"

    def address(self, transport: str) -> tuple[str, int]:
        return ("127.0.0.1", self.ports[transport.lower()])

    def alive(self) -> bool:
        return self.process.poll() is None


def start_pbx(directory: Path, extra_toml: str = TEST_TOML, top_toml: str = "") -> Pbx:
    passwords = make_demo.make_demo(
        directory, udp_port=0, tcp_port=0, tls_port=0, extra_toml=extra_toml, top_toml=top_toml,
        events=str(directory / "events.jsonl"),
    )  # fmt: skip
    log = directory / "runtime.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "pbx_runtime", "--config", str(directory / "demo.toml")],
            stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("pbx_runtime ready "):
                ports = {}
                for token in line.split()[2:]:
                    name, _, where = token.partition("=")
                    if name not in ("tenant", "build"):
                        ports[name] = int(where.rpartition(":")[2])
                return Pbx(directory, process, ports, passwords, log)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    stop_pbx(process)
    pytest.fail(f"runtime did not start:\n{log.read_text(errors='replace')}")


def stop_pbx(process: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    return process.returncode


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running_pbx(directory: Path, extra_toml: str = TEST_TOML, top_toml: str = "") -> Iterator[Pbx]:
    """A runtime for the ``with`` block; it must then stop cleanly (SIGTERM drains, exit 0)."""
    instance = start_pbx(directory, extra_toml, top_toml)
    try:
        yield instance
    finally:
        assert stop_pbx(instance.process) == 0, instance.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    with running_pbx(tmp_path_factory.mktemp("pbx")) as instance:
        yield instance


@pytest.fixture(scope="module")
def md5_pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    """MD5 only, and room for many calls per user: what SIPp scenarios need."""
    extra = TEST_TOML.replace("[limits]\n", "[limits]\ncalls_per_user = 50\n")
    with running_pbx(tmp_path_factory.mktemp("md5"), extra, MD5_ONLY) as instance:
        yield instance
