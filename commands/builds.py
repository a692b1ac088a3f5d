"""CI announcements in chat, and ``!builds`` (``/builds``): finished runs as CI reports them.

The CircleCI receiver and the BuildKite poller call ``announce`` for every
finished run (telemetry/pipeline/events.py); this cog keeps the last few in
memory and posts an embed to the configured channel.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from commands.toolkit.hybrid import hybrid_command
from commands.toolkit.replies import reply, send_to
from commands.toolkit.trace_refs import NO_LINKS, TraceTarget, trace_target_of
from telemetry.pipeline.events import PipelineEvent, announcement_span

log = logging.getLogger(__name__)

RECENT_BUILDS = 50
SHOWN_BUILDS = 10
RESULT_STYLE = {
    "success": ("\u2705", discord.Colour.green()),
    "failure": ("\u274c", discord.Colour.red()),
    "error": ("\u26a0\ufe0f", discord.Colour.orange()),
    "cancellation": ("\u23f9\ufe0f", discord.Colour.light_grey()),
}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def summary(event: PipelineEvent) -> str:
    """One line per run: result, pipeline, branch, commit, duration."""
    icon, _ = RESULT_STYLE.get(event.result, ("\u2754", None))
    commit = f" `{event.commit[:8]}`" if event.commit else ""
    branch = f" on `{event.branch}`" if event.branch else ""
    took = _duration(event.duration_s)
    return f"{icon} **{event.pipeline}**{branch}{commit}: {event.result} in {took}"


def embed_for(
    event: PipelineEvent, target: TraceTarget = NO_LINKS, dataset: str | None = None
) -> discord.Embed:
    """The announcement; with Honeycomb configured, a ``trace`` field links the run's trace
    (in ``dataset``, the CI service's; the footer keeps the bare id either way)."""
    icon, colour = RESULT_STYLE.get(event.result, ("\u2754", discord.Colour.default()))
    embed = discord.Embed(
        title=f"{icon} {event.pipeline}: {event.result}",
        url=event.url,
        colour=colour or discord.Colour.default(),
    )
    embed.add_field(name="branch", value=event.branch or "?")
    embed.add_field(name="commit", value=(event.commit or "?")[:12])
    embed.add_field(name="duration", value=_duration(event.duration_s))
    if target.links is not None:
        link = target.in_embed(event.trace_id, dataset=dataset, start_s=event.start_s)
        embed.add_field(name="trace", value=link, inline=False)
    embed.set_footer(text=f"{event.system} run {event.run_id} \u00b7 trace {event.trace_id}")
    return embed


def matches(name: str, wanted: str) -> bool:
    """``!builds app`` finds ``My-App`` and ``app-deploy``: case-insensitive, by substring."""
    return wanted.strip().casefold() in name.casefold()


class Builds(commands.Cog):
    """Recent CI runs, announced as they finish."""

    def __init__(
        self,
        bot: commands.Bot,
        *,
        channel_id: int | None,
        datasets: Mapping[str, str] | None = None,
    ) -> None:
        self.bot = bot
        self.channel_id = channel_id
        # Where each CI system's traces are (its service name), for trace links.
        self.datasets = dict(datasets or {})
        self.recent: deque[PipelineEvent] = deque(maxlen=RECENT_BUILDS)

    async def announce(self, event: PipelineEvent) -> None:
        """Remember the run and post it to the announcement channel, if one is set."""
        self.recent.appendleft(event)
        if self.channel_id is None:
            return
        channel = self.bot.get_channel(self.channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            log.warning("CI_ANNOUNCE_CHANNEL_ID %s is not a channel I can see", self.channel_id)
            return
        with announcement_span(event):
            target = trace_target_of(self.bot)
            dataset = self.datasets.get(event.system, event.system)
            await send_to(channel, embed=embed_for(event, target, dataset))

    @hybrid_command(help="Recent CI runs, newest first; optionally of one pipeline.")
    @app_commands.describe(pipeline="Only runs of pipelines whose name contains this")
    async def builds(self, ctx: commands.Context[Any], pipeline: str | None = None) -> None:
        runs = [e for e in self.recent if pipeline is None or matches(e.pipeline, pipeline)]
        if not runs:
            which = f" of `{pipeline}`" if pipeline else ""
            await reply(ctx, f"No finished runs{which} seen since I started.")
            return
        await reply(ctx, "\n".join(summary(event) for event in runs[:SHOWN_BUILDS]))
