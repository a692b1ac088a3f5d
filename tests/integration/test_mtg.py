"""``!mtg`` and ``!card`` against a fake Scryfall: embeds, Scryfall's own errors, pacing."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE
from opentelemetry.trace import StatusCode

from bot.client import ChatOpsBot
from bot.config import Settings
from bot.sandbox import FakeDiscord
from commands.mtg import Mtg
from telemetry import schema
from tests.fakes.scryfall import AMBIGUOUS, BAD_QUERY, NO_MATCH, FakeScryfall
from tests.helpers.sandbox_chat import embed_of, exchange
from tests.helpers.trace_finders import children, only_child


@pytest.fixture
def overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
def settings(settings: Settings, scryfall_api: FakeScryfall, overrides: dict[str, Any]) -> Settings:
    return settings.model_copy(
        update={"scryfall_api_url": scryfall_api.url, "external_retry_backoff_s": 0.05, **overrides}
    )


async def test_mtg_replies_with_the_top_cards_the_total_and_a_link(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, scryfall_api: FakeScryfall
) -> None:
    answer, root = await exchange(fake, spans, "!mtg t:dragon")
    embed = embed_of(answer)
    assert embed["title"] == "42 cards for t:dragon"
    assert embed["url"] == "https://scryfall.com/search?q=t%3Adragon"
    fields = embed["fields"]
    assert len(fields) == 5
    assert fields[0] == {
        "name": "Shivan Dragon",
        "value": "{4}{R}{R} · Creature \u2014 Dragon",
        "inline": False,
    }
    assert "5 of 42" in embed["footer"]["text"]
    assert root.name == "command mtg"
    assert root.attributes[schema.OUTCOME] == "ok"
    search = only_child(spans, root, "scryfall.search")
    assert search.attributes[schema.API_STATUS] == 200
    (get,) = children(spans, search)
    assert get.attributes[HTTP_RESPONSE_STATUS_CODE] == 200


async def test_mtg_encodes_the_query_for_the_api_and_for_the_link(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, scryfall_api: FakeScryfall
) -> None:
    query = 'o:"draw a card" c>=ug cmc<=3 & name:/^a/ #100%'
    answer, _ = await exchange(fake, spans, f"!mtg {query}")
    (request,) = scryfall_api.requests
    assert request.path == "/cards/search"
    assert request.query == {"q": query}
    link = embed_of(answer)["url"]
    assert link.startswith("https://scryfall.com/search?q=o%3A%22draw+a+card%22+c%3E%3Dug")
    assert parse_qs(urlsplit(link).query) == {"q": [query]}
    assert "&" not in link.split("?q=", 1)[1].replace("%26", "")


async def test_no_match_replies_with_scryfalls_details_as_bad_input(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    answer, root = await exchange(fake, spans, "!mtg nomatch")
    assert answer["content"] == NO_MATCH
    assert root.attributes[schema.OUTCOME] == "bad_input"
    assert root.status.status_code is StatusCode.UNSET
    search = only_child(spans, root, "scryfall.search")
    assert search.status.status_code is StatusCode.UNSET
    assert search.attributes[schema.API_STATUS] == 404


async def test_a_malformed_query_replies_with_scryfalls_details(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    answer, root = await exchange(fake, spans, "!mtg bad:syntax")
    assert answer["content"] == BAD_QUERY
    assert root.attributes[schema.OUTCOME] == "bad_input"
    assert root.status.status_code is StatusCode.UNSET


async def test_mtg_without_a_query_shows_usage(bot: ChatOpsBot, fake: FakeDiscord) -> None:
    answer = await fake.say("!mtg")
    assert answer is not None
    assert "Usage: `!mtg <query>`" in answer["content"]


async def test_card_shows_the_card_with_its_image(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, scryfall_api: FakeScryfall
) -> None:
    answer, root = await exchange(fake, spans, "!card shivan drgon")
    embed = embed_of(answer)
    assert embed["title"] == "Shivan Dragon"
    assert embed["image"]["url"] == "https://cards.scryfall.io/normal/shivan-dragon.jpg"
    assert scryfall_api.requests[0].query == {"fuzzy": "shivan drgon"}
    only_child(spans, root, "scryfall.card")


async def test_card_with_faces_uses_the_front_face_image_and_both_type_lines(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    answer, _ = await exchange(fake, spans, "!card delver")
    embed = embed_of(answer)
    assert embed["image"]["url"] == "https://cards.scryfall.io/normal/front/delver.jpg"
    assert embed["description"] == (
        "{U} · Creature \u2014 Human Wizard // Creature \u2014 Human Insect"
    )


async def test_an_ambiguous_name_replies_with_scryfalls_details(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    answer, root = await exchange(fake, spans, "!card dragon")
    assert answer["content"] == AMBIGUOUS
    assert root.attributes[schema.OUTCOME] == "bad_input"


@pytest.mark.parametrize(
    "overrides", [{"external_cooldown_rate": 50, "external_max_concurrency": 50}]
)
async def test_scryfall_is_paced_to_ten_requests_a_second_across_users(
    bot: ChatOpsBot,
    fake: FakeDiscord,
    spans: InMemorySpanExporter,
    scryfall_api: FakeScryfall,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Measured where the pacing happens, when the bucket lets each request go: arrival
    # at the fake server adds the client's and the server's scheduling jitter (a gap
    # of 78 ms between two requests released 100 ms apart was seen under load).
    mtg = bot.get_cog("Magic")
    assert isinstance(mtg, Mtg)
    (limiter,) = mtg.api.limiters.values()
    released: list[float] = []
    acquire = limiter.acquire

    async def timed_acquire() -> float:
        waited = await acquire()
        released.append(time.monotonic())
        return waited

    monkeypatch.setattr(limiter, "acquire", timed_acquire)
    users = [fake.add_user(f"player{n}") for n in range(11)]
    answers = await asyncio.gather(
        *(exchange(fake, spans, "!mtg t:dragon", author=user) for user in users)
    )
    assert all(embed_of(answer)["title"].startswith("42 cards") for answer, _ in answers)
    assert len(scryfall_api.requests) == len(released) == 11
    gaps = [b - a for a, b in itertools.pairwise(released)]
    span = released[-1] - released[0]
    print(f"11 Scryfall requests released over {span:.3f}s; smallest gap {min(gaps) * 1000:.1f} ms")
    # 10 a second with no burst: each release at least 100 ms after the one before
    # (less a millisecond for the event loop's clock rounding).
    assert min(gaps) >= 0.099
    assert span >= 0.99
    waited = [
        only_child(spans, root, "scryfall.search").attributes[schema.API_RATE_LIMIT_WAIT_MS]
        for _, root in answers
    ]
    assert max(waited) >= 900
