"""``stats --by KEY`` for an attribute with no column, from the values each write stored.

Each write keeps its root spans' values by key (``root_values``, schema version 5),
so grouping by any attribute never reads every span's JSON. The oracle is the JSON
itself: the same question answered by ``json_extract`` over every root span (the
path a store without ``root_values`` takes), or by brute force over the spans.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind

from telemetry import query, schema
from telemetry.query import StatsRow, Where, Window, stats
from telemetry.store import SpanStore, apply_retention, insert_rows, span_row, write_rows
from telemetry.store_schema import INSERT_SPAN, connect_writer, transaction
from tests.store_data import HOUR, NOW, RESOURCE, expected_stats, random_spans, roots_in

WINDOW = Window(NOW - 72 * HOUR, NOW)

# Values whose text SQLite's json_extract decides: escapes, non-ASCII, numbers of every
# kind, booleans, sequences, empty strings.
ODD_VALUES: list[object] = [
    "plain",
    "",
    'quote " and \\ backslash',
    "line\nbreak\ttab",
    "caf\u00e9",
    "\U0001f600 emoji",
    "/slash",
    0,
    -7,
    123456789012345678,
    12345678901234567890,
    -(2**63),
    True,
    False,
    1.5,
    -0.0,
    1e300,
    0.1 + 0.2,
    ("a", "b"),
    (1, 2),
    (True, False),
]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "spans.db"


@pytest.fixture
def writer(path: Path) -> Iterator[sqlite3.Connection]:
    conn = connect_writer(path)
    yield conn
    conn.close()


def root(number: int, attributes: dict[str, object], *, start: int | None = None) -> ReadableSpan:
    begin = NOW - HOUR + number * 1000 if start is None else start
    return ReadableSpan(
        name="command x",
        context=SpanContext(number + 1, number + 1, False),
        parent=None,
        resource=RESOURCE,
        attributes={schema.OUTCOME: "ok", **attributes},  # type: ignore[dict-item]
        kind=SpanKind.SERVER,
        start_time=begin,
        end_time=begin + (number % 17 + 1) * 10**6,
    )


@contextmanager
def reading_the_json(store: SpanStore) -> Iterator[None]:
    """Questions asked inside read every value from the spans' JSON, as a store without
    ``root_values`` is read: the oracle."""
    layout = store.layout
    store.layout = type(layout)(
        layout.version, layout.columns, layout.indexes, layout.tables - {"root_values"}
    )
    try:
        yield
    finally:
        store.layout = layout


def from_json(store: SpanStore, by: str, where: list[Where] | None = None) -> list[StatsRow]:
    """The same question with every value read from the span's JSON."""
    with reading_the_json(store):
        return stats(store, window=WINDOW, by=by, where=where or [])


def assert_same_either_way(path: Path, *keys: str) -> None:
    with SpanStore.open(path) as store:
        for key in keys:
            assert stats(store, window=WINDOW, by=key) == from_json(store, key), key


def test_grouping_by_any_attribute_answers_what_the_json_does(
    writer: sqlite3.Connection, path: Path
) -> None:
    spans = [
        root(i, {"odd": value, "odd.sometimes": value} if i % 3 else {"odd": value})
        for i, value in enumerate(ODD_VALUES * 3)
    ]
    insert_rows(writer, [span_row(span) for span in spans])
    assert_same_either_way(path, "odd", "odd.sometimes", "absent.everywhere")
    with SpanStore.open(path) as store:
        groups = {row.group for row in stats(store, window=WINDOW, by="odd")}
    # Text as SQLite gives it: booleans as 1 and 0, a float to 15 digits, a list as JSON.
    assert {"1", "0", "1.5", "0.3", '["a","b"]', "caf\u00e9", 'quote " and \\ backslash'} <= groups
    assert len(groups) == len(ODD_VALUES) - 1  # False and 0 are both "0"


def test_random_traces_agree_with_brute_force(writer: sqlite3.Connection, path: Path) -> None:
    spans = random_spans(600, seed=31)
    for start in range(0, len(spans), 100):  # several writes
        insert_rows(writer, [span_row(span) for span in spans[start : start + 100]])
    with SpanStore.open(path) as store:
        for key in (schema.CHANNEL_ID, schema.COMMAND_ARGS, schema.ERROR_TYPE, schema.SHARD_ID):
            assert stats(store, window=WINDOW, by=key) == expected_stats(spans, WINDOW, key)
            where = [Where.parse("app.outcome=error")]
            assert stats(store, window=WINDOW, by=key, where=where) == expected_stats(
                spans, WINDOW, key, where
            )


