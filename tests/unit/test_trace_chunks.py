"""A trace found by its id in a store with no index of trace ids (schema version 4).

Each write records its rows' id range and their trace ids' first digits
(``trace_chunks``); ``chatops trace`` reads the ranges that hold the digits asked
for, and every row no range covers. Each test writes spans the exporter's way and
asks for traces by id or prefix, as a user would.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from telemetry.query import AmbiguousTrace, NoSuchTrace, find_trace, waterfall
from telemetry.store import SpanStore, apply_retention, insert_rows, span_row, write_rows
from telemetry.store_schema import INSERT_SPAN, connect_writer, read_layout, transaction
from tests.store_data import NOW, random_spans


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = connect_writer(tmp_path / "spans.db")
    yield conn
    conn.close()


def hex_id(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.trace_id, "032x")


def span_ids(store: SpanStore, trace_id: str) -> set[str]:
    return {row.span_id for row in waterfall(store, trace_id)}


def expected(spans: list[ReadableSpan], trace_id: str) -> set[str]:
    return {format(s.context.span_id, "016x") for s in spans if s.context and hex_id(s) == trace_id}


def test_a_new_store_keeps_no_index_of_trace_ids(writer: sqlite3.Connection) -> None:
    layout = read_layout(writer)
    assert "spans_trace" not in layout.indexes
    assert "trace_chunks" in layout.tables


def test_every_trace_is_found_whole_by_its_id_or_a_prefix(
    writer: sqlite3.Connection, tmp_path: Path
) -> None:
    spans = random_spans(300, seed=11)
    for start in range(0, len(spans), 64):  # several writes, several chunks
        insert_rows(writer, [span_row(s) for s in spans[start : start + 64]])
    with SpanStore.open(tmp_path / "spans.db") as store:
        for trace_id in {hex_id(s) for s in spans}:
            assert span_ids(store, trace_id) == expected(spans, trace_id)
            assert span_ids(store, trace_id[:8]) == expected(spans, trace_id)
            starts = [s.start_time for s in spans if hex_id(s) == trace_id]
            assert find_trace(store, trace_id).start_ns == min(x for x in starts if x is not None)


def test_a_span_written_after_its_trace_is_found_with_it(
    writer: sqlite3.Connection, tmp_path: Path
) -> None:
    """A late child ends after its trace was exported: a later write, another chunk."""
    spans = random_spans(40, seed=12)
    late = [s for s in spans if s.parent is not None][:5]
    early = [s for s in spans if s not in late]
    insert_rows(writer, [span_row(s) for s in early])
    insert_rows(writer, [span_row(s) for s in random_spans(100, seed=13)])  # between them
    for span in late:
        insert_rows(writer, [span_row(span)])
    with SpanStore.open(tmp_path / "spans.db") as store:
        for span in late:
            assert span_ids(store, hex_id(span)) == expected(spans, hex_id(span))


def test_rows_an_older_chatops_wrote_without_a_chunk_are_found_too(
    writer: sqlite3.Connection, tmp_path: Path
) -> None:
    """An older bot writing to this store records no chunk; its rows are read in full."""
    ours, older, after = random_spans(30, seed=14), random_spans(30, seed=15), random_spans(30, 16)
    insert_rows(writer, [span_row(s) for s in ours])
    with transaction(writer):
        write_rows(writer, INSERT_SPAN, [span_row(s) for s in older])  # a gap between chunks
    insert_rows(writer, [span_row(s) for s in after])
    everything = [*ours, *older, *after]
    with SpanStore.open(tmp_path / "spans.db") as store:
        for trace_id in {hex_id(s) for s in everything}:
            assert span_ids(store, trace_id) == expected(everything, trace_id)


def test_rows_after_the_last_chunk_are_found(writer: sqlite3.Connection, tmp_path: Path) -> None:
    spans = random_spans(20, seed=17)
    insert_rows(writer, [span_row(s) for s in spans[:10]])
    with transaction(writer):
        write_rows(writer, INSERT_SPAN, [span_row(s) for s in spans[10:]])
    with SpanStore.open(tmp_path / "spans.db") as store:
        for span in spans[10:]:
            assert span_ids(store, hex_id(span)) == expected(spans, hex_id(span))


def test_a_prefix_of_two_traces_is_ambiguous_across_chunks(
    writer: sqlite3.Connection, tmp_path: Path
) -> None:
    template = span_row(random_spans(1, seed=18)[0])
    first = ("abcdef01" + "0" * 24, "1" * 16, None, *template[3:])
    second = ("abcdef01" + "f" * 24, "2" * 16, None, *template[3:])
    insert_rows(writer, [first])
    insert_rows(writer, [span_row(s) for s in random_spans(50, seed=19)])
    insert_rows(writer, [second])
    with SpanStore.open(tmp_path / "spans.db") as store:
        with pytest.raises(AmbiguousTrace):
            waterfall(store, "abcdef01")
        assert span_ids(store, "abcdef010") == {"1" * 16}
        assert span_ids(store, "abcdef01f") == {"2" * 16}
        with pytest.raises(NoSuchTrace):
            waterfall(store, "abcdef02")


def test_an_emptied_store_starts_its_ids_again_and_finds_new_traces(
    writer: sqlite3.Connection, tmp_path: Path
) -> None:
    """Retention empties the store: SQLite gives ids from 1 again, under no old chunk."""
    old = random_spans(50, seed=20, hours=2)
    insert_rows(writer, [span_row(s) for s in old])
    apply_retention(writer, max_age=timedelta(minutes=1), max_bytes=1 << 30, now_ns=NOW + 10**14)
    assert writer.execute("SELECT count(*) FROM spans").fetchone() == (0,)
    assert writer.execute("SELECT count(*) FROM trace_chunks").fetchone() == (0,)
    new = random_spans(50, seed=21)
    insert_rows(writer, [span_row(s) for s in new])
    with SpanStore.open(tmp_path / "spans.db") as store:
        for trace_id in {hex_id(s) for s in new}:
            assert span_ids(store, trace_id) == expected(new, trace_id)
        with pytest.raises(NoSuchTrace):
            waterfall(store, hex_id(old[0]))


def test_a_trace_in_an_early_write_whose_later_rows_were_deleted_is_found(
    writer: sqlite3.Connection, tmp_path: Path
) -> None:
    """Retention deletes by start time: a write's newest rows can go before its oldest,
    and the next write takes their ids again."""
    template = span_row(random_spans(1, seed=22)[0])

    def row(trace: str, span: int, start_ns: int) -> tuple[object, ...]:
        return (trace.ljust(32, "0"), f"{span:016x}", None, *template[3:5], start_ns, *template[6:])

    hour = 3600 * 10**9
    insert_rows(
        writer,
        [row("aaaaaaaa", 1, NOW)] + [row("bbbbbbbb", n, NOW - 9 * hour) for n in range(2, 7)],
    )
    apply_retention(writer, max_age=timedelta(hours=1), max_bytes=1 << 40, now_ns=NOW - 4 * hour)
    insert_rows(writer, [row("cccccccc", n, NOW) for n in range(7, 12)])
    apply_retention(writer, max_age=timedelta(hours=1), max_bytes=1 << 40, now_ns=NOW)
    insert_rows(writer, [row("dddddddd", n, NOW) for n in range(12, 17)])
    with SpanStore.open(tmp_path / "spans.db") as store:
        assert span_ids(store, "aaaaaaaa") == {f"{1:016x}"}
        assert span_ids(store, "cccccccc") == {f"{n:016x}" for n in range(7, 12)}
        with pytest.raises(NoSuchTrace):
            waterfall(store, "bbbbbbbb")
    # the chunk no span is left in is gone; the others stay
    chunks = writer.execute("SELECT prefixes FROM trace_chunks ORDER BY last_id").fetchall()
    assert chunks == [("aaaaaaaa,bbbbbbbb",), ("cccccccc",), ("dddddddd",)]


def test_ids_given_twice_never_hide_a_trace(writer: sqlite3.Connection, tmp_path: Path) -> None:
    """Three writes whose newest rows retention deletes in between: the trace written
    second sits at an id the first write's chunk once described."""
    template = span_row(random_spans(1, seed=24)[0])

    def row(trace: str, span: int, start_ns: int) -> tuple[object, ...]:
        return (trace.ljust(32, "0"), f"{span:016x}", None, *template[3:5], start_ns, *template[6:])

    hour = 3600 * 10**9

    def retain(now_ns: int) -> None:  # what started over an hour before ``now_ns`` goes
        apply_retention(writer, max_age=timedelta(hours=1), max_bytes=1 << 40, now_ns=now_ns)

    old = [row("dddddddd", n, NOW - 9 * hour) for n in range(2, 7)]
    insert_rows(writer, [row("dddddddd", 1, NOW), *old])  # ids 1-6
    retain(NOW - 4 * hour)  # 2-6 go
    later = [row("bbbbbbbb", n, NOW - 3 * hour) for n in range(8, 13)]
    insert_rows(writer, [row("aaaaaaaa", 7, NOW), *later])  # ids 2-7 again
    retain(NOW)  # 3-7 go
    insert_rows(writer, [row("cccccccc", n, NOW) for n in range(13, 18)])  # ids 3-7 again
    assert writer.execute("SELECT id FROM spans WHERE span_id = ?", (f"{7:016x}",)).fetchone()
    with SpanStore.open(tmp_path / "spans.db") as store:
        assert span_ids(store, "aaaaaaaa") == {f"{7:016x}"}
        assert span_ids(store, "dddddddd") == {f"{1:016x}"}
        assert span_ids(store, "cccccccc") == {f"{n:016x}" for n in range(13, 18)}


