"""The process around the core: listeners, clock, timer, security-event output, SIGHUP/SIGTERM.

Clock: ``now`` is ``loop.time()`` plus a fixed offset to the POSIX epoch taken at start, so the
core sees wall-clock seconds (nonces, event stamps) that never step, and a core deadline maps
to ``loop.call_at(deadline - offset)``. One timer handle is kept armed at
``Core.next_deadline()`` and re-armed after every batch of input.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import sys
import time
from typing import TextIO

from pbx_runtime import COMPILED
from pbx_runtime.config import ConfigError, RuntimeConfig, load_config
from pbx_runtime.core import Close, Core, ListenerInfo, Output, Send

from . import collector
from .stream import StreamConnection
from .tls import TlsSetupError, server_context
from .udp import UdpEndpoint, bind_udp, receive_buffer_warning

__all__ = ["Runtime", "serve"]

log = logging.getLogger("pbx_runtime")

SWEEP_INTERVAL = 1.0
LISTEN_BACKLOG = 1024


class Runtime:
    """One tenant's runtime: build with a config, ``await start()``, ``await wait_stopped()``."""

    def __init__(self, config: RuntimeConfig) -> None:
        self.config = config
        self._loop = asyncio.get_running_loop()
        self._offset = time.time() - self._loop.time()
        self.core: Core  # set by start(): the listeners' real ports go into it
        self._udp: dict[int, UdpEndpoint] = {}
        self._servers: dict[int, asyncio.Server] = {}
        self._bound: list[tuple[str, str, int]] = []  # (transport, address, port) per listener
        self._connections: dict[int, StreamConnection] = {}
        self._per_source: dict[str, int] = {}
        self._next_conn = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._sweeper: asyncio.TimerHandle | None = None
        self._full_collection_at = 0.0  # set by start()
        self._stopped = self._loop.create_future()
        self._draining = False
        self._shed_logged = 0  # core.shed_count at the last overload log line
        self._events_out: TextIO = sys.stdout
        self._owns_events_out = False

    # =========================================================================================
    # Life cycle

    def now(self) -> float:
        return self._loop.time() + self._offset

    async def start(self) -> None:
        config = self.config
        tls_context = server_context(config.tls) if config.tls is not None else None
        infos: list[ListenerInfo] = []
        try:
            for index, listener in enumerate(config.listeners):
                if listener.transport == "udp":
                    sock = bind_udp(listener.address, listener.port)
                    port = int(sock.getsockname()[1])
                    warning = receive_buffer_warning(sock, config.limits.udp_backlog_bytes)
                    if warning is not None:
                        log.warning("%s:%d: %s", listener.address, port, warning)
                    self._udp[index] = UdpEndpoint(self, index, sock)
                else:
                    server = await self._listen(index, listener.address, listener.port, tls_context)
                    port = int(server.sockets[0].getsockname()[1])
                    self._servers[index] = server
                self._bound.append((listener.transport, listener.address, port))
                host = listener.advertise or listener.address
                local = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                infos.append(ListenerInfo(listener.transport.upper(), local))
        except BaseException:
            await self.close()
            raise
        self.core = Core(config, infos)
        collector.install()
        self._full_collection_at = self.now() + collector.FULL_INTERVAL
        self._open_event_output()
        for endpoint in self._udp.values():
            endpoint.start(self._loop)
        self._sweeper = self._loop.call_later(SWEEP_INTERVAL, self._sweep)
        self._arm_timer()
        for sig, handler in ((signal.SIGHUP, self.reload), (signal.SIGTERM, self.terminate),
                             (signal.SIGINT, self.terminate)):  # fmt: skip
            self._loop.add_signal_handler(sig, handler)

    async def _listen(
        self, index: int, address: str, port: int, tls_context: ssl.SSLContext | None
    ) -> asyncio.Server:
        transport = self.config.listeners[index].transport
        ssl_context = tls_context if transport == "tls" else None
        name = transport.upper()
        return await self._loop.create_server(
            lambda: StreamConnection(self, index, name),
            address,
            port,
            ssl=ssl_context,
            ssl_handshake_timeout=self.config.limits.tls_handshake_timeout if ssl_context else None,
            reuse_address=True,
            reuse_port=True,  # lets SIGHUP open the new TLS listener before closing the old
            backlog=LISTEN_BACKLOG,
        )

    @property
    def bound(self) -> list[tuple[str, str, int]]:
        """``(transport, address, port)`` of every listener, with the real port."""
        return list(self._bound)

    async def wait_stopped(self) -> None:
        await self._stopped

    async def close(self) -> None:
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            self._loop.remove_signal_handler(sig)
        for handle in (self._timer, self._sweeper):
            if handle is not None:
                handle.cancel()
        for server in self._servers.values():
            server.close()
        for connection in list(self._connections.values()):
            connection.abort()
        for endpoint in self._udp.values():
            endpoint.close()
        self._udp.clear()
        self._flush_events()
        if self._owns_events_out:
            self._events_out.close()

    # =========================================================================================
    # Signals

    def reload(self) -> None:
        """SIGHUP: new users and certificates; registrations, calls and connections stay."""
        source = self.config.source
        if source is None:
            log.warning("reload: no configuration file to reload from")
            return
        try:
            new = load_config(source)
            context = server_context(new.tls) if new.tls is not None else None
        except (ConfigError, TlsSetupError) as err:
            log.error("reload refused, keeping the running configuration: %s", err)
            return
        if new.listeners != self.config.listeners or new.domain != self.config.domain:
            log.warning("reload: listener and domain changes need a restart; not applied")
        self.core.reload_users(new)
        self._loop.create_task(self._swap_tls(context))
        log.info("reloaded users (%d) and certificates", len(new.users))

    async def _swap_tls(self, context: ssl.SSLContext | None) -> None:
        for index, server in list(self._servers.items()):
            transport, address, port = self._bound[index]
            if transport != "tls" or context is None:
                continue
            try:
                fresh = await self._listen(index, address, port, context)
            except OSError as err:
                log.error("reload: cannot reopen tls listener %s:%d: %s", address, port, err)
                continue
            self._servers[index] = fresh
            server.close()  # stops accepting; its connections stay open (Python 3.11)

    def terminate(self) -> None:
        """SIGTERM: stop accepting, finish transactions for at most ``drain_timeout``, exit."""
        if self._draining:
            return
        self._draining = True
        log.info("draining: %d transactions in progress", len(self.core.manager))
        self.core.begin_drain()
        for server in self._servers.values():
            server.close()
        deadline = self._loop.time() + self.config.limits.drain_timeout
        self._loop.create_task(self._drain(deadline))

    async def _drain(self, deadline: float) -> None:
        # Settled transactions (final response sent, ACK in) only absorb retransmissions:
        # waiting out their timers would hold every restart for up to 32 s after a call.
        while self.core.manager.unsettled() > 0 and self._loop.time() < deadline:
            await asyncio.sleep(0.05)
        left = self.core.manager.unsettled()
        if left:
            log.warning("drain bound reached with %d unsettled transactions left", left)
        if not self._stopped.done():
            self._stopped.set_result(None)

    # =========================================================================================
    # Outputs, timer, events

    def perform(self, outputs: list[Output]) -> None:
        udp = self._udp
        connections = self._connections
        for output in outputs:
            peer = output.peer
            if isinstance(output, Send):
                if peer.conn:
                    connection = connections.get(peer.conn)
                    if connection is not None:
                        connection.write(output.data)
                else:
                    endpoint = udp.get(peer.listener)
                    if endpoint is not None:
                        endpoint.send(output.data, peer)
            elif isinstance(output, Close):
                connection = connections.get(peer.conn)
                if connection is not None:
                    connection.close()

    def after_input(self) -> None:
        self._flush_events()
        self._arm_timer()

    def _arm_timer(self) -> None:
        deadline = self.core.next_deadline()
        if deadline is None:
            return
        when = deadline - self._offset
        if self._timer is not None:
            if self._timer_at <= when:
                return  # an earlier wake-up is armed; it re-arms after firing
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        outputs = self.core.handle_timers(self.now())
        if outputs:
            self.perform(outputs)
        self.after_input()

    def _open_event_output(self) -> None:
        destination = self.config.events.destination
        if destination != "stdout":
            self._events_out = open(destination, "a", encoding="ascii", buffering=1)  # noqa: SIM115
            self._owns_events_out = True

    def _flush_events(self) -> None:
        core = getattr(self, "core", None)
        if core is None or not len(core.events):
            return
        out = self._events_out
        try:
            out.write("".join(event.to_json() + "\n" for event in core.events.drain()))
            out.flush()
        except OSError as err:
            log.error("cannot write security events: %s", err)

    # =========================================================================================
    # Connections

    def admit_connection(self, host: str) -> bool:
        limits = self.config.limits
        if self._draining or len(self._connections) >= limits.max_connections:
            return False
        return self._per_source.get(host, 0) < limits.max_connections_per_source

    def new_connection_id(self) -> int:
        self._next_conn += 1
        return self._next_conn

    def connection_opened(self, connection: StreamConnection) -> None:
        peer = connection.peer
        assert peer is not None
        self._connections[peer.conn] = connection
        self._per_source[peer.host] = self._per_source.get(peer.host, 0) + 1
        self.core.connection_opened(peer)

    def connection_closed(self, connection: StreamConnection) -> None:
        peer = connection.peer
        assert peer is not None
        self._connections.pop(peer.conn, None)
        left = self._per_source.get(peer.host, 0) - 1
        if left > 0:
            self._per_source[peer.host] = left
        else:
            self._per_source.pop(peer.host, None)
        self.core.connection_closed(peer)

    def _sweep(self) -> None:
        """Close idle connections and abort slow ones (a partial message that never ends)."""
        now = self.now()
        limits = self.config.limits
        for connection in list(self._connections.values()):
            if connection.partial_since is not None and (
                now - connection.partial_since > limits.slow_client_timeout
            ):
                connection.abort()
            elif now - connection.last_activity > limits.idle_timeout:
                connection.close()
        shed = self.core.shed_count
        if shed > self._shed_logged:
            log.warning(
                "overload: shed %d new requests (%s) in the last %.0f s; UDP receive queue "
                "over limits.udp_backlog_bytes = %d",
                shed - self._shed_logged,
                "503" if limits.shed == "503" else "dropped",
                SWEEP_INTERVAL,
                limits.udp_backlog_bytes,
            )
            self._shed_logged = shed
        if now >= self._full_collection_at:
            self._collect_everything()
        self._sweeper = self._loop.call_later(SWEEP_INTERVAL, self._sweep)

    def _collect_everything(self) -> None:
        started = time.perf_counter()
        found = collector.collect_everything()
        log.info(
            "garbage collector: full collection in %.0f ms, %d objects in reference cycles",
            (time.perf_counter() - started) * 1000,
            found,
        )
        self._full_collection_at = self.now() + collector.FULL_INTERVAL


def _ready_line(runtime: Runtime) -> str:
    parts = [f"{t}={a}:{p}" if ":" not in a else f"{t}=[{a}]:{p}" for t, a, p in runtime.bound]
    build = "compiled" if COMPILED else "interpreted"
    return f"pbx_runtime ready tenant={runtime.config.tenant} build={build} " + " ".join(parts)


async def serve(config: RuntimeConfig) -> None:
    """Run one tenant until SIGTERM/SIGINT has drained it."""
    runtime = Runtime(config)
    await runtime.start()
    print(_ready_line(runtime), file=sys.stderr, flush=True)
    try:
        await runtime.wait_stopped()
    finally:
        await runtime.close()
    log.info("stopped")
