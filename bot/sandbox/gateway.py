"""Gateway v10 over a websocket: HELLO, IDENTIFY/READY, RESUME, heartbeats, dispatches.

Each connection has one writer task that drains a queue, as Discord's gateway
does: events reach the bot in sequence order no matter which task produced
them, and a test calling ``send_message`` never writes to a socket itself.
Sessions outlive their connection so a dropped bot can RESUME and receive what
it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import uuid
import zlib
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from bot.sandbox.state import JSON, FakeGuild, World

_log = logging.getLogger(__name__)

DISPATCH, HEARTBEAT, IDENTIFY, RESUME, RECONNECT, INVALID_SESSION, HELLO, HEARTBEAT_ACK = (
    0,
    1,
    2,
    6,
    7,
    9,
    10,
    11,
)
# discord.py treats 4000 ("unknown error") as resumable (gateway.py `_can_handle_close`).
CLOSE_RESUMABLE = 4000
CLOSE_DECODE_ERROR = 4002
CLOSE_AUTHENTICATION_FAILED = 4004

# A queue item: frame text to send, a callback to run once everything before it
# was sent, or None to stop the writer.
Outgoing = str | Callable[[], None] | None


def _dumps(data: object) -> str:
    return json.dumps(data, separators=(",", ":"))


def _frame(op: int, data: object) -> str:
    return _dumps({"op": op, "d": data, "s": None, "t": None})


class _Compressor:
    """One compression stream per connection, flushed per frame (``zlib-stream``)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._zlib = zlib.compressobj() if kind == "zlib-stream" else None
        self._zstd: Any = None
        if kind == "zstd-stream":
            zstandard = importlib.import_module("zstandard")
            self._zstd = zstandard.ZstdCompressor().compressobj()
            self._zstd_flush = zstandard.COMPRESSOBJ_FLUSH_BLOCK

    def __call__(self, text: str) -> bytes:
        data = text.encode()
        if self._zlib is not None:
            return self._zlib.compress(data) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
        out: bytes = self._zstd.compress(data) + self._zstd.flush(self._zstd_flush)
        return out


def zstd_available() -> bool:
    """True when the zstandard module (and so ``zstd-stream``) is importable."""
    try:
        importlib.import_module("zstandard")
    except ImportError:
        return False
    return True


class Connection:
    """One websocket and the task that writes to it."""

    def __init__(self, ws: web.WebSocketResponse, compression: str | None) -> None:
        self.ws = ws
        self.compression = compression
        self._compress = _Compressor(compression) if compression else None
        self.queue: asyncio.Queue[Outgoing] = asyncio.Queue()
        self.session: Session | None = None
        self.writer = asyncio.create_task(self._write())

    def send(self, frame: str) -> None:
        """Queue a frame for the writer task."""
        self.queue.put_nowait(frame)

    async def _write(self) -> None:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            if callable(item):
                item()
                continue
            if self.ws.closed:
                continue
            try:
                if self._compress is not None:
                    await self.ws.send_bytes(self._compress(item))
                else:
                    await self.ws.send_str(item)
            except ConnectionError:
                _log.debug("gateway peer went away while writing")

    async def close(self, code: int) -> None:
        """Close the socket with ``code``; the read loop then ends the connection."""
        await self.ws.close(code=code, message=b"closed by fake gateway")

    async def stop(self) -> None:
        """Stop the writer after what is already queued."""
        self.queue.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError):
            await self.writer


class Session:
    """A gateway session: its sequence numbers and what was sent, for RESUME."""

    def __init__(self, shard_id: int, shard_count: int) -> None:
        self.id = uuid.uuid4().hex
        self.shard_id = shard_id
        self.shard_count = shard_count
        self.seq = 0
        self.history: list[tuple[int, str]] = []
        self.connection: Connection | None = None

    def dispatch_raw(self, event: str, data_json: str) -> None:
        """Number an event, remember it and queue it if connected."""
        self.seq += 1
        frame = f'{{"op":0,"s":{self.seq},"t":"{event}","d":{data_json}}}'
        self.history.append((self.seq, frame))
        if self.connection is not None:
            self.connection.send(frame)

    def owns(self, guild_id: int | None) -> bool:
        """True when this session's shard receives events of ``guild_id`` (DMs: shard 0)."""
        if guild_id is None:
            return self.shard_id == 0
        return (guild_id >> 22) % self.shard_count == self.shard_id


