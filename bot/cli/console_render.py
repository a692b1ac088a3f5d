"""How the console shows what the bot did: a message as text, its buttons, a trace."""

from __future__ import annotations

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
from telemetry import schema
from telemetry.recent import RecentTraces
from telemetry.waterfall import rows_from_spans

BUTTON = 2
EPHEMERAL = 64
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


def print_trace(root: ReadableSpan | None, recent: RecentTraces, out: Console) -> None:
    if root is None or root.context is None:
        out.print("[yellow](no trace recorded for this message)[/yellow]")
        return
    rows = rows_from_spans(recent.spans_of(root.context.trace_id))
    out.print(waterfall_table(f"{root.context.trace_id:032x}", rows, KEY_ATTRIBUTES))


def ephemeral(message: dict[str, Any]) -> bool:
    return bool(int(message.get("flags") or 0) & EPHEMERAL)


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        component
        for row in message.get("components") or []
        for component in row.get("components") or []
        if component.get("type") == BUTTON and not component.get("disabled")
    ]


def describe(message: dict[str, Any]) -> str:
    """A bot message as text: content, each embed's title, description and fields, buttons."""
    parts = [message.get("content") or ""]
    for embed in message.get("embeds") or []:
        parts += [embed.get("title") or "", embed.get("description") or ""]
        parts += [f"{f.get('name')}: {f.get('value')}" for f in embed.get("fields") or []]
        if embed.get("url"):
            parts.append(embed["url"])
    for attachment in message.get("attachments") or []:
        parts.append(f"[file {attachment.get('filename')}]")
    shown = buttons(message)
    if shown:
        parts.append(" ".join(f"[{b.get('label', b.get('custom_id'))}]" for b in shown))
    return "\n".join(part for part in parts if part)
