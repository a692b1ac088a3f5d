"""The fake's world: users, guilds, channels, messages and their ids.

Everything here is plain dicts shaped like Discord's JSON, because the point of
the sandbox is that discord.py parses exactly what Discord would send. Payloads
that are sent often (a guild's GUILD_CREATE) are serialised once and cached, so a
2,500-guild start-up costs string joins, not dict building.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

JSON = dict[str, Any]

DISCORD_EPOCH_MS = 1_420_070_400_000
ADMINISTRATOR = 1 << 3
# What Discord gives @everyone in a new server (view, send, read history, ...).
EVERYONE_PERMISSIONS = "1071698660929"
OPS_PERMISSIONS = str((1 << 10) | (1 << 11) | (1 << 16) | (1 << 13))

USER_MENTION = re.compile(r"<@!?(\d+)>")
ROLE_MENTION = re.compile(r"<@&(\d+)>")
EVERYONE_MENTION = re.compile(r"@(everyone|here)\b")


def snowflake_at(ms: int, increment: int = 0) -> int:
    """A snowflake for a Unix time in milliseconds (worker 1, process 0)."""
    return ((ms - DISCORD_EPOCH_MS) << 22) | (1 << 17) | (increment & 0xFFF)


def snowflake_time(snowflake: int) -> datetime:
    """When a snowflake was made, as Discord's timestamps say it."""
    return datetime.fromtimestamp(((snowflake >> 22) + DISCORD_EPOCH_MS) / 1000, tz=UTC)


def iso(snowflake: int) -> str:
    """The ISO-8601 timestamp Discord puts on an object with this id."""
    return snowflake_time(snowflake).isoformat()


