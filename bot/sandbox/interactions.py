"""Button presses in the fake: INTERACTION_CREATE (type 3) and the interaction callback route.

Just enough for message components: a test presses a button on a bot message
(``click_button``), the bot's view answers through
``POST /interactions/{id}/{token}/callback`` (no bot token: the interaction
token in the path is the credential, as on Discord), and the answer is recorded
and applied (type 7 edits the message the button was on; type 4 posts a message,
ephemeral or not). Kept apart from ``rest.py`` so slash-command support can grow
beside it.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from bot.sandbox.faults import json_response
from bot.sandbox.rest import API_PREFIX, RECORD, Rest
from bot.sandbox.state import JSON, World

CALLBACK_PATH = "/interactions/{iid}/{token}/callback"
COMPONENT = 3
BUTTON = 2
CHANNEL_MESSAGE = 4
DEFERRED_UPDATE = 6
UPDATE_MESSAGE = 7
EPHEMERAL = 1 << 6


@dataclass
class Callback:
    """One interaction response as the bot sent it."""

    interaction_id: int
    type: int
    data: JSON
    user_id: int


@dataclass
class Interactions:
    world: World
    rest: Rest
    dispatch: Callable[[str, JSON], None]
    callbacks: list[Callback] = field(default_factory=list)
    _pending: dict[int, JSON] = field(default_factory=dict)
    _answered: dict[int, asyncio.Future[Callback]] = field(default_factory=dict)

    def routes(self) -> list[web.RouteDef]:
        return [web.post(API_PREFIX + CALLBACK_PATH, self.callback)]

    def click_button(self, message: JSON, custom_id: str, user: JSON) -> int:
        """``user`` presses the button ``custom_id`` on the bot's ``message``; its id."""
        stored = self.world.messages[int(message["id"])]
        iid = self.world.ids.next()
        channel_id = int(stored["channel_id"])
        channel = self.world.channels[channel_id]
        payload: JSON = {
            "id": str(iid),
            "application_id": self.world.bot_user["id"],
            "type": COMPONENT,
            "data": {"custom_id": custom_id, "component_type": BUTTON},
            "channel_id": str(channel_id),
            "channel": channel,
            "message": {k: v for k, v in stored.items() if k != "allowed_mentions"},
            "token": secrets.token_urlsafe(24),
            "version": 1,
            "locale": "en-US",
            "app_permissions": "0",
            "entitlements": [],
            "attachment_size_limit": 10 * 1024 * 1024,
            "authorizing_integration_owners": {},
        }
        guild = self.world.channel_guild.get(channel_id)
        if guild is not None:
            payload["guild_id"] = str(guild.id)
            payload["guild_locale"] = "en-US"
            member = guild.members.get(int(user["id"]))
            payload["member"] = {**(member or {}), "user": user, "permissions": "0"}
        else:
            payload["user"] = user
        self._pending[iid] = {"message_id": int(stored["id"]), "user_id": int(user["id"])}
        self._answered[iid] = asyncio.get_running_loop().create_future()
        self.dispatch("INTERACTION_CREATE", payload)
        return iid

    async def answer_to(self, interaction_id: int, timeout: float = 5.0) -> Callback:
        """The bot's callback for that press."""
        return await asyncio.wait_for(asyncio.shield(self._answered[interaction_id]), timeout)

    async def callback(self, request: web.Request) -> web.Response:
        iid = int(request.match_info["iid"])
        pending = self._pending.get(iid)
        if pending is None:
            return json_response(404, {"message": "Unknown interaction", "code": 10062})
        body: JSON = request[RECORD].json or {}
        kind = int(body.get("type", 0))
        data: JSON = body.get("data") or {}
        answer = Callback(iid, kind, data, pending["user_id"])
        self.callbacks.append(answer)
        message = self.world.messages[pending["message_id"]]
        resource: JSON = {"type": kind}
        if kind == UPDATE_MESSAGE:
            for key in ("content", "embeds", "components"):
                if key in data and data[key] is not None:
                    message[key] = data[key]
            resource["message"] = message
            self.rest.on_bot_message(message, "MESSAGE_UPDATE")
        elif kind == CHANNEL_MESSAGE:
            created = self.world.message(
                channel_id=int(message["channel_id"]),
                author=self.world.bot_user,
                content=str(data.get("content") or ""),
                extra={"flags": int(data.get("flags") or 0), "interaction_id": str(iid)},
            )
            if not int(data.get("flags") or 0) & EPHEMERAL:
                self.rest.bot_messages.append(created)
            resource["message"] = created
        future = self._answered.get(iid)
        if future is not None and not future.done():
            future.set_result(answer)
        return json_response(
            200,
            {
                "interaction": {
                    "id": str(iid),
                    "type": COMPONENT,
                    "response_message_loading": False,
                    "response_message_ephemeral": bool(int(data.get("flags") or 0) & EPHEMERAL),
                },
                "resource": resource,
            },
        )
