"""Abuse policy: flood meter, scanner table, lockout with exponential back-off, bounded maps."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbx_runtime.events import EventKind, EventLog
from pbx_runtime.policy import (
    SCANNER_AGENTS,
    AbuseConfig,
    AbusePolicy,
    LockoutRule,
    LockoutTracker,
    Verdict,
    is_scanner,
    source_host,
)

SRC = "192.0.2.1:5060"
T0 = 1_700_000_000.0


def policy(**config: object) -> tuple[AbusePolicy, EventLog]:
    log = EventLog("acme")
    return AbusePolicy(log, AbuseConfig(**config)), log  # type: ignore[arg-type]


# -- helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "host"),
    [
        ("192.0.2.1:5060", "192.0.2.1"),
        ("[2001:db8::1]:5061", "2001:db8::1"),
        ("192.0.2.1", "192.0.2.1"),
        ("2001:db8::1", "2001:db8::1"),
        ("[broken", "[broken"),
    ],
)
def test_source_host(source: str, host: str) -> None:
    assert source_host(source) == host


# -- flood meter -----------------------------------------------------------------------------


def test_token_bucket_allows_burst_then_rate() -> None:
    p, log = policy(rate=10.0, burst=5.0)
    verdicts = [p.check_source(SRC, T0) for _ in range(7)]
    assert verdicts == [Verdict.ALLOW] * 5 + [Verdict.DROP] * 2
    assert p.check_source(SRC, T0 + 0.11) is Verdict.ALLOW  # 1 token refilled in 0.1 s
    assert p.check_source(SRC, T0 + 0.11) is Verdict.DROP
    assert [p.check_source(SRC, T0 + 10) for _ in range(6)].count(Verdict.ALLOW) == 5  # capped
    assert p.check_source("192.0.2.2:5060", T0) is Verdict.ALLOW  # other sources unaffected
    (event,) = log.drain()  # one flood event per report_interval, not one per packet
    assert (event.kind, event.source) == (EventKind.FLOOD, SRC)


def test_port_does_not_escape_the_meter() -> None:
    p, _ = policy(rate=1.0, burst=2.0)
    assert [p.check_source(f"192.0.2.1:{port}", T0) for port in (1, 2, 3)] == [
        Verdict.ALLOW,
        Verdict.ALLOW,
        Verdict.DROP,
    ]


def test_flood_events_are_rate_limited_per_source() -> None:
    p, log = policy(rate=1.0, burst=1.0, report_interval=60.0)
    for second in range(0, 200):
        for _ in range(5):
            p.check_source(SRC, T0 + second)
    assert len(log.drain()) == 4  # at 0, 60, 120, 180 s


def test_clock_stepping_back_does_not_starve_a_source() -> None:
    p, _ = policy(rate=10.0, burst=1.0)
    assert p.check_source(SRC, T0) is Verdict.ALLOW
    assert p.check_source(SRC, T0 - 3600) is Verdict.DROP
    assert p.check_source(SRC, T0 - 3599) is Verdict.ALLOW


def test_source_spray_is_bounded() -> None:
    p, _ = policy(max_sources=100)
    for i in range(5000):
        p.check_source(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}:5060", T0)
    assert len(p._meters) == 100


# -- scanners --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "agent",
    [
        "friendly-scanner",
        "sipvicious/0.3.4",
        "SIPVicious",
        "sipcli/v1.8",
        "sip-scan",
        "SIPScan 1.0",
        "VaxSIPUserAgent/3.1",
        "pplsip",
        "iWar",
        "sundayddr",
        "Asterisk PBX (friendly-scanner)",
    ],
)
def test_scanner_user_agents_are_dropped(agent: str) -> None:
    assert is_scanner(agent)
    p, log = policy()
    p.check_source(SRC, T0)
    assert p.check_request(SRC, agent, T0) is Verdict.DROP
    (event,) = log.drain()
    assert event.kind is EventKind.SCANNER_DROPPED and agent in event.reason


@pytest.mark.parametrize(
    "agent",
    [None, "Yealink SIP-T46S 66.86.0.15", "baresip v1.0.0", "Linphone/5.1", "sipsak 0.9.8"],
)
def test_ordinary_user_agents_pass(agent: str | None) -> None:
    p, log = policy()
    assert p.check_request(SRC, agent, T0) is Verdict.ALLOW
    assert log.drain() == []


def test_scanner_table_is_lower_case_substrings() -> None:
    assert all(agent == agent.lower() for agent in SCANNER_AGENTS)
    p, _ = policy(scanner_agents=("evil-ua",))
    assert p.check_request(SRC, "friendly-scanner", T0) is Verdict.ALLOW
    assert p.check_request(SRC, "EVIL-UA 1.0", T0) is Verdict.DROP


def test_scanner_events_are_rate_limited() -> None:
    p, log = policy()
    p.check_source(SRC, T0)
    for i in range(50):
        p.check_request(SRC, "friendly-scanner", T0 + i)
    assert len(log.drain()) == 1


# -- lockout ---------------------------------------------------------------------------------


def fail(p: AbusePolicy, n: int, now: float, source: str = SRC, user: str = "1001") -> None:
    for _ in range(n):
        p.auth_failed(source, user, "bad_response", now)


def test_five_failures_in_sixty_seconds_lock_the_source_for_sixty() -> None:
    p, log = policy()
    fail(p, 4, T0)
    assert p.check_source(SRC, T0) is Verdict.ALLOW
    fail(p, 1, T0 + 59)
    assert p.check_source(SRC, T0 + 59) is Verdict.LOCKED
    assert p.check_source("192.0.2.1:7777", T0 + 60) is Verdict.LOCKED  # any port
    assert p.check_source(SRC, T0 + 118.9) is Verdict.LOCKED
    assert p.check_source(SRC, T0 + 119) is Verdict.ALLOW
    events = log.drain()
    assert [str(e.kind) for e in events] == ["auth_failed"] * 5 + ["lockout"]
    assert all(e.tenant == "acme" and e.user == "1001" for e in events)


def test_failures_spread_over_more_than_the_window_do_not_lock() -> None:
    p, _ = policy()
    for i in range(20):
        fail(p, 1, T0 + i * 16)  # 4 per minute
    assert p.check_source(SRC, T0 + 400) is Verdict.ALLOW


def test_repeat_lockouts_double_up_to_the_cap_then_are_forgiven() -> None:
    rule = LockoutRule(threshold=2, window=10, lock=60, max_lock=300, forgive_after=1000)
    p, log = policy(source_lockout=rule, user_lockout=LockoutRule(threshold=10**6))
    now = T0
    durations = []
    for _ in range(5):
        fail(p, 2, now)
        until = p.sources.locked_until("192.0.2.1", now)
        assert until is not None
        durations.append(until - now)
        now = until + 1
    assert durations == [60, 120, 240, 300, 300]
    now += 1000  # quiet for forgive_after after the last lock ended
    fail(p, 2, now)
    assert p.sources.locked_until("192.0.2.1", now) == now + 60
    reasons = [e.reason for e in log.drain() if e.kind is EventKind.LOCKOUT]
    assert reasons[:2] == ["source locked 60s strike 1", "source locked 120s strike 2"]


def test_user_lock_counts_across_sources_and_spares_trusted_pairs() -> None:
    p, _ = policy(user_lockout=LockoutRule(threshold=3, lock=9000, max_lock=9000))
    p.auth_succeeded("198.51.100.5:5060", "1001", T0)
    for i in range(3):
        p.auth_failed(f"203.0.113.{i}:5060", "1001", "bad_response", T0)
    assert p.check_user("203.0.113.99:5060", "1001", T0) is Verdict.LOCKED
    assert p.check_user("198.51.100.5:6000", "1001", T0) is Verdict.ALLOW  # its own phone
    assert p.check_user("203.0.113.99:5060", "1002", T0) is Verdict.ALLOW
    assert p.check_user("198.51.100.5:5060", "1001", T0 + 7201) is Verdict.LOCKED  # stale trust
    # No source reached 5 failures, so no source is locked.
    assert all(p.check_source(f"203.0.113.{i}:5060", T0) is Verdict.ALLOW for i in range(3))


def test_unknown_user_names_lock_like_known_ones() -> None:
    p, _ = policy(user_lockout=LockoutRule(threshold=2))
    fail(p, 2, T0, user="no-such-user")
    assert p.check_user(SRC, "no-such-user", T0) is Verdict.LOCKED


def test_exempt_networks_are_never_source_locked() -> None:
    p, log = policy(exempt_networks=("192.0.2.0/24", "2001:db8::/32"))
    fail(p, 50, T0)
    fail(p, 50, T0, source="[2001:db8::7]:5060", user="1002")
    assert p.check_source(SRC, T0) is Verdict.ALLOW
    assert p.check_source("[2001:db8::7]:5060", T0) is Verdict.ALLOW
    fail(p, 5, T0, source="198.51.100.1:5060", user="x")
    assert p.check_source("198.51.100.1:5060", T0) is Verdict.LOCKED
    # Users are still locked (lockout events name the user).
    assert p.check_user(SRC, "1001", T0) is Verdict.LOCKED
    assert any(e.reason.startswith("user locked") for e in log.drain())


def test_invalid_configuration() -> None:
    with pytest.raises(ValueError):
        AbuseConfig(exempt_networks=("not-a-network",))
    with pytest.raises(ValueError):
        AbuseConfig(rate=0)
    with pytest.raises(ValueError):
        AbuseConfig(max_locks=0)
    with pytest.raises(ValueError):
        LockoutRule(threshold=0)
    with pytest.raises(ValueError):
        LockoutRule(lock=60, max_lock=30)


def test_admin_reset_forgets_locks_and_strikes() -> None:
    p, _ = policy()
    fail(p, 5, T0)
    assert p.check_source(SRC, T0) is Verdict.LOCKED
    p.reset(source=SRC, user="1001")
    assert p.check_source(SRC, T0) is Verdict.ALLOW
    fail(p, 5, T0 + 1)
    assert p.sources.locked_until("192.0.2.1", T0 + 1) == T0 + 61  # strike count restarted


def test_failure_counters_and_locks_are_bounded() -> None:
    tracker = LockoutTracker(LockoutRule(threshold=1), max_keys=50, max_locks=10)
    for i in range(1000):
        tracker.fail(f"user{i}", T0)
    assert len(tracker) == 50 and len(tracker._locks) == 10
    p, _ = policy(max_trusted=20)
    for i in range(100):
        p.auth_succeeded(SRC, f"u{i}", T0)
    assert len(p._trusted) == 20


def test_a_spray_of_new_keys_does_not_evict_locks() -> None:
    tracker = LockoutTracker(LockoutRule(threshold=2), max_keys=10, max_locks=100)
    tracker.fail("attacker", T0)
    tracker.fail("attacker", T0)
    for i in range(1000):
        tracker.fail(f"spray{i}", T0)
    assert tracker.locked_until("attacker", T0 + 1) == T0 + 60


# -- Hypothesis: back-off against a reference model -------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    threshold=st.integers(1, 6),
    window=st.floats(1, 120),
    lock=st.floats(1, 100),
    factor=st.integers(1, 64),
    forgive=st.floats(0, 2000),
    gaps=st.lists(st.floats(0, 400, allow_nan=False), min_size=1, max_size=60),
)
def test_lockout_backoff_matches_a_reference_model(
    threshold: int, window: float, lock: float, factor: int, forgive: float, gaps: list[float]
) -> None:
    rule = LockoutRule(
        threshold=threshold, window=window, lock=lock, max_lock=lock * factor, forgive_after=forgive
    )
    tracker = LockoutTracker(rule, max_keys=10, max_locks=10)
    now = T0
    recent: list[float] = []
    lock_until: float | None = None
    strike = -1
    for gap in gaps:
        now += gap
        if lock_until is not None and now < lock_until:
            assert tracker.locked_until("k", now) == lock_until
            continue  # a locked key is dropped before it can fail again
        recent = [*recent, now][-threshold:]
        result = tracker.fail("k", now)
        if len(recent) == threshold and now - recent[0] <= window:
            recent = []
            forgiven = lock_until is None or now >= lock_until + forgive
            strike = 0 if forgiven else strike + 1
            expected = min(lock * 2**strike, lock * factor)
            assert result == (expected, strike)
            assert lock <= expected <= rule.max_lock
            lock_until = now + expected
            assert tracker.locked_until("k", now) == lock_until
        else:
            assert result is None


def test_long_user_names_are_clipped_as_map_keys() -> None:
    p, log = policy(user_lockout=LockoutRule(threshold=2))
    base = "u" * 200
    p.auth_failed(SRC, base + "a", "unknown_user", T0)
    p.auth_failed(SRC, base + "b", "unknown_user", T0)  # same 128-character key
    assert p.check_user(SRC, base + "c", T0) is Verdict.LOCKED
    assert all(len(key) <= 128 for key in p.users._failures)
    assert all(len(e.user or "") <= 129 for e in log.drain())
