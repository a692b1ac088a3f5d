"""Scryfall's card search and named lookup, shaped after its documented JSON.

``/cards/search?q=`` answers a ``list`` object; ``nomatch`` gives the 404
``not_found`` error and a query containing ``bad:`` the 400 ``bad_request``.
``/cards/named?fuzzy=``: ``ambiguous`` gives the 404 with ``type: ambiguous``,
``delver`` a transform card whose faces carry the images.
``/cards/autocomplete?q=``: a ``catalog`` of the dragons' names containing ``q``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.sandbox.fakes.api import FakeApi

NO_MATCH = (
    "Your query didn't match any cards. Adjust your search terms or refer to the syntax "
    "guide at https://scryfall.com/docs/reference"
)
BAD_QUERY = "All of your terms were ignored."
AMBIGUOUS = "Too many cards match ambiguous name \u201cdragon\u201d. Add more words to refine."


def card(name: str, cost: str, type_line: str) -> dict[str, Any]:
    slug = name.lower().replace(" ", "-")
    return {
        "object": "card",
        "name": name,
        "mana_cost": cost,
        "type_line": type_line,
        "scryfall_uri": f"https://scryfall.com/card/xyz/1/{slug}",
        "image_uris": {
            "small": f"https://cards.scryfall.io/small/{slug}.jpg",
            "normal": f"https://cards.scryfall.io/normal/{slug}.jpg",
        },
    }


DRAGONS = [
    card("Shivan Dragon", "{4}{R}{R}", "Creature \u2014 Dragon"),
    card("Lathliss, Dragon Queen", "{4}{R}{R}", "Legendary Creature \u2014 Dragon"),
    card("Dragon Hatchling", "{1}{R}", "Creature \u2014 Dragon"),
    card("Balefire Dragon", "{5}{R}{R}", "Creature \u2014 Dragon"),
    card("Utvara Hellkite", "{6}{R}{R}", "Creature \u2014 Dragon"),
    card("Thundermaw Hellkite", "{3}{R}{R}", "Creature \u2014 Dragon"),
]
DELVER = {
    "object": "card",
    "name": "Delver of Secrets // Insectile Aberration",
    "type_line": "Creature \u2014 Human Wizard // Creature \u2014 Human Insect",
    "scryfall_uri": "https://scryfall.com/card/isd/51/delver-of-secrets",
    "card_faces": [
        {
            "name": "Delver of Secrets",
            "mana_cost": "{U}",
            "type_line": "Creature \u2014 Human Wizard",
            "image_uris": {"normal": "https://cards.scryfall.io/normal/front/delver.jpg"},
        },
        {
            "name": "Insectile Aberration",
            "mana_cost": "",
            "type_line": "Creature \u2014 Human Insect",
            "image_uris": {"normal": "https://cards.scryfall.io/normal/back/delver.jpg"},
        },
    ],
}


def error(status: int, code: str, details: str, **extra: Any) -> web.Response:
    body = {"object": "error", "code": code, "status": status, "details": details, **extra}
    return web.json_response(body, status=status)


class FakeScryfall(FakeApi):
    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/cards/search", self.search),
            web.get("/cards/named", self.named),
            web.get("/cards/autocomplete", self.autocomplete),
        ]

    async def autocomplete(self, request: web.Request) -> web.Response:
        """A ``catalog`` of names containing ``q`` (none under two characters, as Scryfall)."""
        query = request.query.get("q", "").lower()
        names = [c["name"] for c in DRAGONS] if len(query) >= 2 else []
        found = [n for n in names if query in n.lower()]
        return web.json_response({"object": "catalog", "total_values": len(found), "data": found})

    async def search(self, request: web.Request) -> web.Response:
        query = request.query.get("q", "")
        if "bad:" in query:
            return error(400, "bad_request", BAD_QUERY, warnings=["Invalid expression"])
        if "nomatch" in query:
            return error(404, "not_found", NO_MATCH)
        return web.json_response(
            {"object": "list", "total_cards": 42, "has_more": True, "data": DRAGONS}
        )

    async def named(self, request: web.Request) -> web.Response:
        fuzzy = request.query.get("fuzzy", "").lower()
        if fuzzy == "dragon":
            return error(404, "not_found", AMBIGUOUS, type="ambiguous")
        if fuzzy.startswith("delver"):
            return web.json_response(DELVER)
        if "shivan" in fuzzy:
            return web.json_response(DRAGONS[0])
        return error(404, "not_found", f"No cards found matching \u201c{fuzzy}\u201d")
