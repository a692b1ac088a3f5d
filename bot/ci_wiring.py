"""Pipeline tracing wired from ``Settings`` and the CI system's environment.

The CI system's own variables are read in ``bot/ci_env.py``.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import aiohttp
from opentelemetry.sdk.trace.export import SpanExporter

from bot.ci_env import circleci_otlp_headers
from bot.config import Settings
from telemetry.pipeline.buildkite import BuildkiteClient
from telemetry.pipeline.circleci_api import CircleCIClient
from telemetry.pipeline.circleci_poller import CircleCIPoller
from telemetry.pipeline.cursor import CursorStore
from telemetry.pipeline.deliveries import DeliveryStore
from telemetry.pipeline.events import Notifier
from telemetry.pipeline.export import (
    BatchSink,
    PipelineSpan,
    TeeExporter,
    export_awaitable,
    otlp_exporter,
    pipeline_resource,
    to_readable,
)
from telemetry.pipeline.ids import CircleIds
from telemetry.pipeline.poller import BuildkitePoller
from telemetry.pipeline.seen import SeenStore
from telemetry.pipeline.webhook import CircleCIReceiver

EXPORT_TIMEOUT_S = 10.0


def with_store_copy(settings: Settings, exporter: SpanExporter) -> SpanExporter:
    """``exporter``, plus a copy into the local span store when one is configured.

    So pipelines and jobs the bot receives are in ``chatops stats --service NAME``
    as well as in the collector (``SPAN_STORE=off``: the collector only).
    """
    path = settings.span_store_path
    if path is None:
        return exporter
    from telemetry.store import SqliteSpanExporter

    store = SqliteSpanExporter(
        path, max_age=settings.span_store_max_age, max_bytes=settings.span_store_max_bytes
    )
    return TeeExporter(exporter, [store])


def circleci_receiver(
    settings: Settings, environ: Mapping[str, str], notifier: Notifier | None = None
) -> tuple[CircleCIReceiver, BatchSink | None]:
    """The receiver the health app mounts (and ``ci serve`` serves), with its span sink.

    Without ``CIRCLECI_HOOK_SECRET`` or ``CIRCLECI_OTLP_ENDPOINT`` the routes still
    mount and answer 503, logging why once: an unverified receiver is worse than none.
    At shutdown close the sink (``sink.close()``, to flush queued spans) and the
    receiver (``receiver.close()``, its delivery store in ``CIRCLECI_STATE_DB``).
    """
    secret = settings.circleci_hook_secret
    endpoint = settings.circleci_otlp_endpoint
    sink = None
    if endpoint:
        exporter = otlp_exporter(endpoint, circleci_otlp_headers(environ), EXPORT_TIMEOUT_S)
        sink = BatchSink(
            with_store_copy(settings, exporter), pipeline_resource(settings.circleci_hook_service)
        )
    receiver = CircleCIReceiver(
        secret.get_secret_value() if secret else None,
        sink,
        notifier=notifier,
        deliveries=DeliveryStore.open(settings.circleci_state_db),
        max_age_s=settings.circleci_hook_max_age_s,
        id_scheme=settings.circleci_id_scheme,
    )
    return receiver, sink


async def buildkite_poller(
    settings: Settings,
    since: datetime,
    pipelines: list[str],
    *,
    once: bool = False,
    notifier: Notifier | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the poller until ``stop`` is set (or one pass); spans go to the bot's OTLP endpoint.

    Without ``stop`` (the standalone verb) SIGTERM/SIGINT stop it; inside the bot,
    the bot's own shutdown sets ``stop``.
    """
    token = settings.buildkite_api_token
    endpoint = settings.otlp_traces_url
    if token is None or not settings.buildkite_org or not endpoint:
        raise ValueError("BuildKite poller needs a token, an org and an OTLP endpoint")
    exporter = with_store_copy(
        settings, otlp_exporter(endpoint, settings.otlp_headers, EXPORT_TIMEOUT_S, as_given=True)
    )
    resource = pipeline_resource(settings.buildkite_service_name)

    async def export(spans: list[PipelineSpan]) -> bool:
        readable = [to_readable(span, resource) for span in spans]
        return await export_awaitable(exporter, readable, EXPORT_TIMEOUT_S + 1)

    store = CursorStore(settings.buildkite_state_db)
    timeout = aiohttp.ClientTimeout(total=30)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            client = BuildkiteClient(
                session,
                settings.buildkite_api_url,
                token.get_secret_value(),
                settings.buildkite_org,
            )
            poller = BuildkitePoller(
                client,
                store,
                export,
                org=settings.buildkite_org,
                pipelines=pipelines or settings.buildkite_pipelines,
                since=since,
                notifier=notifier,
                announce_after=datetime.now(UTC)
                - timedelta(seconds=settings.buildkite_poll_interval_s),
            )
            if stop is not None:
                await _run_until(poller, stop, settings.buildkite_poll_interval_s, once=once)
                return
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, poller.stop.set)
            try:
                await poller.run(settings.buildkite_poll_interval_s, once=once)
            finally:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(signum)
    finally:
        store.close()


