"""Abuse limits: bot-wide bounds for every command, per-command ones for commands that call out.

Bot-wide: how fast one user may fire commands at all, how long an argument may
be, and how many expensive commands (external calls, Azure) run at once.
Per command: discord.py fixes a command's cooldown when its decorator runs, at
import time; ours come from ``Settings``. A cog instance owns copies of its
commands, so setting the limits on those copies at construction is per instance
and safe. Every limit surfaces as a discord.py error, so ``classify``
(``commands/toolkit/failures.py``) maps it to ``cooldown`` or ``bad_input``.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from discord.ext import commands

from commands.toolkit.failures import Throttled, UserFacingError
from telemetry.schema import Outcome

# ``command.extras`` key: this command calls out, so it counts against the bot-wide
# bound on concurrent expensive commands (``ConcurrencyBound``).
EXPENSIVE = "expensive"


@dataclass(frozen=True)
class Limits:
    """``rate`` uses per user every ``per`` seconds; ``concurrency`` calls at once per command."""

    rate: int = 3
    per: float = 10.0
    concurrency: int = 4

    def cooldown(self) -> commands.CooldownMapping[commands.Context[Any]]:
        return commands.CooldownMapping(
            commands.Cooldown(self.rate, self.per), commands.BucketType.user
        )

    def max_concurrency(self) -> commands.MaxConcurrency:
        return commands.MaxConcurrency(
            self.concurrency, per=commands.BucketType.default, wait=False
        )


def apply_limits(limits: Limits, targets: Iterable[commands.Command[Any, ..., Any]]) -> None:
    """Give each command its own cooldown buckets and concurrency bound; mark it expensive."""
    for command in targets:
        command.extras[EXPENSIVE] = True
        command._buckets = limits.cooldown()
        command._max_concurrency = limits.max_concurrency()


# How many recent message/interaction ids the rate limit remembers as counted,
# and how many users it remembers as told in their current window.
COUNTED_IDS = 1024
_NO_SLOT: AbstractAsyncContextManager[None] = nullcontext()
TOLD_USERS = 4096
# Users with a live window the limit keeps; past it, the least recently active one's
# window is forgotten early (a backstop: windows that ended are dropped first).
ACTIVE_USERS = 65_536


class UserRateLimit:
    """A bot-wide check: at most ``rate`` commands per ``per`` seconds per user.

    A message or interaction counts once however often discord.py asks: for a
    hybrid command invoked by slash, every ``can_run`` (``/help`` asks it of
    each command) runs the bot's "call once" checks again.

    A throttled user is told once per window (``Throttled.notify``); later
    throttled messages in that window get no reply, so the bot posts at most
    ``rate + 1`` messages per user per window however many commands arrive.
    An interaction is always told (privately): Discord shows "The application
    did not respond" for one left unanswered, and the answer posts nothing in
    the channel.
    """

    def __init__(self, rate: int, per: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._per = per
        # user id -> (their window, when they last used it), least recently active first
        self._buckets: OrderedDict[int, tuple[commands.Cooldown, float]] = OrderedDict()
        self._clock = clock
        self._counted: OrderedDict[int, None] = OrderedDict()
        # user id -> when the window in which they were told ends (monotonic seconds)
        self._told_until: OrderedDict[int, float] = OrderedDict()

    async def __call__(self, ctx: commands.Context[Any]) -> bool:
        if ctx.message.id in self._counted:
            return True
        self._counted[ctx.message.id] = None
        if len(self._counted) > COUNTED_IDS:
            self._counted.popitem(last=False)
        now = self._clock()
        bucket = self._bucket(ctx.author.id, now)
        retry_after = bucket.update_rate_limit(now)
        if retry_after:
            notify = self._tell(ctx.author.id, now, retry_after) or ctx.interaction is not None
            raise Throttled(bucket, retry_after, notify=notify)
        return True

    def _bucket(self, user_id: int, now: float) -> commands.Cooldown:
        """``user_id``'s window, as discord.py's ``CooldownMapping`` keeps it per user.

        That mapping walks every user's bucket on every command to drop ended
        windows, which costs a busy bot a scan of all its recent users per message;
        kept in order of last use, only the ended ones at the old end are looked at.
        """
        buckets = self._buckets
        entry = buckets.pop(user_id, None)
        bucket = entry[0] if entry is not None else commands.Cooldown(self._rate, self._per)
        while buckets:
            oldest, (_, last_used) = next(iter(buckets.items()))
            if now <= last_used + self._per and len(buckets) < ACTIVE_USERS:
                break
            del buckets[oldest]
        buckets[user_id] = (bucket, now)
        return bucket

    def _tell(self, user_id: int, now: float, retry_after: float) -> bool:
        """Whether to tell ``user_id`` now: not told yet in the window ending in ``retry_after``."""
        if self._told_until.get(user_id, 0.0) > now:
            return False
        self._told_until[user_id] = now + retry_after
        self._told_until.move_to_end(user_id)
        if len(self._told_until) > TOLD_USERS:
            self._told_until.popitem(last=False)
        return True


def check_argument_length(args: str, limit: int) -> None:
    """Refuse argument text longer than ``limit`` before any command sees it."""
    if len(args) > limit:
        raise UserFacingError(
            f"That's too long: arguments are limited to {limit} characters.", Outcome.BAD_INPUT
        )


def is_expensive(command: commands.Command[Any, ..., Any]) -> bool:
    """Marked ``extras={EXPENSIVE: True}``; groups pass it down."""
    while command is not None:
        if command.extras.get(EXPENSIVE):
            return True
        command = command.parent  # type: ignore[assignment]
    return False


class ConcurrencyBound:
    """At most ``limit`` expensive commands at once across the bot; the rest are told to wait."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._semaphore = asyncio.Semaphore(limit)

    def slot(self, command: commands.Command[Any, ..., Any]) -> AbstractAsyncContextManager[None]:
        """A slot for an expensive command; for any other, a no-op shared by all (every
        message takes this path, and an ``@asynccontextmanager`` costs a generator)."""
        return self._expensive_slot() if is_expensive(command) else _NO_SLOT

    @asynccontextmanager
    async def _expensive_slot(self) -> AsyncIterator[None]:
        if self._semaphore.locked():
            raise commands.MaxConcurrencyReached(self.limit, commands.BucketType.default)
        async with self._semaphore:
            yield
