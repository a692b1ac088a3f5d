"""Where a message enters: the ``commands.Bot`` subclass.

(An interaction, such as a slash command, enters in ``bot/command_tree.py``, the
command tree, and leaves through the same ``report_error``.)

``on_message`` opens the message's root span before command parsing; ``invoke``
runs the command inside it as discord.py's ``Bot.invoke`` does (``on_command``,
the command's ``@error`` handler, the cog's ``cog_command_error``,
``on_command_error`` listeners all run), then sends the failure through one
classification (``commands.toolkit.failures``), so the outcome, the reply and
the span agree. A command only raises; it never classifies its own errors.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import discord
from discord.ext import commands

from bot import gateway_health, ratelimit_spans
from bot.cogs import add_cogs, user_agent
from bot.command_tree import ChatOpsTree, capture_error
from bot.config import Settings, flags_config
from bot.endpoints import discover_gateway, use_api_base, use_gateway
from commands.builds import Builds
from commands.help import TracedHelpCommand
from commands.toolkit.failures import record_failure
from commands.toolkit.flags import shutdown_flags, start_flags
from commands.toolkit.interaction_state import defer
from commands.toolkit.limits import (
    ConcurrencyBound,
    UserRateLimit,
    check_argument_length,
    is_expensive,
)
from commands.toolkit.readable_input import check_readable
from commands.toolkit.replies import reply
from commands.toolkit.suggestions import unknown_command_answer
from commands.toolkit.trace_refs import TraceTarget
from telemetry import schema
from telemetry.pipeline.events import PipelineEvent
from telemetry.schema import Outcome
from telemetry.spans import MessageTrace, root_span

if TYPE_CHECKING:
    from opentelemetry.trace import SpanContext

    from bot.azure_wiring import AzureOptions
    from commands.azure.arm_client import Aci
    from commands.azure.watch import ContainerWatch
    from commands.ops.alerts import Alert, AlertPoster
    from commands.ops.audit import AuditLog

log = logging.getLogger(__name__)
# The collector's thresholds once ready: a young generation of 7,000 objects instead of
# CPython's 700. A traced message allocates a few thousand objects, so with 700 the
# collector ran young collections several times a message and a full one every few
# hundred, each walking what was imported after start-up. Measured (callgrind,
# bench_overhead.py): -0.03x to -0.07x instructions a message; peak RSS unchanged at
# 7,000, +1 MB at 20,000 for no further gain (docs/development.md).
GC_THRESHOLDS = (7000, 10, 10)

MAX_CACHED_MESSAGES = 200
# discord.py dispatches on_ready this long after the last GUILD_CREATE (2 s by default,
# time it needs to chunk members). This bot never chunks; /readyz does not wait for it
# either (``on_connect``: READY received, messages are answered from then on).
GUILD_READY_TIMEOUT_S = 0.5
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=20, connect=5)


def bot_intents() -> discord.Intents:
    """Only what bang-commands need: no members, no presences."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.dm_messages = True
    intents.message_content = True
    return intents


