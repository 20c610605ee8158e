"""Requests shared by the transaction machine and timer tests."""

from __future__ import annotations

from pbx_runtime.sip import Request, parse_datagram

PEER = ("192.0.2.10", 5060)


def make_request(method: str = "INVITE", *, transport: str = "UDP", branch: str = "") -> Request:
    branch = branch or f"z9hG4bK-{method.lower()}-{transport.lower()}"
    data = (
        f"{method} sip:bob@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} client.example.com:5060;branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        "From: Alice <sip:alice@example.com>;tag=a1\r\n"
        "To: Bob <sip:bob@example.com>\r\n"
        "Call-ID: call-1@example.com\r\n"
        f"CSeq: 1 {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    message = parse_datagram(data)
    assert isinstance(message, Request)
    return message
