"""Every start-up mistake is one line on stderr naming the setting, and exit code 2.

Each case is ``chatops run`` (or ``console``) as a process; they run at once.
Discord is a closed local port, so a mistake that went unnoticed would end as
"cannot reach Discord", not as the line expected.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from bot.sandbox import FakeDiscord
from tests.helpers.chatops_process import TOKEN, child_env, closed_port, start

# (verb, setting, bad value, what the one line says after "invalid SETTING: " or "chatops: ")
MISTAKES = [
    ("run", "SCRYFALL_API_URL", "api.scryfall.com", "must be an absolute URL starting with"),
    ("console", "SCRYFALL_API_URL", "not a url", "must be an absolute URL starting with"),
    ("run", "DISCORD_API_BASE", "discord.com/api/v10", "must be an absolute URL starting with"),
    ("run", "DISCORD_GATEWAY_URL", "gateway.discord.gg", "starting with wss:// or ws://"),
    ("run", "CATFACT_API_URL", "ftp://catfact.ninja", "must be an absolute URL starting with"),
    ("run", "OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318", "must be an absolute URL"),
    ("run", "OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/v1/traces", "/v1/traces is"),
    ("run", "CIRCLECI_OTLP_ENDPOINT", "collector:4318", "must be an absolute URL"),
    ("run", "OTEL_EXPORTER_OTLP_HEADERS", "x-honeycomb-team", "entry 1 is not key=value"),
    ("run", "HONEYCOMB_API_URL", "api.honeycomb.io", "must be an absolute URL"),
    ("run", "AZURE_ARM_ENDPOINT", "management.azure.com", "must be an absolute URL"),
    ("run", "CI_ANNOUNCE_CHANNEL_ID", "-5", "greater than 0"),
    ("run", "USER_COMMAND_PER_S", "inf", "finite number"),
    ("run", "BUILDKITE_POLL_INTERVAL_S", "inf", "finite number"),
    ("run", "SHARD_IDS", "0,0", "SHARD_IDS names a shard twice"),
    ("run", "BOT_PREFIX", " ", "must not be blank"),
    ("run", "OTEL_SERVICE_NAME", " ", "must not be blank"),
    ("run", "COMMANDS_FILE", "/nonexistent/commands.toml", "does not exist"),
    ("run", "AZURE_SUBSCRIPTION_ID", "0f0e7c1a", "AZURE_RESOURCE_GROUP is not"),
    ("console", "AZURE_SUBSCRIPTION_ID", "0f0e7c1a", "AZURE_RESOURCE_GROUP is not"),
    ("run", "AZURE_WATCH_INTERVAL_S", "30", "ALERT_CHANNEL_ID is not"),
    ("console", "AZURE_WATCH_INTERVAL_S", "30", "ALERT_CHANNEL_ID is not"),
]


async def test_each_bad_setting_is_one_line_naming_it_and_exit_2() -> None:
    unreachable = f"http://127.0.0.1:{closed_port()}/api/v10"
    runs = [
        one_line_failure(
            child_env(**{"DISCORD_TOKEN": TOKEN, "DISCORD_API_BASE": unreachable, name: value}),
            verb,
        )
        for verb, name, value, _ in MISTAKES
    ]
    lines = await asyncio.gather(*runs)
    for (verb, name, value, says), line in zip(MISTAKES, lines, strict=True):
        case = f"chatops {verb} with {name}={value!r}"
        assert line.startswith("chatops: ") and name in line, (case, line)
        assert says in line, (case, line)
        if name == "OTEL_EXPORTER_OTLP_HEADERS":
            assert value not in line, "the secret is echoed"


async def one_line_failure(env: dict[str, str], *args: str) -> str:
    """Run ``chatops ARGS`` (default ``run``); assert exit 2 and one line; that line."""
    process = await start(env, *args)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    text = stderr.decode()
    assert process.returncode == 2, text
    assert "Traceback" not in text
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.mark.parametrize("setting", ["HEALTH_PORT", "WEBHOOK_PORT"])
async def test_a_port_in_use_is_named_not_reported_as_discord_unreachable(
    fake: FakeDiscord, setting: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = child_env(
            DISCORD_TOKEN=TOKEN,
            DISCORD_API_BASE=fake.api_base,
            HEALTH_PORT=str(closed_port()),
            CIRCLECI_HOOK_SECRET="hook-secret",
        )
        env[setting] = str(port)
        line = await one_line_failure(env)
    assert line == f"chatops: cannot listen on {setting} {port}: address already in use"
