"""Which Discord post shows each open Honeycomb alert, kept in SQLite across restarts.

A resolution (``status: OK``) edits the post its alert made. Remembered only in
memory, that post is forgotten at every restart of the bot (a deploy), and the
resolution then arrives as a second, unrelated message. The mapping therefore
lives in ``HONEYCOMB_HOOK_STATE_DB``, beside the delivery ids the receiver keeps
(``telemetry/pipeline/deliveries.py``), in a table of its own. Bounded: an entry
older than ``KEEP_S`` (7 days) is forgotten, and at most ``MAX_ROWS`` are kept.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

KEEP_S = 7 * 86_400
MAX_ROWS = 1000
MEMORY = Path(":memory:")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS open_alerts (
    alert_key TEXT PRIMARY KEY, channel_id INTEGER NOT NULL, message_id INTEGER NOT NULL,
    opened_ns INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS open_alerts_by_time ON open_alerts (opened_ns);
"""


@dataclass(frozen=True)
class Posted:
    """Where an open alert was posted."""

    channel_id: int
    message_id: int


class OpenAlerts:
    """Open alerts by key (the trigger's or burn alert's id), with the post that shows each."""

    def __init__(self, path: Path) -> None:
        if path != MEMORY:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # The receiver's delivery store writes the same file: wait for its lock, briefly.
        self._db = sqlite3.connect(str(path), timeout=5)
        self._db.executescript(_SCHEMA)

    @classmethod
    def open(cls, path: Path) -> OpenAlerts:
        """The store at ``path``; in memory, with one warning, if the file cannot be used."""
        try:
            return cls(path)
        except (OSError, sqlite3.Error) as exc:
            log.warning(
                "open Honeycomb alerts kept in memory only (%s: %s): after a restart "
                "a resolution is posted on its own",
                path,
                exc,
            )
            return cls(MEMORY)

    def find(self, key: str, now_ns: int) -> Posted | None:
        """The post of the open alert ``key``, unless it is older than ``KEEP_S``."""
        row = self._db.execute(
            "SELECT channel_id, message_id FROM open_alerts WHERE alert_key = ? AND opened_ns >= ?",
            (key, now_ns - int(KEEP_S * 1e9)),
        ).fetchone()
        return Posted(int(row[0]), int(row[1])) if row else None

    def remember(self, key: str, posted: Posted, now_ns: int) -> None:
        """``key`` is open and shown by ``posted``; expired and surplus entries go."""
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO open_alerts VALUES (?, ?, ?, ?)",
                (key, posted.channel_id, posted.message_id, now_ns),
            )
            self._db.execute(
                "DELETE FROM open_alerts WHERE opened_ns < ?", (now_ns - int(KEEP_S * 1e9),)
            )
            self._db.execute(
                "DELETE FROM open_alerts WHERE alert_key NOT IN "
                "(SELECT alert_key FROM open_alerts ORDER BY opened_ns DESC LIMIT ?)",
                (MAX_ROWS,),
            )

    def forget(self, key: str) -> None:
        with self._db:
            self._db.execute("DELETE FROM open_alerts WHERE alert_key = ?", (key,))

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM open_alerts").fetchone()[0])

    def close(self) -> None:
        self._db.close()
