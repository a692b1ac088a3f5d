"""The CircleCI delivery store: ids survive a reopen, expire with the window, never stop the bot."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from telemetry.pipeline.deliveries import MEMORY, DeliveryStore


def test_an_id_is_remembered_across_a_reopen(tmp_path: Path) -> None:
    first = DeliveryStore(tmp_path / "c.db")
    assert first.first_time("event", 100, forget_before_ns=0)
    first.close()
    again = DeliveryStore(tmp_path / "c.db")
    assert not again.first_time("event", 100, forget_before_ns=0)
    again.close()


def test_an_id_older_than_the_window_is_forgotten() -> None:
    store = DeliveryStore(MEMORY)
    assert store.first_time("old", 100, forget_before_ns=0)
    assert store.first_time("new", 500, forget_before_ns=200)  # prunes "old"
    assert store.first_time("old", 100, forget_before_ns=0)
    assert not store.first_time("new", 500, forget_before_ns=0)


def test_an_unusable_file_falls_back_to_memory_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING):
        store = DeliveryStore.open(blocker / "circleci.db")
    assert store.path == MEMORY
    assert store.first_time("event", 1, forget_before_ns=0)
    assert [r.levelname for r in caplog.records] == ["WARNING"]
