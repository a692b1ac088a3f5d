"""The local SQLite span store's writer: an OpenTelemetry exporter, and retention.

When no tracing backend is configured the bot still has to answer "which command
is slow" from the terminal, so ``telemetry/setup.py`` puts
``BatchSpanProcessor(SqliteSpanExporter(path, ...))`` in the pipeline. Export runs
on the processor's worker thread, never on the event loop; each batch is one
transaction; WAL mode lets ``chatops stats`` in another process read while the bot
writes. Retention by age and by size runs every ``retention_interval`` on the same
thread, so the file stays bounded without a separate job.

The read side (``SpanStore``, markers) lives in ``telemetry/store_read.py``, which
needs no OpenTelemetry SDK; its names are importable from here too.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from telemetry import schema
from telemetry.store_read import Marker, SpanStore, StoreMissing, read_markers, record_marker
from telemetry.store_schema import INSERT_SPAN, connect_writer, duration_bucket, transaction

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = [
    "Marker",
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

# Share of the oldest spans removed per step while the store is over its size limit.
_SIZE_TRIM_FRACTION = 0.1


def _jsonable(value: object) -> object:
    """Attribute values are scalars or sequences of scalars; sequences become lists."""
    if isinstance(value, str | bool | int | float) or value is None:
        return value
    if isinstance(value, Sequence):
        return list(value)
    return str(value)


def _jsonable_map(attributes: Mapping[str, object] | None) -> dict[str, object]:
    return {k: _jsonable(v) for k, v in (attributes or {}).items()}


def _attributes_json(attributes: Mapping[str, object] | None) -> str:
    return json.dumps(_jsonable_map(attributes))


def _text(attributes: Mapping[str, object], key: str) -> str | None:
    value = attributes.get(key)
    return None if value is None else str(value)


def span_row(span: ReadableSpan) -> SpanRow:
    """One span as a row of ``spans``: denormalised query columns plus the full attributes."""
    attributes: Mapping[str, object] = span.attributes or {}
    parent = span.parent
    start = span.start_time or 0
    duration = max(0, (span.end_time or start) - start)
    events = [
        {"name": e.name, "time_ns": e.timestamp, "attributes": _jsonable_map(e.attributes)}
        for e in span.events
    ]
    service = span.resource.attributes.get("service.name") if span.resource else None
    return (
        format(span.context.trace_id, "032x"),
        format(span.context.span_id, "016x"),
        None if parent is None else format(parent.span_id, "016x"),
        span.name,
        span.kind.name,
        start,
        duration,
        duration_bucket(duration),
        span.status.status_code.name,
        span.status.description,
        # Statistics are about messages: a root is a message's (or interaction's) root
        # span, one that carries an outcome. A span whose parent lives in another
        # process is the root of what we hold; the bot's own start-up REST calls are not.
        1 if (parent is None or parent.is_remote) and schema.OUTCOME in attributes else 0,
        _text(attributes, schema.COMMAND),
        _text(attributes, schema.AUTHOR_ID),
        _text(attributes, schema.GUILD_ID),
        _text(attributes, schema.OUTCOME),
        None if service is None else str(service),
        _attributes_json(attributes),
        json.dumps(events) if events else None,
    )


def insert_rows(conn: sqlite3.Connection, rows: Sequence[SpanRow]) -> None:
    """Write rows in one transaction: one fsync per batch, and readers see all or nothing."""
    with transaction(conn):
        conn.executemany(INSERT_SPAN, rows)


def store_bytes(conn: sqlite3.Connection) -> int:
    """Bytes held by live pages (free pages are reused, so they do not count)."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)


def apply_retention(
    conn: sqlite3.Connection, *, max_age: timedelta, max_bytes: int, now_ns: int | None = None
) -> int:
    """Drop spans older than ``max_age``, then the oldest spans until under ``max_bytes``.

    Returns how many spans were removed. Markers follow the age limit only: they
    are a few bytes each and the heatmap needs them as long as the spans around them.
    """
    now_ns = time.time_ns() if now_ns is None else now_ns
    cutoff = now_ns - int(max_age.total_seconds() * 1e9)
    removed = 0
    with transaction(conn):
        removed += conn.execute("DELETE FROM spans WHERE start_ns < ?", (cutoff,)).rowcount
        conn.execute("DELETE FROM markers WHERE time_ns < ?", (cutoff,))
    while store_bytes(conn) > max_bytes:
        count = conn.execute("SELECT count(*) FROM spans").fetchone()[0]
        if count == 0:
            break
        step = max(1, int(count * _SIZE_TRIM_FRACTION))
        with transaction(conn):
            removed += conn.execute(
                "DELETE FROM spans WHERE start_ns <= "
                "(SELECT start_ns FROM spans ORDER BY start_ns LIMIT 1 OFFSET ?)",
                (step - 1,),
            ).rowcount
    if removed:
        conn.execute("PRAGMA incremental_vacuum")
    return removed


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
    ) -> None:
        self.path = path
        self.max_age = max_age
        self.max_bytes = max_bytes
        self._interval = retention_interval.total_seconds()
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._last_retention = float("-inf")
        self._closed = False
        self._failing = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Write one batch in one transaction; apply retention when it is due."""
        with self._lock:
            if self._closed:
                return SpanExportResult.FAILURE
            try:
                conn = self._connection()
                insert_rows(conn, [span_row(span) for span in spans])
                if time.monotonic() - self._last_retention >= self._interval:
                    self._retain(conn)
            except Exception as exc:
                self._warn(f"could not write {len(spans)} spans to {self.path}: {exc}")
                return SpanExportResult.FAILURE
            if self._failing:
                log.info("span store %s is writable again", self.path)
                self._failing = False
            return SpanExportResult.SUCCESS

    def apply_retention(self, now_ns: int | None = None) -> int:
        """Run retention now (the exporter also runs it by itself every interval)."""
        with self._lock:
            return self._retain(self._connection(), now_ns)

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
        if self._conn is None:
            self._conn = connect_writer(self.path)
        return self._conn

    def _retain(self, conn: sqlite3.Connection, now_ns: int | None = None) -> int:
        self._last_retention = time.monotonic()
        removed = apply_retention(
            conn, max_age=self.max_age, max_bytes=self.max_bytes, now_ns=now_ns
        )
        if removed:
            log.info("span store retention removed %d spans", removed)
        return removed

    def _warn(self, message: str) -> None:
        # One warning when writes start failing, not one per batch for as long as it lasts.
        if self._failing:
            log.debug(message)
        else:
            log.warning(message)
            self._failing = True
