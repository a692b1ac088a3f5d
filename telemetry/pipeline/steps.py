"""``chatops ci step`` and ``ci finish``: our own buildevents, on the OTel SDK.

A step runs its command with inherited stdin, stdout and stderr (nothing is
captured or re-encoded, so output and interleaving are exactly the command's),
and returns the command's exit code unchanged. Only after the command exits is
one span sent, with a bounded wait: a dead collector costs at most
``timeout_s`` and one warning, never the build.

Steps of one run join one trace because the trace id is derived from the CI
run id (``ids``); the step's parent is the job span the webhook or poller makes
for the same job, else the run's root span that ``ci finish`` sends.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType

from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.util.types import AttributeValue

from telemetry import schema
from telemetry.pipeline import ids
from telemetry.pipeline.export import PipelineSpan

EXIT_NOT_FOUND = 127
EXIT_NOT_EXECUTABLE = 126
RESULTS = ("success", "failure", "error", "timeout", "cancellation", "skip")
_SECRET_NAME = re.compile(r"(token|secret|passw|key|auth|credential|cookie)", re.IGNORECASE)
_REDACTED = "[REDACTED]"


@dataclass(frozen=True)
class CiRun:
    """The pipeline run a step belongs to, as read from the CI system's environment."""

    system: str  # circleci, github, buildkite, or "traceparent"/"local"
    run_key: str  # what the trace id and root span id are derived from
    trace_id: int
    parent_span_id: int | None  # the job span, else the run's root span
    pipeline_name: str | None = None
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)

    @property
    def root_span_id(self) -> int:
        return ids.root_span_id(self.run_key)


@dataclass(frozen=True)
class StepResult:
    exit_code: int
    span: PipelineSpan
    error: str | None = None  # why the command did not run, for one stderr line


def redact_command(argv: Sequence[str], env: Mapping[str, str]) -> str:
    """The command line for the span, without secrets.

    Values of secret-looking environment variables are masked wherever they
    appear, as are the values of secret-looking ``--flag value`` / ``--flag=value``
    options: a build command often carries a token, and a span is not the place.
    """
    secrets = sorted(
        (v for k, v in env.items() if _SECRET_NAME.search(k) and len(v) >= 4),
        key=len,
        reverse=True,
    )
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(_REDACTED)
            hide_next = False
            continue
        name, eq, _value = arg.partition("=")
        if arg.startswith("-") and _SECRET_NAME.search(name):
            if eq:
                out.append(f"{name}={_REDACTED}")
            else:
                out.append(arg)
                hide_next = True
            continue
        for secret in secrets:
            arg = arg.replace(secret, _REDACTED)
        out.append(arg)
    return schema.truncate(shlex.join(out), schema.COMMAND_LINE_MAX_CHARS)


def _exit_code(returncode: int) -> int:
    """A signal death (-N) becomes 128+N, as a shell reports it."""
    return 128 - returncode if returncode < 0 else returncode


def _run_child(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Run ``argv`` with inherited stdio; SIGTERM/SIGINT reach the child, we wait for it."""
    child = subprocess.Popen(list(argv), env=dict(env))

    def _forward(signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    previous = {s: signal.signal(s, _forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_step(run: CiRun, name: str, argv: Sequence[str], env: Mapping[str, str]) -> StepResult:
    """Run one step as a span whose id the command sees in ``TRACEPARENT``."""
    span_id = RandomIdGenerator().generate_span_id()
    child_env = {**env, "TRACEPARENT": ids.traceparent(run.trace_id, span_id)}
    child_env.pop("TRACESTATE", None)
    start_ns = time.time_ns()
    error: str | None = None
    try:
        code = _exit_code(_run_child(argv, child_env))
    except FileNotFoundError:
        code, error = EXIT_NOT_FOUND, f"command not found: {argv[0]}"
    except PermissionError:
        code, error = EXIT_NOT_EXECUTABLE, f"command not executable: {argv[0]}"
    end_ns = time.time_ns()
    attributes: dict[str, AttributeValue] = {
        **run.attributes,
        schema.CICD_TASK_NAME: name,
        schema.CICD_TASK_RUN_RESULT: "success" if code == 0 else "failure",
        schema.PROCESS_EXIT_CODE: code,
        schema.PROCESS_COMMAND_LINE: redact_command(argv, env),
    }
    if error:
        attributes[schema.CICD_TASK_RUN_RESULT] = "error"
        attributes[schema.ERROR_MESSAGE] = error
    span = PipelineSpan(
        name=name,
        trace_id=run.trace_id,
        span_id=span_id,
        parent_span_id=run.parent_span_id,
        start_ns=start_ns,
        end_ns=end_ns,
        attributes=attributes,
        error=code != 0,
    )
    return StepResult(exit_code=code, span=span, error=error)


def finish_span(run: CiRun, result: str, start_ns: int, end_ns: int) -> PipelineSpan:
    """The run's root span: fixed id, so a repeated ``ci finish`` never makes a second root."""
    attributes: dict[str, AttributeValue] = {
        **run.attributes,
        schema.CICD_PIPELINE_RESULT: result,
    }
    return PipelineSpan(
        name=run.pipeline_name or "pipeline",
        trace_id=run.trace_id,
        span_id=run.root_span_id,
        parent_span_id=None,
        start_ns=min(start_ns, end_ns),
        end_ns=end_ns,
        attributes=attributes,
        error=result in {"failure", "error", "timeout"},
    )


def warn(message: str) -> None:
    """One line on stderr, after the command's own output."""
    print(f"chatops: {message}", file=sys.stderr, flush=True)