class ChatOpsBot(commands.Bot):
    """The bot: configuration in, cogs loaded in ``setup_hook``, one traced path per message."""

    def __init__(
        self, settings: Settings, *, azure: AzureOptions | None = None, **options: Any
    ) -> None:
        super().__init__(
            command_prefix=settings.bot_prefix,
            intents=bot_intents(),
            allowed_mentions=discord.AllowedMentions.none(),
            max_messages=MAX_CACHED_MESSAGES,
            chunk_guilds_at_startup=False,
            member_cache_flags=discord.MemberCacheFlags.none(),
            help_command=TracedHelpCommand(),
            tree_cls=ChatOpsTree,
            **{"guild_ready_timeout": GUILD_READY_TIMEOUT_S, **options},
        )
        self.settings = settings
        # Error replies and CI announcements link trace ids here (bare ids without a team).
        self.trace_target = TraceTarget(settings.trace_links, settings.service_name)
        self.started_at = time.monotonic()
        self.gateway_up = False
        self._frozen = False
        self._http_session: aiohttp.ClientSession | None = None
        self._azure_options = azure
        self.aci: Aci | None = None
        self.audit: AuditLog | None = None
        self.watch: ContainerWatch | None = None
        self.alerts: AlertPoster | None = None
        self.expensive = ConcurrencyBound(settings.max_concurrent_expensive)
        self.user_rate = UserRateLimit(settings.user_command_rate, settings.user_command_per_s)
        self.add_check(self.user_rate, call_once=True)
        self.before_invoke(self._defer_expensive)
        use_api_base(settings.discord_api_base)
        ratelimit_spans.install()
        gateway_health.install()
        interval = settings.gateway_health_interval_s
        self._startup = gateway_health.Startup.none()
        self.gateway_health = (
            gateway_health.GatewayHealth(lambda: self.latency, interval) if interval else None
        )

    @property
    def http_session(self) -> aiohttp.ClientSession:
        """The one client session for external APIs, created in ``setup_hook``."""
        if self._http_session is None:
            raise RuntimeError("the bot has not been set up yet")
        return self._http_session

    async def login(self, token: str) -> None:
        """discord.py's login (``/users/@me``, the application, our ``setup_hook``) and the
        first websocket upgrade as one ``startup`` trace, not parentless REST spans."""
        host = urlsplit(self.settings.discord_api_base).hostname or ""
        self._startup = gateway_health.Startup({schema.API_HOST: host})
        original = self.http.ws_connect

        async def ws_connect(*args: Any, **kwargs: Any) -> Any:
            with self._startup.current():  # only until READY: then no span is current
                return await original(*args, **kwargs)

        self.http.ws_connect = ws_connect  # type: ignore[method-assign]
        try:
            with self._startup.current():
                await super().login(token)
        except BaseException as exc:
            self._startup.failed(exc)
            raise

    async def setup_hook(self) -> None:
        start_flags(flags_config(self.settings))
        if self.settings.discord_gateway_url:
            use_gateway(self.settings.discord_gateway_url)
        elif self.settings.uses_custom_api:
            use_gateway(await discover_gateway(self.http))
        self._http_session = aiohttp.ClientSession(
            timeout=HTTP_TIMEOUT, headers={"User-Agent": user_agent()}
        )
        if self.settings.azure_subscription_id:
            # Imports the Azure packages: only when Azure is configured.
            from bot.azure_wiring import build_aci

            self.aci = build_aci(self.settings, self._azure_options)
        from bot.ops_wiring import audit_flag_changes, build_alerts, build_audit, build_watch

        self.alerts = build_alerts(self, self.settings)
        self.audit = build_audit(self, self.settings)
        if self.audit is not None:
            audit_flag_changes(self.audit, self.settings)
        await add_cogs(self)
        self.watch = build_watch(self, self.aci, self.settings)
        if self.watch is not None:
            self.watch.start()
        if self.gateway_health is not None:
            self.gateway_health.start()

    async def announce_pipeline(self, event: PipelineEvent) -> None:
        """The CI receiver's and poller's notifier: the ``Builds`` cog announces the run."""
        builds = self.get_cog("Builds")
        if isinstance(builds, Builds):
            await builds.announce(event)

    async def announce_alert(self, alert: Alert, hook: SpanContext | None) -> None:
        """The Honeycomb webhook's notifier: post the alert to ``ALERT_CHANNEL_ID``."""
        if self.alerts is None:
            log.warning("Honeycomb alert %s received before the bot was set up", alert.name)
            return
        await self.alerts.deliver(alert, hook)

    async def close(self) -> None:
        self.gateway_up = False
        self._startup.ready()
        if self.gateway_health is not None:
            await self.gateway_health.stop()
        if self.watch is not None:
            await self.watch.close()
        if self.audit is not None:
            await self.audit.close()
        await super().close()
        if self.alerts is not None:
            self.alerts.close()
        if self._http_session is not None:
            await self._http_session.close()
        if self.aci is not None:
            await self.aci.close()
            self.aci = None
        shutdown_flags()

    async def on_ready(self) -> None:
        if not self._frozen:
            # What start-up built lives as long as the process: keep the garbage
            # collector from walking it again on every collection.
            gc.freeze()
            gc.set_threshold(*GC_THRESHOLDS)
            self._frozen = True
        self.gateway_up = True
        self._startup.ready()
        self._note_gateway(gateway_health.READY)
        log.info("connected as %s to %d guild(s)", self.user, len(self.guilds))

    async def on_connect(self) -> None:
        """READY arrived: messages are dispatched (and answered) from now on, so ``/readyz``
        turns 200 here rather than ``guild_ready_timeout`` later at ``on_ready``."""
        self.gateway_up = True

    async def on_resumed(self) -> None:
        self.gateway_up = True
        self._note_gateway(gateway_health.RESUMED)

    async def on_disconnect(self) -> None:
        self.gateway_up = False
        self._note_gateway(gateway_health.DISCONNECT)

    def _note_gateway(self, what: str) -> None:
        if self.gateway_health is not None:
            self.gateway_health.note(what)

    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot:
            return
        with root_span(
            schema.ROOT_SPAN_MESSAGE, message_attributes(message), message_fields(message)
        ) as message_trace:
            ctx = await self.get_context(message)
            if ctx.command is None:
                await self._not_a_command(ctx, message_trace)
                return
            name, args = resolve_command(ctx)
            message_trace.command_resolved(name, args)
            await self.invoke(ctx)

    async def _not_a_command(self, ctx: commands.Context[Any], message_trace: MessageTrace) -> None:
        if not ctx.invoked_with:
            # Ordinary chat: its content is never recorded.
            message_trace.set_outcome(Outcome.IGNORED)
            return
        if self.settings.silent_unknown_commands:
            # Another bot may own the name: recorded, not answered, not rate-counted.
            message_trace.set_outcome(Outcome.UNKNOWN_COMMAND)
            return
        try:
            # An unknown command is answered too, so it counts against the same limit.
            await self.user_rate(ctx)
        except commands.CommandError as exc:
            await self.report_error(ctx, exc)
            return
        message_trace.set_outcome(Outcome.UNKNOWN_COMMAND)
        await reply(ctx, await unknown_command_answer(ctx, ctx.invoked_with))

    async def invoke(self, ctx: commands.Context[Any], /) -> None:
        """discord.py's ``Bot.invoke`` with the bot-wide limits, and the error reported in the span.

        discord.py's own error chain runs first (the command's ``@error``, the
        cog's ``cog_command_error``, then ``on_command_error`` listeners), so a
        cog written the usual discord.py way behaves as its author expects.
        """
        if ctx.command is None:
            return
        self.dispatch("command", ctx)
        try:
            args = resolve_command(ctx)[1]
            check_argument_length(args, self.settings.max_argument_chars)
            check_readable(args)
            if await self.can_run(ctx, call_once=True):
                async with self.expensive.slot(ctx.command):
                    await ctx.command.invoke(ctx)
            else:
                raise commands.CheckFailure("The global check once functions failed.")
        except commands.CommandError as exc:
            await ctx.command.dispatch_error(ctx, exc)
            await self.report_error(ctx, exc)
        else:
            self.dispatch("command_completion", ctx)

    def dispatch(self, event_name: str, /, *args: Any, **kwargs: Any) -> None:
        """Hybrid commands invoked as slash commands report errors here; keep them for the span.

        ``bot/command_tree.py`` reports them once the command returns; the
        event still reaches ``on_command_error`` listeners as usual.
        """
        if event_name == "command_error" and len(args) == 2:
            capture_error(*args)
        super().dispatch(event_name, *args, **kwargs)

    async def on_command_error(
        self, context: commands.Context[Any], exception: commands.CommandError, /
    ) -> None:
        """Replaces discord.py's default (a logged traceback): ``report_error`` reports instead."""

    async def _defer_expensive(self, ctx: commands.Context[Any]) -> None:
        """Before an expensive slash command runs (checks passed), tell Discord to wait.

        Its external calls can outlast Discord's 3 seconds; cheaper commands are
        deferred by a timer in ``bot/command_tree.py`` only if they turn out slow.
        """
        if ctx.interaction is not None and ctx.command is not None and is_expensive(ctx.command):
            await defer(ctx.interaction)

    async def report_error(self, ctx: commands.Context[Any], error: BaseException) -> None:
        """Record ``error`` on the root span and tell the user, once (privately, where possible).

        A command or cog with its own error handler answers for itself: the
        outcome is still recorded, but no second reply is sent.
        """
        classified = record_failure(error, ctx, what=f"command {ctx.command}")
        if not classified.reply or _handles_own_errors(ctx):
            return
        text = classified.reply
        if classified.outcome is Outcome.UNKNOWN_COMMAND and ctx.interaction is None:
            # A hidden command answers exactly as an unknown one: silent, or with suggestions.
            if self.settings.silent_unknown_commands:
                return
            text = await unknown_command_answer(ctx, ctx.invoked_with or "")
        try:
            await reply(ctx, text, ephemeral=True)
        except discord.HTTPException as exc:
            log.warning("could not send the error reply: %s", exc)


