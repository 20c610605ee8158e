"""The serving process's garbage-collector policy (pbx_runtime.transport.collector)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from pbx_runtime.transport import collector


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def installed() -> Iterator[None]:
    collector.install()
    try:
        yield
    finally:
        collector.uninstall()


def test_survivors_of_a_collection_are_frozen(installed: None) -> None:
    assert gc.get_threshold() == collector.THRESHOLDS
    frozen = gc.get_freeze_count()
    kept = [Node() for _ in range(100)]
    gc.collect(0)
    assert gc.get_freeze_count() >= frozen + 100
    assert not any(o is kept[0] for o in gc.get_objects())  # out of every generation's sight


def test_a_cycle_among_frozen_objects_waits_for_the_full_collection(installed: None) -> None:
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    gc.collect(0)  # both survive (still referenced here) and are frozen
    del a, b
    gc.collect()
    assert gone() is not None  # frozen: no ordinary collection looks at it
    assert collector.collect_everything() >= 2
    assert gone() is None


def test_uninstall_restores_the_defaults() -> None:
    collector.install()
    collector.uninstall()
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0
    gc.collect(0)
    assert gc.get_freeze_count() == 0
