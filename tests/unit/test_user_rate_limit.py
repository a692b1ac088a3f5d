"""The bot-wide per-user limit: who is throttled, and who is told."""

from __future__ import annotations

from itertools import count
from types import SimpleNamespace
from typing import Any

from commands.toolkit.failures import Throttled
from commands.toolkit.limits import UserRateLimit

_ids = count(1)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def context(user: int, *, interaction: object = None) -> Any:
    """What the limit reads of a ``commands.Context``: the message, its author, any interaction."""
    author = SimpleNamespace(id=user)
    return SimpleNamespace(
        message=SimpleNamespace(id=next(_ids), author=author),
        author=author,
        interaction=interaction,
    )


async def verdict(limit: UserRateLimit, ctx: Any) -> str:
    try:
        await limit(ctx)
    except Throttled as throttled:
        return "told" if throttled.notify else "quiet"
    return "ok"


async def test_a_throttled_user_is_told_once_in_each_window() -> None:
    clock = Clock()
    limit = UserRateLimit(2, 10.0, clock=clock)
    first = [await verdict(limit, context(1)) for _ in range(5)]
    clock.now += 10.5
    second = [await verdict(limit, context(1)) for _ in range(4)]
    assert first == ["ok", "ok", "told", "quiet", "quiet"]
    assert second == ["ok", "ok", "told", "quiet"]


async def test_being_told_is_per_user() -> None:
    limit = UserRateLimit(1, 10.0, clock=Clock())
    verdicts = [await verdict(limit, context(user)) for user in (1, 1, 2, 2, 1, 2)]
    assert verdicts == ["ok", "told", "ok", "told", "quiet", "quiet"]


async def test_an_interaction_is_always_told() -> None:
    limit = UserRateLimit(1, 10.0, clock=Clock())
    slash = [await verdict(limit, context(1, interaction=object())) for _ in range(4)]
    assert slash == ["ok", "told", "told", "told"]
    assert await verdict(limit, context(1)) == "quiet"


async def test_windows_that_ended_are_forgotten_and_live_ones_kept() -> None:
    """Memory follows the users active within one window, not everyone ever seen."""
    clock = Clock()
    limit = UserRateLimit(1, 10.0, clock=clock)
    for user in range(100):
        assert await verdict(limit, context(user)) == "ok"
    clock.now += 9.0
    assert await verdict(limit, context(7)) == "told"  # still inside their window
    clock.now += 1.5  # every window has ended; user 7 was active 1.5 s ago
    assert await verdict(limit, context(1000)) == "ok"
    assert sorted(limit._buckets) == [7, 1000]
