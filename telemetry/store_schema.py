"""DDL, migrations and connection settings of the SQLite span store.

The queries in ``telemetry/query.py`` read only root spans for statistics, so the
attributes they group and filter on have real columns: command, author, guild and
outcome are copied out of the attribute JSON when a span is written, and the guild
name is a *generated* column that SQLite computes from the JSON (right for spans
written before it existed). One partial index holds them for every root span in
start order, ``roots_start``: the bot only ever appends to it (a root span's entry
lands on the index's last page), and ``chatops stats --by X`` reads the window's
stretch of it once, grouping and sorting durations in C
(``telemetry/store_sqlite.py``). ``roots_bucket`` orders root spans by duration
bucket, then start: a heatmap cell is a range of it, and the slowest spans are in its
last buckets.

Columns are keyed by attribute names (``COLUMNS``), several names per column if
need be. HTTP spans carry the stable semantic-convention names
(``http.request.method``, ``http.response.status_code``, ``url.full``); a store
written before they did holds the old ones (``http.method``, ...), so a query for
either name reads both and an old store keeps answering (``attribute_names``).

A trace is found by its id without an index of trace ids: a span's entry in one
landed on a random page (trace ids are random), and writing those pages was half
of what the store cost per span. Instead each write appends one row to
``trace_chunks``: the id range of its rows and the first ``PREFIX_DIGITS`` hex digits
of each trace id among them; ``chatops trace`` reads the ranges that hold the digits
asked for, and any rows no chunk covers (``telemetry/query.py``).

Schema versions (``PRAGMA user_version``): 1 had the copied columns and an index per
column in (column, duration) order, ``roots_time`` and ``spans_trace`` (trace id); 2
adds the generated column and its index, and ``roots_bucket`` in place of
``roots_time``; 3 replaces the five (column, duration) indexes with ``roots_start``.
Those kept each group's durations in order, so a percentile was one ``OFFSET``, but
each root span's entries landed on five random pages, and writing them was most of
what the store cost the bot (docs/development.md); 4 replaces ``spans_trace`` with
``trace_chunks``. A writer migrates an older store in place when it opens it
(adding a generated column is instant; each new index reads the root spans once:
over a million root spans version 1 to 2 took 3.5 s, version 2 to 3 6.1 s, version 3
to 4 1.7-3.5 s). A reader never migrates: ``read_layout`` tells the queries which
columns, indexes and tables exist, so ``chatops stats`` and ``chatops trace`` answer
the same from an old store, only slower.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from opentelemetry.semconv._incubating.attributes.http_attributes import (
    HTTP_METHOD,
    HTTP_STATUS_CODE,
    HTTP_URL,
)
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE,
)
from opentelemetry.semconv.attributes.url_attributes import URL_FULL

from telemetry import schema, store_sqlite

SCHEMA_VERSION = 5

# Milliseconds SQLite waits on a lock held by another connection before giving up.
BUSY_TIMEOUT_MS = 5000
# What a writer opening the store waits for another one's migration: longer than the 6.1 s
# a million root spans took from version 2 to 3 (``chatops marker`` at deploy time, while
# the new bot migrates).
MIGRATION_WAIT_MS = 120_000

WAL_SIZE_LIMIT = 16 * 1024 * 1024

# The writer's page cache, KiB (SQLite's default is 2,000): it holds the pages one
# batch dirties. 256 KiB: in the overhead benchmark (one 3-round run in turns, store
# variants side by side) the store's peak RSS measured +24.5 MB over the plain bot
# against +24.7 at 512 KiB, its CPU 1.16x against 1.20x (within that run's noise);
# 128 KiB saved nothing more and measured 1.29x at 32 users. Into a full store it
# costs about 10 % more a root span than 512 KiB (51-52 against 46 µs into a copy of
# the 1,000,000-root store), where most index pages a batch touches are in no cache
# of a size that fits here (docs/telemetry.md).
WRITER_CACHE_KIB = 256

# SQLite's default: a commit that leaves more WAL pages than this checkpoints them.
WAL_AUTOCHECKPOINT_PAGES = 1000


@dataclass(frozen=True)
class Column:
    """A column of ``spans`` that holds one attribute of the span, as text.

    ``attributes`` are the names the value may be recorded under, first present
    wins. A copied column is filled by ``span_row``; a generated one is computed
    by SQLite from the attribute JSON (``VIRTUAL``: nothing extra is stored but
    its index).
    """

    name: str
    attributes: tuple[str, ...]
    generated: bool
    short: str | None = None  # a name ``--by`` also accepts, e.g. ``author``

    def expression(self) -> str:
        """SQL computing this column from the attribute JSON."""
        return json_text(self.attributes)


def json_text(attributes: tuple[str, ...], *, literal: bool = True) -> str:
    """``CAST(json_extract(...) AS TEXT)`` of the first of ``attributes`` present.

    With ``literal=False`` the JSON paths are ``?`` parameters (``json_paths``
    gives their values), for keys that come from the command line.
    """

    def one(key: str) -> str:
        path = "'" + json_path(key).replace("'", "''") + "'" if literal else "?"
        return f"json_extract(attributes, {path})"

    extracted = [one(key) for key in attributes]
    inner = extracted[0] if len(extracted) == 1 else f"coalesce({', '.join(extracted)})"
    return f"CAST({inner} AS TEXT)"


def json_path(key: str) -> str:
    return f'$."{key}"'


# Every attribute with a column, copied ones first. Each is held in ``roots_start``, which
# makes every root span's entry in it a little longer; a generated column is for an
# attribute people group *all* root spans by (any other is grouped and filtered by from
# ``root_values``, the values each write keeps by key). To add one,
# list it here and in ``ROOT_COLUMNS``, with a migration step that drops ``roots_start``
# and creates it again.
COLUMNS = (
    Column("command", (schema.COMMAND,), generated=False, short="command"),
    Column("author", (schema.AUTHOR_ID,), generated=False, short="author"),
    Column("guild", (schema.GUILD_ID,), generated=False, short="guild"),
    Column("outcome", (schema.OUTCOME,), generated=False, short="outcome"),
    Column("guild_name", (schema.GUILD_NAME,), generated=True),
)
COLUMNS_BY_NAME = {column.name: column for column in COLUMNS}
# Attributes a query reads from their column: ``root_values`` keeps none of them.
_WITH_COLUMNS = frozenset(name for column in COLUMNS for name in column.attributes)

# The old HTTP attribute names (recorded before the switch, and beside the stable ones
# with OTEL_SEMCONV_STABILITY_OPT_IN=http/dup) and the stable names that replace them.
# Neither has a column (HTTP spans are never roots), but a query for either name reads
# both, stable first, so traces stored before and after the switch answer alike.
HTTP_RENAMES = {
    HTTP_METHOD: HTTP_REQUEST_METHOD,
    HTTP_STATUS_CODE: HTTP_RESPONSE_STATUS_CODE,
    HTTP_URL: URL_FULL,
}


def attribute_names(key: str) -> tuple[str, ...]:
    """The attribute names a query for ``key`` reads, first present wins."""
    for old, new in HTTP_RENAMES.items():
        if key in (old, new):
            return (new, old)
    return (key,)


# What ``roots_start`` holds of each root span, so a query grouping or filtering on any of
# them never reads the table: ``service`` tells CI spans from the bot's own. Written out,
# not derived from ``COLUMNS``: a store's index is what the version that built it listed.
ROOT_COLUMNS = (
    "start_ns",
    "duration_ns",
    "outcome",
    "command",
    "author",
    "guild",
    "guild_name",
    "service",
)
ROOTS_START = "roots_start"
TRACE_CHUNKS = "trace_chunks"
ROOT_VALUES = "root_values"
ROOT_KEYS = "root_keys"
# Hex digits of a trace id ``trace_chunks`` keeps: the shortest prefix ``chatops trace`` takes.
PREFIX_DIGITS = 8


# One row per write: the id range of its rows and the first ``PREFIX_DIGITS`` hex digits of
# each trace id among them, comma-separated: where ``chatops trace`` looks (version 4).
_TRACE_CHUNKS_TABLE = f"""CREATE TABLE IF NOT EXISTS {TRACE_CHUNKS} (
    last_id   INTEGER PRIMARY KEY,
    first_id  INTEGER NOT NULL,
    prefixes  TEXT    NOT NULL,
    root_values INTEGER             -- 1: root_values holds its root spans' values (version 5)
)"""

# Per write and attribute key of its root spans, the key's values (version 5): one blob of
# (offset of the row in the write, value as text) entries, made in C from the rows' JSON
# (``store_sqlite.root_values``). Keyed by key first, so one key's values are one stretch of
# the table; ``root_keys`` lists the keys, so a write's values can be removed key by key.
_ROOT_VALUES_TABLES = [
    f"""CREATE TABLE IF NOT EXISTS {ROOT_VALUES} (
    key       TEXT    NOT NULL,
    first_id  INTEGER NOT NULL,     -- the write's chunk: trace_chunks.first_id
    vals      BLOB    NOT NULL,
    PRIMARY KEY (key, first_id)
) WITHOUT ROWID""",
    f"CREATE TABLE IF NOT EXISTS {ROOT_KEYS} (key TEXT PRIMARY KEY) WITHOUT ROWID",
]

_TABLES = [
    """CREATE TABLE IF NOT EXISTS spans (
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
)""",
    _TRACE_CHUNKS_TABLE,
    """CREATE TABLE IF NOT EXISTS markers (
    id        INTEGER PRIMARY KEY,
    time_ns   INTEGER NOT NULL,
    version   TEXT    NOT NULL,
    message   TEXT,
    url       TEXT,
    remote_id TEXT
)""",
]


def _add_generated(conn: sqlite3.Connection) -> None:
    # Only the missing ones: a version-1 writer (an older bot) may have opened the store
    # since and set its version back, but it never drops columns.
    present = {row[1] for row in conn.execute("PRAGMA table_xinfo(spans)")}
    for column in COLUMNS:
        if column.generated and column.name not in present:
            conn.execute(
                f"ALTER TABLE spans ADD COLUMN {column.name} TEXT "
                f"GENERATED ALWAYS AS ({column.expression()}) VIRTUAL"
            )


# Version 1 to 3 also had ``spans_trace`` on (trace_id), which version 4 drops.
_INDEXES_V1 = [
    "CREATE INDEX IF NOT EXISTS spans_start ON spans (start_ns)",
    "CREATE INDEX IF NOT EXISTS markers_time ON markers (time_ns)",
]

# ``roots_bucket`` replaces version 1's ``roots_time`` (start_ns, dur_bucket, duration_ns):
# in bucket order a heatmap cell is a range of the index, so the heatmap counts cells
# without sorting a million rows, and the slowest spans are in the last buckets.
_INDEXES_V2 = [
    "CREATE INDEX IF NOT EXISTS roots_bucket ON spans (dur_bucket, start_ns, duration_ns, outcome) "
    "WHERE is_root = 1",
]
_DROPPED_V2 = ["DROP INDEX IF EXISTS roots_time"]

_INDEXES_V3 = [
    f"CREATE INDEX IF NOT EXISTS {ROOTS_START} ON spans ({', '.join(ROOT_COLUMNS)}) "
    "WHERE is_root = 1",
]
_DROPPED_V3 = [f"DROP INDEX IF EXISTS roots_{c.name}" for c in COLUMNS]


def _to_version_2(conn: sqlite3.Connection) -> None:
    # Version 2's duration-ordered index of the generated column is not made: version 3,
    # the next step, would drop it.
    _add_generated(conn)
    for statement in [*_INDEXES_V2, *_DROPPED_V2]:
        conn.execute(statement)


def _to_version_3(conn: sqlite3.Connection) -> None:
    for statement in [*_INDEXES_V3, *_DROPPED_V3]:
        conn.execute(statement)


def _to_version_4(conn: sqlite3.Connection) -> None:
    # The rows stored without a chunk, in chunks of consecutive ids as writes record theirs:
    # all of them, or those an older bot wrote past the last chunk since an earlier
    # migration (a reader reads every row no chunk covers in full, only slower).
    conn.execute(_TRACE_CHUNKS_TABLE)
    conn.execute(
        f"INSERT OR IGNORE INTO {TRACE_CHUNKS} (last_id, first_id, prefixes) "
        f"SELECT max(id), min(id), group_concat(DISTINCT substr(trace_id, 1, {PREFIX_DIGITS})) "
        f"FROM spans WHERE id > (SELECT coalesce(max(last_id), 0) FROM {TRACE_CHUNKS}) "
        "GROUP BY id / 512"
    )
    conn.execute("DROP INDEX IF EXISTS spans_trace")


def _to_version_5(conn: sqlite3.Connection) -> None:
    # Every chunk's root spans' values, read from their JSON once: a store written before
    # answers `stats --by KEY` as fast as one written since.
    for statement in _ROOT_VALUES_TABLES:
        conn.execute(statement)
    columns = {row[1] for row in conn.execute(f"PRAGMA table_info({TRACE_CHUNKS})")}
    if ROOT_VALUES not in columns:
        conn.execute(f"ALTER TABLE {TRACE_CHUNKS} ADD COLUMN {ROOT_VALUES} INTEGER")
    chunks = conn.execute(
        f"SELECT first_id, last_id FROM {TRACE_CHUNKS} WHERE {ROOT_VALUES} IS NULL"
    ).fetchall()
    for first, last in chunks:
        roots = conn.execute(
            "SELECT id - ?, attributes FROM spans WHERE id BETWEEN ? AND ? AND is_root = 1",
            (first, first, last),
        ).fetchall()
        described = write_root_values(conn, first, roots, last_id=last)
        conn.execute(
            f"UPDATE {TRACE_CHUNKS} SET {ROOT_VALUES} = ? WHERE last_id = ?", (described, last)
        )


# Steps that bring a store of version N (the key) to version N + 1.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _to_version_2,
    2: _to_version_3,
    3: _to_version_4,
    4: _to_version_5,
}

# Replacing, should a chunk hold the same last id: a row no chunk covers is still found
# (``query._id_ranges`` reads it), a chunk covering rows it does not describe would hide them.
INSERT_CHUNK = (
    f"INSERT OR REPLACE INTO {TRACE_CHUNKS} (last_id, first_id, prefixes, {ROOT_VALUES}) "
    "VALUES (?, ?, ?, ?)"
)

# Values stored for ids from the first to the last given: left over from rows that had those
# ids before (retention deleted the newest rows, or an older bot cut its chunks without
# knowing of the values), so none of them is a value of the rows written now.
_DELETE_VALUES_BETWEEN = (
    f"DELETE FROM {ROOT_VALUES} WHERE key IN (SELECT key FROM {ROOT_KEYS}) "
    "AND first_id BETWEEN ? AND ?"
)


def write_root_values(
    conn: sqlite3.Connection,
    first_id: int,
    roots: Sequence[tuple[int, str]],
    *,
    last_id: int = 2**63 - 1,
) -> int:
    """Store the values of a write's root spans, given as (id - first_id, attribute JSON).

    Values stored before for writes starting from ``first_id`` to ``last_id`` go
    first: a new write at the top of the store (the default) owns every id from its
    first on; the migration describes one chunk among others. Returns what the chunk
    records in ``root_values``: 1 when the values are stored (or there were none), 0
    when the JSON was not the store's own or the C access is not available here:
    readers then read those rows' JSON.
    """
    conn.execute(_DELETE_VALUES_BETWEEN, (first_id, last_id))
    if not roots:
        return 1
    columns = store_sqlite.root_values(conn, roots, _WITH_COLUMNS)
    if columns is None:
        return 0
    conn.executemany(
        f"INSERT OR IGNORE INTO {ROOT_KEYS} (key) VALUES (?)", [(key,) for key, _ in columns]
    )
    conn.executemany(
        f"INSERT OR REPLACE INTO {ROOT_VALUES} (key, first_id, vals) VALUES (?, ?, ?)",
        [(key, first_id, blob) for key, blob in columns],
    )
    return 1


INSERT_SPAN = """
INSERT INTO spans (trace_id, span_id, parent_id, name, kind, start_ns, duration_ns, dur_bucket,
    status, status_message, is_root, command, author, guild, outcome, service, attributes, events)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


