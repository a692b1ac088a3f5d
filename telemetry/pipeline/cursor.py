"""Where the BuildKite poller left off: one cursor per pipeline, in SQLite.

The cursor is the latest ``finished_at`` exported for a pipeline; the next poll
asks ``finished_from=cursor`` (inclusive), and the ``exported`` table skips the
builds at that boundary that were already sent. A build is recorded only after
its spans were accepted, so a crash or a dead collector means a re-export with
the same deterministic ids, never a gap.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cursors (
    org TEXT NOT NULL, pipeline TEXT NOT NULL, finished_at TEXT NOT NULL,
    PRIMARY KEY (org, pipeline));
CREATE TABLE IF NOT EXISTS exported (
    build_id TEXT PRIMARY KEY, org TEXT NOT NULL, pipeline TEXT NOT NULL,
    finished_at TEXT NOT NULL);
"""
KEEP_BEHIND_CURSOR = timedelta(days=1)
ALL_PIPELINES = "*"


def _text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


class CursorStore:
    """A small SQLite file; every write is its own transaction."""

    def __init__(self, path: Path) -> None:
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path))
        self._db.executescript(_SCHEMA)

    def cursor(self, org: str, pipeline: str) -> datetime | None:
        row = self._db.execute(
            "SELECT finished_at FROM cursors WHERE org = ? AND pipeline = ?", (org, pipeline)
        ).fetchone()
        return datetime.fromisoformat(row[0]) if row else None

    def exported(self, build_id: str) -> bool:
        row = self._db.execute("SELECT 1 FROM exported WHERE build_id = ?", (build_id,)).fetchone()
        return row is not None

    def record(self, org: str, pipeline: str, build_id: str, finished_at: datetime) -> None:
        """Mark one build exported and move the pipeline's cursor forward (never back)."""
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO exported VALUES (?, ?, ?, ?)",
                (build_id, org, pipeline, _text(finished_at)),
            )
            current = self.cursor(org, pipeline)
            if current is None or finished_at > current:
                self._db.execute(
                    "INSERT OR REPLACE INTO cursors VALUES (?, ?, ?)",
                    (org, pipeline, _text(finished_at)),
                )
                self._db.execute(
                    "DELETE FROM exported WHERE org = ? AND pipeline = ? AND finished_at < ?",
                    (org, pipeline, _text(finished_at - KEEP_BEHIND_CURSOR)),
                )

    def close(self) -> None:
        self._db.close()
