"""The span store's C access to SQLite (``telemetry/_store_sqlite.c``), set up once per process.

Two things the sqlite3 module does a row at a time from Python are done here a
whole statement at a time, with the GIL released once: writing a batch of span
rows (``insert_rows``, for the bot's flush thread) and grouping root spans with
their durations for ``chatops stats`` (``group_durations``). Both go through the
SQLite library and the connection the sqlite3 module opened, and both decline
(False, None) wherever they could differ from the module, so the caller does it
the Python way (``insert_rows`` answers False for a failed row too, after the rows
before it: ``store.write_rows`` rolls those back first). ``UNAVAILABLE`` says why
neither can work in this process at all; ``chatops doctor`` shows it.
"""

from __future__ import annotations

import _sqlite3
import sqlite3
from collections.abc import Sequence
from typing import Any

from telemetry import _store_sqlite
from telemetry._store_sqlite import configure, insert_rows, root_values

__all__ = [
    "UNAVAILABLE",
    "group_durations",
    "group_durations_by_id",
    "ids_with_value",
    "insert_rows",
    "root_values",
]

# sqlite3 binds str, int and float as they are, but sends every None through its adaptation
# protocol (two failed attribute lookups, ~2,000 instructions); a row has about five. An
# adapter for None makes that one dictionary lookup and a C call that returns None, which
# binds as NULL as before (process-wide, and the same for every other use of sqlite3).
_NOTHING: dict[None, None] = {}
_BIND_NONE = _NOTHING.get
sqlite3.register_adapter(type(None), _BIND_NONE)

# The C side binds through the SQLite library the sqlite3 module itself uses, and only
# while no adapter but the one above changes how the module would bind a value.
UNAVAILABLE: str | None = configure(
    getattr(_sqlite3, "__file__", None),
    sqlite3.Connection,
    sqlite3.OperationalError,
    sqlite3.adapters,
    sqlite3.PrepareProtocol,
    _BIND_NONE,
    sqlite3.sqlite_version_info[0] * 1_000_000
    + sqlite3.sqlite_version_info[1] * 1_000
    + sqlite3.sqlite_version_info[2],
)


_STOCK_CONVERTERS = frozenset({"DATE", "TIMESTAMP"})

# (group value, count, errors, longest duration, durations at the percentiles asked for)
Grouped = tuple[str | None, int, int, int, list[int]]


def group_durations(
    conn: sqlite3.Connection, sql: str, params: Sequence[Any], percentiles: tuple[int, ...]
) -> list[Grouped] | None:
    """Rows of ``sql`` (group, duration, is-error) grouped in C; None to read them in Python.

    Declined here, before C, wherever the connection's Python settings would change
    what a Python pass reads: a row factory, a converter registered beyond the
    module's own two (for DATE and TIMESTAMP, no column of the store), a connection
    closed or made in another thread (``cursor()`` raises what ``execute`` would).
    Whether a connection converts at all (``detect_types``) the sqlite3 module does
    not expose; the store's connections never do.
    """
    if not _plain(conn):
        return None
    return _store_sqlite.group_durations(conn, sql, params, percentiles)


def group_durations_by_id(
    conn: sqlite3.Connection,
    values: tuple[str, Sequence[Any]] | None,
    ids: tuple[int, int],
    sql: str,
    params: Sequence[Any],
    percentiles: tuple[int, ...],
    id_filter: bytes | None = None,
) -> list[Grouped] | None:
    """``group_durations`` where the first column of ``sql`` is a span's id.

    With ``values`` (a query and its parameters), the rows are grouped by each id's
    value: rows of (first id, last id, blob of ``root_values``) for a write, or (id, id,
    text or NULL) for one span, read after the blobs and replacing what they said of
    it; an id with no value is in the NULL group. With None, by ``sql``'s fourth column.
    ``ids`` is the (lowest, highest) id of the store; ``id_filter`` (``ids_with_value``)
    keeps the ids whose bit is set. Declined as ``group_durations`` is.
    """
    if not _plain(conn):
        return None
    values_sql, values_params = values if values is not None else (None, [])
    return _store_sqlite.group_durations_by_id(
        conn, values_sql, values_params, *ids, sql, params, percentiles, id_filter
    )


def ids_with_value(
    conn: sqlite3.Connection,
    values: tuple[str, Sequence[Any]],
    ids: tuple[int, int],
    wanted: str,
) -> bytes | None:
    """The ids whose value is ``wanted``, a bit each from ``ids[0]``; None: read the JSON."""
    if not _plain(conn):
        return None
    return _store_sqlite.ids_with_value(conn, *values, *ids, wanted)


def _plain(conn: sqlite3.Connection) -> bool:
    if conn.row_factory is not None or sqlite3.converters.keys() - _STOCK_CONVERTERS:
        return False
    try:
        conn.cursor().close()
    except sqlite3.ProgrammingError:
        return False
    return True
