"""CI announcements in chat, and ``!builds`` (``/builds``): finished runs as CI reports them.

The CircleCI receiver and the BuildKite poller call ``announce`` for every
finished run (telemetry/pipeline/events.py); this cog keeps the last few in
memory and posts an embed to the configured channel. With BuildKite configured
(``BUILDKITE_API_TOKEN`` and ``BUILDKITE_ORG``), ``!builds`` also asks its REST
API for the builds finished in the last ``BUILDKITE_WINDOW`` (one traced call per
pipeline of ``BUILDKITE_PIPELINES``, or one for the organisation), so the list
is there right after a restart too, as ``chatops builds`` shows it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from commands.toolkit.api_client import ApiClient
from commands.toolkit.hybrid import hybrid_command
from commands.toolkit.replies import reply, send_to
from commands.toolkit.trace_refs import NO_LINKS, TraceTarget, trace_target_of
from telemetry.pipeline.events import PipelineEvent, announcement_span

log = logging.getLogger(__name__)

RECENT_BUILDS = 50
SHOWN_BUILDS = 10
BUILDKITE_WINDOW = timedelta(hours=24)
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


@dataclass(frozen=True)
class BuildkiteSource:
    """Where ``!builds`` asks BuildKite for its finished builds (one page per pipeline)."""

    api: ApiClient
    base_url: str
    token: str = field(repr=False)
    org: str
    pipelines: Sequence[str] = ()
    window: timedelta = BUILDKITE_WINDOW

    async def finished(self, ctx: commands.Context[Any]) -> list[tuple[PipelineEvent, str]]:
        """Each finished build in the window, with its pipeline's slug (``!builds NAME`` matches
        either). Calls go through the bot's ``ApiClient``: one span each, timeouts, errors
        turned into a reply."""
        from telemetry.pipeline.buildkite import FINISHED_STATES, build_spans

        since = datetime.now(UTC) - self.window
        params = {
            "finished_from": since.isoformat().replace("+00:00", "Z"),
            "per_page": str(RECENT_BUILDS),
            # A build's jobs can be most of its size; the list needs none of them.
            "exclude_jobs": "true",
        }
        org = f"{self.base_url.rstrip('/')}/v2/organizations/{self.org}"
        urls = [f"{org}/pipelines/{slug}/builds" for slug in self.pipelines] or [f"{org}/builds"]
        found = []
        for url in urls:
            response = await self.api.request(
                "buildkite.builds",
                "GET",
                url,
                label="BuildKite API",
                params=params,
                headers={"Authorization": f"Bearer {self.token}"},
                ctx=ctx,
            )
            page = response.json()
            for build in page if isinstance(page, list) else []:
                if not isinstance(build, Mapping) or build.get("state") not in FINISHED_STATES:
                    continue
                made = build_spans(build)
                if made is not None:
                    pipeline = build.get("pipeline")
                    slug = pipeline.get("slug") if isinstance(pipeline, Mapping) else None
                    found.append((made[1], str(slug or "")))
        return found


def _finished_s(event: PipelineEvent) -> float:
    if event.start_s is None:
        return time.time()
    return event.start_s + (event.duration_s or 0.0)


class Builds(commands.Cog):
    """Recent CI runs, announced as they finish."""

    def __init__(
        self,
        bot: commands.Bot,
        *,
        channel_id: int | None,
        datasets: Mapping[str, str] | None = None,
        buildkite: BuildkiteSource | None = None,
    ) -> None:
        self.bot = bot
        self.channel_id = channel_id
        self.buildkite = buildkite
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
        if self.buildkite is not None:
            seen = {(e.system, e.run_id) for e in runs}
            asked = [
                event
                for event, slug in await self.buildkite.finished(ctx)
                if pipeline is None or matches(event.pipeline, pipeline) or matches(slug, pipeline)
            ]
            runs += [e for e in asked if (e.system, e.run_id) not in seen]
            runs.sort(key=_finished_s, reverse=True)
        if not runs:
            which = f" of `{pipeline}`" if pipeline else ""
            where = (
                f" in BuildKite's last {self.buildkite.window.total_seconds() / 3600:g} h or"
                if self.buildkite is not None
                else ""
            )
            await reply(ctx, f"No finished runs{which}{where} seen since I started.")
            return
        await reply(ctx, "\n".join(summary(event) for event in runs[:SHOWN_BUILDS]))
