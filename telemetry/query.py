"""Questions asked of the local span store: stats, heatmap, one trace's waterfall, slowest traces.

Pure functions over a ``SpanStore``: no printing, so the CLI renders them and tests
compare them with figures computed independently. Statistics read root spans only
(one per message) because "how slow is ``!mtg``" is a question about whole messages.

Percentiles are nearest-rank (the smallest duration with at least p% of the
durations at or below it). One pass over the window's root spans gathers each
group's durations, in C (``telemetry/store_sqlite.py``): the store's root spans are
indexed in start order only (``roots_start``), which the bot appends to cheaply, and a
million spans are read, grouped and sorted in 0.35-0.5 s. A group by an attribute
with no column takes each root span's value from what its write stored by key
(``root_values``), not from its JSON.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from array import array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple

from telemetry import schema, store_sqlite
from telemetry.store_read import Marker, SpanStore, read_markers
from telemetry.store_schema import (
    COLUMNS,
    COLUMNS_BY_NAME,
    PREFIX_DIGITS,
    ROOT_VALUES,
    ROOTS_START,
    TRACE_CHUNKS,
    attribute_names,
    bucket_floor_ms,
    json_path,
    json_text,
)

PERCENTILES = (50, 95, 99)
NS_PER_MS = 1_000_000

# Attribute names (and short aliases) that have their own column in ``spans``.
_COLUMNS = {"name": "name"}
for _column_ in COLUMNS:
    _COLUMNS.update(dict.fromkeys(_column_.attributes, _column_.name))
    if _column_.short:
        _COLUMNS[_column_.short] = _column_.name
# The resource's service.name is a column of its own: CI spans the bot receives are
# told apart from its own by it (``chatops stats --service buildkite``).
_COLUMNS["service.name"] = "service"
_KEY = re.compile(r"^[A-Za-z0-9_.\-]+$")
_HEX = re.compile(r"^[0-9a-f]+$")


class QueryError(ValueError):
    """A query the store cannot answer as asked (bad key, unknown trace); one line for the CLI."""


class NoSuchTrace(QueryError):
    """No stored trace has that id or prefix."""


class AmbiguousTrace(QueryError):
    """The prefix matches more than one stored trace."""


@dataclass(frozen=True)
class Window:
    """A time window ``[start_ns, end_ns]`` of span start times."""

    start_ns: int
    end_ns: int

    @classmethod
    def last(cls, since: timedelta, now_ns: int | None = None) -> Window:
        end = time.time_ns() if now_ns is None else now_ns
        return cls(end - int(since.total_seconds() * 1e9), end)


@dataclass(frozen=True)
class Where:
    """``KEY=VALUE``: an attribute (or span name) equal to a value, compared as text."""

    key: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Where:
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise QueryError(f"--where {text!r}: expected KEY=VALUE")
        _check_key(key)
        return cls(key, value.strip())


@dataclass(frozen=True)
class StatsRow:
    """Latency and errors of one group (a command, an author...) over the window."""

    group: str | None
    count: int
    errors: int
    error_rate: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True)
class Heatmap:
    """Counts of root spans per (time column, duration bucket); buckets are half octaves."""

    window: Window
    column_ns: int
    columns: int
    buckets: list[int]
    counts: dict[tuple[int, int], int]
    markers: list[Marker]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def bucket_floor_ms(self, bucket: int) -> float:
        return bucket_floor_ms(bucket)

    def marker_columns(self) -> list[tuple[int, Marker]]:
        """Which column each marker falls in, for drawing it under the heatmap."""
        return [
            (min(self.columns - 1, (m.time_ns - self.window.start_ns) // self.column_ns), m)
            for m in self.markers
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "start_ns": self.window.start_ns,
            "end_ns": self.window.end_ns,
            "column_seconds": self.column_ns / 1e9,
            "total": self.total,
            "rows": [
                {
                    "min_ms": bucket_floor_ms(b),
                    "counts": [self.counts.get((c, b), 0) for c in range(self.columns)],
                }
                for b in self.buckets
            ],
            "markers": [m.__dict__ for m in self.markers],
        }


@dataclass(frozen=True)
class Trace:
    """One trace found in the store: its full id, when its first span started, its rows."""

    trace_id: str
    start_ns: int
    rows: list[WaterfallRow]


@dataclass(frozen=True)
class WaterfallRow:
    """One span of a trace, placed by depth and by offset from the trace's first start."""

    depth: int
    span_id: str
    parent_id: str | None
    name: str
    offset_ms: float
    duration_ms: float
    status: str
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class TraceSummary:
    """A root span standing for its trace in the slowest-traces list."""

    trace_id: str
    name: str
    command: str | None
    outcome: str | None
    author: str | None
    start_ns: int
    duration_ms: float


