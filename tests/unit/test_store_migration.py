"""Stores of older schema versions: queryable as they are, migrated in place by a writer."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from telemetry import schema
from telemetry.query import Where, Window, heatmap, slowest, stats, waterfall
from telemetry.store import SpanStore, insert_rows, span_row, write_rows
from telemetry.store_schema import (
    INSERT_SPAN,
    SCHEMA_VERSION,
    connect_writer,
    read_layout,
    transaction,
)
from tests.store_data import HOUR, NOW, expected_stats, random_spans, roots_in

WINDOW = Window(NOW - 24 * HOUR, NOW)

# Version 1's DDL as it shipped; its writer ran this on every open and set user_version 1.
V1_DDL = """
PRAGMA auto_vacuum = INCREMENTAL;
PRAGMA journal_mode = WAL;
CREATE TABLE IF NOT EXISTS spans (
    id          INTEGER PRIMARY KEY,
    trace_id    TEXT    NOT NULL,
    span_id     TEXT    NOT NULL,
    parent_id   TEXT,
    name        TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    start_ns    INTEGER NOT NULL,
    duration_ns INTEGER NOT NULL,
    dur_bucket  INTEGER NOT NULL,
    status      TEXT    NOT NULL,
    status_message TEXT,
    is_root     INTEGER NOT NULL,
    command     TEXT,
    author      TEXT,
    guild       TEXT,
    outcome     TEXT,
    service     TEXT,
    attributes  TEXT    NOT NULL,
    events      TEXT
);
CREATE INDEX IF NOT EXISTS spans_trace ON spans (trace_id);
CREATE INDEX IF NOT EXISTS spans_start ON spans (start_ns);
CREATE INDEX IF NOT EXISTS roots_time ON spans (start_ns, dur_bucket, duration_ns)
    WHERE is_root = 1;
CREATE INDEX IF NOT EXISTS roots_command ON spans (command, duration_ns, start_ns, outcome)
    WHERE is_root = 1;
CREATE INDEX IF NOT EXISTS roots_author ON spans (author, duration_ns, start_ns, outcome)
    WHERE is_root = 1;
CREATE INDEX IF NOT EXISTS roots_guild ON spans (guild, duration_ns, start_ns, outcome)
    WHERE is_root = 1;
CREATE INDEX IF NOT EXISTS roots_outcome ON spans (outcome, duration_ns, start_ns)
    WHERE is_root = 1;
CREATE TABLE IF NOT EXISTS markers (
    id        INTEGER PRIMARY KEY,
    time_ns   INTEGER NOT NULL,
    version   TEXT    NOT NULL,
    message   TEXT,
    url       TEXT,
    remote_id TEXT
);
CREATE INDEX IF NOT EXISTS markers_time ON markers (time_ns);
PRAGMA user_version = 1;
"""


def open_as_version_1(path: Path) -> sqlite3.Connection:
    """What version 1's ``connect_writer`` did, including on a store a newer version wrote."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(V1_DDL)
    return conn


def write_as_older_version(conn: sqlite3.Connection, spans: list[ReadableSpan]) -> None:
    """The rows alone: before version 4 a write recorded no ``trace_chunks`` row."""
    with transaction(conn):
        write_rows(conn, INSERT_SPAN, [span_row(span) for span in spans])


@pytest.fixture(scope="module")
def spans() -> list[ReadableSpan]:
    return random_spans(800, seed=1)


@pytest.fixture
def old_store(tmp_path: Path, spans: list[ReadableSpan]) -> Path:
    path = tmp_path / "spans.db"
    conn = open_as_version_1(path)
    write_as_older_version(conn, spans)
    conn.close()
    return path


