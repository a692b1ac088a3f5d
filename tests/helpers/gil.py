"""How much another Python thread ran during a call: proof that the call released the GIL."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def ticks_during(call: Callable[[], T]) -> tuple[T, int]:
    """``call()``'s result, and how many times another thread ran meanwhile.

    The switch interval is raised for the call, so the other thread (which gives
    the GIL up after every tick, never by force) runs only if the call releases it.
    """
    ticks = 0
    stop = threading.Event()

    def other() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0)

    interval = sys.getswitchinterval()
    thread = threading.Thread(target=other)
    try:
        sys.setswitchinterval(100.0)
        thread.start()
        before = ticks
        result = call()
        return result, ticks - before
    finally:
        stop.set()
        if thread.is_alive():
            thread.join()
        sys.setswitchinterval(interval)