def _check_key(key: str) -> None:
    if not _KEY.match(key):
        raise QueryError(f"{key!r} is not an attribute name")


def _column(store: SpanStore, key: str) -> str | None:
    """The column holding ``key`` in this store, if it has one (an old store may lack some)."""
    column = _COLUMNS.get(key)
    return column if column in store.layout.columns else None


def _json_names(key: str) -> tuple[str, ...]:
    """The attribute names a key is read from in the JSON, first present wins."""
    known = COLUMNS_BY_NAME.get(_COLUMNS.get(key, ""))
    return known.attributes if known is not None else attribute_names(key)


def _expr(store: SpanStore, key: str) -> tuple[str, list[object]]:
    """SQL for a key: its own column when it has one, else a lookup in the attribute JSON."""
    _check_key(key)
    column = _column(store, key)
    if column is not None:
        return column, []
    names = _json_names(key)
    return json_text(names, literal=False), [json_path(name) for name in names]


def _filters(
    store: SpanStore, window: Window, where: Sequence[Where]
) -> tuple[str, list[object], set[str]]:
    """The WHERE clause for root spans in the window; also the columns it reads."""
    sql = ["is_root = 1", "start_ns >= ?", "start_ns <= ?"]
    params: list[object] = [window.start_ns, window.end_ns]
    reads = {"is_root", "start_ns"}
    for condition in where:
        expr, expr_params = _expr(store, condition.key)
        sql.append(f"{expr} = ?")
        params += [*expr_params, condition.value]
        reads.add(expr if not expr_params else "attributes")
    if not any(condition.key == schema.OUTCOME for condition in where):
        sql.append("outcome IS NOT ?")  # autocomplete requests are not command runs
        params.append(schema.Outcome.AUTOCOMPLETE.value)
        reads.add("outcome")
    return " AND ".join(sql), params, reads


