"""A trace id as chat shows it: a link to its waterfall in Honeycomb, or the bare id.

Error replies and CI announcements name the trace so an operator can open it. With
``HONEYCOMB_TEAM`` (and ``HONEYCOMB_ENVIRONMENT``) set, that is a link to the trace
in Honeycomb's UI; without a team, the bare id in backticks, as before (``chatops
trace`` takes it).

In a reply the link is a plain URL in ``<>``: replies never carry masked links
(``replies.inert_links``: their text may echo a user's), and ``<>`` keeps Discord
from unfurling a preview card under the error (the send also suppresses embeds).
In an embed (a CI announcement) it is a masked link showing the id: an embed is the
bot's own text, and nothing inside an embed is unfurled.
"""

from __future__ import annotations

from dataclasses import dataclass

from telemetry.trace_links import TraceLinks, trace_reference


@dataclass(frozen=True, slots=True)
class TraceTarget:
    """Where trace ids link to: ``links`` (None: nowhere) and the dataset of the bot's traces."""

    links: TraceLinks | None = None
    dataset: str = "chatops-bot"

    def url(
        self, trace_id: str, *, dataset: str | None = None, start_s: float | None = None
    ) -> str | None:
        """The trace's URL, or None without Honeycomb (or without a trace: ``-``)."""
        if self.links is None or not trace_id.strip("-"):
            return None
        return trace_reference(self.links, trace_id, dataset or self.dataset, start_s=start_s)

    def in_reply(self, trace_id: str, *, start_s: float | None = None) -> str:
        """``<url>`` (no preview), else ```id```."""
        url = self.url(trace_id, start_s=start_s)
        return f"<{url}>" if url else f"`{trace_id}`"

    def in_embed(
        self, trace_id: str, *, dataset: str | None = None, start_s: float | None = None
    ) -> str:
        """``[`id`](url)``, else ```id```; ``dataset`` for another service's traces (CI)."""
        url = self.url(trace_id, dataset=dataset, start_s=start_s)
        return f"[`{trace_id}`]({url})" if url else f"`{trace_id}`"


NO_LINKS = TraceTarget()


def trace_target_of(bot: object) -> TraceTarget:
    """The bot's ``trace_target`` (``ChatOpsBot`` sets it from ``Settings``), else no links."""
    target = getattr(bot, "trace_target", None)
    return target if isinstance(target, TraceTarget) else NO_LINKS
