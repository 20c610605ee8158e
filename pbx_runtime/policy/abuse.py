"""Abuse defences, cheapest first: source locks and a flood meter, scanner User-Agents, then
failed-authentication counters with lockout and exponential back-off.

The policy only decides; the caller acts on the :class:`Verdict`:

========  ==============================================================================
ALLOW     carry on
DROP      drop silently: a flood's excess or a scanner (no answer = nothing to fingerprint,
          and no work spent on it)
LOCKED    drop silently as well: a locked source or user gets no signal that would tell a
          guesser it was locked, and no CPU (performance-security.md §5.2, §5.5)
========  ==============================================================================

Design points (performance-security.md §5):

* Failures are counted **per source host and per user name**, known or not: counting only
  known users would let a guesser discover them by which names lock. Callers report only
  failures that *could have succeeded* — a nonce issued to that address was used — so a spoofed
  UDP source cannot lock somebody else's address or account.
* A lock lasts ``lock`` seconds, doubling with each repeat up to ``max_lock``; a lock that
  starts more than ``forgive_after`` seconds after the previous one ended starts again at
  ``lock``.
* A user lock does not apply to a (source host, user) pair that authenticated successfully in
  the last ``trust_ttl`` seconds, so an attacker elsewhere cannot lock a working phone out of
  its own account. Hosts in ``exempt_networks`` (an office NAT, the admin network) are never
  source-locked; their failures still count against the user.
* Every map is bounded (LRU or insertion-order eviction) so a spray of sources or user names
  costs at most ``max_sources``/``max_users``/``max_locks``/``max_trusted`` entries.
* Flood and scanner events are rate-limited per source (``report_interval``) so the event log
  cannot be flooded either.

Sans-I/O: every method takes ``now`` (POSIX seconds).
"""

from __future__ import annotations

import ipaddress
import re
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from enum import Enum

from pbx_runtime.events import EventKind, EventLog

__all__ = [
    "SCANNER_AGENTS",
    "AbuseConfig",
    "AbusePolicy",
    "LockoutRule",
    "LockoutTracker",
    "Verdict",
    "is_scanner",
    "source_host",
]


class Verdict(Enum):
    ALLOW = "allow"
    DROP = "drop"
    LOCKED = "locked"


#: Case-insensitive User-Agent substrings of SIP scanners and war-dialers.
SCANNER_AGENTS: tuple[str, ...] = (
    "friendly-scanner",  # SIPVicious svmap/svwar/svcrack default
    "sipvicious",  # SIPVicious (newer versions, From display name)
    "sipcli",  # sipcli brute forcer
    "sip-scan",  # sip-scan
    "sipscan",  # SIPScan
    "vaxsipuseragent",  # VaxSIP SDK, common in toll-fraud tools
    "pplsip",  # ppl's SIP scanner
    "iwar",  # iWar war-dialer
    "sundayddr",  # sundayddr worm
    "siparmyknife",  # SIP Army Knife fuzzer
    "sipptk",  # SIP pentest toolkit
)


def _scanner_regex(agents: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(a) for a in agents), re.IGNORECASE)


_DEFAULT_SCANNER_RE = _scanner_regex(SCANNER_AGENTS)


def is_scanner(user_agent: str, pattern: re.Pattern[str] = _DEFAULT_SCANNER_RE) -> bool:
    return pattern.search(user_agent) is not None


#: User names longer than this are cut for use as map keys: a spray of 4 KB names must not cost
#: 4 KB per entry. Real user names are far shorter (credentials.py allows 64 characters).
MAX_USER_KEY = 128


#: User-Agent values remembered as not a scanner (the set is emptied when full).
MAX_BENIGN_AGENTS = 1024


def _user_key(user: str) -> str:
    return user if len(user) <= MAX_USER_KEY else user[:MAX_USER_KEY]


def source_host(source: str) -> str:
    """``"192.0.2.1:5060"`` → ``"192.0.2.1"``; ``"[2001:db8::1]:5061"`` → ``"2001:db8::1"``.

    A bare address (no port) is returned as is.
    """
    if source.startswith("["):
        end = source.find("]")
        return source[1:end] if end > 0 else source
    if source.count(":") == 1:
        return source.partition(":")[0]
    return source


