"""The compiled batch writer stores exactly what ``executemany`` would, and fails the same way.

``telemetry/_store_writer.c`` binds and steps a whole batch with the GIL released
once; where it declines (a value it does not know, a closed connection, a statement
that does not fit the rows) ``store.insert_rows`` hands the same rows to
``executemany``. Each claim compares the two, or checks the declined case ends as
``executemany`` alone would.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telemetry import _store_writer
from telemetry.store import insert_rows, span_row
from telemetry.store_schema import INSERT_SPAN, connect_writer, transaction
from tests.store_data import random_spans

GENERIC = "INSERT INTO t VALUES (?, ?, ?)"

values = st.one_of(
    st.none(),
    st.text(),  # any code point but lone surrogates, NUL included
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.booleans(),
)


def _generic(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE IF NOT EXISTS t (a, b, c)")
    return conn


def _dump(conn: sqlite3.Connection, table: str) -> list[tuple[Any, ...]]:
    columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    typed = ", ".join(f"{c}, typeof({c})" for c in columns)
    return conn.execute(f"SELECT {typed} FROM {table} ORDER BY rowid").fetchall()


def _by_executemany(conn: sqlite3.Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    with transaction(conn):
        conn.executemany(sql, rows)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(st.tuples(values, values, values), max_size=20))
def test_any_values_are_stored_as_executemany_stores_them(
    tmp_path: Path, rows: list[tuple[Any, ...]]
) -> None:
    c_conn, py_conn = _generic(tmp_path / "c.db"), _generic(tmp_path / "py.db")
    try:
        c_conn.execute("DELETE FROM t")
        py_conn.execute("DELETE FROM t")
        with transaction(c_conn):
            assert _store_writer.insert_rows(c_conn, GENERIC, rows) is True
        _by_executemany(py_conn, GENERIC, rows)
        assert _dump(c_conn, "t") == _dump(py_conn, "t")
    finally:
        c_conn.close()
        py_conn.close()


def test_span_rows_are_written_in_c_and_equal_executemany_s(tmp_path: Path) -> None:
    rows = [span_row(span) for span in random_spans(300, seed=11)]
    c_conn, py_conn = connect_writer(tmp_path / "c.db"), connect_writer(tmp_path / "py.db")
    with transaction(c_conn):
        assert _store_writer.insert_rows(c_conn, INSERT_SPAN, rows) is True  # not declined
    _by_executemany(py_conn, INSERT_SPAN, rows)
    assert len(_dump(c_conn, "spans")) == len(rows) > 300
    assert _dump(c_conn, "spans") == _dump(py_conn, "spans")
    # The indexes were written too: a query through one finds the same roots.
    by_author = (
        "SELECT author, count(*) FROM spans INDEXED BY roots_author "
        "WHERE is_root = 1 GROUP BY author"
    )
    assert c_conn.execute(by_author).fetchall() == py_conn.execute(by_author).fetchall()


class Text(str):
    pass


@pytest.mark.parametrize(
    "row",
    [
        (2**63, "b", "c"),  # too big for SQLite: executemany raises OverflowError
        (Text("a subclass"), "b", "c"),  # adapted by the sqlite3 module, as before
        (b"bytes", "b", "c"),  # a BLOB
        ("\ud800", "b", "c"),  # a lone surrogate: executemany raises
        ("a", "b"),  # too few values for the statement: executemany raises
    ],
)
def test_what_c_declines_it_leaves_unwritten(tmp_path: Path, row: tuple[Any, ...]) -> None:
    conn = _generic(tmp_path / "c.db")
    with transaction(conn):
        assert _store_writer.insert_rows(conn, GENERIC, [("x", 1, 2.5), row]) is False
    assert _dump(conn, "t") == []  # not even the rows before the one it declined


@pytest.mark.parametrize(
    ("column", "value"),
    [(16, Text('{"a subclass": 1}')), (16, b"{}"), (5, 2**63), (3, "\ud800")],
)
def test_a_declined_batch_is_stored_or_refused_as_executemany_does(
    tmp_path: Path, column: int, value: object
) -> None:
    rows = [span_row(span) for span in random_spans(4, seed=5)]
    odd = (*rows[2][:column], value, *rows[2][column + 1 :])
    batch = [*rows[:2], odd, *rows[3:]]
    ours, theirs = connect_writer(tmp_path / "c.db"), connect_writer(tmp_path / "py.db")
    outcome: list[object] = []
    for conn, write in ((ours, insert_rows), (theirs, _by_executemany_spans)):
        try:
            write(conn, batch)
            outcome.append(_dump(conn, "spans"))
        except Exception as exc:
            outcome.append(type(exc))
    assert outcome[0] == outcome[1]


def _by_executemany_spans(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    _by_executemany(conn, INSERT_SPAN, rows)


def test_a_closed_connection_is_declined_and_executemany_says_why(tmp_path: Path) -> None:
    conn = _generic(tmp_path / "c.db")
    conn.close()
    assert _store_writer.insert_rows(conn, GENERIC, [("a", "b", "c")]) is False
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        conn.executemany(GENERIC, [("a", "b", "c")])


def test_a_constraint_failure_raises_integrity_error_and_the_batch_is_rolled_back(
    tmp_path: Path,
) -> None:
    conn = connect_writer(tmp_path / "s.db")
    good = [span_row(span) for span in random_spans(5, seed=1)]
    bad = (None, *good[0][1:])  # trace_id is NOT NULL
    with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
        insert_rows(conn, [*good, bad])
    assert conn.execute("SELECT count(*) FROM spans").fetchone() == (0,)
    insert_rows(conn, good)  # the connection is usable again
    assert conn.execute("SELECT count(*) FROM spans").fetchone() == (len(good),)


def test_a_store_that_cannot_be_written_raises_operational_error(tmp_path: Path) -> None:
    conn = connect_writer(tmp_path / "s.db")
    conn.execute("PRAGMA query_only = ON")
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        insert_rows(conn, [span_row(span) for span in random_spans(3, seed=2)])
    conn.execute("PRAGMA query_only = OFF")
    assert conn.execute("SELECT count(*) FROM spans").fetchone() == (0,)
