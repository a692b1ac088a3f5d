"""``chatops builds``: recent BuildKite builds, filtered like ``!builds``, as a table or JSON."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner, Result

from bot.cli.main import cli
from tests.fakes.buildkite_api import TOKEN, FakeBuildkite, build


def _ago(minutes: int) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


async def _builds(api: FakeBuildkite, *args: str, token: str = TOKEN) -> Result:
    env = {
        "BUILDKITE_API_TOKEN": token,
        "BUILDKITE_ORG": "acme",
        "BUILDKITE_API_URL": api.url,
        "BUILDKITE_PIPELINES": None,
    }
    # The CLI runs its own event loop; the fake serves from this one meanwhile.
    return await asyncio.to_thread(CliRunner().invoke, cli, ["builds", *args], env=env)


async def test_builds_json_lists_matching_pipelines_newest_first() -> None:
    async with FakeBuildkite() as api:
        api.builds += [
            build(1, _ago(30), pipeline="my-app"),
            build(2, _ago(10), pipeline="app-deploy", state="failed"),
            build(3, _ago(5), pipeline="docs-site"),
            build(4, _ago(60 * 48), pipeline="my-app"),  # outside the default 24 h
        ]
        result = await _builds(api, "APP", "--format", "json")
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)
    assert [(run["pipeline"], run["result"]) for run in runs] == [
        ("App-Deploy", "failure"),
        ("My-App", "success"),
    ]
    assert runs[0]["url"] == "https://buildkite.com/acme/app-deploy/builds/2"


async def test_builds_table_shows_each_run() -> None:
    async with FakeBuildkite() as api:
        api.builds.append(build(7, _ago(3), pipeline="my-app"))
        result = await _builds(api)
    assert result.exit_code == 0, result.output
    assert "My-App" in result.stdout and "success" in result.stdout
    assert "https://buildkite.com/acme/my-app/builds/7" in result.stdout  # not cut when piped


async def test_builds_without_configuration_or_with_a_bad_token_is_one_line() -> None:
    async with FakeBuildkite() as api:
        refused = await _builds(api, token="wrong")
        unset = await asyncio.to_thread(
            CliRunner().invoke, cli, ["builds"], env={"BUILDKITE_API_TOKEN": None}
        )
    assert refused.exit_code == 2
    assert refused.output.strip().startswith("chatops: BuildKite answered 401")
    assert "wrong" not in refused.output
    assert unset.exit_code == 2
    assert unset.output.strip() == "chatops: BUILDKITE_API_TOKEN and BUILDKITE_ORG must be set"
