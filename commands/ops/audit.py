"""The audit channel: every change made through the bot, posted once, bounded, pinging no one.

A command records an ``AuditEntry`` (who, what, on which resource, the result,
how long it took, its trace) and goes on: ``record`` never waits and never
fails. One poster task posts entries to ``AUDIT_CHANNEL_ID``, each post in a
root span of its own (``audit.post``) linked to the traces of the entries it
carries, so a slow or throttled Discord never slows a command.

Bounded in both directions: posts are paced by a token bucket
(``AUDIT_POSTS_PER_MINUTE``, a burst of a few), entries that arrive while the
poster waits are coalesced into one post (at most ``BATCH`` lines), and at most
``QUEUE_MAX`` entries wait; any beyond are dropped and counted, and the next post
says how many (``app.audit.dropped`` on its span). Mentions in a name are shown,
never pinged (``allowed_mentions`` none, as for every send).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import discord
from opentelemetry.trace import Link, SpanContext
from opentelemetry.util.types import AttributeValue

from commands.toolkit.replies import send_to
from telemetry import schema
from telemetry.schema import Outcome
from telemetry.spans import current_trace, root_span
from telemetry.trace_links import TraceLinks, trace_reference

log = logging.getLogger(__name__)

BATCH = 10
QUEUE_MAX = 200
BURST = 3
LINE_MAX_CHARS = 190
ICONS = {
    "ok": "\u2705",
    "denied": "\u26d4",
    "failed": "\u274c",
    "cancelled": "\u23f9\ufe0f",
    "timed out": "\u231b",
    "changed": "\U0001f6a9",
}


@dataclass(frozen=True)
class Actor:
    """Who did it: a Discord user (id and name), or a process (``chatops deploy``)."""

    name: str
    user_id: int | None = None

    @classmethod
    def of(cls, user: discord.abc.User) -> Actor:
        return cls(user.name, user.id)

    def __str__(self) -> str:
        name = discord.utils.escape_markdown(self.name)
        return f"<@{self.user_id}> ({name})" if self.user_id is not None else name


@dataclass(frozen=True)
class AuditEntry:
    """One change (or a denied attempt at one), as the audit channel shows it."""

    who: Actor
    action: str
    resource: str
    result: str
    duration_s: float | None = None
    trace_id: str | None = None
    started_s: float | None = None
    approver: Actor | None = None
    detail: str | None = None
    span_context: SpanContext | None = None

    @classmethod
    def here(cls, who: Actor, action: str, resource: str, result: str, **more: Any) -> AuditEntry:
        """An entry for the running message's trace (its id, and its span for the link)."""
        message_trace = current_trace()
        if message_trace is not None:
            more.setdefault("trace_id", message_trace.trace_id)
            more.setdefault("span_context", message_trace.span.get_span_context())
        return cls(who, action, resource, result, **more)


class AuditLog:
    """The poster: ``record`` from anywhere in the bot's loop, ``start`` once, ``close`` at exit."""

    def __init__(
        self,
        client: discord.Client,
        channel_id: int,
        *,
        per_minute: float,
        links: TraceLinks | None,
        dataset: str,
        queue_max: int = QUEUE_MAX,
    ) -> None:
        self.client = client
        self.channel_id = channel_id
        self.links = links
        self.dataset = dataset
        self.interval_s = 60.0 / per_minute
        self._tokens = float(BURST)
        self._refilled = time.monotonic()
        self._queue: asyncio.Queue[AuditEntry] = asyncio.Queue(queue_max)
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.posted = 0
        self._warned = False

    def record(self, entry: AuditEntry) -> None:
        """Queue ``entry``; never waits: when the queue is full it is dropped and counted."""
        try:
            self._queue.put_nowait(entry)
        except asyncio.QueueFull:
            self.dropped += 1
        self.start()

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-poster")

    async def close(self) -> None:
        """Post what is queued (bounded wait), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.idle(), 2.0)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def idle(self) -> None:
        """Wait until every queued entry has been posted (tests and shutdown)."""
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            await self._take_token()
            batch = [first]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            dropped, self.dropped = self.dropped, 0
            try:
                await self._post(batch, dropped)
            except Exception:
                log.exception("audit post failed")
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _take_token(self) -> None:
        """One post per ``interval_s`` after a burst of ``BURST``: entries pile up meanwhile."""
        now = time.monotonic()
        self._tokens = min(BURST, self._tokens + (now - self._refilled) / self.interval_s)
        self._refilled = now
        if self._tokens < 1:
            await asyncio.sleep((1 - self._tokens) * self.interval_s)
            self._tokens, self._refilled = 1.0, time.monotonic()
        self._tokens -= 1

    async def post_now(self, batch: list[AuditEntry]) -> bool:
        """Post ``batch`` at once, without the queue (a one-shot process: ``chatops deploy``)."""
        return await self._post(batch, 0)

    async def _post(self, batch: list[AuditEntry], dropped: int) -> bool:
        links = [Link(e.span_context) for e in batch if e.span_context is not None]
        attributes: dict[str, AttributeValue] = {
            schema.AUDIT_ENTRIES: len(batch),
            schema.AUDIT_DROPPED: dropped,
            schema.AUDIT_ACTION: sorted({e.action for e in batch}),
            schema.CHANNEL_ID: str(self.channel_id),
        }
        with root_span(schema.AUDIT_SPAN, attributes, {}, links=links) as post_trace:
            channel: Any = self.client.get_channel(self.channel_id)
            if channel is None and not self.client.is_ready():
                # No gateway (``chatops deploy``): no cache to look in; Discord will say.
                channel = self.client.get_partial_messageable(self.channel_id)
            if not isinstance(channel, discord.abc.Messageable):
                if not self._warned:
                    log.warning("AUDIT_CHANNEL_ID %s is not a channel I can see", self.channel_id)
                    self._warned = True
                post_trace.set_outcome(Outcome.ERROR)
                return False
            lines = [self.line(entry) for entry in batch]
            if dropped:
                lines.append(f"\u2026 and {dropped} more not posted (audit rate limit).")
            try:
                await send_to(channel, "\n".join(lines))
            except discord.HTTPException as exc:
                post_trace.record_error(exc)
                log.warning("could not post to the audit channel: %s", exc)
                return False
            self.posted += len(batch)
            return True

    def line(self, entry: AuditEntry) -> str:
        """``✅ aci restart rg/web by <@1> (olivia): ok in 3.2 s · approved by … · trace …``"""
        icon = ICONS.get(entry.result.split(":")[0], "\u2022")
        parts = [f"{icon} **{entry.action}** `{entry.resource}` by {entry.who}: {entry.result}"]
        if entry.duration_s is not None:
            parts[0] += f" in {entry.duration_s:.1f} s"
        if entry.approver is not None:
            parts.append(f"approved by {entry.approver}")
        if entry.detail:
            parts.append(schema.truncate(entry.detail, LINE_MAX_CHARS))
        if entry.trace_id:
            ref = trace_reference(self.links, entry.trace_id, self.dataset, start_s=entry.started_s)
            parts.append(f"trace <{ref}>" if ref.startswith("http") else f"trace `{ref}`")
        return " \u00b7 ".join(parts)
