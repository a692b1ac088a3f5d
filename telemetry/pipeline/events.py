"""What a finished workflow or build announces, without knowing who listens.

The receiver and the poller call a ``Notifier`` for every finished run they
export; the Discord side (issue 8 item 3) implements one that posts an embed.
Keeping the interface here lets ``telemetry`` stay free of Discord code.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


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


Notifier = Callable[[PipelineEvent], Awaitable[None]]


async def notify_safely(notifier: Notifier | None, event: PipelineEvent) -> None:
    """Call ``notifier``; a failing listener is logged and never breaks export."""
    if notifier is None:
        return
    try:
        await asyncio.wait_for(notifier(event), timeout=10.0)
    except Exception:
        log.exception("pipeline notifier failed for %s run %s", event.system, event.run_id)
