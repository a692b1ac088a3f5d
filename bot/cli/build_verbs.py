"""``chatops builds``: recent finished CI runs from BuildKite, as ``!builds`` shows them in chat.

``!builds`` knows the runs announced since the bot started; this asks BuildKite's
REST API directly (``BUILDKITE_API_TOKEN``, ``BUILDKITE_ORG``, the pipelines of
``BUILDKITE_PIPELINES`` or the whole organisation), so it works without the bot.
``NAME`` matches as in chat: case-insensitive, part of the pipeline's name or slug.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from bot.cli.exits import Failure, settings
from bot.cli.output import console, emit_json, format_option
from telemetry.timespec import parse_timespan

if TYPE_CHECKING:
    from bot.config import Settings
    from telemetry.pipeline.events import PipelineEvent

ATTEMPTS = 3


@click.command(name="builds")
@click.argument("name", required=False)
@click.option("--since", default="24h", show_default=True, help="window, e.g. 30m, 24h, 7d")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@format_option()
def builds_command(name: str | None, since: str, limit: int, fmt: str) -> None:
    """Recent finished BuildKite builds, newest first; NAME: pipelines containing it (any case)."""
    import asyncio

    from telemetry.pipeline.buildkite import BuildkiteError

    config = settings()
    if config.buildkite_api_token is None or not config.buildkite_org:
        raise Failure("BUILDKITE_API_TOKEN and BUILDKITE_ORG must be set")
    try:
        window = parse_timespan(since)
    except ValueError as exc:
        raise Failure(f"--since: {exc}") from None
    try:
        runs = asyncio.run(_recent(config, window.total_seconds(), name))[:limit]
    except BuildkiteError as exc:
        raise Failure(str(exc)) from None
    if fmt == "json":
        emit_json([asdict(run) for run in runs])
    elif not runs:
        which = f" of pipelines matching {name!r}" if name else ""
        click.echo(f"no finished builds{which} in the last {since}")
    else:
        console().print(builds_table(runs, since))


async def _recent(config: Settings, seconds: float, name: str | None) -> list[PipelineEvent]:
    from datetime import UTC, datetime, timedelta

    import aiohttp

    from commands.builds import matches
    from telemetry.pipeline.buildkite import BuildkiteClient, build_spans

    assert config.buildkite_api_token is not None and config.buildkite_org
    start = datetime.now(UTC) - timedelta(seconds=seconds)
    found: list[tuple[str, PipelineEvent]] = []
    timeout = aiohttp.ClientTimeout(total=30, connect=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        client = BuildkiteClient(
            session,
            config.buildkite_api_url,
            config.buildkite_api_token.get_secret_value(),
            config.buildkite_org,
            max_attempts=ATTEMPTS,
        )
        pipelines: list[str | None] = [*config.buildkite_pipelines] or [None]
        for pipeline in pipelines:
            async for build in client.finished_builds(pipeline, start):
                made = build_spans(build)
                if made is None:
                    continue
                event = made[1]
                slug = _slug(build)
                if name is None or matches(event.pipeline, name) or matches(slug, name):
                    found.append((str(build.get("finished_at")), event))
    found.sort(key=lambda item: item[0], reverse=True)
    return [event for _, event in found]


def _slug(build: Any) -> str:
    pipeline = build.get("pipeline")
    return str(pipeline.get("slug") or "") if isinstance(pipeline, dict) else ""


def builds_table(runs: list[PipelineEvent], since: str) -> Table:
    table = Table(title=f"finished builds, last {since}", title_justify="left")
    for column in ("result", "pipeline", "branch", "commit", "duration", "url"):
        table.add_column(column, justify="right" if column == "duration" else "left")
    for run in runs:
        table.add_row(
            run.result,
            run.pipeline,
            run.branch or "",
            (run.commit or "")[:8],
            f"{run.duration_s:.0f} s" if run.duration_s is not None else "?",
            run.url or "",
        )
    return table
