"""FakeDiscord: a Discord-compatible REST and gateway server on one local port.

An unmodified discord.py client talks to it over real sockets once pointed at
``api_base`` and ``gateway_url`` (``bot.endpoints``), so rate-limit handling,
reconnects, compression and the aiohttp client spans all run as they would
against Discord. Tests and the ``chatops console`` drive it as "the rest of
Discord": users who type, and a platform that misbehaves on request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from aiohttp import web

from bot.sandbox import mentions
from bot.sandbox.faults import Faults, bucket_headers
from bot.sandbox.gateway import RECONNECT, Gateway
from bot.sandbox.interaction_api import CommandSource, FakeInteraction, FakeInteractions
from bot.sandbox.rest import API_PREFIX, RecordedRequest, Rest
from bot.sandbox.state import JSON, FakeGuild, World


class FakeDiscord:
    """A local Discord: guilds, users, a gateway and the REST routes a bot uses."""

    def __init__(
        self,
        *,
        guild_count: int = 1,
        shard_count: int = 1,
        heartbeat_interval_ms: int = 41_250,
        first_guild_id: int | None = None,
    ) -> None:
        self.world = World(guild_count=guild_count, first_guild_id=first_guild_id)
        self.shard_count = shard_count
        self.faults = Faults()
        self.gateway = Gateway(self.world, heartbeat_interval_ms=heartbeat_interval_ms)
        self.rest = Rest(
            self.world,
            self.faults,
            gateway_url=lambda: self.gateway_url,
            shard_count=shard_count,
            on_bot_message=self._bot_message_event,
        )
        self.interactions = FakeInteractions(self.world, self._bot_message_event)
        self.api_base = ""
        self.gateway_url = ""
        self.user: JSON = self.add_user("alice")
        self._runner: web.AppRunner | None = None
        self._reply_waiters: dict[int, list[asyncio.Future[JSON]]] = {}

    # -- lifecycle --------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (0 picks a free port) and fill in the URLs."""
        app = web.Application(middlewares=[self.rest.middleware], client_max_size=64 * 1024**2)
        app.router.add_get("/gateway", self.gateway.handle)
        app.add_routes(self.rest.routes())
        app.add_routes(self.interactions.routes())
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_port = int(self._runner.addresses[0][1])
        self.api_base = f"http://{host}:{bound_port}{API_PREFIX}"
        self.gateway_url = f"ws://{host}:{bound_port}/gateway"
        self.gateway.url = self.gateway_url

    async def close(self) -> None:
        """Close every gateway connection and stop listening."""
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for waiters in self._reply_waiters.values():
            for fut in waiters:
                fut.cancel()
        self._reply_waiters.clear()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- the world --------------------------------------------------------

    @property
    def bot_user(self) -> JSON:
        """The bot's own user object (its id is also the application id)."""
        return self.world.bot_user

    @property
    def guild(self) -> FakeGuild:
        """The first guild, where default messages go."""
        return self.world.guilds[0]

    @property
    def guilds(self) -> list[FakeGuild]:
        """Every guild."""
        return self.world.guilds

    @property
    def channel_id(self) -> int:
        """The first guild's ``general`` text channel."""
        return int(self.guild.channels[0]["id"])

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every REST request, in arrival order."""
        return self.rest.requests

    @property
    def bot_messages(self) -> list[JSON]:
        """Every message the bot created, as stored (edits applied)."""
        return self.rest.bot_messages

    @property
    def identify_count(self) -> int:
        """How many IDENTIFYs the gateway accepted."""
        return self.gateway.identify_count

    @property
    def resume_count(self) -> int:
        """How many RESUMEs the gateway accepted."""
        return self.gateway.resume_count

    @property
    def compressions(self) -> list[str | None]:
        """The transport compression of each gateway connection, in order."""
        return self.gateway.compressions

    def add_user(
        self,
        name: str,
        *,
        role_ids: Sequence[int] = (),
        bot: bool = False,
        user_id: int | None = None,
    ) -> JSON:
        """A new user in every guild, holding ``role_ids`` in the first one."""
        return self.world.add_user(name, list(role_ids), bot=bot, user_id=user_id)

    def add_guild(self, name: str, *, guild_id: int | None = None) -> FakeGuild:
        """A guild the bot joins now (GUILD_CREATE), with every user a member."""
        guild = self.world.add_guild(name, guild_id)
        self.gateway.guild_joined(guild)
        return guild

    def set_roles(self, guild: FakeGuild, user: JSON, role_ids: Sequence[int]) -> None:
        """``user`` holds exactly ``role_ids`` in ``guild`` from the next message on; roles
        the guild lacks are created (GUILD_ROLE_CREATE), as an admin would in Discord."""
        for role in self.world.set_roles(guild, user, list(role_ids)):
            self.gateway.dispatch("GUILD_ROLE_CREATE", {"guild_id": str(guild.id), "role": role})

    def add_channel(self, name: str) -> int:
        """A new text channel in the first guild; add it before the bot connects."""
        return self.world.add_text_channel(name)

    def messages_in(self, channel_id: int) -> list[JSON]:
        """Every message the bot created in ``channel_id``, as stored (edits applied)."""
        return [m for m in self.bot_messages if int(m["channel_id"]) == channel_id]

    def dm_channel_id(self, user: JSON) -> int:
        """The id of ``user``'s DM channel with the bot."""
        return int(self.world.dm_channel(user)["id"])

    # -- users talk -------------------------------------------------------

    def send_message(
        self, content: str, *, author: JSON | None = None, channel_id: int | None = None
    ) -> JSON:
        """A user posts ``content``; the bot receives MESSAGE_CREATE. Returns the message."""
        channel = self.channel_id if channel_id is None else channel_id
        if channel not in self.world.channels:
            raise KeyError(f"unknown channel {channel}")
        message = self.world.message(
            channel_id=channel, author=author or self.user, content=content
        )
        self.gateway.dispatch("MESSAGE_CREATE", message)
        return message

    async def say(
        self,
        content: str,
        *,
        author: JSON | None = None,
        channel_id: int | None = None,
        timeout: float = 5.0,
    ) -> JSON | None:
        """Send a message and wait for the bot's first reply to it (None on timeout)."""
        message = self.send_message(content, author=author, channel_id=channel_id)
        return await self.first_reply(int(message["id"]), timeout=timeout)

    async def first_reply(self, message_id: int, *, timeout: float = 5.0) -> JSON | None:
        """The bot's first reply to ``message_id``, as soon as it is posted (None on timeout)."""
        mid = int(message_id)
        earlier = self.replies_so_far(mid)
        if earlier:
            return earlier[0]
        fut: asyncio.Future[JSON] = asyncio.get_running_loop().create_future()
        self._reply_waiters.setdefault(mid, []).append(fut)
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return None
        finally:
            waiters = self._reply_waiters.get(mid, [])
            if fut in waiters:
                waiters.remove(fut)
            if not waiters:
                self._reply_waiters.pop(mid, None)

    def replies_so_far(self, message_id: int) -> list[JSON]:
        """Every bot message replying to ``message_id`` posted until now, oldest first."""
        return [m for m in self.bot_messages if _reference_id(m) == int(message_id)]

    async def replies_to(self, message_id: int, *, timeout: float = 1.0) -> list[JSON]:
        """Every bot message replying to ``message_id``, after ``timeout`` for late ones."""
        await asyncio.sleep(timeout)
        return self.replies_so_far(message_id)

    def _bot_message_event(self, message: JSON, event: str) -> None:
        """A bot REST call changed a message: tell the gateway and any ``say`` waiting."""
        self.gateway.dispatch(event, message)
        if event != "MESSAGE_CREATE":
            return
        ref = _reference_id(message)
        stored = self.world.messages.get(int(message["id"]), message)
        for fut in self._reply_waiters.pop(ref, []) if ref is not None else []:
            if not fut.done():
                fut.set_result(stored)

    def would_ping(self, message: JSON) -> bool:
        """True if that bot message notifies anyone under Discord's allowed_mentions rules."""
        ref = _reference_id(message)
        target = self.world.messages.get(ref) if ref is not None else None
        return mentions.would_ping(message, None if target is None else target["author"])

    # -- the platform misbehaves -----------------------------------------

    def fail(
        self,
        method: str,
        path: str,
        *,
        status: int | None,
        times: int = 1,
        retry_after: float = 0.05,
        is_global: bool = False,
        delay: float = 0.0,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` (200/None: just ``delay``).

        ``path`` is a regex matched against the whole path after /api/v10,
        e.g. ``r"/channels/\\d+/messages"``; ``method`` may be ``"*"``.
        """
        self.faults.add(
            method,
            path,
            status=None if status == 200 else status,
            times=times,
            retry_after=retry_after,
            is_global=is_global,
            delay=delay,
        )

    def exhaust_bucket(
        self,
        method: str,
        path: str,
        *,
        reset_after: float = 1.5,
        limit: int = 5,
        bucket: str = "b0c4e7f4k3",
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` matching requests normally, but say their rate-limit
        bucket is empty (``X-RateLimit-Remaining: 0``, ``Reset-After: reset_after``).

        discord.py then waits ``reset_after`` before the bucket's next request: Discord's
        pacing without a 429.
        """
        self.faults.add(
            method,
            path,
            status=None,
            times=times,
            retry_after=reset_after,
            is_global=False,
            delay=0.0,
            headers=bucket_headers(
                remaining=0, limit=limit, reset_after=reset_after, bucket=bucket
            ),
        )

    async def drop_connection(self) -> None:
        """Close the gateway sockets with 4000, which discord.py answers with RESUME."""
        await self.gateway.drop_connection()

    async def send_reconnect(self) -> None:
        """Send op 7 RECONNECT: the client closes and RESUMEs."""
        self.gateway.resumed.clear()
        self.gateway.send_op(RECONNECT, None)

    async def send_invalid_session(self, resumable: bool = False) -> None:
        """Send op 9; unless resumable, the session is gone and the client re-IDENTIFYs."""
        self.gateway.invalidate_sessions(resumable)

    async def wait_ready(self, timeout: float = 10.0) -> None:
        """Until a client has identified and been sent READY and its GUILD_CREATEs."""
        await asyncio.wait_for(self.gateway.ready.wait(), timeout)

    async def wait_resumed(self, timeout: float = 10.0) -> None:
        """Until a client has resumed and been sent the missed events and RESUMED."""
        await asyncio.wait_for(self.gateway.resumed.wait(), timeout)

    async def dispatch(self, event: str, data: JSON) -> None:
        """Send any gateway event (routed to the shard of ``data["guild_id"]``)."""
        self.gateway.dispatch(event, data)

    # -- users use slash commands and buttons (interactions.py) -------------

    def use_commands(self, source: CommandSource) -> None:
        """Where commands come from when nothing was synced (e.g. the bot's tree, as JSON)."""
        self.interactions.source = source

    def send_command(
        self,
        line: str,
        *,
        author: JSON | None = None,
        channel_id: int | None = None,
        autocomplete: bool = False,
    ) -> FakeInteraction:
        """A user sends (or, with ``autocomplete``, is typing) ``line``: INTERACTION_CREATE."""
        interaction = self.interactions.command_interaction(
            line,
            user=author or self.user,
            channel_id=self.channel_id if channel_id is None else channel_id,
            autocomplete=autocomplete,
        )
        self.gateway.dispatch("INTERACTION_CREATE", interaction.payload)
        return interaction

    async def slash(
        self,
        line: str,
        *,
        author: JSON | None = None,
        channel_id: int | None = None,
        timeout: float = 5.0,
    ) -> JSON | None:
        """Run ``/command ...`` and return the answer the user sees (after any deferral)."""
        interaction = self.send_command(line, author=author, channel_id=channel_id)
        return await interaction.wait(timeout)

    async def autocomplete(
        self, line: str, *, author: JSON | None = None, timeout: float = 5.0
    ) -> list[JSON] | None:
        """The choices offered while ``line`` is typed (its last option focused)."""
        interaction = self.send_command(line, author=author, autocomplete=True)
        answer = await interaction.wait(timeout)
        return None if answer is None else list(answer.get("choices") or [])

    def press(
        self, message: JSON, custom_id: str, *, author: JSON | None = None
    ) -> FakeInteraction:
        """A user clicks the button ``custom_id`` on ``message``: INTERACTION_CREATE.

        The returned interaction records the bot's callbacks (``callbacks[0]["type"]``
        is 7 for an edit of the clicked message, 4 for a new, maybe ephemeral, one).
        """
        interaction = self.interactions.component_interaction(
            message, custom_id, user=author or self.user
        )
        self.gateway.dispatch("INTERACTION_CREATE", interaction.payload)
        return interaction

    async def click(
        self, message: JSON, custom_id: str, *, author: JSON | None = None, timeout: float = 5.0
    ) -> JSON | None:
        """Click the button ``custom_id`` on ``message``; the answer (or updated message)."""
        return await self.press(message, custom_id, author=author).wait(timeout)


def _reference_id(message: JSON) -> int | None:
    ref = message.get("message_reference")
    if not ref or not ref.get("message_id"):
        return None
    return int(ref["message_id"])
