"""REST routes under /api/v10: the subset discord.py uses to log in and to reply.

Every request is recorded (what the bot asked, what it was answered) because
tests assert on the traffic itself: one POST per reply, retries after a 429,
no tracing headers sent to Discord. Answers are shaped after Discord's JSON so
discord.py parses them with its ordinary code paths.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web

from bot.sandbox.faults import Faults, json_response, rate_limited, server_error
from bot.sandbox.mentions import pinged
from bot.sandbox.state import JSON, World, iso

API_PREFIX = "/api/v10"
REJECTED_TOKEN = "bad-token"
# Interaction callbacks and webhooks authenticate by the token in the path, as on Discord.
TOKEN_IN_PATH = ("/interactions/", "/webhooks/")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class RecordedRequest:
    """One REST request as the fake saw it, and the status it answered."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any = None
    status: int = 0
    time: float = field(default_factory=time.time)
    query: dict[str, str] = field(default_factory=dict)


RECORD = web.RequestKey("record", RecordedRequest)


def not_found() -> web.Response:
    """Discord's JSON 404 (discord.py raises ``NotFound`` with its message)."""
    return json_response(404, {"message": "404: Not Found", "code": 0})


def unauthorized() -> web.Response:
    """Discord's 401 for a missing or rejected token (``LoginFailure`` at login)."""
    return json_response(401, {"message": "401: Unauthorized", "code": 0})


def _public(message: JSON) -> JSON:
    """A stored message as Discord returns it (it never echoes ``allowed_mentions``)."""
    return {k: v for k, v in message.items() if k != "allowed_mentions"}


def _shallow(message: JSON) -> JSON:
    """A referenced message as embedded in a reply (without its own reference chain)."""
    return {k: v for k, v in _public(message).items() if k != "referenced_message"}


