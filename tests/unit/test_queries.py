"""Stats, heatmap, waterfall and slowest traces compared with figures computed by hand."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import pytest

from telemetry import schema
from telemetry.query import QueryError, Where, Window, heatmap, slowest, stats, waterfall
from telemetry.store import Marker, SpanStore, record_marker
from tests.helpers.stored_spans import root, store_tracer

NOW = 1_800_000_000 * 10**9
MIN = 60 * 10**9


def nearest_rank(values: list[float], p: int) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(p / 100 * len(ordered)) - 1]


@pytest.fixture
def store(tmp_path: Path) -> SpanStore:
    path = tmp_path / "s.db"
    with store_tracer(path) as tracer:
        for i in range(1, 101):  # ping: 1..100 ms, every 10th an error
            outcome = schema.Outcome.ERROR if i % 10 == 0 else schema.Outcome.OK
            root(
                tracer,
                "ping",
                start_ns=NOW - i * MIN,
                duration_ms=i,
                outcome=outcome,
                author=str(i % 3),
            )
        for i in range(1, 21):  # mtg: 10, 20, .. 200 ms
            root(tracer, "mtg", start_ns=NOW - i * MIN, duration_ms=10 * i, author="7")
        root(tracer, "ping", start_ns=NOW - 3 * 86400 * 10**9, duration_ms=5000)  # outside 1d
    return SpanStore.open(path)


def test_stats_reports_count_error_rate_and_percentiles_per_command(store: SpanStore) -> None:
    rows = {r.group: r for r in stats(store, window=Window.last(timedelta(days=1), NOW))}
    ping = [float(i) for i in range(1, 101)]
    assert rows["ping"].count == 100
    assert rows["ping"].error_rate == pytest.approx(0.1)
    assert rows["ping"].p50_ms == pytest.approx(nearest_rank(ping, 50))
    assert rows["ping"].p95_ms == pytest.approx(nearest_rank(ping, 95))
    assert rows["ping"].p99_ms == pytest.approx(nearest_rank(ping, 99))
    assert rows["ping"].max_ms == pytest.approx(100)
    mtg = [10.0 * i for i in range(1, 21)]
    assert rows["mtg"].p95_ms == pytest.approx(nearest_rank(mtg, 95))
    assert rows["mtg"].errors == 0


def test_stats_by_author_groups_on_the_author_id(store: SpanStore) -> None:
    rows = {
        r.group: r.count
        for r in stats(store, window=Window.last(timedelta(days=1), NOW), by="author")
    }
    assert rows == {"0": 33, "1": 34, "2": 33, "7": 20}


def test_where_filter_keeps_only_matching_root_spans(store: SpanStore) -> None:
    window = Window.last(timedelta(days=1), NOW)
    rows = stats(store, window=window, where=[Where.parse("app.outcome=error")])
    assert [(r.group, r.count, r.max_ms) for r in rows] == [("ping", 10, pytest.approx(100))]
    by_json = stats(
        store, window=window, by="discord.author.id", where=[Where.parse("app.command=mtg")]
    )
    assert [(r.group, r.count) for r in by_json] == [("7", 20)]


def test_since_window_excludes_older_spans(store: SpanStore) -> None:
    rows = {r.group: r for r in stats(store, window=Window.last(timedelta(days=7), NOW))}
    assert rows["ping"].count == 101 and rows["ping"].max_ms == pytest.approx(5000)


def test_heatmap_counts_every_span_once_in_its_time_and_duration_cell(
    store: SpanStore, tmp_path: Path
) -> None:
    record_marker(tmp_path / "s.db", Marker(NOW - 30 * MIN, "v2", "deploy v2"))
    window = Window(NOW - 120 * MIN, NOW)
    result = heatmap(store, window=window, columns=12)
    assert result.total == 120
    assert (
        sum(n for (col, _), n in result.counts.items() if col == 11) == 10 + 10
    )  # last 10 minutes
    assert [m.version for m in result.markers] == ["v2"]
    assert result.marker_columns()[0][0] == 9


def test_waterfall_lists_children_under_parents_with_offsets(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with store_tracer(path) as tracer:
        parent = tracer.start_span("command mtg", start_time=NOW)
        from opentelemetry import trace

        ctx = trace.set_span_in_context(parent)
        child = tracer.start_span("scryfall.search", context=ctx, start_time=NOW + 5 * 10**6)
        grandchild = tracer.start_span(
            "GET", context=trace.set_span_in_context(child), start_time=NOW + 6 * 10**6
        )
        grandchild.end(end_time=NOW + 40 * 10**6)
        child.end(end_time=NOW + 41 * 10**6)
        send = tracer.start_span(schema.SEND_SPAN, context=ctx, start_time=NOW + 42 * 10**6)
        send.end(end_time=NOW + 50 * 10**6)
        parent.end(end_time=NOW + 51 * 10**6)
        trace_id = format(parent.get_span_context().trace_id, "032x")
    with SpanStore.open(path) as store:
        rows = waterfall(store, trace_id[:12])
    assert [(r.depth, r.name, r.offset_ms, r.duration_ms) for r in rows] == [
        (0, "command mtg", 0, 51),
        (1, "scryfall.search", 5, 36),
        (2, "GET", 6, 34),
        (1, "discord.send", 42, 8),
    ]


def test_unknown_trace_id_is_a_query_error(store: SpanStore) -> None:
    with pytest.raises(QueryError, match="no trace"):
        waterfall(store, "0" * 32)
    with pytest.raises(QueryError, match="not a trace id"):
        waterfall(store, "xyz")


def test_slowest_lists_longest_root_spans_optionally_of_one_command(store: SpanStore) -> None:
    window = Window.last(timedelta(days=1), NOW)
    assert [t.duration_ms for t in slowest(store, window=window, limit=3)] == [200, 190, 180]
    assert [t.duration_ms for t in slowest(store, window=window, limit=2, command="ping")] == [
        100,
        99,
    ]


def test_autocomplete_requests_are_left_out_of_the_per_command_defaults(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with store_tracer(path) as tracer:
        root(tracer, "card", start_ns=NOW - MIN, duration_ms=100)
        for i in range(1, 6):  # each keystroke: fast, and not a run of /card
            root(
                tracer,
                "card",
                start_ns=NOW - i * MIN,
                duration_ms=2,
                outcome=schema.Outcome.AUTOCOMPLETE,
            )
    store = SpanStore.open(path)
    window = Window.last(timedelta(days=1), NOW)
    (card,) = stats(store, window=window)
    assert (card.count, card.p50_ms) == (1, pytest.approx(100))
    assert [row.duration_ms for row in slowest(store, window=window, limit=10)] == [
        pytest.approx(100)
    ]
    assert heatmap(store, window=window).total == 1
    # Asked for by outcome, they are all there.
    (asked,) = stats(store, window=window, where=[Where(schema.OUTCOME, "autocomplete")])
    assert asked.count == 5


ROOTS_ONLY = {"column": "trace.parent_id", "op": "does-not-exist"}


def test_the_shipped_honeycomb_queries_leave_autocomplete_out() -> None:
    import json

    for path in sorted(Path("infra/honeycomb/queries").glob("*.json")):
        filters = json.loads(path.read_text())["spec"]["filters"]
        if ROOTS_ONLY in filters:  # per-command questions (HTTP spans have no outcome)
            assert {"column": "app.outcome", "op": "!=", "value": "autocomplete"} in filters, path


def test_the_shipped_honeycomb_queries_name_the_stable_http_attributes() -> None:
    import json

    from telemetry.store_schema import HTTP_RENAMES

    columns: set[str] = set()
    for path in sorted(Path("infra/honeycomb/queries").glob("*.json")):
        spec = json.loads(path.read_text())["spec"]
        columns |= set(spec.get("breakdowns", []))
        columns |= {f["column"] for f in spec.get("filters", [])}
        columns |= {c["column"] for c in spec.get("calculations", []) if "column" in c}
    assert not columns & HTTP_RENAMES.keys()  # no old name
    assert {"http.request.method", "http.response.status_code", "server.address"} <= columns