def _handles_own_errors(ctx: commands.Context[Any]) -> bool:
    """Whether the command or its cog defines a discord.py error handler."""
    command = ctx.command
    if not isinstance(command, commands.Command):
        return False  # a plain app command: discord.py's chain is the tree's on_error
    return command.has_error_handler() or (
        command.cog is not None and command.cog.has_error_handler()
    )


class ShardedChatOpsBot(ChatOpsBot, commands.AutoShardedBot):
    """The same bot running a range of shards (``SHARD_COUNT``, ``SHARD_IDS``) in one process.

    With an explicit shard count discord.py opens ``DEFAULT_GATEWAY``, which
    ``setup_hook`` has pointed at the configured or discovered gateway. The
    gateway is up (``/readyz``) while every shard this process runs is connected.
    """

    def __init__(self, settings: Settings, **options: Any) -> None:
        self._shards_up: set[int] = set()
        super().__init__(settings, **options)

    def _shard_state(self, shard_id: int, up: bool) -> None:
        if up:
            self._shards_up.add(shard_id)
        else:
            self._shards_up.discard(shard_id)
        wanted = set(self.shard_ids or range(self.shard_count or 1))
        self.gateway_up = wanted <= self._shards_up

    async def on_connect(self) -> None:
        """Per shard: readiness is decided in ``on_shard_connect``."""

    async def on_resumed(self) -> None:
        """Per shard: readiness is decided in ``on_shard_resumed``."""

    async def on_shard_connect(self, shard_id: int) -> None:
        self._shard_state(shard_id, True)

    async def on_shard_resumed(self, shard_id: int) -> None:
        self._shard_state(shard_id, True)

    async def on_shard_disconnect(self, shard_id: int) -> None:
        self._shard_state(shard_id, False)


