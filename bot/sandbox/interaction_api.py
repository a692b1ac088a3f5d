"""Interactions in the fake: INTERACTION_CREATE out, callbacks, follow-ups and command sync in.

Kept apart from ``rest.py`` (messages) because interactions have their own
life cycle, as on Discord: one callback per interaction (a second is answered
400 "already acknowledged"), a deferral leaves a "thinking…" message that the
first follow-up or an edit of ``@original`` replaces, and the interaction and
webhook routes need no bot token (the interaction token in the path is the
credential). ``FakeInteraction.answered`` resolves with the first answer a user
would see, which is what ``FakeDiscord.slash`` returns.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aiohttp import web

from bot.sandbox.command_lines import build_data, find_command, split_line
from bot.sandbox.faults import json_response
from bot.sandbox.rest import API_PREFIX, RECORD, not_found
from bot.sandbox.state import JSON, World

APPLICATION_COMMAND, COMPONENT, AUTOCOMPLETE = 2, 3, 4
CHANNEL_MESSAGE, DEFERRED_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE, AUTOCOMPLETE_RESULT = (
    4,
    5,
    6,
    7,
    8,
)
EPHEMERAL, LOADING = 1 << 6, 1 << 7
CHAT_INPUT_MESSAGE = 20

CommandSource = Callable[[], Sequence[JSON]]


@dataclass
class FakeInteraction:
    """One interaction sent to the bot, and everything the bot answered to it."""

    id: int
    token: str
    type: int
    payload: JSON
    callbacks: list[JSON] = field(default_factory=list)
    followups: list[JSON] = field(default_factory=list)
    original: JSON | None = None
    original_deleted: bool = False
    answered: asyncio.Future[JSON] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def deferred(self) -> bool:
        """Whether the bot answered "thinking…" first."""
        return any(c.get("type") in (DEFERRED_MESSAGE, DEFERRED_UPDATE) for c in self.callbacks)

    async def wait(self, timeout: float = 5.0) -> JSON | None:
        """The first answer a user sees (None if none came within ``timeout``)."""
        try:
            return await asyncio.wait_for(asyncio.shield(self.answered), timeout)
        except TimeoutError:
            return None

    def answer(self, value: JSON) -> None:
        if not self.answered.done():
            self.answered.set_result(value)


class FakeInteractions:
    """The interaction half of the fake: registered commands, sent interactions, their routes."""

    def __init__(self, world: World, on_bot_message: Callable[[JSON, str], None]) -> None:
        self.world = world
        self.on_bot_message = on_bot_message
        self.registered: dict[int | None, list[JSON]] = {}
        self.sync_count = 0
        self.source: CommandSource | None = None
        self.sent: dict[int, FakeInteraction] = {}
        self._by_token: dict[str, FakeInteraction] = {}

    @property
    def app_id(self) -> str:
        return str(self.world.bot_user["id"])

    # -- what users do ----------------------------------------------------

    def commands_for(self, guild_id: int | None) -> list[JSON]:
        """What a user in ``guild_id`` can type: guild commands, global ones, else the source."""
        found = [*self.registered.get(guild_id, []), *self.registered.get(None, [])]
        if not found and self.source is not None:
            found = list(self.source())
        return found

    def command_interaction(
        self, line: str, *, user: JSON, channel_id: int, autocomplete: bool = False
    ) -> FakeInteraction:
        """The interaction Discord sends for ``line`` typed (or being typed) in a channel."""
        guild = self.world.channel_guild.get(channel_id)
        name, rest = split_line(line)
        command = find_command(self.commands_for(guild.id if guild else None), name)
        data = build_data(command, rest, focus_last=autocomplete)
        kind = AUTOCOMPLETE if autocomplete else APPLICATION_COMMAND
        return self._create(kind, data, user=user, channel_id=channel_id)

    def component_interaction(
        self, message: JSON, custom_id: str, *, user: JSON, component_type: int = 2
    ) -> FakeInteraction:
        """A click on a component of ``message`` (a button by default)."""
        stored = self.world.messages.get(int(message["id"]), message)
        data = {"custom_id": custom_id, "component_type": component_type}
        return self._create(
            COMPONENT, data, user=user, channel_id=int(stored["channel_id"]), message=stored
        )

    def _create(
        self,
        kind: int,
        data: JSON,
        *,
        user: JSON,
        channel_id: int,
        message: JSON | None = None,
    ) -> FakeInteraction:
        world = self.world
        iid = world.ids.next()
        token = f"itoken-{iid}-{secrets.token_hex(12)}"
        channel = world.channels[channel_id]
        guild = world.channel_guild.get(channel_id)
        payload: JSON = {
            "id": str(iid),
            "application_id": self.app_id,
            "type": kind,
            "data": data,
            "token": token,
            "version": 1,
            "channel_id": str(channel_id),
            "channel": channel,
            "locale": "en-US",
            "app_permissions": "0",
            "entitlements": [],
            "attachment_size_limit": 8 * 1024 * 1024,
        }
        if guild is not None:
            member = dict(guild.members[int(user["id"])])
            member["permissions"] = _permissions(guild.roles, member["roles"], guild.id)
            payload.update(
                guild_id=str(guild.id),
                guild_locale="en-US",
                member=member,
                context=0,
                authorizing_integration_owners={"0": str(guild.id)},
            )
        else:
            payload.update(user=user, context=1, authorizing_integration_owners={"1": user["id"]})
        if message is not None:
            payload["message"] = message
        interaction = FakeInteraction(iid, token, kind, payload)
        self.sent[iid] = interaction
        self._by_token[token] = interaction
        return interaction

    # -- routes -------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        p = API_PREFIX
        hook = p + "/webhooks/{app_id}/{token}"
        apps = p + "/applications/{app_id}"
        return [
            web.post(p + "/interactions/{iid}/{token}/callback", self.callback),
            web.post(hook, self.followup),
            web.get(hook + "/messages/@original", self.get_original),
            web.patch(hook + "/messages/@original", self.edit_original),
            web.delete(hook + "/messages/@original", self.delete_original),
            web.patch(hook + "/messages/{mid}", self.edit_followup),
            web.put(apps + "/commands", self.put_commands),
            web.get(apps + "/commands", self.get_commands),
            web.put(apps + "/guilds/{gid}/commands", self.put_commands),
            web.get(apps + "/guilds/{gid}/commands", self.get_commands),
        ]

    def _interaction(self, request: web.Request) -> FakeInteraction:
        interaction = self._by_token.get(request.match_info["token"])
        if interaction is None:
            raise web.HTTPNotFound()
        if "iid" in request.match_info and str(interaction.id) != request.match_info["iid"]:
            raise web.HTTPNotFound()
        return interaction

    async def callback(self, request: web.Request) -> web.Response:
        """``POST /interactions/{id}/{token}/callback``: the one initial response."""
        interaction = self._interaction(request)
        body = dict(request[RECORD].json or await _multipart_payload(request))
        if interaction.callbacks:
            return json_response(
                400, {"message": "Interaction has already been acknowledged.", "code": 40060}
            )
        interaction.callbacks.append(body)
        kind, data = int(body.get("type", 0)), dict(body.get("data") or {})
        message: JSON | None = None
        if kind == CHANNEL_MESSAGE:
            message = self._new_message(interaction, data)
            interaction.original = message
            interaction.answer(message)
        elif kind == DEFERRED_MESSAGE:
            flags = LOADING | (int(data.get("flags") or 0) & EPHEMERAL)
            message = self._new_message(interaction, {"content": "", "flags": flags})
            interaction.original = message
        elif kind == UPDATE_MESSAGE:
            message = self._edit(self._clicked(interaction), data)
            interaction.answer(message)
        elif kind == AUTOCOMPLETE_RESULT:
            interaction.answer({"choices": data.get("choices") or []})
        elif kind != DEFERRED_UPDATE:
            interaction.answer(body)
        if request.query.get("with_response") not in ("1", "true"):
            return web.Response(status=204)
        return json_response(200, _callback_body(interaction, kind, message))

    async def followup(self, request: web.Request) -> web.Response:
        """``POST /webhooks/{app}/{token}``: after a deferral the first one replaces "thinking…"."""
        interaction = self._interaction(request)
        data = dict(request[RECORD].json or await _multipart_payload(request))
        original = interaction.original
        if original is not None and not interaction.original_deleted and _loading(original):
            data["flags"] = int(original["flags"]) & EPHEMERAL
            message = self._edit(original, data)
        else:
            message = self._new_message(interaction, data)
        interaction.followups.append(message)
        interaction.answer(message)
        return json_response(200, message)

    async def get_original(self, request: web.Request) -> web.Response:
        interaction = self._interaction(request)
        if interaction.original is None or interaction.original_deleted:
            return json_response(404, {"message": "Unknown Message", "code": 10008})
        return json_response(200, interaction.original)

    async def edit_original(self, request: web.Request) -> web.Response:
        interaction = self._interaction(request)
        original = interaction.original
        if original is None or interaction.original_deleted:
            return json_response(404, {"message": "Unknown Message", "code": 10008})
        data = dict(request[RECORD].json or await _multipart_payload(request))
        message = self._edit(original, data)
        interaction.answer(message)
        return json_response(200, message)

    async def delete_original(self, request: web.Request) -> web.Response:
        interaction = self._interaction(request)
        if interaction.original is None or interaction.original_deleted:
            return json_response(404, {"message": "Unknown Message", "code": 10008})
        interaction.original_deleted = True
        self.world.messages.pop(int(interaction.original["id"]), None)
        return web.Response(status=204)

    async def edit_followup(self, request: web.Request) -> web.Response:
        interaction = self._interaction(request)
        for message in interaction.followups:
            if message["id"] == request.match_info["mid"]:
                data = dict(request[RECORD].json or await _multipart_payload(request))
                return json_response(200, self._edit(message, data))
        return json_response(404, {"message": "Unknown Message", "code": 10008})

    async def put_commands(self, request: web.Request) -> web.Response:
        """Bulk overwrite (what ``tree.sync`` does): the list replaces what was registered."""
        if request.match_info["app_id"] != self.app_id:
            return not_found()
        gid = int(request.match_info["gid"]) if "gid" in request.match_info else None
        registered = [self._registered(c, gid) for c in request[RECORD].json or []]
        self.registered[gid] = registered
        self.sync_count += 1
        return json_response(200, registered)

    async def get_commands(self, request: web.Request) -> web.Response:
        gid = int(request.match_info["gid"]) if "gid" in request.match_info else None
        return json_response(200, self.registered.get(gid, []))

    # -- messages -----------------------------------------------------------

    def _registered(self, command: JSON, guild_id: int | None) -> JSON:
        out = {
            **command,
            "id": str(self.world.ids.next()),
            "application_id": self.app_id,
            "version": str(self.world.ids.next()),
            "type": command.get("type", 1),
            "description": command.get("description", ""),
        }
        if guild_id is not None:
            out["guild_id"] = str(guild_id)
        return out

    def _new_message(self, interaction: FakeInteraction, data: JSON) -> JSON:
        flags = int(data.get("flags") or 0)
        message = self.world.message(
            channel_id=int(interaction.payload["channel_id"]),
            author=self.world.bot_user,
            content=str(data.get("content") or ""),
            extra={
                "type": CHAT_INPUT_MESSAGE if interaction.type == APPLICATION_COMMAND else 0,
                "embeds": data.get("embeds") or [],
                "components": data.get("components") or [],
                "flags": flags,
                "webhook_id": self.app_id,
                "application_id": self.app_id,
                **_mentions_of(data),
            },
        )
        if not flags & EPHEMERAL:
            self.on_bot_message(message, "MESSAGE_CREATE")
        return message

    def _edit(self, message: JSON, data: JSON) -> JSON:
        for key in ("content", "embeds", "components", "allowed_mentions"):
            if key in data and data[key] is not None:
                message[key] = data[key]
        flags = int(data["flags"]) if data.get("flags") is not None else int(message["flags"])
        message["flags"] = flags & ~LOADING
        if not message["flags"] & EPHEMERAL:
            self.on_bot_message(message, "MESSAGE_UPDATE")
        return message

    def _clicked(self, interaction: FakeInteraction) -> JSON:
        clicked: JSON | None = interaction.payload.get("message")
        if clicked is None:
            raise web.HTTPBadRequest()
        stored: JSON = self.world.messages.get(int(clicked["id"]), clicked)
        return stored


def _loading(message: JSON) -> bool:
    return bool(int(message.get("flags") or 0) & LOADING)


def _mentions_of(data: JSON) -> JSON:
    allowed = data.get("allowed_mentions")
    return {"allowed_mentions": allowed} if allowed is not None else {}


def _callback_body(interaction: FakeInteraction, kind: int, message: JSON | None) -> JSON:
    flags = int(message.get("flags") or 0) if message is not None else 0
    body: JSON = {
        "interaction": {
            "id": str(interaction.id),
            "type": interaction.type,
            "response_message_loading": bool(flags & LOADING),
            "response_message_ephemeral": bool(flags & EPHEMERAL),
        },
        "resource": {"type": kind},
    }
    if message is not None:
        body["interaction"]["response_message_id"] = message["id"]
        body["resource"]["message"] = message
    return body


def _permissions(roles: list[JSON], member_roles: list[str], everyone_id: int) -> str:
    """A member's guild-wide permissions as Discord computes them for ``member.permissions``."""
    held = {str(everyone_id), *member_roles}
    value = 0
    for role in roles:
        if role["id"] in held:
            value |= int(role["permissions"])
    return str(value)


async def _multipart_payload(request: web.Request) -> JSON:
    """``payload_json`` of a multipart body (files are not kept)."""
    import json

    if not request.content_type.startswith("multipart/"):
        return {}
    reader = await request.multipart()
    while True:
        part = await reader.next()
        if part is None:
            return {}
        if getattr(part, "name", None) == "payload_json":
            data = await part.read()  # type: ignore[union-attr]
            payload: JSON = json.loads(data)
            record = request[RECORD]
            record.json = payload
            return payload
