"""The SQLite exporter: real SDK spans in, rows out; retention; concurrent readers; failures."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import sqlite3
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExportResult,
)

from telemetry import schema
from telemetry import store as store_module
from telemetry.store import (
    Marker,
    SpanStore,
    SqliteSpanExporter,
    StoreMissing,
    apply_retention,
    read_markers,
    record_marker,
    span_row,
)
from tests.helpers.stored_spans import root, store_tracer
from tests.store_data import random_spans

NOW = 1_800_000_000 * 10**9


def test_exporter_writes_sdk_spans_with_parents_and_query_columns(tmp_path: Path) -> None:
    path = tmp_path / "spans.db"
    exporter = SqliteSpanExporter(path, max_age=timedelta(days=1), max_bytes=10**8)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span(
        "command ping", attributes={schema.COMMAND: "ping", schema.OUTCOME: "error"}
    ) as parent:
        parent.set_status(trace.StatusCode.ERROR)
        parent.record_exception(RuntimeError("boom"))
        with tracer.start_as_current_span("discord.send", attributes={schema.COMMAND: "ping"}):
            pass
    provider.shutdown()

    with SpanStore.open(path) as store:
        rows = store.conn.execute(
            "SELECT name, is_root, command, outcome, status, parent_id, events FROM spans "
            "ORDER BY is_root DESC"
        ).fetchall()
    assert [r[:5] for r in rows] == [
        ("command ping", 1, "ping", "error", "ERROR"),
        ("discord.send", 0, "ping", None, "UNSET"),
    ]
    assert rows[0][5] is None and rows[1][5] is not None
    assert "exception" in rows[0][6]


def test_store_uses_wal_so_readers_do_not_block_the_writer(tmp_path: Path) -> None:
    with store_tracer(tmp_path / "s.db") as tracer:
        root(tracer, "ping", start_ns=time.time_ns(), duration_ms=1)
    conn = sqlite3.connect(tmp_path / "s.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_concurrent_reader_sees_whole_batches_while_writing(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    exporter = SqliteSpanExporter(path, max_age=timedelta(days=1), max_bytes=10**8)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=50))
    tracer = provider.get_tracer("test")
    root(tracer, "warmup", start_ns=time.time_ns(), duration_ms=1)
    provider.force_flush()
    seen: list[int] = []
    errors: list[Exception] = []
    done = threading.Event()

    def read() -> None:
        with SpanStore.open(path) as store:
            while not done.is_set():
                try:
                    seen.append(store.conn.execute("SELECT count(*) FROM spans").fetchone()[0])
                except Exception as exc:
                    errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    for _ in range(2000):
        root(tracer, "ping", start_ns=time.time_ns(), duration_ms=1)
    provider.shutdown()
    done.set()
    reader.join()
    assert errors == []
    assert seen == sorted(seen)
    with SpanStore.open(path) as store:
        assert store.conn.execute("SELECT count(*) FROM spans").fetchone()[0] == 2001


def test_retention_drops_spans_older_than_max_age(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with store_tracer(path) as tracer:
        root(tracer, "old", start_ns=NOW - 3 * 86400 * 10**9, duration_ms=1)
        root(tracer, "new", start_ns=NOW - 3600 * 10**9, duration_ms=1)
    exporter = SqliteSpanExporter(path, max_age=timedelta(days=1), max_bytes=10**8)
    assert exporter.apply_retention(now_ns=NOW) == 1
    exporter.shutdown()
    with SpanStore.open(path) as store:
        assert store.conn.execute("SELECT command FROM spans").fetchall() == [("new",)]


def test_retention_by_size_removes_oldest_spans_until_under_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with store_tracer(path) as tracer:
        for i in range(3000):
            root(tracer, "ping", start_ns=NOW - (3000 - i) * 10**9, duration_ms=1)
    conn = sqlite3.connect(path, isolation_level=None)
    limit = 512 * 1024
    removed = apply_retention(conn, max_age=timedelta(days=30), max_bytes=limit, now_ns=NOW)
    assert removed > 0
    pages, free, size = (
        conn.execute(f"PRAGMA {p}").fetchone()[0]
        for p in ("page_count", "freelist_count", "page_size")
    )
    assert (pages - free) * size <= limit
    oldest_left = conn.execute("SELECT min(start_ns) FROM spans").fetchone()[0]
    assert conn.execute("SELECT count(*) FROM spans").fetchone()[0] == 3000 - removed
    assert oldest_left == NOW - (3000 - removed) * 10**9


def test_retention_runs_again_each_interval_while_spans_keep_coming(tmp_path: Path) -> None:
    """Not only at the first export: every ``retention_interval`` (here, of a fake clock)."""
    path = tmp_path / "s.db"
    clock = [1000.0]
    exporter = SqliteSpanExporter(
        path,
        max_age=timedelta(hours=1),
        max_bytes=10**8,
        retention_interval=timedelta(minutes=1),
        clock=lambda: clock[0],
    )
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    two_hours_ago = time.time_ns() - 2 * 3600 * 10**9

    def commands() -> list[str]:
        with SpanStore.open(path) as store:
            return [row[0] for row in store.conn.execute("SELECT command FROM spans ORDER BY id")]

    root(tracer, "first-old", start_ns=two_hours_ago, duration_ms=1)  # the first pass: at once
    assert commands() == []
    clock[0] += 30
    root(tracer, "old", start_ns=two_hours_ago, duration_ms=1)
    assert commands() == ["old"]  # half an interval later: no pass yet
    clock[0] += 31
    root(tracer, "new", start_ns=time.time_ns(), duration_ms=1)
    assert commands() == ["new"]  # an interval after the last pass: the next one ran
    clock[0] += 61
    root(tracer, "old-again", start_ns=two_hours_ago, duration_ms=1)
    assert commands() == ["new"]  # and the one after that
    provider.shutdown()


def test_retention_deletes_markers_older_than_max_age_and_keeps_newer_ones(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    record_marker(path, Marker(time_ns=NOW - 3 * 86400 * 10**9, version="v1"))
    record_marker(path, Marker(time_ns=NOW - 3600 * 10**9, version="v2"))
    exporter = SqliteSpanExporter(path, max_age=timedelta(days=1), max_bytes=10**8)
    exporter.apply_retention(now_ns=NOW)
    exporter.shutdown()
    with SpanStore.open(path) as store:
        assert [m.version for m in read_markers(store, 0, NOW)] == ["v2"]


def test_failed_write_returns_failure_and_logs_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    exporter = SqliteSpanExporter(blocker / "s.db", max_age=timedelta(days=1), max_bytes=10**8)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    span = provider.get_tracer("t").start_span("message")
    span.end()
    caplog.set_level(logging.WARNING, logger="telemetry.store")
    assert exporter.export([span]) == SpanExportResult.FAILURE  # type: ignore[list-item]
    assert exporter.export([span]) == SpanExportResult.FAILURE  # type: ignore[list-item]
    assert len(caplog.records) == 1
    provider.shutdown()


def test_reading_a_missing_store_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(StoreMissing, match="no span store at"):
        SpanStore.open(tmp_path / "nothing.db")


def _write_under_steady_reads(exporter: SqliteSpanExporter, batches: int) -> int:
    """Export ``batches`` batches while a reader queries without pause; the largest WAL seen."""
    path = exporter.path
    wal = Path(f"{path}-wal")
    rows = [span_row(span) for span in random_spans(10, seed=3)]
    assert exporter.export_rows(rows) == SpanExportResult.SUCCESS
    done = threading.Event()
    largest = [0]

    def read() -> None:
        with SpanStore.open(path) as store:
            while not done.is_set():
                store.conn.execute("SELECT max(id) FROM spans").fetchone()
                with contextlib.suppress(FileNotFoundError):
                    largest[0] = max(largest[0], wal.stat().st_size)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(batches):
            assert exporter.export_rows(rows) == SpanExportResult.SUCCESS
            largest[0] = max(largest[0], wal.stat().st_size)
    finally:
        done.set()
        reader.join()
    return largest[0]


def test_the_write_ahead_log_stays_bounded_while_readers_never_stop(tmp_path: Path) -> None:
    """SQLite's own checkpoint cannot restart a log some reader is in: it grew without end."""
    limit = 512 * 1024
    exporter = SqliteSpanExporter(
        tmp_path / "s.db", max_age=timedelta(days=3650), max_bytes=10**9, wal_limit_bytes=limit
    )
    largest = _write_under_steady_reads(exporter, batches=300)
    store_size = (tmp_path / "s.db").stat().st_size
    exporter.shutdown()
    print(f"store {store_size / 1e6:.1f} MB, largest WAL {largest / 1e6:.2f} MB")
    # The limit, plus what one batch writes before the checkpoint after it (without the
    # checkpoint: 8 MB of log for a 2.8 MB store).
    assert largest < 3 * limit
    assert store_size > 4 * limit  # enough was written for the log to have outgrown it


