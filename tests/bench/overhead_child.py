"""One process of the overhead benchmark: a bot variant, or the OTLP receiver.

``bench_overhead.py`` starts each of these in its own process so CPU time, RSS
and start-up belong to that variant alone and tracer-provider globals never mix.
Nothing is imported at module level beyond the standard library: the plain bot's
process must not pay for chatops or OpenTelemetry imports it does not use.

    python overhead_child.py bot VARIANT API_BASE GATEWAY_URL [--otlp URL] [--store PATH]
    python overhead_child.py otlp

A bot prints ``ready`` on stdout when discord.py dispatches ``on_ready`` and runs
until SIGTERM (then closes the gateway and flushes spans, as ``chatops run``
does). The receiver prints its port, then ``spans N`` when stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import re
import signal
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TOKEN = "bench-token"
GUILD_READY_TIMEOUT_S = 0.1  # the sandbox's value (bot/harness.py); discord.py's default is 2 s
MAX_CACHED_MESSAGES = 200  # as ChatOpsBot, so the RSS difference is not a cache-size choice
DICE = re.compile(r"^(?P<count>\d{1,3})?d(?P<sides>\d{1,4})$", re.IGNORECASE)


def _report(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# -- (a) the plain discord.py bot ----------------------------------------------


def plain_bot(api_base: str, gateway_url: str) -> Any:
    """``commands.Bot`` with ping/about/roll answering as chatops does, and nothing else."""
    import math
    import platform
    import time

    import discord
    import yarl
    from discord.ext import commands
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

    Route.BASE = api_base.rstrip("/")
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.dm_messages = True
    intents.message_content = True
    bot = commands.Bot(
        command_prefix="!",
        intents=intents,
        allowed_mentions=discord.AllowedMentions.none(),
        max_messages=MAX_CACHED_MESSAGES,
        chunk_guilds_at_startup=False,
        member_cache_flags=discord.MemberCacheFlags.none(),
        guild_ready_timeout=GUILD_READY_TIMEOUT_S,
    )
    started_at = time.monotonic()
    rng = random.Random()

    @bot.command()
    async def ping(ctx: commands.Context[Any]) -> None:
        started = time.perf_counter()
        await ctx.typing()
        rest = time.perf_counter() - started
        gateway = f"{bot.latency * 1000:.0f} ms" if math.isfinite(bot.latency) else "n/a"
        await ctx.reply(f"Pong! gateway {gateway}, REST {rest * 1000:.0f} ms")

    @bot.command()
    async def about(ctx: commands.Context[Any]) -> None:
        up = int(time.monotonic() - started_at)
        await ctx.reply(
            f"plain-bot, up {up}s; Python {platform.python_version()}, "
            f"discord.py {discord.__version__}"
        )

    @bot.command()
    async def roll(ctx: commands.Context[Any], dice: str) -> None:
        match = DICE.match(dice.strip())
        if match is None:
            await ctx.reply(f"{dice[:40]!r} is not dice like 2d6 or d20.")
            return
        count, sides = int(match["count"] or 1), int(match["sides"])
        rolls = [rng.randint(1, sides) for _ in range(count)]
        shown = " + ".join(map(str, rolls[:20]))
        await ctx.reply(f"\U0001f3b2 {count}d{sides}: {shown} = **{sum(rolls)}**")

    return bot


# -- (b)-(f) chatops-bot -------------------------------------------------------


def chatops_settings(api_base: str, otlp: str | None, store: str | None) -> Any:
    from bot.config import load_settings

    return load_settings(
        _env_file=None,
        discord_api_base=api_base,
        span_store=store or "off",
        otel_exporter_otlp_endpoint=otlp,
        honeycomb_api_key=None,
        health_port=0,
        flags_file=REPO / "flags.json",
        commands_file=REPO / "tests" / "bench" / "no-commands.toml",
        # The stream sends hundreds of commands per second per user: lift the
        # per-user rate limit (8 per 10 s by default) so no reply is a cooldown.
        user_command_rate=1_000_000,
        user_command_per_s=1.0,
    )


async def run_bot(args: argparse.Namespace) -> None:
    provider = None
    if args.variant == "plain":
        bot = plain_bot(args.api_base, args.gateway_url)
    else:
        from bot.client import create_bot
        from bot.logs import configure_logging
        from bot.runner import start_tracing

        settings = chatops_settings(args.api_base, args.otlp, args.store)
        configure_logging()  # as ``chatops run``: INFO to stderr (the parent discards it)
        provider = start_tracing(settings)
        bot = create_bot(settings, guild_ready_timeout=GUILD_READY_TIMEOUT_S)

    async def on_ready() -> None:
        _report("ready")

    bot.add_listener(on_ready, "on_ready")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    _profile_on_signals(loop)
    _flush_on_signal(loop, provider)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    task = asyncio.create_task(bot.start(TOKEN))
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    await bot.close()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    if provider is not None:
        from telemetry.setup import shutdown

        _report(f"flushed {shutdown(provider)}")


def _flush_on_signal(loop: asyncio.AbstractEventLoop, provider: Any) -> None:
    """SIGHUP: flush the spans waiting, then print ``flushed`` (after the warm-up and at
    the end of each measured phase, so each is charged its own spans). A variant that
    must never flush (``BENCH_NEVER_FLUSH``) only prints."""
    import os

    never = bool(os.environ.get("BENCH_NEVER_FLUSH"))

    def flush() -> None:
        if provider is not None and not never:
            provider.force_flush()
        _report("flushed")

    loop.add_signal_handler(signal.SIGHUP, lambda: loop.run_in_executor(None, flush))


def _profile_on_signals(loop: asyncio.AbstractEventLoop) -> None:
    """With ``BENCH_CALLS_OUT`` set: cProfile the event loop's thread from SIGUSR1 to SIGUSR2.

    Call counts are exact (the times are inflated by the profiler); the parent
    sends the signals around the measured phases (``bench_overhead.py --calls``).
    """
    import os

    out = os.environ.get("BENCH_CALLS_OUT")
    if not out:
        return
    import cProfile

    profilers = [cProfile.Profile()]

    def start() -> None:
        profilers[0] = cProfile.Profile()  # each phase counted on its own
        profilers[0].enable()

    def stop() -> None:
        profilers[0].disable()
        profilers[0].dump_stats(out + ".tmp")
        os.replace(out + ".tmp", out)

    loop.add_signal_handler(signal.SIGUSR1, start)
    loop.add_signal_handler(signal.SIGUSR2, stop)


# -- the OTLP receiver ----------------------------------------------------------


async def run_receiver() -> None:
    """A collector stand-in that keeps each request's body and decodes them all at the end.

    Decoding as requests arrive would compete with the bot for the machine's
    two CPUs while it is measured, a cost the plain bot's run never has.
    """
    from aiohttp import web
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    bodies: list[bytes] = []
    answer = ExportTraceServiceResponse().SerializeToString()

    async def traces(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        return web.Response(body=answer, content_type="application/x-protobuf")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    _report(str(site._server.sockets[0].getsockname()[1]))  # type: ignore[union-attr]
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
    await runner.cleanup()
    count = 0
    for body in bodies:
        request = ExportTraceServiceRequest.FromString(body)
        count += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
    _report(f"spans {count}")


def main() -> None:
    sys.path.insert(0, str(REPO))
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="role", required=True)
    bot = sub.add_parser("bot")
    bot.add_argument("variant")
    bot.add_argument("api_base")
    bot.add_argument("gateway_url")
    bot.add_argument("--otlp")
    bot.add_argument("--store")
    sub.add_parser("otlp")
    args = parser.parse_args()
    if args.role == "otlp":
        asyncio.run(run_receiver())
    else:
        asyncio.run(run_bot(args))


if __name__ == "__main__":
    main()
