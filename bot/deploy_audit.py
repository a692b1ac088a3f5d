"""``chatops deploy`` in the audit channel: one call around the deploy, kept apart from it.

``bot/deploy.py`` and ``bot/cli/deploy_verbs.py`` change often; the deploy verb only
wraps its call in ``audited``. Without a pipeline's ``TRACEPARENT`` the deploy gets a
root span ``chatops deploy`` here (so the audit line has a trace to name); with one,
the pipeline's trace is named. When the deploy ends, its result is posted to
``AUDIT_CHANNEL_ID`` with the bot's token over Discord's REST API (no gateway), in an
``audit.post`` root span. Posting never fails the deploy: a problem is one line on
stderr.
"""

from __future__ import annotations

import contextlib
import getpass
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import click
import discord
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from bot.config import Settings
from bot.endpoints import use_api_base
from commands.ops.audit import Actor, AuditEntry, AuditLog
from telemetry.tracer import module_tracer

tracer = module_tracer(__name__)
# W3C trace context, as ``bot/deploy.py`` reads ``TRACEPARENT`` (whatever the global one is).
W3C = TraceContextTextMapPropagator()
ROOT_SPAN = "chatops deploy"


@dataclass
class Audited:
    """What the deploy runs with (``env``), and what the audit line will say."""

    env: dict[str, str]
    trace_id: str | None
    span_context: trace.SpanContext | None
    result: str = "failed"


def _pipeline_trace(env: Mapping[str, str]) -> trace.SpanContext | None:
    carrier = {"traceparent": env.get("TRACEPARENT", "")}
    context = trace.get_current_span(W3C.extract(carrier)).get_span_context()
    return context if context.is_valid else None


@asynccontextmanager
async def audited(
    settings: Settings, group: str, image: str, env: Mapping[str, str]
) -> AsyncIterator[Audited]:
    """Run the deploy inside (``env`` carries the trace); post its result when it ends."""
    started, started_s = time.monotonic(), time.time()
    env = dict(env)
    pipeline = _pipeline_trace(env)
    with (
        tracer.start_as_current_span(ROOT_SPAN, context=Context())
        if pipeline is None
        else contextlib.nullcontext(trace.INVALID_SPAN)
    ) as span:
        context = pipeline or span.get_span_context()
        if pipeline is None:
            carrier: dict[str, str] = {}
            W3C.inject(carrier)
            env["TRACEPARENT"] = carrier["traceparent"]
        audit = Audited(env, trace.format_trace_id(context.trace_id), context)
        try:
            yield audit
            audit.result = "ok"
        except Exception as exc:
            audit.result = f"failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            raise
        finally:
            entry = AuditEntry(
                Actor(f"chatops deploy ({env.get('GITHUB_ACTOR') or _user()})"),
                "deploy",
                group,
                audit.result,
                duration_s=time.monotonic() - started,
                trace_id=audit.trace_id,
                started_s=started_s,
                detail=f"image `{image}`",
                span_context=audit.span_context,
            )
            await post_entry(settings, entry)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


async def post_entry(settings: Settings, entry: AuditEntry) -> bool:
    """Post one entry to ``AUDIT_CHANNEL_ID`` from a process without a gateway connection."""
    if settings.audit_channel_id is None or settings.discord_token is None:
        return False
    use_api_base(settings.discord_api_base)
    client = discord.Client(intents=discord.Intents.none())
    try:
        await client.login(settings.discord_token.get_secret_value())
        audit = AuditLog(
            client,
            settings.audit_channel_id,
            per_minute=settings.audit_posts_per_minute,
            links=settings.trace_links,
            dataset=settings.service_name,
        )
        return await audit.post_now([entry])
    except discord.DiscordException as exc:
        click.echo(f"chatops: could not post the deploy to the audit channel: {exc}", err=True)
        return False
    finally:
        await client.close()
