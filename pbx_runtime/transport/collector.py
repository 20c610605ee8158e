"""The serving process's garbage-collector policy.

Reference counting frees nearly everything the runtime allocates: at 3,000 REGISTER/s each
young collection found 0 objects to free. But every collection walks all the objects of its
generations, and transactions wait out Timer J/K for 32 s over UDP, so the older generations
hold millions of live objects under load. A full collection then stalled the process for
1.0 s: every phone that sent a request during that second retransmitted it (T1 = 500 ms).

So after each collection what survived it is frozen: moved to the permanent generation, out
of every later collection's sight. Reference counting still frees frozen objects. Only a
reference cycle formed among frozen objects would outlive its use; a full collection of
everything, every :data:`FULL_INTERVAL` seconds, bounds what it can hold.
"""

from __future__ import annotations

import gc
from typing import Final

__all__ = ["FULL_INTERVAL", "THRESHOLDS", "collect_everything", "install", "uninstall"]

#: CPython's default is 700, 10, 10: with it a collection ran every couple of requests.
THRESHOLDS: Final = (100_000, 50, 50)
#: Seconds between full collections of the frozen heap (see the module docstring).
FULL_INTERVAL: Final = 600.0


def install() -> None:
    """Freeze what start-up built (configuration, credentials: never garbage), raise the
    thresholds and freeze the survivors of every collection from now on."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    if _freeze_survivors not in gc.callbacks:
        gc.callbacks.append(_freeze_survivors)


def uninstall() -> None:
    """Undo :func:`install` (tests); frozen objects return to the oldest generation."""
    if _freeze_survivors in gc.callbacks:
        gc.callbacks.remove(_freeze_survivors)
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)


def collect_everything() -> int:
    """Collect the whole heap, frozen objects included, and freeze what remains.

    Returns the number of unreachable objects found (those of reference cycles).
    """
    gc.unfreeze()
    found = gc.collect()
    gc.freeze()
    return found


def _freeze_survivors(phase: str, info: dict[str, int]) -> None:
    if phase == "stop":
        gc.freeze()
