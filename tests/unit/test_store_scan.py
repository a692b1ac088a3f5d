"""``group_durations``, the C pass behind ``chatops stats``, answers as the Python pass does.

``telemetry/_store_sqlite.c`` reads a query's (group, duration, is-error) rows with
the GIL released and groups them; ``query.one_pass`` is the same in Python. Each
test compares the two on the same rows, or checks that C declines (None) where it
could differ, so that the Python pass answers or raises sqlite3's own error.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry import query, store_sqlite
from telemetry.query import PERCENTILES, Window, one_pass, stats
from telemetry.store_read import SpanStore
from tests.helpers.gil import ticks_during
from tests.store_data import write

pytestmark = pytest.mark.skipif(
    store_sqlite.UNAVAILABLE is not None, reason=f"no C access here: {store_sqlite.UNAVAILABLE}"
)

SELECT = "SELECT g, d, e FROM t WHERE d >= ?"
FLOOR = -(2**63)


def _table(rows: list[tuple[Any, ...]]) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    conn.execute("CREATE TABLE t (g, d, e)")
    conn.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    return conn


rows_strategy = st.lists(
    st.tuples(
        st.one_of(st.none(), st.sampled_from(["", "a", "b", "mtg", "ünï", "x\x00y"]), st.text()),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.one_of(st.none(), st.integers(min_value=-3, max_value=3)),
    ),
    max_size=300,
)


@settings(max_examples=200, deadline=None)
@given(rows=rows_strategy)
def test_any_rows_group_as_the_python_pass_groups_them(rows: list[tuple[Any, ...]]) -> None:
    conn = _table(rows)
    in_c = store_sqlite.group_durations(conn, SELECT, [FLOOR], PERCENTILES)
    assert in_c == one_pass(conn, SELECT, [FLOOR])  # values, counts, order, percentiles


def test_percentiles_are_nearest_rank_at_both_ends() -> None:
    conn = _table([("a", d, 0) for d in range(1, 101)] + [("b", 7, 1)])
    assert store_sqlite.group_durations(conn, SELECT, [FLOOR], (0, 1, 50, 99, 100)) == [
        ("a", 100, 0, 100, [1, 1, 50, 99, 100]),
        ("b", 1, 1, 7, [7, 7, 7, 7, 7]),
    ]


def test_null_and_empty_text_are_different_groups() -> None:
    conn = _table([(None, 5, 0), ("", 6, 1), (None, 7, None)])
    assert store_sqlite.group_durations(conn, SELECT, [FLOOR], (50,)) == [
        (None, 2, 0, 7, [5]),
        ("", 1, 1, 6, [6]),
    ]


def test_no_rows_give_no_groups() -> None:
    assert store_sqlite.group_durations(_table([]), SELECT, [FLOOR], PERCENTILES) == []


@pytest.mark.parametrize(
    "row",
    [
        (7, 1, 0),  # a group value that is not text: C reads text only
        (1.5, 1, 0),
        (b"blob", 1, 0),
        ("a", 1.5, 0),  # a duration that is not an integer
        ("a", "12", 0),
        ("a", 1, "yes"),  # an error flag that is not a comparison's result
    ],
)
def test_a_value_c_does_not_read_as_python_would_is_declined(row: tuple[Any, ...]) -> None:
    conn = _table([("a", 1, 0), row])
    assert store_sqlite.group_durations(conn, SELECT, [FLOOR], PERCENTILES) is None


def test_text_that_is_not_utf8_is_declined_and_python_raises_sqlite3_s_error() -> None:
    conn = _table([])
    conn.execute("INSERT INTO t VALUES (CAST(x'ff' AS TEXT), 1, 0)")
    assert store_sqlite.group_durations(conn, SELECT, [FLOOR], PERCENTILES) is None
    with pytest.raises(sqlite3.OperationalError, match="UTF-8"):
        one_pass(conn, SELECT, [FLOOR])


@pytest.mark.parametrize(
    ("sql", "params", "percentiles"),
    [
        ("SELECT g, d FROM t", [], PERCENTILES),  # two columns
        ("SELECT g, d, e, e FROM t", [], PERCENTILES),  # four
        ("SELECT g, d, e FROM t; SELECT 1", [], PERCENTILES),  # two statements
        ("SELECT g, d, e FROM t\x00", [], PERCENTILES),  # a NUL
        ("SELECT g, d, e FROM nowhere", [], PERCENTILES),  # an error SQLite reports
        ("DELETE FROM t RETURNING g, d, e", [], PERCENTILES),  # writes
        (SELECT, [], PERCENTILES),  # a parameter missing
        (SELECT, [1, 2], PERCENTILES),  # one too many
        (SELECT, [b"x"], PERCENTILES),  # a value bound by the sqlite3 module only
        (SELECT, [2**63], PERCENTILES),
        (SELECT, [FLOOR], (50, 101)),  # not a percentile
        (SELECT, [FLOOR], (-1,)),
        (SELECT, [FLOOR], tuple(range(9))),  # more than it reads
        (SELECT, [FLOOR], [50]),  # not a tuple
        ("SELECT g, d, e FROM t WHERE d >= :low", {"low": FLOOR}, PERCENTILES),  # named
        (SELECT, iter([FLOOR]), PERCENTILES),  # an iterator: sqlite3 refuses it
    ],
)
def test_a_query_c_might_run_otherwise_is_declined_and_left_as_it_was(
    sql: str, params: list[Any], percentiles: Any
) -> None:
    conn = _table([("a", 1, 0)])
    assert store_sqlite.group_durations(conn, sql, params, percentiles) is None
    assert conn.execute("SELECT * FROM t").fetchall() == [("a", 1, 0)]


def test_a_text_factory_other_than_str_is_declined() -> None:
    conn = _table([("a", 1, 0)])
    conn.text_factory = bytes
    assert store_sqlite.group_durations(conn, SELECT, [FLOOR], PERCENTILES) is None
    assert one_pass(conn, SELECT, [FLOOR])[0][0] == b"a"


def test_a_row_factory_or_a_converter_is_declined() -> None:
    conn = _table([("a", 1, 0)])
    conn.row_factory = sqlite3.Row
    assert store_sqlite.group_durations(conn, SELECT, [FLOOR], PERCENTILES) is None
    conn.row_factory = None
    sqlite3.register_converter("TEXT", bytes.upper)
    try:
        assert store_sqlite.group_durations(conn, SELECT, [FLOOR], PERCENTILES) is None
    finally:
        del sqlite3.converters["TEXT"]
    assert store_sqlite.group_durations(conn, SELECT, [FLOOR], PERCENTILES) is not None


def test_a_connection_of_another_thread_is_declined_and_python_raises() -> None:
    conn = sqlite3.connect(":memory:")  # the thread check on, as sqlite3 makes it by default
    conn.execute("CREATE TABLE t (g, d, e)")
    found: list[Any] = []
    thread = threading.Thread(
        target=lambda: found.append(store_sqlite.group_durations(conn, SELECT, [FLOOR], (50,)))
    )
    thread.start()
    thread.join()
    assert found == [None]


def test_an_error_while_reading_is_raised_as_sqlite3_raises_it_not_run_again() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE spans (g, duration_ns, outcome)")
    conn.executemany("INSERT INTO spans VALUES (?, ?, 'ok')", [(f"g{i}", i) for i in range(20_000)])
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    conn.set_progress_handler(lambda: 1, 1000)  # interrupts the statement
    with pytest.raises(sqlite3.OperationalError, match="interrupted") as raised:
        query._grouped(conn, "g", [], "spans", "duration_ns >= ?", [FLOOR])
    assert raised.value.sqlite_errorcode == sqlite3.SQLITE_INTERRUPT
    assert len(statements) == 1  # not read again in Python


def test_a_closed_connection_is_declined() -> None:
    conn = _table([("a", 1, 0)])
    conn.close()
    assert store_sqlite.group_durations(conn, SELECT, [FLOOR], PERCENTILES) is None


def test_stats_answers_through_python_where_c_declines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "spans.db"
    from tests.store_data import NOW, random_spans

    write(path, random_spans(500, seed=5))
    window = Window.last(timedelta(days=3), now_ns=NOW)
    with SpanStore.open(path) as store:
        in_c = stats(store, window=window, by="author")
        monkeypatch.setattr(store_sqlite, "group_durations", lambda *args: None)
        assert stats(store, window=window, by="author") == in_c
        assert len(in_c) > 10


def test_the_gil_is_released_while_rows_are_grouped() -> None:
    """Another thread runs during the scan: ``chatops stats`` in the bot's own process
    (``!trace``) reads the store off the event loop, which keeps running."""
    conn = _table([(f"g{i % 500}", i, i % 2) for i in range(200_000)])
    found, during = ticks_during(
        lambda: store_sqlite.group_durations(conn, SELECT, [FLOOR], PERCENTILES)
    )
    assert found is not None
    assert during > 0


def test_stats_over_the_store_goes_through_c(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "spans.db"
    from tests.store_data import NOW, random_spans

    write(path, random_spans(200, seed=6))
    calls: list[str] = []
    real = store_sqlite.group_durations

    def spy(conn: sqlite3.Connection, sql: str, *rest: Any) -> Any:
        found = real(conn, sql, *rest)
        calls.append(sql if found is not None else "declined")
        return found

    monkeypatch.setattr(store_sqlite, "group_durations", spy)
    with SpanStore.open(path) as store:
        stats(store, window=Window.last(timedelta(days=3), now_ns=NOW), by="guild")
    assert len(calls) == 1 and "INDEXED BY roots_start" in calls[0]
    assert query.ROOTS_START == "roots_start"
