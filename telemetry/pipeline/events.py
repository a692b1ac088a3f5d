"""What a finished workflow or build announces, without knowing who listens.

The receiver and the poller call a ``Notifier`` for every finished run they
export; the Discord side (issue 8 item 3) implements one that posts an embed.
Keeping the interface here lets ``telemetry`` stay free of Discord code.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.context import Context

from telemetry import schema
from telemetry.tracer import module_tracer

log = logging.getLogger(__name__)
tracer = module_tracer(__name__)


@dataclass(frozen=True)
class PipelineEvent:
    """One finished pipeline run, in the words an announcement needs."""

    system: str  # "circleci", "buildkite", ...
    pipeline: str
    result: str  # cicd.pipeline.result value: success, failure, error, cancellation, ...
    branch: str | None
    commit: str | None
    duration_s: float | None
    url: str | None
    trace_id: str  # 32 hex digits, as a backend shows it
    run_id: str
    start_s: float | None = None  # when the run started (epoch seconds): narrows a trace link


Notifier = Callable[[PipelineEvent], Awaitable[None]]


async def notify_safely(notifier: Notifier | None, event: PipelineEvent) -> None:
    """Call ``notifier``; a failing listener is logged and never breaks export."""
    if notifier is None:
        return
    try:
        await asyncio.wait_for(notifier(event), timeout=10.0)
    except Exception:
        log.exception("pipeline notifier failed for %s run %s", event.system, event.run_id)


@contextmanager
def announcement_span(event: PipelineEvent) -> Iterator[trace.Span]:
    """A root span for posting ``event`` to chat, pointing at the pipeline's own trace.

    The pipeline's trace lives in the CI service's dataset; its id is recorded so
    the two can be joined by a query, not by a parent link.
    """
    attributes = {
        schema.CI_SYSTEM: event.system,
        schema.CICD_PIPELINE_NAME: event.pipeline,
        schema.CICD_PIPELINE_RESULT: event.result,
        schema.CICD_PIPELINE_RUN_ID: event.run_id,
        schema.CI_TRACE_ID: event.trace_id,
    }
    with tracer.start_as_current_span(
        "ci.announce", context=Context(), attributes=attributes
    ) as span:
        yield span