def assert_answers_like_brute_force(store: SpanStore, spans: list[ReadableSpan]) -> None:
    for by in ("command", schema.GUILD_NAME, schema.CHANNEL_ID):
        assert stats(store, window=WINDOW, by=by) == expected_stats(spans, WINDOW, by)
    where = [Where.parse("app.outcome=error")]
    assert stats(store, window=WINDOW, where=where) == expected_stats(
        spans, WINDOW, "command", where
    )
    assert heatmap(store, window=WINDOW, columns=10).total == len(roots_in(spans, WINDOW))
    slowest_first = max((s.end_time or 0) - (s.start_time or 0) for s in roots_in(spans, WINDOW))
    assert slowest(store, window=WINDOW, limit=1)[0].duration_ms == slowest_first / 1e6
    for span in spans[:: len(spans) // 7]:  # a trace found by its id, with all its spans
        trace_id = format(span.context.trace_id, "032x")
        wanted = {
            format(s.context.span_id, "016x")
            for s in spans
            if s.context.trace_id == span.context.trace_id
        }
        assert {row.span_id for row in waterfall(store, trace_id[:12])} == wanted


def test_an_old_store_answers_the_same_without_being_migrated(
    old_store: Path, spans: list[ReadableSpan]
) -> None:
    with SpanStore.open(old_store) as store:
        assert store.layout.version == 1
        assert "guild_name" not in store.layout.columns
        assert_answers_like_brute_force(store, spans)
    with SpanStore.open(old_store) as store:  # reading never migrates
        assert store.layout.version == 1 and "roots_bucket" not in store.layout.indexes


def test_a_writer_migrates_an_old_store_in_place(
    old_store: Path, spans: list[ReadableSpan]
) -> None:
    cache = Path(f"{old_store}-groups")  # what earlier versions kept beside the store
    cache.write_bytes(b"SQLite format 3\x00")
    conn = connect_writer(old_store)
    assert not cache.exists()
    layout = read_layout(conn)
    assert layout.version == SCHEMA_VERSION == 5
    assert "spans_trace" not in layout.indexes and "trace_chunks" in layout.tables
    # Every root span's values stored by key, read from its JSON once.
    assert {"root_values", "root_keys"} <= layout.tables
    assert conn.execute("SELECT count(*) FROM trace_chunks WHERE root_values = 1").fetchone()[0]
    assert not conn.execute("SELECT 1 FROM trace_chunks WHERE root_values IS NOT 1").fetchone()
    assert "guild_name" in layout.columns
    assert {"roots_start", "roots_bucket"} <= layout.indexes
    assert not DURATION_ORDERED & layout.indexes
    assert "roots_time" not in layout.indexes
    assert conn.execute("SELECT count(*) FROM spans").fetchone()[0] == len(spans)
    more = random_spans(50, seed=2)
    insert_rows(conn, [span_row(span) for span in more])
    conn.close()
    with SpanStore.open(old_store) as store:
        assert_answers_like_brute_force(store, [*spans, *more])


def test_a_migrated_store_has_the_layout_of_a_new_one(old_store: Path, tmp_path: Path) -> None:
    migrated = read_layout(connect_writer(old_store))
    fresh = read_layout(connect_writer(tmp_path / "new.db"))
    assert migrated == fresh


# Version 2's indexes in (column, duration) order, which version 3 replaced by roots_start.
DURATION_ORDERED = {f"roots_{c}" for c in ("command", "author", "guild", "outcome", "guild_name")}


@pytest.fixture
def version_2_store(tmp_path: Path, spans: list[ReadableSpan]) -> Path:
    """A store as version 2 left it: its five duration-ordered indexes, no roots_start, an
    index of trace ids and no trace_chunks."""
    path = tmp_path / "v2.db"
    conn = connect_writer(path)
    conn.execute("DROP TABLE trace_chunks")
    conn.execute("DROP TABLE root_values")
    conn.execute("DROP TABLE root_keys")
    conn.execute("CREATE INDEX spans_trace ON spans (trace_id)")
    write_as_older_version(conn, spans)
    conn.execute("DROP INDEX roots_start")
    for column in ("command", "author", "guild", "guild_name"):
        conn.execute(
            f"CREATE INDEX roots_{column} ON spans ({column}, duration_ns, start_ns, outcome) "
            "WHERE is_root = 1"
        )
    conn.execute(
        "CREATE INDEX roots_outcome ON spans (outcome, duration_ns, start_ns) WHERE is_root = 1"
    )
    conn.execute("PRAGMA user_version = 2")
    conn.close()
    return path


def test_a_version_2_store_answers_the_same_and_migrates_to_the_new_layout(
    version_2_store: Path, spans: list[ReadableSpan], tmp_path: Path
) -> None:
    with SpanStore.open(version_2_store) as store:  # read as it is: no roots_start
        assert store.layout.version == 2 and "roots_start" not in store.layout.indexes
        assert_answers_like_brute_force(store, spans)
    migrated = read_layout(connect_writer(version_2_store))
    assert migrated == read_layout(connect_writer(tmp_path / "new.db"))
    with SpanStore.open(version_2_store) as store:
        assert_answers_like_brute_force(store, spans)


def test_an_older_writer_in_between_does_not_break_the_next_migration(
    old_store: Path, spans: list[ReadableSpan]
) -> None:
    connect_writer(old_store).close()
    # An older bot opens it again: it recreates roots_time and sets version 1 back.
    open_as_version_1(old_store).close()
    conn = connect_writer(old_store)
    assert read_layout(conn).version == SCHEMA_VERSION
    conn.close()
    with SpanStore.open(old_store) as store:
        assert_answers_like_brute_force(store, spans)


def test_a_store_from_a_newer_version_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "spans.db"
    connect_writer(path).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn = connect_writer(path)
    insert_rows(conn, [span_row(span) for span in random_spans(5, seed=3)])
    assert read_layout(conn).version == SCHEMA_VERSION + 1


def test_a_writer_opening_the_store_waits_out_another_s_migration(
    version_2_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``chatops marker`` at deploy time while the new bot migrates a big store (6 s for
    a million root spans): it waits for the migration, longer than the usual lock wait."""
    from telemetry import store_schema

    monkeypatch.setattr(store_schema, "BUSY_TIMEOUT_MS", 1)  # the usual wait, made tiny
    holder = sqlite3.connect(version_2_store, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # as a migration in progress holds the store
    opened: list[object] = []

    def open_writer() -> None:
        try:
            opened.append(read_layout(connect_writer(version_2_store)).version)
        except sqlite3.Error as exc:
            opened.append(exc)

    thread = threading.Thread(target=open_writer)
    thread.start()
    # Held well past the usual wait: the lock is not given up before the writer asks.
    thread.join(timeout=0.3)
    holder.execute("COMMIT")
    holder.close()
    thread.join()
    assert opened == [SCHEMA_VERSION]