class Snowflakes:
    """Realistic, strictly increasing ids: discord.py sorts and dates by them."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        """A fresh id, later than every id handed out before."""
        candidate = snowflake_at(int(time.time() * 1000))
        self._last = max(candidate, self._last + 1)
        return self._last


def make_user(user_id: int, name: str, *, bot: bool = False) -> JSON:
    """A user object as REST and the gateway send it."""
    return {
        "id": str(user_id),
        "username": name,
        "global_name": None if bot else name.capitalize(),
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
        "system": False,
        "public_flags": 0,
        "flags": 0,
    }


def make_member(user: JSON, role_ids: list[int], joined: str) -> JSON:
    """A guild member (``flags`` is required by discord.py's Member)."""
    return {
        "user": user,
        "roles": [str(r) for r in role_ids],
        "nick": None,
        "joined_at": joined,
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "pending": False,
        "flags": 0,
        "avatar": None,
    }


@dataclass
class FakeGuild:
    """One guild: the ids tests need plus the cached GUILD_CREATE body."""

    id: int
    name: str
    owner_id: int
    channels: list[JSON] = field(default_factory=list)
    roles: list[JSON] = field(default_factory=list)
    members: dict[int, JSON] = field(default_factory=dict)
    _create_json: str | None = field(default=None, repr=False)

    @property
    def everyone_role_id(self) -> int:
        """@everyone's id is the guild's id, as on Discord."""
        return self.id

    def role_id(self, name: str) -> int:
        """The id of the role called ``name`` (e.g. ``"admin"``)."""
        for role in self.roles:
            if role["name"] == name:
                return int(role["id"])
        raise KeyError(name)

    def channel(self, channel_id: int) -> JSON | None:
        """The channel with that id, if it is in this guild."""
        for ch in self.channels:
            if int(ch["id"]) == channel_id:
                return ch
        return None

    def invalidate(self) -> None:
        """Forget the cached GUILD_CREATE after members, roles or channels change."""
        self._create_json = None

    def create_json(self, bot_member: JSON) -> str:
        """GUILD_CREATE's ``d`` as JSON text, built once.

        Only the bot's own member is listed (as Discord does without the members
        intent for a large guild); ``member_count`` still counts everyone.
        """
        if self._create_json is None:
            payload = {
                "id": str(self.id),
                "name": self.name,
                "icon": None,
                "owner_id": str(self.owner_id),
                "unavailable": False,
                "large": False,
                "member_count": len(self.members),
                "joined_at": bot_member["joined_at"],
                "verification_level": 0,
                "default_message_notifications": 1,
                "explicit_content_filter": 0,
                "features": [],
                "mfa_level": 0,
                "nsfw_level": 0,
                "premium_tier": 0,
                "preferred_locale": "en-US",
                "system_channel_id": self.channels[0]["id"] if self.channels else None,
                "roles": self.roles,
                "channels": self.channels,
                "members": [bot_member],
                "emojis": [],
                "stickers": [],
                "threads": [],
                "presences": [],
                "voice_states": [],
                "stage_instances": [],
                "guild_scheduled_events": [],
                "soundboard_sounds": [],
            }
            self._create_json = json.dumps(payload, separators=(",", ":"))
        return self._create_json


def make_role(role_id: int, name: str, permissions: str, position: int) -> JSON:
    """A role object."""
    return {
        "id": str(role_id),
        "name": name,
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": position,
        "permissions": permissions,
        "managed": False,
        "mentionable": True,
        "flags": 0,
    }


def make_text_channel(channel_id: int, guild_id: int, name: str, position: int) -> JSON:
    """A guild text channel (type 0)."""
    return {
        "id": str(channel_id),
        "type": 0,
        "guild_id": str(guild_id),
        "name": name,
        "position": position,
        "permission_overwrites": [],
        "topic": None,
        "nsfw": False,
        "parent_id": None,
        "rate_limit_per_user": 0,
        "last_message_id": None,
        "flags": 0,
    }


class World:
    """Users, guilds, DM channels and messages, indexed the way routes look them up."""

    def __init__(self, *, guild_count: int, first_guild_id: int | None = None) -> None:
        self.ids = Snowflakes()
        now_ms = int(time.time() * 1000)
        # Created "a while ago", so every later id is newer than these.
        self.bot_user = make_user(snowflake_at(now_ms - 10_000_000), "chatops", bot=True)
        self.owner = make_user(snowflake_at(now_ms - 10_000_001), "owner")
        self.users: dict[int, JSON] = {
            int(self.bot_user["id"]): self.bot_user,
            int(self.owner["id"]): self.owner,
        }
        self.guilds: list[FakeGuild] = []
        self.guilds_by_id: dict[int, FakeGuild] = {}
        self.channels: dict[int, JSON] = {}
        self.channel_guild: dict[int, FakeGuild] = {}
        self.dm_channels: dict[int, JSON] = {}
        self.messages: dict[int, JSON] = {}
        joined = iso(int(self.bot_user["id"]))
        self.bot_member = make_member(self.bot_user, [], joined)
        for index in range(guild_count):
            # One millisecond apart: (id >> 22) % shard_count spreads guilds over shards.
            ms = now_ms - 5_000_000 - guild_count + index
            name = f"Guild {index}" if index else "chatops-sandbox"
            self._add_guild(ms, name, first_guild_id if index == 0 else None)

    def _add_guild(self, ms: int, name: str, guild_id: int | None = None) -> FakeGuild:
        gid = snowflake_at(ms, 0) if guild_id is None else guild_id
        guild = FakeGuild(id=gid, name=name, owner_id=int(self.owner["id"]))
        admin, ops, general = (snowflake_at(ms, n) for n in (1, 2, 3))
        guild.roles = [
            make_role(gid, "@everyone", EVERYONE_PERMISSIONS, 0),
            make_role(admin, "admin", str(ADMINISTRATOR), 2),
            make_role(ops, "ops", OPS_PERMISSIONS, 1),
        ]
        channel = make_text_channel(general, gid, "general", 0)
        guild.channels = [channel]
        joined = iso(gid)
        guild.members[int(self.owner["id"])] = make_member(self.owner, [admin], joined)
        guild.members[int(self.bot_user["id"])] = self.bot_member
        self.guilds.append(guild)
        self.guilds_by_id[gid] = guild
        self.channels[general] = channel
        self.channel_guild[general] = guild
        return guild

    def add_text_channel(self, name: str) -> int:
        """A new text channel in the first guild (before the bot connects); its id."""
        guild = self.guilds[0]
        channel_id = self.ids.next()
        channel = make_text_channel(channel_id, guild.id, name, len(guild.channels))
        guild.channels.append(channel)
        guild.invalidate()
        self.channels[channel_id] = channel
        self.channel_guild[channel_id] = guild
        return channel_id

    def add_guild(self, name: str, guild_id: int | None = None) -> FakeGuild:
        """A new guild (``guild_id``, or a fresh id) with its roles and channel; every
        user is a member of it, without roles."""
        if guild_id is not None and guild_id in self.guilds_by_id:
            raise ValueError(f"guild {guild_id} exists")
        guild = self._add_guild(int(time.time() * 1000), name, guild_id)
        for uid, user in self.users.items():
            if uid not in guild.members:
                guild.members[uid] = make_member(user, [], iso(guild.id))
        return guild

    def add_user(
        self, name: str, role_ids: list[int], *, bot: bool, user_id: int | None = None
    ) -> JSON:
        """A new user (``user_id``, or a fresh id), member of every guild (with
        ``role_ids`` in the first)."""
        if user_id is not None and user_id in self.users:
            raise ValueError(f"user {user_id} exists")
        user = make_user(self.ids.next() if user_id is None else user_id, name, bot=bot)
        uid = int(user["id"])
        self.users[uid] = user
        for index, guild in enumerate(self.guilds):
            guild.members[uid] = make_member(user, role_ids if index == 0 else [], iso(uid))
            guild.invalidate()
        return user

    def set_roles(self, guild: FakeGuild, user: JSON, role_ids: list[int]) -> list[JSON]:
        """Give ``user`` exactly ``role_ids`` in ``guild``; roles the guild lacks are created
        (without permissions) and returned, for a GUILD_ROLE_CREATE each."""
        known = {int(r["id"]) for r in guild.roles}
        created = [
            make_role(rid, f"role-{rid}", "0", len(guild.roles) + n)
            for n, rid in enumerate(r for r in dict.fromkeys(role_ids) if r not in known)
        ]
        guild.roles.extend(created)
        member = guild.members[int(user["id"])]
        member["roles"] = [str(r) for r in dict.fromkeys(role_ids)]
        guild.invalidate()
        return created

    def dm_channel(self, user: JSON) -> JSON:
        """The DM channel between ``user`` and the bot, opened on first use."""
        uid = int(user["id"])
        channel = self.dm_channels.get(uid)
        if channel is None:
            cid = self.ids.next()
            channel = {
                "id": str(cid),
                "type": 1,
                "last_message_id": None,
                "recipients": [user],
                "flags": 0,
            }
            self.dm_channels[uid] = channel
            self.channels[cid] = channel
        return channel

    def mentions_in(
        self, content: str, guild: FakeGuild | None
    ) -> tuple[list[JSON], list[str], bool]:
        """Users, role ids and @everyone/@here mentioned in ``content``, as Discord parses."""
        users: list[JSON] = []
        seen: set[int] = set()
        for match in USER_MENTION.finditer(content):
            uid = int(match.group(1))
            if uid in self.users and uid not in seen:
                seen.add(uid)
                users.append(self.users[uid])
        roles: list[str] = []
        if guild is not None:
            known = {r["id"] for r in guild.roles}
            for match in ROLE_MENTION.finditer(content):
                if match.group(1) in known and match.group(1) not in roles:
                    roles.append(match.group(1))
        everyone = guild is not None and EVERYONE_MENTION.search(content) is not None
        return users, roles, everyone

    def message(
        self,
        *,
        channel_id: int,
        author: JSON,
        content: str,
        extra: JSON | None = None,
    ) -> JSON:
        """A full message object, stored so later GET/PATCH/DELETE find it."""
        mid = self.ids.next()
        guild = self.channel_guild.get(channel_id)
        mentions, mention_roles, everyone = self.mentions_in(content, guild)
        message: JSON = {
            "id": str(mid),
            "channel_id": str(channel_id),
            "author": author,
            "content": content,
            "timestamp": iso(mid),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": everyone,
            "mentions": mentions,
            "mention_roles": mention_roles,
            "mention_channels": [],
            "attachments": [],
            "embeds": [],
            "reactions": [],
            "pinned": False,
            "type": 0,
            "flags": 0,
            "components": [],
        }
        if guild is not None:
            message["guild_id"] = str(guild.id)
            member = guild.members.get(int(author["id"]))
            if member is not None:
                message["member"] = {k: v for k, v in member.items() if k != "user"}
        if extra:
            message.update(extra)
        self.messages[mid] = message
        channel = self.channels.get(channel_id)
        if channel is not None:
            channel["last_message_id"] = str(mid)
        return message
