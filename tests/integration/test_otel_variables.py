"""The standard OpenTelemetry variables mean what they mean elsewhere (``chatops run``).

Each test runs the bot as a process against a local OTLP receiver that decodes the
real protobuf, sends one message, stops it with SIGTERM, and reads what arrived.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from urllib.parse import urlsplit

import pytest
from opentelemetry.semconv._incubating.attributes.http_attributes import (
    HTTP_METHOD,
    HTTP_STATUS_CODE,
    HTTP_URL,
)
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE,
)
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.url_attributes import URL_FULL

from bot.sandbox import FakeDiscord
from tests.fakes.otlp import OtlpReceiver, ReceivedSpan
from tests.helpers.chatops_process import TOKEN, child_env, start


async def run_one_message(fake: FakeDiscord, **env: str) -> tuple[str, str]:
    """Start ``chatops run`` with ``env``, answer ``!about``, stop it; its stdout and stderr."""
    process = await start(child_env(DISCORD_TOKEN=TOKEN, DISCORD_API_BASE=fake.api_base, **env))
    try:
        await fake.wait_ready(timeout=20)
        assert await fake.say("!about", timeout=10) is not None
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 0, stderr.decode()
    return stdout.decode(), stderr.decode()


def about_root(receiver: OtlpReceiver) -> ReceivedSpan:
    (root,) = [span for span in receiver.spans if span.name == "command about"]
    return root


async def test_the_traces_endpoint_alone_exports_to_the_url_as_given(fake: FakeDiscord) -> None:
    async with OtlpReceiver(path="/custom/traces") as receiver:
        await run_one_message(
            fake, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.endpoint + "/custom/traces"
        )
    assert about_root(receiver)


async def test_the_traces_endpoint_and_headers_win_over_the_base_ones(fake: FakeDiscord) -> None:
    async with OtlpReceiver() as base, OtlpReceiver(path="/traces") as traces:
        await run_one_message(
            fake,
            OTEL_EXPORTER_OTLP_ENDPOINT=base.endpoint,
            OTEL_EXPORTER_OTLP_HEADERS="x-base=base-key",
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=traces.endpoint + "/traces",
            OTEL_EXPORTER_OTLP_TRACES_HEADERS="x-traces=traces-key",
        )
    assert base.requests == 0
    assert about_root(traces)
    assert traces.headers[0]["x-traces"] == "traces-key"
    assert "x-base" not in traces.headers[0]


async def test_traces_exporter_none_exports_nothing_even_with_an_endpoint(
    fake: FakeDiscord,
) -> None:
    async with OtlpReceiver() as receiver:
        stdout, _ = await run_one_message(
            fake, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_TRACES_EXPORTER="none"
        )
    assert receiver.requests == 0
    assert '"name": "command about"' not in stdout


async def test_traces_exporter_console_and_otlp_print_and_export(fake: FakeDiscord) -> None:
    async with OtlpReceiver() as receiver:
        stdout, _ = await run_one_message(
            fake,
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_TRACES_EXPORTER="console, otlp",
        )
    assert about_root(receiver)
    assert '"name": "command about"' in stdout
    assert TOKEN not in stdout


async def test_traces_exporter_console_alone_prints_and_sends_nothing(fake: FakeDiscord) -> None:
    async with OtlpReceiver() as receiver:
        stdout, _ = await run_one_message(
            fake, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_TRACES_EXPORTER="console"
        )
    assert receiver.requests == 0
    assert '"name": "command about"' in stdout


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "grpc is not supported"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc", "grpc is not supported"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "'http/json' is not supported"),
        ("OTEL_TRACES_EXPORTER", "zipkin", "'zipkin' is not supported"),
        ("OTEL_TRACES_EXPORTER", "none,otlp", "none cannot be combined"),
    ],
)
async def test_an_unsupported_exporter_or_protocol_is_one_line_and_exit_2(
    variable: str, value: str, says: str
) -> None:
    process = await start(
        child_env(
            DISCORD_TOKEN=TOKEN,
            OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
            **{variable: value},
        )
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 2
    (line,) = stderr.decode().strip().splitlines()
    assert line.startswith(f"chatops: invalid {variable}: {says}"), line


async def test_http_protobuf_is_accepted(fake: FakeDiscord) -> None:
    async with OtlpReceiver() as receiver:
        await run_one_message(
            fake,
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf",
        )
    assert about_root(receiver)


async def test_service_name_from_resource_attributes_beats_the_default(fake: FakeDiscord) -> None:
    async with OtlpReceiver() as receiver:
        await run_one_message(
            fake,
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_RESOURCE_ATTRIBUTES="service.name=from-attributes,team=ops",
            DEPLOYMENT_ENVIRONMENT="production",
        )
    resource = about_root(receiver).resource
    assert resource["service.name"] == "from-attributes"
    assert resource["team"] == "ops"
    assert resource["deployment.environment.name"] == "production"
    assert resource["deployment.environment"] == "production"
    assert uuid.UUID(resource["service.instance.id"])
    assert resource["service.version"]


async def test_service_name_variable_beats_resource_attributes_and_instance_id_can_be_set(
    fake: FakeDiscord,
) -> None:
    async with OtlpReceiver() as receiver:
        await run_one_message(
            fake,
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_SERVICE_NAME="from-variable",
            OTEL_RESOURCE_ATTRIBUTES="service.name=from-attributes,service.instance.id=pod-7",
        )
    resource = about_root(receiver).resource
    assert resource["service.name"] == "from-variable"
    assert resource["service.instance.id"] == "pod-7"


async def test_honeycomb_api_url_moves_the_traces_too(fake: FakeDiscord) -> None:
    async with OtlpReceiver() as receiver:
        await run_one_message(
            fake, HONEYCOMB_API_KEY="hc-ingest-key", HONEYCOMB_API_URL=receiver.endpoint
        )
    assert about_root(receiver)
    assert receiver.headers[0]["x-honeycomb-team"] == "hc-ingest-key"


def about_posts(receiver: OtlpReceiver) -> list[ReceivedSpan]:
    """The HTTP attempts of the ``!about`` trace: its reply's, on the send span itself."""
    root = about_root(receiver)
    return [
        s
        for s in receiver.spans
        if s.trace_id == root.trace_id and HTTP_REQUEST_METHOD in s.attributes
    ]


