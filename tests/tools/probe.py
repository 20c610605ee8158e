#!/usr/bin/env python3
"""Reachability probe for isolation tests; stdlib only, so it runs on lab hosts as well.

    probe.py listen --tag TAG --address ADDR --tcp PORT --udp PORT --seconds S
        answer TCP connections and UDP datagrams on ADDR with TAG, for at most S seconds
    probe.py reach --tcp PORT [--tcp PORT ...] --udp PORT TARGET...
        try ICMP echo, TCP (each port) and UDP to every TARGET at once; print JSON
        {target: {"icmp": bool, "tcp": first banner or null, "udp": answer or null}}
"""

from __future__ import annotations

import argparse
import errno
import json
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

TIMEOUT = 1.5
# What a TCP reach reports when it connected but got no greeting: a listener that is not ours,
# such as the tenant's SIP runtime on the SIP-TLS port (it waits for a TLS ClientHello).
CONNECTED = "(connected)"


def listen(tag: str, address: str, tcp_port: int, udp_port: int, seconds: float) -> None:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    deadline = time.monotonic() + seconds
    banner = tag.encode()

    def serve_tcp() -> None:
        with socket.socket(family, socket.SOCK_STREAM) as server:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                server.bind((address, tcp_port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                return  # the port is served already (the SIP runtime): reaches say CONNECTED
            server.listen(64)
            server.settimeout(0.5)
            while time.monotonic() < deadline:
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    continue
                with conn:
                    conn.sendall(banner)

    def serve_udp() -> None:
        with socket.socket(family, socket.SOCK_DGRAM) as server:
            server.bind((address, udp_port))
            server.settimeout(0.5)
            while time.monotonic() < deadline:
                try:
                    _, peer = server.recvfrom(2048)
                except TimeoutError:
                    continue
                server.sendto(banner, peer)

    threads = [threading.Thread(target=serve_tcp), threading.Thread(target=serve_udp)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def reach_icmp(target: str) -> bool:
    # Echo every 0.3 s until one reply or the deadline: one lost packet is not "unreachable".
    result = subprocess.run(["ping", "-n", "-c", "1", "-i", "0.3", "-w", "2", target],
                            capture_output=True)
    return result.returncode == 0


def reach_tcp(target: str, port: int) -> str | None:
    try:
        with socket.create_connection((target, port), timeout=TIMEOUT) as conn:
            conn.settimeout(TIMEOUT)
            try:
                return conn.recv(256).decode() or CONNECTED
            except TimeoutError:
                return CONNECTED
    except OSError:
        return None


def reach_udp(target: str, port: int) -> str | None:
    family = socket.AF_INET6 if ":" in target else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT / 3)
        for _ in range(3):  # UDP may lose a datagram (e.g. while ARP resolves): retry
            try:
                sock.sendto(b"probe", (target, port))
                return sock.recv(256).decode() or None
            except TimeoutError:
                continue
            except OSError:
                return None
        return None


def reach(targets: list[str], tcp_ports: list[int], udp_port: int) -> dict[str, dict[str, object]]:
    with ThreadPoolExecutor(max_workers=(2 + len(tcp_ports)) * len(targets)) as pool:
        jobs = {t: (pool.submit(reach_icmp, t),
                    [pool.submit(reach_tcp, t, port) for port in tcp_ports],
                    pool.submit(reach_udp, t, udp_port)) for t in targets}
        return {t: {"icmp": i.result(),
                    "tcp": next((b for b in (c.result() for c in cs) if b), None),
                    "udp": u.result()}
                for t, (i, cs, u) in jobs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    lis = sub.add_parser("listen")
    lis.add_argument("--tag", required=True)
    lis.add_argument("--address", required=True)
    lis.add_argument("--tcp", type=int, required=True)
    lis.add_argument("--udp", type=int, required=True)
    lis.add_argument("--seconds", type=float, default=300)
    rea = sub.add_parser("reach")
    rea.add_argument("--tcp", type=int, action="append", required=True)
    rea.add_argument("--udp", type=int, required=True)
    rea.add_argument("targets", nargs="+")
    args = parser.parse_args()
    if args.command == "listen":
        listen(args.tag, args.address, args.tcp, args.udp, min(args.seconds, 900))
    else:
        print(json.dumps(reach(args.targets, args.tcp, args.udp)))


if __name__ == "__main__":
    main()
