"""A trace as a waterfall: one row per span, indented under its parent, with a time bar."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from rich.table import Table
from rich.text import Text

from telemetry import schema

# Attributes worth a glance in a waterfall; the rest stay in the store.
KEY_ATTRIBUTES = (
    schema.OUTCOME,
    schema.RESPONSE,
    schema.ERROR_TYPE,
    schema.FLAG_KEY,
    schema.FLAG_VARIANT,
    schema.AZURE_OPERATION,
    "http.method",
    "http.url",
    "http.status_code",
    "http.request.method",
    "url.full",
    "http.response.status_code",
)
BAR_WIDTH = 30


@dataclass(frozen=True)
class Row:
    name: str
    depth: int
    offset_ms: float
    duration_ms: float
    error: bool
    attributes: Mapping[str, Any]


def rows_from_spans(spans: Sequence[ReadableSpan]) -> list[Row]:
    """Order spans depth-first by start time, each under its parent."""
    by_parent: dict[int | None, list[ReadableSpan]] = {}
    ids = {span.context.span_id for span in spans if span.context}
    for span in spans:
        parent = span.parent.span_id if span.parent and span.parent.span_id in ids else None
        by_parent.setdefault(parent, []).append(span)
    roots = by_parent.get(None, [])
    if not roots:
        return []
    origin = min(span.start_time or 0 for span in roots)
    rows: list[Row] = []

    def walk(span: ReadableSpan, depth: int) -> None:
        start, end = span.start_time or origin, span.end_time or span.start_time or origin
        rows.append(
            Row(
                name=span.name,
                depth=depth,
                offset_ms=(start - origin) / 1e6,
                duration_ms=(end - start) / 1e6,
                error=span.status.status_code.name == "ERROR",
                attributes=dict(span.attributes or {}),
            )
        )
        children = by_parent.get(span.context.span_id if span.context else None, [])
        for child in sorted(children, key=lambda s: s.start_time or 0):
            walk(child, depth + 1)

    for root in sorted(roots, key=lambda s: s.start_time or 0):
        walk(root, 0)
    return rows


def render(rows: Sequence[Row], title: str | None = None) -> Table:
    """A rich table: name, offset, duration, a bar on the trace's timeline, key attributes."""
    total = max((row.offset_ms + row.duration_ms for row in rows), default=0.0) or 1.0
    table = Table(title=title, show_edge=False, pad_edge=False, box=None)
    table.add_column("span")
    table.add_column("start", justify="right")
    table.add_column("ms", justify="right")
    table.add_column("timeline")
    table.add_column("attributes", overflow="fold")
    for row in rows:
        lead = int(row.offset_ms / total * BAR_WIDTH)
        width = max(1, int(row.duration_ms / total * BAR_WIDTH))
        bar = Text(" " * lead + "\u2588" * min(width, BAR_WIDTH - lead))
        bar.stylize("red" if row.error else "cyan")
        attrs = ", ".join(
            f"{key}={_short(row.attributes[key])}"
            for key in KEY_ATTRIBUTES
            if key in row.attributes
        )
        table.add_row(
            Text("  " * row.depth + row.name, style="red" if row.error else ""),
            f"{row.offset_ms:.1f}",
            f"{row.duration_ms:.1f}",
            bar,
            attrs,
        )
    return table


def _short(value: Any, limit: int = 60) -> str:
    text = str(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
