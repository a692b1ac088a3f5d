"""``chatops console``: the real bot against an in-process fake Discord, driven from a prompt.

Each line is sent as a user's message; the bot's reply and the message's trace
are printed. A line starting with ``/`` is a slash command instead: the fake
builds the interaction from the bot's command tree, as Discord's client would.
No token and no network: everything runs on loopback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE,
)
from opentelemetry.semconv.attributes.url_attributes import URL_FULL
from rich.console import Console

from bot.cli.tables import waterfall_table
from bot.config import Settings
from bot.harness import sandbox
from bot.sandbox import FakeDiscord
from bot.sandbox.command_lines import SlashError
from telemetry import schema
from telemetry.recent import RecentTraces
from telemetry.waterfall import rows_from_spans

TRACE_WAIT_S = 30.0
# What the console shows of each span; `chatops trace` shows everything.
KEY_ATTRIBUTES = (
    schema.OUTCOME,
    schema.RESPONSE,
    schema.ERROR_TYPE,
    schema.ERROR_MESSAGE,
    schema.FLAG_KEY,
    schema.FLAG_VARIANT,
    schema.FLAG_REASON,
    schema.AZURE_OPERATION,
    # The stable HTTP semantic conventions (with OTEL_SEMCONV_STABILITY_OPT_IN=http/dup
    # spans also carry the old names; the console shows each fact once).
    HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE,
    URL_FULL,
    ERROR_TYPE,
)
PROMPT = "you> "


async def run_console(
    settings: Settings, lines: Sequence[str], recent: RecentTraces, out: Console
) -> None:
    """Send ``lines`` (or, with none, whatever is typed) and print replies and traces."""
    async with sandbox(settings) as (fake, bot):
        out.print(
            f"[dim]sandbox: {bot.user} in guild {fake.guild.name!r}; "
            f"prefix {settings.bot_prefix!r}; Ctrl-D to quit[/dim]"
        )
        if lines:
            for line in lines:
                out.print(f"{PROMPT}{line}")
                await exchange(fake, recent, line, out)
            return
        loop = asyncio.get_running_loop()
        while True:
            try:
                line = await loop.run_in_executor(None, input, PROMPT)
            except EOFError:
                return
            if line.strip():
                await exchange(fake, recent, line, out)


async def exchange(fake: FakeDiscord, recent: RecentTraces, line: str, out: Console) -> None:
    """One message (or slash command) in, its replies and trace out."""
    if line.startswith("/"):
        await slash_exchange(fake, recent, line, out)
        return
    message = fake.send_message(line)
    message_id = str(message["id"])
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TRACE_WAIT_S
    root = recent.find_root(schema.MESSAGE_ID, message_id)
    while root is None and loop.time() < deadline:
        await asyncio.sleep(0.01)
        root = recent.find_root(schema.MESSAGE_ID, message_id)
    for reply in await fake.replies_to(int(message_id), timeout=0.0):
        out.print(f"bot> {describe(reply)}", markup=False, highlight=False)
    print_trace(root, recent, out)


def print_trace(root: ReadableSpan | None, recent: RecentTraces, out: Console) -> None:
    if root is None or root.context is None:
        out.print("[yellow](no trace recorded for this message)[/yellow]")
        return
    rows = rows_from_spans(recent.spans_of(root.context.trace_id))
    out.print(waterfall_table(f"{root.context.trace_id:032x}", rows, KEY_ATTRIBUTES))


async def slash_exchange(fake: FakeDiscord, recent: RecentTraces, line: str, out: Console) -> None:
    """One slash command in; the answer the user sees (after any deferral) and the trace out."""
    try:
        interaction = fake.send_command(line)
    except SlashError as exc:
        out.print(f"[yellow]{exc}[/yellow]")
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TRACE_WAIT_S
    answer = await interaction.wait(TRACE_WAIT_S)
    root = recent.find_root(schema.INTERACTION_ID, str(interaction.id))
    while root is None and loop.time() < deadline:
        await asyncio.sleep(0.01)
        root = recent.find_root(schema.INTERACTION_ID, str(interaction.id))
    if answer is not None:
        notes = [
            n
            for n, on in (("deferred", interaction.deferred), ("only you", _ephemeral(answer)))
            if on
        ]
        suffix = f"  ({', '.join(notes)})" if notes else ""
        out.print(f"bot> {describe(answer)}{suffix}", markup=False, highlight=False)
    print_trace(root, recent, out)


def _ephemeral(message: dict[str, Any]) -> bool:
    return bool(int(message.get("flags") or 0) & 64)


def describe(message: dict[str, Any]) -> str:
    """A bot message as text: content, then each embed's title, description and fields."""
    parts = [message.get("content") or ""]
    for embed in message.get("embeds") or []:
        parts += [embed.get("title") or "", embed.get("description") or ""]
        parts += [f"{f.get('name')}: {f.get('value')}" for f in embed.get("fields") or []]
        if embed.get("url"):
            parts.append(embed["url"])
    for attachment in message.get("attachments") or []:
        parts.append(f"[file {attachment.get('filename')}]")
    return "\n".join(part for part in parts if part)
