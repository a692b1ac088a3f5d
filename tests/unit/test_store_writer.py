"""The compiled batch writer stores exactly what ``executemany`` would, and fails the same way.

``telemetry/_store_sqlite.c`` binds and steps a whole batch with the GIL released
once; wherever it cannot be sure to act as ``executemany`` (a value it does not
bind, an adapter registered, a statement that is not one DML statement, no
transaction) it declines before writing anything, and where a row fails it stops
there; ``store.write_rows`` then rolls the transaction back and hands the same rows
to ``executemany``. Each claim compares the two, or checks that the declined case
ends as ``executemany`` alone would.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telemetry import _store_sqlite, store_sqlite
from telemetry.store import SqliteSpanExporter, insert_rows, span_row, write_rows
from telemetry.store_schema import INSERT_SPAN, connect_writer, transaction
from tests.helpers.gil import ticks_during
from tests.store_data import random_spans

# Without the writer (another Python: ``chatops doctor`` warns) every batch goes to
# executemany, and there is nothing here to compare.
pytestmark = pytest.mark.skipif(
    store_sqlite.UNAVAILABLE is not None, reason=f"no batch writer here: {store_sqlite.UNAVAILABLE}"
)

GENERIC = "INSERT INTO t VALUES (?, ?, ?)"
Row = tuple[Any, ...]

values = st.one_of(
    st.none(),
    st.text(),  # any code point but lone surrogates, NUL included
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),  # NaN, infinities and -0.0 included
    st.booleans(),
)


_OPENED: list[sqlite3.Connection] = []


@pytest.fixture(autouse=True)
def _close_connections() -> Iterator[None]:
    yield
    while _OPENED:
        _OPENED.pop().close()


def _generic(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    _OPENED.append(conn)
    conn.execute("CREATE TABLE IF NOT EXISTS t (a, b, c)")
    conn.execute("CREATE TABLE IF NOT EXISTS k (id INTEGER PRIMARY KEY, b, c)")
    return conn


def _store(path: Path) -> sqlite3.Connection:
    conn = connect_writer(path)
    _OPENED.append(conn)
    return conn


def _dump(conn: sqlite3.Connection, table: str) -> list[Row]:
    columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    typed = ", ".join(f"{c}, typeof({c})" for c in columns)
    return conn.execute(f"SELECT {typed} FROM {table} ORDER BY rowid").fetchall()


def _ours(conn: sqlite3.Connection, sql: str, rows: Sequence[Row]) -> None:
    with transaction(conn):
        write_rows(conn, sql, rows)


def _theirs(conn: sqlite3.Connection, sql: str, rows: Sequence[Row]) -> None:
    with transaction(conn):
        conn.executemany(sql, rows)


def _outcome(conn: sqlite3.Connection, write: Any, sql: str, rows: Any, table: str) -> object:
    """What the table holds afterwards, or the error as a caller sees it."""
    try:
        write(conn, sql, rows)
    except Exception as exc:
        return type(exc), str(exc), getattr(exc, "sqlite_errorcode", None)
    return _dump(conn, table)


def _both(tmp_path: Path, sql: str, rows: Any, table: str = "t") -> tuple[object, object]:
    ours, theirs = _generic(tmp_path / "ours.db"), _generic(tmp_path / "theirs.db")
    try:
        mine = _outcome(ours, _ours, sql, rows, table)
        return mine, _outcome(theirs, _theirs, sql, rows, table)
    finally:
        ours.close()
        theirs.close()


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(st.tuples(values, values, values), min_size=1, max_size=20))
def test_any_values_are_stored_as_executemany_stores_them(tmp_path: Path, rows: list[Row]) -> None:
    c_conn, py_conn = _generic(tmp_path / "c.db"), _generic(tmp_path / "py.db")
    try:
        c_conn.execute("DELETE FROM t")
        py_conn.execute("DELETE FROM t")
        with transaction(c_conn):
            assert _store_sqlite.insert_rows(c_conn, GENERIC, rows) is True
        _theirs(py_conn, GENERIC, rows)
        assert _dump(c_conn, "t") == _dump(py_conn, "t")
    finally:
        c_conn.close()
        py_conn.close()


def test_span_rows_are_written_in_c_and_equal_executemany_s(tmp_path: Path) -> None:
    rows = [span_row(span) for span in random_spans(300, seed=11)]
    c_conn, py_conn = _store(tmp_path / "c.db"), _store(tmp_path / "py.db")
    with transaction(c_conn):
        assert _store_sqlite.insert_rows(c_conn, INSERT_SPAN, rows) is True  # not declined
    _theirs(py_conn, INSERT_SPAN, rows)
    assert len(_dump(c_conn, "spans")) == len(rows) > 300
    assert _dump(c_conn, "spans") == _dump(py_conn, "spans")
    # The indexes were written too: a query through one finds the same roots.
    by_author = (
        "SELECT author, count(*) FROM spans INDEXED BY roots_start "
        "WHERE is_root = 1 GROUP BY author"
    )
    assert c_conn.execute(by_author).fetchall() == py_conn.execute(by_author).fetchall()


def test_the_exporter_writes_through_the_c_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers: list[bool] = []
    real = _store_sqlite.insert_rows

    def spy(conn: sqlite3.Connection, sql: str, rows: Sequence[Row]) -> bool:
        answers.append(real(conn, sql, rows))
        return answers[-1]

    monkeypatch.setattr(store_sqlite, "insert_rows", spy)
    exporter = SqliteSpanExporter(tmp_path / "s.db", max_age=timedelta(days=7), max_bytes=1 << 30)
    spans = random_spans(20, seed=4)
    exporter.export_rows([span_row(span) for span in spans])
    exporter.shutdown()
    assert answers == [True]


def test_the_gil_is_released_while_a_batch_is_written(tmp_path: Path) -> None:
    """Another thread runs during the write (as it does between ``executemany``'s rows;
    what writing a batch with one hand-off instead of one per row saves under load is
    the overhead benchmark's to show: docs/development.md, "The store's memory")."""
    conn = _generic(tmp_path / "c.db")
    rows = [(f"row {i}", i, i * 0.5) for i in range(50_000)]
    try:
        with transaction(conn):
            written, during = ticks_during(lambda: _store_sqlite.insert_rows(conn, GENERIC, rows))
    finally:
        conn.close()
    assert written is True
    assert during > 0


class Text(str):
    pass


class Number(int):
    pass


@pytest.mark.parametrize(
    "rows",
    [
        [("x", 1, 2.5), (2**63, "b", "c")],  # too big for SQLite: executemany raises
        [("x", 1, 2.5), (Text("a subclass"), "b", "c")],  # adapted by the sqlite3 module
        [("x", 1, 2.5), (Number(7), "b", "c")],
        [("x", 1, 2.5), (b"bytes", "b", "c")],  # a BLOB
        [("x", 1, 2.5), ("\ud800", "b", "c")],  # a lone surrogate: executemany raises
        [("x", 1, 2.5), ("a", "b")],  # a short row
        [("x", 1, 2.5), ("a", "b", "c", "d")],  # a long row
        [("a", "b")] * 3,  # every row too short for the statement
        [["x", 1, 2.5]],  # rows as lists
        [],  # nothing: executemany still checks the statement
    ],
)
def test_what_c_declines_it_leaves_unwritten_and_executemany_decides(
    tmp_path: Path, rows: list[Any]
) -> None:
    conn = _generic(tmp_path / "c.db")
    with transaction(conn):
        assert _store_sqlite.insert_rows(conn, GENERIC, rows) is False
    assert _dump(conn, "t") == []  # not even the rows before the one it declined
    ours, theirs = _both(tmp_path, GENERIC, rows)
    assert ours == theirs


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO t VALUES (?, ?, ?); DROP TABLE t",  # two statements: executemany refuses
        "INSERT INTO t VALUES (?, ?, ?)\0 and more",  # a NUL: executemany refuses
        "SELECT ?, ?, ?",  # not DML
        "INSERT INTO t VALUES (?, ?, ?) RETURNING a",  # DML with results
        "INSERT INTO nowhere VALUES (?, ?, ?)",  # no such table
        "-- only a comment",
    ],
)
def test_a_statement_executemany_would_refuse_or_treat_otherwise_is_declined(
    tmp_path: Path, sql: str
) -> None:
    rows = [("x", 1, 2.5)]
    conn = _generic(tmp_path / "c.db")
    with transaction(conn):
        assert _store_sqlite.insert_rows(conn, sql, rows) is False
    ours, theirs = _both(tmp_path, sql, rows)
    assert ours == theirs