class Gateway:
    """All gateway sessions of the fake and the websocket handler that serves them."""

    def __init__(self, world: World, *, heartbeat_interval_ms: int) -> None:
        self.world = world
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.url = ""
        self.sessions: dict[str, Session] = {}
        self.connections: set[Connection] = set()
        self.identify_count = 0
        self.resume_count = 0
        self.compressions: list[str | None] = []
        self._ready_shards: set[int] = set()
        self._shard_total = 1
        self.ready = asyncio.Event()
        self.resumed = asyncio.Event()
        self._pending: list[tuple[str, str, int | None]] = []

    # -- websocket handler -------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve one gateway connection until either side closes it."""
        ws = web.WebSocketResponse(compress=False, max_msg_size=0, autoping=True)
        await ws.prepare(request)
        compression = request.query.get("compress")
        if compression == "zstd-stream" and not zstd_available():
            compression = None
        if compression not in (None, "zlib-stream", "zstd-stream"):
            compression = None
        conn = Connection(ws, compression)
        self.connections.add(conn)
        self.compressions.append(compression)
        if request.query.get("encoding", "json") != "json":
            await conn.close(CLOSE_DECODE_ERROR)
        else:
            hello = {"heartbeat_interval": self.heartbeat_interval_ms, "_trace": ["fake-gw"]}
            conn.send(_frame(HELLO, hello))
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._received(conn, msg.data)
                elif msg.type is WSMsgType.ERROR:
                    break
        finally:
            if conn.session is not None and conn.session.connection is conn:
                conn.session.connection = None
            self.connections.discard(conn)
            await conn.stop()
        return ws

    async def _received(self, conn: Connection, text: str) -> None:
        try:
            payload = json.loads(text)
            op = payload["op"]
            data = payload.get("d")
        except (ValueError, KeyError, TypeError):
            await conn.close(CLOSE_DECODE_ERROR)
            return
        if op == HEARTBEAT:
            conn.send(_frame(HEARTBEAT_ACK, None))
        elif op == IDENTIFY:
            await self._identify(conn, data)
        elif op == RESUME:
            await self._resume(conn, data)
        # Presence updates, voice state and member requests are accepted and ignored.

    async def _identify(self, conn: Connection, data: JSON) -> None:
        if data.get("token") == "bad-token":
            await conn.close(CLOSE_AUTHENTICATION_FAILED)
            return
        shard_id, shard_count = data.get("shard") or (0, 1)
        for old in [s for s in self.sessions.values() if s.shard_id == shard_id]:
            del self.sessions[old.id]
        session = Session(shard_id, shard_count)
        self.sessions[session.id] = session
        session.connection = conn
        conn.session = session
        self.identify_count += 1
        self._shard_total = shard_count
        self._ready_shards.discard(shard_id)

        world = self.world
        guilds = [g for g in world.guilds if session.owns(g.id)]
        stubs = ",".join(f'{{"id":"{g.id}","unavailable":true}}' for g in guilds)
        ready: JSON = {
            "v": 10,
            "user": world.bot_user,
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.url,
            "application": {"id": world.bot_user["id"], "flags": 0},
            "private_channels": [],
            "relationships": [],
            "user_settings": {},
            "geo_ordered_rtc_regions": [],
            "guild_join_requests": [],
            "_trace": ["fake-gw"],
        }
        if data.get("shard") is not None:
            ready["shard"] = [shard_id, shard_count]
        ready_json = _dumps(ready)[:-1] + f',"guilds":[{stubs}]}}'
        session.dispatch_raw("READY", ready_json)
        bot_member = world.bot_member
        for guild in guilds:
            session.dispatch_raw("GUILD_CREATE", guild.create_json(bot_member))
        conn.queue.put_nowait(lambda: self._mark_ready(session))

    def _mark_ready(self, session: Session) -> None:
        if self.sessions.get(session.id) is not session:
            return
        self._ready_shards.add(session.shard_id)
        if self._ready_shards >= set(range(self._shard_total)):
            self.ready.set()
        pending, self._pending = self._pending, []
        for event, data_json, guild_id in pending:
            self._route(event, data_json, guild_id)

    async def _resume(self, conn: Connection, data: JSON) -> None:
        session = self.sessions.get(str(data.get("session_id")))
        if session is None or data.get("token") == "bad-token":
            conn.send(_frame(INVALID_SESSION, False))
            return
        old = session.connection
        session.connection = conn
        conn.session = session
        if old is not None and old is not conn:
            old.session = None
            await old.close(CLOSE_RESUMABLE)
        after = data.get("seq") or 0
        for seq, frame in session.history:
            if seq > after:
                conn.send(frame)
        session.dispatch_raw("RESUMED", '{"_trace":["fake-gw"]}')
        self.resume_count += 1
        conn.queue.put_nowait(self.resumed.set)

    # -- events from the fake's API ---------------------------------------

    def dispatch(self, event: str, data: JSON) -> None:
        """Send a dispatch to the session owning its guild (held until one is ready)."""
        guild_id = int(data["guild_id"]) if data.get("guild_id") else None
        self._route(event, _dumps(data), guild_id)

    def guild_joined(self, guild: FakeGuild) -> None:
        """The bot was added to ``guild``: its GUILD_CREATE, to the shard that owns it."""
        self._route("GUILD_CREATE", guild.create_json(self.world.bot_member), guild.id)

    def _route(self, event: str, data_json: str, guild_id: int | None) -> None:
        targets = [
            s
            for s in self.sessions.values()
            if s.owns(guild_id) and s.shard_id in self._ready_shards
        ]
        if not targets:
            self._pending.append((event, data_json, guild_id))
            return
        for session in targets:
            session.dispatch_raw(event, data_json)

    async def drop_connection(self) -> None:
        """Close every socket with a resumable code; the sessions stay."""
        self.resumed.clear()
        for conn in list(self.connections):
            await conn.close(CLOSE_RESUMABLE)

    def send_op(self, op: int, data: object) -> None:
        """Send a non-dispatch opcode to every connection."""
        frame = _frame(op, data)
        for conn in list(self.connections):
            conn.send(frame)

    def invalidate_sessions(self, resumable: bool) -> None:
        """Send INVALID_SESSION; unless resumable, forget the sessions so clients re-identify."""
        self.resumed.clear()
        self.send_op(INVALID_SESSION, resumable)
        if not resumable:
            self.sessions.clear()
            self._ready_shards.clear()
            self.ready.clear()

    async def close(self) -> None:
        """Close every connection (1001, going away)."""
        for conn in list(self.connections):
            await conn.close(1001)
            await conn.stop()
