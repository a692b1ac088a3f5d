"""The token bucket paces callers across tasks, in arrival order."""

from __future__ import annotations

import asyncio
import time

import pytest

from commands.toolkit.token_bucket import TokenBucket


async def test_eleven_acquires_at_ten_per_second_take_a_second() -> None:
    bucket = TokenBucket(10, burst=1)
    started = time.monotonic()
    times: list[float] = []

    async def one() -> None:
        await bucket.acquire()
        times.append(time.monotonic() - started)

    await asyncio.gather(*(one() for _ in range(11)))
    assert times == sorted(times)
    assert times[-1] >= 0.95
    assert times[0] < 0.05


async def test_a_burst_is_served_at_once() -> None:
    bucket = TokenBucket(10, burst=5)
    started = time.monotonic()
    for _ in range(5):
        assert await bucket.acquire() < 0.01
    assert time.monotonic() - started < 0.05


def test_nonsense_rates_are_refused() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0)
