"""Every cog the bot has, wired in one function: ``add_cogs``.

Adding a command family means writing its cog under ``commands/`` and adding
one line here (``docs/adding-a-command.md``). Everything a cog needs is built
from ``Settings`` once per bot: the one ``ApiClient`` for external calls, the
per-command limits, the Azure client.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
from yarl import URL

from bot.config import Settings
from commands.azure.aci_cog import Azure
from commands.builds import BuildkiteSource, Builds
from commands.core import Core
from commands.fun import Fun
from commands.help import slash_help
from commands.http_backed.commands_file import load_commands
from commands.http_backed.http_commands import HttpCommands
from commands.labs import Labs
from commands.mtg import Mtg
from commands.ops.deploys import Deploys
from commands.ops.trace_cog import Traces
from commands.toolkit.api_client import ApiClient
from commands.toolkit.flag_checks import flag_check
from commands.toolkit.limits import Limits
from commands.toolkit.token_bucket import TokenBucket
from telemetry.setup import package_version

if TYPE_CHECKING:
    from bot.client import ChatOpsBot


async def add_cogs(bot: ChatOpsBot) -> None:
    """Add every cog to ``bot`` (called once, from ``setup_hook``).

    The commands file's cog comes last, so a declared command that takes a
    built-in name is refused (``CommandsFileError``) rather than shadowing it.
    """
    settings = bot.settings
    await bot.add_cog(
        Core(bot, version=package_version(), commit=settings.git_commit, started_at=bot.started_at)
    )
    await bot.add_cog(Labs())
    await bot.add_cog(
        Traces(settings.span_store_path, links=settings.trace_links, dataset=settings.service_name)
    )
    api = build_api_client(settings, bot.http_session)
    await bot.add_cog(
        Builds(
            bot,
            channel_id=settings.ci_announce_channel_id,
            datasets={
                "circleci": settings.circleci_hook_service,
                "buildkite": settings.buildkite_service_name,
            },
            buildkite=buildkite_source(settings, api),
        )
    )
    bot.tree.add_command(slash_help)

    limits = external_limits(settings)
    await bot.add_cog(Fun(api, catfact_url=settings.catfact_api_url, limits=limits))
    await bot.add_cog(Mtg(api, base_url=settings.scryfall_api_url, limits=limits))
    # Always present: without AZURE_SUBSCRIPTION_ID the commands answer "not configured".
    await bot.add_cog(
        Azure(
            bot.aci,
            confirm_timeout_s=settings.azure_confirm_timeout_s,
            logs_tail=settings.azure_logs_tail,
            audit=bot.audit,
        )
    )
    deploys = deploys_cog(bot, settings)
    if deploys is not None:
        await bot.add_cog(deploys)
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


def buildkite_source(settings: Settings, api: ApiClient) -> BuildkiteSource | None:
    """Where ``!builds`` asks BuildKite, when a token and an org are set."""
    token = settings.buildkite_api_token
    if token is None or not settings.buildkite_org:
        return None
    return BuildkiteSource(
        api,
        str(settings.buildkite_api_url),
        token.get_secret_value(),
        settings.buildkite_org,
        tuple(settings.buildkite_pipelines),
    )


def external_limits(settings: Settings) -> Limits:
    return Limits(
        rate=settings.external_cooldown_rate,
        per=settings.external_cooldown_per_s,
        concurrency=settings.external_max_concurrency,
    )


def deploys_cog(bot: ChatOpsBot, settings: Settings) -> Deploys | None:
    """Deploy before/after (docs/ops-loop.md): from Honeycomb when ``HONEYCOMB_QUERY_KEY``
    is set, else from the span store; None when neither is available."""
    from commands.ops.deploys import LIST_DAYS, HoneycombSource, StoreSource
    from telemetry.deploy_review import Reviews, Thresholds

    thresholds = Thresholds(p95_pct=settings.deploy_regression_pct)
    window = settings.deploy_review_window_s
    store = settings.span_store_path
    source: StoreSource | HoneycombSource
    if settings.honeycomb_query_key is not None:
        source = HoneycombSource(
            str(settings.honeycomb_api_url),
            settings.honeycomb_query_key.get_secret_value(),
            settings.service_name,
            window,
            thresholds,
        )
    elif store is not None:
        source = StoreSource(store, window, thresholds)
    else:
        return None
    # A missed deploy is reviewed as far back as its figures are kept: the span store's
    # retention, or the last LIST_DAYS days of Honeycomb's.
    lookback_s = float(LIST_DAYS * 86_400)
    if isinstance(source, StoreSource):
        lookback_s = settings.span_store_max_age.total_seconds()
    state = settings.deploy_review_state_db or (
        store.with_name("deploy-reviews.db") if store else Path(".chatops/deploy-reviews.db")
    )
    return Deploys(
        bot,
        source,
        Reviews(state),
        channel_id=settings.audit_channel_id,
        window_s=window,
        poll_s=settings.deploy_review_poll_s,
        lookback_s=lookback_s,
    )
