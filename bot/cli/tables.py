"""Rich renderings of query results: tables for stats and traces, a heatmap, a waterfall.

Kept apart from the click verbs so a verb reads as "open, query, render" and the
drawing rules (units, bars, colours) live in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from rich.console import Group
from rich.table import Table
from rich.text import Text

from telemetry.query import Heatmap, StatsRow, TraceSummary, WaterfallRow

_SHADES = " ░▒▓█"
_BAR_WIDTH = 30


def ms(value: float) -> str:
    """A duration readable at a glance: µs below 1 ms, s above 10 s."""
    if value < 1:
        return f"{value * 1000:.0f} µs"
    if value >= 10_000:
        return f"{value / 1000:.1f} s"
    return f"{value:.1f} ms"


def when(time_ns: int) -> str:
    return datetime.fromtimestamp(time_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")


def stats_table(rows: list[StatsRow], by: str, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(by)
    for name in ("count", "errors", "p50", "p95", "p99", "max"):
        table.add_column(name, justify="right")
    for row in rows:
        rate = f"{row.error_rate:.1%}"
        table.add_row(
            row.group if row.group is not None else "(none)",
            f"{row.count:,}",
            Text(rate, style="red" if row.errors else ""),
            ms(row.p50_ms),
            ms(row.p95_ms),
            ms(row.p99_ms),
            ms(row.max_ms),
        )
    return table


def heatmap_text(heatmap: Heatmap) -> Text:
    """Slowest buckets on top, time left to right; markers as ▲ under their column."""
    out = Text()
    peak = max(heatmap.counts.values(), default=0)
    for bucket in reversed(heatmap.buckets):
        out.append(f"{ms(heatmap.bucket_floor_ms(bucket)):>10} │")
        for column in range(heatmap.columns):
            count = heatmap.counts.get((column, bucket), 0)
            shade = 0 if count == 0 else 1 + (len(_SHADES) - 2) * count // peak
            out.append(_SHADES[shade], style="yellow")
        out.append("\n")
    out.append(" " * 11 + "└" + "─" * heatmap.columns + "\n")
    placed = heatmap.marker_columns()
    if placed:
        line = [" "] * heatmap.columns
        for column, _ in placed:
            line[column] = "▲"
        out.append(" " * 12 + "".join(line) + "\n", style="bold magenta")
    start, end = when(heatmap.window.start_ns), when(heatmap.window.end_ns)
    gap = max(1, heatmap.columns - len(start) - len(end))
    out.append(" " * 12 + start + " " * gap + end + " UTC\n", style="dim")
    for _, marker in placed:
        out.append(f"  ▲ {when(marker.time_ns)}  {marker.version}", style="magenta")
        if marker.message:
            out.append(f"  {marker.message}")
        out.append("\n")
    out.append(f"  {heatmap.total:,} root spans; shade ∝ count (peak {peak:,} per cell)\n")
    return out


def waterfall_table(
    trace_id: str, rows: list[WaterfallRow], attributes: Sequence[str] | None = None
) -> Group:
    """Bars on a shared time axis, then each span's attributes (too wide for a column).

    ``attributes`` limits the details to those keys (the console shows a few).
    """
    total = max((r.offset_ms + r.duration_ms for r in rows), default=0.0) or 1.0
    table = Table(title=f"trace {trace_id}", title_justify="left")
    table.add_column("span", no_wrap=True)
    table.add_column("start", justify="right")
    table.add_column("duration", justify="right")
    table.add_column("", no_wrap=True)
    details = Text()
    for row in rows:
        left = min(int(row.offset_ms / total * _BAR_WIDTH), _BAR_WIDTH - 1)
        width = min(max(1, round(row.duration_ms / total * _BAR_WIDTH)), _BAR_WIDTH - left)
        style = "red" if row.status == "ERROR" else "cyan"
        bar = Text(" " * left) + Text("█" * width, style=style)
        indent = "  " * row.depth
        table.add_row(
            Text(indent + row.name, style="bold" if row.depth == 0 else ""),
            ms(row.offset_ms),
            ms(row.duration_ms),
            bar,
        )
        details.append(f"{indent}{row.name}", style="bold")
        details.append(f"  {row.span_id}  {row.status}\n", style="dim")
        for key, value in sorted(row.attributes.items()):
            if attributes is None or key in attributes:
                details.append(f"{indent}  {key}={_short(value)}\n")
        for event in row.events:
            details.append(f"{indent}  event {event['name']}\n", style="red")
    return Group(table, details)


def traces_table(rows: list[TraceSummary]) -> Table:
    table = Table(title="slowest traces", title_justify="left")
    table.add_column("trace id", no_wrap=True, min_width=32)
    for name in ("started (UTC)", "span", "outcome", "author"):
        table.add_column(name)
    table.add_column("duration", justify="right")
    for row in rows:
        table.add_row(
            row.trace_id,
            when(row.start_ns),
            row.name,
            row.outcome or "",
            row.author or "",
            ms(row.duration_ms),
        )
    return table


def _short(value: object, limit: int = 200) -> str:
    text = str(value).replace("\n", "\u21b5")
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
