"""The container watch: transitions posted once with log lines, a baseline first, 429 backoff.

The real bot polls the fake ARM (over TLS) every 0.1 s and posts to a channel of the
Discord fake; tests change a group in the fake and wait for the poll spans.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bot.azure_wiring import AzureOptions
from bot.client import ChatOpsBot
from bot.config import Settings
from bot.harness import connected_bot
from bot.sandbox import FakeDiscord
from telemetry import schema
from tests.fakes.arm import FakeArm, StaticCredential
from tests.fakes.tls import SelfSignedCertificate, make_certificate
from tests.helpers.flag_rules import boolean_flag, users, write_flags
from tests.helpers.sandbox_chat import until

RG = "chatops-rg"
INTERVAL_S = 0.1


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> SelfSignedCertificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def arm(certificate: SelfSignedCertificate) -> AsyncIterator[FakeArm]:
    async with FakeArm(certificate, operation_s=0.05) as server:
        server.add_group(RG, "web")
        # Already crash-looping when the bot starts: the baseline, not a transition.
        server.add_group(RG, "worker", state="Waiting", restart_count=7)
        yield server


@pytest.fixture
def alerts(fake: FakeDiscord) -> int:
    return fake.add_channel("alerts")


@pytest.fixture
def operator(fake: FakeDiscord) -> dict[str, Any]:
    return fake.add_user("olivia")


@pytest.fixture
async def watching_bot(
    settings: Settings, fake: FakeDiscord, arm: FakeArm, alerts: int, operator: dict[str, Any],
    certificate: SelfSignedCertificate, spans: InMemorySpanExporter,
) -> AsyncIterator[ChatOpsBot]:  # fmt: skip
    write_flags(settings.flags_file, {"aci-reader": boolean_flag(users(operator["id"]))})
    configured = settings.model_copy(
        update={
            "azure_subscription_id": arm.subscription,
            "azure_resource_group": [RG],
            "azure_arm_endpoint": arm.url,
            "azure_retry_total": 0,
            "azure_call_timeout_s": 5.0,
            "azure_watch_interval_s": INTERVAL_S,
            "alert_channel_id": alerts,
        }
    )
    options = AzureOptions(
        credential=StaticCredential(), transport={"connection_verify": str(certificate.cert_path)}
    )
    async with connected_bot(configured, fake, guild_ready_timeout=0.05, azure=options) as bot:
        yield bot


def polls(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name == schema.WATCH_SPAN]


async def more_polls(spans: InMemorySpanExporter, count: int, within: float = 8) -> None:
    start = len(polls(spans))
    await until(lambda: len(polls(spans)) >= start + count, within=within)


async def test_first_poll_is_a_baseline_then_a_transition_is_posted_once_with_log_lines(
    watching_bot: ChatOpsBot, fake: FakeDiscord, arm: FakeArm, alerts: int,
    spans: InMemorySpanExporter,
) -> None:  # fmt: skip
    await more_polls(spans, 3)
    first = polls(spans)[0]
    assert first.parent is None and first.attributes[schema.WATCH_BASELINE] is True
    assert first.attributes[schema.OUTCOME] == "ok" and first.attributes[schema.WATCH_GROUPS] == 2
    # worker was already Waiting with 7 restarts: no flood after the bot (re)starts.
    assert fake.messages_in(alerts) == []

    arm.add_group(RG, "web", state="Waiting", restart_count=2)
    arm.logs[(RG, "web", "web")] = "".join(f"line {i}\n" for i in range(30)) + "panic: @everyone\n"
    await until(lambda: len(fake.messages_in(alerts)) >= 2)
    await more_polls(spans, 3)
    posts = [m["content"] for m in fake.messages_in(alerts)]
    assert len(posts) == 2, posts  # once per transition, not once per poll
    (state,) = [p for p in posts if "Running \u2192 **Waiting**" in p]
    assert state.startswith("\U0001f6a8 `chatops-rg/web` container `web`")
    assert "CrashLoopBackOff" in state
    assert "panic: @everyone" in state and "line 29" in state and "line 5\n" not in state
    (restarts,) = [p for p in posts if "restarts 0 \u2192 **2**" in p]
    assert restarts
    assert not any(fake.would_ping(m) for m in fake.messages_in(alerts))
    (posting,) = [s for s in polls(spans) if s.attributes.get(schema.WATCH_TRANSITIONS) == 2]
    sends = [
        s
        for s in spans.get_finished_spans()
        if s.name == schema.SEND_SPAN and s.parent and s.parent.span_id == posting.context.span_id
    ]
    assert len(sends) == 2


async def test_failed_provisioning_is_posted(
    watching_bot: ChatOpsBot, fake: FakeDiscord, arm: FakeArm, alerts: int,
    spans: InMemorySpanExporter,
) -> None:  # fmt: skip
    await more_polls(spans, 2)
    arm.groups[(RG, "web")]["properties"]["provisioningState"] = "Failed"
    await until(lambda: len(fake.messages_in(alerts)) >= 1)
    (post,) = fake.messages_in(alerts)
    assert post["content"] == "\U0001f6a8 `chatops-rg/web`: provisioning **Failed**"


async def test_arm_throttling_slows_the_watch_but_not_the_commands(
    watching_bot: ChatOpsBot, fake: FakeDiscord, arm: FakeArm, alerts: int,
    operator: dict[str, Any], spans: InMemorySpanExporter,
) -> None:  # fmt: skip
    await more_polls(spans, 2)
    arm.fail(
        "GET", "/containerGroups$", status=429, code="TooManyRequests",
        message="Too many requests.", retry_after="0.4", times=3,
    )  # fmt: skip
    await until(
        lambda: sum(s.attributes.get(schema.OUTCOME) == "cooldown" for s in polls(spans)) >= 1
    )
    # A command during the throttled watch answers at once: it does not wait on the watch.
    started = time.monotonic()
    answer = await fake.say("!aci status web", author=operator)
    assert answer is not None and "**web**" in answer["content"]
    assert time.monotonic() - started < 2.0  # the watch's backoff reaches 0.4 + 0.8 + 1.6 s
    await until(
        lambda: sum(s.attributes.get(schema.OUTCOME) == "cooldown" for s in polls(spans)) == 3
    )
    throttled = [s for s in polls(spans) if s.attributes.get(schema.OUTCOME) == "cooldown"]
    backoffs = [float(s.attributes[schema.WATCH_BACKOFF_S]) for s in throttled]
    assert backoffs == sorted(backoffs) and backoffs[0] >= 0.4 and backoffs[-1] > backoffs[0]
    assert all(s.status.status_code.name == "UNSET" for s in throttled)
    # The gaps between throttled polls grew with the backoff (slower than the interval).
    gaps = [(b.start_time - a.end_time) / 1e9 for a, b in itertools.pairwise(throttled)]
    assert all(gap >= 0.35 for gap in gaps), gaps
    # After the throttle the watch is back to its interval, and still reports.
    await more_polls(spans, 2)
    arm.add_group(RG, "web", state="Terminated")
    await until(lambda: len(fake.messages_in(alerts)) >= 1)
    assert "Running \u2192 **Terminated**" in fake.messages_in(alerts)[0]["content"]
