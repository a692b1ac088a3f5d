"""``!trace <id-prefix>`` (``/trace``): a trace's summary from the span store, for operators.

The id the bot quotes in an error reply or an audit post is enough: a prefix of 8
or more hex digits. The summary is an embed: the root span's outcome, duration and
status, the slowest spans under it, the spans that failed, and (with
``HONEYCOMB_TEAM``) the link to the whole trace in Honeycomb. The store is read in
a worker thread (SQLite blocks), each lookup on its own connection.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from commands.toolkit.failures import UserFacingError
from commands.toolkit.flag_checks import requires_flag
from commands.toolkit.hybrid import hybrid_command
from commands.toolkit.replies import inert_links, reply
from telemetry import schema
from telemetry.query import (
    AmbiguousTrace,
    NoSuchTrace,
    QueryError,
    Trace,
    WaterfallRow,
    find_trace,
)
from telemetry.schema import Outcome
from telemetry.spans import current_trace
from telemetry.store_read import SpanStore, StoreMissing
from telemetry.trace_links import TraceLinks

SLOWEST = 5
ERRORS = 5
VALUE_MAX_CHARS = 120
OUTCOME_COLOURS = {
    "ok": discord.Colour.green(),
    "error": discord.Colour.red(),
}


def _read(path: Path, prefix: str) -> Trace:
    with SpanStore.open(path) as store:
        return find_trace(store, prefix)


def _quote(text: Any) -> str:
    """``text`` as inline code: no markdown, no link, no mention, short."""
    value = schema.truncate(str(text).replace("`", "'").replace("\n", " "), VALUE_MAX_CHARS)
    return f"`{value}`"


def _error_of(row: WaterfallRow) -> str | None:
    """Why a span failed: its error message, an exception event's, or its status."""
    message = row.attributes.get(schema.ERROR_MESSAGE)
    for event in row.events:
        if event.get("name") == "exception" and not message:
            message = (event.get("attributes") or {}).get("exception.message")
    if row.status == "ERROR" or row.attributes.get(schema.OUTCOME) == Outcome.ERROR.value:
        return str(message or row.attributes.get(schema.ERROR_TYPE) or "status ERROR")
    return None


def summary_embed(found: Trace, link: str | None) -> discord.Embed:
    """Root outcome, slowest spans, errors; the title links to Honeycomb when configured."""
    roots = [row for row in found.rows if row.depth == 0]
    root = roots[0]
    outcome = str(root.attributes.get(schema.OUTCOME, "?"))
    embed = discord.Embed(
        title=inert_links(f"trace {found.trace_id}"),
        url=link,
        colour=OUTCOME_COLOURS.get(outcome, discord.Colour.orange()),
    )
    embed.description = (
        f"{_quote(root.name)}: outcome **{outcome}** in {root.duration_ms:.1f} ms, "
        f"status {root.status}, {len(found.rows)} span(s)"
    )
    command = root.attributes.get(schema.COMMAND)
    if command:
        embed.add_field(name="command", value=_quote(command))
    author = root.attributes.get(schema.AUTHOR_NAME) or root.attributes.get(schema.AUTHOR_ID)
    if author:
        embed.add_field(name="author", value=_quote(author))
    others = sorted((row for row in found.rows if row is not root), key=lambda r: -r.duration_ms)[
        :SLOWEST
    ]
    if others:
        embed.add_field(
            name="slowest spans",
            value="\n".join(f"{_quote(r.name)} {r.duration_ms:.1f} ms" for r in others),
            inline=False,
        )
    failed = [(row, why) for row in found.rows if (why := _error_of(row)) is not None]
    embed.add_field(
        name="errors",
        value="\n".join(f"{_quote(r.name)}: {_quote(why)}" for r, why in failed[:ERRORS])
        + (f"\n\u2026 and {len(failed) - ERRORS} more" if len(failed) > ERRORS else "")
        if failed
        else "none",
        inline=False,
    )
    if link is None:
        embed.set_footer(text="HONEYCOMB_TEAM is not set: no Honeycomb link")
    return embed


class Traces(commands.Cog):
    """A trace's summary from the span store (``!trace``)."""

    def __init__(self, store: Path | None, *, links: TraceLinks | None, dataset: str) -> None:
        self.store = store
        self.links = links
        self.dataset = dataset

    @hybrid_command(
        name="trace", help="A trace's summary: root outcome, slowest spans, errors (operators)."
    )
    @app_commands.describe(id_prefix="The trace id, or its first 8+ hex digits")
    @requires_flag("aci-operator")
    async def trace(self, ctx: commands.Context[Any], id_prefix: str) -> None:
        if self.store is None:
            raise UserFacingError(
                "The span store is off here (SPAN_STORE=off): I keep no traces to look up.",
                Outcome.BAD_INPUT,
            )
        shown = _quote(id_prefix[:40])
        try:
            found = await asyncio.to_thread(_read, self.store, id_prefix)
        except StoreMissing:
            raise UserFacingError(
                "No span store yet: no trace has been recorded here.", Outcome.BAD_INPUT
            ) from None
        except NoSuchTrace:
            raise UserFacingError(
                f"No trace starting with {shown} in the span store "
                "(too old, sampled out, or from another bot).",
                Outcome.BAD_INPUT,
            ) from None
        except AmbiguousTrace:
            raise UserFacingError(
                f"{shown} matches more than one trace: give more digits.", Outcome.BAD_INPUT
            ) from None
        except QueryError:
            raise UserFacingError(
                f"{shown} is not a trace id: give its first 8 to 32 hex digits.",
                Outcome.BAD_INPUT,
            ) from None
        message_trace = current_trace()
        if message_trace is not None:
            message_trace.span.set_attribute(schema.TRACE_LOOKUP, found.trace_id)
        link = None
        if self.links is not None:
            start_s = found.start_ns / 1e9
            link = self.links.trace_url(found.trace_id, self.dataset, start_s=start_s)
        await reply(ctx, embed=summary_embed(found, link))
