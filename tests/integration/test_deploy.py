"""``chatops deploy`` against the fake ARM over TLS (and a fake ``/readyz``), through the CLI."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

import pytest
from aiohttp import web
from click.testing import CliRunner
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from rich.console import Console

from bot.azure_wiring import AzureOptions
from bot.cli import deploy_progress
from bot.cli.deploy_progress import LiveProgress
from bot.cli.deploy_verbs import DeployHooks
from bot.cli.main import cli
from telemetry import schema
from tests.fakes.arm import FakeArm, StaticCredential
from tests.fakes.tls import SelfSignedCertificate, make_certificate

RG = "chatops-rg"
IMAGE = "chatops.azurecr.io/chatops-bot:2.0.0"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
T = TypeVar("T")


class Background:
    """An event loop in a thread, so the fakes serve while the CLI runs ``asyncio.run``."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(10)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Ready:
    """``/readyz``: 503 for the first ``not_ready`` probes, then 200."""

    def __init__(self) -> None:
        self.not_ready = 2
        self.probes = 0
        self.port = 0
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/readyz", self.readyz)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self.runner.addresses[0][1])

    async def readyz(self, request: web.Request) -> web.Response:
        self.probes += 1
        return web.Response(status=503 if self.probes <= self.not_ready else 200)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> SelfSignedCertificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def world(certificate: SelfSignedCertificate) -> Iterator[tuple[FakeArm, Ready]]:
    background = Background()
    arm = FakeArm(certificate, operation_s=0.2)
    ready = Ready()
    background.run(arm.__aenter__())
    background.run(ready.start())
    arm.add_group(
        RG, "bot", image="chatops.azurecr.io/chatops-bot:1.0.0", ip="127.0.0.1", port=ready.port,
        env={"HEALTH_PORT": "8080"}, secure_env={"DISCORD_TOKEN": "old-secret"},
    )  # fmt: skip
    yield arm, ready
    background.run(arm.__aexit__())
    assert ready.runner is not None
    background.run(ready.runner.cleanup())
    background.stop()


@pytest.fixture
def run_deploy(
    world: tuple[FakeArm, Ready],
    certificate: SelfSignedCertificate,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., Any]:
    arm, _ = world
    for key, value in {
        "AZURE_SUBSCRIPTION_ID": arm.subscription,
        "AZURE_RESOURCE_GROUP": RG,
        "AZURE_ARM_ENDPOINT": arm.url,
        "AZURE_POLL_INTERVAL_S": "0.05",
        "AZURE_RETRY_TOTAL": "0",
        "DISCORD_TOKEN": "new-secret",
        "SPAN_STORE": "off",
    }.items():
        monkeypatch.setenv(key, value)
    hooks = DeployHooks(
        azure=AzureOptions(
            credential=StaticCredential(),
            transport={"connection_verify": str(certificate.cert_path)},
        ),
        install_tracing=False,
    )

    def run(*args: str) -> Any:
        started = time.monotonic()
        result = CliRunner().invoke(cli, ["deploy", *args], obj=hooks)
        result.seconds = time.monotonic() - started
        return result

    return run


