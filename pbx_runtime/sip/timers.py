"""RFC 3261 §17 transaction timers: names, default values and how the transport changes them.

Values are in seconds. Nothing here reads a clock: a timer is a name and a delay, and the
caller (:class:`~pbx_runtime.sip.transaction.TransactionManager`, or the asyncio shell above it)
turns the delay into a deadline with the ``now`` it was given.

RFC 3261 Table 4 (Appendix A), with RFC 6026 §8.4/§8.11 adding Timers L and M:

======  ==========================  =================  ===========================================
timer   unreliable (UDP)            reliable           meaning
======  ==========================  =================  ===========================================
A       T1, doubling (no cap)       not used           INVITE request retransmit (§17.1.1.2)
B       64*T1                       64*T1              INVITE client timeout (§17.1.1.2)
D       max(32 s, 64*T1)            0                  wait for response retransmits (§17.1.1.2)
E       T1, doubling up to T2       not used           non-INVITE request retransmit (§17.1.2.2)
F       64*T1                       64*T1              non-INVITE client timeout (§17.1.2.2)
G       T1, doubling up to T2       not used           INVITE response retransmit (§17.2.1)
H       64*T1                       64*T1              wait for ACK receipt (§17.2.1)
I       T4                          0                  wait for ACK retransmits (§17.2.1)
J       64*T1                       0                  wait for non-INVITE request retransmits
                                                       (§17.2.2)
K       T4                          0                  wait for response retransmits (§17.1.2.2)
L       64*T1                       64*T1              wait for accepted INVITE retransmits
                                                       (RFC 6026 §7.1, §8.7)
M       64*T1                       64*T1              wait for 2xx retransmits and forked 2xx
                                                       (RFC 6026 §7.2, §8.4)
======  ==========================  =================  ===========================================

"Not used" timers are never started; a zero timer fires at once (the transaction passes through
the waiting state in the same call).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "DEFAULT_TIMERS",
    "RELIABLE_TRANSPORTS",
    "T1",
    "T2",
    "T4",
    "TIMER_A",
    "TIMER_B",
    "TIMER_D",
    "TIMER_E",
    "TIMER_F",
    "TIMER_G",
    "TIMER_H",
    "TIMER_I",
    "TIMER_J",
    "TIMER_K",
    "TIMER_L",
    "TIMER_M",
    "Timer",
    "TimerSettings",
    "is_reliable_transport",
]

# RFC 3261 §17.1.1.1: "T1 is an estimate of the round-trip time (RTT), and it defaults to
# 500 ms."
T1 = 0.5
# RFC 3261 §17.1.2.2: "T2 represents the amount of time a non-INVITE server transaction will
# take to respond to a request, if it does not respond immediately" (default 4 s).
T2 = 4.0
# RFC 3261 §17.1.2.2: "T4 represents the amount of time the network will take to clear messages
# between client and server transactions. The default value of T4 is 5 seconds."
T4 = 5.0

# Defaults for an unreliable transport (RFC 3261 Table 4; RFC 6026 for L and M).
TIMER_A = T1  # §17.1.1.2: initial INVITE retransmit interval, doubles after each retransmit
TIMER_B = 64 * T1  # §17.1.1.2: INVITE transaction timeout
TIMER_D = 32.0  # §17.1.1.2: "at least 32 seconds for unreliable transports"
TIMER_E = T1  # §17.1.2.2: initial non-INVITE retransmit interval, doubles up to T2
TIMER_F = 64 * T1  # §17.1.2.2: non-INVITE transaction timeout
TIMER_G = T1  # §17.2.1: initial INVITE final-response retransmit interval, doubles up to T2
TIMER_H = 64 * T1  # §17.2.1: wait time for ACK receipt
TIMER_I = T4  # §17.2.1: wait time for ACK retransmits
TIMER_J = 64 * T1  # §17.2.2: wait time for non-INVITE request retransmits
TIMER_K = T4  # §17.1.2.2: wait time for response retransmits
TIMER_L = 64 * T1  # RFC 6026 §7.1: wait time for accepted INVITE request retransmits
TIMER_M = 64 * T1  # RFC 6026 §7.2: wait time for 2xx retransmits / forked 2xx

#: Via transports that are reliable (RFC 3261 §18, RFC 4168 SCTP, RFC 7118 WebSocket). Anything
#: else, UDP included, is treated as unreliable: retransmitting over a reliable transport wastes
#: a few bytes, not retransmitting over an unreliable one loses the call.
RELIABLE_TRANSPORTS = frozenset({"TCP", "TLS", "SCTP", "TLS-SCTP", "WS", "WSS"})


def is_reliable_transport(transport: str) -> bool:
    """``True`` for a Via transport token that is reliable (TCP, TLS, SCTP, WS, ...)."""
    return transport.upper() in RELIABLE_TRANSPORTS


class Timer(enum.Enum):
    """The RFC 3261 / RFC 6026 transaction timers (C belongs to proxies and is not here)."""

    __hash__ = object.__hash__  # members are singletons: identity hash, in C

    A = "A"
    B = "B"
    D = "D"
    E = "E"
    F = "F"
    G = "G"
    H = "H"
    I = "I"  # noqa: E741  # the RFC's name for the timer
    J = "J"
    K = "K"
    L = "L"
    M = "M"


# Retransmission timers: started with T1, "reset with a value that doubles" on each firing.
# A has no cap (§17.1.1.2: "intervals that double after each transmission", so an unanswered
# INVITE is sent 7 times in 32 s); E and G are capped at T2 (§17.1.2.2, §17.2.1).
_CAPPED_AT_T2 = frozenset({Timer.E, Timer.G})
_RETRANSMIT = frozenset({Timer.A, Timer.E, Timer.G})
_ZERO_WHEN_RELIABLE = frozenset({Timer.D, Timer.I, Timer.J, Timer.K})


@dataclass(frozen=True, slots=True)
class TimerSettings:
    """T1, T2, T4 (RFC 3261 §17.1.1.1, §17.1.2.2) and Timer D, per manager.

    :param timer_d: Timer D for unreliable transports; ``None`` (default) means
        ``max(32 s, 64*T1)`` — the RFC's "at least 32 seconds", grown with T1 so that it still
        covers the server's 64*T1 of final-response retransmissions when T1 is raised.
    """

    t1: float = T1
    t2: float = T2
    t4: float = T4
    timer_d: float | None = None

    def __post_init__(self) -> None:
        for name in ("t1", "t2", "t4"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"TimerSettings.{name} must be a positive number, got {value!r}")
        if self.t2 < self.t1:
            raise ValueError("TimerSettings.t2 must not be smaller than t1")
        d = self.timer_d
        if d is not None and (isinstance(d, bool) or not isinstance(d, int | float) or d < 0):
            raise ValueError(f"TimerSettings.timer_d must be a number >= 0, got {d!r}")

    @property
    def timeout(self) -> float:
        """64*T1: Timers B, F, H (and J, L, M on unreliable transports)."""
        return 64 * self.t1

    @property
    def d(self) -> float:
        """Timer D on an unreliable transport."""
        return max(32.0, self.timeout) if self.timer_d is None else float(self.timer_d)

    def initial(self, timer: Timer, *, reliable: bool) -> float | None:
        """The value *timer* starts with; ``None`` if it is not used on this transport."""
        if reliable:
            if timer in _RETRANSMIT:
                return None
            if timer in _ZERO_WHEN_RELIABLE:
                return 0.0
        if timer in _RETRANSMIT:
            return self.t1
        if timer is Timer.D:
            return self.d
        if timer in (Timer.I, Timer.K):
            return self.t4
        return self.timeout  # B, F, H, J, L, M

    def doubled(self, timer: Timer, interval: float) -> float:
        """The next retransmission interval after *interval* (A uncapped; E, G capped at T2)."""
        if timer in _CAPPED_AT_T2:
            return min(2 * interval, self.t2)
        return 2 * interval

    @property
    def termination_bound(self) -> float:
        """64*T1 plus the longest wait state (D, J, K, L, M): once nothing but timers happens,
        every transaction that is not waiting for its TU terminates within this many seconds."""
        return self.timeout + max(self.d, self.timeout, self.t4)


DEFAULT_TIMERS = TimerSettings()
