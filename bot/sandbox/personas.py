"""Who is typing in ``chatops console``: a user id, roles, admin or not, in which guild.

Flag rules target exactly these (``targetingKey``, ``roles``, ``admin``,
``guildId``: ``commands/toolkit/flag_checks.py``), so a persona is how a rule
is tried before it is deployed. ``seat`` makes the persona real in the fake
Discord (the guild and the user exist, the member holds the roles), so the bot
sees it through the same gateway payloads as any message; ``flag_decisions``
asks the bot's own OpenFeature client what each flag its commands check says
about the persona.

The default persona is one the shipped ``flags.json`` lets into everything:
user 100000000000000001 is named in ``aci-reader``, ``aci-operator`` and
``beta-commands``, and guild 300000000000000003 is in the ``coin-flip`` rollout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click
from discord.ext import commands

from bot.sandbox.server import FakeDiscord
from bot.sandbox.state import JSON, FakeGuild
from commands.toolkit.flag_checks import flag_key_of, make_context
from commands.toolkit.flags import evaluate_untraced

DEFAULT_USER_ID = 100_000_000_000_000_001
DEFAULT_GUILD_ID = 300_000_000_000_000_003
# A persona's user is named, so the bot's text reads naturally ("Only Robin can
# answer"). The name follows from the id (the default persona is always Robin),
# so a transcript names the same user the same way in every session; it is only
# a label: flag rules see the id.
PERSONA_NAMES = ("robin", "alex", "sam", "kim", "jo", "lee", "max", "ari", "noor", "eli", "kai")


def persona_name(user_id: int) -> str:
    """The username a persona's user gets in the fake (its display name is capitalised)."""
    return PERSONA_NAMES[user_id % len(PERSONA_NAMES)]


class PersonaError(ValueError):
    """A persona the fake cannot seat (e.g. the bot's own id)."""


@dataclass(frozen=True)
class Persona:
    user_id: int = DEFAULT_USER_ID
    role_ids: tuple[int, ...] = ()
    admin: bool = False
    guild_id: int = DEFAULT_GUILD_ID

    def describe(self) -> str:
        roles = ", ".join(map(str, self.role_ids)) or "none"
        admin = "yes" if self.admin else "no"
        return f"user {self.user_id} in guild {self.guild_id}; roles {roles}; admin {admin}"


@dataclass(frozen=True)
class Seat:
    """Where the persona's messages come from: its user and a channel of its guild."""

    persona: Persona
    user: JSON
    guild: FakeGuild
    channel_id: int

    @property
    def name(self) -> str:
        """How Discord (and so the bot) names the persona: its display name."""
        return str(self.user.get("global_name") or self.user["username"])

    def describe(self) -> str:
        return f"{self.name}, {self.persona.describe()}"

    @property
    def role_ids(self) -> list[int]:
        """The roles the member holds (the guild's admin role too, for ``--admin``)."""
        member = self.guild.members[int(self.user["id"])]
        return [int(r) for r in member["roles"]]


def seat(fake: FakeDiscord, persona: Persona) -> Seat:
    """Make ``persona`` exist in ``fake``: its guild (joined now if new), user and roles."""
    if persona.user_id == int(fake.bot_user["id"]):
        raise PersonaError("that is the bot's own id: the bot ignores its own messages")
    guild = fake.world.guilds_by_id.get(persona.guild_id)
    if guild is None:
        guild = fake.add_guild(f"guild {persona.guild_id}", guild_id=persona.guild_id)
    user = fake.world.users.get(persona.user_id)
    if user is None:
        user = fake.add_user(persona_name(persona.user_id), user_id=persona.user_id)
    roles = list(persona.role_ids)
    if persona.admin:
        roles.append(guild.role_id("admin"))
    fake.set_roles(guild, user, roles)
    return Seat(persona, user, guild, int(guild.channels[0]["id"]))


@dataclass(frozen=True)
class FlagDecision:
    key: str
    value: Any
    variant: str | None
    reason: str
    commands: tuple[str, ...]

    @property
    def allows(self) -> bool:
        return self.value is True


def flag_gates(bot: commands.Bot) -> dict[str, list[str]]:
    """Each flag a command checks, and the commands it gates (``!aci list``, ...)."""
    prefix = bot.command_prefix if isinstance(bot.command_prefix, str) else "!"
    gates: dict[str, list[str]] = {}
    for command in bot.walk_commands():
        for check in command.checks:
            key = flag_key_of(check)
            if key is not None:
                gates.setdefault(key, []).append(f"{prefix}{command.qualified_name}")
    return dict(sorted(gates.items()))


def flag_decisions(bot: commands.Bot, where: Seat) -> list[FlagDecision]:
    """What each gating flag says about the persona, from the client the bot's checks use.

    The evaluation context is the one the bot builds from the persona's messages
    (``message_context``): same ids, roles and admin bit.
    """
    owner = int(where.user["id"]) == where.guild.owner_id
    context = make_context(
        where.user["id"],
        guild_id=where.guild.id,
        channel_id=where.channel_id,
        role_ids=where.role_ids,
        admin=where.persona.admin or owner,
    )
    decisions = []
    for key, gated in flag_gates(bot).items():
        details = evaluate_untraced(key, False, context)
        decisions.append(
            FlagDecision(
                key,
                details.value,
                details.variant,
                str(details.reason or "unknown").lower(),
                tuple(gated),
            )
        )
    return decisions


AS_USAGE = "/as [USER_ID] [--role ROLE_ID]... [--admin] [--guild GUILD_ID]"
SNOWFLAKE = click.IntRange(min=1)


@click.command(name="/as", add_help_option=False)
@click.argument("user_id", required=False, type=SNOWFLAKE)
@click.option("--role", "role_ids", multiple=True, type=SNOWFLAKE)
@click.option("--admin", is_flag=True)
@click.option("--guild", "guild_id", type=SNOWFLAKE)
def _as_command(
    user_id: int | None, role_ids: tuple[int, ...], admin: bool, guild_id: int | None
) -> Persona:
    return make_persona(user_id, role_ids, admin, guild_id)


def make_persona(
    user_id: int | None, role_ids: Sequence[int], admin: bool, guild_id: int | None
) -> Persona:
    """A persona from the console's options: what is not given is the default persona's."""
    default = Persona()
    return Persona(
        user_id=default.user_id if user_id is None else user_id,
        role_ids=tuple(role_ids),
        admin=admin,
        guild_id=default.guild_id if guild_id is None else guild_id,
    )


def parse_as(args: Sequence[str]) -> Persona:
    """``/as``'s arguments to a persona; ``click.ClickException`` when they are wrong."""
    persona = _as_command.main(list(args), prog_name="/as", standalone_mode=False)
    assert isinstance(persona, Persona)
    return persona
