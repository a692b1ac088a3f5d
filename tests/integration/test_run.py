"""``chatops run`` as a process: OTLP export, SIGTERM, token handling, one-line failures."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE

from bot.sandbox import FakeDiscord
from telemetry import schema
from tests.fakes.otlp import OtlpReceiver
from tests.helpers.chatops_process import TOKEN, child_env, start


async def test_run_answers_exports_traces_over_otlp_and_exits_cleanly_on_sigterm(
    fake: FakeDiscord,
) -> None:
    async with OtlpReceiver() as receiver:
        process = await start(
            child_env(
                DISCORD_TOKEN=TOKEN,
                DISCORD_API_BASE=fake.api_base,
                OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                OTEL_SERVICE_NAME="chatops-test",
            )
        )
        expected = {
            "!ping": ("Pong!", "command ping", "ok"),
            "!help": ("```", "command help", "ok"),
            "!about": ("chatops-bot", "command about", "ok"),
            "!nope": ("I don't know `!nope`", "message", "unknown_command"),
            "!roll lots": ("'lots' is not dice", "command roll", "bad_input"),
        }
        sent: dict[str, str] = {}
        try:
            await fake.wait_ready(timeout=20)
            for text, (starts, _, _) in expected.items():
                message = fake.send_message(text)
                sent[text] = str(message["id"])
                answer = await fake.first_reply(int(message["id"]), timeout=10)
                assert answer is not None, text
                assert answer["content"].startswith(starts), answer["content"]
        finally:
            process.send_signal(signal.SIGTERM)
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
        assert process.returncode == 0, stderr.decode()
        # The process is gone: every reply it would ever send is there, one per message.
        assert [len(fake.replies_so_far(int(mid))) for mid in sent.values()] == [1] * len(sent)

        # One trace per message, each with the schema's root attributes.
        for text, (_, name, outcome) in expected.items():
            roots = [
                span
                for span in receiver.spans
                if span.parent_span_id == ""
                and span.attributes.get(schema.MESSAGE_ID) == sent[text]
            ]
            assert len(roots) == 1, text
            (root,) = roots
            assert (root.name, root.attributes[schema.OUTCOME]) == (name, outcome)
            assert root.attributes[schema.GUILD_ID] == str(fake.guild.id)
            assert root.attributes[schema.AUTHOR_ID] == str(fake.user["id"])
            in_trace = [span for span in receiver.spans if span.trace_id == root.trace_id]
            assert any(span.name == "discord.send" for span in in_trace), text
        (ping,) = [span for span in receiver.spans if span.name == "command ping"]
        assert ping.resource["service.name"] == "chatops-test"
        everything = (stdout + stderr).decode() + repr(receiver.spans) + repr(receiver.headers)
        assert TOKEN not in everything


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_spans_still_waiting_for_export_are_flushed_on_the_signal(
    fake: FakeDiscord, signum: signal.Signals
) -> None:
    """The batch timer is an hour away, so only the final flush at shutdown can send them."""
    async with OtlpReceiver() as receiver:
        process = await start(
            child_env(
                DISCORD_TOKEN=TOKEN,
                DISCORD_API_BASE=fake.api_base,
                OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                OTEL_BSP_SCHEDULE_DELAY="3600000",
            )
        )
        try:
            await fake.wait_ready(timeout=20)
            message = fake.send_message("!ping")
            assert await fake.first_reply(int(message["id"]), timeout=10) is not None
            assert receiver.requests == 0  # nothing sent yet: the spans wait in the pipeline
        finally:
            process.send_signal(signum)
            _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 0, stderr.decode()
    roots = [
        span
        for span in receiver.spans
        if span.parent_span_id == "" and span.attributes.get(schema.MESSAGE_ID) == message["id"]
    ]
    assert [(r.name, r.attributes[schema.OUTCOME]) for r in roots] == [("command ping", "ok")]
    assert any(span.name == "discord.send" for span in receiver.spans)


async def test_honeycomb_key_becomes_the_team_header(fake: FakeDiscord) -> None:
    async with OtlpReceiver() as receiver:
        process = await start(
            child_env(
                DISCORD_TOKEN=TOKEN,
                DISCORD_API_BASE=fake.api_base,
                OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                HONEYCOMB_API_KEY="hc-ingest-key",
            )
        )
        try:
            await fake.wait_ready(timeout=20)
            assert await fake.say("!about", timeout=10) is not None
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.communicate(), timeout=20)
        assert process.returncode == 0
        assert receiver.headers and receiver.headers[0]["x-honeycomb-team"] == "hc-ingest-key"


async def test_missing_token_is_one_line_and_exit_2() -> None:
    process = await start(child_env())
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 2
    assert stderr.decode().strip() == "chatops: DISCORD_TOKEN is not set"


async def test_rejected_token_is_one_line_and_exit_2(fake: FakeDiscord) -> None:
    process = await start(child_env(DISCORD_TOKEN="bad-token", DISCORD_API_BASE=fake.api_base))
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 2
    lines = [line for line in stderr.decode().splitlines() if line.startswith("chatops:")]
    assert lines == ["chatops: Discord rejected DISCORD_TOKEN (401 Unauthorized)"]
    assert "Traceback" not in stderr.decode()


@pytest.mark.parametrize("value", ["-1", "port"])
async def test_bad_configuration_is_one_line_and_exit_2(value: str) -> None:
    process = await start(child_env(DISCORD_TOKEN=TOKEN, HEALTH_PORT=value))
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 2
    assert stderr.decode().startswith("chatops: invalid HEALTH_PORT:")
    assert len(stderr.decode().strip().splitlines()) == 1


async def test_run_exits_2_with_one_line_for_a_bad_commands_file(tmp_path: Path) -> None:
    bad = tmp_path / "commands.toml"
    bad.write_text('[[command]]\nname = "relationships"\ndescription = "d"\nurl = "nope"\n')
    process = await start(child_env(DISCORD_TOKEN=TOKEN, COMMANDS_FILE=str(bad)))
    _stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 2
    lines = stderr.decode().strip().splitlines()
    assert lines == [
        f"chatops: {bad}: command 'relationships': url: must be an absolute http(s) URL"
    ]


async def test_the_exported_tree_keeps_its_meaning_over_otlp(fake: FakeDiscord) -> None:
    """Through the lean tracer, the pipeline and the wire encoder, decoded as a collector would:
    fields on every span, the response on the send, a 429 and its retry as two attempts."""
    async with OtlpReceiver() as receiver:
        process = await start(
            child_env(
                DISCORD_TOKEN=TOKEN,
                DISCORD_API_BASE=fake.api_base,
                OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            )
        )
        try:
            await fake.wait_ready(timeout=20)
            fake.fail("POST", r"/channels/\d+/messages", status=429, retry_after=0.2)
            message = fake.send_message("!ping")
            assert await fake.first_reply(int(message["id"]), timeout=10) is not None
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.communicate(), timeout=20)
    (answer,) = fake.replies_so_far(int(message["id"]))  # the process has exited: all of them
    (root,) = [s for s in receiver.spans if s.attributes.get(schema.MESSAGE_ID) == message["id"]]
    trace = [s for s in receiver.spans if s.trace_id == root.trace_id]
    for span in trace:
        assert span.attributes[schema.COMMAND] == "ping", span.name
        assert span.attributes[schema.AUTHOR_ID] == str(fake.user["id"]), span.name
        assert span.attributes[schema.GUILD_ID] == str(fake.guild.id), span.name
    (send,) = [s for s in trace if s.name == schema.SEND_SPAN]
    assert send.attributes[schema.RESPONSE] == answer["content"] == root.attributes[schema.RESPONSE]
    # The send span is the attempt that got through; the 429 before it is its child.
    earlier = [s for s in trace if s.parent_span_id == send.span_id]
    assert [(s.name, s.attributes[HTTP_RESPONSE_STATUS_CODE]) for s in earlier] == [("POST", 429)]
    assert send.kind == 3  # SPAN_KIND_CLIENT
    assert send.attributes[HTTP_RESPONSE_STATUS_CODE] == 200
    typing = [s for s in trace if s.parent_span_id == root.span_id and s.name == "POST"]
    assert len(typing) == 1  # !ping shows typing first: its own attempt under the root


async def test_the_tail_sampler_exports_failures_and_weights_what_it_keeps(
    fake: FakeDiscord,
) -> None:
    async with OtlpReceiver() as receiver:
        process = await start(
            child_env(
                DISCORD_TOKEN=TOKEN,
                DISCORD_API_BASE=fake.api_base,
                OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                TAIL_SAMPLE_OK_ONE_IN="1000000",
            )
        )
        try:
            await fake.wait_ready(timeout=20)
            for text in ["!about"] * 6 + ["!roll lots", "!nope"]:  # 8: under the rate limit
                assert await fake.say(text, timeout=10) is not None
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.communicate(), timeout=20)
    roots = [s for s in receiver.spans if schema.OUTCOME in s.attributes]
    # Every failure kept, whole; ok ones 1 in a million: none, with near certainty.
    assert sorted(s.attributes[schema.OUTCOME] for s in roots) == ["bad_input", "unknown_command"]
    kept = {root.trace_id for root in roots}
    message_spans = [s for s in receiver.spans if schema.COMMAND in s.attributes]
    assert {s.trace_id for s in message_spans} <= kept
    assert any(s.name == schema.SEND_SPAN for s in message_spans)
    # Always-kept traces stand for themselves: no SampleRate weight.
    assert not [s for s in receiver.spans if "SampleRate" in s.attributes]
