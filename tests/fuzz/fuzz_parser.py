#!/usr/bin/env python3
"""Fuzz the SIP message layer: "parses, or raises SIPProtocolError, nothing else".

Runs up to ``--count`` inputs (default 1,000,000), stopping early at ``--seconds`` (default 600),
through ``parse_datagram`` and, for every ``--stream-every``-th input, through ``StreamFramer``
fed in random chunks. Inputs are RFC 4475/5118 vectors and generated valid messages, mutated by
bit flips, truncation, line duplication/deletion/swaps, token insertion, splicing and numeric
boundary values; plus some purely random bytes.

Invariants checked on every input:

* ``parse_datagram`` returns a Request/Response or raises SIPProtocolError (status None or
  400-599, never fatal) — any other exception is a failure;
* a parsed message serializes, and the result parses back to the same message (ignoring an added
  Content-Length) and re-serializes identically;
* the framer yields only Request/Response/KeepAlive/SIPProtocolError.

Exits 0 when every input held, 1 on the first violation (printing the input, and saving it
under ``--save-dir`` if given). Usage::

    PYTHONPATH=. .venv/bin/python tests/fuzz/fuzz_parser.py --count 100000 --seconds 120
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pbx_runtime.sip import (  # noqa: E402  (needs ROOT on sys.path when run as a script)
    KeepAlive,
    Request,
    Response,
    SIPProtocolError,
    StreamFramer,
    parse_datagram,
    serialize,
)

VECTOR_DIRS = (ROOT / "tests" / "vectors" / "rfc4475", ROOT / "tests" / "vectors" / "rfc5118")

TOKENS = [
    b",",
    b";",
    b'"',
    b"<",
    b">",
    b"%",
    b"%0",
    b"%00",
    b"[",
    b"]",
    b":",
    b"::",
    b"@",
    b"\r\n",
    b"\r\n ",
    b"\r\n\r\n",
    b"\r",
    b"\n",
    b" ",
    b"\t",
    b"\x00",
    b"\x7f",
    b"\\",
    b'\\"',
    b"\xff",
    b"\xc3",
    b"\xe2\x82",
    b"?",
    b"&",
    b"=",
    b"/",
    b"*",
    b"sip:",
    b"sips:",
    b"tel:",
    b"SIP/2.0",
    b"SIP/7.0",
    b"z9hG4bK",
    b";tag=",
    b";branch=",
    b"Content-Length: ",
    b"l: ",
    b"Via: ",
    b"v: ",
    b"CSeq: ",
    b"Contact: *",
]
NUMBERS = [
    b"0",
    b"-1",
    b"1",
    b"255",
    b"256",
    b"65535",
    b"65536",
    b"4294967295",
    b"4294967296",
    b"99999999999999999999",
    b"00000000000000000001",
    b"1e3",
    b"0x10",
    b"\xd9\xa3",
]
METHODS = [
    "INVITE",
    "REGISTER",
    "OPTIONS",
    "BYE",
    "ACK",
    "CANCEL",
    "MESSAGE",
    "SUBSCRIBE",
    "NOTIFY",
    "!weird-Method.%~",
]


def load_seeds() -> list[bytes]:
    seeds = []
    for directory in VECTOR_DIRS:
        for path in sorted(directory.iterdir()):
            if path.suffix in (".dat", ".sip"):
                seeds.append(path.read_bytes())
    return seeds


def _host(rng: random.Random) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        return ".".join(str(rng.randrange(256)) for _ in range(4))
    if kind == 1:
        return f"[2001:db8::{rng.randrange(65536):x}]"
    return rng.choice(["pbx.acme.example", "a.b", "host-1.example.com", "x"])


def generate(rng: random.Random) -> bytes:
    """A fresh, mostly valid SIP message."""
    method = rng.choice(METHODS)
    user = rng.choice(["alice", "1001", "a%20b", "+15551234", "u;p=1"])
    port = f":{rng.randrange(65536)}" if rng.random() < 0.5 else ""
    body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
    lines = []
    if rng.random() < 0.8:
        lines.append(f"{method} sip:{user}@{_host(rng)}{port} SIP/2.0")
    else:
        lines.append(f"SIP/2.0 {rng.randrange(100, 700)} Reason {rng.randrange(9)}")
    for _ in range(rng.randrange(1, 4)):
        lines.append(
            f"{rng.choice(['Via', 'v'])}: SIP/2.0/{rng.choice(['UDP', 'TCP', 'TLS'])} "
            f"{_host(rng)}{port};branch=z9hG4bK{rng.randrange(10**9)};rport"
        )
    lines.append(f'From: "Al \\"x\\"" <sip:{user}@{_host(rng)}>;tag={rng.randrange(10**6)}')
    lines.append(f"{rng.choice(['To', 't'])}: <sip:bob@{_host(rng)}>")
    lines.append(f"Call-ID: {rng.randrange(10**12)}@{_host(rng).strip('[]')}")
    lines.append(f"CSeq: {rng.randrange(2**32)} {method}")
    lines.append(f"Max-Forwards: {rng.randrange(256)}")
    lines.append(
        f"Contact: <sip:{user}@{_host(rng)};transport=tcp>;expires={rng.randrange(4000)}"
        + (", *" if rng.random() < 0.05 else "")
    )
    if rng.random() < 0.3:
        lines.append("Subject: folded\r\n  across lines")
    lines.append(f"{rng.choice(['Content-Length', 'l'])}: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def mutate(data: bytes, rng: random.Random, seeds: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randrange(1, 5)):
        if not buf:
            buf += rng.choice(seeds)
        op = rng.randrange(12)
        at = rng.randrange(len(buf))
        if op == 0:
            buf[at] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[at] = rng.randrange(256)
        elif op == 2:
            buf[at:at] = rng.choice(TOKENS) * rng.randrange(1, 4)
        elif op == 3:
            del buf[at : at + rng.randrange(1, 32)]
        elif op == 4:
            del buf[at:]
        elif op in (5, 6, 7):
            lines = bytes(buf).split(b"\r\n")
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            if op == 5:
                lines.insert(i, lines[j])
            elif op == 6:
                del lines[i]
            else:
                lines[i], lines[j] = lines[j], lines[i]
            buf = bytearray(b"\r\n".join(lines))
        elif op == 8:
            other = rng.choice(seeds)
            buf[at:] = other[rng.randrange(len(other) + 1) :]
        elif op == 9:
            digits = [i for i, byte in enumerate(buf) if 0x30 <= byte <= 0x39]
            if digits:
                k = rng.choice(digits)
                end = k
                while end < len(buf) and 0x30 <= buf[end] <= 0x39:
                    end += 1
                buf[k:end] = rng.choice(NUMBERS)
        elif op == 10:
            piece = bytes(buf[at : at + rng.randrange(1, 16)])
            buf[at:at] = piece * rng.randrange(2, 200)
        else:
            colon = buf.find(b":", at)
            if colon > 0:
                start = buf.rfind(b"\n", 0, colon) + 1
                buf[start:colon] = bytes(buf[start:colon]).swapcase()
    return bytes(buf)


class Failure(Exception):
    pass


def check_datagram(data: bytes, counts: Counter[str]) -> None:
    try:
        message = parse_datagram(data)
    except SIPProtocolError as error:
        if error.fatal or not (error.status is None or 400 <= error.status <= 599):
            raise Failure(f"bad error from parse_datagram: {error!r}") from None
        counts["drop" if error.status is None else f"reject {error.status}"] += 1
        return
    if not isinstance(message, Request | Response):
        raise Failure(f"parse_datagram returned {type(message).__name__}")
    counts["parse request" if isinstance(message, Request) else "parse response"] += 1
    wire = serialize(message)
    again = parse_datagram(wire)
    if again.without_header("Content-Length") != message.without_header("Content-Length"):
        raise Failure("re-serialized message parses differently")
    if serialize(again) != wire:
        raise Failure("serialization is not stable")


def check_stream(data: bytes, rng: random.Random, counts: Counter[str]) -> None:
    framer = StreamFramer()
    position = 0
    while position < len(data):
        size = rng.choice((1, 2, 7, 64, 1500, len(data)))
        for event in framer.feed(data[position : position + size]):
            if not isinstance(event, Request | Response | KeepAlive | SIPProtocolError):
                raise Failure(f"framer produced {type(event).__name__}")
        position += size
    counts["stream runs"] += 1


def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    seeds = load_seeds() + [generate(rng) for _ in range(64)]
    counts: Counter[str] = Counter()
    started = time.monotonic()
    deadline = started + args.seconds
    done = 0
    pick: list[Callable[[], bytes]] = [
        lambda: generate(rng),
        lambda: bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300))),
    ] + [lambda: mutate(rng.choice(seeds), rng, seeds)] * 8
    while done < args.count:
        if done % 256 == 0 and time.monotonic() >= deadline:
            break
        data = rng.choice(pick)()
        try:
            check_datagram(data, counts)
            if args.stream_every and done % args.stream_every == 0:
                check_stream(data, rng, counts)
        except Exception as error:
            print(f"FAILURE after {done} inputs: {error!r}", file=sys.stderr)
            traceback.print_exc()
            print(f"input ({len(data)} bytes): {data!r}", file=sys.stderr)
            if args.save_dir is not None:
                args.save_dir.mkdir(parents=True, exist_ok=True)
                path = args.save_dir / f"crash-{args.seed}-{done}.bin"
                path.write_bytes(data)
                print(f"saved to {path}", file=sys.stderr)
            return 1
        done += 1
    elapsed = time.monotonic() - started
    print(
        f"inputs: {done} in {elapsed:.1f} s ({done / max(elapsed, 1e-9):,.0f} inputs/s), "
        f"seed {args.seed}"
    )
    for key, value in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {key:16} {value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--count", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=4475)
    parser.add_argument(
        "--stream-every",
        type=int,
        default=10,
        help="also run every Nth input through StreamFramer (0: never)",
    )
    parser.add_argument("--save-dir", type=Path, default=None, help="write a failing input here")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
