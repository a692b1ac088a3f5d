"""``chatops deploy`` posts its result to the audit channel (fake ARM, fake Discord's REST API)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import pytest
from click.testing import CliRunner
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bot.azure_wiring import AzureOptions
from bot.cli.deploy_verbs import DeployHooks
from bot.cli.main import cli
from bot.sandbox import FakeDiscord
from telemetry import schema
from tests.fakes.arm import FakeArm, StaticCredential
from tests.fakes.tls import SelfSignedCertificate, make_certificate

RG = "chatops-rg"
IMAGE = "chatops.azurecr.io/chatops-bot:2.0.0"
PIPELINE_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


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


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> SelfSignedCertificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def world(certificate: SelfSignedCertificate) -> Iterator[tuple[FakeArm, FakeDiscord, int]]:
    background = Background()
    arm = FakeArm(certificate, operation_s=0.05)
    fake = FakeDiscord()
    background.run(arm.__aenter__())
    background.run(fake.__aenter__())
    channel = fake.add_channel("audit")
    arm.add_group(RG, "bot", image="chatops.azurecr.io/chatops-bot:1.0.0")
    yield arm, fake, channel
    background.run(fake.__aexit__(None, None, None))
    background.run(arm.__aexit__())
    background.stop()


@pytest.fixture
def run_deploy(
    world: tuple[FakeArm, FakeDiscord, int],
    certificate: SelfSignedCertificate,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., Any]:
    arm, fake, channel = world
    for key, value in {
        "AZURE_SUBSCRIPTION_ID": arm.subscription,
        "AZURE_RESOURCE_GROUP": RG,
        "AZURE_ARM_ENDPOINT": arm.url,
        "AZURE_POLL_INTERVAL_S": "0.05",
        "AZURE_RETRY_TOTAL": "0",
        "DISCORD_TOKEN": "sandbox-token",
        "DISCORD_API_BASE": fake.api_base,
        "AUDIT_CHANNEL_ID": str(channel),
        "SPAN_STORE": "off",
        "GITHUB_ACTOR": "octocat",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("TRACEPARENT", raising=False)
    hooks = DeployHooks(
        azure=AzureOptions(
            credential=StaticCredential(),
            transport={"connection_verify": str(certificate.cert_path)},
        ),
        install_tracing=False,
    )

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, ["deploy", *args], obj=hooks)

    return run


def test_a_deploy_is_posted_once_with_its_result_image_duration_and_trace(
    run_deploy: Callable[..., Any], world: tuple[FakeArm, FakeDiscord, int],
    spans: InMemorySpanExporter,
) -> None:  # fmt: skip
    _, fake, channel = world
    result = run_deploy("--group", "bot", "--image", IMAGE, "--no-health-check")
    assert result.exit_code == 0, result.output
    (post,) = fake.messages_in(channel)
    text = post["content"]
    assert text.startswith("\u2705 **deploy** `bot` by chatops deploy (octocat): ok in ")
    assert f"image `{IMAGE}`" in text
    (deploy,) = [s for s in spans.get_finished_spans() if s.name == schema.DEPLOY_SPAN]
    (root,) = [s for s in spans.get_finished_spans() if s.name == "chatops deploy"]
    assert deploy.parent is not None and deploy.parent.span_id == root.context.span_id
    assert f"trace `{format(root.context.trace_id, '032x')}`" in text
    (audit,) = [s for s in spans.get_finished_spans() if s.name == schema.AUDIT_SPAN]
    assert audit.attributes[schema.OUTCOME] == "ok" and audit.parent is None
    assert not fake.would_ping(post)
    assert "sandbox-token" not in str([s.attributes for s in spans.get_finished_spans()])


def test_a_failed_deploy_in_a_pipeline_is_posted_with_the_pipeline_trace(
    run_deploy: Callable[..., Any], world: tuple[FakeArm, FakeDiscord, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    _, fake, channel = world
    monkeypatch.setenv("TRACEPARENT", f"00-{PIPELINE_TRACE}-00f067aa0ba902b7-01")
    result = run_deploy("--group", "nope", "--image", IMAGE, "--no-health-check")
    assert result.exit_code == 2
    (post,) = fake.messages_in(channel)
    assert post["content"].startswith("\u274c **deploy** `nope`")
    assert ": failed: read: No container group `nope`" in post["content"]
    assert f"trace `{PIPELINE_TRACE}`" in post["content"]


def test_an_unreachable_audit_channel_never_fails_the_deploy(
    run_deploy: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "bad-token")
    result = run_deploy("--group", "bot", "--image", IMAGE, "--no-health-check")
    assert result.exit_code == 0, result.output
    assert "could not post the deploy to the audit channel" in result.output
