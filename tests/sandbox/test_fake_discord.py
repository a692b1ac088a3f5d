"""An unmodified discord.py bot against FakeDiscord, over real sockets."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable

import aiohttp
import discord
import pytest
from discord.ext import commands

from bot.sandbox import FakeDiscord
from tests.helpers.plain_discord_bot import make_plain_bot, running_bot
from tests.helpers.sandbox_chat import listeners_done, until

MESSAGES = r"/channels/\d+/messages"


def posts(fake: FakeDiscord) -> list[int]:
    """Statuses answered to the bot's message POSTs, in order."""
    return [r.status for r in fake.requests if r.method == "POST" and r.path.endswith("/messages")]


async def test_bot_connects_and_answers_ping(fake: FakeDiscord, plain_bot: commands.Bot) -> None:
    started = time.perf_counter()
    reply = await fake.say("!ping")
    elapsed = time.perf_counter() - started
    print(f"\n!ping round trip: {elapsed * 1000:.1f} ms")

    assert reply is not None
    assert reply["content"] == "pong"
    assert reply["type"] == 19
    assert reply["author"]["id"] == fake.bot_user["id"]
    assert reply["allowed_mentions"] == {"parse": [], "replied_user": False}
    assert fake.identify_count == 1
    assert plain_bot.user is not None and str(plain_bot.user.id) == fake.bot_user["id"]
    me = fake.requests[0]
    assert (me.method, me.path, me.headers["Authorization"]) == (
        "GET",
        "/users/@me",
        "Bot test-token",
    )


@pytest.mark.parametrize("is_global", [False, True])
async def test_rate_limited_reply_is_retried_and_arrives_once(
    fake: FakeDiscord, plain_bot: commands.Bot, is_global: bool
) -> None:
    fake.fail("POST", MESSAGES, status=429, retry_after=0.1, is_global=is_global)

    sent = fake.send_message("!ping")
    assert await fake.first_reply(int(sent["id"]), timeout=10) is not None
    await listeners_done()  # the plain bot's on_message, where a second reply would come from
    replies = fake.replies_so_far(int(sent["id"]))

    assert [r["content"] for r in replies] == ["pong"]
    assert posts(fake) == [429, 200]


async def test_server_error_is_retried_then_succeeds(
    fake: FakeDiscord, plain_bot: commands.Bot
) -> None:
    # discord.py sleeps 1 s before retrying a 500 (1 + 2 * tries).
    fake.fail("POST", MESSAGES, status=500)

    reply = await fake.say("!ping", timeout=3)

    assert reply is not None and reply["content"] == "pong"
    assert posts(fake) == [500, 200]


async def test_dropped_connection_resumes_and_replays_missed_messages(
    fake: FakeDiscord, plain_bot: commands.Bot
) -> None:
    await fake.drop_connection()
    # Sent while the bot is away: RESUME must replay it.
    reply = await fake.say("!ping")
    await fake.wait_resumed()

    assert reply is not None and reply["content"] == "pong"
    assert (fake.resume_count, fake.identify_count) == (1, 1)


async def test_reconnect_opcode_makes_the_bot_resume(
    fake: FakeDiscord, plain_bot: commands.Bot
) -> None:
    await fake.send_reconnect()
    await fake.wait_resumed()

    reply = await fake.say("!ping")

    assert reply is not None and reply["content"] == "pong"
    assert (fake.resume_count, fake.identify_count) == (1, 1)


