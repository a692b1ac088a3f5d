"""Honeycomb alerts in Discord: a trigger or SLO burn alert posted to ``ALERT_CHANNEL_ID``.

``bot/alert_hooks.py`` receives Honeycomb's webhook and hands each accepted
delivery to ``AlertPoster.deliver``. An alert that fires is posted as an embed
linking to the query result; while it stays open, a repeat edits that post
rather than adding one; when Honeycomb says it resolved (``status: OK``), the
original post is edited to say so. Which post shows each open alert is kept in
``HONEYCOMB_HOOK_STATE_DB`` (``open_alerts.py``, 7 days), so that holds across a
restart of the bot; a resolution the bot has no post for is posted on its own.
Each delivery's post is a root span ``alert.post`` linked to the webhook's span.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import discord
from opentelemetry.trace import Link, SpanContext

from commands.ops.open_alerts import MEMORY, OpenAlerts, Posted
from commands.toolkit.replies import NO_MENTIONS, inert_links, send_to
from telemetry import schema
from telemetry.honeycomb_payloads import BUDGET_RATE, EXHAUSTION_TIME, KINDS
from telemetry.schema import Outcome
from telemetry.spans import record_response, root_span, send_span

log = logging.getLogger(__name__)

TEXT_MAX = 600
GROUPS_SHOWN = 5
ALERT_SPAN = "alert.post"
RESOLVED = {"OK", "RESOLVED"}


class BadAlert(ValueError):
    """The payload is not an alert we can show; the message says why, in one line."""


@dataclass(frozen=True)
class Alert:
    """What a Honeycomb webhook delivery says, from its default payload."""

    key: str
    kind: str | None  # trigger, exhaustion_time, budget_rate (our payload template); None: default
    name: str
    status: str
    summary: str
    description: str
    result_url: str | None
    alert_url: str | None
    groups: list[str]
    is_test: bool

    @property
    def resolved(self) -> bool:
        return self.status.upper() in RESOLVED

    @property
    def burn(self) -> bool:
        return self.kind in (EXHAUSTION_TIME, BUDGET_RATE)


def _text(value: Any, limit: int = TEXT_MAX) -> str:
    return schema.truncate(str(value), limit) if value is not None else ""


def _https(value: Any) -> str | None:
    """Only an absolute https URL is linked (anything else is left out)."""
    if not isinstance(value, str):
        return None
    parts = urlsplit(value.strip())
    return value.strip() if parts.scheme == "https" and parts.hostname else None


def parse_alert(payload: Any) -> Alert:
    """An ``Alert`` from a trigger's or burn alert's payload; ``BadAlert`` otherwise."""
    if not isinstance(payload, dict):
        raise BadAlert("the body is not a JSON object")
    name = payload.get("name")
    status = payload.get("status")
    if not isinstance(name, str) or not name.strip():
        raise BadAlert("no alert name")
    if not isinstance(status, str) or not status.strip():
        raise BadAlert("no alert status")
    kind = payload.get("kind")
    kind = kind if kind in KINDS else None
    key = payload.get("id")
    key = _text(key if isinstance(key, str | int) and str(key) else name, 128)
    groups: list[str] = []
    triggered = payload.get("result_groups_triggered")
    for group in (triggered if isinstance(triggered, list) else [])[:GROUPS_SHOWN]:
        if isinstance(group, dict):
            label = _group_label(group.get("Group"))
            groups.append(_text(f"{label or 'all'}: {group.get('Result')}", 120))
    return Alert(
        # A burn alert's id may be its SLO's: two burn alerts of one SLO stay apart by kind.
        key=f"{kind}:{key}" if kind in (EXHAUSTION_TIME, BUDGET_RATE) else key,
        kind=kind,
        name=_text(name, 200),
        status=_text(status, 32),
        summary=_text(payload.get("summary")),
        description=_text(payload.get("description")),
        result_url=_https(payload.get("result_url")),
        alert_url=_https(payload.get("trigger_url") or payload.get("url")),
        groups=groups,
        is_test=payload.get("is_test") is True,
    )


def _group_label(values: Any) -> str:
    """``column=value, ...`` from a group: the default payload's ``{"column": value}``, or
    the template variable's ``[{"Key": column, "Value": value}]``."""
    if isinstance(values, dict):
        return ", ".join(f"{k}={v}" for k, v in values.items())
    if isinstance(values, list):
        pairs = [v for v in values if isinstance(v, dict) and "Key" in v]
        return ", ".join(f"{p['Key']}={p.get('Value')}" for p in pairs)
    return ""