def test_the_values_are_a_small_part_of_what_the_json_holds(
    writer: sqlite3.Connection,
) -> None:
    insert_rows(writer, [span_row(span) for span in random_spans(500, seed=32)])
    json_bytes, value_bytes = writer.execute(
        "SELECT (SELECT sum(length(attributes)) FROM spans WHERE is_root = 1), "
        "(SELECT sum(length(vals)) FROM root_values)"
    ).fetchone()
    assert value_bytes < json_bytes / 3
    # An attribute with a column of its own is read from it: no values kept twice.
    keys = {key for (key,) in writer.execute("SELECT DISTINCT key FROM root_values")}
    assert schema.CHANNEL_ID in keys and not {schema.COMMAND, schema.AUTHOR_ID} & keys


def test_rows_an_older_bot_wrote_are_read_from_their_json(
    writer: sqlite3.Connection, path: Path
) -> None:
    """A bot rolled back to version 4 (a chunk, no values) or 3 (no chunk at all)."""
    new = [root(i, {"k": f"new {i % 4}"}) for i in range(40)]
    v4 = [root(100 + i, {"k": f"v4 {i % 3}"}) for i in range(30)]
    v3 = [root(200 + i, {"k": f"v3 {i % 2}"}) for i in range(20)]
    insert_rows(writer, [span_row(span) for span in new[:20]])
    older_write(writer, v4)
    with transaction(writer):
        write_rows(writer, INSERT_SPAN, [span_row(span) for span in v3])
    insert_rows(writer, [span_row(span) for span in new[20:]])
    everything = [*new, *v4, *v3]
    with SpanStore.open(path) as store:
        assert stats(store, window=WINDOW, by="k") == expected_stats(everything, WINDOW, "k")


def older_write(writer: sqlite3.Connection, spans: list[ReadableSpan]) -> None:
    """What a version-4 bot writes: the rows and a chunk with no word on values."""
    with transaction(writer):
        write_rows(writer, INSERT_SPAN, [span_row(span) for span in spans])
        last = writer.execute("SELECT max(id) FROM spans").fetchone()[0]
        writer.execute(
            "INSERT INTO trace_chunks (last_id, first_id, prefixes) VALUES (?, ?, '')",
            (last, last - len(spans) + 1),
        )


