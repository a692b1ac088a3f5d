"""Span rows written to SQLite in C with the GIL released once per batch
(telemetry/_store_writer.c), used through ``store_schema.insert_rows``."""

import sqlite3
from collections.abc import Sequence
from typing import Any

def insert_rows(conn: sqlite3.Connection, sql: str, rows: Sequence[tuple[Any, ...]], /) -> bool: ...
def configure(
    library: str | None,
    connection_type: type[sqlite3.Connection],
    operational_error: type[Exception],
    integrity_error: type[Exception],
    /,
) -> bool: ...
