"""``stats --by`` an attribute with no column, answered from the group cache beside the store.

Every answer is checked against brute force over the spans the test made (or the
ones the store still holds after retention), so a cache that kept a deleted span,
missed a new one or survived a replaced store would show as a wrong count or
percentile.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from telemetry import query, schema, store_groups
from telemetry.query import Where, Window, stats
from telemetry.store import SpanStore, apply_retention, insert_rows, span_row
from telemetry.store_groups import cache_path
from telemetry.store_schema import connect_writer
from tests.store_data import HOUR, NOW, expected_stats, random_spans, write

WINDOW = Window(NOW - 72 * HOUR, NOW)
WINDOW_AGE = timedelta(hours=72)
KEY = schema.COMMAND_ARGS  # no column of its own


def _cached_keys(store_path: Path) -> list[str]:
    with sqlite3.connect(cache_path(store_path)) as conn:
        return [row[0] for row in conn.execute("SELECT key FROM keys ORDER BY key")]


def _stored(path: Path, spans: list[ReadableSpan]) -> list[ReadableSpan]:
    """The spans the store still holds (retention may have removed some)."""
    with sqlite3.connect(path) as conn:
        kept = {row[0] for row in conn.execute("SELECT span_id FROM spans")}
    return [s for s in spans if format(s.context.span_id, "016x") in kept]


def _one_pass(store: SpanStore, by: str, monkeypatch: pytest.MonkeyPatch) -> list[query.StatsRow]:
    with monkeypatch.context() as patch:
        patch.setattr(query, "group_table", lambda *args, **kwargs: None)
        return stats(store, window=WINDOW, by=by)


def test_first_question_builds_the_cache_and_answers_as_the_json_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spans = random_spans(800, seed=3)
    path = tmp_path / "spans.db"
    write(path, spans)
    with SpanStore.open(path) as store:
        for by in (KEY, schema.CHANNEL_ID, schema.SHARD_ID, schema.ERROR_TYPE, "app.none"):
            cached = stats(store, window=WINDOW, by=by)
            assert cached == expected_stats(spans, WINDOW, by)
            assert cached == _one_pass(store, by, monkeypatch)
            assert by in _cached_keys(path)
            # Asked again: read from the cache as it is.
            assert stats(store, window=WINDOW, by=by) == cached


def test_cache_follows_new_spans_retention_and_a_replaced_store(tmp_path: Path) -> None:
    spans = random_spans(600, seed=4)
    path = tmp_path / "spans.db"
    write(path, spans[:400])
    with SpanStore.open(path) as store:
        assert stats(store, window=WINDOW, by=KEY) == expected_stats(spans[:400], WINDOW, KEY)
    write(path, spans[400:])  # the bot wrote more since
    with SpanStore.open(path) as store:
        assert stats(store, window=WINDOW, by=KEY) == expected_stats(spans, WINDOW, KEY)

    conn = connect_writer(path)
    size = conn.execute("PRAGMA page_count").fetchone()[0] * 4096
    apply_retention(conn, max_age=WINDOW_AGE, max_bytes=size // 2, now_ns=NOW)
    conn.close()
    left = _stored(path, spans)
    assert 0 < len(left) < len(spans)
    with SpanStore.open(path) as store:
        assert stats(store, window=WINDOW, by=KEY) == expected_stats(left, WINDOW, KEY)

    # Another store at the same path (deleted and started anew): nothing of the old one.
    path.unlink()
    for leftover in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)
    others = random_spans(300, seed=5)
    write(path, others)
    with SpanStore.open(path) as store:
        assert stats(store, window=WINDOW, by=KEY) == expected_stats(others, WINDOW, KEY)


def test_spans_sharing_the_oldest_start_are_told_apart_by_id(tmp_path: Path) -> None:
    # Retention deletes the oldest first; among spans that started at the same moment it
    # may take some and leave others. The cache must drop exactly those it took.
    spans = random_spans(200, seed=6)
    oldest = min(s.start_time or 0 for s in spans if s.parent is None)
    tied = [s for s in spans if s.parent is None][:30]
    for span in tied:  # ReadableSpan has no setters: a moment shared by 30 roots
        span._start_time = oldest
        span._end_time = oldest + 7_000_000 + (span.context.span_id % 5) * 1_000_000
    path = tmp_path / "spans.db"
    write(path, spans)
    with SpanStore.open(path) as store:
        assert stats(store, window=WINDOW, by=KEY) == expected_stats(spans, WINDOW, KEY)
    conn = connect_writer(path)
    conn.execute("DELETE FROM spans WHERE id IN (SELECT id FROM spans ORDER BY start_ns LIMIT 12)")
    conn.close()
    left = _stored(path, spans)
    assert sum((s.start_time or 0) == oldest for s in left) > 0  # the tie was split
    with SpanStore.open(path) as store:
        assert stats(store, window=WINDOW, by=KEY) == expected_stats(left, WINDOW, KEY)


def test_a_filtered_question_does_not_build_a_cache_but_uses_one(tmp_path: Path) -> None:
    spans = random_spans(300, seed=7)
    path = tmp_path / "spans.db"
    write(path, spans)
    errors = [Where(schema.OUTCOME, "error")]
    with SpanStore.open(path) as store:
        found = stats(store, window=WINDOW, by=schema.ERROR_TYPE, where=errors)
        assert found == expected_stats(spans, WINDOW, schema.ERROR_TYPE, errors)
        assert not cache_path(path).exists()
        stats(store, window=WINDOW, by=schema.ERROR_TYPE)  # builds it
        found = stats(store, window=WINDOW, by=schema.ERROR_TYPE, where=errors)
        assert found == expected_stats(spans, WINDOW, schema.ERROR_TYPE, errors)


def test_least_recently_asked_key_makes_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_groups, "MAX_KEYS", 2)
    spans = random_spans(200, seed=8)
    path = tmp_path / "spans.db"
    write(path, spans)
    keys = [KEY, schema.CHANNEL_ID, schema.SHARD_ID]
    with SpanStore.open(path) as store:
        for by in keys:
            assert stats(store, window=WINDOW, by=by) == expected_stats(spans, WINDOW, by)
        assert _cached_keys(path) == sorted(keys[1:])
        assert stats(store, window=WINDOW, by=KEY) == expected_stats(spans, WINDOW, KEY)
        assert _cached_keys(path) == sorted([KEY, schema.SHARD_ID])


def test_unwritable_cache_falls_back_to_the_json(tmp_path: Path) -> None:
    spans = random_spans(200, seed=9)
    path = tmp_path / "spans.db"
    write(path, spans)
    cache_path(path).mkdir()  # SQLite cannot open a directory
    with SpanStore.open(path) as store:
        assert stats(store, window=WINDOW, by=KEY) == expected_stats(spans, WINDOW, KEY)


def test_spans_written_while_the_cache_exists_are_counted_once(tmp_path: Path) -> None:
    spans = random_spans(300, seed=10)
    path = tmp_path / "spans.db"
    conn = connect_writer(path)  # the bot's connection, open throughout
    insert_rows(conn, [span_row(s) for s in spans[:100]])
    with SpanStore.open(path) as store:
        for start in range(100, len(spans), 75):  # a root and its child may be apart
            found = stats(store, window=WINDOW, by=KEY)
            assert found == expected_stats(spans[:start], WINDOW, KEY)
            insert_rows(conn, [span_row(s) for s in spans[start : start + 75]])
        assert stats(store, window=WINDOW, by=KEY) == expected_stats(spans, WINDOW, KEY)
    conn.close()


def test_the_bot_writes_while_the_cache_is_being_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spans = random_spans(150, seed=11)  # 300 spans: roots and their children
    path = tmp_path / "spans.db"
    write(path, spans[:200])
    copy = store_groups._copy_new
    wrote: list[int] = []

    def copy_then_export(conn: sqlite3.Connection, *args: object) -> None:
        copy(conn, *args)  # type: ignore[arg-type]
        # Mid-sync, the cache's transaction open: the bot's export must not wait at all.
        bot = connect_writer(path)
        bot.execute("PRAGMA busy_timeout = 0")
        insert_rows(bot, [span_row(s) for s in spans[200:]])
        wrote.append(len(spans) - 200)
        bot.close()

    monkeypatch.setattr(store_groups, "_copy_new", copy_then_export)
    with SpanStore.open(path) as store:
        # Answered from the snapshot the sync read: the spans written during it come next time.
        assert stats(store, window=WINDOW, by=KEY) == expected_stats(spans[:200], WINDOW, KEY)
        assert wrote
        monkeypatch.setattr(store_groups, "_copy_new", copy)
        assert stats(store, window=WINDOW, by=KEY) == expected_stats(spans, WINDOW, KEY)
