"""``chatops run`` exits within 8 s of SIGTERM or SIGINT, whatever its dependencies are doing.

Docker and ACI kill a container 10 s after SIGTERM. BuildKite failing (the
poller in its back-off) once held shutdown for 10.3-10.5 s; neither that, nor a
collector that never answers, nor an export stuck on it may hold it past 8 s.
"""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.sandbox import FakeDiscord
from tests.fakes import buildkite_api
from tests.fakes.buildkite_api import FakeBuildkite
from tests.fakes.otlp import OtlpReceiver
from tests.helpers.chatops_process import TOKEN, child_env, start
from tests.helpers.sandbox_chat import until

SHUTDOWN_BOUND_S = 8.0


@pytest.mark.parametrize(
    ("trouble", "signum"),
    [
        ("buildkite-failing", signal.SIGTERM),
        ("buildkite-failing", signal.SIGINT),
        ("buildkite-failing-collector-hanging", signal.SIGTERM),
        ("export-hanging", signal.SIGTERM),
    ],
    ids=["buildkite-SIGTERM", "buildkite-SIGINT", "buildkite-and-collector", "export"],
)
async def test_run_exits_within_the_bound(
    fake: FakeDiscord, tmp_path: Path, trouble: str, signum: signal.Signals
) -> None:
    collector_hangs = trouble != "buildkite-failing"
    async with (
        FakeBuildkite() as buildkite,
        OtlpReceiver(delay=60 if collector_hangs else 0) as otlp,
    ):
        if trouble == "export-hanging":
            now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            buildkite.builds = [buildkite_api.build(1, now)]
        else:
            buildkite.fail_next = 1_000_000
        process = await start(
            child_env(
                DISCORD_TOKEN=TOKEN,
                DISCORD_API_BASE=fake.api_base,
                OTEL_EXPORTER_OTLP_ENDPOINT=otlp.endpoint,
                BUILDKITE_API_TOKEN=buildkite_api.TOKEN,
                BUILDKITE_ORG="acme",
                BUILDKITE_API_URL=buildkite.url,
                BUILDKITE_STATE_DB=str(tmp_path / "buildkite.db"),
            )
        )
        try:
            await fake.wait_ready(timeout=20)
            if trouble == "export-hanging":
                await until(lambda: otlp.requests > 0, within=20)  # the build's export waits
            else:
                assert await fake.say("!ping", timeout=10) is not None  # its spans wait too
                await until(lambda: len(buildkite.requests) >= 2, within=20)  # in back-off
        finally:
            signalled = time.monotonic()
            process.send_signal(signum)
            _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
            took = time.monotonic() - signalled
    print(f"\n{trouble}: {signum.name} to exit {took:.2f} s")
    assert process.returncode == 0, stderr.decode()
    assert took < SHUTDOWN_BOUND_S