@dataclass(frozen=True)
class Layout:
    """What a store file has: its schema version, the columns of ``spans``, its indexes
    and tables."""

    version: int
    columns: frozenset[str]
    indexes: frozenset[str]
    tables: frozenset[str]


def read_layout(conn: sqlite3.Connection) -> Layout:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    # table_xinfo, not table_info: generated columns are listed only there.
    columns = frozenset(row[1] for row in conn.execute("PRAGMA table_xinfo(spans)"))
    named = conn.execute("SELECT type, name FROM sqlite_master WHERE name IS NOT NULL").fetchall()
    indexes = frozenset(name for kind, name in named if kind == "index")
    tables = frozenset(name for kind, name in named if kind == "table")
    return Layout(version, columns, indexes, tables)


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
    """Open (creating or migrating if needed) the store for writing, in WAL mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        path, timeout=MIGRATION_WAIT_MS / 1000, check_same_thread=False, isolation_level=None
    )
    try:
        # Opening waits out another writer's migration (``timeout`` above; setting
        # auto_vacuum takes the write lock too); from then on, the usual wait.
        # auto_vacuum must be chosen before the first table exists; it lets the file shrink
        # after size-based retention instead of only refilling its free pages.
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        # Truncate the WAL back to this size after checkpoints so it cannot outgrow retention.
        conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
        conn.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
        if migrate(conn) < 5:
            _remove_group_cache(path)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    except BaseException:
        conn.close()
        raise
    return conn


def _remove_group_cache(path: Path) -> None:
    """Delete the group cache earlier versions kept beside the store (``SPAN_STORE-groups``):
    version 5 groups by any attribute without it, and nothing reads it any more."""
    for suffix in ("-groups", "-groups-wal", "-groups-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def migrate(conn: sqlite3.Connection) -> int:
    """Create the schema, or bring an older one up to ``SCHEMA_VERSION``.

    One transaction: a second writer opening the store at the same time waits (up
    to ``MIGRATION_WAIT_MS``, ``connect_writer``), then finds it current. A store
    from a newer version is left as it is (its extra columns are generated, so
    this version's inserts still fit). Returns the version found,
    ``SCHEMA_VERSION`` or more when there was nothing to do.
    """
    if int(conn.execute("PRAGMA user_version").fetchone()[0]) >= SCHEMA_VERSION:
        return SCHEMA_VERSION  # current: no write lock needed
    with transaction(conn):
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'spans'"
        ).fetchone()
        if not exists:
            for statement in [*_TABLES, *_ROOT_VALUES_TABLES]:
                conn.execute(statement)
            _add_generated(conn)
            for statement in [*_INDEXES_V1, *_INDEXES_V2, *_INDEXES_V3]:
                conn.execute(statement)
        else:
            # A store with tables but no version predates ``user_version``: version 1.
            for step in range(max(version, 1), SCHEMA_VERSION):
                MIGRATIONS[step](conn)
        if version < SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return version


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``: one fsync, and readers see all of it or none."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def connect_reader(path: Path) -> sqlite3.Connection:
    """Open an existing store read-only; WAL lets this run while the bot writes."""
    # Not ``mode=ro``: a read-only connection cannot create the WAL index file when
    # no writer is running. ``query_only`` gives the same guarantee to our code.
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA query_only = ON")
    return conn
