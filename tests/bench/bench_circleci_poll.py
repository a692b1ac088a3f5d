"""Requests the CircleCI cancellation poller makes per cycle, against the local fake.

100 pipelines in the look-back, one in ten cancelled: the first cycle asks every
pipeline's workflows and the cancelled ones' jobs; later cycles only page the
pipeline list, since settled pipelines are remembered.

    python -m tests.bench.bench_circleci_poll
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from telemetry.pipeline import ids
from telemetry.pipeline.circleci_api import CircleCIClient
from telemetry.pipeline.circleci_poller import CircleCIPoller
from telemetry.pipeline.export import PipelineSpan
from telemetry.pipeline.seen import SeenStore
from tests.fakes.circleci_api import TOKEN, FakeCircleCI, cancelled_run, passed_run

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PIPELINES = 100


async def main() -> None:
    async with FakeCircleCI() as api:
        for n in range(PIPELINES):
            make = cancelled_run if n % 10 == 0 else passed_run
            api.add(*make("gh/acme/app", n + 1, NOW - timedelta(minutes=10 * n + 5)))

        async def export(spans: list[PipelineSpan]) -> bool:
            return True

        with tempfile.TemporaryDirectory() as scratch:
            store = SeenStore(Path(scratch) / "poll.db")
            async with aiohttp.ClientSession() as session:
                poller = CircleCIPoller(
                    CircleCIClient(session, api.url, TOKEN),
                    store,
                    export,
                    projects=["gh/acme/app"],
                    lookback=timedelta(days=1),
                    circle_ids=ids.CircleIds(),
                    clock=lambda: NOW,
                )
                for cycle in (1, 2, 3):
                    before, started = len(api.requests), time.perf_counter()
                    exported = await poller.poll_once()
                    elapsed_ms = (time.perf_counter() - started) * 1000
                    print(
                        f"cycle {cycle}: {exported} cancelled workflow(s) sent, "
                        f"{len(api.requests) - before} requests, {elapsed_ms:.0f} ms"
                    )
            print(f"rows remembered: {len(store)}")
            store.close()


if __name__ == "__main__":
    asyncio.run(main())
