"""Deploy before/after: per-command p95 and error rate in the window before a deploy marker
and the window after it, from the span store, with regressions flagged.

Pure over a ``SpanStore`` (``telemetry.query.stats`` does the counting), plus the small
SQLite file that remembers which markers were reviewed and their verdict, so a bot that
restarts neither reposts a review nor forgets one.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from telemetry.query import StatsRow, Window, stats
from telemetry.store_read import Marker, SpanStore

NS = 1_000_000_000


@dataclass(frozen=True)
class Thresholds:
    """What counts as a regression (docs/ops-loop.md, "Deploy before/after")."""

    p95_pct: float = 25.0  # p95 up by more than this share...
    p95_min_ms: float = 50.0  # ...and by at least this much
    error_points: float = 2.0  # error rate up by this many percentage points
    min_count: int = 5  # fewer runs on either side: not judged


@dataclass(frozen=True)
class CommandChange:
    command: str
    before: StatsRow | None
    after: StatsRow | None
    regressions: tuple[str, ...]


@dataclass(frozen=True)
class Review:
    marker: Marker
    window_s: float
    changes: list[CommandChange]

    @property
    def regressed(self) -> list[CommandChange]:
        return [c for c in self.changes if c.regressions]

    @property
    def verdict(self) -> str:
        """``ok``, ``regressed: mtg, roll`` or ``no traffic``."""
        if not any(c.after for c in self.changes):
            return "no traffic"
        if self.regressed:
            return "regressed: " + ", ".join(c.command for c in self.regressed)
        return "ok"


def marker_key(marker: Marker) -> str:
    return f"{marker.time_ns}:{marker.version}"


def _judge(before: StatsRow | None, after: StatsRow | None, t: Thresholds) -> tuple[str, ...]:
    if before is None or after is None or min(before.count, after.count) < t.min_count:
        return ()
    found: list[str] = []
    grew = after.p95_ms - before.p95_ms
    if grew >= t.p95_min_ms and after.p95_ms > before.p95_ms * (1 + t.p95_pct / 100):
        found.append(f"p95 {before.p95_ms:.0f} \u2192 {after.p95_ms:.0f} ms")
    if (after.error_rate - before.error_rate) * 100 >= t.error_points:
        found.append(f"errors {before.error_rate:.1%} \u2192 {after.error_rate:.1%}")
    return tuple(found)


def compare(
    marker: Marker,
    window_s: float,
    before: dict[str, StatsRow],
    after: dict[str, StatsRow],
    thresholds: Thresholds | None = None,
) -> Review:
    """The review of ``marker`` from per-command figures on each side, busiest after first."""
    t = thresholds or Thresholds()

    def busy(command: str) -> int:
        row = after.get(command) or before.get(command)
        return row.count if row is not None else 0

    changes = [
        CommandChange(c, before.get(c), after.get(c), _judge(before.get(c), after.get(c), t))
        for c in sorted({*before, *after}, key=lambda c: (-busy(c), c))
    ]
    return Review(marker, window_s, changes)


def review(
    store: SpanStore, marker: Marker, window_s: float, thresholds: Thresholds | None = None
) -> Review:
    """Compare ``[marker - window, marker)`` with ``[marker, marker + window]``, per command,
    from the span store."""
    width = int(window_s * NS)

    def side(start_ns: int, end_ns: int) -> dict[str, StatsRow]:
        rows = stats(store, window=Window(start_ns, end_ns))
        return {str(r.group): r for r in rows if r.group is not None}

    before = side(marker.time_ns - width, marker.time_ns - 1)
    after = side(marker.time_ns, marker.time_ns + width)
    return compare(marker, window_s, before, after, thresholds)


# The columns a Honeycomb Query Data result names its calculations by.
COUNT = "COUNT"
P95 = "P95(duration_ms)"
ERROR_RATE = "AVG(app.is_error)"


def window_spec(start_s: int, end_s: int) -> dict[str, object]:
    """A Honeycomb query for one side: count, p95 and error rate per command, root spans."""
    return {
        "start_time": start_s,
        "end_time": end_s,
        "breakdowns": ["app.command"],
        "calculations": [
            {"op": "COUNT"},
            {"op": "P95", "column": "duration_ms"},
            {"op": "AVG", "column": "app.is_error"},
        ],
        "filters": [
            {"column": "trace.parent_id", "op": "does-not-exist"},
            {"column": "app.outcome", "op": "!=", "value": "autocomplete"},
        ],
        "limit": 100,
    }


def rows_from_results(results: list[dict[str, object]]) -> dict[str, StatsRow]:
    """Per-command figures from Query Data result rows (p50, p99 and max are not asked)."""
    rows: dict[str, StatsRow] = {}
    for result in results:
        command = result.get("app.command")
        count = result.get(COUNT)
        if not isinstance(command, str) or not isinstance(count, int | float) or count <= 0:
            continue
        p95 = result.get(P95)
        rate = result.get(ERROR_RATE)
        error_rate = float(rate) if isinstance(rate, int | float) else 0.0
        p95_ms = float(p95) if isinstance(p95, int | float) else 0.0
        rows[command] = StatsRow(
            command, int(count), round(error_rate * count), error_rate, 0.0, p95_ms, 0.0, 0.0
        )
    return rows


class Reviews:
    """Which markers were reviewed, and the verdict: one small SQLite file."""

    def __init__(self, path: Path) -> None:
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS reviews (marker TEXT PRIMARY KEY, verdict TEXT NOT NULL)"
        )

    def verdict(self, marker: Marker) -> str | None:
        row = self._db.execute(
            "SELECT verdict FROM reviews WHERE marker = ?", (marker_key(marker),)
        ).fetchone()
        return str(row[0]) if row else None

    def record(self, marker: Marker, verdict: str) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO reviews VALUES (?, ?)", (marker_key(marker), verdict)
            )

    def close(self) -> None:
        self._db.close()
