"""CircleCI deliveries already accepted, kept in SQLite so a restart forgets none of them.

A signed delivery stays valid forever: whoever captured one could post it again,
and an in-memory list of event ids forgets it at every restart, so the replay
would be exported and announced a second time. The receiver therefore refuses
deliveries that happened longer ago than its window (``happened_at`` is inside
the signed body), and this store remembers every accepted event id for as long
as the window would still let it in: an id older than that is pruned, because
its replay is refused by age anyway. Modelled on the BuildKite cursor store
(``cursor.py``): one small file, every write its own transaction.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    event_id TEXT PRIMARY KEY, happened_ns INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS deliveries_by_time ON deliveries (happened_ns);
"""
MEMORY = Path(":memory:")


class DeliveryStore:
    """Event ids of accepted deliveries, with when each happened (Unix nanoseconds)."""

    def __init__(self, path: Path) -> None:
        if path != MEMORY:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path))
        self._db.executescript(_SCHEMA)

    @classmethod
    def open(cls, path: Path) -> DeliveryStore:
        """The store at ``path``; in memory, with one warning, if the file cannot be used.

        The receiver must not go down with its state file (a read-only working
        directory in a container): the age window still bounds replays then.
        """
        try:
            return cls(path)
        except (OSError, sqlite3.Error) as exc:
            log.warning(
                "CircleCI delivery ids kept in memory only (%s: %s): a restart forgets them, "
                "the age window still refuses old replays",
                path,
                exc,
            )
            return cls(MEMORY)

    def first_time(self, event_id: str, happened_ns: int, *, forget_before_ns: int) -> bool:
        """Record ``event_id``; False if it was recorded before (a redelivery or a replay).

        Ids that happened before ``forget_before_ns`` are pruned in the same transaction.
        """
        with self._db:
            self._db.execute("DELETE FROM deliveries WHERE happened_ns < ?", (forget_before_ns,))
            inserted = self._db.execute(
                "INSERT OR IGNORE INTO deliveries VALUES (?, ?)", (event_id, happened_ns)
            )
        return inserted.rowcount == 1

    def close(self) -> None:
        self._db.close()
