"""Client-side rate limiting: an async token bucket shared by every caller of one host.

Some public APIs ask clients to pace themselves (Scryfall: at most 10 requests
per second, 50-100 ms apart). The bucket is process-wide per host, so a burst of
commands from many users queues here instead of earning the bot a 429 or a ban.
Waiters are served in arrival order: the lock is held while one waits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; ``acquire`` waits for one."""

    def __init__(
        self, rate: float, *, burst: int = 1, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    async def acquire(self) -> float:
        """Take one token, waiting as long as needed; returns the seconds waited in all.

        The wait includes the time queued behind earlier callers, so a trace
        shows the whole delay the pacing caused.
        """
        started = self._clock()
        async with self._lock:
            self._refill()
            if self._tokens < 1:
                await asyncio.sleep((1 - self._tokens) / self.rate)
                self._refill()
            self._tokens = max(0.0, self._tokens - 1)
        return self._clock() - started
