"""Incremental message framing for stream transports (TCP, TLS, WebSocket-less streams).

h11-shaped: feed bytes with :meth:`StreamFramer.receive_data`, pull events with
:meth:`StreamFramer.next_event` until it returns ``None`` (need more data), or use
:meth:`StreamFramer.feed` to do both at once.

Framing rules (RFC 3261 §7.5, §18.3, §20.14; RFC 5626 §3.5.1):

* CRLFs before a start line are skipped; a CRLFCRLF at a message boundary is a keep-alive ping
  and yields :class:`KeepAlive` (answer with one CRLF).
* Content-Length is mandatory on streams. Missing, negative, non-numeric, duplicated or
  conflicting Content-Length, an undecodable head, or any limit breach means the byte stream
  cannot be framed any more: the error is *fatal* (``error.fatal``), the framer stops, and the
  connection must be closed (after answering ``error.status``, if not ``None``).
* A message that frames correctly but is otherwise malformed (bad CSeq, bad URI...) raises a
  non-fatal error; the message's bytes are consumed and the framer carries on with the next one.

Nothing is read from a clock or socket; the caller owns the connection.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import SIPProtocolError
from .limits import DEFAULT_LIMITS, STATUS_BODY_TOO_LARGE, STATUS_MESSAGE_TOO_LARGE, Limits
from .message import Request, Response, build_index
from .parser import (
    MessageKind,
    build_message,
    classify_start_line,
    content_length_of,
    parse_head,
)

__all__ = ["KeepAlive", "StreamEvent", "StreamFramer"]


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """A CRLFCRLF keep-alive ping (RFC 5626 §3.5.1); the answer is a single CRLF."""


StreamEvent = Request | Response | KeepAlive

_PING = b"\r\n\r\n"


class StreamFramer:
    """Cut a byte stream into SIP messages, enforcing :class:`Limits`."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._buffer = bytearray()
        self._scan_from = 0
        self._pending: (
            tuple[MessageKind, str, list[tuple[str, str]], int, int, dict[str, list[int]]] | None
        ) = None
        self._error: SIPProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet consumed by a complete event."""
        return len(self._buffer)

    @property
    def error(self) -> SIPProtocolError | None:
        """The fatal error that stopped this framer, if any."""
        return self._error

    def receive_data(self, data: bytes) -> None:
        """Append bytes from the stream (ignored once the framer has failed)."""
        if self._error is None:
            self._buffer += data

    def next_event(self) -> StreamEvent | None:
        """The next complete message or keep-alive, or ``None`` if more bytes are needed.

        :raises SIPProtocolError: the next message is malformed. When ``fatal`` is set the
            framer is dead (every later call raises the same error) and the connection must be
            closed.
        """
        if self._error is not None:
            raise self._error
        try:
            return self._next()
        except SIPProtocolError as error:
            if error.fatal:
                self._error = error
                self._buffer.clear()
                self._pending = None
            raise

    def feed(self, data: bytes) -> list[StreamEvent | SIPProtocolError]:
        """Receive *data* and return every event now available, errors included, in order.

        Never raises. A fatal error is the last item this framer ever returns: once failed,
        ``feed`` returns ``[]`` (``next_event`` keeps raising, and :attr:`error` holds it).
        """
        if self._error is not None:
            return []
        self.receive_data(data)
        events: list[StreamEvent | SIPProtocolError] = []
        while True:
            try:
                event = self.next_event()
            except SIPProtocolError as error:
                events.append(error)
                if error.fatal:
                    return events
                continue
            if event is None:
                return events
            events.append(event)

    # -- internals -------------------------------------------------------------------------------

    def _next(self) -> StreamEvent | None:
        buffer = self._buffer
        if self._pending is None:
            while buffer[:2] == b"\r\n":
                if buffer[:4] == _PING:
                    del buffer[:4]
                    self._scan_from = 0
                    return KeepAlive()
                if len(buffer) < 4 and _PING.startswith(bytes(buffer)):
                    return None
                del buffer[:2]
                self._scan_from = 0
            if not buffer:
                return None
            head_end = buffer.find(_PING, self._scan_from)
            if head_end < 0:
                if len(buffer) > self._limits.max_message_bytes:
                    raise self._fatal(
                        self._kind_of_prefix(),
                        STATUS_MESSAGE_TOO_LARGE,
                        "message head exceeds the configured limit",
                    )
                self._scan_from = max(0, len(buffer) - 3)
                return None
            self._pending = self._frame_head(head_end)
        kind, start_line, fields, head_end, length, index = self._pending
        total = head_end + 4 + length
        if len(buffer) < total:
            return None
        body = bytes(buffer[head_end + 4 : total])
        del buffer[:total]
        self._pending = None
        self._scan_from = 0
        return build_message(kind, start_line, fields, body, index)

    def _kind_of_prefix(self) -> MessageKind | None:
        buffer = self._buffer
        line_end = buffer.find(b"\r\n")
        return classify_start_line(bytes(buffer[: line_end if line_end >= 0 else len(buffer)]))

    @staticmethod
    def _fatal(kind: MessageKind | None, status: int | None, reason: str) -> SIPProtocolError:
        if kind is not MessageKind.REQUEST:
            status = None
        return SIPProtocolError(status, reason, fatal=True)

    def _frame_head(
        self, head_end: int
    ) -> tuple[MessageKind, str, list[tuple[str, str]], int, int, dict[str, list[int]]]:
        limits = self._limits
        kind = self._kind_of_prefix()
        if kind is None:
            raise self._fatal(None, None, "not a SIP message")
        if head_end > limits.max_message_bytes:
            raise self._fatal(kind, STATUS_MESSAGE_TOO_LARGE, "message head exceeds the limit")
        try:
            start_line, fields = parse_head(bytes(self._buffer[:head_end]), limits)
            index = build_index(fields)
            length = content_length_of(fields, index)
        except SIPProtocolError as error:
            raise self._fatal(kind, error.status, error.reason) from None
        if length is None:
            raise self._fatal(kind, 400, "Content-Length is mandatory on stream transports")
        if length > limits.max_body_bytes:
            raise self._fatal(kind, STATUS_BODY_TOO_LARGE, "body exceeds the configured limit")
        if head_end + 4 + length > limits.max_message_bytes:
            raise self._fatal(kind, STATUS_MESSAGE_TOO_LARGE, "message exceeds the limit")
        return kind, start_line, fields, head_end, length, index
