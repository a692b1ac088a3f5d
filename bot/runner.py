"""Running the bot as a service: telemetry, health server, signals, clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from bot.ci_services import CiServices
from bot.client import create_bot
from bot.config import Settings, telemetry_config
from bot.health import open_ports
from telemetry.tracer import LeanTracerProvider

log = logging.getLogger(__name__)


async def serve(settings: Settings, token: str) -> None:
    """Run until SIGTERM/SIGINT or a fatal gateway error; always close the gateway."""
    bot = create_bot(settings)
    ci = CiServices(settings, bot.announce_pipeline)
    try:
        servers = await open_ports(settings, lambda: bot.gateway_up, ci.mount)
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
        if stop.is_set():
            log.info("signal received: closing the gateway")
        stop_task.cancel()
        for server in servers:
            await server.cleanup()
        await ci.close()
        await bot.close()
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

    provider = build_provider(telemetry_config(settings))
    install(provider)
    return provider