@dataclass(frozen=True, slots=True)
class LockoutRule:
    """``threshold`` failures within ``window`` seconds lock for ``lock`` seconds, doubling per
    repeat up to ``max_lock``; the doubling resets after ``forgive_after`` quiet seconds."""

    threshold: int = 5
    window: float = 60.0
    lock: float = 60.0
    max_lock: float = 3600.0
    forgive_after: float = 3600.0

    def __post_init__(self) -> None:
        if self.threshold < 1 or self.window <= 0 or self.lock <= 0:
            raise ValueError("threshold, window and lock must be positive")
        if self.max_lock < self.lock or self.forgive_after < 0:
            raise ValueError("max_lock must be >= lock and forgive_after >= 0")

    def duration(self, strike: int) -> float:
        """Length of the lock number *strike* (0 = first) of a run."""
        if strike >= 64:
            return self.max_lock
        return min(self.lock * (1 << strike), self.max_lock)


@dataclass(frozen=True, slots=True)
class AbuseConfig:
    #: Per source host (FreeSBC-like defaults for users: performance-security.md §5.4).
    source_lockout: LockoutRule = field(default_factory=LockoutRule)
    user_lockout: LockoutRule = field(
        default_factory=lambda: LockoutRule(threshold=10, window=600.0, lock=300.0)
    )
    rate: float = 25.0  # sustained requests/s per source host
    burst: float = 100.0  # bucket size: a NAT'd office booting its phones
    max_sources: int = 16384  # flood-meter entries (LRU)
    max_users: int = 16384  # failure counters per user name (LRU)
    max_locks: int = 4096  # active locks + strike memory, per scope
    max_trusted: int = 16384  # (host, user) pairs exempt from user locks
    trust_ttl: float = 7200.0
    report_interval: float = 60.0  # ≤ 1 flood / scanner event per source per interval
    scanner_agents: tuple[str, ...] = SCANNER_AGENTS
    exempt_networks: tuple[str, ...] = ()  # CIDRs never source-locked

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        caps = (self.max_sources, self.max_users, self.max_locks, self.max_trusted)
        if min(caps) < 1:
            raise ValueError("map caps must be positive")
        for cidr in self.exempt_networks:
            ipaddress.ip_network(cidr, strict=False)  # raises ValueError when malformed


class LockoutTracker:
    """Failure counting and locks for one scope (source hosts or user names).

    Failure times live in an LRU of per-key deques of at most ``threshold`` entries. Locks live
    in a separate insertion-ordered map, so a spray of fresh keys evicts counters, not locks;
    an entry stays after its lock ends to remember the strike count until forgiven.
    """

    __slots__ = ("_failures", "_locks", "max_keys", "max_locks", "rule")

    def __init__(self, rule: LockoutRule, *, max_keys: int, max_locks: int) -> None:
        self.rule = rule
        self.max_keys = max_keys
        self.max_locks = max_locks
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._locks: OrderedDict[str, tuple[float, int]] = OrderedDict()  # key → (until, strike)

    def locked_until(self, key: str, now: float) -> float | None:
        entry = self._locks.get(key)
        if entry is None:
            return None
        until, _ = entry
        if now < until:
            return until
        if now >= until + self.rule.forgive_after:
            del self._locks[key]
        return None

    def fail(self, key: str, now: float) -> tuple[float, int] | None:
        """Count one failure; returns ``(duration, strike)`` if it starts a lock."""
        rule = self.rule
        times = self._failures.get(key)
        if times is None:
            times = deque(maxlen=rule.threshold)
            self._failures[key] = times
            if len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(key)
        times.append(now)
        if len(times) < rule.threshold or now - times[0] > rule.window:
            return None
        times.clear()
        previous = self._locks.pop(key, None)
        strike = 0
        if previous is not None and now < previous[0] + rule.forgive_after:
            strike = previous[1] + 1
        duration = rule.duration(strike)
        self._locks[key] = (now + duration, strike)
        if len(self._locks) > self.max_locks:
            self._locks.popitem(last=False)
        return duration, strike

    def reset(self, key: str) -> None:
        self._failures.pop(key, None)
        self._locks.pop(key, None)

    def __len__(self) -> int:
        return len(self._failures)


