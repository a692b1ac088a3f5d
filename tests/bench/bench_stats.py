"""Benchmark: ``stats``, ``stats --by author`` and ``--heatmap`` over 1,000,000 root spans.

Run as ``python tests/bench/bench_stats.py [--spans N] [--keep PATH]``; prints timings,
asserts nothing. Rows are built directly (not through the SDK) so filling the store
takes seconds, but they go through the same ``insert_rows`` and indexes as the exporter.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from telemetry import query, schema
from telemetry.store import SpanRow, SpanStore, insert_rows
from telemetry.store_schema import connect_writer, duration_bucket

COMMANDS = ["ping", "catfact", "mtg", "aci restart", "aci status", "help", "roll", "ci status"]
OUTCOMES = [schema.Outcome.OK] * 90 + [schema.Outcome.ERROR] * 3 + [schema.Outcome.BAD_INPUT] * 7


def rows(count: int, now_ns: int, span: timedelta) -> Iterator[SpanRow]:
    """Root spans spread evenly over ``span`` before ``now_ns``, log-normal durations."""
    rng = random.Random(6)
    step = int(span.total_seconds() * 1e9) // count
    for i in range(count):
        command = rng.choice(COMMANDS)
        author = str(100_000 + rng.randrange(5_000))
        guild = str(900 + rng.randrange(20))
        outcome = rng.choice(OUTCOMES).value
        duration = int(rng.lognormvariate(17.5, 1.0))
        attributes = {
            schema.COMMAND: command,
            schema.AUTHOR_ID: author,
            schema.GUILD_ID: guild,
            schema.OUTCOME: outcome,
        }
        yield (
            f"{rng.getrandbits(128):032x}",
            f"{rng.getrandbits(64):016x}",
            None,
            f"command {command}",
            "SERVER",
            now_ns - int(span.total_seconds() * 1e9) + i * step,
            duration,
            duration_bucket(duration),
            "ERROR" if outcome == "error" else "UNSET",
            None,
            1,
            command,
            author,
            guild,
            outcome,
            "chatops-bot",
            json.dumps(attributes),
            None,
        )


def timed(label: str, action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    elapsed = time.perf_counter() - started
    print(f"{label:<34} {elapsed:7.3f} s")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="write the store here and keep it")
    args = parser.parse_args()
    path = args.keep or Path(tempfile.mkdtemp(prefix="bench-store-")) / "spans.db"
    now = time.time_ns()
    span = timedelta(days=7)

    conn = connect_writer(path)
    started = time.perf_counter()
    batch: list[SpanRow] = []
    for row in rows(args.spans, now, span):
        batch.append(row)
        if len(batch) == 50_000:
            insert_rows(conn, batch)
            batch.clear()
    if batch:
        insert_rows(conn, batch)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    fill = time.perf_counter() - started
    size = path.stat().st_size / 1024 / 1024
    print(f"filled {args.spans:,} root spans in {fill:.1f} s ({size:.0f} MiB) at {path}")

    window = query.Window.last(span, now)
    with SpanStore.open(path) as store:
        timed("stats (by command, 7d)", lambda: query.stats(store, window=window))
        timed(
            "stats --by author (5,000 groups)",
            lambda: query.stats(store, window=window, by="author"),
        )
        timed(
            "stats --where app.outcome=error",
            lambda: query.stats(store, window=window, where=[query.Where("app.outcome", "error")]),
        )
        timed(
            "stats --since 24h",
            lambda: query.stats(store, window=query.Window.last(timedelta(days=1), now)),
        )
        timed("stats --heatmap", lambda: query.heatmap(store, window=window))
        timed("traces --slowest 10", lambda: query.slowest(store, window=window, limit=10))


if __name__ == "__main__":
    main()