@pytest.mark.parametrize("removed", ["file", "with-wal", "directory"])
def test_a_store_deleted_while_running_is_recreated_and_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, removed: str
) -> None:
    path = tmp_path / ".chatops" / "s.db"
    exporter = SqliteSpanExporter(path, max_age=timedelta(days=3650), max_bytes=10**9)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    root(tracer, "before", start_ns=time.time_ns(), duration_ms=1)
    caplog.set_level(logging.INFO, logger="telemetry.store")
    # An operator cleaning up, or a volume swapped.
    if removed == "directory":
        shutil.rmtree(path.parent)
    for suffix in ("",) if removed == "file" else ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    root(tracer, "after", start_ns=time.time_ns(), duration_ms=1)
    root(tracer, "later", start_ns=time.time_ns(), duration_ms=1)
    provider.shutdown()
    with SpanStore.open(path) as store:
        commands = [row[0] for row in store.conn.execute("SELECT command FROM spans ORDER BY id")]
    assert commands == ["after", "later"]
    warnings = [r for r in caplog.records if "deleted or replaced" in r.message]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING


def test_a_reader_holding_the_log_delays_the_checkpoint_but_no_export_fails(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "CHECKPOINT_WAIT_MS", 50)
    path = tmp_path / "s.db"
    wal = Path(f"{path}-wal")
    limit = 64 * 1024
    exporter = SqliteSpanExporter(
        path, max_age=timedelta(days=3650), max_bytes=10**9, wal_limit_bytes=limit
    )
    rows = [span_row(span) for span in random_spans(20, seed=4)]
    assert exporter.export_rows(rows) == SpanExportResult.SUCCESS
    caplog.set_level(logging.DEBUG, logger="telemetry.store")
    with SpanStore.open(path) as store:
        store.conn.execute("BEGIN")
        store.conn.execute("SELECT count(*) FROM spans").fetchone()  # a snapshot held open
        for _ in range(4):
            assert exporter.export_rows(rows) == SpanExportResult.SUCCESS
        held = wal.stat().st_size
        store.conn.execute("COMMIT")
    assert exporter.export_rows(rows) == SpanExportResult.SUCCESS
    assert held > limit  # it could not be emptied while the reader was in it
    assert wal.stat().st_size == 0  # and was once the reader had gone
    said = [r for r in caplog.records if "kept it from being emptied" in r.message]
    assert [r.levelno for r in said][:1] == [logging.INFO]
    assert all(r.levelno == logging.DEBUG for r in said[1:])
    with SpanStore.open(path) as store:
        assert store.conn.execute("SELECT count(*) FROM spans").fetchone()[0] == 6 * len(rows)
    exporter.shutdown()


def test_a_rows_attributes_are_what_json_dumps_writes() -> None:
    """The row's JSON comes from a C encoder made once; it must write what ``json.dumps``
    with ``default=str`` writes, for every value a span can hold."""

    class Odd:
        def __str__(self) -> str:
            return "odd"

    values: dict[str, object] = {
        "str": 'héllo ☃ "quoted" \\ \n',
        "int": -(2**70),
        "float": 1.5,
        "nan": float("nan"),
        "inf": float("-inf"),
        "bool": True,
        "none": None,
        "tuple": ("a", 1, 2.5, False),
        "odd": Odd(),
    }
    provider = TracerProvider()
    span = provider.get_tracer("t").start_span("s")
    span.end()
    span._attributes = values  # type: ignore[attr-defined]
    row = span_row(span)
    assert row[-2] == json.dumps(values, default=str)
    assert row[-1] is None  # no events
