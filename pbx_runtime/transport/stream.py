"""TCP and TLS connections: framing is the core's (``StreamFramer``); this module enforces the
connection limits (total, per source), idle and slow-client timeouts and write back-pressure.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

from pbx_runtime.core import Peer

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = ["StreamConnection"]


class StreamConnection(asyncio.Protocol):
    """One accepted TCP or TLS connection (for TLS: after the handshake)."""

    def __init__(self, runtime: Runtime, listener: int, transport_name: str) -> None:
        self.runtime = runtime
        self.listener = listener
        self.transport_name = transport_name
        self.transport: asyncio.Transport | None = None
        self.peer: Peer | None = None
        self.last_activity = 0.0
        self.partial_since: float | None = None  # a message has been incomplete since then

    # -- asyncio callbacks ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        runtime = self.runtime
        peername = transport.get_extra_info("peername")
        if not peername or not runtime.admit_connection(str(peername[0])):
            transport.abort()
            return
        self.transport = transport
        transport.set_write_buffer_limits(high=runtime.config.limits.max_write_buffer)
        self.peer = Peer(
            self.transport_name, str(peername[0]), int(peername[1]), self.listener,
            runtime.new_connection_id(),
        )  # fmt: skip
        self.last_activity = runtime.now()
        runtime.connection_opened(self)

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None:
            return
        runtime = self.runtime
        core = runtime.core
        now = runtime.now()
        self.last_activity = now
        before = core.buffered(peer)
        outputs = core.stream_received(data, peer, now)
        after = core.buffered(peer)
        if after == 0:
            self.partial_since = None
        elif self.partial_since is None or after < before + len(data):
            self.partial_since = now  # a message completed: the clock restarts
        if outputs:
            runtime.perform(outputs)
        runtime.after_input()

    def eof_received(self) -> bool | None:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None:
            self.runtime.connection_closed(self)
            self.peer = None
        self.transport = None

    # -- used by the runtime -------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(data)
        if transport.get_write_buffer_size() > self.runtime.config.limits.max_write_buffer:
            transport.abort()  # the peer does not read: cut it off rather than buffer forever

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
