"""Benchmark: the span store's queries over 1,000,000 root spans, as whole ``chatops`` runs.

Run as ``python tests/bench/bench_stats.py [--spans N] [--store PATH] [--rounds R]``.
It prints numbers and asserts nothing.

1. Fill (unless ``--store`` names an existing store): root spans with the attributes a
   message's root really carries (ids, names, args, response), built as SDK
   ``ReadableSpan`` objects and written through ``span_row`` and ``insert_rows``,
   the exporter's own path. 8 commands, 5,000 authors, 20 guilds, 200 channels,
   spread evenly over 7 days.
2. In-process query times (``telemetry.query`` only, no start-up), and the bytes the
   store keeps per root span for ``--by`` an attribute with no column (``root_values``).
3. Whole-CLI wall times: each verb as its own ``python -m bot ...`` process with
   ``SPAN_STORE`` pointing at the store, rounds interleaved (one warm-up round not
   counted); median, min and max wall time, and the median CPU time (user + sys) of
   the process, which is less disturbed by other load on the machine. With
   ``--baseline CODE STORE`` the same verbs run, interleaved, from another checkout
   against the store that version filled, so both columns share the machine's mood.
4. With ``--retention``: retention on a copy of the store (the copy is trimmed, not
   the store), through the exporter, as the export thread would run it.
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import Event, ReadableSpan  # noqa: E402
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode  # noqa: E402

from telemetry import query, schema  # noqa: E402
from telemetry.store import SpanRow, SpanStore, insert_rows, span_row  # noqa: E402
from telemetry.store_schema import connect_writer  # noqa: E402

COMMANDS = ["ping", "catfact", "mtg", "aci restart", "aci status", "help", "roll", "ci status"]
OUTCOMES = [schema.Outcome.OK] * 90 + [schema.Outcome.ERROR] * 3 + [schema.Outcome.BAD_INPUT] * 7
SPAN_DAYS = 7
# A few argument texts per command: 18 groups for ``--by app.command.args``.
ARGS = {
    "ping": [""],
    "help": ["", "roll", "mtg"],
    "catfact": [""],
    "mtg": ["t:dragon c:r", "o:flying", "t:goblin"],
    "aci restart": ["bot-staging", "bot-prod"],
    "aci status": ["bot-staging", "bot-prod"],
    "roll": ["2d6", "1d20", "d100", "4d6"],
    "ci status": ["main", "release"],
}
# A verb using more CPU seconds than this in the warm-up round runs in one counted
# round only (the old store's ``--by`` on an attribute without a column took minutes).
SLOW_S = 20.0


def spans(count: int, now_ns: int) -> Iterator[ReadableSpan]:
    """Root spans spread evenly over ``SPAN_DAYS`` before ``now_ns``, log-normal durations."""
    rng = random.Random(6)
    resource_ = Resource.create({"service.name": "chatops-bot", "service.version": "0.1.0"})
    total_ns = SPAN_DAYS * 86400 * 10**9
    step = total_ns // count
    for i in range(count):
        command = rng.choice(COMMANDS)
        author = 100_000 + rng.randrange(5_000)
        guild = 900 + rng.randrange(20)
        channel = guild * 1000 + rng.randrange(10)
        outcome = rng.choice(OUTCOMES)
        duration = int(rng.lognormvariate(17.5, 1.0))
        start = now_ns - total_ns + i * step
        attributes: dict[str, str | int] = {
            schema.MESSAGE_ID: str(1_200_000_000_000_000_000 + i),
            schema.CHANNEL_ID: str(channel),
            schema.AUTHOR_NAME: f"user{author}",
            schema.SHARD_ID: 0,
            schema.GUILD_NAME: f"guild {guild}",
            schema.AUTHOR_ID: str(author),
            schema.GUILD_ID: str(guild),
            schema.COMMAND: command,
            schema.COMMAND_ARGS: rng.choice(ARGS[command]),
            schema.OUTCOME: outcome.value,
            schema.RESPONSE: f"{command}: answered in {duration // 1_000_000} ms",
        }
        events = []
        status = Status(StatusCode.UNSET)
        if outcome is schema.Outcome.ERROR:
            attributes[schema.ERROR_TYPE] = "TimeoutError"
            attributes[schema.ERROR_MESSAGE] = "the upstream API did not answer in time"
            status = Status(StatusCode.ERROR, "TimeoutError")
            events.append(
                Event("exception", {"exception.type": "TimeoutError"}, timestamp=start + duration)
            )
        yield ReadableSpan(
            name=f"command {command}",
            context=SpanContext(rng.getrandbits(128) | 1, rng.getrandbits(64) | 1, False),
            parent=None,
            resource=resource_,
            attributes=attributes,
            events=events,
            kind=SpanKind.SERVER,
            status=status,
            start_time=start,
            end_time=start + duration,
        )


def fill(path: Path, count: int, now_ns: int) -> None:
    conn = connect_writer(path)
    started = time.perf_counter()
    batch: list[SpanRow] = []
    for span in spans(count, now_ns):
        batch.append(span_row(span))
        if len(batch) == 50_000:
            insert_rows(conn, batch)
            batch.clear()
    if batch:
        insert_rows(conn, batch)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    took = time.perf_counter() - started
    size = path.stat().st_size / 1024 / 1024
    print(f"filled {count:,} root spans in {took:.1f} s ({size:.0f} MiB) at {path}")


def timed(label: str, action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    elapsed = time.perf_counter() - started
    print(f"  {label:<44} {elapsed:7.3f} s")
    return elapsed


def in_process(path: Path, now_ns: int) -> None:
    print("\nin-process query times (no CLI start-up):")
    window = query.Window.last(timedelta(days=SPAN_DAYS), now_ns)
    with SpanStore.open(path) as store:
        timed("stats --since 7d (by command)", lambda: query.stats(store, window=window))
        timed(
            "stats --since 24h",
            lambda: query.stats(store, window=query.Window.last(timedelta(days=1), now_ns)),
        )
        timed(
            "stats --since 7d --by author (5,000 groups)",
            lambda: query.stats(store, window=window, by="author"),
        )
        timed(
            "stats --since 7d --where app.outcome=error",
            lambda: query.stats(store, window=window, where=[query.Where("app.outcome", "error")]),
        )
        timed(
            f"stats --since 7d --by {schema.GUILD_NAME}",
            lambda: query.stats(store, window=window, by=schema.GUILD_NAME),
        )
        # No column: each root span's value from its write's root_values.
        for key in (schema.COMMAND_ARGS, schema.CHANNEL_ID, schema.RESPONSE):
            timed(
                f"stats --since 7d --by {key} (no column)",
                functools.partial(query.stats, store, window=window, by=key),
            )
        timed(
            f"stats --since 7d --where {schema.COMMAND_ARGS}=2d6 (no column)",
            functools.partial(
                query.stats,
                store,
                window=window,
                where=[query.Where(schema.COMMAND_ARGS, "2d6")],
            ),
        )
        if "root_values" in store.layout.tables:
            roots, json_bytes = store.conn.execute(
                "SELECT count(*), sum(length(attributes)) FROM spans WHERE is_root = 1"
            ).fetchone()
            (value_bytes,) = store.conn.execute("SELECT sum(length(vals)) FROM root_values")
            print(
                f"  (root_values: {value_bytes[0] / roots:.0f} bytes a root span, "
                f"its JSON {json_bytes / roots:.0f})"
            )
        timed("stats --since 7d --heatmap", lambda: query.heatmap(store, window=window))
        timed("traces --slowest 10 --since 7d", lambda: query.slowest(store, window=window))


def cli_verbs(trace_id: str) -> list[list[str]]:
    return [
        ["--help"],
        ["stats"],
        ["stats", "--since", "7d"],
        ["stats", "--since", "7d", "--heatmap"],
        ["stats", "--since", "7d", "--where", "app.outcome=error"],
        ["stats", "--since", "7d", "--by", "command"],
        ["stats", "--since", "7d", "--by", "author"],
        ["stats", "--since", "7d", "--by", schema.GUILD_NAME],
        ["stats", "--since", "7d", "--by", schema.COMMAND_ARGS],
        ["stats", "--since", "7d", "--by", schema.RESPONSE],
        ["stats", "--since", "7d", "--where", f"{schema.COMMAND_ARGS}=2d6"],
        ["trace", trace_id],
        ["traces", "--slowest", "10", "--since", "7d"],
    ]


def run_cli(args: list[str], env: dict[str, str], code: Path) -> tuple[float, float]:
    """Wall and CPU (user + sys) seconds of one ``python -m bot ARGS`` process run in ``code``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=env,
        cwd=code,  # ``-m`` imports the ``bot`` package found here first
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"chatops {' '.join(args)} failed: {done.stderr.decode().strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