def _rank_offset(percentile: int, count: int) -> int:
    """Zero-based position of the nearest-rank percentile among ``count`` sorted values."""
    return max(0, -(-percentile * count // 100) - 1)


def stats(
    store: SpanStore, *, window: Window, by: str = "command", where: Sequence[Where] = ()
) -> list[StatsRow]:
    """Count, error rate, p50/p95/p99 and max duration of root spans per group, busiest first.

    One pass over the window's root spans: in start order through ``roots_start``,
    which holds every column a group or filter may name, so the table is not read. A
    group or filter on a key with no column takes each span's value from its write's
    ``root_values`` (``_grouped_by_values``); only where those cannot be used (no C
    access, an older store) is each span's attribute JSON read.
    """
    return busiest(store, window=window, by=by, where=where)[0]


def busiest(
    store: SpanStore,
    *,
    window: Window,
    by: str = "command",
    where: Sequence[Where] = (),
    top: int | None = None,
) -> tuple[list[StatsRow], int]:
    """The rows of ``stats`` for the ``top`` busiest groups (all when None), and the group count."""
    group, group_params = _expr(store, by)
    found = None
    if ROOT_VALUES in store.layout.tables:
        # Keys read from the JSON, to group or filter by: their values as each write kept them.
        found = _grouped_by_values(store, window, by, where)
    if found is None:
        condition, params, reads = _filters(store, window, where)
        found = _grouped(
            store.conn, group, group_params, _roots_source(store, group, reads), condition, params
        )
    rows = [
        StatsRow(
            group=value,
            count=count,
            errors=errors,
            error_rate=errors / count,
            p50_ms=ranked[0] / NS_PER_MS,
            p95_ms=ranked[1] / NS_PER_MS,
            p99_ms=ranked[2] / NS_PER_MS,
            max_ms=longest / NS_PER_MS,
        )
        for value, count, errors, longest, ranked in found
    ]
    # Busiest first; ties by value, no value first (None and "" tie otherwise).
    rows.sort(key=lambda row: (-row.count, row.group is not None, row.group or ""))
    return (rows if top is None else rows[:top]), len(rows)


# What a version-2 column index holds besides the group itself.
_IN_EVERY_ROOT_TABLE = {"is_root", "start_ns", "duration_ns", "outcome"}


def _grouped_by_values(
    store: SpanStore, window: Window, by: str, where: Sequence[Where]
) -> list[_Found] | None:
    """``_grouped`` where a key to group or filter by has no column: from ``root_values``.

    Each write kept its root spans' values by key (``store_schema.write_root_values``),
    so a key's values are its blobs, about 8 MB for a million root spans, not every
    span's 350 bytes of JSON; rows no write described (an older bot's) are read from
    their JSON. A filter on such a key is a bitmap of the ids with the value
    (``_kept_ids``); the window's root spans are read from ``roots_start`` as for a
    column, all in one read transaction. None when no key needs it, or where the C
    access declines: the caller reads the JSON.
    """
    group, group_params = _expr(store, by)
    in_json, condition, params, reads = _split_filters(store, window, where)
    if (not group_params and not in_json) or "attributes" in reads:
        return None
    with _read_snapshot(store.conn):
        kept = _kept_ids(store.conn, in_json)
        if kept is None or kept.ids is None:
            return None if kept is None else []
        # By the key's values, or by the column as the pass's fourth column.
        values = _values_query(_json_names(by), kept.undescribed) if group_params else None
        column = "" if group_params else f", {group}"
        return store_sqlite.group_durations_by_id(
            store.conn,
            values,
            kept.ids,
            f"SELECT id, duration_ns, outcome = ?{column} "
            f"FROM spans INDEXED BY {ROOTS_START} WHERE {condition}",
            [schema.Outcome.ERROR.value, *params],
            PERCENTILES,
            kept.id_filter,
        )


def _split_filters(
    store: SpanStore, window: Window, where: Sequence[Where]
) -> tuple[list[Where], str, list[object], set[str]]:
    """The filters on keys with no column, and ``_filters`` of the others."""
    in_json = [condition for condition in where if _expr(store, condition.key)[1]]
    rest = [condition for condition in where if condition not in in_json]
    return (in_json, *_filters(store, window, rest))


class _Kept(NamedTuple):
    """The store's (lowest, highest) id (None: no span), the id ranges no write described,
    and the bitmap of the ids the filters keep (None: no filter)."""

    ids: tuple[int, int] | None
    undescribed: list[tuple[int, int]]
    id_filter: bytes | None


def _kept_ids(conn: sqlite3.Connection, where: Sequence[Where]) -> _Kept | None:
    """What a pass over root values needs, read in the caller's snapshot; every filter in
    ``where`` (keys with no column) a bitmap, and-ed. None where the C access declines."""
    low, high = conn.execute(_ID_RANGE).fetchone()
    if low is None:
        return _Kept(None, [], None)
    ids = (low, high)
    undescribed = _undescribed_ranges(conn, low, high)
    kept: int | None = None
    for wanted in where:
        bits = store_sqlite.ids_with_value(
            conn, _values_query(_json_names(wanted.key), undescribed), ids, wanted.value
        )
        if bits is None:
            return None
        # Every filter holds: the bitmaps and-ed, as one integer.
        found = int.from_bytes(bits, "little")
        kept = found if kept is None else kept & found
    id_filter = None if kept is None else kept.to_bytes((high - low + 8) // 8, "little")
    return _Kept(ids, undescribed, id_filter)


def _values_query(
    names: tuple[str, ...], undescribed: list[tuple[int, int]]
) -> tuple[str, list[object]]:
    """What ``group_durations_by_id`` and ``ids_with_value`` read a key's values from."""
    # The first name present wins: its values are read last, replacing the others'.
    parts = [
        f"SELECT c.first_id, c.last_id, v.vals FROM {TRACE_CHUNKS} c "
        f"CROSS JOIN {ROOT_VALUES} v ON v.key = ? AND v.first_id = c.first_id "
        f"WHERE c.{ROOT_VALUES} = 1"
        for _ in names
    ]
    params: list[object] = list(reversed(names))
    if undescribed:
        # Each range of ids an older bot wrote (a JSON array of [first, last]), read by id.
        parts.append(
            f"SELECT s.id, s.id, {json_text(names, literal=False)} FROM json_each(?) r "
            "CROSS JOIN spans s ON s.id BETWEEN json_extract(r.value, '$[0]') "
            "AND json_extract(r.value, '$[1]') WHERE s.is_root = 1"
        )
        params += [*(json_path(name) for name in names), json.dumps(undescribed)]
    return " UNION ALL ".join(parts), params


@contextmanager
def _read_snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """One read transaction for several statements (the bot may write between them)."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    except BaseException:
        conn.rollback()
        raise
    conn.commit()


# Each its own subquery: SQLite reads the first or last entry of the table for each, where
# both in one SELECT made it read the whole of an index (0.1 s over a million root spans).
_ID_RANGE = "SELECT (SELECT min(id) FROM spans), (SELECT max(id) FROM spans)"


def _undescribed_ranges(conn: sqlite3.Connection, low: int, high: int) -> list[tuple[int, int]]:
    """The id ranges of ``spans`` whose root spans' values no write stored."""
    ranges: list[tuple[int, int]] = []
    covered = low - 1  # every id up to here is in a described chunk, or before the first span
    chunks = conn.execute(
        f"SELECT first_id, last_id FROM {TRACE_CHUNKS} WHERE {ROOT_VALUES} = 1 ORDER BY last_id"
    )
    for first, last in chunks:
        if first > covered + 1:
            ranges.append((covered + 1, first - 1))
        covered = max(covered, last)
    if high > covered:
        ranges.append((covered + 1, high))
    return ranges


def _roots_source(store: SpanStore, group: str, reads: set[str]) -> str:
    """Where the window's root spans are read from: an index that holds what is asked.

    ``roots_start`` in a store of version 3 or later. A version-2 store (a reader
    never migrates) has an index per column instead, which covers a question on
    that column (SQLite's own choice read the table for each row: 7 s over a million
    root spans); anything else is left to SQLite.
    """
    if ROOTS_START in store.layout.indexes:
        return f"spans INDEXED BY {ROOTS_START}"
    older = f"roots_{group}"
    if older in store.layout.indexes and reads <= _IN_EVERY_ROOT_TABLE:
        return f"spans INDEXED BY {older}"
    return "spans"


# (group value, count, errors, max duration, durations at PERCENTILES)
_Found = tuple[Any, int, int, int, list[int]]


def _grouped(
    conn: sqlite3.Connection,
    group: str,
    group_params: list[object],
    source: str,
    condition: str,
    params: list[object],
) -> list[_Found]:
    """Each group's count, errors, longest and percentiles, over the rows of ``source``.

    In C where it can (``store_sqlite.group_durations``); else ``one_pass``, the
    same answer in Python.
    """
    sql = f"SELECT {group}, duration_ns, outcome = ? FROM {source} WHERE {condition}"
    bound = [*group_params, schema.Outcome.ERROR.value, *params]
    found = store_sqlite.group_durations(conn, sql, bound, PERCENTILES)
    return one_pass(conn, sql, bound) if found is None else found


def one_pass(conn: sqlite3.Connection, sql: str, params: list[object]) -> list[_Found]:
    """``group_durations`` in Python: each group's durations gathered, then sorted."""
    durations: dict[Any, array[int]] = {}
    errors: dict[Any, int] = {}
    cursor = conn.execute(sql, params)
    while chunk := cursor.fetchmany(10_000):
        for value, duration, error in chunk:
            found = durations.get(value)
            if found is None:
                found = durations[value] = array("q")
                errors[value] = 0
            found.append(duration)
            if error:
                errors[value] += 1
    result: list[_Found] = []
    for value, values in durations.items():
        ordered = sorted(values)
        count = len(ordered)
        ranked = [ordered[_rank_offset(p, count)] for p in PERCENTILES]
        result.append((value, count, errors[value], ordered[-1], ranked))
    return result


def heatmap(
    store: SpanStore, *, window: Window, where: Sequence[Where] = (), columns: int = 60
) -> Heatmap:
    """Root-span durations over time, bucketed for a terminal heatmap, with the window's markers."""
    column_ns = max(1, -(-(window.end_ns - window.start_ns) // columns))
    condition, params, reads = _filters(store, window, where)
    by_values = None
    if "attributes" in reads and ROOT_VALUES in store.layout.tables:
        by_values = _cells_by_values(store, window, column_ns, columns, where)
    if by_values is not None:
        counts = by_values
    elif _BUCKET_INDEX in store.layout.indexes and reads <= _BUCKET_COLUMNS:
        counts = _cells_by_bucket(store, window, column_ns, columns, condition, params)
    else:
        # The window includes its end; a span starting exactly then joins the last column.
        cells = store.conn.execute(
            f"SELECT min(?, (start_ns - ?) / ?) AS col, dur_bucket, count(*) FROM spans "
            f"WHERE {condition} GROUP BY col, dur_bucket",
            [columns - 1, window.start_ns, column_ns, *params],
        ).fetchall()
        counts = {(int(col), int(bucket)): int(n) for col, bucket, n in cells}
    present = [bucket for _, bucket in counts]
    buckets = list(range(min(present), max(present) + 1)) if present else []
    return Heatmap(
        window=window,
        column_ns=column_ns,
        columns=columns,
        buckets=buckets,
        counts=counts,
        markers=read_markers(store, window.start_ns, window.end_ns),
    )


_BUCKET_INDEX = "roots_bucket"
_BUCKET_COLUMNS = {"is_root", "start_ns", "dur_bucket", "duration_ns", "outcome"}


def _cells_by_values(
    store: SpanStore, window: Window, column_ns: int, columns: int, where: Sequence[Where]
) -> dict[tuple[int, int], int] | None:
    """The heatmap's cells where a filter's key has no column: its values kept by key
    (``_kept_ids``), each cell a group of one pass over ``roots_bucket``. None where the
    C access declines."""
    in_json, condition, params, reads = _split_filters(store, window, where)
    source = (
        f"spans INDEXED BY {_BUCKET_INDEX}"
        if _BUCKET_INDEX in store.layout.indexes and reads <= _BUCKET_COLUMNS
        else "spans"
    )
    with _read_snapshot(store.conn):
        kept = _kept_ids(store.conn, in_json)
        if kept is None or kept.ids is None:
            return None if kept is None else {}
        # The window includes its end; a span starting exactly then joins the last column.
        found = store_sqlite.group_durations_by_id(
            store.conn,
            None,
            kept.ids,
            # A cell as one integer, column * 1000 + bucket (buckets stay under 130).
            f"SELECT id, duration_ns, 0, min(?, (start_ns - ?) / ?) * 1000 + dur_bucket "
            f"FROM {source} WHERE {condition}",
            [columns - 1, window.start_ns, column_ns, *params],
            PERCENTILES,
            kept.id_filter,
        )
    if found is None:
        return None
    return {divmod(int(str(cell)), 1000): count for cell, count, *_ in found}


def _bucket_range(store: SpanStore) -> range:
    """Every duration bucket a root span of the store is in (two index lookups)."""
    lowest, highest = (
        store.conn.execute(
            f"SELECT {end}(dur_bucket) FROM spans INDEXED BY {_BUCKET_INDEX} WHERE is_root = 1"
        ).fetchone()[0]
        for end in ("min", "max")
    )
    return range(0) if lowest is None else range(lowest, highest + 1)


def _cells_by_bucket(
    store: SpanStore,
    window: Window,
    column_ns: int,
    columns: int,
    condition: str,
    params: list[object],
) -> dict[tuple[int, int], int]:
    """Count each cell as a range of ``roots_bucket``: no sort of the window's spans.

    ``GROUP BY column, bucket`` over a million spans spends most of its time sorting
    them; in (bucket, start) order a cell is one contiguous stretch of the index.
    """
    cell = (
        f"SELECT count(*) FROM spans INDEXED BY {_BUCKET_INDEX} "
        f"WHERE dur_bucket = ? AND start_ns >= ? AND start_ns < ? AND {condition}"
    )
    counts: dict[tuple[int, int], int] = {}
    for bucket in _bucket_range(store):
        for column in range(columns):
            low = window.start_ns + column * column_ns
            # The window includes its end; a span starting exactly then joins the last column.
            high = window.end_ns + 1 if column == columns - 1 else low + column_ns
            n = store.conn.execute(cell, [bucket, low, high, *params]).fetchone()[0]
            if n:
                counts[(column, bucket)] = int(n)
    return counts


def _resolved(store: SpanStore, trace_id: str) -> tuple[str, list[tuple[int, int]] | None]:
    """The full trace id, and the id ranges its rows can be in (``_id_ranges``)."""
    wanted = trace_id.strip().lower()
    if len(wanted) < PREFIX_DIGITS or len(wanted) > 32 or not _HEX.match(wanted):
        raise QueryError(f"{trace_id!r} is not a trace id (32 hex digits, or a prefix of 8+)")
    ranges = _id_ranges(store, wanted)
    found: set[str] = set()
    for where, params in _each_range(ranges):
        found.update(
            row[0]
            for row in store.conn.execute(
                f"SELECT DISTINCT trace_id FROM spans WHERE {where} "
                "AND trace_id >= ? AND trace_id < ? LIMIT 2",
                [*params, wanted, wanted + "g"],
            )
        )
        if len(found) > 1:
            raise AmbiguousTrace(f"trace id prefix {trace_id} matches more than one trace")
    if not found:
        raise NoSuchTrace(f"no trace {trace_id} in {store.path}")
    return str(found.pop()), ranges


def _id_ranges(store: SpanStore, wanted: str) -> list[tuple[int, int]] | None:
    """The ranges of ``spans.id`` a trace id beginning with ``wanted`` can be in.

    A store of version 4 has no index of trace ids: each write records its rows' id
    range and the first digits of their trace ids (``trace_chunks``), so these are
    the ranges whose digits hold ``wanted``'s, and any rows no range covers (written
    by an older chatops). None for an older store, which has the index.
    """
    if TRACE_CHUNKS not in store.layout.tables:
        return None
    low, high = store.conn.execute(_ID_RANGE).fetchone()
    if low is None:
        return []
    digits = wanted[:PREFIX_DIGITS]
    wanted_ranges: list[tuple[int, int]] = []
    covered = low - 1  # every id up to here is in a chunk seen
    # Searched here, not with SQLite's instr(): 9 MB of digits for a million traces
    # took 0.15 s in SQL.
    chunks = store.conn.execute(
        f"SELECT first_id, last_id, prefixes FROM {TRACE_CHUNKS} ORDER BY last_id"
    )
    for first, last, prefixes in chunks:
        if first > covered + 1:
            wanted_ranges.append((covered + 1, first - 1))
        if digits in prefixes:
            wanted_ranges.append((first, last))
        covered = max(covered, last)
    if high > covered:
        wanted_ranges.append((covered + 1, high))
    # Merged in id order (writes keep chunks apart; should two overlap, nothing is lost).
    ranges: list[tuple[int, int]] = []
    for first, last in sorted(wanted_ranges):
        if ranges and ranges[-1][1] + 1 >= first:
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], last))
        else:
            ranges.append((first, last))
    return ranges


def _each_range(ranges: list[tuple[int, int]] | None) -> list[tuple[str, list[int]]]:
    """A condition on ``spans`` per range, each read by id (one query each: a long ``OR``
    of ranges makes SQLite walk another index, or exceeds its expression depth)."""
    if ranges is None:
        return [("1", [])]
    return [("id BETWEEN ? AND ?", [first, last]) for first, last in ranges]


def waterfall(store: SpanStore, trace_id: str) -> list[WaterfallRow]:
    """One trace's spans depth-first, children by start time; orphans (parent not stored) at top."""
    return find_trace(store, trace_id).rows


def find_trace(store: SpanStore, trace_id: str) -> Trace:
    """A trace by its full id or an unambiguous prefix (8+ hex digits): ``waterfall``'s rows,
    with the full id and the first start (a link's time window), in one lookup."""
    full_id, ranges = _resolved(store, trace_id)
    spans = sorted(
        (
            row
            for where, params in _each_range(ranges)
            for row in store.conn.execute(
                "SELECT span_id, parent_id, name, start_ns, duration_ns, status, attributes, "
                f"events, id FROM spans WHERE {where} AND trace_id = ?",
                [*params, full_id],
            )
        ),
        key=lambda row: (row[3], row[8]),
    )
    ids = {row[0] for row in spans}
    children: dict[str | None, list[tuple[Any, ...]]] = {}
    for row in spans:
        parent = row[1] if row[1] in ids else None
        children.setdefault(parent, []).append(row)
    origin = min(row[3] for row in spans)
    rows: list[WaterfallRow] = []

    def visit(parent: str | None, depth: int) -> None:
        for span_id, parent_id, name, start, duration, status, attrs, events, _ in children.get(
            parent, []
        ):
            rows.append(
                WaterfallRow(
                    depth=depth,
                    span_id=span_id,
                    parent_id=parent_id,
                    name=name,
                    offset_ms=(start - origin) / NS_PER_MS,
                    duration_ms=duration / NS_PER_MS,
                    status=status,
                    attributes=json.loads(attrs),
                    events=json.loads(events) if events else [],
                )
            )
            visit(span_id, depth + 1)

    visit(None, 0)
    return Trace(full_id, origin, rows)


def slowest(
    store: SpanStore, *, window: Window, limit: int = 10, command: str | None = None
) -> list[TraceSummary]:
    """The slowest root spans in the window, optionally of one command: candidates for ``trace``."""
    where = [Where(schema.COMMAND, command)] if command is not None else []
    condition, params, _ = _filters(store, window, where)
    columns = "trace_id, name, command, outcome, author, start_ns, duration_ns"
    if command is None and _BUCKET_INDEX in store.layout.indexes:
        # The slowest buckets first, each sorted on its own: the top spans of a million
        # are in a few small buckets. Only ids are sorted; the rows are read for the winners.
        ids: list[int] = []
        for bucket in reversed(_bucket_range(store)):
            ids += [
                row[0]
                for row in store.conn.execute(
                    f"SELECT id FROM spans INDEXED BY {_BUCKET_INDEX} "
                    f"WHERE dur_bucket = ? AND {condition} ORDER BY duration_ns DESC LIMIT ?",
                    [bucket, *params, limit - len(ids)],
                )
            ]
            if len(ids) >= limit:
                break
        by_id = {
            row[0]: row[1:]
            for row in store.conn.execute(
                f"SELECT id, {columns} FROM spans WHERE id IN ({', '.join('?' * len(ids))})", ids
            )
        }
        found = [by_id[i] for i in ids]
    else:
        found = store.conn.execute(
            f"SELECT {columns} FROM spans WHERE {condition} ORDER BY duration_ns DESC LIMIT ?",
            [*params, limit],
        ).fetchall()
    return [
        TraceSummary(*row[:6], duration_ms=row[6] / NS_PER_MS)  # type: ignore[misc]
        for row in found
    ]
