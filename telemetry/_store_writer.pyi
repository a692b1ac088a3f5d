"""Span rows written to SQLite in C with the GIL released once per batch
(telemetry/_store_writer.c), used through ``store.insert_rows``."""

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

def insert_rows(conn: sqlite3.Connection, sql: str, rows: Sequence[tuple[Any, ...]], /) -> bool:
    """True if written; False if declined (the caller runs ``executemany`` on the same rows).

    The caller must be inside a transaction and own ``conn``: no other thread may use
    or close it during the call.
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
) -> bool: ...
