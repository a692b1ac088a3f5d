"""``chatops sync-commands``: register the slash commands with Discord, on request only.

Discord rate-limits command registration (a bulk overwrite per scope) and
propagates global changes slowly, so syncing on every start would burn that
budget for nothing: the operator syncs after changing commands. This logs in
over REST (which runs ``setup_hook``, so every cog and the commands file are
loaded exactly as ``chatops run`` would) and opens no gateway.
"""

from __future__ import annotations

import discord

from bot.client import create_bot
from bot.config import Settings


async def sync_commands(
    settings: Settings, token: str, guild_id: int | None = None, *, clear: bool = False
) -> list[discord.app_commands.AppCommand]:
    """Overwrite the application's global commands, or one guild's, with the bot's tree.

    For a guild the global commands are copied there first: that is how a
    test server gets new commands at once while global ones take time to spread.
    Once the global ones have spread, that guild lists each command twice (its
    copy and the global one): ``clear`` overwrites the guild's with none.
    """
    bot = create_bot(settings)
    try:
        await bot.login(token)
        guild = discord.Object(id=guild_id) if guild_id is not None else None
        if clear:
            if guild is None:
                raise ValueError("clear applies to one guild's commands")
            bot.tree.clear_commands(guild=guild)
        elif guild is not None:
            bot.tree.copy_global_to(guild=guild)
        return await bot.tree.sync(guild=guild)
    finally:
        await bot.close()
