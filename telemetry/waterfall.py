"""In-memory spans as waterfall rows, the same rows ``chatops trace`` reads from the store."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan

from telemetry.query import WaterfallRow


def rows_from_spans(spans: Sequence[ReadableSpan]) -> list[WaterfallRow]:
    """Depth-first by start time, each span under its parent (orphans at the top)."""
    ids = {span.context.span_id for span in spans if span.context}
    by_parent: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        parent = span.parent.span_id if span.parent and span.parent.span_id in ids else None
        by_parent.setdefault(parent, []).append(span)
    origin = min((span.start_time or 0 for span in spans), default=0)
    rows: list[WaterfallRow] = []

    def visit(parent: int | None, depth: int) -> None:
        for span in sorted(by_parent.get(parent, []), key=lambda s: s.start_time or 0):
            start = span.start_time or origin
            end = span.end_time or start
            span_id = span.context.span_id if span.context else 0
            rows.append(
                WaterfallRow(
                    depth=depth,
                    span_id=f"{span_id:016x}",
                    parent_id=f"{span.parent.span_id:016x}" if span.parent else None,
                    name=span.name,
                    offset_ms=(start - origin) / 1e6,
                    duration_ms=(end - start) / 1e6,
                    status=span.status.status_code.name,
                    attributes=dict(span.attributes or {}),
                    events=[{"name": event.name} for event in span.events],
                )
            )
            visit(span_id, depth + 1)

    visit(None, 0)
    return rows
