"""The span store's direct use of SQLite (telemetry/_store_sqlite.c), each call with the GIL
released once; used through ``telemetry/store_sqlite.py``."""

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

def insert_rows(conn: sqlite3.Connection, sql: str, rows: Sequence[tuple[Any, ...]], /) -> bool:
    """True if written. False if declined before writing, or if a row failed: the rows
    before it stay in the transaction, so the caller rolls it back and runs
    ``executemany`` on the same rows in a new one (``store.write_rows``).

    Declined without a transaction open (``BEGIN`` first), and for anything
    ``executemany`` might write or refuse otherwise. The caller must own ``conn``:
    no other thread may use or close it during the call.
    """

def group_durations(
    conn: sqlite3.Connection, sql: str, params: Sequence[Any], percentiles: tuple[int, ...], /
) -> list[tuple[str | None, int, int, int, list[int]]] | None:
    """Run ``sql`` (one read of three columns: group value, duration, is-error) and group it.

    Per group, in the order first seen: its value, the row count, the rows whose
    third column is true, the longest duration, and the nearest-rank duration at
    each of ``percentiles`` (at most 8, each 0 to 100). None if declined: the caller
    reads the rows in Python, which gives the same answer or raises sqlite3's error.
    An error while reading rows raises ``sqlite3.OperationalError`` (with
    ``sqlite_errorcode``) or ``MemoryError``, as the sqlite3 module would. The caller
    must own ``conn``: no other thread may close it during the call.
    """

def group_durations_by_id(
    conn: sqlite3.Connection,
    values_sql: str | None,
    values_params: Sequence[Any],
    low: int,
    high: int,
    sql: str,
    params: Sequence[Any],
    percentiles: tuple[int, ...],
    id_filter: bytes | None,
    /,
) -> list[tuple[str | None, int, int, int, list[int]]] | None:
    """``group_durations`` where ``sql``'s first column is a span id.

    With ``values_sql``, each row is in the group of its id's value: ``values_sql`` is
    read first, rows of (first id, last id, ``root_values`` blob) giving the values of a
    write's spans (entries past the last id left out), rows of (id, id, text or NULL)
    one span's value, replacing what a blob said; an id with no value is in the NULL
    group. Without (None), ``sql`` has a fourth column, the group (an integer reported as
    its decimal text). Only ids from ``low``
    to ``high`` are kept (one slot each: declined past 2**27 of them), and of those, with
    ``id_filter``, only the ids whose bit is set. A value no row of ``sql`` has is not
    reported.
    """

def ids_with_value(
    conn: sqlite3.Connection,
    values_sql: str,
    values_params: Sequence[Any],
    low: int,
    high: int,
    wanted: str,
    /,
) -> bytes | None:
    """One bit per id from ``low`` to ``high`` (bit ``id - low`` of the bytes, least
    significant first): set where the id's value, read from ``values_sql`` as
    ``group_durations_by_id`` reads it, is ``wanted``. None if declined."""

def root_values(
    conn: sqlite3.Connection, roots: Sequence[tuple[int, str]], skip: frozenset[str], /
) -> list[tuple[str, bytes]] | None:
    """Per attribute key of ``roots`` (offset, attribute JSON) not in ``skip``, one blob of
    (offset, value) entries, each value as ``CAST(json_extract(json, '$."key"') AS TEXT)``
    gives it (NULLs left out; floats, arrays and the like converted by SQLite on ``conn``).
    None where a document is not a flat JSON object with plain keys, in ASCII, or C
    cannot be used.
    """

def configure(
    library: str | None,
    connection_type: type[sqlite3.Connection],
    operational_error: type[Exception],
    adapters: dict[Any, Any],
    prepare_protocol: type,
    none_adapter: Callable[[None], object],
    sqlite_version_number: int,
    /,
) -> str | None:
    """Find the SQLite library the ``_sqlite3`` extension at ``library`` uses.

    None when the C access can be used in this process; otherwise why not (every
    ``insert_rows`` then declines, and every ``group_durations``).
    """
