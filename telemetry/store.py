"""The local SQLite span store's writer: an OpenTelemetry exporter, and retention.

When no tracing backend is configured the bot still has to answer "which command
is slow" from the terminal, so ``telemetry/setup.py`` gives the trace pipeline a
``SqliteSpanExporter``: its rows are made as traces are kept
(``telemetry/span_pipeline.py``, ``RowSink``) and written on the pipeline's flush
thread, never on the event loop, by the C batch writer (``insert_rows``); each
batch is one transaction; WAL mode lets ``chatops stats`` in another process read
while the bot writes. Retention by age and by size runs on the same thread, so the
file stays bounded without a separate job: every ``retention_interval`` it starts,
and it works in chunks of at most ``retention_budget`` per export, continuing on the
next export until it is done, so a large trim never stalls the export of new spans.

The write-ahead log is bounded too: SQLite's automatic checkpoint cannot restart
the log while a reader (``chatops stats``, a dashboard polling) is inside it, so
under steady reads it only grows (451 MB for a 45 MB store was seen). After a
write that leaves it past ``wal_limit_bytes``, the exporter runs a ``TRUNCATE``
checkpoint, which waits briefly for readers to leave and empties the file.
And a store file deleted (or replaced) while the bot runs is noticed before the
next write: one warning, and the spans go to a new store at the same path rather
than into a file nobody can open any more.

The read side (``SpanStore``, markers) lives in ``telemetry/store_read.py``, which
needs no OpenTelemetry SDK; its names are importable from here too.
"""

from __future__ import annotations

import json
import json.encoder
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

