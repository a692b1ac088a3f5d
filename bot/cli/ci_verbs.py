"""``chatops ci``: pipeline step tracing, the CircleCI receiver, the BuildKite and CircleCI
pollers."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
from opentelemetry.sdk.trace.export import SpanExportResult

from bot.ci_env import detect_run, environment
from bot.cli.exits import Failure, settings
from bot.config import Settings
from telemetry.pipeline.export import (
    export_now,
    otlp_exporter,
    pipeline_resource,
    quiet_exporter_logs,
    to_readable,
)
from telemetry.pipeline.ids import CircleIds
from telemetry.pipeline.steps import (
    RESULTS,
    BadAttribute,
    CiRun,
    finish_span,
    job_span,
    job_started_ns,
    note_job_start,
    parse_attribute,
    run_step,
    warn,
)
from telemetry.trace_links import trace_reference

if TYPE_CHECKING:
    from telemetry.pipeline.webhook import CircleCIReceiver


@click.group()
def ci() -> None:
    """Trace CI/CD pipelines: steps, CircleCI webhooks, BuildKite builds."""


def _parse_time(value: str) -> int:
    """Unix seconds (``date +%s``) or ISO 8601, to nanoseconds."""
    try:
        return int(float(value) * 1_000_000_000)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Failure(f"--started-at: not Unix seconds or ISO 8601: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000_000)


def _send(spans: list[object], what: str) -> None:
    """Send within CI_EXPORT_TIMEOUT_S; a failure is one warning, never a failed build."""
    config = settings()
    endpoint = config.otlp_traces_url
    if config.ci_span_store is not None and spans:
        _store(config.ci_span_store, config, spans)
    if not endpoint:
        return
    quiet_exporter_logs()
    exporter = otlp_exporter(
        endpoint, config.otlp_headers, config.ci_export_timeout_s, as_given=True
    )
    resource = pipeline_resource(config.ci_service_name)
    readable = [to_readable(span, resource) for span in spans]  # type: ignore[arg-type]
    if not export_now(exporter, readable, config.ci_export_timeout_s):
        warn(f"could not send the {what} span to {endpoint} (the command's result stands)")


def _run(env: dict[str, str]) -> CiRun:
    return detect_run(env, CircleIds(settings().circleci_id_scheme))


def _store(path: Path, config: Settings, spans: list[object]) -> None:
    """``CI_SPAN_STORE``: the spans in a local span store too (``chatops stats --service ci``).

    Imported only when set: a step on a CI machine pays nothing for it.
    """
    from telemetry.store import SqliteSpanExporter

    store = SqliteSpanExporter(
        path, max_age=config.span_store_max_age, max_bytes=config.span_store_max_bytes
    )
    resource = pipeline_resource(config.ci_service_name)
    try:
        written = store.export([to_readable(span, resource) for span in spans])  # type: ignore[arg-type]
    finally:
        store.shutdown()
    if written is not SpanExportResult.SUCCESS:
        warn(f"could not write the spans to CI_SPAN_STORE {path}")


@ci.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--attr",
    "attrs",
    multiple=True,
    metavar="KEY=VALUE",
    help="An attribute for the step's span (repeatable); 12 and 1.5 stay numbers.",
)
@click.argument("name")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def step(attrs: tuple[str, ...], name: str, command: tuple[str, ...]) -> None:
    """Run COMMAND as the span NAME, passing its output and exit code through.

    \b
    chatops ci step --attr build.number=42 build -- make
    The command sees TRACEPARENT, so otel-cli or any OTel SDK inside it joins the trace,
    and CHATOPS_STEP_ATTRS, a file it may append KEY=VALUE lines to for its span.
    """
    try:
        extra = dict(parse_attribute(item) for item in attrs)
    except BadAttribute as exc:
        raise Failure(f"--attr: {exc}") from None
    env = environment()
    run = _run(env)
    note_job_start(run, time.time_ns())
    result = run_step(run, name, command, env, extra)
    if result.error:
        warn(result.error)
    for problem in result.problems:
        warn(problem)
    _send([result.span], "step")
    sys.exit(result.exit_code)


@ci.command()
@click.option(
    "--result",
    type=click.Choice(RESULTS),
    required=True,
    help="The pipeline result (OTel cicd.pipeline.result).",
)
@click.option(
    "--started-at",
    envvar="CI_PIPELINE_STARTED_AT",
    help="When the pipeline began: Unix seconds or ISO 8601 (default: now).",
)
@click.option(
    "--job",
    "job_only",
    is_flag=True,
    help="Send only this job's span (CircleCI, a job other than the last).",
)
def finish(result: str, started_at: str | None, job_only: bool) -> None:
    """Send the run's root span with the pipeline result (and, on CircleCI, the job's).

    \b
    chatops ci finish --result success --started-at "$START"
    Its span id is fixed by the run id: a second finish sends the same span again.
    On CircleCI without the webhook (CI_WEBHOOK_SPANS unset) it also sends the job span
    the steps point at; with the webhook it sends nothing and prints the link.
    """
    config = settings()
    end_ns = time.time_ns()
    start_ns = _parse_time(started_at) if started_at else end_ns
    run = _run(environment())
    spans: list[object] = []
    webhook_sends = run.system == "circleci" and config.ci_webhook_spans
    if not webhook_sends:
        if run.system == "circleci":
            job = job_span(run, result, job_started_ns(run) or start_ns, end_ns)
            spans.extend([job] if job else [])
        if not job_only:
            spans.append(finish_span(run, result, start_ns, end_ns))
    _send(spans, "pipeline")
    reference = trace_reference(
        config.trace_links, run.trace_id, config.ci_service_name, start_s=start_ns / 1e9
    )
    click.echo(f"trace {reference}")


@ci.command()
@click.option("--port", type=int, default=None, help="Port (default: HEALTH_PORT).")
def serve(port: int | None) -> None:
    """Serve the CircleCI webhook receiver standalone (POST /hooks/circleci).

    \b
    CIRCLECI_HOOK_SECRET=... CIRCLECI_OTLP_ENDPOINT=https://api.honeycomb.io \\
    CIRCLECI_OTLP_X_HONEYCOMB_TEAM=... chatops ci serve
    """
    import asyncio

    from bot.ci_wiring import circleci_receiver
    from bot.logs import configure_logging

    config = settings()
    if config.circleci_hook_secret is None:
        raise Failure("CIRCLECI_HOOK_SECRET is not set (the receiver refuses unsigned hooks)")
    if not config.circleci_otlp_endpoint:
        raise Failure("CIRCLECI_OTLP_ENDPOINT is not set (nowhere to send the spans)")
    configure_logging()
    receiver, sink = circleci_receiver(config, environment())
    try:
        asyncio.run(_serve_receiver(receiver, config.health_port if port is None else port))
    except OSError as exc:
        raise Failure(f"cannot listen: {exc}") from None
    finally:
        if sink is not None:
            sink.close()


async def _serve_receiver(receiver: CircleCIReceiver, port: int) -> None:
    """Serve until SIGTERM/SIGINT; /healthz stays up for the platform's probes."""
    import asyncio
    import signal

    from bot.health import health_app, start_health_server
    from telemetry.pipeline.webhook import circleci_routes

    app = health_app(lambda: True)
    app.add_routes(circleci_routes(receiver))
    runner = await start_health_server(app, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    click.echo(f"chatops: CircleCI receiver on port {port}", err=True)
    try:
        await stop.wait()
    finally:
        # Within the platform's 10 s with the sink's flush (at most 5 s) after it.
        try:
            await asyncio.wait_for(runner.cleanup(), 1.0)
        except TimeoutError:
            click.echo("chatops: open connections cut at shutdown", err=True)
        await receiver.drain(1.0)
        receiver.close()


@ci.command("buildkite-export")
@click.option(
    "--since",
    default=None,
    help="Backfill start when a pipeline has no cursor yet: ISO 8601, or 24h / 7d ago "
    "(default: BUILDKITE_BACKFILL, 60 days).",
)
@click.option("--pipeline", "pipelines", multiple=True, help="Pipeline slug (repeatable).")
@click.option("--once", is_flag=True, help="One pass (backfill), then exit.")
def buildkite_export(since: str | None, pipelines: tuple[str, ...], once: bool) -> None:
    """Export BuildKite builds as traces, backfilling then following new ones.

    \b
    BUILDKITE_API_TOKEN=... BUILDKITE_ORG=acme chatops ci buildkite-export --since 30d
    """
    import asyncio

    from bot.ci_wiring import buildkite_poller
    from bot.logs import configure_logging
    from telemetry.pipeline.buildkite import BuildkiteError

    config = settings()
    if config.buildkite_api_token is None or not config.buildkite_org:
        raise Failure("BUILDKITE_API_TOKEN and BUILDKITE_ORG must be set")
    if not config.otlp_traces_url:
        raise Failure("OTEL_EXPORTER_OTLP_ENDPOINT (or HONEYCOMB_API_KEY) is not set")
    start = _since(since) if since else datetime.now(UTC) - config.buildkite_backfill
    configure_logging()
    try:
        asyncio.run(buildkite_poller(config, start, list(pipelines), once=once))
    except BuildkiteError as exc:
        raise Failure(str(exc)) from None


@ci.command("circleci-export")
@click.option(
    "--project", "projects", multiple=True, help="Project slug, gh/org/repo (repeatable)."
)
@click.option("--once", is_flag=True, help="One pass, then exit (a cron job).")
def circleci_export(projects: tuple[str, ...], once: bool) -> None:
    """Send the spans of cancelled CircleCI workflows, which `ci finish` cannot send.

    \b
    CIRCLECI_TOKEN=... CIRCLECI_PROJECTS=gh/acme/app chatops ci circleci-export
    Only without the webhook: with it, the webhook reports cancellations itself.
    """
    import asyncio

    from bot.ci_wiring import circleci_poller, circleci_poller_off
    from bot.config import circleci_project_slug
    from bot.logs import configure_logging
    from telemetry.pipeline.circleci_api import CircleCIError

    config = settings()
    for project in projects:
        try:
            circleci_project_slug(project)
        except ValueError as exc:
            raise Failure(f"--project: {exc}") from None
    if projects:
        config = config.model_copy(update={"circleci_projects": list(projects)})
    reason = circleci_poller_off(config)
    if reason is not None:
        raise Failure(f"not polling CircleCI: {reason}")
    configure_logging()
    try:
        asyncio.run(circleci_poller(config, list(projects), once=once))
    except CircleCIError as exc:
        raise Failure(str(exc)) from None


def _since(value: str) -> datetime:
    """``7d``, ``24h``, ``90m`` ago, or an ISO 8601 moment."""
    from datetime import timedelta

    units = {"d": "days", "h": "hours", "m": "minutes"}
    if value[-1:] in units and value[:-1].isdigit():
        return datetime.now(UTC) - timedelta(**{units[value[-1]]: int(value[:-1])})
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Failure(f"--since: not a duration (7d, 24h) or ISO 8601: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
