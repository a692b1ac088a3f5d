"""The shape of an interaction's trace, and the one response an interaction allows.

A slash command, an autocomplete request and a button click are interactions:
each gets a root span like a message's (``telemetry.spans.root_span``) with
``discord.interaction.id`` and ``discord.interaction.type`` added. Discord
accepts exactly one initial response per interaction, within 3 seconds, and
follow-ups after it; two tasks racing to answer (the command and the deferral
timer) would make the second fail. ``InteractionState`` holds the lock both take.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import discord
from opentelemetry.util.types import AttributeValue

from telemetry import schema
from telemetry.schema import truncate
from telemetry.tracer import module_tracer

log = logging.getLogger(__name__)
tracer = module_tracer(__name__)


@dataclass
class InteractionState:
    """Per interaction: the response lock, whether a real answer went out, errors to report."""

    interaction: discord.Interaction[Any]
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    answered: bool = False
    deferred_ephemeral: bool = False
    errors: list[BaseException] = field(default_factory=list)


_state: ContextVar[InteractionState | None] = ContextVar("chatops_interaction", default=None)


def current_interaction() -> InteractionState | None:
    """The interaction the running task handles, if any."""
    return _state.get()


def state_for(interaction: discord.Interaction[Any]) -> InteractionState | None:
    """The state of ``interaction`` if it is the one this task handles."""
    state = _state.get()
    return state if state is not None and state.interaction is interaction else None


@contextlib.contextmanager
def tracking(interaction: discord.Interaction[Any]) -> Iterator[InteractionState]:
    """Make ``interaction`` the current one for this task (and tasks it starts)."""
    state = InteractionState(interaction)
    token = _state.set(state)
    try:
        yield state
    finally:
        _state.reset(token)


def interaction_attributes(interaction: discord.Interaction[Any]) -> dict[str, AttributeValue]:
    """Root-span attributes: the message schema's ids, plus the interaction's own."""
    attributes: dict[str, AttributeValue] = {
        schema.INTERACTION_ID: str(interaction.id),
        schema.INTERACTION_TYPE: interaction.type.name,
        schema.AUTHOR_NAME: interaction.user.name,
        schema.SHARD_ID: interaction.guild.shard_id if interaction.guild else 0,
    }
    if interaction.channel_id is not None:
        attributes[schema.CHANNEL_ID] = str(interaction.channel_id)
    if interaction.guild is not None:
        attributes[schema.GUILD_NAME] = interaction.guild.name
    if interaction.message is not None:
        attributes[schema.MESSAGE_ID] = str(interaction.message.id)
    return attributes


def interaction_fields(interaction: discord.Interaction[Any]) -> dict[str, AttributeValue]:
    """The trace fields every descendant inherits (author, guild)."""
    fields: dict[str, AttributeValue] = {schema.AUTHOR_ID: str(interaction.user.id)}
    if interaction.guild_id is not None:
        fields[schema.GUILD_ID] = str(interaction.guild_id)
    return fields


def options_text(options: Sequence[Mapping[str, Any]]) -> str:
    """A command's options as ``name:value`` words, subcommand names skipped (they name it)."""
    words: list[str] = []
    for option in options:
        nested = option.get("options")
        if option.get("type") in (1, 2):
            words.append(options_text(nested or []))
        elif "value" in option:
            words.append(f"{option['name']}:{option['value']}")
    return truncate(" ".join(w for w in words if w), schema.ARGS_MAX_CHARS * 4)


async def defer(interaction: discord.Interaction[Any], *, ephemeral: bool = False) -> bool:
    """Acknowledge now and answer later ("thinking…"), unless already answered.

    Returns whether this call deferred. Safe against a reply racing it: both
    take the interaction's lock.
    """
    state = state_for(interaction)
    async with state.lock if state is not None else contextlib.nullcontext():
        if interaction.response.is_done():
            return False
        with tracer.start_as_current_span(schema.DEFER_SPAN):
            await interaction.response.defer(thinking=True, ephemeral=ephemeral)
        if state is not None:
            state.deferred_ephemeral = ephemeral
        return True


@contextlib.asynccontextmanager
async def defer_after(interaction: discord.Interaction[Any], seconds: float) -> AsyncIterator[None]:
    """Defer if nothing has answered ``interaction`` after ``seconds`` (Discord allows 3)."""

    async def later() -> None:
        await asyncio.sleep(seconds)
        try:
            await defer(interaction)
        except discord.HTTPException as exc:
            log.warning("could not defer interaction %s: %s", interaction.id, exc)

    task = asyncio.create_task(later(), name=f"defer-{interaction.id}")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
