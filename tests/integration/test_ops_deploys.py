"""Deploy before/after: a marker's review posted once its window has passed, and ``!deploys``.

Root spans with set times and a deploy marker are written into a span store (real SDK
spans, the store's own exporter); the real bot reads it and posts to the audit channel.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from bot.config import Settings
from bot.harness import connected_bot
from bot.sandbox import FakeDiscord
from telemetry import schema
from telemetry.store_read import Marker, record_marker
from tests.fakes.honeycomb_api import FakeHoneycomb
from tests.helpers.sandbox_chat import until
from tests.helpers.stored_spans import root, store_tracer

WINDOW_S = 60
NS = 1_000_000_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Path]:
    """mtg slower and failing after the 1.4.0 deploy, roll unchanged, 1.5.0 just deployed."""
    path = tmp_path / "spans.db"
    now = time.time_ns()
    deployed = now - (WINDOW_S + 10) * NS
    with store_tracer(path) as tracer:
        for i in range(20):
            before = deployed - (i + 1) * 2 * NS
            after = deployed + (i + 1) * 2 * NS
            root(tracer, "roll", start_ns=before, duration_ms=10 + i)
            root(tracer, "roll", start_ns=after, duration_ms=10 + i)
            root(tracer, "mtg", start_ns=before, duration_ms=100 + i)
            root(
                tracer, "mtg", start_ns=after, duration_ms=400 + i,
                outcome="error" if i % 4 == 0 else "ok",
            )  # fmt: skip
    record_marker(path, Marker(deployed, "1.4.0", "deploy 1.4.0"))
    record_marker(path, Marker(now - 5 * NS, "1.5.0", "deploy 1.5.0"))
    yield path


@pytest.fixture
def configured(settings: Settings, store: Path, fake: FakeDiscord) -> Settings:
    return settings.model_copy(
        update={
            "span_store": str(store),
            "audit_channel_id": fake.add_channel("audit"),
            "deploy_review_window_s": WINDOW_S,
            "deploy_review_poll_s": 0.1,
        }
    )


def reviews(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name == schema.DEPLOY_REVIEW_SPAN]


async def test_a_deploy_is_reviewed_once_with_regressions_flagged_even_across_restarts(
    configured: Settings, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    channel = configured.audit_channel_id
    assert channel is not None
    async with connected_bot(configured, fake, guild_ready_timeout=0.05):
        await until(lambda: len(fake.messages_in(channel)) == 1)
        (post,) = fake.messages_in(channel)
        (embed,) = post["embeds"]
        assert embed["title"] == "\u26a0\ufe0f deploy 1.4.0: regressed: mtg"
        table = embed["description"]
        mtg = next(line for line in table.splitlines() if line.startswith("mtg"))
        roll = next(line for line in table.splitlines() if line.startswith("roll"))
        assert "118 ms" in mtg and "418 ms" in mtg and "25.0%" in mtg and mtg.endswith("\u26a0")
        assert not roll.endswith("\u26a0")
        (field,) = embed["fields"]
        assert field["name"] == "mtg" and "p95 118 \u2192 418 ms" in field["value"]
        assert "errors 0.0% \u2192 25.0%" in field["value"]
        await until(lambda: len(reviews(spans)) == 1)  # the post is made inside the span
        (span,) = reviews(spans)
        assert span.parent is None and span.attributes[schema.OUTCOME] == "ok"
        assert span.attributes[schema.DEPLOY_VERDICT] == "regressed: mtg"
        assert span.attributes[schema.DEPLOY_REGRESSIONS] == 1

        listed = await fake.say("!deploys")
        assert listed is not None
        first, second = listed["content"].splitlines()
        assert first.startswith("\u2022 `1.5.0`") and "pending (after " in first
        assert second.startswith("\u26a0\ufe0f `1.4.0`") and second.endswith("regressed: mtg")

    # The bot restarts (a deploy restarts it): the review is not posted again.
    async with connected_bot(configured, fake, guild_ready_timeout=0.05) as bot:
        cog = bot.get_cog("Deploys")
        assert cog is not None
        assert await cog.check() == 0  # type: ignore[attr-defined]
        assert len(fake.messages_in(channel)) == 1


async def test_without_traffic_after_the_deploy_the_verdict_says_so(
    settings: Settings, tmp_path: Path, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    path = tmp_path / "quiet.db"
    record_marker(path, Marker(time.time_ns() - (WINDOW_S + 5) * NS, "2.0.0"))
    quiet = settings.model_copy(
        update={
            "span_store": str(path),
            "deploy_review_window_s": WINDOW_S,
            "deploy_review_poll_s": 0.1,
        }
    )
    async with connected_bot(quiet, fake, guild_ready_timeout=0.05):
        await until(lambda: len(reviews(spans)) == 1)
        answer = await fake.say("!deploys")
        assert answer is not None
        assert answer["content"].startswith("\u2022 `2.0.0` ")
        assert answer["content"].endswith(": no traffic")
        assert (tmp_path / "deploy-reviews.db").exists()  # beside the span store


async def test_with_a_honeycomb_query_key_markers_and_figures_come_from_honeycomb(
    settings: Settings, fake: FakeDiscord, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    deployed_s = time.time() - WINDOW_S - 10
    hc = FakeHoneycomb(key="query-key-789")
    hc.markers.append({"id": "m1", "type": "deploy", "message": "deploy 3.0.0",
                       "start_time": int(deployed_s)})  # fmt: skip
    hc.markers.append({"id": "m2", "type": "note", "message": "not a deploy",
                       "start_time": int(deployed_s)})  # fmt: skip

    def results(spec: dict[str, object]) -> list[dict[str, object]]:
        after = int(str(spec["start_time"])) >= int(deployed_s)
        return [
            {"app.command": "roll", "COUNT": 50, "P95(duration_ms)": 30.0, "AVG(app.is_error)": 0},
            {"app.command": "catfact", "COUNT": 40, "P95(duration_ms)": 200.0,
             "AVG(app.is_error)": 0.10 if after else 0.0},
        ]  # fmt: skip

    hc.results = results
    runner = web.AppRunner(hc.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    configured = settings.model_copy(
        update={
            "honeycomb_query_key": SecretStr("query-key-789"),
            "honeycomb_api_url": url,
            "audit_channel_id": fake.add_channel("audit"),
            "deploy_review_window_s": WINDOW_S,
            "deploy_review_poll_s": 0.1,
            "deploy_review_state_db": tmp_path / "reviews.db",
        }
    )
    channel = configured.audit_channel_id
    assert channel is not None
    try:
        async with connected_bot(configured, fake, guild_ready_timeout=0.05):
            await until(lambda: len(fake.messages_in(channel)) == 1)
            (embed,) = fake.messages_in(channel)[0]["embeds"]
            assert embed["title"] == "\u26a0\ufe0f deploy 3.0.0: regressed: catfact"
            (field,) = embed["fields"]
            assert "errors 0.0% \u2192 10.0%" in field["value"]
            await until(lambda: len(reviews(spans)) == 1)
            (span,) = reviews(spans)
            assert span.attributes[schema.DEPLOY_REVIEW_SOURCE] == "Honeycomb"
    finally:
        await runner.cleanup()
    specs = [c.body for c in hc.calls("POST", "/1/queries/")]
    assert [(s["start_time"], s["end_time"]) for s in specs] == [
        (int(deployed_s) - WINDOW_S, int(deployed_s)),
        (int(deployed_s), int(deployed_s) + WINDOW_S),
    ]
    assert len(hc.calls("POST", "/1/query_results/")) == 2
    assert all(c.headers["X-Honeycomb-Team"] == "query-key-789" for c in hc.requests)


def quiet_settings(settings: Settings, path: Path, fake: FakeDiscord, poll_s: float) -> Settings:
    return settings.model_copy(
        update={
            "span_store": str(path),
            "audit_channel_id": fake.add_channel("audit"),
            "deploy_review_window_s": WINDOW_S,
            "deploy_review_poll_s": poll_s,
        }
    )


async def test_a_deploy_missed_while_the_bot_was_down_is_reviewed_at_the_next_start(
    settings: Settings, tmp_path: Path, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    """The bot was down for the three days around a deploy: no verdict was written. Its
    figures are still in the span store (7 days by default), so it is reviewed now."""
    path = tmp_path / "spans.db"
    missed = time.time_ns() - 3 * 86_400 * NS
    with store_tracer(path) as tracer:
        for i in range(10):
            root(tracer, "roll", start_ns=missed - (i + 1) * 2 * NS, duration_ms=10 + i)
            root(tracer, "roll", start_ns=missed + (i + 1) * 2 * NS, duration_ms=10 + i)
    record_marker(path, Marker(missed, "1.3.0", "deploy 1.3.0"))
    configured = quiet_settings(settings, path, fake, poll_s=0.1)
    channel = configured.audit_channel_id
    assert channel is not None
    async with connected_bot(configured, fake, guild_ready_timeout=0.05):
        await until(lambda: len(fake.messages_in(channel)) == 1)
        (post,) = fake.messages_in(channel)
        assert post["embeds"][0]["title"] == "\u2705 deploy 1.3.0: ok"
        listed = await fake.say("!deploys")
        assert listed is not None
        assert listed["content"].startswith("\u2705 `1.3.0` ")
        assert listed["content"].endswith(": ok")


async def test_a_backlog_of_missed_deploys_drains_a_few_per_look_oldest_first(
    settings: Settings, tmp_path: Path, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    path = tmp_path / "spans.db"
    now = time.time_ns()
    for day in range(5, 0, -1):
        record_marker(path, Marker(now - day * 86_400 * NS, f"1.{5 - day}.0"))
    record_marker(path, Marker(now - 8 * 86_400 * NS, "0.9.0"))  # beyond the 7 days kept
    configured = quiet_settings(settings, path, fake, poll_s=3600)
    channel = configured.audit_channel_id
    assert channel is not None
    async with connected_bot(configured, fake, guild_ready_timeout=0.05) as bot:
        await until(lambda: len(reviews(spans)) == 3)  # the first look, at start
        cog = bot.get_cog("Deploys")
        assert cog is not None
        assert await cog.check() == 2  # type: ignore[attr-defined]
        assert await cog.check() == 0  # type: ignore[attr-defined]
        versions = [s.attributes[schema.DEPLOY_VERSION] for s in reviews(spans)]
        assert versions == ["1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0"]
        assert len(fake.messages_in(channel)) == 5


async def test_deploys_whose_review_fails_do_not_hold_back_the_ones_after_them(
    settings: Settings, fake: FakeDiscord, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    """Honeycomb refuses the queries for the three oldest deploys (a full look's worth):
    the next look reviews the newest instead of trying the same three again."""
    now_s = int(time.time())
    hc = FakeHoneycomb(key="query-key-789")
    deployed = [now_s - 86_400 - hours * 3600 for hours in (4, 3, 2, 1)]
    for i, at in enumerate(deployed):
        hc.markers.append({"id": f"m{i}", "type": "deploy", "message": f"deploy 4.{i}.0",
                           "start_time": at})  # fmt: skip

    def results(spec: dict[str, object]) -> list[dict[str, object]]:
        if int(str(spec["end_time"])) <= deployed[2] + WINDOW_S:
            raise RuntimeError("Honeycomb is having a bad day for these")
        return [{"app.command": "roll", "COUNT": 50, "P95(duration_ms)": 30.0,
                 "AVG(app.is_error)": 0}]  # fmt: skip

    hc.results = results
    async with hc:
        configured = settings.model_copy(
            update={
                "honeycomb_query_key": SecretStr("query-key-789"),
                "honeycomb_api_url": hc.url,
                "audit_channel_id": fake.add_channel("audit"),
                "deploy_review_window_s": WINDOW_S,
                "deploy_review_poll_s": 0.1,
                "deploy_review_state_db": tmp_path / "reviews.db",
            }
        )
        channel = configured.audit_channel_id
        assert channel is not None
        async with connected_bot(configured, fake, guild_ready_timeout=0.05):
            await until(lambda: len(fake.messages_in(channel)) == 1, within=20)
            (embed,) = fake.messages_in(channel)[0]["embeds"]
            assert embed["title"] == "\u2705 deploy 4.3.0: ok"
            failed = [s for s in reviews(spans) if s.attributes[schema.OUTCOME] == "error"]
            assert sorted(s.attributes[schema.DEPLOY_VERSION] for s in failed) == [
                "4.0.0", "4.1.0", "4.2.0",
            ]  # fmt: skip
