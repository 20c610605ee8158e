"""Hostile inputs must cost linear time: no regex backtracking or rescanning blow-ups."""

from __future__ import annotations

import time

import pytest

from pbx_runtime.sip import SIPProtocolError, parse_datagram, split_list

BASE = (
    b"REGISTER sip:a.example SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
    b"To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n"
)
N = 4000  # a header field stays under the 8192-character limit

HOSTILE = {
    "escaped quotes, unterminated": b"From: " + b'"' + b'\\"' * N,
    "angle brackets": b"From: " + b"<" * 2 * N,
    "quote runs": b"Contact: " + b'"a,' * (2 * N // 3),
    "semicolons": b"From: <sip:a@b>" + b";" * 2 * N,
    "param quotes": b"From: <sip:a@b>;x=" + b'"' + b'\\"' * N,
    "trailing blanks": b"From: <sip:a@b>" + b" " * 2 * N + b"x",
    "display tokens": b"From: " + b"a " * N + b"sip:a@b",
    "control chars in quotes": b"From: <sip:a@b>\r\nX: " + b'"\x01' * N,
    "escapes in user": b"From: <sip:" + b"%4" * N + b">",
    "host labels": b"From: <sip:a@" + b"a." * N + b"1>",
    "long label": b"From: <sip:a@" + b"a" * 2 * N + b"->",
    "tel digits": b"From: <tel:+" + b"1" * 2 * N + b"x>",
    "contact commas": b"From: <sip:a@b>\r\nContact: " + b"<sip:a@b>," * (N // 5) + b",",
    "via list": b"From: <sip:a@b>\r\nVia: " + b"SIP/2.0/UDP h," * (N // 8) + b"x",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_header_is_rejected_quickly(name: str) -> None:
    data = BASE + HOSTILE[name] + b"\r\nContent-Length: 0\r\n\r\n"
    started = time.perf_counter()
    with pytest.raises(SIPProtocolError) as caught:
        parse_datagram(data)
    elapsed = time.perf_counter() - started
    assert caught.value.status == 400
    assert elapsed < 0.05, f"{name}: {elapsed * 1000:.1f} ms"


@pytest.mark.parametrize("value", ['"' + '\\"' * 30000, "<" * 60000, '"a' * 30000, "a," * 30000])
def test_split_list_is_linear(value: str) -> None:
    started = time.perf_counter()
    split_list(value)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.2, f"{elapsed * 1000:.1f} ms"
