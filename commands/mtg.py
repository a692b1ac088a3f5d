"""Magic: The Gathering lookups on Scryfall: ``!mtg <query>`` and ``!card <name>``.

Scryfall's rules (descriptive User-Agent, an Accept header, at most 10 requests
a second) are kept by ``ApiClient`` and the token bucket the bot wires for its
host. Scryfall explains its own 400 (bad query) and 404 (no match, ambiguous
name) in ``details``; those are the user's input, so they are replied verbatim
with ``app.outcome=bad_input`` and no ERROR status.

Both are hybrid commands (``/mtg query:...``, ``/card name:...``). ``/card``
autocompletes names from Scryfall's ``/cards/autocomplete``: each keystroke is
an interaction, so completion is kept cheap (at least two characters, a short
timeout, the same 10 req/s pacing, answers cached) and never fails loudly.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any
from urllib.parse import urlencode

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from commands.toolkit.api_client import ApiClient, ApiResponse
from commands.toolkit.failures import UserFacingError
from commands.toolkit.hybrid import hybrid_command
from commands.toolkit.limits import Limits, apply_limits
from commands.toolkit.replies import reply
from telemetry.schema import Outcome

SCRYFALL_API_URL = "https://api.scryfall.com"
SCRYFALL_SITE = "https://scryfall.com"
LABEL = "Scryfall API"
TOP_CARDS = 5
QUERY_MAX_CHARS = 500
USER_ERRORS = (400, 404)
EMBED_COLOUR = discord.Colour.dark_teal()
# Discord waits 3 s for choices; Scryfall needs two characters to suggest anything.
AUTOCOMPLETE_MIN_CHARS = 2
AUTOCOMPLETE_TIMEOUT = aiohttp.ClientTimeout(total=1.5, connect=1.0)
AUTOCOMPLETE_CACHE = 256
MAX_CHOICES = 25


def search_link(query: str) -> str:
    """The same search on scryfall.com, the query fully URL-encoded."""
    return f"{SCRYFALL_SITE}/search?{urlencode({'q': query})}"


def user_error(response: ApiResponse) -> UserFacingError | None:
    """Scryfall's own explanation of a 400 or 404, as a bad-input error."""
    if response.status not in USER_ERRORS:
        return None
    payload = _payload(response)
    details = payload.get("details") if isinstance(payload, dict) else None
    text = details if isinstance(details, str) and details else "Scryfall found nothing."
    return UserFacingError(text, Outcome.BAD_INPUT)


def _payload(response: ApiResponse) -> Any:
    try:
        return response.json()
    except UserFacingError:
        return None


def face_line(card: dict[str, Any]) -> str:
    """``{2}{R}{R} · Creature — Dragon`` for a card, joining the faces of a double-faced one."""
    faces = card.get("card_faces") or [card]
    parts = []
    for face in faces:
        cost = face.get("mana_cost") or ""
        type_line = face.get("type_line") or card.get("type_line") or ""
        parts.append(" · ".join(part for part in (cost, type_line) if part))
    return " // ".join(part for part in parts if part) or "\u2014"


def card_image(card: dict[str, Any]) -> str | None:
    """``image_uris.normal``, or the front face's for cards whose faces carry the images."""
    for source in (card, *(card.get("card_faces") or [])):
        uris = source.get("image_uris")
        if isinstance(uris, dict) and isinstance(uris.get("normal"), str):
            return str(uris["normal"])
    return None


def search_embed(query: str, result: dict[str, Any]) -> discord.Embed:
    cards = [c for c in result.get("data") or [] if isinstance(c, dict)]
    total = int(result.get("total_cards") or len(cards))
    embed = discord.Embed(
        title=f"{total} card{'s' if total != 1 else ''} for {query[:200]}",
        url=search_link(query),
        colour=EMBED_COLOUR,
    )
    for card in cards[:TOP_CARDS]:
        embed.add_field(name=str(card.get("name", "?"))[:256], value=face_line(card), inline=False)
    if total > TOP_CARDS:
        embed.set_footer(text=f"Showing {min(TOP_CARDS, len(cards))} of {total}; the link has all.")
    return embed


def card_embed(card: dict[str, Any]) -> discord.Embed:
    embed = discord.Embed(
        title=str(card.get("name", "?"))[:256],
        url=card.get("scryfall_uri") or None,
        description=face_line(card),
        colour=EMBED_COLOUR,
    )
    image = card_image(card)
    if image:
        embed.set_image(url=image)
    return embed


class Mtg(commands.Cog, name="Magic"):
    """Scryfall searches for Commander deck building."""

    def __init__(
        self, api: ApiClient, *, base_url: str = SCRYFALL_API_URL, limits: Limits | None = None
    ) -> None:
        self.api = api
        self.base_url = base_url.rstrip("/")
        self._completions: OrderedDict[str, list[str]] = OrderedDict()
        apply_limits(limits or Limits(), [self.mtg, self.card])

    async def _call(
        self, ctx: commands.Context[Any], span: str, path: str, params: dict[str, str]
    ) -> dict[str, Any]:
        response = await self.api.request(
            span, "GET", f"{self.base_url}{path}", label=LABEL, params=params, ctx=ctx,
            allow=USER_ERRORS,
        )  # fmt: skip
        error = user_error(response)
        if error is not None:
            raise error
        data = response.json()
        if not isinstance(data, dict):
            raise UserFacingError(f"The {LABEL} sent an answer I couldn't read.")
        return data

    @hybrid_command(help="Search Scryfall, e.g. `mtg t:dragon c:r cmc<=4`.", usage="<query>")
    @app_commands.describe(query="A Scryfall search, e.g. t:dragon c:r cmc<=4")
    async def mtg(self, ctx: commands.Context[Any], *, query: str) -> None:
        query = query.strip()[:QUERY_MAX_CHARS]
        result = await self._call(ctx, "scryfall.search", "/cards/search", {"q": query})
        await reply(ctx, embed=search_embed(query, result))

    @hybrid_command(help="Look up one card by (fuzzy) name, with its image.", usage="<name>")
    @app_commands.describe(name="The card's name (fuzzy; suggestions as you type)")
    async def card(self, ctx: commands.Context[Any], *, name: str) -> None:
        name = name.strip()[:QUERY_MAX_CHARS]
        card = await self._call(ctx, "scryfall.card", "/cards/named", {"fuzzy": name})
        await reply(ctx, embed=card_embed(card))

    @card.autocomplete("name")
    async def card_names(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        """Scryfall's suggestions for what is typed so far; none rather than an error."""
        names = await self.suggest(current)
        return [app_commands.Choice(name=n[:100], value=n[:100]) for n in names[:MAX_CHOICES]]

    async def suggest(self, prefix: str) -> list[str]:
        """Card names starting like ``prefix`` (cached: users type the same prefixes)."""
        key = prefix.strip().lower()[:QUERY_MAX_CHARS]
        if len(key) < AUTOCOMPLETE_MIN_CHARS:
            return []
        cached = self._completions.get(key)
        if cached is not None:
            self._completions.move_to_end(key)
            return cached
        try:
            data = await self.api.get_json(
                "scryfall.autocomplete",
                f"{self.base_url}/cards/autocomplete",
                label=LABEL,
                params={"q": key},
                timeout=AUTOCOMPLETE_TIMEOUT,
            )
        except UserFacingError:  # the API failed: no suggestions, the command still works
            return []
        raw = data.get("data") if isinstance(data, dict) else None
        names = [n for n in raw or [] if isinstance(n, str)]
        self._completions[key] = names
        if len(self._completions) > AUTOCOMPLETE_CACHE:
            self._completions.popitem(last=False)
        return names
