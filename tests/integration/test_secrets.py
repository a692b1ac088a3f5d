"""No secret in a span, a log record or a reply, whatever the bot is asked to do."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from bot.azure_wiring import AzureOptions
from bot.ci_services import CiServices
from bot.config import Settings
from bot.harness import connected_bot
from bot.health import health_app, start_health_server
from bot.sandbox import FakeDiscord
from tests.fakes import circleci_hooks
from tests.fakes.arm import FakeArm, StaticCredential
from tests.fakes.catfact import FakeCatFacts
from tests.fakes.otlp import OtlpReceiver
from tests.fakes.scryfall import FakeScryfall
from tests.fakes.tls import make_certificate
from tests.helpers.flag_rules import boolean_flag, write_flags
from tests.helpers.sandbox_chat import settled

SECRETS = {
    "discord token": "MTA5.discord-bot-token-secret.Zq1",
    "honeycomb ingest key": "hcaik_ingest_secret_0123456789",
    "honeycomb marker key": "hcxmk_marker_secret_9876543210",
    "otlp header": "otlp-header-secret-value",
    "circleci secret": circleci_hooks.SECRET,
    "azure token": "eyJ0eXAi.azure-access-token-secret.sig",
}
EVERY_COMMAND = [
    "!ping",
    "!about",
    "!help",
    "!help aci",
    "!roll 2d6",
    "!roll nonsense",
    "!catfact",
    "!mtg t:dragon",
    "!card Lightning Bolt",
    "!whoami",
    "!flip",
    "!beta",
    "!builds",
    "!aci list",
    "!aci status web",
    "!aci logs web",
    "!aci status missing",
    "!nope",
    "plain chat",
]


@pytest.fixture
async def world(
    settings: Settings, tmp_path: Any
) -> AsyncIterator[tuple[Settings, FakeArm, StaticCredential, Any]]:
    certificate = make_certificate(tmp_path)
    async with (
        FakeCatFacts() as catfacts,
        FakeScryfall() as scryfall,
        FakeArm(certificate, operation_s=0.05) as arm,
        OtlpReceiver() as otlp,
    ):
        arm.add_group("rg", "web", image="chatops.azurecr.io/web:1")
        write_flags(
            settings.flags_file,
            {"aci-reader": boolean_flag(True), "aci-operator": boolean_flag(True)},
        )
        configured = settings.model_copy(
            update={
                "catfact_api_url": catfacts.url,
                "scryfall_api_url": scryfall.url,
                "honeycomb_api_key": SecretStr(SECRETS["honeycomb ingest key"]),
                "honeycomb_marker_key": SecretStr(SECRETS["honeycomb marker key"]),
                "otel_exporter_otlp_headers": SecretStr(f"x-extra={SECRETS['otlp header']}"),
                "circleci_hook_secret": SecretStr(SECRETS["circleci secret"]),
                "circleci_otlp_endpoint": otlp.endpoint,
                "ci_announce_channel_id": None,
                "azure_subscription_id": arm.subscription,
                "azure_resource_group": ["rg"],
                "azure_arm_endpoint": arm.url,
                "azure_poll_interval_s": 0.05,
                "azure_retry_total": 0,
                "user_command_rate": 1000,
            }
        )
        yield configured, arm, StaticCredential(SECRETS["azure token"]), certificate


async def test_no_secret_reaches_spans_logs_or_replies(
    world: tuple[Settings, FakeArm, StaticCredential, Any],
    fake: FakeDiscord,
    spans: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    configured, _arm, credential, certificate = world
    options = AzureOptions(
        credential=credential, transport={"connection_verify": str(certificate.cert_path)}
    )
    caplog.set_level(logging.DEBUG)
    async with connected_bot(
        configured,
        fake,
        token=SECRETS["discord token"],
        guild_ready_timeout=0.05,
        azure=options,
    ) as bot:
        for text in EVERY_COMMAND:
            message = fake.send_message(text)
            await settled(fake, message)
        app = health_app(lambda: bot.gateway_up)
        services = CiServices(configured, bot.announce_pipeline)
        services.mount(app)
        runner = await start_health_server(app, 0)
        try:
            body, signature = circleci_hooks.body_and_header(circleci_hooks.workflow_completed())
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    f"http://127.0.0.1:{runner.addresses[0][1]}/hooks/circleci",
                    data=body,
                    headers={"circleci-signature": signature},
                ) as response,
            ):
                assert response.status == 202
        finally:
            await runner.cleanup()
            await services.close()
        await asyncio.sleep(0.2)

    exported = [
        (span.name, dict(span.attributes or {}), [dict(e.attributes or {}) for e in span.events])
        for span in spans.get_finished_spans()
    ]
    logged = [record.getMessage() + repr(record.__dict__) for record in caplog.records]
    replies = [repr(message) for message in fake.bot_messages]
    assert len(exported) > 50 and len(replies) >= len(EVERY_COMMAND) - 1
    assert credential.scopes, "the Azure credential was never asked: !aci did not run"
    for label, secret in SECRETS.items():
        assert secret not in repr(exported), f"{label} on a span"
        assert not [line for line in logged if secret in line], f"{label} in a log record"
        assert not [reply for reply in replies if secret in reply], f"{label} in a reply"
