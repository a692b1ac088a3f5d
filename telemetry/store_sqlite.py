"""The span store's C access to SQLite (``telemetry/_store_sqlite.c``), set up once per process.

Two things the sqlite3 module does a row at a time from Python are done here a
whole statement at a time, with the GIL released once: writing a batch of span
rows (``insert_rows``, for the bot's flush thread) and grouping root spans with
their durations for ``chatops stats`` (``group_durations``). Both go through the
SQLite library and the connection the sqlite3 module opened, and both decline
(False, None) wherever they could differ from the module, so the caller does it
the Python way. ``UNAVAILABLE`` says why neither can work in this process at all;
``chatops doctor`` shows it.
"""

from __future__ import annotations

import _sqlite3
import sqlite3

from telemetry._store_sqlite import configure, group_durations, insert_rows

__all__ = ["UNAVAILABLE", "group_durations", "insert_rows"]

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
