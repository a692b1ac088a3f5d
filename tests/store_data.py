"""Random spans for span-store tests, written the exporter's way, and answers by brute force.

The brute force reads the spans the test made, never the store: a query that
agrees with it computed the same figures another way.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode

from telemetry import schema
from telemetry.query import PERCENTILES, StatsRow, Where, Window
from telemetry.store import insert_rows, span_row
from telemetry.store_schema import connect_writer

NOW = 1_800_000_000 * 10**9
HOUR = 3600 * 10**9
COMMANDS = ["ping", "mtg", "aci restart", "roll"]
OUTCOMES = ["ok"] * 6 + ["error", "bad_input", "denied"]
RESOURCE = Resource.create({"service.name": "chatops-test"})

# ``--by`` shorthands and the attribute they stand for.
SHORT = {
    "command": schema.COMMAND,
    "author": schema.AUTHOR_ID,
    "guild": schema.GUILD_ID,
    "outcome": schema.OUTCOME,
}


def random_spans(count: int, seed: int, *, hours: int = 48) -> list[ReadableSpan]:
    """``count`` root spans over the ``hours`` before ``NOW``, each with a child span.

    Durations repeat often (ties for the percentiles), some roots lack an
    attribute (a ``None`` group), errors carry an error type, and the shard id is
    an integer, as the bot records it.
    """
    rng = random.Random(seed)
    spans = []
    for _ in range(count):
        command = rng.choice(COMMANDS)
        outcome = rng.choice(OUTCOMES)
        guild = rng.randrange(6)
        duration = rng.choice([5, 10, 10, 20]) * 10**6 if rng.random() < 0.3 else None
        duration = duration or int(rng.lognormvariate(16, 1.2))
        start = NOW - rng.randrange(hours * HOUR)
        attributes: dict[str, str | int] = {
            schema.COMMAND: command,
            schema.OUTCOME: outcome,
            schema.AUTHOR_ID: str(rng.randrange(30)),
            schema.CHANNEL_ID: str(guild * 10 + rng.randrange(3)),
            schema.SHARD_ID: guild % 2,
            schema.COMMAND_ARGS: rng.choice(["", "2d6", "t:dragon", "x"]),
        }
        if rng.random() < 0.9:  # direct messages have no guild
            attributes[schema.GUILD_ID] = str(900 + guild)
            attributes[schema.GUILD_NAME] = f"guild {guild}"
        if outcome == "error":
            attributes[schema.ERROR_TYPE] = rng.choice(["TimeoutError", "HTTPException"])
        trace_id = rng.getrandbits(128) | 1
        root = SpanContext(trace_id, rng.getrandbits(64) | 1, False)
        spans.append(
            ReadableSpan(
                name=f"command {command}",
                context=root,
                parent=None,
                resource=RESOURCE,
                attributes=attributes,
                kind=SpanKind.SERVER,
                status=Status(StatusCode.ERROR if outcome == "error" else StatusCode.UNSET),
                start_time=start,
                end_time=start + duration,
            )
        )
        # A child carries the trace fields but is never counted: it is no root.
        spans.append(
            ReadableSpan(
                name=schema.SEND_SPAN,
                context=SpanContext(trace_id, rng.getrandbits(64) | 1, False),
                parent=root,
                resource=RESOURCE,
                attributes={schema.COMMAND: command, schema.AUTHOR_ID: "child"},
                kind=SpanKind.CLIENT,
                start_time=start + 1,
                end_time=start + 1 + duration // 2,
            )
        )
    return spans


def write(path: Path, spans: Sequence[ReadableSpan]) -> None:
    conn = connect_writer(path)
    try:
        insert_rows(conn, [span_row(span) for span in spans])
    finally:
        conn.close()


def text(value: object) -> str | None:
    """An attribute value as the store compares it: text, integers in decimal."""
    return None if value is None else str(value)


def value_of(span: ReadableSpan, key: str) -> str | None:
    if key == "name":
        return span.name
    return text((span.attributes or {}).get(SHORT.get(key, key)))


def roots_in(
    spans: Sequence[ReadableSpan], window: Window, where: Sequence[Where] = ()
) -> list[ReadableSpan]:
    return [
        span
        for span in spans
        if span.parent is None
        and window.start_ns <= (span.start_time or 0) <= window.end_ns
        and all(value_of(span, w.key) == w.value for w in where)
    ]


def nearest_rank(ordered: list[int], percentile: int) -> int:
    return ordered[max(1, math.ceil(percentile * len(ordered) / 100)) - 1]


def expected_stats(
    spans: Sequence[ReadableSpan], window: Window, by: str, where: Sequence[Where] = ()
) -> list[StatsRow]:
    """``stats`` by brute force: group, sort every group, index the sorted list."""
    groups: dict[str | None, list[ReadableSpan]] = {}
    for span in roots_in(spans, window, where):
        groups.setdefault(value_of(span, by), []).append(span)
    rows = []
    for group, members in groups.items():
        ordered = sorted((s.end_time or 0) - (s.start_time or 0) for s in members)
        errors = sum((s.attributes or {}).get(schema.OUTCOME) == "error" for s in members)
        p50, p95, p99 = (nearest_rank(ordered, p) / 1e6 for p in PERCENTILES)
        rows.append(
            StatsRow(
                group=group,
                count=len(ordered),
                errors=errors,
                error_rate=errors / len(ordered),
                p50_ms=p50,
                p95_ms=p95,
                p99_ms=p99,
                max_ms=ordered[-1] / 1e6,
            )
        )
    # Busiest first; ties by value, no value first (None and "" tie otherwise).
    rows.sort(key=lambda row: (-row.count, row.group is not None, row.group or ""))
    return rows
