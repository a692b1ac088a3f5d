"""What the CircleCI poller already handled, in SQLite, so a restart sends nothing twice.

Two kinds of keys: a cancelled workflow whose spans the collector accepted
(``workflow:ID``), and a pipeline whose workflows had all settled when last asked
(``pipeline:ID@UPDATED_AT``, so it is not asked again until CircleCI changes it).
Each key keeps the creation time of its pipeline; the poller only lists pipelines
created within its look-back, so keys older than that are pruned: they can never
come up again. A row cap bounds the file whatever the clock does. Modelled on the
BuildKite cursor store (``cursor.py``): one small file, every write its own transaction.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (
    key TEXT PRIMARY KEY, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS seen_by_time ON seen (created_at);
"""
MEMORY = Path(":memory:")
MAX_ROWS = 50_000


def _text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


class SeenStore:
    """Keys the poller is done with, each with its pipeline's creation time."""

    def __init__(self, path: Path, *, max_rows: int = MAX_ROWS) -> None:
        if path != MEMORY:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._max_rows = max_rows
        self._db = sqlite3.connect(str(path))
        self._db.executescript(_SCHEMA)

    @classmethod
    def open(cls, path: Path) -> SeenStore:
        """The store at ``path``; in memory, with one warning, if the file cannot be used."""
        try:
            return cls(path)
        except (OSError, sqlite3.Error) as exc:
            log.warning(
                "CircleCI poller state kept in memory only (%s: %s): after a restart, "
                "cancelled workflows of the look-back window are sent again (same ids)",
                path,
                exc,
            )
            return cls(MEMORY)

    def seen(self, key: str) -> bool:
        return self._db.execute("SELECT 1 FROM seen WHERE key = ?", (key,)).fetchone() is not None

    def record(self, key: str, created_at: datetime) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO seen VALUES (?, ?)", (key, _text(created_at)))
            if len(self) <= self._max_rows:
                return
            self._db.execute(
                "DELETE FROM seen WHERE key NOT IN "
                "(SELECT key FROM seen ORDER BY created_at DESC LIMIT ?)",
                (self._max_rows,),
            )

    def forget_before(self, moment: datetime) -> None:
        """Drop keys of pipelines created before ``moment`` (out of the look-back)."""
        with self._db:
            self._db.execute("DELETE FROM seen WHERE created_at < ?", (_text(moment),))

    def __len__(self) -> int:
        row = self._db.execute("SELECT COUNT(*) FROM seen").fetchone()
        return int(row[0])

    def close(self) -> None:
        self._db.close()
