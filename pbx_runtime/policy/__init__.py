"""Policy decisions (abuse defences, later fraud controls): pure functions of input and ``now``."""

from .abuse import (
    SCANNER_AGENTS,
    AbuseConfig,
    AbusePolicy,
    LockoutRule,
    LockoutTracker,
    Verdict,
    is_scanner,
    source_host,
)

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
