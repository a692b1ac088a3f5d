"""The tracing backend failing never reaches users: replies stay fast, shutdown stays bounded."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from bot.sandbox import FakeDiscord
from tests.fakes.otlp import OtlpReceiver
from tests.helpers.chatops_process import TOKEN, child_env, closed_port, start

MESSAGES = 20


@asynccontextmanager
async def failing_endpoint(mode: str) -> AsyncIterator[str]:
    if mode == "refused":
        yield f"http://127.0.0.1:{closed_port()}"
        return
    receiver = OtlpReceiver(
        status={"500": 500, "429": 429}.get(mode, 200), delay=60.0 if mode == "hang" else 0.0
    )
    async with receiver:
        yield receiver.endpoint


@pytest.mark.parametrize("mode", ["refused", "hang", "500", "429"])
async def test_replies_are_unaffected_and_shutdown_is_bounded_when_otlp_fails(
    fake: FakeDiscord, mode: str
) -> None:
    async with failing_endpoint(mode) as endpoint:
        process = await start(
            child_env(
                DISCORD_TOKEN=TOKEN,
                DISCORD_API_BASE=fake.api_base,
                OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
                # one user sends all 20: each is to be answered, not throttled
                USER_COMMAND_RATE=str(MESSAGES),
            )
        )
        try:
            await fake.wait_ready(timeout=20)
            slowest = 0.0
            for _ in range(MESSAGES):
                sent = time.monotonic()
                answer = await fake.say("!about", timeout=5)
                assert answer is not None
                slowest = max(slowest, time.monotonic() - sent)
                await asyncio.sleep(0.05)
        finally:
            stopped = time.monotonic()
            process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
        took = time.monotonic() - stopped
    log = stderr.decode()
    assert process.returncode == 0, log
    assert slowest < 1.0, f"slowest reply {slowest:.2f}s"
    # The exporter's own timeout is 10 s; shutdown gives up after 5 s.
    assert took < 8.0, f"shutdown took {took:.1f}s"
    assert "Queue full" not in log
    assert len([line for line in log.splitlines() if "export" in line.lower()]) <= 3, log
