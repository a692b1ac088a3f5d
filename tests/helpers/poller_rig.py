"""What the CI pollers' tests share: a fake API, a local OTLP receiver, and a poller's
recorded sleeps and announcements (the BuildKite and CircleCI poller tests subclass it)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Generic, TypeVar

from telemetry.pipeline.events import PipelineEvent
from telemetry.pipeline.export import (
    PipelineSpan,
    export_now,
    otlp_exporter,
    pipeline_resource,
    to_readable,
)
from tests.fakes.otlp import OtlpReceiver

Api = TypeVar("Api")


class PollerRig(Generic[Api]):
    def __init__(self, api: Api, otlp: OtlpReceiver, tmp: Path) -> None:
        self.api, self.otlp, self.tmp = api, otlp, tmp
        self.sleeps: list[float] = []
        self.announced: list[PipelineEvent] = []

    def export(
        self, service: str, endpoint: str | None = None
    ) -> Callable[[list[PipelineSpan]], Awaitable[bool]]:
        """The poller's export: to the receiver (or ``endpoint``) as ``service``."""
        exporter = otlp_exporter(endpoint or self.otlp.endpoint, {}, 2.0)
        resource = pipeline_resource(service)

        async def export(spans: list[PipelineSpan]) -> bool:
            readable = [to_readable(s, resource) for s in spans]
            return await asyncio.to_thread(export_now, exporter, readable, 3.0)

        return export

    async def sleep(self, seconds: float) -> None:
        """The client's back-off sleep: recorded, not waited."""
        self.sleeps.append(seconds)

    async def notifier(self, event: PipelineEvent) -> None:
        self.announced.append(event)