def test_deploy_updates_the_image_waits_until_running_and_ready_and_times_each_phase(
    run_deploy: Callable[..., Any], world: tuple[FakeArm, Ready], spans: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    arm, ready = world
    monkeypatch.setenv("TRACEPARENT", f"00-{TRACE_ID}-00f067aa0ba902b7-01")
    result = run_deploy("--group", "bot", "--image", IMAGE, "--timeout", "20")
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"deployed {IMAGE} to bot in ")
    for phase in ("read", "update", "running", "ready", "record"):
        assert f"{phase} " in last
    print(f"\ndeploy against the fake ARM: {result.seconds:.2f} s wall; {last}")

    container = arm.groups[(RG, "bot")]["properties"]["containers"][0]["properties"]
    assert container["image"] == IMAGE
    assert container["instanceView"]["currentState"]["state"] == "Running"
    # The secure variable was re-sent from the deploy's environment, not blanked.
    assert arm.secure_values[(RG, "bot", "bot", "DISCORD_TOKEN")] == "new-secret"
    (put,) = arm.calls("PUT", "/containerGroups/bot")
    sent = {
        v["name"]: v
        for v in put.json["properties"]["containers"][0]["properties"]["environmentVariables"]
    }
    assert sent["HEALTH_PORT"] == {"name": "HEALTH_PORT", "value": "8080"}
    assert sent["DISCORD_TOKEN"] == {"name": "DISCORD_TOKEN", "secureValue": "new-secret"}
    assert ready.probes == 3

    finished = spans.get_finished_spans()
    (root,) = [s for s in finished if s.name == schema.DEPLOY_SPAN]
    assert format(root.context.trace_id, "032x") == TRACE_ID  # joined the pipeline's trace
    assert root.attributes[schema.DEPLOY_RESULT] == "success"
    assert root.attributes[schema.DEPLOY_PREVIOUS_IMAGE] == "chatops.azurecr.io/chatops-bot:1.0.0"
    phases = [s for s in finished if s.parent and s.parent.span_id == root.context.span_id]
    assert [s.name for s in phases] == [
        "deploy.read",
        "deploy.update",
        "deploy.running",
        "deploy.ready",
        "deploy.record",
    ]
    # The image is recorded where the template reads it (docs/azure.md, "Image drift").
    assert arm.tags[RG] == {"chatops-bot-image": IMAGE}
    (update,) = [s for s in phases if s.name == "deploy.update"]
    (put_span,) = [s for s in finished if s.parent and s.parent.span_id == update.context.span_id]
    assert put_span.name == "azure.containerinstance.create_or_update"
    assert (
        put_span.attributes[schema.AZURE_OPERATION]
        == "Microsoft.ContainerInstance/containerGroups/write"
    )
    assert "new-secret" not in str([s.attributes for s in finished])


def test_a_missing_secure_value_refuses_before_changing_anything(
    run_deploy: Callable[..., Any], world: tuple[FakeArm, Ready], monkeypatch: pytest.MonkeyPatch
) -> None:
    arm, _ = world
    monkeypatch.delenv("DISCORD_TOKEN")
    result = run_deploy("--group", "bot", "--image", IMAGE)
    assert result.exit_code == 2
    assert "DISCORD_TOKEN must be set here" in result.output
    assert len(result.output.strip().splitlines()) == 2  # the read phase, then one error line
    assert arm.calls("PUT", "/containerGroups/bot") == []


def test_an_image_azure_cannot_pull_fails_in_one_line(
    run_deploy: Callable[..., Any], world: tuple[FakeArm, Ready]
) -> None:
    arm, _ = world
    arm.unpullable_images.add(IMAGE)
    result = run_deploy("--group", "bot", "--image", IMAGE)
    assert result.exit_code == 2
    assert (
        result.output.strip()
        .splitlines()[-1]
        .startswith("chatops: deploy failed: update: Azure reported InaccessibleImage:")
    )


def test_a_crashing_container_fails_when_the_timeout_runs_out(
    run_deploy: Callable[..., Any], world: tuple[FakeArm, Ready]
) -> None:
    arm, _ = world
    arm.crashing_images.add(IMAGE)
    result = run_deploy("--group", "bot", "--image", IMAGE, "--timeout", "1.5")
    assert result.exit_code == 2
    assert "running: container bot is Waiting (CrashLoopBackOff" in result.output
    assert result.seconds < 5


def test_an_unknown_group_and_missing_configuration_are_one_line(
    run_deploy: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_deploy("--group", "nope", "--image", IMAGE)
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"chatops: deploy failed: read: No container group `nope` in resource group `{RG}`."
    )
    monkeypatch.delenv("AZURE_SUBSCRIPTION_ID")
    result = run_deploy("--group", "bot", "--image", IMAGE)
    assert result.exit_code == 2
    assert result.output.strip() == "chatops: deploy failed: AZURE_SUBSCRIPTION_ID is not set"


def test_a_group_that_never_gets_ready_fails_with_the_last_answer(
    run_deploy: Callable[..., Any], world: tuple[FakeArm, Ready]
) -> None:
    _, ready = world
    ready.not_ready = 10_000
    result = run_deploy("--group", "bot", "--image", IMAGE, "--timeout", "1.5")
    assert result.exit_code == 2
    assert "ready: http://127.0.0.1:" in result.output and "answered HTTP 503" in result.output