async def _run_until(
    poller: BuildkitePoller | CircleCIPoller, stop: asyncio.Event, interval_s: float, *, once: bool
) -> None:
    async def relay() -> None:
        await stop.wait()
        poller.stop.set()

    relay_task = asyncio.create_task(relay())
    try:
        await poller.run(interval_s, once=once)
    finally:
        relay_task.cancel()


def buildkite_configured(settings: Settings) -> bool:
    """The bot polls BuildKite itself when a token, an org and an OTLP endpoint are set."""
    return bool(
        settings.buildkite_api_token and settings.buildkite_org and settings.otlp_traces_url
    )


def circleci_poller_off(settings: Settings) -> str | None:
    """Why the CircleCI cancellation poller does not run, or None when it should.

    With the webhook (a hook secret on this bot, or ``CI_WEBHOOK_SPANS=true``), the
    webhook already sends cancelled workflows and their jobs: the poller would
    only duplicate them.
    """
    if settings.circleci_token is None or not settings.circleci_projects:
        return "CIRCLECI_TOKEN and CIRCLECI_PROJECTS are not both set"
    if not settings.otlp_traces_url:
        return "no OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT or HONEYCOMB_API_KEY)"
    if settings.circleci_hook_secret is not None or settings.ci_webhook_spans:
        return (
            "the CircleCI webhook is configured (CIRCLECI_HOOK_SECRET or CI_WEBHOOK_SPANS) "
            "and reports cancellations itself"
        )
    return None


async def circleci_poller(
    settings: Settings,
    projects: list[str],
    *,
    once: bool = False,
    notifier: Notifier | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Export cancelled CircleCI workflows until ``stop`` is set (or one pass).

    Spans go where ``ci finish`` sends them (the bot's OTLP endpoint, ``service.name``
    ``CI_SERVICE_NAME``), with ids under ``CIRCLECI_ID_SCHEME``, so they meet the
    steps. Raises ``CircleCIAuthError`` when the token is refused. Without ``stop``
    (the standalone verb) SIGTERM/SIGINT stop it.
    """
    token = settings.circleci_token
    endpoint = settings.otlp_traces_url
    if token is None or not endpoint:
        raise ValueError("CircleCI poller needs CIRCLECI_TOKEN and an OTLP endpoint")
    exporter = with_store_copy(
        settings, otlp_exporter(endpoint, settings.otlp_headers, EXPORT_TIMEOUT_S, as_given=True)
    )
    resource = pipeline_resource(settings.ci_service_name)

    async def export(spans: list[PipelineSpan]) -> bool:
        readable = [to_readable(span, resource) for span in spans]
        return await export_awaitable(exporter, readable, EXPORT_TIMEOUT_S + 1)

    store = SeenStore.open(settings.circleci_poll_state_db)
    timeout = aiohttp.ClientTimeout(total=30)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            client = CircleCIClient(session, settings.circleci_api_url, token.get_secret_value())
            poller = CircleCIPoller(
                client,
                store,
                export,
                projects=projects or settings.circleci_projects,
                lookback=settings.circleci_poll_lookback,
                circle_ids=CircleIds(settings.circleci_id_scheme),
                notifier=notifier,
                announce_after=datetime.now(UTC)
                - timedelta(seconds=settings.circleci_poll_interval_s),
            )
            interval = settings.circleci_poll_interval_s
            if stop is not None:
                await _run_until(poller, stop, interval, once=once)
                return
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, poller.stop.set)
            try:
                await poller.run(interval, once=once)
            finally:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(signum)
    finally:
        store.close()
