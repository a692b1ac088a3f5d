"""Every reply the bot sends goes through ``reply``: one ``discord.send`` span each.

The span records the text sent (truncated), and its HTTP POST to Discord is a
child from the aiohttp instrumentation, so Discord's rate limiting shows up in
the trace. Mentions never ping: the bot's default is ``AllowedMentions.none()``
and each send passes it again.
"""

from __future__ import annotations

from typing import Any

import discord
from discord.ext import commands

from telemetry.schema import RESPONSE
from telemetry.spans import record_response, send_span

MESSAGE_MAX_CHARS = 2000
NO_MENTIONS = discord.AllowedMentions.none()


def fit(text: str, limit: int = MESSAGE_MAX_CHARS) -> str:
    """Cut text to what Discord accepts in one message."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def describe(content: str | None, embed: discord.Embed | None) -> str:
    """The text a user sees, for ``app.response``: content, else the embed's title."""
    if content:
        return content
    if embed is not None:
        return " ".join(part for part in (embed.title, embed.description) if part)
    return ""


async def reply(
    ctx: commands.Context[Any],
    content: str | None = None,
    *,
    embed: discord.Embed | None = None,
    file: discord.File | None = None,
    view: discord.ui.View | None = None,
) -> discord.Message:
    """Answer the message that invoked ``ctx``, as a reply that pings no one."""
    text = fit(content) if content else None
    with send_span() as span:
        record_response(span, describe(text, embed))
        kwargs: dict[str, Any] = {
            "content": text,
            "allowed_mentions": NO_MENTIONS,
            "reference": ctx.message.to_reference(fail_if_not_exists=False),
        }
        if embed is not None:
            kwargs["embed"] = embed
        if file is not None:
            kwargs["file"] = file
        if view is not None:
            kwargs["view"] = view
        return await ctx.send(**kwargs)


async def send_to(
    channel: discord.abc.Messageable,
    content: str | None = None,
    *,
    embed: discord.Embed | None = None,
) -> discord.Message:
    """Post to a channel outside any command (announcements), in a ``discord.send`` span."""
    text = fit(content) if content else None
    with send_span() as span:
        record_response(span, describe(text, embed))
        if embed is None:
            return await channel.send(content=text, allowed_mentions=NO_MENTIONS)
        return await channel.send(content=text, embed=embed, allowed_mentions=NO_MENTIONS)


async def edit(
    message: discord.Message, content: str, *, clear_view: bool = False
) -> discord.Message:
    """Edit a message the bot sent earlier (long operations report completion this way).

    ``clear_view`` removes its buttons (a confirmation that timed out).
    """
    text = fit(content)
    with send_span() as span:
        record_response(span, text)
        if clear_view:
            return await message.edit(content=text, allowed_mentions=NO_MENTIONS, view=None)
        return await message.edit(content=text, allowed_mentions=NO_MENTIONS)


async def update(interaction: discord.Interaction[Any], content: str) -> None:
    """Answer a button press by editing the message it was on, removing its buttons."""
    text = fit(content)
    with send_span() as span:
        record_response(span, text)
        await interaction.response.edit_message(
            content=text, view=None, allowed_mentions=NO_MENTIONS
        )


async def tell_privately(interaction: discord.Interaction[Any], content: str) -> None:
    """Answer a button press with a message only its presser sees (ephemeral)."""
    text = fit(content)
    with send_span() as span:
        span.set_attribute(RESPONSE, text)
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