@pytest.mark.parametrize("opt_in", [None, "http", "database,http"])
async def test_http_spans_carry_the_stable_names_only_by_default_and_with_http(
    fake: FakeDiscord, opt_in: str | None
) -> None:
    env = {"OTEL_SEMCONV_STABILITY_OPT_IN": opt_in} if opt_in else {}
    async with OtlpReceiver() as receiver:
        await run_one_message(fake, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, **env)
    posts = about_posts(receiver)
    assert posts
    for post in posts:
        attributes = post.attributes
        assert attributes[HTTP_REQUEST_METHOD] == "POST"
        assert attributes[URL_FULL].startswith(fake.api_base + "/channels/")
        assert attributes[SERVER_ADDRESS] == "127.0.0.1"
        assert attributes[SERVER_PORT] == urlsplit(fake.api_base).port
        assert attributes[HTTP_RESPONSE_STATUS_CODE] in (200, 204)
        assert not {HTTP_METHOD, HTTP_URL, HTTP_STATUS_CODE} & attributes.keys()


async def test_http_dup_adds_the_old_names_beside_the_stable_ones(fake: FakeDiscord) -> None:
    async with OtlpReceiver() as receiver:
        await run_one_message(
            fake,
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_SEMCONV_STABILITY_OPT_IN="http/dup",
        )
    posts = about_posts(receiver)
    assert posts
    for post in posts:
        attributes = post.attributes
        assert attributes[HTTP_METHOD] == attributes[HTTP_REQUEST_METHOD] == "POST"
        assert attributes[HTTP_URL] == attributes[URL_FULL]
        assert attributes[HTTP_STATUS_CODE] == attributes[HTTP_RESPONSE_STATUS_CODE]
        assert attributes[SERVER_ADDRESS] == "127.0.0.1"
