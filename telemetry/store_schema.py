"""DDL and connection settings of the SQLite span store.

The queries in ``telemetry/query.py`` read only root spans for statistics, so the
columns they group and filter on (command, author, guild, outcome) are copied out
of the attribute JSON into real columns, and partial indexes over root spans keep
each ``stats --by X`` a scan of one small index in duration order: percentiles
are then an ``OFFSET`` into that index, not a sort in Python.
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

SCHEMA_VERSION = 1

# Milliseconds SQLite waits on a lock held by another connection before giving up.
BUSY_TIMEOUT_MS = 5000

WAL_SIZE_LIMIT = 16 * 1024 * 1024

# Columns a query may group or filter on without touching the attribute JSON.
GROUP_COLUMNS = ("command", "author", "guild", "outcome")

_DDL = """
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
"""

INSERT_SPAN = """
INSERT INTO spans (trace_id, span_id, parent_id, name, kind, start_ns, duration_ns, dur_bucket,
    status, status_message, is_root, command, author, guild, outcome, service, attributes, events)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


def duration_bucket(duration_ns: int) -> int:
    """Half-octave bucket of a duration: ``floor(2 * log2(µs))``, 0 below 1 µs.

    Stored with the span so a heatmap is a ``GROUP BY`` on integers, independent
    of whether this SQLite has its math functions compiled in.
    """
    micros = duration_ns / 1000
    if micros <= 1:
        return 0
    return math.floor(2 * math.log2(micros))


def bucket_floor_ms(bucket: int) -> float:
    """Lower edge of a duration bucket, in milliseconds."""
    return float(2 ** (bucket / 2) / 1000)


def connect_writer(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the store for writing, in WAL mode so readers never block it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False, isolation_level=None
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # auto_vacuum must be chosen before the first table exists; it lets the file shrink
    # after size-based retention instead of only refilling its free pages.
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    # Truncate the WAL back to this size after checkpoints so it cannot outgrow retention.
    conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
    conn.executescript(_DDL)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return conn


def connect_reader(path: Path) -> sqlite3.Connection:
    """Open an existing store read-only; WAL lets this run while the bot writes."""
    # Not ``mode=ro``: a read-only connection cannot create the WAL index file when
    # no writer is running. ``query_only`` gives the same guarantee to our code.
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA query_only = ON")
    return conn
