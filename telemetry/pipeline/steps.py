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
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
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

#: The file a step's command may append ``KEY=VALUE`` lines to, to add attributes to
#: its own span (the seed's "artifact size and build number on the build step").
ATTRS_FILE_VAR = "CHATOPS_STEP_ATTRS"
MAX_STEP_ATTRIBUTES = 64
MAX_ATTRS_FILE_BYTES = 64 * 1024
_ATTR_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$")
_INT = re.compile(r"^-?(0|[1-9][0-9]{0,17})$")
_FLOAT = re.compile(r"^-?[0-9]+\.[0-9]+([eE][-+]?[0-9]+)?$")


class BadAttribute(ValueError):
    """A ``KEY=VALUE`` the user gave that is not one (the message says why, in one line)."""


def typed_value(text: str) -> AttributeValue:
    """``12`` and ``-3`` are ints, ``1.5`` a float, ``true``/``false`` booleans; the rest
    strings (``0123`` too: a leading zero is an identifier, not a number)."""
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    if text in ("true", "false"):
        return text == "true"
    return schema.truncate(text, schema.COMMAND_LINE_MAX_CHARS)


def parse_attribute(item: str) -> tuple[str, AttributeValue]:
    """One ``KEY=VALUE``; a secret-looking key keeps its name but not its value."""
    key, eq, value = item.partition("=")
    key = key.strip()
    if not eq or not _ATTR_KEY.match(key):
        raise BadAttribute(
            f"not KEY=VALUE with a key of letters, digits, '.', '_' or '-': {item[:80]!r}"
        )
    if _SECRET_NAME.search(key):
        return key, _REDACTED
    return key, typed_value(value.strip())


def read_attributes_file(path: str) -> tuple[dict[str, AttributeValue], list[str]]:
    """Attributes the command appended to ``$CHATOPS_STEP_ATTRS``, and what was wrong.

    Blank lines and ``#`` comments are skipped; a bad line is reported and skipped,
    never fatal: the command already ran, its result stands.
    """
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_ATTRS_FILE_BYTES + 1)
    except OSError:
        return {}, []
    problems: list[str] = []
    if len(raw) > MAX_ATTRS_FILE_BYTES:
        problems.append(f"{ATTRS_FILE_VAR}: only the first {MAX_ATTRS_FILE_BYTES} bytes read")
        raw = raw[:MAX_ATTRS_FILE_BYTES]
    found: dict[str, AttributeValue] = {}
    for number, line in enumerate(raw.decode("utf-8", "replace").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            key, value = parse_attribute(line)
        except BadAttribute as exc:
            problems.append(f"{ATTRS_FILE_VAR} line {number}: {exc}")
            continue
        found[key] = value
    return found, problems


def _limited(attributes: Mapping[str, AttributeValue]) -> dict[str, AttributeValue]:
    return dict(list(attributes.items())[:MAX_STEP_ATTRIBUTES])


@dataclass(frozen=True)
class CiRun:
    """The pipeline run a step belongs to, as read from the CI system's environment."""

    system: str  # circleci, github, buildkite, or "traceparent"/"local"
    run_key: str  # what the trace id and root span id are derived from
    trace_id: int
    parent_span_id: int | None  # the job span, else the run's root span
    pipeline_name: str | None = None
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)
    root_id: int | None = None  # set when the CI's id scheme is not the hash (circleci-hook)
    job_span_id: int | None = None  # the current job's span (CircleCI, BuildKite), if any

    @property
    def root_span_id(self) -> int:
        return self.root_id if self.root_id is not None else ids.root_span_id(self.run_key)


@dataclass(frozen=True)
class StepResult:
    exit_code: int
    span: PipelineSpan
    error: str | None = None  # why the command did not run, for one stderr line
    problems: tuple[str, ...] = ()  # bad lines in the attributes file, one warning each


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


def run_step(
    run: CiRun,
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    extra: Mapping[str, AttributeValue] | None = None,
) -> StepResult:
    """Run one step as a span whose id the command sees in ``TRACEPARENT``.

    ``extra`` (``--attr``) and whatever the command writes to ``$CHATOPS_STEP_ATTRS``
    go on the span; the step's own facts (exit code, result, command line) win
    over both, so a command cannot make a failed step look passed.
    """
    span_id = RandomIdGenerator().generate_span_id()
    with tempfile.TemporaryDirectory(prefix="chatops-step-") as scratch:
        attrs_path = os.path.join(scratch, "attributes")
        open(attrs_path, "wb").close()
        child_env = {
            **env,
            "TRACEPARENT": ids.traceparent(run.trace_id, span_id),
            ATTRS_FILE_VAR: attrs_path,
        }
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
        written, problems = read_attributes_file(attrs_path)
    attributes: dict[str, AttributeValue] = {
        **run.attributes,
        **_limited({**(extra or {}), **written}),
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
    return StepResult(exit_code=code, span=span, error=error, problems=tuple(problems))


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


def _job_start_file(run: CiRun) -> str | None:
    if run.job_span_id is None:
        return None
    name = f"{run.trace_id:032x}-{run.job_span_id:016x}.start"
    return os.path.join(tempfile.gettempdir(), "chatops-ci", name)


def note_job_start(run: CiRun, start_ns: int) -> None:
    """Remember when this job's first step began (the job span's start at ``ci finish``).

    A CI job's steps share one machine and its temporary directory; the first
    writer wins. Failing to write only costs the job span its exact start.
    """
    path = _job_start_file(run)
    if path is None:
        return
    with contextlib.suppress(OSError):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(str(start_ns))


def job_started_ns(run: CiRun) -> int | None:
    path = _job_start_file(run)
    if path is None:
        return None
    try:
        with open(path) as handle:
            return int(handle.read(32).strip())
    except (OSError, ValueError):
        return None


def job_span(run: CiRun, result: str, start_ns: int, end_ns: int) -> PipelineSpan | None:
    """The current job's span, under the run's root, with the id steps point at.

    For CircleCI without the webhook: otherwise the job span the steps name as
    their parent is never sent. None outside a job.
    """
    if run.job_span_id is None:
        return None
    name = str(run.attributes.get(schema.CI_JOB_NAME) or "job")
    attributes: dict[str, AttributeValue] = {
        **run.attributes,
        schema.CICD_TASK_NAME: name,
        schema.CICD_TASK_RUN_RESULT: result,
    }
    return PipelineSpan(
        name=name,
        trace_id=run.trace_id,
        span_id=run.job_span_id,
        parent_span_id=run.root_span_id,
        start_ns=min(start_ns, end_ns),
        end_ns=end_ns,
        attributes=attributes,
        error=result in {"failure", "error", "timeout"},
    )


def warn(message: str) -> None:
    """One line on stderr, after the command's own output."""
    print(f"chatops: {message}", file=sys.stderr, flush=True)
