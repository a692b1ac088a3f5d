"""Each OTLP exporter sends its own collector's headers, never another collector's key.

The SDK's exporter merges ``OTEL_EXPORTER_OTLP_HEADERS`` from the environment into
every exporter it builds; the bot builds one for its own collector and one for
CircleCI's (``CIRCLECI_OTLP_ENDPOINT``), so the main key must not reach the second.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.ci_wiring import circleci_receiver
from bot.config import load_settings
from bot.health import health_app
from telemetry.pipeline.export import PipelineSpan, pipeline_resource, to_readable
from telemetry.pipeline.webhook import circleci_routes
from telemetry.setup import TelemetryConfig, build_exporters
from tests.fakes import circleci_hooks as fake
from tests.fakes.otlp import OtlpReceiver

MAIN_KEY = "main-collector-key"


@pytest.fixture
def main_key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """What an operator sets for the bot's own collector (the SDK reads both)."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"x-main-key={MAIN_KEY}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", f"x-main-key={MAIN_KEY}")


@pytest.mark.usefixtures("main_key_in_environment")
async def test_the_circleci_export_carries_its_own_headers_and_not_the_main_key(
    tmp_path: Path,
) -> None:
    async with OtlpReceiver() as otlp:
        settings = load_settings(
            _env_file=None,
            circleci_hook_secret=fake.SECRET,
            circleci_otlp_endpoint=otlp.endpoint,
            circleci_state_db=tmp_path / "circleci.db",
        )
        environ = {"CIRCLECI_OTLP_X_HONEYCOMB_TEAM": "circleci-key"}
        receiver, sink = circleci_receiver(settings, environ)
        app = health_app(lambda: True)
        app.add_routes(circleci_routes(receiver))
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            body, signature = fake.body_and_header(fake.workflow_completed())
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    server.make_url("/hooks/circleci"),
                    data=body,
                    headers={"circleci-signature": signature},
                ) as response,
            ):
                assert response.status == 202
            assert await otlp.wait_for(lambda span: span.name == "build-test-deploy")
        finally:
            await server.close()
            receiver.close()
            assert sink is not None
            await asyncio.to_thread(sink.close)
    (headers,) = otlp.headers
    assert headers["x-honeycomb-team"] == "circleci-key"
    assert "x-main-key" not in headers
    assert MAIN_KEY not in repr(headers)


@pytest.mark.usefixtures("main_key_in_environment")
async def test_the_main_exporter_sends_exactly_the_configured_headers() -> None:
    async with OtlpReceiver() as otlp:
        config = TelemetryConfig(otlp_endpoint=otlp.endpoint, otlp_headers={"x-own": "own-key"})
        (exporter,) = build_exporters(config)
        try:
            span = PipelineSpan("step", 1, 2, parent_span_id=None, start_ns=1, end_ns=2)
            await asyncio.to_thread(exporter.export, [to_readable(span, pipeline_resource("ci"))])
        finally:
            exporter.shutdown()
    (headers,) = otlp.headers
    assert headers["x-own"] == "own-key"
    assert "x-main-key" not in headers
