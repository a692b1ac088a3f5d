"""Every reply the bot sends goes through ``reply``: one ``discord.send`` span each.

The span records the text sent (truncated), and is also the HTTP request to
Discord (``telemetry/http_spans.py``: a retry's earlier attempts become its
children), so Discord's rate limiting shows up in the trace. Mentions never
ping: the bot's default is ``AllowedMentions.none()`` and each send passes it
again. Users choose much of what the bot repeats (an argument quoted in an
error, an HTTP-backed command's answer), so no text sent here forms a masked
link (``inert_links``), and a message without an embed of its own is sent with
embeds suppressed: a URL in it shows as itself, unfurled into no preview.

For an interaction (a slash command, a button) the first answer is the
interaction callback and later ones are follow-ups, so the send span is that
POST instead. A message that carries a view is remembered with the trace that sent
it (``commands.toolkit.views``), so a click on it can link back.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import discord
from discord.ext import commands

from commands.toolkit.interaction_state import InteractionState, state_for
from commands.toolkit.message_origins import remember_origin
from telemetry.spans import record_response, send_span

MESSAGE_MAX_CHARS = 2000
NO_MENTIONS = discord.AllowedMentions.none()


def fit(text: str, limit: int = MESSAGE_MAX_CHARS) -> str:
    """Cut text to what Discord accepts in one message."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def inert_links(text: str) -> str:
    """``text`` with no masked link left in it: every ``](`` becomes ``]\\(``.

    A masked link ``[text](url)`` shows text of a user's choosing over a URL of
    their choosing, in the bot's voice. Discord renders ``\\(`` as ``(``, so the
    text reads the same, with the URL shown as itself (inside code the backslash
    would show, and ``](`` is rare there). ``discord.utils.escape_markdown`` is no
    substitute: it escapes only a line's first link, and all other formatting too.
    """
    return text.replace("](", "]\\(")


def outgoing(text: str) -> str:
    """What a send passes Discord for ``text``: no masked links, cut to fit one message."""
    return fit(inert_links(text))


def describe(content: str | None, embed: discord.Embed | None) -> str:
    """The text a user sees, for ``app.response``: content, else the embed's title."""
    if content:
        return content
    if embed is not None:
        return " ".join(part for part in (embed.title, embed.description) if part)
    return ""


def _message_kwargs(
    text: str | None,
    embed: discord.Embed | None,
    file: discord.File | None,
    view: discord.ui.View | None,
) -> dict[str, Any]:
    """What every send passes discord.py: the text, no pings, no link previews, the parts given."""
    kwargs: dict[str, Any] = {"content": text, "allowed_mentions": NO_MENTIONS}
    if embed is None:
        kwargs["suppress_embeds"] = True
    else:
        kwargs["embed"] = embed
    if file is not None:
        kwargs["file"] = file
    if view is not None:
        kwargs["view"] = view
    return kwargs


async def reply(
    ctx: commands.Context[Any],
    content: str | None = None,
    *,
    embed: discord.Embed | None = None,
    file: discord.File | None = None,
    view: discord.ui.View | None = None,
    ephemeral: bool = False,
) -> discord.Message:
    """Answer the message or interaction that invoked ``ctx``, pinging no one.

    ``ephemeral`` (only the asker sees it) applies to interactions; a message
    cannot be ephemeral, so a bang-command's reply is public either way.
    """
    if ctx.interaction is not None:
        return await respond(
            ctx.interaction, content, embed=embed, file=file, view=view, ephemeral=ephemeral
        )
    text = outgoing(content) if content else None
    kwargs = _message_kwargs(text, embed, file, view)
    with send_span() as span:
        record_response(span, describe(text, embed))
        reference = ctx.message.to_reference(fail_if_not_exists=False)
        message = await ctx.send(reference=reference, **kwargs)
    if view is not None:
        remember_origin(message.id)
    return message


