"""The real bot connected to a protocol-level fake Discord, in this process.

Used by ``chatops console``, the integration tests and the benchmarks: nothing
here patches discord.py; the bot talks to the fake over real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bot.client import ChatOpsBot, create_bot
from bot.config import Settings
from bot.sandbox import FakeDiscord

SANDBOX_TOKEN = "sandbox-token"
READY_TIMEOUT_S = 15.0
SANDBOX_READY_TIMEOUT_S = 0.1


@asynccontextmanager
async def connected_bot(
    settings: Settings, fake: FakeDiscord, *, token: str = SANDBOX_TOKEN, **options: Any
) -> AsyncIterator[ChatOpsBot]:
    """Start the bot against ``fake`` and yield it once its gateway is ready.

    ``options`` go to ``commands.Bot`` (the sandbox shortens ``guild_ready_timeout``,
    which otherwise delays ``on_ready`` by 2 s after the last GUILD_CREATE).
    """
    settings = settings.model_copy(
        update={"discord_api_base": fake.api_base, "discord_gateway_url": None}
    )
    bot = create_bot(settings, **options)
    task = asyncio.create_task(bot.start(token), name="sandbox-bot")
    ready = asyncio.create_task(bot.wait_until_ready())
    try:
        done, _ = await asyncio.wait(
            {task, ready}, timeout=READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        if task in done:
            task.result()
            raise RuntimeError("the bot stopped before it was ready")
        if ready not in done:
            raise TimeoutError(f"the bot was not ready within {READY_TIMEOUT_S:.0f}s")
        fake.use_commands(lambda: tree_payload(bot))
        yield bot
    finally:
        ready.cancel()
        await bot.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def tree_payload(bot: ChatOpsBot) -> list[dict[str, Any]]:
    """The bot's slash commands as ``tree.sync`` would PUT them (the fake needs no sync)."""
    return [command.to_dict(bot.tree) for command in bot.tree.get_commands()]


@asynccontextmanager
async def sandbox(
    settings: Settings, *, guild_id: int | None = None, **options: Any
) -> AsyncIterator[tuple[FakeDiscord, ChatOpsBot]]:
    """A fresh fake Discord on a free local port (its first guild ``guild_id``, if given),
    with the bot connected to it; ``options`` go to the bot (e.g. ``azure``)."""
    async with (
        FakeDiscord(first_guild_id=guild_id) as fake,
        connected_bot(
            settings, fake, guild_ready_timeout=SANDBOX_READY_TIMEOUT_S, **options
        ) as bot,
    ):
        yield fake, bot
