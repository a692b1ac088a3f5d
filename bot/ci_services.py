"""CI inside the running bot: the CircleCI receiver on the health server, the BuildKite
poller, and (without the webhook) the CircleCI cancellation poller.

All announce finished runs through the bot's ``Builds`` cog. Each is started
only when configured, and all stop with the bot within the time they are given
(the platform kills the process 10 s after SIGTERM): the pollers at once (they
lose nothing, ``telemetry.pipeline.poller``), the receiver after its running
announcements and a flush of its queued spans.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web

from bot.config import Settings
from telemetry.pipeline.events import Notifier

if TYPE_CHECKING:
    from telemetry.pipeline.export import BatchSink
    from telemetry.pipeline.webhook import CircleCIReceiver

log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 2.0


class CiServices:
    """What the bot runs for CI: started in ``serve``, closed at shutdown."""

    def __init__(self, settings: Settings, notifier: Notifier) -> None:
        self.settings = settings
        self.notifier = notifier
        self._receiver: CircleCIReceiver | None = None
        self._sink: BatchSink | None = None
        self._stop = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        self._circleci_poller: asyncio.Task[None] | None = None

    def mount(self, app: web.Application) -> None:
        """Serve ``POST /hooks/circleci`` beside the health routes when a secret is set
        (and ``CI_INTAKE`` is not false: one process of a sharded bot receives them)."""
        if self.settings.circleci_hook_secret is None:
            return
        if not self.settings.ci_intake:
            log.info("CI_INTAKE=false: the CircleCI webhook receiver runs elsewhere")
            return
        # Imported only when configured: pipeline export brings the OTLP exporter's stack.
        from bot.ci_env import environment
        from bot.ci_wiring import circleci_receiver
        from telemetry.pipeline.webhook import circleci_routes

        self._receiver, self._sink = circleci_receiver(
            self.settings, environment(), notifier=self.notifier
        )
        app.add_routes(circleci_routes(self._receiver))

    def start(self) -> None:
        """Follow BuildKite builds when a token, an org and an OTLP endpoint are set;
        CircleCI cancellations when a CircleCI token and projects are set (no webhook)."""
        from bot.ci_wiring import buildkite_configured, buildkite_poller

        self._start_circleci()
        if not buildkite_configured(self.settings):
            return
        if not self.settings.ci_intake:
            log.info("CI_INTAKE=false: the BuildKite poller runs elsewhere")
            return
        # A pipeline seen for the first time is backfilled (BUILDKITE_BACKFILL, 60 days);
        # after that its cursor decides. Backfilled builds are not announced.
        since = datetime.now(UTC) - self.settings.buildkite_backfill
        self._poller = asyncio.create_task(
            buildkite_poller(self.settings, since, [], notifier=self.notifier, stop=self._stop),
            name="buildkite-poller",
        )
        self._poller.add_done_callback(_log_failure)

    def _start_circleci(self) -> None:
        if self.settings.circleci_token is None:
            return
        from bot.ci_wiring import circleci_poller, circleci_poller_off

        reason = circleci_poller_off(self.settings)
        if reason is None and not self.settings.ci_intake:
            reason = "CI_INTAKE=false: it runs elsewhere"
        if reason is not None:
            log.info("CircleCI cancellation poller not started: %s", reason)
            return
        self._circleci_poller = asyncio.create_task(
            circleci_poller(self.settings, [], notifier=self.notifier, stop=self._stop),
            name="circleci-poller",
        )
        self._circleci_poller.add_done_callback(_log_failure)

    async def close(self, within_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the poller, finish announcements, flush the receiver's spans: within ``within_s``.

        Each step gets what the steps before it left; the sink's flush runs in a
        thread that gives up at that bound too, so nothing outlives the call.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s

        def left() -> float:
            return max(deadline - loop.time(), 0.05)

        self._stop.set()
        for poller in (self._poller, self._circleci_poller):
            if poller is None:
                continue
            # The poller cancels its own cycle once stopped; this is the bound.
            done, _ = await asyncio.wait({poller}, timeout=left())
            if not done:
                poller.cancel()
                await asyncio.wait({poller}, timeout=left())
        if self._receiver is not None:
            await self._receiver.drain(left())
            self._receiver.close()
        if self._sink is not None:
            await asyncio.to_thread(self._sink.close, left())


def _log_failure(task: asyncio.Task[None]) -> None:
    """One line when a poller ends on its own: a refused token, a bad project slug."""
    if not task.cancelled() and task.exception() is not None:
        what = "CircleCI" if task.get_name() == "circleci-poller" else "BuildKite"
        log.error("the %s poller stopped: %s", what, task.exception())