def test_many_stretches_an_older_bot_wrote_are_each_read_by_id(
    writer: sqlite3.Connection, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bot rolled back and forth: a hundred stretches of rows with no values, between
    stretches with; still one pass (the JSON of every root span is never read)."""
    everything = []
    for n in range(100):
        new = [root(1000 * n + i, {"k": f"new {i % 3}"}) for i in range(4)]
        old = [root(1000 * n + 500 + i, {"k": f"old {i % 2}"}) for i in range(3)]
        insert_rows(writer, [span_row(span) for span in new])
        older_write(writer, old)
        everything += [*new, *old]

    def no_json_pass(*args: object) -> None:
        raise AssertionError("read every root span's JSON")

    with SpanStore.open(path) as store:
        monkeypatch.setattr(query, "_grouped", no_json_pass)
        assert stats(store, window=WINDOW, by="k") == expected_stats(everything, WINDOW, "k")


def test_migrating_again_keeps_the_values_of_later_writes(
    writer: sqlite3.Connection, path: Path
) -> None:
    """A version-1 bot sets the store's version back; the next writer migrates again and
    describes the chunk an older bot left in the middle, and only that chunk."""
    spans = [root(i, {"k": "a"}) for i in range(10)]
    older = [root(100 + i, {"k": "v4"}) for i in range(10)]
    later = [root(200 + i, {"k": "b"}) for i in range(10)]
    insert_rows(writer, [span_row(span) for span in spans])
    older_write(writer, older)
    insert_rows(writer, [span_row(span) for span in later])
    writer.execute("PRAGMA user_version = 1")
    connect_writer(path).close()  # every step from version 1 again
    everything = [*spans, *older, *later]
    with SpanStore.open(path) as store:
        assert stats(store, window=WINDOW, by="k") == expected_stats(everything, WINDOW, "k")
        assert store.conn.execute(
            "SELECT count(*) FROM trace_chunks WHERE root_values = 1"
        ).fetchone() == (3,)


def test_json_the_c_side_does_not_read_is_read_as_json(
    writer: sqlite3.Connection, path: Path
) -> None:
    """A key with a quote in it (no ``--by`` can name it) in one span: the write stores no
    values, says so in its chunk, and ``--by`` another key reads the JSON."""
    spans = [root(i, {"k": str(i % 2)}) for i in range(30)]
    spans.append(root(30, {'we"ird': "x", "k": "odd one"}))
    insert_rows(writer, [span_row(span) for span in spans])
    assert writer.execute("SELECT root_values FROM trace_chunks").fetchall() == [(0,)]
    with SpanStore.open(path) as store:
        assert stats(store, window=WINDOW, by="k") == expected_stats(spans, WINDOW, "k")


def test_values_of_deleted_spans_go_with_them_and_ids_given_again_get_their_own(
    writer: sqlite3.Connection, path: Path
) -> None:
    """Retention deletes by start time; once it has deleted the newest rows, SQLite gives
    their ids again, and no value stored for the old rows may stick to the new ones."""
    old = [root(i, {"k": "old", "only.old": "x"}, start=NOW - 60 * HOUR + i) for i in range(50)]
    insert_rows(writer, [span_row(span) for span in old])
    apply_retention(writer, max_age=timedelta(hours=48), max_bytes=10**9, now_ns=NOW)
    assert writer.execute("SELECT count(*) FROM spans").fetchone()[0] == 0
    assert writer.execute("SELECT count(*) FROM root_values").fetchone()[0] == 0
    new = [root(i, {"k": "new"}) for i in range(50)]  # the same ids again
    insert_rows(writer, [span_row(span) for span in new])
    with SpanStore.open(path) as store:
        assert [(r.group, r.count) for r in stats(store, window=WINDOW, by="only.old")] == [
            (None, 50)
        ]
        assert [(r.group, r.count) for r in stats(store, window=WINDOW, by="k")] == [("new", 50)]


def test_ids_given_again_after_the_newest_rows_were_deleted(
    writer: sqlite3.Connection, path: Path
) -> None:
    """The newest rows are the oldest by start: retention deletes them, the next write
    reuses their ids while older rows stay."""
    kept = [root(i, {"k": "kept"}) for i in range(30)]
    insert_rows(writer, [span_row(span) for span in kept])
    stale = [root(100 + i, {"k": "stale", "s": "1"}, start=NOW - 60 * HOUR) for i in range(30)]
    insert_rows(writer, [span_row(span) for span in stale])
    apply_retention(writer, max_age=timedelta(hours=48), max_bytes=10**9, now_ns=NOW)
    fresh = [root(200 + i, {"k": "fresh"}) for i in range(10)]
    insert_rows(writer, [span_row(span) for span in fresh])
    everything = [*kept, *fresh]
    with SpanStore.open(path) as store:
        for key in ("k", "s"):
            assert stats(store, window=WINDOW, by=key) == expected_stats(everything, WINDOW, key)


def test_a_write_cut_short_by_ids_given_again_keeps_only_its_own_values(
    writer: sqlite3.Connection, path: Path
) -> None:
    """One write's newest rows deleted while its older rows stay: the next write takes
    their ids, and its chunk is cut back; what it said of the ids past the cut is stale."""
    kept = [root(i, {"k": "kept"}) for i in range(30)]
    stale = [root(100 + i, {"k": "stale", "s": "1"}, start=NOW - 60 * HOUR) for i in range(30)]
    insert_rows(writer, [span_row(span) for span in [*kept, *stale]])  # stale: the last ids
    apply_retention(writer, max_age=timedelta(hours=48), max_bytes=10**9, now_ns=NOW)
    fresh = [root(200 + i, {"k": "fresh"}) for i in range(10)]
    insert_rows(writer, [span_row(span) for span in fresh])
    everything = [*kept, *fresh]
    with SpanStore.open(path) as store:
        for key in ("k", "s"):
            assert stats(store, window=WINDOW, by=key) == expected_stats(everything, WINDOW, key)


def test_old_and_new_http_names_group_together(writer: sqlite3.Connection, path: Path) -> None:
    """The stable name wins where a span has both, as the JSON's coalesce does."""
    spans = [
        root(1, {"http.method": "GET"}),
        root(2, {"http.request.method": "POST"}),
        root(3, {"http.request.method": "PUT", "http.method": "GET"}),
    ]
    insert_rows(writer, [span_row(span) for span in spans])
    with SpanStore.open(path) as store:
        for key in ("http.method", "http.request.method"):
            rows = stats(store, window=WINDOW, by=key)
            assert sorted((r.group, r.count) for r in rows) == [("GET", 1), ("POST", 1), ("PUT", 1)]
            assert rows == from_json(store, key)


@pytest.mark.parametrize(
    ("by", "where"),
    [
        (schema.CHANNEL_ID, [f"{schema.COMMAND_ARGS}=2d6"]),  # group and filter from values
        ("command", [f"{schema.COMMAND_ARGS}=2d6"]),  # a column, filtered by values
        ("author", [f"{schema.CHANNEL_ID}=31", f"{schema.COMMAND_ARGS}=x"]),  # two filters
        (schema.ERROR_TYPE, [f"{schema.SHARD_ID}=1", "app.outcome=error"]),  # and a column's
        ("command", [f"{schema.COMMAND_ARGS}=no such value"]),
    ],
)
def test_a_filter_on_an_attribute_with_no_column_reads_the_values(
    writer: sqlite3.Connection,
    path: Path,
    monkeypatch: pytest.MonkeyPatch,
    by: str,
    where: list[str],
) -> None:
    spans = random_spans(400, seed=33)
    for start in range(0, len(spans), 100):
        insert_rows(writer, [span_row(span) for span in spans[start : start + 100]])
    older_write(writer, random_spans(40, seed=35))  # and rows an older bot wrote
    spans += random_spans(40, seed=35)
    conditions = [Where.parse(text) for text in where]

    def no_json_pass(*args: object) -> None:
        raise AssertionError("read every root span's JSON")

    with SpanStore.open(path) as store:
        monkeypatch.setattr(query, "_grouped", no_json_pass)
        got = stats(store, window=WINDOW, by=by, where=conditions)
    assert got == expected_stats(spans, WINDOW, by, conditions)


@pytest.mark.parametrize(
    "where", [[f"{schema.COMMAND_ARGS}=2d6"], [f"{schema.CHANNEL_ID}=31", "app.outcome=error"]]
)
def test_a_heatmap_filtered_on_an_attribute_with_no_column_reads_the_values(
    writer: sqlite3.Connection, path: Path, where: list[str]
) -> None:
    spans = random_spans(400, seed=36)
    for start in range(0, len(spans), 100):
        insert_rows(writer, [span_row(span) for span in spans[start : start + 100]])
    conditions = [Where.parse(text) for text in where]
    with SpanStore.open(path) as store:
        got = query.heatmap(store, window=WINDOW, where=conditions, columns=12)
        with reading_the_json(store):
            from_the_json = query.heatmap(store, window=WINDOW, where=conditions, columns=12)
    assert got.counts == from_the_json.counts and got.buckets == from_the_json.buckets
    assert got.total == len(roots_in(spans, WINDOW, conditions)) > 0


def test_filters_on_odd_values_and_renamed_keys_answer_what_the_json_does(
    writer: sqlite3.Connection, path: Path
) -> None:
    """Booleans (``1``), a float, a JSON null, the old and the stable HTTP name, rows an
    older bot wrote: the same rows kept, in stats and in the heatmap."""
    spans = [
        root(i, {"flag": [True, False, None, 1.5][i % 4], "http.method": "GET"} if i % 3 else {})
        for i in range(40)
    ]
    spans += [root(100 + i, {"http.request.method": "GET", "flag": True}) for i in range(10)]
    insert_rows(writer, [span_row(span) for span in spans])
    older_write(writer, [root(200 + i, {"flag": 1, "http.method": "POST"}) for i in range(10)])
    cases = [["flag=1"], ["flag=1.5"], ["flag=0"], ["http.request.method=GET", "flag=1"]]
    with SpanStore.open(path) as store:
        for where in cases:
            conditions = [Where.parse(text) for text in where]
            got = stats(store, window=WINDOW, by="command", where=conditions)
            cells = query.heatmap(store, window=WINDOW, where=conditions, columns=7).counts
            with reading_the_json(store):
                assert got == stats(store, window=WINDOW, by="command", where=conditions)
                assert (
                    cells == query.heatmap(store, window=WINDOW, where=conditions, columns=7).counts
                )
            assert got, where


def test_without_the_c_access_the_json_gives_the_answer(
    writer: sqlite3.Connection, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spans = random_spans(100, seed=34)
    insert_rows(writer, [span_row(span) for span in spans])
    monkeypatch.setattr(query.store_sqlite, "group_durations_by_id", lambda *args: None)
    with SpanStore.open(path) as store:
        got = stats(store, window=WINDOW, by=schema.CHANNEL_ID)
    assert got == expected_stats(spans, WINDOW, schema.CHANNEL_ID)
