"""Every buffer and count the SIP message layer accepts has a limit, and they all live here.

Status codes used when a limit is exceeded (answered only for requests; responses are dropped):

* body larger than ``max_body_bytes``  → **413** Request Entity Too Large (RFC 3261 §21.4.11:
  "the request entity-body is larger than the server is willing or able to process").
* whole message larger than ``max_message_bytes``, more than ``max_headers`` header fields, or a
  start line / header field longer than ``max_header_line_bytes`` → **513** Message Too Large
  (RFC 3261 §21.5.7: "the message length exceeded its capabilities"). 494 is *not* used: in SIP it
  means "Security Agreement Required" (RFC 3329), unlike nginx's HTTP 494.

On a stream every limit breach is fatal (the framer cannot resynchronise), so the connection is
closed after the answer, if any.

``max_header_line_bytes`` is checked on the decoded, unfolded header field (name, colon and
value), so folding cannot be used to smuggle an over-long value past it; a UTF-8 field is measured
in characters, which is never more than its bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_LIMITS",
    "STATUS_BODY_TOO_LARGE",
    "STATUS_MESSAGE_TOO_LARGE",
    "Limits",
]

STATUS_BODY_TOO_LARGE = 413
STATUS_MESSAGE_TOO_LARGE = 513


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits for one parsed SIP message (datagram or stream)."""

    max_message_bytes: int = 65535
    max_headers: int = 128
    max_header_line_bytes: int = 8192
    max_body_bytes: int = 65535

    def __post_init__(self) -> None:
        for name in ("max_message_bytes", "max_headers", "max_header_line_bytes", "max_body_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"Limits.{name} must be a positive int, got {value!r}")


DEFAULT_LIMITS = Limits()