from telemetry import _span_codec, schema, store_sqlite
from telemetry.store_read import Marker, SpanStore, StoreMissing, read_markers, record_marker
from telemetry.store_schema import (
    BUSY_TIMEOUT_MS,
    INSERT_CHUNK,
    INSERT_SPAN,
    PREFIX_DIGITS,
    ROOT_KEYS,
    ROOT_VALUES,
    TRACE_CHUNKS,
    WAL_AUTOCHECKPOINT_PAGES,
    WAL_SIZE_LIMIT,
    connect_writer,
    duration_bucket,
    transaction,
    write_root_values,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = [
    "Marker",
    "Retention",
    "RetentionStep",
    "SpanRow",
    "SpanStore",
    "SqliteSpanExporter",
    "StoreMissing",
    "apply_retention",
    "insert_rows",
    "read_markers",
    "record_marker",
    "span_row",
    "store_bytes",
]

log = logging.getLogger(__name__)

SpanRow = tuple[Any, ...]
_TRACE_ID = itemgetter(0)  # a row's first value

# Longest an export spends on retention before it returns; the rest waits for the next.
RETENTION_BUDGET = timedelta(milliseconds=50)

# How long the WAL-truncating checkpoint waits for readers to leave the log before it
# gives up until the next export (a query of ``chatops stats`` takes well under this).
CHECKPOINT_WAIT_MS = 1000


def _jsonable(value: object) -> object:
    """Attribute values are scalars or sequences of scalars; sequences become lists."""
    if isinstance(value, str | bool | int | float) or value is None:
        return value
    if isinstance(value, Sequence):
        return list(value)
    return str(value)


def _jsonable_map(attributes: Mapping[str, object] | None) -> dict[str, object]:
    return {k: _jsonable(v) for k, v in (attributes or {}).items()}


# The C half of ``json.dumps(..., default=str)``, made once: ``json.dumps`` with an
# argument builds a new JSONEncoder and a new C encoder for every call (a span each).
_make_c_encoder = getattr(json.encoder, "c_make_encoder", None)
_C_ENCODE_ATTRIBUTES = (
    _make_c_encoder(
        None,  # no circular check: attribute values are scalars and flat sequences
        str,
        json.encoder.encode_basestring_ascii,
        None,
        ": ",
        ", ",
        False,
        False,
        True,
    )
    if _make_c_encoder is not None
    else None
)


def _attributes_json(attributes: Mapping[str, object] | None) -> str:
    # json writes tuples as lists itself; anything else it cannot write becomes its str,
    # as _jsonable would make it, without a Python call per value.
    plain = attributes if type(attributes) is dict else dict(attributes or {})
    if _C_ENCODE_ATTRIBUTES is not None:
        return "".join(_C_ENCODE_ATTRIBUTES(plain, 0))
    return json.dumps(plain, default=str)


def _is_run(attributes: Mapping[str, object]) -> bool:
    return schema.OUTCOME in attributes or schema.CICD_PIPELINE_RESULT in attributes


def _pipeline_outcome(attributes: Mapping[str, object]) -> str | None:
    """A failed pipeline counts as an error in ``stats``; other results as ok."""
    result = attributes.get(schema.CICD_PIPELINE_RESULT)
    if result is None:
        return None
    failed = result in ("failure", "error", "timeout")
    return schema.Outcome.ERROR.value if failed else schema.Outcome.OK.value


# Enum members' ``.name`` is Python code; a span's kind and status code are looked up by
# identity instead (anything else, such as a subclass member, falls back to ``.name``).
_KIND_NAMES: dict[int, str] = {id(kind): kind.name for kind in SpanKind}
_CODE_NAMES: dict[int, str] = {id(code): code.name for code in StatusCode}
_last_service: tuple[object, str | None] = (object(), None)  # the resource last seen


def _service(resource: Any) -> str | None:
    global _last_service
    held, service = _last_service
    if resource is held:
        return service
    value = resource.attributes.get("service.name") if resource else None
    service = None if value is None else str(value)
    _last_service = (resource, service)
    return service


def span_row_python(span: ReadableSpan) -> SpanRow:
    """One span as a row of ``spans``: denormalised query columns plus the full attributes.

    The reference, and the row maker for the spans the compiled ``span_row`` leaves to
    Python (events, sequence values, CI runs, SDK spans).
    """
    attributes: Mapping[str, object] = span.attributes or {}
    context = span.context
    parent = span.parent
    start = span.start_time or 0
    duration = max(0, (span.end_time or start) - start)
    events = span.events
    kind = span.kind
    status = span.status
    code = status.status_code
    get = attributes.get
    command, author, guild = get(schema.COMMAND), get(schema.AUTHOR_ID), get(schema.GUILD_ID)
    outcome = get(schema.OUTCOME)
    return (
        format(context.trace_id, "032x"),
        format(context.span_id, "016x"),
        None if parent is None else format(parent.span_id, "016x"),
        span.name,
        _KIND_NAMES.get(id(kind)) or kind.name,
        start,
        duration,
        duration_bucket(duration),
        _CODE_NAMES.get(id(code)) or code.name,
        status.description,
        # Statistics are about messages: a root is a message's (or interaction's) root
        # span, one that carries an outcome. A span whose parent lives in another
        # process is the root of what we hold; the bot's own start-up REST calls are not.
        # A CI pipeline run (cicd.pipeline.result) is a root too: `stats --service ci`.
        1 if (parent is None or parent.is_remote) and _is_run(attributes) else 0,
        None if command is None else str(command),
        None if author is None else str(author),
        None if guild is None else str(guild),
        (None if outcome is None else str(outcome)) or _pipeline_outcome(attributes),
        _service(span.resource),
        _attributes_json(attributes),
        json.dumps(
            [
                {"name": e.name, "time_ns": e.timestamp, "attributes": _jsonable_map(e.attributes)}
                for e in events
            ]
        )
        if events
        else None,
    )


# A message's spans are made into rows in C (telemetry/_span_codec.c): the same tuple, about
# a fifth of the instructions; any other span goes to ``span_row_python``.
_span_codec.configure_store(
    span_row_python,
    _service,
    json.encoder.encode_basestring_ascii,
    tuple(kind.name for kind in sorted(SpanKind, key=lambda kind: kind.value)),
    tuple(code.name for code in sorted(StatusCode, key=lambda code: code.value)),
    schema.COMMAND,
    schema.AUTHOR_ID,
    schema.GUILD_ID,
    schema.OUTCOME,
    schema.CICD_PIPELINE_RESULT,
)
span_row: Callable[[ReadableSpan], SpanRow] = _span_codec.store_row


def insert_rows(conn: sqlite3.Connection, rows: Sequence[SpanRow]) -> None:
    """Write span rows in one transaction: one fsync per batch, and readers see all or nothing.

    With them, one row of ``trace_chunks``: their id range and their trace ids' first
    digits, which is how ``chatops trace`` finds a trace without an index of trace ids
    (each span's entry in one landed on a random page: half of what writing it cost);
    and their root spans' values, by key, in ``root_values``, which is how ``chatops
    stats --by KEY`` groups by any attribute without reading every span's JSON.
    """
    # In trace-id order (stable: a trace's spans keep theirs), a trace's spans are
    # neighbours, in the table and in ``trace_chunks``' digits.
    try:
        ordered = sorted(rows, key=_TRACE_ID)
    except TypeError:  # a trace id that is not a str: SQLite says what is wrong with it
        ordered = list(rows)
    if not ordered:
        return
    with transaction(conn):
        write_rows(conn, INSERT_SPAN, ordered)
        # Ids are given in order to the rows of one transaction: the last one's, back.
        last = int(conn.execute("SELECT last_insert_rowid()").fetchone()[0])
        first = last - len(ordered) + 1
        _cut_chunks_at(conn, first)
        prefixes = ",".join(dict.fromkeys(str(row[0])[:PREFIX_DIGITS] for row in ordered))
        roots = [(offset, row[16]) for offset, row in enumerate(ordered) if row[10] == 1]
        described = write_root_values(conn, first, roots)
        conn.execute(INSERT_CHUNK, (last, first, prefixes, described))


def _cut_chunks_at(conn: sqlite3.Connection, first: int) -> None:
    """End every chunk before ``first``, the first id of rows just written.

    SQLite gives a new row the highest id + 1, so once retention has deleted the
    newest rows (it deletes by start time) their ids are given again, inside a chunk
    that describes the rows deleted, which would hide the new rows from ``chatops
    trace``. No row had an id from ``first`` on: what a chunk says of those is stale.
    """
    if conn.execute(f"SELECT 1 FROM {TRACE_CHUNKS} WHERE last_id >= ?", (first,)).fetchone():
        conn.execute(f"DELETE FROM {TRACE_CHUNKS} WHERE first_id >= ?", (first,))
        conn.execute(
            f"UPDATE OR REPLACE {TRACE_CHUNKS} SET last_id = ? WHERE last_id >= ?",
            (first - 1, first),
        )


def write_rows(conn: sqlite3.Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """``executemany(sql, rows)`` as the first write of the open transaction, in C.

    ``executemany`` hands the GIL back to the busy event loop for every row
    (telemetry/_store_sqlite.c); the C writer, once a batch. Where it declines, or a
    row fails part-way, the transaction starts again without what it wrote and the
    same rows go through ``executemany``, which writes them or raises its own error.
    """
    if not store_sqlite.insert_rows(conn, sql, rows):
        if conn.in_transaction:  # SQLite rolls back by itself on some errors (a full disk)
            conn.execute("ROLLBACK")
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, rows)


def store_bytes(conn: sqlite3.Connection) -> int:
    """Bytes held by live pages (free pages are reused, so they do not count)."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)


# The chunks no span is left in, in time bounded by the spans deleted, not the store's size:
# those wholly below the oldest id left, then the oldest ``_TRIM_CHECKED`` of the rest
# looked into one by one (retention deletes by start, not id: a span that outlives its
# neighbours keeps the ids after it; each pass moves past the empty chunks found).
_TRIM_CHECKED = 512
_TRIM_CHUNKS = [
    f"DELETE FROM {TRACE_CHUNKS} "
    f"WHERE last_id < coalesce((SELECT min(id) FROM spans), {2**63 - 1})",
    f"DELETE FROM {TRACE_CHUNKS} WHERE last_id IN "
    f"(SELECT last_id FROM {TRACE_CHUNKS} ORDER BY last_id LIMIT {_TRIM_CHECKED}) "
    "AND NOT EXISTS (SELECT 1 FROM spans WHERE id BETWEEN first_id AND last_id)",
]

# Then the root values of writes before the oldest chunk left (the values of a chunk removed
# from the middle stay until then: readers take a blob only with its chunk), key by key, at
# most ``Retention.values_step`` writes a statement; only keys with something to delete; and
# a key with no values left is forgotten.
_VALUES_STEP_MAX = 32
_OLDEST_CHUNK = f"SELECT first_id FROM {TRACE_CHUNKS} ORDER BY last_id LIMIT 1"
_KEYS_TO_TRIM = (
    f"SELECT key FROM {ROOT_KEYS} k WHERE EXISTS "
    f"(SELECT 1 FROM {ROOT_VALUES} v WHERE v.key = k.key AND v.first_id < ?)"
)
_TRIM_VALUES = (
    f"DELETE FROM {ROOT_VALUES} WHERE key = ?1 AND first_id < ?2 AND first_id <= coalesce("
    f"(SELECT first_id FROM {ROOT_VALUES} WHERE key = ?1 AND first_id < ?2 "
    "ORDER BY first_id LIMIT 1 OFFSET ?3), ?2)"
)
_FORGET_KEYS = (
    f"DELETE FROM {ROOT_KEYS} WHERE NOT EXISTS "
    f"(SELECT 1 FROM {ROOT_VALUES} v WHERE v.key = {ROOT_KEYS}.key)"
)


class _OutOfTime(Exception):
    """The time budget ran out in the middle of a statement; it was rolled back."""


@dataclass
class Retention:
    """Retention by age and by size, done in small chunks that fit a time budget.

    Each chunk deletes the oldest spans in its own short transaction, so a reader or
    the next export never waits long for the lock. ``run`` starts a chunk only if
    one of its target size still fits the budget, and a SQLite progress handler
    stops a ``DELETE`` that overruns (SQLite undoes it, and the next chunks are
    smaller); the exporter calls ``run`` again on its next export until ``done``.
    The chunk size adapts to how fast this store deletes, aiming at ``chunk_s`` (or
    half the budget, if less); while trimming by size it is also at most a tenth of
    the spans, so the store ends up little below its limit.
    """

    max_age: timedelta
    max_bytes: int
    chunk_s: float = 0.01
    rows: int = 256  # current chunk size, adapted after every chunk
    # Writes whose values one statement deletes: a quarter after running out of time, then
    # doubling back up to _VALUES_STEP_MAX.
    values_step: int = 32
    clock: Callable[[], float] = time.monotonic
    min_rows: int = 16
    max_rows: int = 20_000
    # Free pages returned to the file system per step (auto_vacuum = INCREMENTAL).
    vacuum_pages: int = 256
    _target: float = field(default=0.01, init=False, repr=False)
    _commit_s: float = field(default=0.002, init=False, repr=False)  # longest recent commit
    _stop: float | None = field(default=None, init=False, repr=False)

    def run(
        self, conn: sqlite3.Connection, *, budget_s: float | None = None, now_ns: int | None = None
    ) -> RetentionStep:
        """Delete what is due, within ``budget_s`` seconds (None: until done)."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        cutoff = now_ns - int(self.max_age.total_seconds() * 1e9)
        deadline = None if budget_s is None else self.clock() + budget_s
        # A chunk aims at chunk_s, or half the budget when that is less, so one still fits.
        self._target = self.chunk_s if budget_s is None else min(self.chunk_s, budget_s / 2)
        # A statement stops early enough for its commit to fit before the deadline.
        self._stop = None if deadline is None else deadline - min(self._commit_s, self._target)
        removed = 0
        if deadline is not None:
            # A WAL checkpoint (copying the WAL into the database, then an fsync) can take
            # longer than the whole budget and cannot be interrupted: let the next insert's
            # commit run it, as it would have without retention.
            conn.execute("PRAGMA wal_autocheckpoint = 0")
        try:
            with transaction(conn):
                conn.execute("DELETE FROM markers WHERE time_ns < ?", (cutoff,))
            # By age first; then, while live data exceeds the limit, the oldest spans. The
            # chunks and values of the spans deleted go before the size is measured (again):
            # left, they would be counted, and more spans taken for them.
            for older_than in (cutoff, None):
                while older_than is not None or store_bytes(conn) > self.max_bytes:
                    if not self._fits(deadline):
                        return RetentionStep(removed, done=False)
                    asked = self.rows if older_than is not None else self._size_rows(conn)
                    deleted = self._chunk(conn, older_than, asked)
                    removed += deleted
                    if deleted < asked:
                        break  # nothing older left, or the store is empty
                    if older_than is None and not self._trim_described(conn, deadline):
                        return RetentionStep(removed, done=False)
                if not self._trim_described(conn, deadline):
                    return RetentionStep(removed, done=False)
            while conn.execute("PRAGMA freelist_count").fetchone()[0] > 0:
                if not self._fits(deadline):
                    return RetentionStep(removed, done=False)
                with self._stoppable(conn):
                    conn.execute(f"PRAGMA incremental_vacuum({self.vacuum_pages})").fetchall()
        except sqlite3.OperationalError as exc:
            # The progress handler stopped a statement at the deadline; SQLite undid it.
            if deadline is None or "interrupt" not in str(exc):
                raise
            return RetentionStep(removed, done=False)
        finally:
            if deadline is not None:
                conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
        return RetentionStep(removed, done=True)

    @contextmanager
    def _stoppable(self, conn: sqlite3.Connection) -> Iterator[None]:
        """Let SQLite stop the statements run inside at the deadline.

        Only around the statements that do the work: a ``COMMIT`` stopped this way can
        report an interruption after it committed, and a ``ROLLBACK`` can be stopped
        too, leaving the transaction open. The handler looks at the clock every 100
        instructions; a chunk of a few dozen spans is a few thousand.
        """
        stop = self._stop
        if stop is None:
            yield
            return
        conn.set_progress_handler(lambda: int(self.clock() >= stop), 100)
        try:
            yield
        finally:
            conn.set_progress_handler(None, 0)

    def _trim_described(self, conn: sqlite3.Connection, deadline: float | None) -> bool:
        """Delete the chunks no span is left in, then their values; False: out of time."""
        if not self._fits(deadline):
            return False
        with transaction(conn), self._stoppable(conn):
            for statement in _TRIM_CHUNKS:
                conn.execute(statement)
        return self._trim_values(conn, deadline)

    def _trim_values(self, conn: sqlite3.Connection, deadline: float | None) -> bool:
        """Delete the root values of writes before the oldest chunk left; False: out of time."""
        oldest = conn.execute(_OLDEST_CHUNK).fetchone()
        below = 2**63 - 1 if oldest is None else int(oldest[0])
        for (key,) in conn.execute(_KEYS_TO_TRIM, (below,)).fetchall():
            deleted = step = self.values_step
            while deleted == step:
                if not self._fits(deadline):
                    return False
                step = self.values_step
                try:
                    with transaction(conn):
                        with self._stoppable(conn):
                            deleted = conn.execute(_TRIM_VALUES, (key, below, step - 1)).rowcount
                        committing = self.clock()
                except sqlite3.OperationalError:
                    self.values_step = max(1, step // 4)  # out of time: fewer next time
                    raise
                self._commit_s = max(self.clock() - committing, self._commit_s * 0.9)
                if deleted == step:
                    self.values_step = min(_VALUES_STEP_MAX, step * 2)
        if not self._fits(deadline):
            return False
        with transaction(conn), self._stoppable(conn):
            conn.execute(_FORGET_KEYS)
        return True

    def _fits(self, deadline: float | None) -> bool:
        return deadline is None or self.clock() + self._target <= deadline

    def _size_rows(self, conn: sqlite3.Connection) -> int:
        # Ids only grow and retention deletes the oldest, so this is about the span count.
        low, high = conn.execute(
            "SELECT (SELECT min(id) FROM spans), (SELECT max(id) FROM spans)"
        ).fetchone()
        spans = 0 if low is None else high - low + 1
        return max(1, min(self.rows, spans // 10))

    def _chunk(self, conn: sqlite3.Connection, cutoff: int | None, rows: int) -> int:
        """Delete the oldest ``rows`` spans (older than ``cutoff`` if given) in one transaction."""
        older = "" if cutoff is None else "WHERE start_ns < ? "
        params: list[int] = [] if cutoff is None else [cutoff]
        started = self.clock()
        try:
            with transaction(conn):
                with self._stoppable(conn):
                    deleted = int(
                        conn.execute(
                            "DELETE FROM spans WHERE id IN (SELECT id FROM spans "
                            f"{older}ORDER BY start_ns LIMIT ?)",
                            [*params, rows],
                        ).rowcount
                    )
                committing = self.clock()
        except sqlite3.OperationalError:
            self.rows = max(self.min_rows, self.rows // 4)  # out of time: smaller next time
            raise
        done = self.clock()
        self._commit_s = max(done - committing, self._commit_s * 0.9)
        took = done - started
        if deleted == rows and rows >= self.rows // 2:  # a full chunk: how fast this store deletes
            rate = deleted / max(took, 1e-6)
            self.rows = int(min(self.max_rows, max(self.min_rows, rate * self._target)))
        return deleted


@dataclass(frozen=True)
class RetentionStep:
    """What one ``Retention.run`` did: spans removed, and whether nothing is left to do."""

    removed: int
    done: bool


def apply_retention(
    conn: sqlite3.Connection, *, max_age: timedelta, max_bytes: int, now_ns: int | None = None
) -> int:
    """Drop spans older than ``max_age``, then the oldest spans until under ``max_bytes``.

    Runs to the end (no time budget); returns how many spans were removed. Markers
    follow the age limit only: they are a few bytes each and the heatmap needs them
    as long as the spans around them.
    """
    return Retention(max_age, max_bytes).run(conn, now_ns=now_ns).removed


class SqliteSpanExporter(SpanExporter):  # type: ignore[misc]
    """Writes finished spans to a SQLite file; thread-safe and never raises into the SDK.

    The connection is opened on first use, so a bad path costs a warning and a
    FAILURE result rather than stopping the bot at start-up.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_age: timedelta,
        max_bytes: int,
        retention_interval: timedelta = timedelta(minutes=1),
        retention_budget: timedelta = RETENTION_BUDGET,
        clock: Callable[[], float] = time.monotonic,
        wal_limit_bytes: int = WAL_SIZE_LIMIT,
    ) -> None:
        self.path = path
        self.wal_limit_bytes = wal_limit_bytes
        self._wal = Path(f"{path}-wal")
        self._file_id: tuple[int, int] | None = None  # (device, inode) of the file we opened
        self._checkpoint_busy = False  # whether a busy checkpoint was already reported
        self._clock = clock  # when retention is due; the age cutoff is wall-clock time
        self.max_age = max_age
        self.max_bytes = max_bytes
        self._interval = retention_interval.total_seconds()
        self._budget = retention_budget.total_seconds()
        self._retention = Retention(max_age, max_bytes)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._last_retention = float("-inf")
        self._retention_pending = False
        self._removed = 0  # by the retention pass under way
        self._closed = False
        self._failing = False
        if store_sqlite.UNAVAILABLE is not None:  # costs what development.md measured before C
            log.info(
                "span store %s: rows go through executemany (%s)", path, store_sqlite.UNAVAILABLE
            )

    row = staticmethod(span_row)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Write one batch in one transaction; then a time-boxed slice of retention if due."""
        return self.export_rows([span_row(span) for span in spans])

    def export_rows(self, rows: Sequence[SpanRow]) -> SpanExportResult:
        """``export`` for rows made earlier by ``row`` (the trace pipeline makes them per trace)."""
        with self._lock:
            if self._closed:
                return SpanExportResult.FAILURE
            try:
                conn = self._connection()
                insert_rows(conn, rows)
                due = self._clock() - self._last_retention >= self._interval
                if self._retention_pending or due:
                    self._retain(conn, budget_s=self._budget)
                self._bound_wal(conn)
            except Exception as exc:
                self._recover()
                self._warn(f"could not write {len(rows)} spans to {self.path}: {exc}")
                return SpanExportResult.FAILURE
            if self._failing:
                log.info("span store %s is writable again", self.path)
                self._failing = False
            return SpanExportResult.SUCCESS

    def apply_retention(self, now_ns: int | None = None) -> int:
        """Run retention to the end now, however long it takes; returns spans removed."""
        with self._lock:
            return self._retain(self._connection(), now_ns=now_ns)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Every export is committed before it returns, so there is nothing to flush."""
        return True

    def shutdown(self) -> None:
        """Close the connection; later exports return FAILURE."""
        with self._lock:
            self._closed = True
            if self._conn is not None:
                try:
                    self._conn.close()
                except sqlite3.Error as exc:
                    log.warning("closing span store %s: %s", self.path, exc)
                self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and not self._same_file():
            self._reopen_deleted()
        if self._conn is None:
            self._conn = connect_writer(self.path)
            self._file_id = self._current_file_id()
        return self._conn

    def _current_file_id(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        return stat.st_dev, stat.st_ino

    def _same_file(self) -> bool:
        """Whether the path still names the file our connection writes (one ``stat``)."""
        try:
            return self._current_file_id() == self._file_id
        except OSError:
            return True  # cannot tell (permissions): the write itself will say what is wrong

    def _reopen_deleted(self) -> None:
        """The store was deleted or replaced under us: say so once, and start a new one.

        Writing on would put spans into a file only our open descriptor still
        reaches; they would be gone at the next restart and invisible until then.
        """
        log.warning(
            "span store %s was deleted or replaced while the bot ran; "
            "writing to a new store there (what the old file held is gone with it)",
            self.path,
        )
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error as exc:
                log.debug("closing the deleted span store %s: %s", self.path, exc)
        if not self.path.exists():
            # The old file's log and index would be read as the new file's: remove them.
            for leftover in (self._wal, Path(f"{self.path}-shm")):
                leftover.unlink(missing_ok=True)
        self._retention_pending = False

    def _bound_wal(self, conn: sqlite3.Connection) -> None:
        """Empty the write-ahead log once it is past ``wal_limit_bytes`` (see the module doc)."""
        try:
            size = self._wal.stat().st_size
        except FileNotFoundError:
            return
        if size <= self.wal_limit_bytes:
            return
        conn.execute(f"PRAGMA busy_timeout = {CHECKPOINT_WAIT_MS}")
        try:
            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        except sqlite3.OperationalError:
            busy = 1  # another connection was checkpointing: the spans are written all the same
        finally:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if busy:
            # A reader held the log the whole time; the next export tries again.
            (log.debug if self._checkpoint_busy else log.info)(
                "span store %s: write-ahead log at %d bytes, readers kept it from being "
                "emptied; retrying after the next write",
                self.path,
                size,
            )
            self._checkpoint_busy = True  # said once; the rest at debug level

    def _retain(
        self, conn: sqlite3.Connection, *, budget_s: float | None = None, now_ns: int | None = None
    ) -> int:
        """One slice of retention (all of it without a budget); returns spans removed by it."""
        if not self._retention_pending:
            self._last_retention = self._clock()
            self._removed = 0
        step = self._retention.run(conn, budget_s=budget_s, now_ns=now_ns)
        self._removed += step.removed
        self._retention_pending = not step.done
        if step.done and self._removed:
            log.info("span store retention removed %d spans", self._removed)
        return step.removed

    def _recover(self) -> None:
        """Leave the connection ready for the next export whatever failed half-way."""
        if self._conn is None:
            return
        try:
            self._conn.set_progress_handler(None, 0)
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.debug("span store %s: %s; reopening it on the next export", self.path, exc)
            self._conn.close()
            self._conn = None
        self._retention_pending = False

    def _warn(self, message: str) -> None:
        # One warning when writes start failing, not one per batch for as long as it lasts.
        if self._failing:
            log.debug(message)
        else:
            log.warning(message)
            self._failing = True
