"""Fun commands: small answers, one of them (``!catfact``) from a public API.

Hybrid commands (``!roll 2d6`` and ``/roll dice:2d6``); ``Dice`` is a converter,
which discord.py offers to the slash form as a string option it converts alike.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from discord import app_commands
from discord.ext import commands

from commands.toolkit.api_client import ApiClient
from commands.toolkit.failures import UserFacingError
from commands.toolkit.hybrid import hybrid_command
from commands.toolkit.limits import Limits, apply_limits
from commands.toolkit.replies import reply

DICE = re.compile(r"^(?P<count>\d{1,3})?d(?P<sides>\d{1,4})$", re.IGNORECASE)
MAX_DICE = 100
CATFACT_API_URL = "https://catfact.ninja"
CATFACT_LABEL = "cat-fact API"


@dataclass(frozen=True)
class Dice:
    count: int
    sides: int

    @classmethod
    async def convert(cls, ctx: commands.Context[Any], argument: str) -> Dice:
        """Parse ``NdM`` (``d20``, ``3d6``), the converter discord.py calls for the argument."""
        match = DICE.match(argument.strip())
        if match is None:
            raise commands.BadArgument(f"{argument[:40]!r} is not dice like 2d6 or d20.")
        count, sides = int(match["count"] or 1), int(match["sides"])
        if not 1 <= count <= MAX_DICE or sides < 2:
            raise commands.BadArgument(f"Roll 1 to {MAX_DICE} dice with at least 2 sides.")
        return cls(count, sides)


class Fun(commands.Cog):
    """Games and trivia."""

    def __init__(
        self,
        api: ApiClient | None = None,
        *,
        catfact_url: str = CATFACT_API_URL,
        limits: Limits | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.api = api
        self.catfact_url = catfact_url.rstrip("/")
        self.rng = rng or random.Random()
        apply_limits(limits or Limits(), [self.catfact])

    @hybrid_command(help="Roll dice, e.g. `roll 2d6` or `roll d20`.")
    @app_commands.describe(dice="Dice to roll, like 2d6 or d20")
    async def roll(self, ctx: commands.Context[Any], dice: Dice) -> None:
        rolls = [self.rng.randint(1, dice.sides) for _ in range(dice.count)]
        shown = " + ".join(map(str, rolls[:20])) + (" + \u2026" if len(rolls) > 20 else "")
        await reply(ctx, f"\U0001f3b2 {dice.count}d{dice.sides}: {shown} = **{sum(rolls)}**")

    @hybrid_command(help="A random cat fact.")
    async def catfact(self, ctx: commands.Context[Any]) -> None:
        if self.api is None:
            raise UserFacingError("Cat facts are not configured here.")
        data = await self.api.get_json(
            "catfact.fetch", f"{self.catfact_url}/fact", label=CATFACT_LABEL, ctx=ctx
        )
        fact = data.get("fact") if isinstance(data, dict) else None
        if not isinstance(fact, str) or not fact.strip():
            raise UserFacingError(f"The {CATFACT_LABEL} sent no fact.")
        await reply(ctx, f"\U0001f431 {fact.strip()}")
