#!/usr/bin/env python3
"""Peak memory of the runtime holding 10,000 registrations.

Starts Bulkhead's runtime (bench/sip_bench.py:start_runtime) with N users (default 10,000),
registers every one of them once with authenticated REGISTER (SIPp, bench/sipp/register.xml,
bounded: one pass, a fixed rate, a global timeout), then prints the peak resident set size
(VmHWM from /proc/<pid>/status, summed over the runtime's processes) before and after, and the
cost per registration. Runtime only: Kamailio preallocates its shared memory (-m), so its RSS
says little about what a binding costs.

    python bench/rss_10k.py                     # 10,000 users over UDP
    python bench/rss_10k.py --users 2000 --json /tmp/rss.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sip_bench as sb


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--rate", type=int, default=250, help="REGISTER/s offered (one pass)")
    p.add_argument("--transport", choices=("udp", "tls"), default="udp")
    p.add_argument("--json", type=Path, help="also write the result here")
    p.add_argument("--runtime-build", choices=sb.BUILDS, default="compiled",
                   help="run the mypyc wheel the role ships (default) or the sources")  # fmt: skip
    a = p.parse_args(argv)
    sb.RUNTIME_BUILD["build"] = a.runtime_build
    if shutil.which("sipp") is None:
        p.error("sipp not installed (apt-get install sip-tester)")

    workdir = Path(tempfile.mkdtemp(prefix="bulkhead-rss-"))
    workdir.chmod(0o700)
    pop = sb.Population.make(a.users, 0)
    helpers: list[sb.Process] = []
    server: sb.Process | None = None
    try:
        port = sb.free_port()
        try:
            server = sb.start_runtime(workdir, pop.registrants, port, a.transport)
        except sb.Unavailable as err:
            print(f"runtime unavailable: {err}")
            return 2
        remote = port
        if a.transport == "tls":
            remote = sb.free_port()
            helpers.append(
                sb.start_stunnel(workdir, "uac", client=True, accept=remote, connect=port)
            )
        time.sleep(1)
        before_rss = sb.peak_rss_kib(server.pids())
        csv = sb.write_register_csv(
            workdir / "users.csv",
            pop.registrants,
            server.domain,
            f"{sb.HOST}:{sb.free_port()}",
            a.transport,
        )
        timeout = a.users / a.rate + 60
        stat, log = workdir / "rss.stat.csv", workdir / "rss.log"
        cmd = sb.sipp_cmd(
            "register.xml", remote=remote, local=sb.free_port(),
            transport="udp" if a.transport == "udp" else "tcp", stat=stat, inf=csv,
            rate=a.rate, calls=a.users, timeout=timeout,
        )  # fmt: skip
        sb.run_sipp(cmd, log, timeout + 10)
        stats = sb.read_stats(stat)
        ok, failed = stats.last("SuccessfulCall(C)"), stats.last("FailedCall(C)")
        time.sleep(1)
        alive = server.alive()
        peak = sb.peak_rss_kib(server.pids()) if alive else 0
        result = {
            "users": a.users, "registered": ok, "failed": failed, "transport": a.transport,
            "rss_hwm_before_kib": before_rss, "rss_hwm_after_kib": peak,
            "kib_per_registration": round((peak - before_rss) / ok, 3) if ok else None,
            "server_alive": alive,
        }  # fmt: skip
        print(f"registered {ok}/{a.users} ({failed} failed) over {a.transport}")
        print(f"peak RSS (VmHWM) before: {before_rss / 1024:.1f} MiB")
        print(f"peak RSS (VmHWM) after:  {peak / 1024:.1f} MiB")
        if ok:
            print(f"per registration: {(peak - before_rss) / ok:.2f} KiB")
        if not alive:
            print(f"runtime exited:\n{sb.tail(server.log)}")
        if a.json:
            a.json.write_text(json.dumps(result, indent=2) + "\n")
        return 0 if alive and ok == a.users else 1
    finally:
        for h in helpers:
            h.stop()
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