def test_a_one_shot_iterator_is_declined_before_it_is_read(tmp_path: Path) -> None:
    conn = _generic(tmp_path / "c.db")
    rows: Iterator[Row] = iter([("x", 1, 2.5), ("y", 2, 3.5)])
    with transaction(conn):
        assert _store_sqlite.insert_rows(conn, GENERIC, rows) is False  # type: ignore[arg-type]
        conn.executemany(GENERIC, rows)
    assert [row[0] for row in _dump(conn, "t")] == ["x", "y"]


@pytest.mark.parametrize("kind", [bool, type(None)])
def test_an_adapter_registered_for_a_type_it_binds_makes_it_decline(
    tmp_path: Path, kind: type
) -> None:
    key = (kind, sqlite3.PrepareProtocol)
    held = sqlite3.adapters.get(key)
    sqlite3.register_adapter(kind, repr)
    try:
        conn = _generic(tmp_path / "c.db")
        with transaction(conn):
            example = {bool: True, type(None): None}[kind]
            assert _store_sqlite.insert_rows(conn, GENERIC, [(example, 1, 2)]) is False
        conn.close()
        ours, theirs = _both(tmp_path, GENERIC, [(example, 1, 2)])
        assert ours == theirs
        assert ours[0][0] == repr(example)  # type: ignore[index]
    finally:
        if held is None:
            del sqlite3.adapters[key]
        else:
            sqlite3.adapters[key] = held


