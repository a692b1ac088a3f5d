"""``opentelemetry-instrument chatops run``: a supported way to start the bot.

The launcher (``opentelemetry-instrumentation``, in the dev extra with the contrib
aiohttp instrumentation) installs that instrumentation before the bot starts; the
bot's own HTTP spans then stand down (one span per request, not two), and its
``UrlRedactor`` takes the interaction token out of the contrib spans' URLs. The
same slash command, with and without the launcher, against the Discord fake and a
local OTLP receiver: the same span tree, no duplicate HTTP span, no token anywhere.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from opentelemetry.semconv._incubating.attributes.http_attributes import HTTP_METHOD, HTTP_URL
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE,
)
from opentelemetry.semconv.attributes.url_attributes import URL_FULL

from bot.sandbox import FakeDiscord
from telemetry import schema
from tests.fakes.otlp import OtlpReceiver, ReceivedSpan
from tests.helpers.chatops_process import TOKEN, child_env, closed_port
from tests.helpers.trace_finders import TRACING_HEADERS

BIN = Path(sys.executable).parent
LAUNCHER = BIN / "opentelemetry-instrument"
CHATOPS = BIN / "chatops"
# /roll as the bot registers it (the fake needs the definition to build the interaction).
ROLL = {
    "name": "roll",
    "type": 1,
    "description": "Roll dice",
    "options": [{"name": "dice", "type": 3, "description": "dice", "required": False}],
}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not LAUNCHER.exists(), reason="opentelemetry-instrument missing (pip install -e '.[dev]')"
    ),
]


async def slash_roll(
    fake: FakeDiscord, *launcher: str, **env: str
) -> tuple[list[ReceivedSpan], str, str]:
    """Start the bot (under ``launcher``, if any), answer ``/roll dice:2d6``, stop it.

    The spans received, the interaction's token, and everything the process printed.
    """
    fake.use_commands(lambda: [ROLL])
    health = closed_port()
    async with OtlpReceiver() as receiver:
        process = await asyncio.create_subprocess_exec(
            *launcher,
            str(CHATOPS),
            "run",
            env=child_env(
                DISCORD_TOKEN=TOKEN,
                DISCORD_API_BASE=fake.api_base,
                OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                HEALTH_PORT=str(health),
                **env,
            ),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await until_ready(health)
            interaction = fake.send_command("/roll dice:2d6")
            answer = await interaction.wait(timeout=10)
            assert answer is not None and answer["content"].startswith("\U0001f3b2 2d6:")
        finally:
            process.send_signal(signal.SIGTERM)
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
        assert process.returncode == 0, stderr.decode()
        return list(receiver.spans), interaction.token, (stdout + stderr).decode()


async def until_ready(port: int, within: float = 20.0) -> None:
    """Until the bot's ``/readyz`` says ready (discord.py's ``on_ready``), as a probe would."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    async with aiohttp.ClientSession() as http:
        while loop.time() < deadline:
            try:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass  # not listening yet
            await asyncio.sleep(0.1)
    raise TimeoutError(f"the bot was not ready within {within:.0f}s")


def trace_of(spans: list[ReceivedSpan], root_name: str) -> list[ReceivedSpan]:
    (root,) = [s for s in spans if s.name == root_name and not s.parent_span_id]
    return [s for s in spans if s.trace_id == root.trace_id]


def tree(spans: list[ReceivedSpan]) -> list[tuple[str, ...]]:
    """Each span as the path of names from its root: the shape, whatever the ids."""
    by_id = {s.span_id: s for s in spans}

    def path(span: ReceivedSpan) -> tuple[str, ...]:
        parent = by_id.get(span.parent_span_id)
        return (*path(parent), span.name) if parent else (span.name,)

    return sorted(path(s) for s in spans)


def http_spans(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    return [s for s in spans if HTTP_REQUEST_METHOD in s.attributes]


async def test_opentelemetry_instrument_exports_the_same_tree_once_and_no_token(
    fake: FakeDiscord,
) -> None:
    env = {"OTEL_SEMCONV_STABILITY_OPT_IN": "http"}
    plain, _, _ = await slash_roll(fake, **env)
    instrumented, token, printed = await slash_roll(fake, str(LAUNCHER), **env)

    # The same tree, but for the reply's POST: the bot's own send span is its POST, and
    # under the contrib instrumentation the POST is the send span's child.
    own_tree = tree(trace_of(plain, "command roll"))
    assert ("command roll", "discord.send") in own_tree
    assert ("command roll", "discord.send", "POST") not in own_tree
    assert tree(trace_of(instrumented, "command roll")) == sorted(
        [*own_tree, ("command roll", "discord.send", "POST")]
    )

    # The contrib instrumentation made the HTTP spans, and only it: one per request.
    scopes = {s.scope for s in http_spans(instrumented)}
    assert scopes == {"opentelemetry.instrumentation.aiohttp_client"}
    assert {s.scope for s in http_spans(plain)} <= {"telemetry.http_spans", "telemetry.spans"}
    http_ids = {s.span_id for s in http_spans(instrumented)}
    assert not [s for s in http_spans(instrumented) if s.parent_span_id in http_ids]
    assert len(http_spans(instrumented)) == len(http_spans(plain))

    # The callback POST: the same attributes as the bot's own (stable names, fields from
    # the root; the bot's send span has the response and its request's own duration too),
    # the token out of its URL.
    (post,) = [s for s in trace_of(instrumented, "command roll") if s.name == "POST"]
    (own,) = [s for s in trace_of(plain, "command roll") if s.name == "discord.send"]
    assert own.attributes.keys() - post.attributes.keys() == {
        schema.RESPONSE,
        schema.HTTP_ATTEMPT_MS,
    }
    assert post.attributes[HTTP_RESPONSE_STATUS_CODE] == 200
    assert "/interactions/" in post.attributes[URL_FULL]
    assert "/{token}/callback" in post.attributes[URL_FULL]
    assert post.attributes[schema.COMMAND] == "roll"

    # Discord got no tracing headers from the contrib instrumentation either.
    sent = {key.lower() for request in fake.requests for key in request.headers}
    assert not sent & TRACING_HEADERS

    # No token in any attribute of any span, nor in anything printed.
    everything = repr([(s.name, s.attributes, s.resource) for s in instrumented]) + printed
    assert token not in everything
    assert TOKEN not in everything


async def test_without_the_opt_in_the_contrib_spans_keep_old_names_and_the_bot_says_so(
    fake: FakeDiscord,
) -> None:
    """The contrib instrumentation reads OTEL_SEMCONV_STABILITY_OPT_IN itself, and unset means
    the old names there: one start-up line says what to set; the token is still removed."""
    spans, token, printed = await slash_roll(fake, str(LAUNCHER))
    (post,) = [s for s in trace_of(spans, "command roll") if s.name == "POST"]
    assert post.attributes[HTTP_METHOD] == "POST"
    assert "/{token}/callback" in post.attributes[HTTP_URL]
    assert [line for line in printed.splitlines() if "OTEL_SEMCONV_STABILITY_OPT_IN=http" in line]
    assert token not in repr([(s.name, s.attributes) for s in spans]) + printed
