"""``ci step`` attributes (``--attr``, ``$CHATOPS_STEP_ATTRS``) and what ``ci finish`` sends.

Each test runs ``chatops ci`` as a CI job does: one process per step, spans to a
local OTLP receiver.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from telemetry import schema
from telemetry.pipeline import ids
from tests.fakes.otlp import OtlpReceiver
from tests.helpers.chatops_process import run_ci as chatops


def chatops_env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])
    return {"PATH": os.environ["PATH"], "PYTHONPATH": root}


WORKFLOW = "410c427b-40a8-4bb4-9d42-5561f5bce5ba"
JOB = "20e45d7e-e4a7-4aa3-8f92-fd6d9d01da75"


@pytest.fixture
async def otlp() -> AsyncIterator[OtlpReceiver]:
    async with OtlpReceiver() as receiver:
        yield receiver


def circle_env(otlp: OtlpReceiver, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
        "TMPDIR": str(tmp_path),  # the job's first-step time is kept there
        "CIRCLE_WORKFLOW_ID": WORKFLOW,
        "CIRCLE_WORKFLOW_JOB_ID": JOB,
        "CIRCLE_JOB": "build",
        "CIRCLE_BUILD_NUM": "77",
        **extra,
    }


WRITE_ATTRS = (
    "import os; f = open(os.environ['CHATOPS_STEP_ATTRS'], 'a'); "
    "f.write('artifact.size=1048576\\n# a comment\\nratio=0.25\\nnot an attribute\\n"
    "tag=0123\\ncached=true\\n')"
)


async def test_attr_options_and_the_attributes_file_land_on_the_step_span_typed(
    otlp: OtlpReceiver, tmp_path: Path
) -> None:
    env = circle_env(otlp, tmp_path)
    code, _, err = await chatops(
        tmp_path,
        env,
        "step",
        "--attr",
        "build.number=42",
        "--attr",
        "channel=stable",
        "build",
        "--",
        sys.executable,
        "-c",
        WRITE_ATTRS,
    )
    assert code == 0
    assert err.decode().strip() == (
        "chatops: CHATOPS_STEP_ATTRS line 4: not KEY=VALUE with a key of letters, "
        "digits, '.', '_' or '-': 'not an attribute'"
    )
    [span] = await otlp.wait_for(lambda s: s.name == "build")
    attrs = span.attributes
    assert attrs["build.number"] == 42 and attrs["channel"] == "stable"
    assert attrs["artifact.size"] == 1048576 and attrs["ratio"] == 0.25
    assert attrs["tag"] == "0123" and attrs["cached"] is True
    assert attrs[schema.CI_JOB_NUMBER] == 77  # CIRCLE_BUILD_NUM, a number too


async def test_a_command_cannot_overwrite_the_steps_own_result(
    otlp: OtlpReceiver, tmp_path: Path
) -> None:
    script = (
        "import os,sys; open(os.environ['CHATOPS_STEP_ATTRS'],'a')"
        ".write('process.exit.code=0\\ncicd.pipeline.task.run.result=success\\n'); sys.exit(4)"
    )
    env = circle_env(otlp, tmp_path)
    code, _, _ = await chatops(tmp_path, env, "step", "t", "--", sys.executable, "-c", script)
    assert code == 4
    [span] = await otlp.wait_for(lambda s: s.name == "t")
    assert span.attributes[schema.PROCESS_EXIT_CODE] == 4
    assert span.attributes[schema.CICD_TASK_RUN_RESULT] == "failure"


async def test_a_bad_attr_option_is_one_line_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    code, _, err = await chatops(
        tmp_path, {}, "step", "--attr", "no-equals", "s", "--", "touch", str(marker)
    )
    assert code == 2 and err.decode().count("\n") == 1 and "--attr" in err.decode()
    assert not marker.exists()


async def test_secret_looking_attribute_keeps_its_name_not_its_value(
    otlp: OtlpReceiver, tmp_path: Path
) -> None:
    env = circle_env(otlp, tmp_path)
    await chatops(tmp_path, env, "step", "--attr", "deploy.token=tok-999", "d", "--", "true")
    [span] = await otlp.wait_for(lambda s: s.name == "d")
    assert span.attributes["deploy.token"] == "[REDACTED]"


async def test_finish_on_circleci_sends_the_job_span_the_steps_point_at(
    otlp: OtlpReceiver, tmp_path: Path
) -> None:
    env = circle_env(otlp, tmp_path, CIRCLE_PROJECT_REPONAME="app")
    before = time.time_ns()
    assert (await chatops(tmp_path, env, "step", "compile", "--", "true"))[0] == 0
    start = str(int(time.time()) - 120)
    code, _, _ = await chatops(
        tmp_path, env, "finish", "--result", "failure", "--started-at", start
    )
    assert code == 0
    await otlp.wait_for(lambda s: s.name == "app")
    by_name = {s.name: s for s in otlp.spans}
    step, job, root = by_name["compile"], by_name["build"], by_name["app"]
    assert step.parent_span_id == job.span_id == f"{ids.job_span_id(JOB):016x}"
    assert job.parent_span_id == root.span_id == f"{ids.root_span_id(WORKFLOW):016x}"
    assert job.start_ns >= before  # from the job's first step, not the pipeline's start
    assert job.start_ns <= step.start_ns
    assert job.attributes[schema.CICD_TASK_RUN_RESULT] == "failure"
    assert root.start_ns == int(start) * 10**9


async def test_finish_job_sends_only_the_job_span(otlp: OtlpReceiver, tmp_path: Path) -> None:
    env = circle_env(otlp, tmp_path)
    code, _, _ = await chatops(tmp_path, env, "finish", "--job", "--result", "success")
    assert code == 0
    await otlp.wait_for(lambda s: s.name == "build")
    assert [s.name for s in otlp.spans] == ["build"]


async def test_with_the_webhook_finish_sends_nothing_and_prints_the_honeycomb_link(
    otlp: OtlpReceiver, tmp_path: Path
) -> None:
    env = circle_env(
        otlp,
        tmp_path,
        CI_WEBHOOK_SPANS="true",
        HONEYCOMB_TEAM="acme",
        HONEYCOMB_ENVIRONMENT="prod",
    )
    code, out, _ = await chatops(tmp_path, env, "finish", "--result", "success")
    assert code == 0
    trace = WORKFLOW.replace("-", "")
    assert out.decode().startswith(
        f"trace https://ui.honeycomb.io/acme/environments/prod/datasets/ci/trace?trace_id={trace}"
    )
    # One step later, the receiver has still seen nothing from `finish`.
    await chatops(tmp_path, env, "step", "after", "--", "true")
    await otlp.wait_for(lambda s: s.name == "after")
    assert [s.name for s in otlp.spans] == ["after"]


async def test_with_ci_span_store_a_run_is_in_stats_for_service_ci(tmp_path: Path) -> None:
    store = tmp_path / "spans.db"
    env = {
        "CI_SPAN_STORE": str(store),
        "GITHUB_RUN_ID": "4242",
        "GITHUB_WORKFLOW": "deploy",
        "TMPDIR": str(tmp_path),
    }
    assert (await chatops(tmp_path, env, "step", "build", "--", "true"))[0] == 0
    start = str(int(time.time()) - 90)
    code, _, err = await chatops(
        tmp_path, env, "finish", "--result", "failure", "--started-at", start
    )
    assert code == 0, err
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "stats",
        "--service",
        "ci",
        "--since",
        "1h",
        "--format",
        "json",
        env={**chatops_env(), "SPAN_STORE": str(store)},
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    [row] = json.loads(out)
    assert (row["group"], row["count"], row["errors"]) == ("deploy", 1, 1)
    assert row["max_ms"] >= 90_000
