"""The span store as the CLI sees it: open a store to query it, read and record markers.

Nothing here imports the OpenTelemetry SDK (the exporter in ``telemetry/store.py``
does), so ``chatops stats`` starts without it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from telemetry.store_schema import (
    Layout,
    connect_reader,
    connect_writer,
    read_layout,
    transaction,
)


class StoreMissing(Exception):
    """There is no span store at the configured path yet; the message says where."""


@dataclass(frozen=True)
class Marker:
    """A deployment marker: a point in time the heatmap draws a line at."""

    time_ns: int
    version: str
    message: str | None = None
    url: str | None = None
    remote_id: str | None = None


class SpanStore:
    """Read side of the store for queries, plus marker recording for ``chatops marker``.

    ``layout`` says which columns and indexes this file has: a store an older
    version wrote is queried as it is, never migrated by a reader.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.layout: Layout = read_layout(conn)

    @classmethod
    def open(cls, path: Path) -> SpanStore:
        """Open an existing store for reading; ``StoreMissing`` when the bot never wrote one."""
        if not path.is_file():
            raise StoreMissing(f"no span store at {path} yet (run the bot or a console first)")
        try:
            conn = connect_reader(path)
            conn.execute("SELECT 1 FROM spans LIMIT 1").fetchall()
            return cls(conn, path)
        except sqlite3.Error as exc:
            raise StoreMissing(f"{path} is not a span store: {exc}") from None

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> SpanStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def record_marker(path: Path, marker: Marker) -> None:
    """Add a marker, creating the store if the bot has not yet written one."""
    conn = connect_writer(path)
    try:
        with transaction(conn):
            conn.execute(
                "INSERT INTO markers (time_ns, version, message, url, remote_id) "
                "VALUES (?, ?, ?, ?, ?)",
                (marker.time_ns, marker.version, marker.message, marker.url, marker.remote_id),
            )
    finally:
        conn.close()


def read_markers(store: SpanStore, start_ns: int, end_ns: int) -> list[Marker]:
    """Markers inside a window, oldest first."""
    rows = store.conn.execute(
        "SELECT time_ns, version, message, url, remote_id FROM markers "
        "WHERE time_ns >= ? AND time_ns <= ? ORDER BY time_ns",
        (start_ns, end_ns),
    ).fetchall()
    return [Marker(*row) for row in rows]
