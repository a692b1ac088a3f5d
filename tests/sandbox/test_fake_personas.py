"""The fake seats anyone the console asks for: given ids, a guild joined later, new roles.

An unmodified discord.py bot must see them exactly as it would see Discord's:
the guild in its cache after GUILD_CREATE, the roles after GUILD_ROLE_CREATE,
and the member's roles and permissions on the next message.
"""

from __future__ import annotations

import asyncio
from typing import Any

import discord
from discord.ext import commands

from bot.sandbox import FakeDiscord
from bot.sandbox.personas import Persona, seat
from tests.helpers.sandbox_chat import until


async def authored(bot: commands.Bot, fake: FakeDiscord, **kwargs: Any) -> discord.Message:
    """The message as the bot parsed it."""
    seen: asyncio.Future[discord.Message] = asyncio.get_running_loop().create_future()

    async def on_message(message: discord.Message) -> None:
        if not seen.done():
            seen.set_result(message)

    bot.add_listener(on_message)
    try:
        fake.send_message("hello", **kwargs)
        return await asyncio.wait_for(seen, 5)
    finally:
        bot.remove_listener(on_message)


async def test_a_guild_joined_later_and_new_roles_reach_the_bot(
    fake: FakeDiscord, plain_bot: commands.Bot
) -> None:
    persona = Persona(user_id=123456789012345678, role_ids=(987654321098765432,), guild_id=42)
    where = seat(fake, persona)
    await until(lambda: plain_bot.get_guild(42) is not None)
    message = await authored(plain_bot, fake, author=where.user, channel_id=where.channel_id)
    author = message.author
    assert isinstance(author, discord.Member)
    assert author.id == 123456789012345678
    assert author.guild.id == 42
    assert [r.id for r in author.roles if not r.is_default()] == [987654321098765432]
    assert not author.guild_permissions.administrator


async def test_admin_holds_the_guild_s_administrator_role_and_roles_can_be_taken_away(
    fake: FakeDiscord, plain_bot: commands.Bot
) -> None:
    where = seat(fake, Persona(user_id=555, role_ids=(777,), admin=True, guild_id=fake.guild.id))
    message = await authored(plain_bot, fake, author=where.user, channel_id=where.channel_id)
    assert isinstance(message.author, discord.Member)
    assert message.author.guild_permissions.administrator

    where = seat(fake, Persona(user_id=555, guild_id=fake.guild.id))
    message = await authored(plain_bot, fake, author=where.user, channel_id=where.channel_id)
    assert isinstance(message.author, discord.Member)
    assert not message.author.guild_permissions.administrator
    assert [r for r in message.author.roles if not r.is_default()] == []