@dataclass
class Seat:
    """One version of the code with the store it wrote, and what its runs measured."""

    name: str
    code: Path
    store: Path
    walls: dict[int, list[float]] = field(default_factory=dict)
    cpus: dict[int, list[float]] = field(default_factory=dict)
    once: set[int] = field(default_factory=set)

    def trace_id(self) -> str:
        with SpanStore.open(self.store) as store:
            count = store.conn.execute("SELECT count(*) FROM spans").fetchone()[0]
            found = store.conn.execute("SELECT trace_id FROM spans WHERE id = ?", (count // 2,))
            return str(found.fetchone()[0])

    def cell(self, i: int) -> str:
        walls = self.walls[i]
        spread = f"{min(walls):.2f}–{max(walls):.2f}" if len(walls) > 1 else "once"
        return f"{statistics.median(walls):.2f} s ({spread})"


def warm(path: Path) -> None:
    """Read the store file once so the first runs do not time the disk."""
    with path.open("rb") as file:
        while file.read(1 << 20):
            pass


def whole_cli(seats: list[Seat], rounds: int) -> None:
    """Every verb in every seat, rounds interleaved, seats alternating within a round."""
    verbs = {seat.name: cli_verbs(seat.trace_id()) for seat in seats}
    count = len(verbs[seats[0].name])
    for seat in seats:
        warm(seat.store)
    for round_ in range(rounds + 1):
        for i in range(count):
            order = seats if (round_ + i) % 2 == 0 else list(reversed(seats))
            for seat in order:
                if i in seat.once and round_ > 1:
                    continue
                env = {**os.environ, "SPAN_STORE": str(seat.store), "NO_COLOR": "1"}
                wall, cpu = run_cli(verbs[seat.name][i], env, seat.code)
                if round_ == 0 and cpu > SLOW_S:
                    seat.once.add(i)  # measured once more, in the first round
                if round_ > 0:  # the warm-up round is not counted
                    seat.walls.setdefault(i, []).append(wall)
                    seat.cpus.setdefault(i, []).append(cpu)
    print(
        f"\nwhole CLI, wall time median (min–max) over {rounds} interleaved rounds after a "
        f"warm-up; a verb that took over {SLOW_S:.0f} s of CPU in the warm-up ran in one round:"
    )
    for seat in seats:
        print(f"  {seat.name}: code {seat.code}, SPAN_STORE={seat.store}")
    names = [seat.name for seat in seats]
    heads = [*(f"{n} wall" for n in names), *(f"{n} CPU" for n in names)]
    print("| command | " + " | ".join(heads) + " |")
    print("|---|" + "---|" * (2 * len(seats)))
    for i, args in enumerate(verbs[seats[0].name]):
        shown = "trace TRACE_ID" if args[0] == "trace" else " ".join(args)
        cpu = [f"{statistics.median(seat.cpus[i]):.2f} s" for seat in seats]
        print(f"| `chatops {shown}` | " + " | ".join([*(s.cell(i) for s in seats), *cpu]) + " |")


def retention(path: Path) -> None:
    """Trim copies of the store to 90% and to 10% of its size through the exporter.

    Each export call writes no spans, so what it takes is retention's slice. The copy
    is synced to disk first: trimming right behind 800 MB of dirty page cache would
    time the kernel's write-back, not the store.
    """
    from telemetry.store import SqliteSpanExporter, store_bytes

    print("\nretention through the exporter (on copies of the store):")
    for share in (0.9, 0.1):
        with tempfile.TemporaryDirectory(prefix="bench-trim-") as scratch:
            copy = Path(scratch) / "spans.db"
            shutil.copy(path, copy)
            with copy.open("rb+") as file:
                os.fsync(file.fileno())
            probe = connect_writer(copy)
            spans_before = probe.execute("SELECT count(*) FROM spans").fetchone()[0]
            limit = int(store_bytes(probe) * share)
            probe.close()
            exporter = SqliteSpanExporter(
                copy, max_age=timedelta(days=366), max_bytes=limit, retention_interval=timedelta(0)
            )
            calls: list[float] = []
            started = time.perf_counter()
            while True:
                began = time.perf_counter()
                exporter.export([])
                calls.append(time.perf_counter() - began)
                conn = exporter._connection()
                if store_bytes(conn) <= limit and not exporter._retention_pending:
                    break
                if len(calls) > 100_000:
                    print("  gave up after 100,000 export calls")
                    break
            total = time.perf_counter() - started
            removed = spans_before - conn.execute("SELECT count(*) FROM spans").fetchone()[0]
            exporter.shutdown()
            ordered = sorted(calls)
            p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
            print(
                f"  trim to {share:.0%} of its size ({removed:,} spans): "
                f"{len(calls):,} export calls, each median "
                f"{statistics.median(calls) * 1000:.0f} ms, p99 {p99:.0f} ms, "
                f"longest {max(calls) * 1000:.0f} ms; {total:.1f} s in all"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument(
        "--store", type=Path, help="use this store; fill it first if it does not exist (kept)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved CLI rounds")
    parser.add_argument(
        "--baseline",
        nargs=2,
        type=Path,
        metavar=("CODE", "STORE"),
        help="also time another version: a checkout of it (e.g. `git archive REV | tar -x "
        "-C CODE`) and a store it filled; its runs interleave with this one's",
    )
    parser.add_argument("--no-cli", action="store_true", help="skip the whole-CLI timings")
    parser.add_argument("--retention", action="store_true", help="also time retention")
    args = parser.parse_args()
    path = args.store or Path(tempfile.mkdtemp(prefix="bench-store-")) / "spans.db"
    if path.exists():
        with SpanStore.open(path) as store:
            now = store.conn.execute("SELECT max(start_ns) FROM spans").fetchone()[0] + 1
        print(f"using the existing store {path}")
    else:
        # Every row ends before now, so a default ``stats --since 24h`` sees a full day.
        now = time.time_ns() - 60 * 10**9
        fill(path, args.spans, now)
    in_process(path, now)
    if not args.no_cli:
        seats = [Seat("this", ROOT, path)]
        if args.baseline:
            seats.insert(0, Seat("baseline", *args.baseline))
        whole_cli(seats, args.rounds)
    if args.retention:
        retention(path)


if __name__ == "__main__":
    main()
