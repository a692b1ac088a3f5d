"""``!builds NAME`` finds pipelines by part of their name, whatever the case."""

from __future__ import annotations

from bot.client import ChatOpsBot
from bot.sandbox import FakeDiscord
from commands.builds import Builds
from telemetry.pipeline.events import PipelineEvent
from tests.helpers.sandbox_chat import ask


def _run(pipeline: str, run_id: str) -> PipelineEvent:
    return PipelineEvent(
        "circleci", pipeline, "success", "main", "abc12345", 61.0, None, "0" * 32, run_id
    )


async def test_builds_matches_pipelines_by_substring_ignoring_case(
    bot: ChatOpsBot, fake: FakeDiscord
) -> None:
    builds = bot.get_cog("Builds")
    assert isinstance(builds, Builds)
    for number, name in enumerate(("My-App", "app-deploy", "docs-site")):
        builds.recent.appendleft(_run(name, str(number)))
    _, answer = await ask(fake, "!builds APP")
    assert "**My-App**" in answer["content"] and "**app-deploy**" in answer["content"]
    assert "docs-site" not in answer["content"]
    _, exact = await ask(fake, "!builds docs-site")
    assert "**docs-site**" in exact["content"] and "App" not in exact["content"]
    _, none = await ask(fake, "!builds mobile")
    assert none["content"] == "No finished runs of `mobile` seen since I started."
