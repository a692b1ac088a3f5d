"""Deploy before/after in chat: a review posted once a deploy's after-window has passed,
and ``!deploys`` (``/deploys``), the recent deploys with their verdict.

A deploy is a marker in the span store (``chatops marker``, which a pipeline runs after
``chatops deploy``). Once ``DEPLOY_REVIEW_WINDOW_S`` has passed after a marker, the bot
compares each command's p95 and error rate in the window before with the window after
(``telemetry/deploy_review.py``), records the verdict, and posts the comparison to
``AUDIT_CHANNEL_ID`` beside the deploy's own audit line, regressions flagged. Each review
is a root span ``deploy.review``. Verdicts are kept in a small SQLite file, so a bot
that restarts (a deploy restarts it) posts each review once, and a deploy whose window
passed while the bot was down is reviewed at its next start (within the retention).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import discord
from discord.ext import commands

from commands.toolkit.failures import UserFacingError
from commands.toolkit.hybrid import hybrid_command
from commands.toolkit.replies import reply, send_to
from telemetry import honeycomb, schema
from telemetry.deploy_review import (
    Review,
    Reviews,
    Thresholds,
    compare,
    marker_key,
    review,
    rows_from_results,
    window_spec,
)
from telemetry.schema import Outcome
from telemetry.spans import root_span
from telemetry.store_read import Marker, SpanStore, StoreMissing, read_markers

log = logging.getLogger(__name__)

NS = 1_000_000_000
SHOWN_DEPLOYS = 10
SHOWN_COMMANDS = 12
POSTS_PER_CHECK = 3
RETRY_FAILED_S = 300.0
LIST_DAYS = 30


def _when(time_ns: int) -> str:
    return datetime.fromtimestamp(time_ns / NS, UTC).strftime("%Y-%m-%d %H:%M UTC")


def review_embed(found: Review) -> discord.Embed:
    marker = found.marker
    regressed = found.regressed
    icon = "\u26a0\ufe0f" if regressed else "\u2705"
    embed = discord.Embed(
        title=schema.truncate(f"{icon} deploy {marker.version}: {found.verdict}", 256),
        colour=discord.Colour.orange() if regressed else discord.Colour.green(),
    )
    minutes = found.window_s / 60
    rows = [f"{'command':<16} {'p95 before':>10} {'after':>9} {'err before':>10} {'after':>7}"]
    for change in found.changes[:SHOWN_COMMANDS]:
        b, a = change.before, change.after
        cells = (
            f"{b.p95_ms:.0f} ms" if b else "-",
            f"{a.p95_ms:.0f} ms" if a else "-",
            f"{b.error_rate:.1%}" if b else "-",
            f"{a.error_rate:.1%}" if a else "-",
        )
        flag = " \u26a0" if change.regressions else ""
        rows.append(
            f"{change.command[:16]:<16} {cells[0]:>10} {cells[1]:>9} {cells[2]:>10} {cells[3]:>7}"
            + flag
        )
    table = "\n".join(rows).replace("`", "'")
    embed.description = (
        f"{minutes:g} min before and after {_when(marker.time_ns)}\n```\n{table}\n```"
    )
    for change in regressed[:5]:
        embed.add_field(name=change.command[:256], value="; ".join(change.regressions))
    return embed


class StoreSource:
    """Markers and figures from the local span store (read in a worker thread)."""

    name = "span store"

    def __init__(self, path: Path, window_s: float, thresholds: Thresholds) -> None:
        self.path = path
        self.window_s = window_s
        self.thresholds = thresholds

    def _markers(self, start_ns: int, end_ns: int) -> list[Marker]:
        try:
            with SpanStore.open(self.path) as store:
                return read_markers(store, start_ns, end_ns)
        except StoreMissing:
            return []

    def _review(self, marker: Marker) -> Review:
        with SpanStore.open(self.path) as store:
            return review(store, marker, self.window_s, self.thresholds)

    async def markers(self, start_ns: int, end_ns: int) -> list[Marker]:
        return await asyncio.to_thread(self._markers, start_ns, end_ns)

    async def review(self, marker: Marker) -> Review:
        return await asyncio.to_thread(self._review, marker)


class HoneycombSource:
    """Deploy markers and figures from Honeycomb (Markers and Query Data APIs): for a bot
    whose span store does not see the pipeline's marker."""

    name = "Honeycomb"

    def __init__(
        self, api_url: str, key: str, dataset: str, window_s: float, thresholds: Thresholds
    ) -> None:
        self.api_url = api_url
        self._key = key
        self.dataset = dataset
        self.window_s = window_s
        self.thresholds = thresholds

    async def markers(self, start_ns: int, end_ns: int) -> list[Marker]:
        async with honeycomb.connect(self.api_url, self._key) as hc:
            found = await hc.list_markers(self.dataset)
        markers = []
        for item in found:
            start = item.get("start_time")
            if item.get("type") not in (None, "deploy") or not isinstance(start, int | float):
                continue
            time_ns = int(start * NS)
            if start_ns <= time_ns <= end_ns:
                label = str(item.get("message") or item.get("id") or "?")
                markers.append(
                    Marker(
                        time_ns,
                        label.removeprefix("deploy "),
                        label,
                        item.get("url"),
                        item.get("id"),
                    )
                )
        return sorted(markers, key=lambda m: m.time_ns)

    async def review(self, marker: Marker) -> Review:
        at = marker.time_ns // NS
        width = int(self.window_s)
        async with honeycomb.connect(self.api_url, self._key) as hc:
            before = await hc.query_data(self.dataset, window_spec(at - width, at))
            after = await hc.query_data(self.dataset, window_spec(at, at + width))
        return compare(
            marker, self.window_s, rows_from_results(before), rows_from_results(after),
            self.thresholds,
        )  # fmt: skip


