"""``chatops stats|trace|traces|marker|honeycomb``: the operator's questions, from the terminal.

Each verb opens the local span store read-only (the bot may be writing it), asks
``telemetry.query`` and renders with rich, or prints JSON for scripts. Every
failure the operator can act on (no store yet, a bad ``--since``, an unknown trace,
Honeycomb down or refusing the key) is one line and exit code 2.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bot.cli.exits import Failure, settings
from bot.cli.output import FORMATS, console, emit_json
from bot.cli.tables import heatmap_text, stats_table, traces_table, waterfall_table
from bot.config import Settings
from telemetry.query import QueryError, Where, Window, busiest, heatmap, slowest, waterfall
from telemetry.store_read import Marker, SpanStore, StoreMissing, record_marker
from telemetry.timespec import parse_timespan

if TYPE_CHECKING:
    from telemetry import honeycomb

# Rows of a stats table by default: a terminal shows about this many, and rich takes
# seconds to lay out thousands (``--by author`` over a busy week).
TOP_ROWS = 50


def _store_path(cfg: Settings) -> Path:
    path = cfg.span_store_path
    if path is None:
        raise Failure("the span store is off (SPAN_STORE=off)")
    return path


def _open(cfg: Settings) -> SpanStore:
    try:
        return SpanStore.open(_store_path(cfg))
    except StoreMissing as exc:
        raise Failure(str(exc)) from None


def _window(since: str) -> Window:
    try:
        return Window.last(parse_timespan(since))
    except ValueError as exc:
        raise Failure(f"--since: {exc}") from None


@click.command(name="stats")
@click.option(
    "--by",
    default=None,
    help="command|author|guild|outcome|KEY  [default: command; with --service: cicd.pipeline.name]",
)
@click.option(
    "--service",
    default=None,
    help="only spans of this service.name: the bot's, or CI runs it received (circleci, buildkite)",
)
@click.option("--since", default="24h", show_default=True, help="window, e.g. 30m, 24h, 7d")
@click.option("--where", "wheres", multiple=True, metavar="KEY=VALUE", help="filter (repeatable)")
@click.option("--heatmap", "show_heatmap", is_flag=True, help="durations over time, with markers")
@click.option(
    "--top",
    type=click.IntRange(min=0),
    default=TOP_ROWS,
    show_default=True,
    help="table rows, busiest groups first; 0 for all (JSON always has all)",
)
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def stats_command(
    by: str | None,
    service: str | None,
    since: str,
    wheres: tuple[str, ...],
    show_heatmap: bool,
    top: int,
    fmt: str,
) -> None:
    """Latency and error rate of messages per command (or author, guild, outcome, any KEY).

    With --service, of the root spans of that service: CI pipelines by name, say.
    """
    cfg = settings()
    window = _window(since)
    by = by or ("cicd.pipeline.name" if service else "command")
    try:
        where = [Where.parse(text) for text in wheres]
        if service:
            where.append(Where("service.name", service))
        with _open(cfg) as store:
            if show_heatmap:
                result = heatmap(store, window=window, where=where)
                if fmt == "json":
                    emit_json(result.to_json())
                else:
                    console().print(heatmap_text(result))
                return
            # A table shows the busiest groups only (every group is computed, the rest cut).
            limit = None if fmt == "json" or not top else top
            shown, groups = busiest(store, window=window, by=by, where=where, top=limit)
    except QueryError as exc:
        raise Failure(str(exc)) from None
    if fmt == "json":
        emit_json([asdict(row) for row in shown])
    elif not shown:
        click.echo(f"no root spans in the last {since}")
    else:
        filters = "".join(f", {w.key}={w.value}" for w in where)
        table = stats_table(shown, by, f"root spans, last {since}{filters}")
        if len(shown) < groups:
            table.caption = (
                f"the {len(shown):,} busiest of {groups:,} groups: --top 0 or --format json for all"
            )
        console().print(table)


@click.command(name="trace")
@click.argument("trace_id")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def trace_command(trace_id: str, fmt: str) -> None:
    """The waterfall of one trace (a full id or a prefix of 8+ hex digits), with attributes."""
    cfg = settings()
    try:
        with _open(cfg) as store:
            rows = waterfall(store, trace_id)
    except QueryError as exc:
        raise Failure(str(exc)) from None
    if fmt == "json":
        emit_json([asdict(row) for row in rows])
    else:
        console().print(waterfall_table(trace_id, rows))


@click.command(name="traces")
@click.option("--slowest", "limit", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option("--command", "command", default=None, help="only this command, e.g. 'aci restart'")
@click.option("--since", default="24h", show_default=True)
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def traces_command(limit: int, command: str | None, since: str, fmt: str) -> None:
    """The slowest traces: candidates for ``chatops trace``."""
    cfg = settings()
    window = _window(since)
    with _open(cfg) as store:
        rows = slowest(store, window=window, limit=limit, command=command)
    if fmt == "json":
        emit_json([asdict(row) for row in rows])
    elif not rows:
        click.echo(f"no root spans in the last {since}")
    else:
        console().print(traces_table(rows))


@click.command(name="marker")
@click.option("--version", "version", required=True, help="the version deployed")
@click.option("--message", default=None, help="defaults to 'deploy VERSION'")
@click.option("--url", default=None, help="link to the build or release")
def marker_command(version: str, message: str | None, url: str | None) -> None:
    """Record a deployment marker locally (for --heatmap) and in Honeycomb when a key is set."""
    import asyncio

    from telemetry import honeycomb

    cfg = settings()
    path = _store_path(cfg)
    text = message or f"deploy {version}"
    now = time.time_ns()
    remote_id: str | None = None
    problem: str | None = None
    if cfg.honeycomb_marker_key is None:
        problem = "HONEYCOMB_MARKER_KEY is not set: marker recorded locally only"
    else:
        key = cfg.honeycomb_marker_key.get_secret_value()
        try:
            answer = asyncio.run(
                _send_marker(cfg, key, message=text, url=url, start_time=now // 1_000_000_000)
            )
            remote_id = str(answer.get("id")) if answer.get("id") else None
        except honeycomb.HoneycombError as exc:
            problem = f"marker recorded locally only; {exc}"
    record_marker(path, Marker(now, version, text, url, remote_id))
    if problem and cfg.honeycomb_marker_key is not None:
        raise Failure(problem)
    if problem:
        click.echo(problem)
    else:
        click.echo(f"marker {version} recorded locally and in Honeycomb dataset {cfg.service_name}")


async def _send_marker(
    cfg: Settings, key: str, *, message: str, url: str | None, start_time: int
) -> dict[str, Any]:
    from telemetry import honeycomb

    async with honeycomb.connect(cfg.honeycomb_api_url, key) as client:
        return await client.create_marker(
            cfg.service_name, message=message, url=url, start_time=start_time
        )


@click.group(name="honeycomb")
def honeycomb_group() -> None:
    """Honeycomb queries and board kept as code in infra/honeycomb/."""


@honeycomb_group.command(name="apply")
@click.option(
    "--dir", "directory", type=click.Path(path_type=Path), default=Path("infra/honeycomb")
)
@click.option("--dry-run", is_flag=True, help="show what would be written; send nothing")
def apply_command(directory: Path, dry_run: bool) -> None:
    """Create or update the derived column, queries and board (found by name) in Honeycomb."""
    import asyncio

    from telemetry import honeycomb

    cfg = settings()
    try:
        definitions = honeycomb.load_definitions(directory)
    except ValueError as exc:
        raise Failure(str(exc)) from None
    # A board may name its dataset ("__all__": environment-wide, as the CI board
    # spans the ci, circleci and buildkite datasets); else the bot's own.
    dataset = str(definitions.board.get("dataset") or cfg.service_name)
    if dry_run:
        for line in honeycomb.plan(definitions, dataset):
            click.echo(f"would apply {line}")
        return
    key = cfg.honeycomb_config_key or cfg.honeycomb_marker_key
    if key is None:
        raise Failure(
            "HONEYCOMB_CONFIG_KEY is not set (a configuration key with the "
            "Manage Queries and Columns and Manage Public Boards permissions)"
        )
    try:
        report = asyncio.run(_apply(cfg, key.get_secret_value(), definitions, dataset))
    except honeycomb.HoneycombError as exc:
        raise Failure(str(exc)) from None
    for line in report.lines:
        click.echo(line)


async def _apply(
    cfg: Settings, key: str, definitions: honeycomb.Definitions, dataset: str
) -> honeycomb.ApplyReport:
    from telemetry import honeycomb

    recipient = None
    if cfg.honeycomb_alert_webhook_url and cfg.honeycomb_webhook_secret:
        recipient = honeycomb.AlertRecipient(
            f"chatops-bot {cfg.service_name}",
            cfg.honeycomb_alert_webhook_url,
            cfg.honeycomb_webhook_secret.get_secret_value(),
        )
    async with honeycomb.connect(cfg.honeycomb_api_url, key) as client:
        return await honeycomb.apply(client, definitions, dataset, recipient)


COMMANDS: list[click.Command] = [
    stats_command,
    trace_command,
    traces_command,
    marker_command,
    honeycomb_group,
]
