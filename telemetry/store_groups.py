"""A cache beside the span store that makes ``stats --by`` fast on any attribute.

An attribute with no column of its own lives only in each span's attribute JSON,
and grouping a million root spans by it takes 1.5 s (about 350 bytes of JSON
each, read from the whole table; this SQLite has no JSONB). So the first ``stats
--by KEY`` for such a key copies, for every root span, the key's value with the
span's duration, start and outcome into a table of its own in a second SQLite file
beside the store (``spans.db-groups``), in start order, the shape of the store's own
``roots_start``: from then on the query reads the window's stretch of that table
as it reads ``roots_start``.

Each later query first brings the table up to date, which costs little: the
spans written since (ids only grow), and those retention removed (retention
deletes the oldest spans first, so every cached row that started before the
oldest span left is gone, and at that exact start time the ids still there say
which). A store replaced by another file is noticed by the newest span it had
seen no longer being there, and the table is built again.

The bot never waits for any of this: the cache is written by ``chatops`` only,
in its own file, with the store attached and only read (under WAL, reading never
blocks the writer), so the export path pays nothing. Over 1,000,000 root spans
the first question costs about 1.8 s (copying 1.4 s, mostly reading the JSON) and
each later one about 0.4 s; the file takes about 37 bytes per root span per key.
A cache that cannot be written (a read-only directory, a disk full) is skipped,
and the query reads the JSON as before: the answer is the same, only slower. At
most ``MAX_KEYS`` keys are kept; the least recently asked for makes room.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from telemetry.store_schema import BUSY_TIMEOUT_MS, json_path, json_text

log = logging.getLogger(__name__)

# Keys cached at once; each costs about 37 bytes per root span on disk.
MAX_KEYS = 4

_META = """CREATE TABLE IF NOT EXISTS keys (
    key       TEXT PRIMARY KEY,
    tab       TEXT NOT NULL UNIQUE,
    high_id   INTEGER NOT NULL,     -- the newest span (any span) of the store seen so far
    high_span TEXT,                 -- its span_id: the same store still has it
    used_ns   INTEGER NOT NULL
)"""


def cache_path(store_path: Path) -> Path:
    return Path(f"{store_path}-groups")


@dataclass(frozen=True)
class GroupTable:
    """Where one key's cached values are: a table with the store's root-index shape.

    ``conn`` is the cache's connection, ``table`` has the columns ``start_ns``,
    ``id`` (the span's row in the store), ``is_root`` (always 1), ``value``,
    ``duration_ns`` and ``outcome``, in (start, id) order.
    """

    conn: sqlite3.Connection
    table: str


def group_table(
    store_path: Path, key: str, names: tuple[str, ...], *, create: bool = True
) -> GroupTable | None:
    """The cache of ``key`` (read from the first of ``names`` present), up to date with the store.

    ``None`` if the cache cannot be opened or written, or (``create=False``) does
    not hold the key yet: the caller reads the JSON.
    """
    path = cache_path(store_path)
    if not create and not path.is_file():
        return None
    try:
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
    except (sqlite3.Error, OSError) as exc:
        log.debug("no group cache for %s: %s", store_path, exc)
        return None
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(_META)
        if not create and not conn.execute("SELECT 1 FROM keys WHERE key = ?", (key,)).fetchone():
            conn.close()
            return None
        # The store, attached to copy from it in SQLite: only ever read (under WAL a reader
        # never blocks the bot's writes). Never BEGIN IMMEDIATE on this connection: that
        # would take the write lock of every attached file, the store's too.
        conn.execute("ATTACH DATABASE ? AS store", (str(store_path),))
        return _sync(conn, key, names)
    except (sqlite3.Error, OSError) as exc:
        log.debug("group cache %s not used: %s", path, exc)
        conn.close()  # rolls back whatever was left open
        return None


def _sync(conn: sqlite3.Connection, key: str, names: tuple[str, ...]) -> GroupTable:
    conn.execute("BEGIN")
    try:
        # A write to the cache first: two `chatops stats` at once, the second waits here.
        # The store's read snapshot starts at its first read below and lasts to COMMIT, so
        # no span is seen twice or missed between the statements.
        conn.execute("UPDATE keys SET used_ns = ? WHERE key = ?", (time.time_ns(), key))
        found = conn.execute(
            "SELECT tab, high_id, high_span FROM keys WHERE key = ?", (key,)
        ).fetchone()
        if found is not None:
            table, high_id, high_span = found
            if high_id and _span_id(conn, high_id) != high_span:
                # Not the store this was built from (replaced, or emptied and refilled).
                conn.execute(f"DELETE FROM {table}")
                high_id = 0
        else:
            table = _new_table(conn, key)
            high_id = 0
        _drop_removed(conn, table)
        _copy_new(conn, table, names, high_id)
        newest = conn.execute("SELECT max(id) FROM store.spans").fetchone()[0] or 0
        conn.execute(
            "UPDATE keys SET high_id = ?, high_span = ? WHERE key = ?",
            (newest, _span_id(conn, newest), key),
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return GroupTable(conn, table)


def _span_id(conn: sqlite3.Connection, span_row_id: int) -> str | None:
    found = conn.execute("SELECT span_id FROM store.spans WHERE id = ?", (span_row_id,)).fetchone()
    return None if found is None else str(found[0])


def _new_table(conn: sqlite3.Connection, key: str) -> str:
    """A table for a key not cached yet; evicts the least recently used."""
    cached = conn.execute("SELECT key, tab FROM keys ORDER BY used_ns").fetchall()
    for _, old in cached[: max(0, len(cached) - MAX_KEYS + 1)]:
        conn.execute(f"DROP TABLE IF EXISTS main.{old}")
        conn.execute("DELETE FROM keys WHERE tab = ?", (old,))
    number = conn.execute("SELECT coalesce(max(CAST(substr(tab, 2) AS INTEGER)), 0) + 1 FROM keys")
    table = f"g{number.fetchone()[0]}"
    conn.execute(f"DROP TABLE IF EXISTS main.{table}")
    # In start order, so what retention removed is a range at the front of the table.
    conn.execute(
        f"CREATE TABLE main.{table} (start_ns INTEGER NOT NULL, id INTEGER NOT NULL, "
        "is_root INTEGER NOT NULL, value TEXT, duration_ns INTEGER NOT NULL, outcome TEXT, "
        "PRIMARY KEY (start_ns, id)) WITHOUT ROWID"
    )
    conn.execute(
        "INSERT INTO keys (key, tab, high_id, high_span, used_ns) VALUES (?, ?, 0, NULL, ?)",
        (key, table, time.time_ns()),
    )
    return table


def _drop_removed(conn: sqlite3.Connection, table: str) -> None:
    """Remove the cached rows of spans retention has deleted since the last sync.

    Retention deletes the oldest spans first (by start time), so whatever started
    before the oldest span still stored is gone; at that start time itself, ties
    may have been split, and the ids still stored there decide.
    """
    oldest = conn.execute("SELECT min(start_ns) FROM store.spans").fetchone()[0]
    if oldest is None:
        conn.execute(f"DELETE FROM main.{table}")
        return
    conn.execute(f"DELETE FROM main.{table} WHERE start_ns < ?", (oldest,))
    conn.execute(
        f"DELETE FROM main.{table} WHERE start_ns = ? "
        "AND id NOT IN (SELECT id FROM store.spans WHERE start_ns = ?)",
        (oldest, oldest),
    )


def _copy_new(conn: sqlite3.Connection, table: str, names: tuple[str, ...], high_id: int) -> None:
    """Copy the root spans written after ``high_id``."""
    # A table an older version made has an index in (value, duration) order, no longer read.
    # Dropped only when the table is filled anew (its store replaced), so an older
    # ``chatops`` sharing the cache keeps finding it otherwise.
    if conn.execute(f"SELECT 1 FROM main.{table} LIMIT 1").fetchone() is None:
        conn.execute(f"DROP INDEX IF EXISTS main.{table}_by")
    conn.execute(
        f"INSERT INTO main.{table} (start_ns, id, is_root, value, duration_ns, outcome) "
        f"SELECT start_ns, id, 1, {json_text(names, literal=False)}, duration_ns, outcome "
        "FROM store.spans WHERE id > ? AND is_root = 1",
        [*(json_path(name) for name in names), high_id],
    )
