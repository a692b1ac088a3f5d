"""Wiring for the commands that call external APIs (issue 3): one ``ApiClient``, their cogs.

Kept out of ``setup_hook`` so the client stays a reader's map of where a
message goes; everything here is built from ``Settings`` once per bot.
"""

from __future__ import annotations

import aiohttp
from discord.ext import commands
from yarl import URL

from bot.config import Settings
from commands.fun import Fun
from commands.http_commands import FlagCheck, HttpCommands
from commands.http_config import load_commands
from commands.limits import Limits
from commands.mtg import Mtg
from telemetry.external import ApiClient
from telemetry.ratelimit import TokenBucket
from telemetry.setup import package_version


def user_agent() -> str:
    """Descriptive, as Scryfall asks: who we are and what we run on."""
    return f"chatops-bot/{package_version()} (Discord chat-ops bot; aiohttp/{aiohttp.__version__})"


def build_api_client(settings: Settings, session: aiohttp.ClientSession) -> ApiClient:
    scryfall = str(URL(settings.scryfall_api_url).origin())
    return ApiClient(
        session,
        user_agent=user_agent(),
        timeout=aiohttp.ClientTimeout(
            total=settings.external_timeout_s,
            connect=min(settings.external_connect_timeout_s, settings.external_timeout_s),
        ),
        max_bytes=settings.external_max_response_bytes,
        retry_backoff_s=settings.external_retry_backoff_s,
        typing_after_s=settings.external_typing_after_s,
        # Across the whole bot, never a burst: Scryfall asks for 50-100 ms between requests.
        limiters={scryfall: TokenBucket(settings.scryfall_rate_per_s, burst=1)},
    )


def external_limits(settings: Settings) -> Limits:
    return Limits(
        rate=settings.external_cooldown_rate,
        per=settings.external_cooldown_per_s,
        concurrency=settings.external_max_concurrency,
    )


async def add_external_cogs(
    bot: commands.Bot,
    settings: Settings,
    session: aiohttp.ClientSession,
    *,
    flag_check: FlagCheck | None = None,
) -> None:
    """Add Fun (with ``!catfact``), Mtg and the commands file's cog to ``bot``.

    Called after the built-in cogs, so a declared command that takes a built-in
    name is refused (``CommandsFileError``) rather than shadowing it.
    """
    api = build_api_client(settings, session)
    limits = external_limits(settings)
    await bot.add_cog(Fun(api, catfact_url=settings.catfact_api_url, limits=limits))
    await bot.add_cog(Mtg(api, base_url=settings.scryfall_api_url, limits=limits))
    specs = load_commands(settings.commands_file, reserved=set(bot.all_commands))
    if specs:
        await bot.add_cog(
            HttpCommands(
                api,
                specs,
                limits=limits,
                connect_timeout_s=settings.external_connect_timeout_s,
                flag_check=flag_check,
            )
        )
