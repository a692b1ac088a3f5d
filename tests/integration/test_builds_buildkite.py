"""``!builds`` with BuildKite configured asks its REST API, so runs show after a restart too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from bot.client import ChatOpsBot
from bot.config import Settings
from bot.sandbox import FakeDiscord
from commands.builds import Builds
from telemetry.pipeline.buildkite import build_spans
from telemetry.pipeline.events import PipelineEvent
from tests.fakes.buildkite_api import TOKEN, FakeBuildkite, sample_builds
from tests.helpers.sandbox_chat import ask
from tests.helpers.trace_finders import root_of


@pytest.fixture
async def buildkite() -> AsyncIterator[FakeBuildkite]:
    async with FakeBuildkite(sample_builds(datetime.now(UTC))) as fake:
        yield fake


@pytest.fixture
def pipelines() -> list[str]:
    """BUILDKITE_PIPELINES (none: the whole organisation)."""
    return []


@pytest.fixture
def settings(settings: Settings, buildkite: FakeBuildkite, pipelines: list[str]) -> Settings:
    return settings.model_copy(
        update={
            "buildkite_api_url": buildkite.url,
            "buildkite_api_token": SecretStr(TOKEN),
            "buildkite_org": "acme",
            "buildkite_pipelines": pipelines,
            "external_retry_backoff_s": 0.01,
        }
    )


async def test_builds_lists_buildkite_s_finished_builds_newest_first_with_the_call_traced(
    bot: ChatOpsBot, fake: FakeDiscord, buildkite: FakeBuildkite, spans: InMemorySpanExporter
) -> None:
    message, answer = await ask(fake, "!builds")
    lines = answer["content"].splitlines()
    assert len(lines) == 3, lines
    assert "**App** on `main`" in lines[0] and "success in 3m 30s" in lines[0]
    assert "**App** on `fix-login`" in lines[1] and "failure" in lines[1]
    assert "**Docs-Site**" in lines[2]
    (asked,) = buildkite.requests
    assert asked.startswith("/v2/organizations/acme/builds?finished_from=")
    assert "exclude_jobs=true" in asked and "per_page=50" in asked
    root = root_of(spans, message)
    calls = [
        s
        for s in spans.get_finished_spans()
        if s.name == "buildkite.builds" and s.context.trace_id == root.context.trace_id
    ]
    assert len(calls) == 1
    assert TOKEN not in str([dict(s.attributes or {}) for s in spans.get_finished_spans()])


async def test_builds_name_matches_buildkite_pipelines_by_slug_or_name(
    bot: ChatOpsBot, fake: FakeDiscord
) -> None:
    _, answer = await ask(fake, "!builds DOCS")
    assert answer["content"].count("\n") == 0 and "**Docs-Site**" in answer["content"]
    _, none = await ask(fake, "!builds mobile")
    assert none["content"] == (
        "No finished runs of `mobile` in BuildKite's last 24 h or seen since I started."
    )


async def test_an_announced_build_is_not_listed_twice(bot: ChatOpsBot, fake: FakeDiscord) -> None:
    builds = bot.get_cog("Builds")
    assert isinstance(builds, Builds)
    made = build_spans(sample_builds(datetime.now(UTC))[0])
    assert made is not None
    builds.recent.appendleft(made[1])
    builds.recent.appendleft(
        PipelineEvent("circleci", "web", "success", "main", "1234abcd", 61.0, None, "0" * 32, "9")
    )
    _, answer = await ask(fake, "!builds")
    assert answer["content"].count("**App** on `main`") == 1
    assert "**web**" in answer["content"]


async def test_buildkite_refusing_the_token_is_one_line_without_the_token(
    bot: ChatOpsBot, fake: FakeDiscord, buildkite: FakeBuildkite
) -> None:
    buildkite.token = "another-token"
    _, answer = await ask(fake, "!builds")
    assert "The BuildKite API answered 401." in answer["content"]
    assert TOKEN not in answer["content"] and "\n" not in answer["content"].strip()


@pytest.mark.parametrize("pipelines", [["docs-site"]])
async def test_configured_pipelines_are_asked_one_by_one(
    bot: ChatOpsBot, fake: FakeDiscord, buildkite: FakeBuildkite, pipelines: list[str]
) -> None:
    _, answer = await ask(fake, "!builds")
    assert "**Docs-Site**" in answer["content"] and "App" not in answer["content"]
    assert buildkite.requests[-1].startswith("/v2/organizations/acme/pipelines/docs-site/builds?")