def create_bot(settings: Settings, **options: Any) -> ChatOpsBot:
    """The bot for ``settings``: sharded when ``SHARD_COUNT`` or ``SHARD_IDS`` is set."""
    if settings.shard_count is None and not settings.shard_ids:
        return ChatOpsBot(settings, **options)
    shard_ids = settings.shard_ids or None
    shard_count = settings.shard_count or (max(shard_ids) + 1 if shard_ids else 1)
    return ShardedChatOpsBot(settings, shard_count=shard_count, shard_ids=shard_ids, **options)


def message_attributes(message: discord.Message) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        schema.MESSAGE_ID: str(message.id),
        schema.CHANNEL_ID: str(message.channel.id),
        schema.AUTHOR_NAME: message.author.name,
        schema.SHARD_ID: message.guild.shard_id if message.guild else 0,
    }
    if message.guild is not None:
        attributes[schema.GUILD_NAME] = message.guild.name
    return attributes


def message_fields(message: discord.Message) -> dict[str, Any]:
    fields = {schema.AUTHOR_ID: str(message.author.id)}
    if message.guild is not None:
        fields[schema.GUILD_ID] = str(message.guild.id)
    return fields


def resolve_command(ctx: commands.Context[Any]) -> tuple[str, str]:
    """The qualified name the message invokes (walking into groups) and its argument text."""
    command = ctx.command
    assert command is not None
    rest = ctx.view.buffer[ctx.view.index :].split()
    while isinstance(command, commands.Group) and rest:
        sub = command.all_commands.get(rest[0])
        if sub is None:
            break
        command = sub
        rest = rest[1:]
    return command.qualified_name, " ".join(rest)
