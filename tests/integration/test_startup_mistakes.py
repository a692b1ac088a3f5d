"""Every start-up mistake is one line on stderr naming the setting, and exit code 2."""

from __future__ import annotations

import asyncio
import socket

import pytest

from bot.sandbox import FakeDiscord
from tests.helpers.chatops_process import TOKEN, child_env, closed_port, start


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
