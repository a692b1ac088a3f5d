"""``chatops deploy``'s command line: az's ``-g/-n/--subscription``, and progress per phase."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from rich.console import Console

from bot.cli import deploy_progress
from bot.cli.deploy_progress import LiveProgress
from tests.fakes.arm import FakeArm

# The fake ARM, the ready probe and the CLI runner of the deploy tests.
from tests.integration.test_deploy import (  # noqa: F401
    IMAGE,
    RG,
    Ready,
    certificate,
    run_deploy,
    world,
)

PHASES = ["read", "update", "running", "ready"]


def test_az_style_resource_group_name_and_subscription_are_accepted(
    run_deploy: Callable[..., Any],  # noqa: F811
    world: tuple[FakeArm, Ready],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    arm, _ = world
    monkeypatch.delenv("AZURE_SUBSCRIPTION_ID")
    monkeypatch.delenv("AZURE_RESOURCE_GROUP")
    result = run_deploy(
        "-g", RG, "-n", "bot", "--subscription", arm.subscription, "--image", IMAGE,
        "--timeout", "20",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].startswith(f"deployed {IMAGE} to {RG}/bot in ")
    container = arm.groups[(RG, "bot")]["properties"]["containers"][0]["properties"]
    assert container["image"] == IMAGE
    (put,) = arm.calls("PUT", "/containerGroups/bot")
    assert f"/subscriptions/{arm.subscription}/resourceGroups/{RG}/" in put.path


def test_long_az_option_names_work_too(
    run_deploy: Callable[..., Any],  # noqa: F811
    world: tuple[FakeArm, Ready],  # noqa: F811
) -> None:
    result = run_deploy(
        "--resource-group", RG, "--name", "bot", "--image", IMAGE, "--timeout", "20"
    )
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give the container group: --group [RG/]NAME or -n NAME [-g RG]"),
        (["--group", "bot", "-n", "bot"], "give the container group"),
        (["--group", "bot", "-g", RG], "-g/--resource-group goes with -n/--name"),
    ],
)
def test_a_container_group_named_twice_or_not_at_all_is_one_line(
    run_deploy: Callable[..., Any],  # noqa: F811
    args: list[str],
    message: str,
) -> None:
    result = run_deploy(*args, "--image", IMAGE)
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"chatops: {message}")


def test_piped_output_is_one_plain_line_per_phase(
    run_deploy: Callable[..., Any],  # noqa: F811
    world: tuple[FakeArm, Ready],  # noqa: F811
) -> None:
    result = run_deploy("--group", "bot", "--image", IMAGE, "--timeout", "20")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert [line.split()[0] for line in lines[:-1]] == PHASES
    assert "\x1b" not in result.output  # no cursor movement or colour in a log


def test_in_a_terminal_each_phase_is_shown_live_as_it_runs(
    run_deploy: Callable[..., Any],  # noqa: F811
    world: tuple[FakeArm, Ready],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    screen = io.StringIO()
    started: list[str] = []

    class Recording(LiveProgress):
        def phase(self, name: str) -> None:
            started.append(name)
            super().phase(name)

    terminal = Console(file=screen, force_terminal=True, width=100)
    monkeypatch.setattr(deploy_progress, "choose", lambda: Recording(terminal))
    result = run_deploy("--group", "bot", "--image", IMAGE, "--timeout", "20")
    assert result.exit_code == 0, result.output
    assert started == PHASES
    shown = screen.getvalue()
    for phase in PHASES:
        assert f"{phase} " in shown  # the finished phase's line, kept above the status line
    assert "0:00:0" in shown  # the running phase's elapsed time


def test_live_progress_replaces_the_running_phase_and_clears_at_the_end() -> None:
    screen = io.StringIO()
    live = LiveProgress(Console(file=screen, force_terminal=True, width=80))
    live.phase("update")
    assert [task.description for task in live.progress.tasks] == ["update"]
    live.line("update     1.00 s")
    live.phase("running")
    assert [task.description for task in live.progress.tasks] == ["running"]
    live.close()
    assert live.progress.tasks == []
    assert "update     1.00 s" in screen.getvalue()