class Deploys(commands.Cog):
    """Recent deploys and how each went."""

    def __init__(
        self,
        client: discord.Client,
        source: StoreSource | HoneycombSource,
        reviews: Reviews,
        *,
        channel_id: int | None,
        window_s: float,
        poll_s: float,
        lookback_s: float = LIST_DAYS * 86_400,
    ) -> None:
        self.client = client
        self.source = source
        self.reviews = reviews
        self.channel_id = channel_id
        self.window_s = window_s
        self.poll_s = poll_s
        self.lookback_s = lookback_s
        # Markers whose review failed (Honeycomb refused), and when to try each again.
        self._retry_at: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    async def cog_load(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="deploy-reviews")

    async def cog_unload(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.reviews.close()

    async def _run(self) -> None:
        await self.client.wait_until_ready()
        while True:
            try:
                await self.check()
            except Exception:
                log.exception("deploy review failed")
            await asyncio.sleep(self.poll_s)

    async def check(self) -> int:
        """Review the markers whose after-window has ended and that have no verdict yet,
        oldest first, at most ``POSTS_PER_CHECK``; returns how many.

        A deploy whose window passed while the bot was down (no verdict was written)
        is reviewed at the next start, as far back as the figures are still kept: its
        before-window must lie within ``lookback_s`` (the span store's retention,
        ``SPAN_STORE_MAX_AGE``; for Honeycomb, ``LIST_DAYS``). A backlog drains a few
        reviews per look rather than all at once. A review that failed waits
        ``RETRY_FAILED_S`` before it is tried again, so it cannot hold the ones after it.
        """
        now = time.time_ns()
        width = int(self.window_s * NS)
        since = now - int(self.lookback_s * NS) + width
        self._retry_at = {key: at for key, at in self._retry_at.items() if at > now}
        due = [
            m
            for m in await self.source.markers(since, now - width)
            if self.reviews.verdict(m) is None and marker_key(m) not in self._retry_at
        ]
        for marker in due[:POSTS_PER_CHECK]:
            if not await self._post(marker):
                self._retry_at[marker_key(marker)] = now + int(RETRY_FAILED_S * NS)
        return len(due[:POSTS_PER_CHECK])

    async def _post(self, marker: Marker) -> bool:
        """Review ``marker`` and post it; False when the review could not be made."""
        attributes: dict[str, Any] = {
            schema.DEPLOY_VERSION: marker.version,
            schema.DEPLOY_REVIEW_SOURCE: self.source.name,
        }
        with root_span(schema.DEPLOY_REVIEW_SPAN, attributes, {}) as review_trace:
            try:
                found = await self.source.review(marker)
            except honeycomb.HoneycombError as exc:
                review_trace.record_error(exc)
                log.warning("deploy %s not reviewed: %s", marker.version, exc)
                return False
            self.reviews.record(marker, found.verdict)
            review_trace.span.set_attribute(schema.DEPLOY_VERDICT, found.verdict)
            review_trace.span.set_attribute(schema.DEPLOY_REGRESSIONS, len(found.regressed))
            if self.channel_id is None:
                return True
            channel = self.client.get_channel(self.channel_id)
            if not isinstance(channel, discord.abc.Messageable):
                log.warning("AUDIT_CHANNEL_ID %s is not a channel I can see", self.channel_id)
                review_trace.set_outcome(Outcome.ERROR)
                return True
            await send_to(channel, embed=review_embed(found))
            return True

    @hybrid_command(help="Recent deploys (markers) with their before/after verdict.")
    async def deploys(self, ctx: commands.Context[Any]) -> None:
        now = time.time_ns()
        try:
            markers = await self.source.markers(now - LIST_DAYS * 86_400 * NS, now)
        except honeycomb.HoneycombError as exc:
            raise UserFacingError(f"I couldn't read the deploys from Honeycomb: {exc}") from None
        if not markers:
            await reply(ctx, f"No deploys recorded in the last {LIST_DAYS} days.")
            return
        lines = []
        for marker in reversed(markers[-SHOWN_DEPLOYS:]):
            verdict = self.reviews.verdict(marker)
            if verdict is None:
                ends = marker.time_ns + int(self.window_s * NS)
                verdict = f"pending (after {_when(ends)})"
            icon = (
                "\u2705"
                if verdict == "ok"
                else "\u26a0\ufe0f"
                if verdict.startswith("regressed")
                else "\u2022"
            )
            version = schema.truncate(marker.version, 60).replace("`", "'")
            lines.append(f"{icon} `{version}` {_when(marker.time_ns)}: {verdict}")
        await reply(ctx, "\n".join(lines))
