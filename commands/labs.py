"""Commands behind feature flags: a hidden beta, a rollout by guild, and what flag rules see.

They exist to show flags working in ``chatops console``: ``!whoami`` prints the
evaluation context of your message (the ids to put in ``flags.json``), ``!beta``
is invisible unless ``beta-commands`` lets you in, ``!flip`` exists only in the
guilds the ``coin-flip`` rollout picked.
"""

from __future__ import annotations

import random
from typing import Any

from discord import app_commands
from discord.ext import commands

from commands.toolkit.flag_checks import (
    ADMIN,
    CHANNEL_ID,
    GUILD_ID,
    ROLES,
    message_context,
    requires_flag,
)
from commands.toolkit.hybrid import hybrid_command
from commands.toolkit.replies import reply


class Labs(commands.Cog):
    """Flag-gated commands and the flag context of the asker."""

    @hybrid_command(help="What feature-flag rules know about you (ids for flags.json).")
    async def whoami(self, ctx: commands.Context[Any]) -> None:
        context = message_context(ctx.message)
        attributes = context.attributes
        role_ids = attributes.get(ROLES)
        roles = ", ".join(map(str, role_ids)) if isinstance(role_ids, list) and role_ids else "none"
        await reply(
            ctx,
            f"targetingKey {context.targeting_key}; guildId {attributes.get(GUILD_ID, '-')}; "
            f"channelId {attributes.get(CHANNEL_ID, '-')}; roles {roles}; "
            f"admin {str(attributes.get(ADMIN, False)).lower()}",
        )

    @hybrid_command(help="A command under test (flag beta-commands).")
    @requires_flag("beta-commands", hidden=True)
    # Hidden from the slash menu too, unless an admin opens it to a role (Integrations).
    @app_commands.default_permissions(manage_guild=True)
    async def beta(self, ctx: commands.Context[Any]) -> None:
        await reply(ctx, "You're in the beta: only users beta-commands lets in can see this.")

    @hybrid_command(help="Heads or tails (rolling out by guild: flag coin-flip).")
    @requires_flag("coin-flip")
    async def flip(self, ctx: commands.Context[Any]) -> None:
        await reply(ctx, random.choice(("Heads.", "Tails.")))