@pytest.mark.parametrize("kind", ["int", "float", "str"])
def test_an_adapter_for_a_base_type_makes_it_decline(tmp_path: Path, kind: str) -> None:
    """In a process of its own: an adapter for int, float or str switches the sqlite3
    module to adapting every value for the rest of the process, and cannot be undone."""
    script = f"""
import sqlite3, sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from telemetry import _store_sqlite, store_sqlite
from telemetry.store_schema import transaction
sqlite3.register_adapter({kind}, lambda value: "adapted " + repr(value))
conn = sqlite3.connect(":memory:", isolation_level=None)
conn.execute("CREATE TABLE t (a, b, c)")
with transaction(conn):
    declined = not _store_sqlite.insert_rows(conn, {GENERIC!r}, [(7, 0.5, "s")])
    conn.executemany({GENERIC!r}, [(7, 0.5, "s")])
grouped = store_sqlite.group_durations(conn, "SELECT c, 1, 0 FROM t WHERE a = ?", [7], (50,))
print(declined, conn.execute("SELECT * FROM t").fetchall(), grouped)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    adapted = {"int": "'adapted 7'", "float": "'adapted 0.5'", "str": "\"adapted 's'\""}[kind]
    assert done.stdout.startswith("True [(") and adapted in done.stdout, done.stdout
    assert done.stdout.rstrip().endswith(" None"), done.stdout  # the grouping declined too


def test_without_a_transaction_it_declines(tmp_path: Path) -> None:
    conn = _generic(tmp_path / "c.db")
    assert _store_sqlite.insert_rows(conn, GENERIC, [("x", 1, 2.5)]) is False
    assert _dump(conn, "t") == []


def test_a_closed_connection_is_declined_and_executemany_says_why(tmp_path: Path) -> None:
    conn = _generic(tmp_path / "c.db")
    conn.close()
    assert _store_sqlite.insert_rows(conn, GENERIC, [("a", "b", "c")]) is False
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        conn.executemany(GENERIC, [("a", "b", "c")])


@pytest.mark.parametrize(
    ("sql", "rows", "table"),
    [
        # a constraint, part-way through the batch
        ("INSERT INTO k VALUES (?, ?, ?)", [(1, "a", "b"), (2, "c", "d"), (1, "e", "f")], "k"),
        # text where an INTEGER PRIMARY KEY goes: IntegrityError from executemany
        ("INSERT INTO k VALUES (?, ?, ?)", [(1, "a", "b"), ("one", "c", "d")], "k"),
    ],
)
def test_a_failed_batch_raises_executemany_s_own_error_and_leaves_nothing(
    tmp_path: Path, sql: str, rows: list[Row], table: str
) -> None:
    conn = _generic(tmp_path / "c.db")
    with transaction(conn):
        # It stops at the failed row; the rows before it are the caller's to roll back.
        assert _store_sqlite.insert_rows(conn, sql, rows) is False
        assert conn.in_transaction
        conn.execute("ROLLBACK")
        conn.execute("BEGIN")
    ours, theirs = _both(tmp_path, sql, rows, table)
    assert ours == theirs
    assert isinstance(ours, tuple)
    assert ours[0] is sqlite3.IntegrityError
    for name in ("ours.db", "theirs.db"):
        with sqlite3.connect(tmp_path / name) as after:
            assert _dump(after, table) == []  # no row of the batch was committed


def _temporary_files() -> list[str]:
    """SQLite's temporary files this process has open (``etilqs_*``, unlinked once open)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed since listed
            if "etilqs_" in (target := os.readlink(f"/proc/self/fd/{fd}")):
                found.append(target)
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_the_writer_keeps_no_copy_of_the_pages_a_batch_changes(tmp_path: Path) -> None:
    """A savepoint around the batch made SQLite copy each page it changed to a temporary
    file first (its sub-journal): about a fifth of the CPU writing a span cost."""
    conn = _store(tmp_path / "s.db")
    spans = random_spans(4_000, seed=4)
    insert_rows(conn, [span_row(span) for span in spans[:3_000]])
    with transaction(conn):  # changes pages that exist: a savepoint would copy them
        assert _store_sqlite.insert_rows(conn, INSERT_SPAN, [span_row(s) for s in spans[3_000:]])
        assert _temporary_files() == []


