"""Flags as command checks: who is asking (the evaluation context) and what they may run.

The evaluation context of a message (attribute names are what flag authors write
in targeting rules; docs/flags.md lists them):

- ``targetingKey``: the author's user id (a string: Discord ids exceed what JSON
  numbers hold exactly in many tools);
- ``guildId``, ``channelId``: strings; ``guildId`` is absent in direct messages;
- ``roles``: the author's role ids in that guild (strings, without @everyone),
  taken from the message's member payload: the bot has no members intent;
- ``admin``: whether the author has the Administrator permission there.

A message evaluates each flag at most once: ``!help`` runs every command's checks,
and without the per-message memo it would leave one span per command instead of
one per flag.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

import discord
from discord.ext import commands
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import FlagEvaluationDetails

from commands.toolkit.failures import HiddenCommand
from commands.toolkit.flags import evaluate_async, is_hidden

GUILD_ID = "guildId"
CHANNEL_ID = "channelId"
ROLES = "roles"
ADMIN = "admin"

T = TypeVar("T", bool, str, int, float)

#: Flags that decide who may do what: every flag behind a command check, plus those
#: registered with ``permission_flag``. A reload that changes one goes to the audit channel.
PERMISSION_FLAGS: set[str] = set()


def permission_flag(key: str) -> str:
    """Register ``key`` as a permission flag (the audit channel reports changes to it)."""
    PERMISSION_FLAGS.add(key)
    return key


# A coroutine function (what ``commands.check`` accepts), so also an Awaitable one.
Predicate = Callable[[commands.Context[Any]], Coroutine[Any, Any, bool]]


class FlagDenied(commands.CheckFailure):
    """A permission flag said no; the error mapper replies "You can't use ..."."""

    def __init__(self, key: str) -> None:
        super().__init__(f"flag {key} is off for this user")
        self.key = key


class FlagHidden(HiddenCommand):
    """A hidden flag said no; the command looks as if it did not exist."""

    def __init__(self, key: str) -> None:
        super().__init__(f"flag {key} is off for this user (hidden)")
        self.key = key


def make_context(
    user_id: int | str,
    *,
    guild_id: int | str | None = None,
    channel_id: int | str | None = None,
    role_ids: Iterable[int | str] = (),
    admin: bool = False,
) -> EvaluationContext:
    """An evaluation context from ids; ``chatops flags eval`` builds the same one."""
    attributes: dict[str, Any] = {ROLES: [str(r) for r in role_ids], ADMIN: admin}
    if guild_id is not None:
        attributes[GUILD_ID] = str(guild_id)
    if channel_id is not None:
        attributes[CHANNEL_ID] = str(channel_id)
    return EvaluationContext(targeting_key=str(user_id), attributes=attributes)


def message_context(message: discord.Message) -> EvaluationContext:
    """Who sent ``message``, where, with which roles, as flag rules see it."""
    author = message.author
    if isinstance(author, discord.Member):
        return make_context(
            author.id,
            guild_id=author.guild.id,
            channel_id=message.channel.id,
            role_ids=[r.id for r in author.roles if not r.is_default()],
            admin=author.guild_permissions.administrator,
        )
    guild = message.guild
    return make_context(
        author.id,
        guild_id=guild.id if guild is not None else None,
        channel_id=message.channel.id,
    )


def interaction_context(interaction: discord.Interaction[Any]) -> EvaluationContext:
    """Who is typing (autocomplete) or clicking, as flag rules see them."""
    user = interaction.user
    if isinstance(user, discord.Member):
        return make_context(
            user.id,
            guild_id=user.guild.id,
            channel_id=interaction.channel_id,
            role_ids=[r.id for r in user.roles if not r.is_default()],
            admin=user.guild_permissions.administrator,
        )
    return make_context(user.id, guild_id=interaction.guild_id, channel_id=interaction.channel_id)


async def allowed(interaction: discord.Interaction[Any], key: str) -> bool:
    """A permission flag for an interaction with no command context; fails closed."""
    details = await evaluate_async(key, False, interaction_context(interaction))
    return details.value is True


@dataclass
class _MessageFlags:
    message_id: int
    context: EvaluationContext
    results: dict[tuple[str, type], FlagEvaluationDetails[Any]] = field(default_factory=dict)


# Set inside the message's own task (discord.py runs each event in a new task), so a
# memo never outlives or leaks into another message.
_memo: ContextVar[_MessageFlags | None] = ContextVar("chatops_message_flags", default=None)


def _message_flags(message: discord.Message) -> _MessageFlags:
    memo = _memo.get()
    if memo is None or memo.message_id != message.id:
        memo = _MessageFlags(message.id, message_context(message))
        _memo.set(memo)
    return memo


async def flag_details(
    ctx: commands.Context[Any], key: str, default: T
) -> FlagEvaluationDetails[T]:
    """Evaluate ``key`` for the message of ``ctx`` (once per message, one span)."""
    memo = _message_flags(ctx.message)
    memo_key = (key, type(default))
    cached = memo.results.get(memo_key)
    if cached is None:
        cached = await evaluate_async(key, default, memo.context)
        memo.results[memo_key] = cached
    details: FlagEvaluationDetails[T] = cached
    return details


async def feature(ctx: commands.Context[Any], key: str, default: T) -> T:
    """A feature flag's value for this message, ``default`` whenever flags are unusable."""
    return (await flag_details(ctx, key, default)).value


def flag_check(key: str, *, hidden: bool = False, default: bool = False) -> Predicate:
    """The predicate behind ``requires_flag``, for commands built at runtime.

    Allowed only when the flag evaluates to ``true``. ``default`` is what a flag
    that cannot be evaluated means: False (the default) makes a permission flag
    fail closed; True makes a rollout flag fall back to "on". A command is hidden
    (answered as unknown) when ``hidden`` is set here or the flag's metadata says
    ``"hidden": true``.
    """

    permission_flag(key)

    async def predicate(ctx: commands.Context[Any]) -> bool:
        details = await flag_details(ctx, key, default)
        if details.value is True:
            return True
        if hidden or is_hidden(details.flag_metadata):
            raise FlagHidden(key)
        raise FlagDenied(key)

    predicate.__qualname__ = f"flag_check({key!r})"
    setattr(predicate, _FLAG_KEY, key)
    return predicate


_FLAG_KEY = "chatops_flag_key"


def flag_key_of(check: Callable[..., Any]) -> str | None:
    """The flag a command check made by ``flag_check`` (or wrapping one) evaluates."""
    key = getattr(check, _FLAG_KEY, None)
    return key if isinstance(key, str) else None


def requires_flag(
    key: str, *, hidden: bool = False, default: bool = False
) -> Callable[[commands.core.T], commands.core.T]:
    """A check decorator: the command runs only for users the flag ``key`` lets in.

    ``!help`` (``verify_checks``) lists a command only when its flag lets the
    asking user in.
    """
    return commands.check(flag_check(key, hidden=hidden, default=default))


RESOURCE_GROUP = "resourceGroup"


async def two_person_required(ctx: commands.Context[Any], key: str, resource_group: str) -> bool:
    """Whether ``key`` (``aci-two-person``) is on for this message and ``resource_group``.

    The message's evaluation context plus ``resourceGroup``, so a rule can name the
    resource groups that need a second person. A flag that cannot be evaluated means
    off: the usual confirmation still applies.
    """
    context = _message_flags(ctx.message).context.merge(
        EvaluationContext(attributes={RESOURCE_GROUP: resource_group})
    )
    details = await evaluate_async(key, False, context)
    return details.value is True
