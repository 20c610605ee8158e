"""The one error type of the SIP message layer.

Malformed input raises :class:`SIPProtocolError` carrying the status the server should answer
with (h11's ``RemoteProtocolError(error_status_hint)``). ``status is None`` means *drop
silently*: the input is not SIP at all, or it is a response (RFC 3261 never answers responses).
``fatal`` is set by the stream framer when framing itself is lost and the connection must close.
"""

from __future__ import annotations

__all__ = ["SIPProtocolError"]


class SIPProtocolError(Exception):
    """Malformed or unacceptable SIP input.

    :param status: SIP status code to answer with (400, 413, 416, 505, 513, ...), or ``None`` to
        drop the input without answering.
    :param reason: human-readable cause, for logs; never derived from peer bytes verbatim.
    :param fatal: the byte stream can no longer be framed; close the connection.
    """

    def __init__(self, status: int | None, reason: str, *, fatal: bool = False) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason
        self.fatal = fatal

    def __str__(self) -> str:
        code = "drop" if self.status is None else str(self.status)
        suffix = " (fatal)" if self.fatal else ""
        return f"{code}: {self.reason}{suffix}"

    def __repr__(self) -> str:
        return f"SIPProtocolError({self.status!r}, {self.reason!r}, fatal={self.fatal!r})"

    def dropped(self) -> SIPProtocolError:
        """The same error demoted to "drop silently" (once input is known to be a response)."""
        if self.status is None:
            return self
        return SIPProtocolError(None, self.reason, fatal=self.fatal)

    def as_fatal(self) -> SIPProtocolError:
        """The same error, marked as fatal for the connection."""
        if self.fatal:
            return self
        return SIPProtocolError(self.status, self.reason, fatal=True)
