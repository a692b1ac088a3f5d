"""Running the bot as a service: telemetry, health server, signals, clean shutdown.

Shutdown has a budget: Docker and ACI kill the process 10 s after SIGTERM, and
what has not been flushed by then is lost. From the signal (or a fatal gateway
error) every step, the health server, the CI services, the gateway and the final
span flush, takes its time from one ``ShutdownBudget``, each also capped on its
own so that one stuck dependency cannot use up the others' share.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable

from aiohttp import web

from bot.alert_hooks import honeycomb_hook
from bot.ci_services import CiServices
from bot.client import create_bot
from bot.config import Settings, telemetry_config
from bot.health import open_ports
from telemetry.tracer import LeanTracerProvider

log = logging.getLogger(__name__)

SHUTDOWN_BUDGET_S = 7.0  # the platform's 10 s, less a margin for process exit
HEALTH_STOP_S = 1.0
CI_STOP_S = 2.0
GATEWAY_STOP_S = 1.5


class ShutdownBudget:
    """The time left from the start of shutdown until ``SHUTDOWN_BUDGET_S`` has passed."""

    def __init__(self, total_s: float = SHUTDOWN_BUDGET_S) -> None:
        self.total_s = total_s
        self._deadline: float | None = None

    def begin(self) -> None:
        """Start counting (once: the first signal or failure starts the clock)."""
        if self._deadline is None:
            self._deadline = time.monotonic() + self.total_s

    def left(self, cap: float) -> float:
        """What a step may take: ``cap``, or less if the budget is running out."""
        if self._deadline is None:
            return cap
        return max(min(cap, self._deadline - time.monotonic()), 0.1)


async def _bounded(step: Awaitable[None], timeout_s: float, what: str) -> None:
    try:
        await asyncio.wait_for(step, timeout_s)
    except TimeoutError:
        log.warning("%s did not close within %.1fs; exiting anyway", what, timeout_s)


async def serve(settings: Settings, token: str, budget: ShutdownBudget | None = None) -> None:
    """Run until SIGTERM/SIGINT or a fatal gateway error; always close the gateway.

    ``budget`` is started when shutdown begins; the caller's final span flush
    takes what is left of it.
    """
    budget = budget or ShutdownBudget()
    bot = create_bot(settings)
    ci = CiServices(settings, bot.announce_pipeline)
    alert_hook = honeycomb_hook(settings, bot.announce_alert)

    def mount(app: web.Application) -> None:
        ci.mount(app)
        if alert_hook is not None:
            app.add_routes(alert_hook.routes())

    try:
        servers = await open_ports(settings, lambda: bot.gateway_up, mount)
    except BaseException:
        await ci.close()
        raise
    ci.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    bot_task = asyncio.create_task(bot.start(token), name="bot")
    stop_task = asyncio.create_task(stop.wait(), name="stop")
    try:
        await asyncio.wait({bot_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        budget.begin()
        if stop.is_set():
            log.info("signal received: closing the gateway")
        stop_task.cancel()
        for server in servers:
            await _bounded(server.cleanup(), budget.left(HEALTH_STOP_S), "the health server")
        await ci.close(budget.left(CI_STOP_S))
        if alert_hook is not None:
            await alert_hook.close(budget.left(CI_STOP_S))
        await _bounded(bot.close(), budget.left(GATEWAY_STOP_S), "the gateway")
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    if bot_task.done():
        bot_task.result()
    else:
        bot_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await bot_task


def start_tracing(settings: Settings) -> LeanTracerProvider:
    from telemetry.setup import build_provider, install

    config = telemetry_config(settings)
    provider = build_provider(config)
    install(provider, config.http_semconv)
    return provider