async def test_invalid_session_makes_the_bot_identify_again(
    fake: FakeDiscord, plain_bot: commands.Bot
) -> None:
    async def identify_now(shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py's default hook sleeps 5 s before every non-initial IDENTIFY."""

    plain_bot.before_identify_hook = identify_now  # type: ignore[method-assign]
    await fake.send_invalid_session(resumable=False)
    await until(lambda: fake.identify_count == 2)
    await fake.wait_ready()

    reply = await fake.say("!ping")

    assert reply is not None and reply["content"] == "pong"
    assert fake.resume_count == 0


async def test_gateway_traffic_is_zlib_stream_compressed(
    fake: FakeDiscord, plain_bot: commands.Bot
) -> None:
    reply = await fake.say("!ping")

    assert reply is not None
    assert fake.compressions == ["zlib-stream"]


async def test_2500_guilds_reach_the_bot_cache(point_at: Callable[[FakeDiscord], None]) -> None:
    async with FakeDiscord(guild_count=2500) as fake:
        point_at(fake)
        started = time.perf_counter()
        async with running_bot(fake) as bot:
            await until(lambda: len(bot.guilds) == 2500)
            elapsed = time.perf_counter() - started
            print(f"\n2,500 guilds: login to full cache in {elapsed * 1000:.0f} ms")
            assert {g.id for g in bot.guilds} == {g.id for g in fake.guilds}
            general = bot.get_channel(fake.channel_id)
            assert isinstance(general, discord.TextChannel) and general.name == "general"


async def test_would_ping_follows_allowed_mentions(
    fake: FakeDiscord, plain_bot: commands.Bot
) -> None:
    channel = plain_bot.get_channel(fake.channel_id)
    assert isinstance(channel, discord.TextChannel)

    await channel.send(
        "@everyone deploy done", allowed_mentions=discord.AllowedMentions(everyone=True)
    )
    await channel.send("@everyone deploy done", allowed_mentions=discord.AllowedMentions.none())
    await channel.send("hello")  # the bot's default here is AllowedMentions.none()

    loud, quiet, default = fake.bot_messages
    assert fake.would_ping(loud) is True
    assert loud["mention_everyone"] is True
    assert fake.would_ping(quiet) is False
    assert fake.would_ping(default) is False


async def test_unknown_route_is_a_json_404(fake: FakeDiscord) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(fake.api_base + "/no/such/route", headers={"Authorization": "Bot t"}) as resp,
    ):
        body = await resp.json()
        content_type = resp.headers["Content-Type"]

    assert resp.status == 404
    assert content_type == "application/json"
    assert body == {"message": "404: Not Found", "code": 0}
    assert fake.requests[-1].status == 404


async def test_bad_token_is_rejected_at_login(
    fake: FakeDiscord, point_at: Callable[[FakeDiscord], None]
) -> None:
    point_at(fake)
    bot = make_plain_bot()
    try:
        with pytest.raises(discord.LoginFailure):
            await bot.login("bad-token")
    finally:
        await bot.close()

    assert fake.requests[-1].status == 401
    assert fake.identify_count == 0


async def test_sharded_bot_gets_each_guild_on_its_shard(
    point_at: Callable[[FakeDiscord], None],
) -> None:
    async with FakeDiscord(guild_count=50, shard_count=2) as fake:
        point_at(fake)
        bot = commands.AutoShardedBot(
            command_prefix="!",
            intents=discord.Intents(guilds=True),
            guild_ready_timeout=0.05,
        )

        async def identify_now(shard_id: int | None, *, initial: bool = False) -> None:
            """The default hook waits 5 s between shards (max_concurrency 1)."""

        bot.before_identify_hook = identify_now  # type: ignore[method-assign]
        task = asyncio.create_task(bot.start("test-token"))
        try:
            await fake.wait_ready()
            await until(lambda: len(bot.guilds) == 50)
            assert fake.identify_count == 2
            assert bot.shard_count == 2
            for guild in bot.guilds:
                assert guild.shard_id == (guild.id >> 22) % 2
            assert {g.shard_id for g in bot.guilds} == {0, 1}
        finally:
            await bot.close()
            await asyncio.wait_for(task, 5)


async def test_file_upload_is_stored_with_name_and_size(
    fake: FakeDiscord, plain_bot: commands.Bot
) -> None:
    channel = plain_bot.get_channel(fake.channel_id)
    assert isinstance(channel, discord.TextChannel)

    sent = await channel.send("report", file=discord.File(io.BytesIO(b"x" * 1234), "report.txt"))
    await sent.edit(content="report (edited)")

    stored = fake.bot_messages[-1]
    assert stored["content"] == "report (edited)"
    assert stored["edited_timestamp"] is not None
    assert [(a["filename"], a["size"]) for a in stored["attachments"]] == [("report.txt", 1234)]
    assert sent.attachments[0].filename == "report.txt"
