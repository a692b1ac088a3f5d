"""Finished CI runs in chat: a CircleCI webhook to the bot's health server becomes an embed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from bot.ci_services import CiServices
from bot.client import ChatOpsBot
from bot.config import Settings
from bot.harness import connected_bot
from bot.health import health_app, start_health_server
from bot.sandbox import FakeDiscord
from commands.builds import Builds
from telemetry import schema
from tests.fakes import circleci_hooks
from tests.fakes.otlp import OtlpReceiver
from tests.helpers.markdown import masked_links
from tests.helpers.sandbox_chat import is_ephemeral, run_slash


@pytest.fixture
def extra() -> dict[str, object]:
    """More settings for the announcing bot (a test parametrizes it)."""
    return {}


@pytest.fixture
async def announcing_bot(
    settings: Settings, fake: FakeDiscord, spans: InMemorySpanExporter, extra: dict[str, object]
) -> AsyncIterator[tuple[ChatOpsBot, str]]:
    """The bot with CI announcements to the fake's channel and the receiver on its health app."""
    async with OtlpReceiver() as otlp:
        configured = settings.model_copy(
            update={
                "ci_announce_channel_id": fake.channel_id,
                "circleci_hook_secret": SecretStr(circleci_hooks.SECRET),
                "circleci_otlp_endpoint": otlp.endpoint,
                **extra,
            }
        )
        async with connected_bot(configured, fake, guild_ready_timeout=0.05) as bot:
            app = health_app(lambda: bot.gateway_up)
            services = CiServices(configured, bot.announce_pipeline)
            services.mount(app)
            runner = await start_health_server(app, 0)
            try:
                yield bot, f"http://127.0.0.1:{runner.addresses[0][1]}"
            finally:
                await runner.cleanup()
                await services.close()


async def post_hook(base: str, payload: dict[str, object]) -> int:
    body, signature = circleci_hooks.body_and_header(payload)
    headers = {"circleci-signature": signature, "content-type": "application/json"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base}/hooks/circleci", data=body, headers=headers) as response,
    ):
        return response.status


async def until_announced(fake: FakeDiscord, count: int) -> list[dict[str, object]]:
    for _ in range(200):
        announced = [m for m in fake.bot_messages if m.get("embeds")]
        if len(announced) >= count:
            return announced
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {count} announcement(s), saw {fake.bot_messages}")


async def test_a_finished_workflow_is_announced_in_the_channel_and_traced(
    announcing_bot: tuple[ChatOpsBot, str], fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    _, base = announcing_bot
    assert await post_hook(base, circleci_hooks.workflow_completed()) == 202
    (message,) = await until_announced(fake, 1)
    (embed,) = message["embeds"]  # type: ignore[misc]
    assert "success" in embed["title"]
    assert circleci_hooks.WORKFLOW_ID.replace("-", "") in embed["footer"]["text"]
    # Without HONEYCOMB_TEAM: the bare trace id in the footer, no link.
    assert "trace" not in [field["name"] for field in embed.get("fields", [])]
    assert not fake.would_ping(message)
    (root,) = [s for s in spans.get_finished_spans() if s.name == "ci.announce"]
    assert root.parent is None
    assert root.attributes[schema.CI_TRACE_ID] == circleci_hooks.WORKFLOW_ID.replace("-", "")
    sends = [s for s in spans.get_finished_spans() if s.name == schema.SEND_SPAN]
    assert any(s.parent and s.parent.span_id == root.context.span_id for s in sends)


async def test_builds_lists_recent_runs_and_filters_by_pipeline(
    announcing_bot: tuple[ChatOpsBot, str], fake: FakeDiscord
) -> None:
    _, base = announcing_bot
    empty = await fake.say("!builds")
    assert empty is not None and empty["content"] == "No finished runs seen since I started."
    assert await post_hook(base, circleci_hooks.workflow_completed()) == 202
    await until_announced(fake, 1)
    listed = await fake.say("!builds")
    assert listed is not None and "success" in listed["content"]
    other = await fake.say("!builds nonexistent-pipeline")
    assert other is not None
    assert other["content"] == "No finished runs of `nonexistent-pipeline` seen since I started."


async def test_an_unsigned_hook_is_refused_and_announces_nothing(
    announcing_bot: tuple[ChatOpsBot, str], fake: FakeDiscord
) -> None:
    _, base = announcing_bot
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base}/hooks/circleci", json=circleci_hooks.workflow_completed()) as response,
    ):
        assert response.status == 401
    await asyncio.sleep(0.2)
    assert not [m for m in fake.bot_messages if m.get("embeds")]


async def test_slash_builds_lists_and_filters_like_the_bang_command(
    announcing_bot: tuple[ChatOpsBot, str], fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    bot, base = announcing_bot
    empty, root, _ = await run_slash(fake, spans, "/builds")
    assert empty["content"] == "No finished runs seen since I started."
    assert root.name == "command builds" and root.attributes[schema.OUTCOME] == "ok"
    assert await post_hook(base, circleci_hooks.workflow_completed()) == 202
    await until_announced(fake, 1)
    builds = bot.get_cog("Builds")
    assert isinstance(builds, Builds)
    pipeline = builds.recent[0].pipeline

    listed, root, interaction = await run_slash(fake, spans, f"/builds pipeline:{pipeline}")
    assert "success" in listed["content"] and f"**{pipeline}**" in listed["content"]
    assert not is_ephemeral(listed) and not fake.would_ping(listed)
    assert [c["type"] for c in interaction.callbacks] == [4]  # answered at once, no deferral
    assert root.attributes[schema.COMMAND_ARGS] == f"pipeline:{pipeline}"
    assert root.attributes[schema.INTERACTION_TYPE] == "application_command"

    other, _, _ = await run_slash(fake, spans, "/builds pipeline:nonexistent-pipeline")
    assert other["content"] == "No finished runs of `nonexistent-pipeline` seen since I started."


@pytest.mark.parametrize(
    "extra",
    [
        {
            "honeycomb_team": "acme",
            "honeycomb_environment": "prod",
            "circleci_hook_service": "ci-hooks",
        }
    ],
)
async def test_with_honeycomb_team_the_announcement_links_the_runs_trace(
    announcing_bot: tuple[ChatOpsBot, str], fake: FakeDiscord
) -> None:
    _, base = announcing_bot
    assert await post_hook(base, circleci_hooks.workflow_completed()) == 202
    (message,) = await until_announced(fake, 1)
    (embed,) = message["embeds"]  # type: ignore[misc]
    (link,) = [f["value"] for f in embed["fields"] if f["name"] == "trace"]
    trace_id = embed["footer"]["text"].rsplit(" ", 1)[-1]
    # A masked link whose text is the id, to the trace in the CircleCI service's dataset.
    prefix = "https://ui.honeycomb.io/acme/environments/prod/datasets/ci-hooks/trace?"
    ((_, url),) = masked_links(link)  # one link Discord renders, showing the id
    assert link == f"[`{trace_id}`]({url})"
    assert url.startswith(f"{prefix}trace_id={trace_id}&trace_start_ts=")
    assert not fake.would_ping(message)