def alert_embed(alert: Alert) -> discord.Embed:
    """Red while firing, green once resolved; the title links to the query result."""
    if alert.resolved:
        title, colour = f"\u2705 Resolved: {alert.name}", discord.Colour.green()
    else:
        title, colour = f"\U0001f525 {alert.name}", discord.Colour.red()
    embed = discord.Embed(
        title=inert_links(schema.truncate(title, 256)),
        url=alert.result_url or (alert.alert_url if alert.burn else None),
        description=inert_links(alert.description or alert.summary) or None,
        colour=colour,
    )
    if alert.groups:
        embed.add_field(
            name="triggered by", value="\n".join(f"`{g.replace('`', '')}`" for g in alert.groups)
        )
    if alert.result_url:
        embed.add_field(name="query result", value=alert.result_url, inline=False)
    if alert.burn and alert.alert_url:
        embed.add_field(name="SLO", value=alert.alert_url, inline=False)
    footer = f"Honeycomb {alert.status}"
    if alert.burn:
        footer += f" \u00b7 SLO burn alert ({str(alert.kind).replace('_', ' ')})"
    footer += " \u00b7 test delivery" if alert.is_test else ""
    embed.set_footer(text=footer)
    return embed


class AlertPoster:
    """Posts alerts to one channel and edits them when they resolve.

    Which post shows an open alert is kept in ``OpenAlerts`` (SQLite, the
    receiver's state file), so a resolution after a restart of the bot still
    edits the original post. The post is edited by id (``PartialMessage``): no
    message needs to be in discord.py's cache.
    """

    def __init__(
        self,
        client: discord.Client,
        channel_id: int,
        store: OpenAlerts | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.channel_id = channel_id
        self.store = store if store is not None else OpenAlerts(MEMORY)
        self._clock = clock

    async def deliver(self, alert: Alert, hook: SpanContext | None = None) -> None:
        """Post, update or resolve ``alert`` in a root span of its own."""
        attributes: dict[str, Any] = {
            schema.ALERT_NAME: alert.name,
            schema.ALERT_STATUS: alert.status,
            schema.CHANNEL_ID: str(self.channel_id),
        }
        links = [Link(hook)] if hook is not None else []
        with root_span(ALERT_SPAN, attributes, {}, links=links) as post_trace:
            channel = self.client.get_channel(self.channel_id)
            if not isinstance(channel, discord.abc.Messageable):
                log.warning("ALERT_CHANNEL_ID %s is not a channel I can see", self.channel_id)
                post_trace.set_outcome(Outcome.ERROR)
                return
            embed = alert_embed(alert)
            now_ns = int(self._clock() * 1e9)
            earlier = self.store.find(alert.key, now_ns)
            try:
                message = await self._edit(earlier, embed) if earlier is not None else None
                if message is not None:
                    post_trace.span.set_attribute(schema.ALERT_EDITED, True)
                else:
                    message = await send_to(channel, embed=embed)
            except discord.HTTPException as exc:
                post_trace.record_error(exc)
                log.warning("could not post the alert %s: %s", alert.name, exc)
                return
            if alert.resolved:
                self.store.forget(alert.key)
            else:
                posted = Posted(message.channel.id, message.id)
                self.store.remember(alert.key, posted, now_ns)

    async def _edit(self, earlier: Posted, embed: discord.Embed) -> discord.Message | None:
        """The alert's post, edited; None if it is gone (deleted: post a new one)."""
        channel = self.client.get_partial_messageable(earlier.channel_id)
        try:
            with send_span() as span:
                record_response(span, embed.title or "")
                return await channel.get_partial_message(earlier.message_id).edit(
                    embed=embed, allowed_mentions=NO_MENTIONS
                )
        except discord.NotFound:
            log.info("the post of an open alert is gone: posting it again")
            return None

    def close(self) -> None:
        self.store.close()
