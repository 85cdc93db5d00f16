"""The heap is settled once start-up is over: garbage collected, the rest frozen."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator

import pytest

from core import heap


class Node:
    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Settling freezes the test process's own heap: thaw it afterwards."""
    yield
    gc.unfreeze()


def test_settle_collects_start_up_garbage_and_freezes_what_lives(unfrozen: None) -> None:
    kept = Node()
    garbage = Node()  # a cycle: only the collector frees it
    gone = weakref.ref(garbage)
    del garbage
    assert gone() is not None

    frozen = heap.settle()

    assert gone() is None  # collected, not frozen forever
    assert frozen == gc.get_freeze_count() > 0
    # A full collection no longer walks what start-up left alive.
    assert frozen > len(gc.get_objects())
    assert kept.me is kept


def test_settle_after_waits_for_start_up(unfrozen: None) -> None:
    release = threading.Event()
    startup = threading.Thread(target=release.wait)
    startup.start()
    settling = heap.settle_after(startup)
    settling.join(0.2)
    assert settling.is_alive() and gc.get_freeze_count() == 0
    release.set()
    settling.join(30)
    assert not settling.is_alive()
    assert gc.get_freeze_count() > 0