def test_a_thousand_ranges_to_read_still_answer(writer: sqlite3.Connection, tmp_path: Path) -> None:
    """A bot and an older chatops writing in turn: a range per chunk-less write to read."""
    spans = random_spans(1_000, seed=23)
    rows = [span_row(s) for s in spans]
    for n in range(0, len(rows), 2):
        insert_rows(writer, [rows[n]])
        with transaction(writer):
            write_rows(writer, INSERT_SPAN, [rows[n + 1]])
    with SpanStore.open(tmp_path / "spans.db") as store:
        for span in spans[:: len(spans) // 10]:
            assert span_ids(store, hex_id(span)) == expected(spans, hex_id(span))
            assert find_trace(store, hex_id(span)).start_ns is not None


def test_a_span_that_outlives_its_neighbours_does_not_keep_their_chunks(
    writer: sqlite3.Connection, tmp_path: Path
) -> None:
    """Retention deletes by start time: the lowest id may stay while the writes after it
    go. Their chunks go too, a bounded number a pass, whatever the store's size."""
    template = span_row(random_spans(1, seed=25)[0])

    def row(trace: str, start_ns: int) -> tuple[object, ...]:
        return (trace.ljust(32, "0"), "1" * 16, None, *template[3:5], start_ns, *template[6:])

    hour = 3600 * 10**9
    insert_rows(writer, [row("aaaaaaaa", NOW + hour)])  # id 1, started last: stays
    for n in range(1_200):
        insert_rows(writer, [row(f"{n:08x}", NOW - 9 * hour)])
    passes = 0
    while writer.execute("SELECT count(*) FROM trace_chunks").fetchone()[0] > 1:
        apply_retention(writer, max_age=timedelta(hours=1), max_bytes=1 << 40, now_ns=NOW)
        passes += 1
        assert passes <= 4
    assert writer.execute("SELECT count(*) FROM spans").fetchone() == (1,)
    with SpanStore.open(tmp_path / "spans.db") as store:
        assert span_ids(store, "aaaaaaaa") == {"1" * 16}


def test_overlapping_chunks_hide_nothing(writer: sqlite3.Connection, tmp_path: Path) -> None:
    """Writes keep chunks apart; were two to overlap (a store damaged some other way),
    every row one of them says holds the digits is still read."""
    spans = random_spans(20, seed=26)
    insert_rows(writer, [span_row(s) for s in spans])
    (target,) = writer.execute("SELECT trace_id FROM spans WHERE id = 5").fetchone()
    with transaction(writer):
        writer.execute("DELETE FROM trace_chunks")
        writer.executemany(
            "INSERT INTO trace_chunks (last_id, first_id, prefixes) VALUES (?, ?, ?)",
            [(9, 1, "ffffffff"), (30, 10, target[:8]), (40, 1, f"eeeeeeee,{target[:8]}")],
        )
    with SpanStore.open(tmp_path / "spans.db") as store:
        assert span_ids(store, target) == expected(spans, target)
