"""``chatops ci step`` / ``ci finish`` as CI runs them: a separate process per step."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from telemetry import schema
from telemetry.pipeline import ids
from tests.fakes.otlp import OtlpReceiver

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = "5f3c8a1e-9d2b-4c1a-8e7f-0b1c2d3e4f50"
JOB = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"


@pytest.fixture
async def otlp() -> AsyncIterator[OtlpReceiver]:
    async with OtlpReceiver() as receiver:
        yield receiver


async def chatops(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[int, bytes, bytes]:
    full_env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), **env}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "ci",
        *args,
        env=full_env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out, err


SCRIPT = (
    "import os,sys; print('out'); print('err', file=sys.stderr); "
    "print(os.environ['TRACEPARENT'], flush=True); "
    "sys.stdout.buffer.write(b'\\x00\\xff'); sys.exit(3)"
)


async def test_step_passes_output_and_exit_code_through_and_sends_one_span(
    otlp: OtlpReceiver, tmp_path: Path
) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
        "CIRCLE_WORKFLOW_ID": WORKFLOW,
        "CIRCLE_WORKFLOW_JOB_ID": JOB,
        "CIRCLE_BRANCH": "main",
    }
    code, out, err = await chatops(
        tmp_path, env, "step", "unit tests", "--", sys.executable, "-c", SCRIPT
    )
    assert code == 3
    lines = out.split(b"\n")
    assert lines[0] == b"out" and lines[2] == b"\x00\xff"
    assert err == b"err\n"
    [span] = await otlp.wait_for(lambda s: s.name == "unit tests")
    assert lines[1].decode() == f"00-{span.trace_id}-{span.span_id}-01"
    assert span.trace_id == WORKFLOW.replace("-", "")
    assert span.parent_span_id == f"{ids.job_span_id(JOB):016x}"  # the webhook's job span
    assert span.attributes[schema.PROCESS_EXIT_CODE] == 3
    assert span.attributes[schema.CICD_TASK_RUN_RESULT] == "failure"
    assert span.attributes[schema.VCS_REF_HEAD_NAME] == "main"
    assert span.status_code == 2
    assert span.resource["service.name"] == "ci"
    assert 0 < span.end_ns - span.start_ns < 30 * 10**9


async def test_steps_and_finish_of_a_github_run_form_one_trace(
    otlp: OtlpReceiver, tmp_path: Path
) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
        "GITHUB_RUN_ID": "9001",
        "GITHUB_RUN_ATTEMPT": "2",
        "GITHUB_WORKFLOW": "ci",
        "GITHUB_SHA": "abc123",
    }
    start = str(int(time.time()) - 60)
    assert (await chatops(tmp_path, env, "step", "lint", "--", "true"))[0] == 0
    assert (await chatops(tmp_path, env, "step", "test", "--", "true"))[0] == 0
    code, out, _ = await chatops(
        tmp_path, env, "finish", "--result", "success", "--started-at", start
    )
    assert code == 0
    await otlp.wait_for(lambda s: s.name == "ci")
    by_name = {s.name: s for s in otlp.spans}
    root = by_name["ci"]
    key = ids.github_run_key("9001", "2")
    assert root.trace_id == f"{ids.trace_id_for_run(key):032x}" == out.decode().split()[-1]
    assert root.span_id == f"{ids.root_span_id(key):016x}"
    assert root.attributes[schema.CICD_PIPELINE_RESULT] == "success"
    assert root.attributes[schema.VCS_REF_HEAD_REVISION] == "abc123"
    assert root.start_ns == int(start) * 10**9
    for name in ("lint", "test"):
        assert by_name[name].trace_id == root.trace_id
        assert by_name[name].parent_span_id == root.span_id


async def test_nested_step_joins_the_enclosing_step(otlp: OtlpReceiver, tmp_path: Path) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint, "GITHUB_RUN_ID": "7"}
    inner = f"{sys.executable} -m bot ci step inner -- true"
    code, _, _ = await chatops(tmp_path, env, "step", "outer", "--", "sh", "-c", inner)
    assert code == 0
    await otlp.wait_for(lambda s: s.name == "outer")
    by_name = {s.name: s for s in otlp.spans}
    assert by_name["inner"].parent_span_id == by_name["outer"].span_id


async def test_dead_collector_warns_once_and_keeps_the_exit_code(tmp_path: Path) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
        "GITHUB_RUN_ID": "1",
        "CI_EXPORT_TIMEOUT_S": "2",
    }
    started = time.monotonic()
    code, out, err = await chatops(tmp_path, env, "step", "s", "--", "sh", "-c", "echo hi; exit 5")
    assert code == 5 and out == b"hi\n"
    assert err.decode().count("\n") == 1 and "could not send" in err.decode()
    assert time.monotonic() - started < 6


async def test_secrets_stay_off_the_command_line_attribute(
    otlp: OtlpReceiver, tmp_path: Path
) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
        "GITHUB_RUN_ID": "1",
        "DEPLOY_TOKEN": "tok-123456",
    }
    await chatops(
        tmp_path,
        env,
        "step",
        "deploy",
        "--",
        "echo",
        "--password",
        "hunter22",
        "--api-key=abc",
        "Bearer tok-123456",
    )
    [span] = await otlp.wait_for(lambda s: s.name == "deploy")
    line = span.attributes[schema.PROCESS_COMMAND_LINE]
    assert "hunter22" not in line and "abc" not in line and "tok-123456" not in line
    assert line.startswith("echo --password")


async def test_missing_command_exits_127_with_one_line(tmp_path: Path) -> None:
    code, _, err = await chatops(tmp_path, {}, "step", "x", "--", "no-such-command-here")
    assert code == 127
    assert err.decode().strip() == "chatops: command not found: no-such-command-here"


async def test_finish_rejects_a_bad_start_time_in_one_line(tmp_path: Path) -> None:
    code, _, err = await chatops(
        tmp_path, {}, "finish", "--result", "success", "--started-at", "yesterday"
    )
    assert code == 2
    assert err.decode().count("\n") == 1
