"""Per-user cooldowns and per-command concurrency for commands that call out.

discord.py fixes a command's cooldown when its decorator runs, at import time;
ours come from ``Settings``. A cog instance owns copies of its commands, so
setting the limits on those copies at construction is per instance and safe.
Both limits surface as ``CommandOnCooldown`` / ``MaxConcurrencyReached``, which
``bot/errors.py`` maps to ``app.outcome=cooldown``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from discord.ext import commands

# ``command.extras`` key: this command calls out, so it counts against the bot-wide
# bound on concurrent expensive commands (bot/limits.py).
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