async def respond(
    interaction: discord.Interaction[Any],
    content: str | None = None,
    *,
    embed: discord.Embed | None = None,
    file: discord.File | None = None,
    view: discord.ui.View | None = None,
    ephemeral: bool = False,
) -> discord.Message:
    """Answer an interaction: the callback if nothing answered yet, else a follow-up.

    An ephemeral answer to a publicly deferred interaction first deletes the
    "thinking…" message: Discord would otherwise turn it into the answer and
    keep it public (an error meant for the asker would show to everyone).
    """
    text = outgoing(content) if content else None
    kwargs = _message_kwargs(text, embed, file, view)
    async with answering(interaction) as state:
        response = interaction.response
        first = not response.is_done()
        if not first:
            answered = state.answered if state is not None else True
            if ephemeral and not answered and _deferred_publicly(interaction):
                # Before the send span opens: the send is the follow-up, not this DELETE.
                await interaction.delete_original_response()
        with send_span() as span:
            record_response(span, describe(text, embed))
            if first:
                callback = await response.send_message(ephemeral=ephemeral, **kwargs)
                resource = callback.resource
                if isinstance(resource, discord.InteractionMessage):
                    message: discord.Message = resource
                else:
                    message = await interaction.original_response()
            else:
                message = await interaction.followup.send(wait=True, ephemeral=ephemeral, **kwargs)
    if view is not None:
        remember_origin(message.id)
    return message


@contextlib.asynccontextmanager
async def answering(
    interaction: discord.Interaction[Any],
) -> AsyncIterator[InteractionState | None]:
    """Hold the interaction's response lock (if this task handles it) while answering it.

    Everything that answers an interaction goes through here, so an answer never
    races the deferral timer, and the state knows a real answer went out.
    """
    state = state_for(interaction)
    async with state.lock if state is not None else contextlib.nullcontext():
        yield state
        if state is not None:
            state.answered = True


def _deferred_publicly(interaction: discord.Interaction[Any]) -> bool:
    """Whether a public "thinking…" message stands in for the answer."""
    state = state_for(interaction)
    deferred = interaction.response.type is discord.InteractionResponseType.deferred_channel_message
    return deferred and not (state is not None and state.deferred_ephemeral)


async def send_to(
    channel: discord.abc.Messageable,
    content: str | None = None,
    *,
    embed: discord.Embed | None = None,
) -> discord.Message:
    """Post to a channel outside any command (announcements), in a ``discord.send`` span."""
    text = outgoing(content) if content else None
    with send_span() as span:
        record_response(span, describe(text, embed))
        if embed is None:
            return await channel.send(
                content=text, allowed_mentions=NO_MENTIONS, suppress_embeds=True
            )
        return await channel.send(content=text, embed=embed, allowed_mentions=NO_MENTIONS)


async def edit(
    message: discord.Message, content: str, *, clear_view: bool = False
) -> discord.Message:
    """Edit a message the bot sent earlier (long operations report completion this way).

    ``clear_view`` removes its buttons (a confirmation that timed out).
    """
    text = outgoing(content)
    with send_span() as span:
        record_response(span, text)
        if clear_view:
            return await message.edit(content=text, allowed_mentions=NO_MENTIONS, view=None)
        return await message.edit(content=text, allowed_mentions=NO_MENTIONS)


async def update(interaction: discord.Interaction[Any], content: str) -> None:
    """Answer a button press by editing the message it was on, removing its buttons.

    If the press was already acknowledged (a deferred update), the same edit goes
    to the clicked message through the interaction's webhook instead.
    """
    text = outgoing(content)
    with send_span() as span:
        record_response(span, text)
        async with answering(interaction):
            if not interaction.response.is_done():
                await interaction.response.edit_message(
                    content=text, view=None, allowed_mentions=NO_MENTIONS
                )
            else:
                await interaction.edit_original_response(
                    content=text, view=None, allowed_mentions=NO_MENTIONS
                )


async def tell_privately(interaction: discord.Interaction[Any], content: str) -> None:
    """Answer a button press with a message only its presser sees (ephemeral)."""
    await respond(interaction, content, ephemeral=True)