PREVIOUS = "chatops.azurecr.io/chatops-bot:1.0.0"


def _deploy_span(spans: InMemorySpanExporter) -> Any:
    (root,) = [s for s in spans.get_finished_spans() if s.name == schema.DEPLOY_SPAN]
    return root


@pytest.mark.parametrize("fault", ["crashing", "unpullable"])
def test_an_image_that_never_gets_healthy_is_rolled_back_to_the_previous_one(
    run_deploy: Callable[..., Any],
    world: tuple[FakeArm, Ready],
    spans: InMemorySpanExporter,
    fault: str,
) -> None:
    arm, _ = world
    (arm.crashing_images if fault == "crashing" else arm.unpullable_images).add(IMAGE)
    result = run_deploy("--group", "bot", "--image", IMAGE, "--timeout", "1.5")
    assert result.exit_code == 2
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("chatops: deploy failed: ")
    assert last.endswith(f"; rolled back to {PREVIOUS}")
    container = arm.groups[(RG, "bot")]["properties"]["containers"][0]["properties"]
    assert container["image"] == PREVIOUS
    assert container["instanceView"]["currentState"]["state"] == "Running"
    assert len(arm.calls("PUT", "/containerGroups/bot")) == 2
    assert arm.secure_values[(RG, "bot", "bot", "DISCORD_TOKEN")] == "new-secret"
    root = _deploy_span(spans)
    assert root.attributes[schema.DEPLOY_RESULT] == "rolled_back"
    phases = [
        s.name
        for s in spans.get_finished_spans()
        if s.parent and s.parent.span_id == root.context.span_id
    ]
    assert phases[-1] == "deploy.rollback"


def test_no_rollback_leaves_the_failed_image_in_place_and_says_so(
    run_deploy: Callable[..., Any], world: tuple[FakeArm, Ready], spans: InMemorySpanExporter
) -> None:
    arm, _ = world
    arm.crashing_images.add(IMAGE)
    result = run_deploy("--group", "bot", "--image", IMAGE, "--timeout", "1.5", "--no-rollback")
    assert result.exit_code == 2
    assert result.output.strip().endswith(f"; {IMAGE} left in place (--no-rollback)")
    container = arm.groups[(RG, "bot")]["properties"]["containers"][0]["properties"]
    assert container["image"] == IMAGE
    assert len(arm.calls("PUT", "/containerGroups/bot")) == 1
    assert _deploy_span(spans).attributes[schema.DEPLOY_RESULT] == "failure"


def test_a_rollback_that_fails_too_is_reported(
    run_deploy: Callable[..., Any], world: tuple[FakeArm, Ready], spans: InMemorySpanExporter
) -> None:
    arm, _ = world
    arm.crashing_images.update({IMAGE, PREVIOUS})
    result = run_deploy("--group", "bot", "--image", IMAGE, "--timeout", "1.5")
    assert result.exit_code == 2
    last = result.output.strip().splitlines()[-1]
    assert "; rollback to " in last and "failed too: running: container bot is Waiting" in last
    assert _deploy_span(spans).attributes[schema.DEPLOY_RESULT] == "rollback_failed"


# -- the command line: az's -g/-n/--subscription, and progress per phase -------

PHASES = ["read", "update", "running", "ready", "record"]


def test_az_style_resource_group_name_and_subscription_are_accepted(
    run_deploy: Callable[..., Any],
    world: tuple[FakeArm, Ready],
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
    run_deploy: Callable[..., Any],
    world: tuple[FakeArm, Ready],
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
    run_deploy: Callable[..., Any],
    args: list[str],
    message: str,
) -> None:
    result = run_deploy(*args, "--image", IMAGE)
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"chatops: {message}")


def test_piped_output_is_one_plain_line_per_phase(
    run_deploy: Callable[..., Any],
    world: tuple[FakeArm, Ready],
) -> None:
    result = run_deploy("--group", "bot", "--image", IMAGE, "--timeout", "20")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert [line.split()[0] for line in lines[:-1]] == PHASES
    assert "\x1b" not in result.output  # no cursor movement or colour in a log


def test_in_a_terminal_each_phase_is_shown_live_as_it_runs(
    run_deploy: Callable[..., Any],
    world: tuple[FakeArm, Ready],
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