def test_a_constraint_failure_in_the_store_rolls_the_whole_batch_back(tmp_path: Path) -> None:
    conn = _store(tmp_path / "s.db")
    good = [span_row(span) for span in random_spans(5, seed=1)]
    bad = (None, *good[0][1:])  # trace_id is NOT NULL
    with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
        insert_rows(conn, [*good, bad])
    assert conn.execute("SELECT count(*) FROM spans").fetchone() == (0,)
    insert_rows(conn, good)  # the connection is usable again
    assert conn.execute("SELECT count(*) FROM spans").fetchone() == (len(good),)


def test_a_store_that_cannot_be_written_raises_operational_error(tmp_path: Path) -> None:
    conn = _store(tmp_path / "s.db")
    conn.execute("PRAGMA query_only = ON")
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        insert_rows(conn, [span_row(span) for span in random_spans(3, seed=2)])
    conn.execute("PRAGMA query_only = OFF")
    assert conn.execute("SELECT count(*) FROM spans").fetchone() == (0,)


def test_a_full_disk_raises_operational_error_and_leaves_nothing(tmp_path: Path) -> None:
    """SQLite rolls the whole transaction back itself; executemany, run next on the same
    rows, meets the full disk again and raises its own error."""
    rows = [(f"row {i}" * 50, i, i * 0.5) for i in range(2_000)]
    outcomes = []
    for write in (_ours, _theirs):
        conn = _generic(tmp_path / f"{write.__name__}.db")
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 2}")
        try:
            with pytest.raises(sqlite3.OperationalError) as raised:
                write(conn, GENERIC, rows)
            assert not conn.in_transaction
            assert _dump(conn, "t") == []
            outcomes.append((type(raised.value), str(raised.value)))
        finally:
            conn.close()
    assert outcomes[0] == outcomes[1] == (sqlite3.OperationalError, "database or disk is full")


def test_a_batch_is_written_by_trace_and_each_trace_keeps_its_order(tmp_path: Path) -> None:
    """Rows go in trace-id order (a trace's spans are neighbours); a trace's spans
    that started at the same nanosecond still come back in the order they ended."""
    conn = _store(tmp_path / "s.db")
    template = span_row(random_spans(1, seed=9)[0])
    rows = []
    for n in range(40):  # interleaved: span n of every trace, then span n + 1 ...
        for trace in ("f" * 32, "0" * 32, "7" * 32):
            rows.append((trace, f"{n:016x}", *template[2:5], 1_000, *template[6:]))
    insert_rows(conn, rows)
    for trace in ("f" * 32, "0" * 32, "7" * 32):
        found = conn.execute(
            "SELECT span_id FROM spans WHERE trace_id = ? ORDER BY start_ns, id", (trace,)
        ).fetchall()
        assert [row[0] for row in found] == [f"{n:016x}" for n in range(40)]
    ids = conn.execute("SELECT trace_id FROM spans ORDER BY id").fetchall()
    assert [row[0] for row in ids] == sorted(row[0] for row in ids)