class _Source:
    """Flood-meter state of one source host."""

    __slots__ = ("flood_reported", "scanner_reported", "stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp
        self.flood_reported = -1e300
        self.scanner_reported = -1e300


class AbusePolicy:
    """One tenant's abuse defences. Call, in order of cost:

    1. :meth:`check_source` for every message, before parsing (locks, flood meter);
    2. :meth:`check_request` after parsing (scanner User-Agent);
    3. :meth:`check_user` before verifying credentials of user name *user*;
    4. :meth:`auth_failed` / :meth:`auth_succeeded` after verifying.
    """

    def __init__(self, events: EventLog, config: AbuseConfig | None = None) -> None:
        config = config if config is not None else AbuseConfig()
        self.config = config
        self.events = events
        self.sources = LockoutTracker(
            config.source_lockout, max_keys=config.max_sources, max_locks=config.max_locks
        )
        self.users = LockoutTracker(
            config.user_lockout, max_keys=config.max_users, max_locks=config.max_locks
        )
        self._meters: OrderedDict[str, _Source] = OrderedDict()
        self._trusted: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._scanner_re = _scanner_regex(config.scanner_agents)
        #: User-Agent values already found not to be scanners (phones repeat theirs)
        self._benign_agents: set[str] = set()
        self._exempt = tuple(ipaddress.ip_network(c, strict=False) for c in config.exempt_networks)

    # -- 1. per message ------------------------------------------------------------------------

    def check_source(self, source: str, now: float) -> Verdict:
        host = source_host(source)
        if self.sources.locked_until(host, now) is not None:
            return Verdict.LOCKED
        config = self.config
        meters = self._meters
        meter = meters.get(host)
        if meter is None:
            meters[host] = _Source(config.burst - 1.0, now)
            if len(meters) > config.max_sources:
                meters.popitem(last=False)
            return Verdict.ALLOW
        meters.move_to_end(host)
        elapsed = now - meter.stamp
        if elapsed > 0:
            meter.tokens = min(config.burst, meter.tokens + elapsed * config.rate)
        meter.stamp = now  # a clock stepping back must not starve the source
        if meter.tokens >= 1.0:
            meter.tokens -= 1.0
            return Verdict.ALLOW
        if now - meter.flood_reported >= config.report_interval:
            meter.flood_reported = now
            self.events.emit(
                EventKind.FLOOD,
                source=source,
                user=None,
                reason=f"rate>{config.rate:g}/s burst {config.burst:g}",
                at=now,
            )
        return Verdict.DROP

    # -- 2. per parsed request -----------------------------------------------------------------

    def check_request(self, source: str, user_agent: str | None, now: float) -> Verdict:
        if user_agent is None:
            return Verdict.ALLOW
        benign = self._benign_agents
        if user_agent in benign:
            return Verdict.ALLOW
        if self._scanner_re.search(user_agent) is None:
            if len(benign) >= MAX_BENIGN_AGENTS:
                benign.clear()
            benign.add(user_agent)
            return Verdict.ALLOW
        host = source_host(source)
        meter = self._meters.get(host)
        if meter is None or now - meter.scanner_reported >= self.config.report_interval:
            if meter is not None:
                meter.scanner_reported = now
            self.events.emit(
                EventKind.SCANNER_DROPPED,
                source=source,
                user=None,
                reason=f"user-agent {user_agent}",
                at=now,
            )
        return Verdict.DROP

    # -- 3./4. authentication ------------------------------------------------------------------

    def check_user(self, source: str, user: str, now: float) -> Verdict:
        user = _user_key(user)
        if self.users.locked_until(user, now) is None:
            return Verdict.ALLOW
        trusted = self._trusted.get((source_host(source), user))
        if trusted is not None and now - trusted <= self.config.trust_ttl:
            return Verdict.ALLOW
        return Verdict.LOCKED

    def auth_failed(self, source: str, user: str, reason: str, now: float) -> None:
        """Count a failure that could have succeeded (see the module docstring)."""
        self.events.emit(EventKind.AUTH_FAILED, source=source, user=user, reason=reason, at=now)
        host = source_host(source)
        if not self._is_exempt(host):
            locked = self.sources.fail(host, now)
            if locked is not None:
                self._lockout_event("source", source, user, locked, now)
        locked = self.users.fail(_user_key(user), now)
        if locked is not None:
            self._lockout_event("user", source, user, locked, now)

    def auth_succeeded(self, source: str, user: str, now: float) -> None:
        key = (source_host(source), _user_key(user))
        trusted = self._trusted
        trusted[key] = now
        trusted.move_to_end(key)
        if len(trusted) > self.config.max_trusted:
            trusted.popitem(last=False)

    # -- admin ---------------------------------------------------------------------------------

    def reset(self, *, source: str | None = None, user: str | None = None) -> None:
        """Forget failures, locks and strike history (admin reset, lesson §5.1)."""
        if source is not None:
            self.sources.reset(source_host(source))
        if user is not None:
            self.users.reset(_user_key(user))

    # -- helpers -------------------------------------------------------------------------------

    def _is_exempt(self, host: str) -> bool:
        if not self._exempt:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._exempt)

    def _lockout_event(
        self, scope: str, source: str, user: str, locked: tuple[float, int], now: float
    ) -> None:
        duration, strike = locked
        self.events.emit(
            EventKind.LOCKOUT,
            source=source,
            user=user,
            reason=f"{scope} locked {duration:g}s strike {strike + 1}",
            at=now,
        )
