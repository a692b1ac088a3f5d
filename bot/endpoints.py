"""Where discord.py sends REST calls and opens its gateway websocket.

discord.py keeps both as class attributes: ``Route.BASE`` for REST and
``DiscordWebSocket.DEFAULT_GATEWAY`` for the websocket. A non-sharded client
never asks ``GET /gateway/bot`` by itself (FACTS.md), so when the REST base is
not Discord's we ask that server for its gateway and point the websocket there.
"""

from __future__ import annotations

import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route


def use_api_base(api_base: str) -> None:
    """Send every REST call of this process to ``api_base``."""
    Route.BASE = api_base.rstrip("/")


def use_gateway(url: str) -> None:
    """Open the gateway websocket at ``url`` (discord.py adds its own query)."""
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)


async def discover_gateway(http: discord.http.HTTPClient) -> str:
    """Ask the REST server for its gateway URL (``GET /gateway/bot``)."""
    _shards, url, _limits = await http.get_bot_gateway()
    return url
