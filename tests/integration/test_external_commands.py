"""``!catfact`` and the behaviour every external call shares (ApiClient), against a local fake."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE,
)
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.url_attributes import URL_FULL
from opentelemetry.trace import StatusCode

from bot.client import ChatOpsBot
from bot.config import Settings
from bot.sandbox import FakeDiscord
from telemetry import schema
from tests.fakes.catfact import FACT, FakeCatFacts
from tests.fakes.scryfall import FakeScryfall
from tests.helpers.markdown import masked_links
from tests.helpers.sandbox_chat import exchange, is_ephemeral, run_slash
from tests.helpers.trace_finders import TRACING_HEADERS, children, only_child, trace_id

TYPING_ROUTE = r"/channels/\d+/typing"


@pytest.fixture
def overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
def settings(
    settings: Settings,
    catfact_api: FakeCatFacts,
    scryfall_api: FakeScryfall,
    overrides: dict[str, Any],
) -> Settings:
    return settings.model_copy(
        update={
            "catfact_api_url": catfact_api.url,
            "scryfall_api_url": scryfall_api.url,
            "external_retry_backoff_s": 0.05,
            **overrides,
        }
    )


async def test_catfact_answers_with_a_named_span_around_the_http_call(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, catfact_api: FakeCatFacts
) -> None:
    answer, root = await exchange(fake, spans, "!catfact")
    assert FACT in answer["content"]
    assert root.name == "command catfact"
    assert root.attributes[schema.OUTCOME] == "ok"
    fetch = only_child(spans, root, "catfact.fetch")
    assert fetch.attributes[schema.API_NAME] == "cat-fact API"
    assert fetch.attributes[schema.API_ATTEMPTS] == 1
    assert fetch.attributes[schema.API_STATUS] == 200
    assert fetch.attributes[schema.API_HOST] == "127.0.0.1"
    assert fetch.attributes[schema.COMMAND] == "catfact"
    (get,) = children(spans, fetch)
    # The stable HTTP client conventions, and only them by default.
    assert get.name == "GET"
    assert dict(get.attributes) == {
        HTTP_REQUEST_METHOD: "GET",
        URL_FULL: f"{catfact_api.url}/fact",
        SERVER_ADDRESS: "127.0.0.1",
        SERVER_PORT: catfact_api.port,
        HTTP_RESPONSE_STATUS_CODE: 200,
        schema.COMMAND: "catfact",
        schema.GUILD_ID: str(fake.guild.id),
        schema.AUTHOR_ID: str(fake.user["id"]),
    }
    # A fast call shows no typing indicator.
    assert not [r for r in fake.requests if r.path.endswith("/typing")]


async def test_public_apis_get_no_tracing_headers_but_a_user_agent_and_accept(
    bot: ChatOpsBot,
    fake: FakeDiscord,
    spans: InMemorySpanExporter,
    catfact_api: FakeCatFacts,
    scryfall_api: FakeScryfall,
) -> None:
    await exchange(fake, spans, "!catfact")
    await exchange(fake, spans, "!mtg t:dragon")
    seen = catfact_api.requests + scryfall_api.requests
    assert len(seen) == 2
    for request in seen:
        assert not TRACING_HEADERS & set(request.headers)
        assert request.headers["user-agent"].startswith("chatops-bot/")
        assert "Discord chat-ops bot" in request.headers["user-agent"]
        assert request.headers["accept"] == "application/json"


@pytest.mark.parametrize("overrides", [{"external_timeout_s": 0.4}])
async def test_a_slow_api_times_out_with_a_reply_that_says_so(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, catfact_api: FakeCatFacts
) -> None:
    catfact_api.then(delay=3)
    started = asyncio.get_running_loop().time()
    answer, root = await exchange(fake, spans, "!catfact")
    assert asyncio.get_running_loop().time() - started < 2
    assert answer["content"] == f"The cat-fact API timed out. (trace `{trace_id(root)}`)"
    assert root.attributes[schema.OUTCOME] == "error"
    assert root.attributes[schema.ERROR_TYPE] == "ApiError"
    assert root.status.status_code is StatusCode.ERROR
    fetch = only_child(spans, root, "catfact.fetch")
    assert fetch.status.status_code is StatusCode.ERROR
    assert len(children(spans, fetch)) == 1  # a timeout is not retried


@pytest.mark.parametrize("overrides", [{"external_typing_after_s": 0.1}])
async def test_a_slow_call_shows_the_typing_indicator(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, catfact_api: FakeCatFacts
) -> None:
    catfact_api.then(delay=0.4)
    answer, root = await exchange(fake, spans, "!catfact")
    assert FACT in answer["content"]
    typing = [r for r in fake.requests if r.method == "POST" and r.path.endswith("/typing")]
    assert len(typing) == 1
    # The typing POST is the root's child, beside the call, not time charged to the API.
    (posted,) = [
        s for s in children(spans, root, "POST") if str(s.attributes[URL_FULL]).endswith("/typing")
    ]
    assert posted.attributes[HTTP_RESPONSE_STATUS_CODE] == 204


async def test_a_500_then_success_is_retried_and_both_attempts_are_spans(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, catfact_api: FakeCatFacts
) -> None:
    catfact_api.then(status=500)
    answer, root = await exchange(fake, spans, "!catfact")
    assert FACT in answer["content"]
    assert root.attributes[schema.OUTCOME] == "ok"
    assert root.status.status_code is StatusCode.UNSET
    fetch = only_child(spans, root, "catfact.fetch")
    assert fetch.attributes[schema.API_ATTEMPTS] == 2
    assert fetch.status.status_code is StatusCode.UNSET
    statuses = [s.attributes[HTTP_RESPONSE_STATUS_CODE] for s in children(spans, fetch)]
    assert statuses == [500, 200]
    assert len(catfact_api.requests) == 2


async def test_500_twice_fails_with_the_status_and_the_trace_id(
    bot: ChatOpsBot,
    fake: FakeDiscord,
    spans: InMemorySpanExporter,
    catfact_api: FakeCatFacts,
    caplog: pytest.LogCaptureFixture,
) -> None:
    catfact_api.then(status=500).then(status=503)
    answer, root = await exchange(fake, spans, "!catfact")
    # An API that fails is one log line naming the trace, not a traceback.
    (logged,) = [r for r in caplog.records if r.name == "commands.toolkit.failures"]
    assert logged.getMessage() == "command catfact failed: The cat-fact API answered 503."
    assert logged.exc_info is None
    assert logged.otelTraceID == trace_id(root)  # type: ignore[attr-defined]
    assert answer["content"] == f"The cat-fact API answered 503. (trace `{trace_id(root)}`)"
    assert root.attributes[schema.OUTCOME] == "error"
    assert root.status.status_code is StatusCode.ERROR
    fetch = only_child(spans, root, "catfact.fetch")
    assert fetch.status.status_code is StatusCode.ERROR
    attempts = children(spans, fetch)
    assert [s.attributes[HTTP_RESPONSE_STATUS_CODE] for s in attempts] == [500, 503]
    # error.type on a failed HTTP attempt is its status code, as the conventions say.
    assert [s.attributes[ERROR_TYPE] for s in attempts] == ["500", "503"]
    assert all(s.status.status_code is StatusCode.ERROR for s in attempts)


async def test_a_404_is_not_retried(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, catfact_api: FakeCatFacts
) -> None:
    catfact_api.then(status=404)
    answer, root = await exchange(fake, spans, "!catfact")
    assert answer["content"].startswith("The cat-fact API answered 404.")
    assert root.attributes[schema.OUTCOME] == "error"
    assert len(catfact_api.requests) == 1


async def test_invalid_json_is_a_short_error(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, catfact_api: FakeCatFacts
) -> None:
    catfact_api.then(status=200, body=b"<html>oops</html>")
    answer, root = await exchange(fake, spans, "!catfact")
    assert answer["content"].startswith("The cat-fact API sent an answer I couldn't read.")
    assert root.attributes[schema.OUTCOME] == "error"
    assert root.status.status_code is StatusCode.ERROR


@pytest.mark.parametrize("overrides", [{"external_max_response_bytes": 64 * 1024}])
async def test_a_huge_body_is_cut_off_at_the_cap(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, catfact_api: FakeCatFacts
) -> None:
    catfact_api.then(huge=True)
    started = asyncio.get_running_loop().time()
    answer, root = await exchange(fake, spans, "!catfact")
    assert asyncio.get_running_loop().time() - started < 3
    assert answer["content"].startswith("The cat-fact API sent too large an answer.")
    assert root.attributes[schema.OUTCOME] == "error"


async def test_an_unreachable_api_is_retried_once_then_reported(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, unused_port: int
) -> None:
    fun = bot.get_cog("Fun")
    assert fun is not None
    fun.catfact_url = f"http://127.0.0.1:{unused_port}"  # type: ignore[attr-defined]
    answer, root = await exchange(fake, spans, "!catfact")
    assert answer["content"] == f"I couldn't reach the cat-fact API. (trace `{trace_id(root)}`)"
    fetch = only_child(spans, root, "catfact.fetch")
    attempts = children(spans, fetch)
    assert len(attempts) == 2
    assert fetch.attributes[schema.API_ATTEMPTS] == 2
    # No answer: error.type is the exception's fully-qualified class name, no status code.
    for attempt in attempts:
        assert attempt.attributes[ERROR_TYPE] == "aiohttp.client_exceptions.ClientConnectorError"
        assert HTTP_RESPONSE_STATUS_CODE not in attempt.attributes
        assert attempt.attributes[SERVER_PORT] == unused_port


@pytest.mark.parametrize("overrides", [{"external_cooldown_rate": 1}])
async def test_a_second_call_within_the_cooldown_is_refused_without_error_status(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, catfact_api: FakeCatFacts
) -> None:
    await exchange(fake, spans, "!catfact")
    answer, root = await exchange(fake, spans, "!catfact")
    assert answer["content"].startswith("Slow down: try again in ")
    assert root.attributes[schema.OUTCOME] == "cooldown"
    assert root.status.status_code is StatusCode.UNSET
    assert len(catfact_api.requests) == 1
    # The cooldown is per user: someone else may still ask.
    other = fake.add_user("other")
    answer, _ = await exchange(fake, spans, "!catfact", author=other)
    assert FACT in answer["content"]


@pytest.mark.parametrize("overrides", [{"external_max_concurrency": 1}])
async def test_concurrent_calls_beyond_the_bound_are_turned_away(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, catfact_api: FakeCatFacts
) -> None:
    catfact_api.then(delay=0.5)
    other = fake.add_user("other")
    first = asyncio.create_task(exchange(fake, spans, "!catfact"))
    await asyncio.sleep(0.15)
    answer, root = await exchange(fake, spans, "!catfact", author=other)
    assert answer["content"].startswith("I'm busy with that right now")
    assert root.attributes[schema.OUTCOME] == "cooldown"
    slow, _ = await first
    assert FACT in slow["content"]


SUPPRESS_EMBEDS = 1 << 2  # Discord's message flag
HONEYCOMB = {"honeycomb_team": "acme", "honeycomb_environment": "prod"}


def honeycomb_link(root: ReadableSpan) -> str:
    """What an error reply names the trace as, with HONEYCOMB_TEAM=acme, environment prod."""
    tid = trace_id(root)
    start = int((root.start_time or 0) / 1e9)
    return (
        "<https://ui.honeycomb.io/acme/environments/prod/datasets/chatops-bot/trace"
        f"?trace_id={tid}&trace_start_ts={start - 60}&trace_end_ts={start + 3600}>"
    )


def only_unpreviewed_links(content: str) -> bool:
    """Every URL in ``content`` is wrapped in ``<>``: Discord shows no preview card for it."""
    return all(part.endswith("<") for part in content.split("https://")[:-1])


@pytest.mark.parametrize("overrides", [HONEYCOMB])
async def test_with_honeycomb_team_an_error_reply_links_its_trace_without_a_preview(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, catfact_api: FakeCatFacts
) -> None:
    catfact_api.then(status=500).then(status=503)
    answer, root = await exchange(fake, spans, "!catfact")
    content = answer["content"]
    assert content == f"The cat-fact API answered 503. (trace {honeycomb_link(root)})"
    assert only_unpreviewed_links(content)
    assert not masked_links(content)  # replies never carry masked links
    assert not answer["embeds"]
    assert answer["flags"] & SUPPRESS_EMBEDS  # and the send asks for no previews at all


@pytest.mark.parametrize("overrides", [HONEYCOMB])
async def test_a_slash_commands_error_reply_links_its_trace_too(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, catfact_api: FakeCatFacts
) -> None:
    catfact_api.then(status=500).then(status=503)
    answer, root, _ = await run_slash(fake, spans, "/catfact")
    assert answer["content"] == f"The cat-fact API answered 503. (trace {honeycomb_link(root)})"
    assert is_ephemeral(answer)