class Rest:
    """The REST half of the fake: routes, request log and the bot's messages."""

    def __init__(
        self,
        world: World,
        faults: Faults,
        *,
        gateway_url: Callable[[], str],
        shard_count: int,
        on_bot_message: Callable[[JSON, str], None],
    ) -> None:
        self.world = world
        self.faults = faults
        self.gateway_url = gateway_url
        self.shard_count = shard_count
        self.on_bot_message = on_bot_message
        self.requests: list[RecordedRequest] = []
        self.bot_messages: list[JSON] = []
        self.deleted_message_ids: set[int] = set()
        # The Message Content intent switched on in the portal (GATEWAY_MESSAGE_CONTENT_LIMITED,
        # as for a bot in fewer than 100 servers); a test sets 0 to switch it off.
        self.application_flags = 1 << 19

    def routes(self) -> list[web.RouteDef]:
        """The route table, mounted under /api/v10."""
        p = API_PREFIX
        msg = p + "/channels/{cid}/messages/{mid}"
        return [
            web.get(p + "/users/@me", self.get_me),
            web.get(p + "/oauth2/applications/@me", self.get_application),
            web.get(p + "/applications/@me", self.get_application),
            web.get(p + "/gateway", self.get_gateway),
            web.get(p + "/gateway/bot", self.get_gateway_bot),
            web.post(p + "/users/@me/channels", self.open_dm),
            web.get(p + "/channels/{cid}", self.get_channel),
            web.post(p + "/channels/{cid}/messages", self.create_message),
            web.post(p + "/channels/{cid}/typing", self.typing),
            web.get(msg, self.get_message),
            web.patch(msg, self.edit_message),
            web.delete(msg, self.delete_message),
            web.put(msg + "/reactions/{emoji}/@me", self.add_reaction),
            web.delete(msg + "/reactions/{emoji}/@me", self.remove_reaction),
        ]

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Record, authenticate, inject faults, and turn routing misses into JSON 404s."""
        if not request.path.startswith(API_PREFIX):
            try:
                return await handler(request)
            except web.HTTPNotFound:
                return not_found()
        path = request.path[len(API_PREFIX) :] or "/"
        record = RecordedRequest(
            method=request.method,
            path=path,
            headers=dict(request.headers),
            query=dict(request.query),
        )
        self.requests.append(record)
        request[RECORD] = record
        if request.content_type == "application/json" and request.can_read_body:
            try:
                record.json = await request.json()
            except ValueError:
                record.json = None
        response = await self._answer(request, handler, record)
        record.status = response.status
        return response

    async def _answer(
        self, request: web.Request, handler: Handler, record: RecordedRequest
    ) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        token_in_path = record.path.startswith(TOKEN_IN_PATH)
        if not token_in_path and (not auth.startswith("Bot ") or auth[4:] == REJECTED_TOKEN):
            return unauthorized()
        fault = self.faults.take(request.method, record.path)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status == 429:
                return rate_limited(fault)
            if fault.status is not None and fault.status >= 300:
                return server_error(fault.status)
        try:
            response = await handler(request)
            if fault is not None and fault.headers:
                response.headers.update(fault.headers)
            return response
        except web.HTTPNotFound:
            return not_found()
        except web.HTTPMethodNotAllowed:
            return json_response(405, {"message": "405: Method Not Allowed", "code": 0})

    # -- identity ---------------------------------------------------------

    async def get_me(self, request: web.Request) -> web.Response:
        """The bot's own user, the first call of discord.py's login."""
        return json_response(200, self.world.bot_user)

    async def get_application(self, request: web.Request) -> web.Response:
        """The application discord.py fetches right after ``/users/@me`` (also
        ``/applications/@me``, where ``chatops doctor`` reads the intent flags)."""
        bot_user = self.world.bot_user
        return json_response(
            200,
            {
                "id": bot_user["id"],
                "name": bot_user["username"],
                "description": "chatops sandbox application",
                "icon": None,
                "rpc_origins": [],
                "bot_public": False,
                "bot_require_code_grant": False,
                "owner": self.world.owner,
                "team": None,
                "verify_key": "0" * 64,
                "flags": self.application_flags,
                "summary": "",
                "bot": bot_user,
                "interactions_endpoint_url": None,
                "redirect_uris": [],
                "tags": [],
            },
        )

    async def get_gateway(self, request: web.Request) -> web.Response:
        """``GET /gateway``: where the websocket is."""
        return json_response(200, {"url": self.gateway_url()})

    async def get_gateway_bot(self, request: web.Request) -> web.Response:
        """``GET /gateway/bot``: the websocket, the shard count and the identify budget."""
        return json_response(
            200,
            {
                "url": self.gateway_url(),
                "shards": self.shard_count,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 14_400_000,
                    "max_concurrency": 1,
                },
            },
        )

    # -- channels ---------------------------------------------------------

    def _channel(self, request: web.Request) -> tuple[int, JSON]:
        try:
            cid = int(request.match_info["cid"])
        except ValueError:
            raise web.HTTPNotFound() from None
        channel = self.world.channels.get(cid)
        if channel is None:
            raise web.HTTPNotFound()
        return cid, channel

    def _stored(self, request: web.Request) -> JSON:
        cid, _ = self._channel(request)
        try:
            mid = int(request.match_info["mid"])
        except ValueError:
            raise web.HTTPNotFound() from None
        message = self.world.messages.get(mid)
        if message is None or int(message["channel_id"]) != cid:
            raise web.HTTPNotFound()
        return message

    async def get_channel(self, request: web.Request) -> web.Response:
        """A channel object."""
        _, channel = self._channel(request)
        return json_response(200, channel)

    async def open_dm(self, request: web.Request) -> web.Response:
        """Open (or return) the DM channel with ``recipient_id``."""
        body = request[RECORD].json or {}
        user = self.world.users.get(int(body.get("recipient_id", 0)))
        if user is None:
            return not_found()
        return json_response(200, self.world.dm_channel(user))

    async def typing(self, request: web.Request) -> web.Response:
        """Typing indicator: accepted, nothing to show."""
        self._channel(request)
        return web.Response(status=204)

    # -- messages ---------------------------------------------------------

    async def _read_message_body(self, request: web.Request) -> tuple[JSON, list[JSON]]:
        """The JSON payload and the uploaded files (name, size, type) of a create/edit."""
        record: RecordedRequest = request[RECORD]
        if not request.content_type.startswith("multipart/"):
            return dict(record.json or {}), []
        payload: JSON = {}
        files: list[JSON] = []
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                continue
            data = await part.read()
            name = part.name or ""
            if name == "payload_json":
                payload = json.loads(data)
            elif name.startswith("files["):
                files.append(
                    {
                        "filename": part.filename or name,
                        "size": len(data),
                        "content_type": part.headers.get("Content-Type"),
                    }
                )
        record.json = payload
        return payload, files

    def _attachments(self, files: list[JSON]) -> list[JSON]:
        out = []
        for f in files:
            aid = self.world.ids.next()
            url = f"https://cdn.discordapp.invalid/attachments/{aid}/{f['filename']}"
            out.append(
                {
                    "id": str(aid),
                    "filename": f["filename"],
                    "size": f["size"],
                    "content_type": f["content_type"],
                    "url": url,
                    "proxy_url": url,
                }
            )
        return out

    def _replied_author(self, message: JSON) -> JSON | None:
        ref = message.get("message_reference")
        if not ref or not ref.get("message_id"):
            return None
        target = self.world.messages.get(int(ref["message_id"]))
        return None if target is None else target["author"]

    def _apply_mentions(self, message: JSON) -> None:
        """Recompute mentions as Discord does: only what allowed_mentions lets through."""
        users, roles, everyone = pinged(message, self._replied_author(message))
        known = self.world.users
        message["mentions"] = [known[u] for u in users if u in known]
        message["mention_roles"] = [str(r) for r in roles]
        message["mention_everyone"] = everyone

    async def create_message(self, request: web.Request) -> web.Response:
        """The bot posts a message (JSON or multipart with files)."""
        cid, _ = self._channel(request)
        payload, files = await self._read_message_body(request)
        extra: JSON = {
            "embeds": payload.get("embeds") or [],
            "attachments": self._attachments(files),
            "components": payload.get("components") or [],
            "tts": bool(payload.get("tts", False)),
            "flags": int(payload.get("flags") or 0),
        }
        if "nonce" in payload:
            extra["nonce"] = payload["nonce"]
        if payload.get("allowed_mentions") is not None:
            extra["allowed_mentions"] = payload["allowed_mentions"]
        ref = payload.get("message_reference")
        if ref:
            ref_id = int(ref["message_id"])
            target = self.world.messages.get(ref_id)
            if target is None and ref.get("fail_if_not_exists", True):
                return json_response(
                    400,
                    {
                        "message": "Invalid Form Body",
                        "code": 50035,
                        "errors": {
                            "message_reference": {"_errors": [{"code": "REPLIES_UNKNOWN_MESSAGE"}]}
                        },
                    },
                )
            extra["type"] = 19
            extra["message_reference"] = {
                "type": 0,
                "message_id": str(ref_id),
                "channel_id": str(ref.get("channel_id") or cid),
                **({"guild_id": str(ref["guild_id"])} if ref.get("guild_id") else {}),
            }
            extra["referenced_message"] = (
                None
                if target is None
                else {k: v for k, v in target.items() if k != "referenced_message"}
            )
        message = self.world.message(
            channel_id=cid,
            author=self.world.bot_user,
            content=str(payload.get("content") or ""),
            extra=extra,
        )
        self._apply_mentions(message)
        self.bot_messages.append(message)
        public = _public(message)
        self.on_bot_message(public, "MESSAGE_CREATE")
        return json_response(200, public)

    async def get_message(self, request: web.Request) -> web.Response:
        """A stored message."""
        return json_response(200, _public(self._stored(request)))

    async def edit_message(self, request: web.Request) -> web.Response:
        """Edit one of the bot's messages; the stored object changes in place."""
        message = self._stored(request)
        if message["author"]["id"] != self.world.bot_user["id"]:
            return json_response(
                403, {"message": "Cannot edit a message authored by another user", "code": 50005}
            )
        payload, files = await self._read_message_body(request)
        for key in ("content", "embeds", "components", "flags", "allowed_mentions"):
            if key in payload and payload[key] is not None:
                message[key] = payload[key]
        if files or "attachments" in payload:
            kept_ids = {str(a.get("id")) for a in payload.get("attachments") or []}
            kept = [a for a in message["attachments"] if a["id"] in kept_ids]
            message["attachments"] = kept + self._attachments(files)
        message["edited_timestamp"] = iso(self.world.ids.next())
        self._apply_mentions(message)
        public = _public(message)
        self.on_bot_message(public, "MESSAGE_UPDATE")
        return json_response(200, public)

    async def delete_message(self, request: web.Request) -> web.Response:
        """Delete a message; ``bot_messages`` keeps it, ``deleted_message_ids`` says so."""
        message = self._stored(request)
        mid = int(message["id"])
        del self.world.messages[mid]
        self.deleted_message_ids.add(mid)
        event: JSON = {"id": message["id"], "channel_id": message["channel_id"]}
        if "guild_id" in message:
            event["guild_id"] = message["guild_id"]
        self.on_bot_message(event, "MESSAGE_DELETE")
        return web.Response(status=204)

    async def add_reaction(self, request: web.Request) -> web.Response:
        """The bot reacts; the reaction is kept on the stored message."""
        message = self._stored(request)
        emoji = request.match_info["emoji"]
        for reaction in message["reactions"]:
            if reaction["emoji"]["name"] == emoji:
                if not reaction["me"]:
                    reaction["me"] = True
                    reaction["count"] += 1
                break
        else:
            message["reactions"].append(
                {"emoji": {"id": None, "name": emoji}, "count": 1, "me": True}
            )
        return web.Response(status=204)

    async def remove_reaction(self, request: web.Request) -> web.Response:
        """The bot removes its reaction."""
        message = self._stored(request)
        emoji = request.match_info["emoji"]
        for reaction in list(message["reactions"]):
            if reaction["emoji"]["name"] == emoji and reaction["me"]:
                reaction["me"] = False
                reaction["count"] -= 1
                if reaction["count"] <= 0:
                    message["reactions"].remove(reaction)
        return web.Response(status=204)
