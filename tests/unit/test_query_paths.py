"""Every way ``telemetry.query`` answers agrees with brute force over the same random spans.

``stats`` groups the window's root spans in C (through ``roots_start``, or the
table for a key in the JSON), or in Python where C declines; ``heatmap`` counts cells as
ranges of ``roots_bucket``, or groups when a filter is not in that index;
``slowest`` walks the slowest buckets. Each path is checked here against figures
computed from the spans the test made, not from the store.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from telemetry import query, schema, store_sqlite
from telemetry.query import Where, Window, heatmap, slowest, stats
from telemetry.store import SpanStore
from tests.store_data import HOUR, NOW, expected_stats, random_spans, roots_in, write

WINDOW = Window(NOW - 24 * HOUR, NOW)


@pytest.fixture(scope="module")
def spans() -> list[ReadableSpan]:
    return random_spans(3000, seed=14)


@pytest.fixture(scope="module")
def store(spans: list[ReadableSpan], tmp_path_factory: pytest.TempPathFactory) -> SpanStore:
    path = tmp_path_factory.mktemp("paths") / "spans.db"
    write(path, spans)
    return SpanStore.open(path)


@pytest.mark.parametrize(
    "by",
    [
        "command",  # copied column, in roots_start
        "author",
        "outcome",
        schema.GUILD_ID,  # an attribute name for a copied column
        schema.GUILD_NAME,  # generated column, in roots_start
        schema.CHANNEL_ID,  # no column: read from the attribute JSON
        schema.SHARD_ID,  # no column, an integer attribute
        schema.ERROR_TYPE,  # no column, absent from most spans
        "name",  # a column roots_start does not hold
        "app.nothing.here",  # an attribute no span has: one group, None
    ],
)
def test_stats_by_any_key_equals_brute_force(
    store: SpanStore, spans: list[ReadableSpan], by: str
) -> None:
    assert stats(store, window=WINDOW, by=by) == expected_stats(spans, WINDOW, by)


@pytest.mark.parametrize(
    ("by", "where"),
    [
        ("command", ["app.outcome=error"]),  # roots_start holds both
        ("command", ["app.outcome=ok"]),
        (schema.GUILD_NAME, ["outcome=bad_input"]),
        ("command", [f"{schema.GUILD_ID}=901"]),
        (schema.ERROR_TYPE, ["app.outcome=error"]),  # JSON group, indexed filter
        ("command", [f"{schema.CHANNEL_ID}=12"]),  # JSON filter
        ("author", ["app.outcome=error", "app.command=mtg"]),
        ("command", [f"{schema.SHARD_ID}=1", "outcome=ok"]),
        ("command", ["app.outcome=nothing"]),  # matches no span
    ],
)
def test_filtered_percentiles_equal_brute_force(
    store: SpanStore, spans: list[ReadableSpan], by: str, where: list[str]
) -> None:
    conditions = [Where.parse(text) for text in where]
    expected = expected_stats(spans, WINDOW, by, conditions)
    assert stats(store, window=WINDOW, by=by, where=conditions) == expected


@pytest.mark.parametrize("by", ["command", "author", schema.GUILD_NAME, schema.SHARD_ID])
def test_c_and_python_passes_agree_on_every_window(
    store: SpanStore, spans: list[ReadableSpan], by: str
) -> None:
    for hours in (1, 6, 30, 48):
        window = Window(NOW - hours * HOUR, NOW - HOUR // 2)
        group, group_params = query._expr(store, by)
        condition, params, _ = query._filters(store, window, [])
        sql = f"SELECT {group}, duration_ns, outcome = ? FROM spans WHERE {condition}"
        bound = [*group_params, schema.Outcome.ERROR.value, *params]
        in_c = store_sqlite.group_durations(store.conn, sql, bound, query.PERCENTILES)
        assert in_c is not None  # not declined: the C pass is what is compared
        assert in_c == query.one_pass(store.conn, sql, bound)  # same groups, same order
        assert stats(store, window=window, by=by) == expected_stats(spans, window, by)


def _cells(spans: list[ReadableSpan], window: Window, columns: int) -> Counter[tuple[int, int]]:
    from telemetry.store_schema import duration_bucket

    column_ns = -(-(window.end_ns - window.start_ns) // columns)
    return Counter(
        (
            min(columns - 1, ((s.start_time or 0) - window.start_ns) // column_ns),
            duration_bucket((s.end_time or 0) - (s.start_time or 0)),
        )
        for s in roots_in(spans, window)
    )


@pytest.mark.parametrize("columns", [1, 7, 60])
def test_heatmap_cells_equal_brute_force(
    store: SpanStore, spans: list[ReadableSpan], columns: int
) -> None:
    # The window's end falls exactly on a span's start: it belongs to the last column.
    end = max(s.start_time or 0 for s in roots_in(spans, WINDOW))
    window = Window(NOW - 20 * HOUR, end)
    result = heatmap(store, window=window, columns=columns)
    assert result.counts == _cells(spans, window, columns)
    assert result.total == len(roots_in(spans, window))


def test_heatmap_with_a_filter_outside_its_index_groups_instead(
    store: SpanStore, spans: list[ReadableSpan]
) -> None:
    where = [Where.parse("app.command=mtg")]
    result = heatmap(store, window=WINDOW, where=where, columns=12)
    expected = _cells([s for s in spans if s.name == "command mtg"], WINDOW, 12)
    assert result.counts == expected
    errors = heatmap(store, window=WINDOW, where=[Where.parse("outcome=error")], columns=12)
    only_errors = [s for s in spans if (s.attributes or {}).get(schema.OUTCOME) == "error"]
    assert errors.counts == _cells(only_errors, WINDOW, 12)


@pytest.mark.parametrize("limit", [1, 10, 400])
def test_slowest_equals_brute_force(
    store: SpanStore, spans: list[ReadableSpan], limit: int
) -> None:
    durations = sorted(
        ((s.end_time or 0) - (s.start_time or 0) for s in roots_in(spans, WINDOW)), reverse=True
    )
    found = slowest(store, window=WINDOW, limit=limit)
    assert [t.duration_ms for t in found] == [d / 1e6 for d in durations[:limit]]
    mtg = sorted(
        (
            (s.end_time or 0) - (s.start_time or 0)
            for s in roots_in(spans, WINDOW, [Where(schema.COMMAND, "mtg")])
        ),
        reverse=True,
    )
    found = slowest(store, window=WINDOW, limit=limit, command="mtg")
    assert [t.duration_ms for t in found] == [d / 1e6 for d in mtg[:limit]]
    assert {t.command for t in found} == {"mtg"}


def test_empty_window_answers_nothing(store: SpanStore) -> None:
    window = Window(NOW + HOUR, NOW + 2 * HOUR)
    assert stats(store, window=window) == []
    assert stats(store, window=window, by=schema.CHANNEL_ID) == []
    assert heatmap(store, window=window).counts == {}
    assert slowest(store, window=window) == []


def test_http_keys_read_the_stable_name_and_the_current_one(tmp_path: Path) -> None:
    """Ready for the stable HTTP names: either name finds spans recorded under either."""
    from opentelemetry.trace import SpanContext, SpanKind

    from tests.store_data import RESOURCE

    def root(i: int, attributes: dict[str, str | int]) -> ReadableSpan:
        return ReadableSpan(
            name="interaction",
            context=SpanContext(i, i, False),
            resource=RESOURCE,
            attributes={schema.OUTCOME: "ok", **attributes},
            kind=SpanKind.SERVER,
            start_time=NOW - i * 10**9,
            end_time=NOW - i * 10**9 + 10**6,
        )

    path = tmp_path / "s.db"
    write(path, [root(1, {"http.method": "GET"}), root(2, {"http.request.method": "GET"})])
    with SpanStore.open(path) as store:
        for key in ("http.method", "http.request.method"):
            (row,) = stats(store, window=WINDOW, by=key)
            assert (row.group, row.count) == ("GET", 2)
            (row,) = stats(store, window=WINDOW, where=[Where(key, "GET")], by="outcome")
            assert row.count == 2


@pytest.mark.parametrize(
    ("by", "where"),
    [
        ("author", []),  # roots_start, the C pass
        (schema.CHANNEL_ID, []),  # root_values
        ("command", [f"{schema.GUILD_ID}=901"]),  # roots_start, a filter it holds
    ],
)
@pytest.mark.parametrize("top", [1, 5, 29, 1000])
def test_busiest_groups_are_the_first_rows_of_stats(
    store: SpanStore, by: str, where: list[str], top: int
) -> None:
    conditions = [Where.parse(text) for text in where]
    every = stats(store, window=WINDOW, by=by, where=conditions)
    rows, groups = query.busiest(store, window=WINDOW, by=by, where=conditions, top=top)
    assert rows == every[:top]
    assert groups == len(every)
