"""Core commands: ping, about (help is discord.py's own, see commands/help.py).

Hybrid commands: each serves ``!name`` and ``/name`` from one definition.
"""

from __future__ import annotations

import math
import platform
import time
from typing import Any

import discord
from discord.ext import commands

from commands.toolkit.hybrid import hybrid_command
from commands.toolkit.replies import reply


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if math.isfinite(seconds) else "n/a"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [f"{days}d"] if days else []
    return " ".join([*parts, f"{hours}h", f"{minutes}m", f"{secs}s"])


class Core(commands.Cog):
    """Is the bot alive, and what is it?"""

    def __init__(
        self, bot: commands.Bot, *, version: str, commit: str | None, started_at: float
    ) -> None:
        self.bot = bot
        self.version = version
        self.commit = commit
        self.started_at = started_at

    @hybrid_command(help="Gateway heartbeat and REST round-trip latency.")
    async def ping(self, ctx: commands.Context[Any]) -> None:
        started = time.perf_counter()
        await ctx.typing()
        rest = time.perf_counter() - started
        await reply(ctx, f"Pong! gateway {_ms(self.bot.latency)}, REST {_ms(rest)}")

    @hybrid_command(help="Version, commit, uptime and runtime of this bot.")
    async def about(self, ctx: commands.Context[Any]) -> None:
        commit = f" ({self.commit[:12]})" if self.commit else ""
        uptime = _duration(time.monotonic() - self.started_at)
        await reply(
            ctx,
            f"chatops-bot {self.version}{commit}, up {uptime}; "
            f"Python {platform.python_version()}, discord.py {discord.__version__}",
        )
