"""Links to a trace in Honeycomb's UI, for error replies, announcements and CLI output.

One function, so every place that shows a trace id shows the same link: the UI host
follows ``HONEYCOMB_API_URL`` (``api.eu1.honeycomb.io`` → ``ui.eu1.honeycomb.io``), the
dataset is the service name (Honeycomb names a trace dataset after ``service.name``),
and a missing team means no link (callers then show the bare trace id).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

#: How far around the trace's start the UI searches; Honeycomb's default is two hours
#: from now, which misses a trace linked from an older announcement.
_WINDOW_S = 3600


@dataclass(frozen=True, slots=True)
class TraceLinks:
    """Where traces are viewed: ``team`` and ``environment`` as they appear in UI URLs."""

    team: str
    environment: str | None
    api_url: str = "https://api.honeycomb.io"

    def ui_base(self) -> str:
        host = urlsplit(self.api_url).hostname or "api.honeycomb.io"
        if host.startswith("api."):
            host = "ui." + host.removeprefix("api.")
        elif not host.endswith("honeycomb.io"):
            host = "ui.honeycomb.io"
        return f"https://{host}"

    def trace_url(self, trace_id: str | int, dataset: str, *, start_s: float | None = None) -> str:
        """The waterfall of ``trace_id``; ``start_s`` (epoch seconds) narrows the search."""
        tid = trace_id if isinstance(trace_id, str) else format(trace_id, "032x")
        path = f"/{quote(self.team, safe='')}"
        if self.environment:  # an environment-aware team; classic datasets have none
            path += f"/environments/{quote(self.environment, safe='')}"
        path += f"/datasets/{quote(dataset, safe='')}/trace"
        query: dict[str, str | int] = {"trace_id": tid}
        if start_s is not None:
            query["trace_start_ts"] = int(start_s) - 60
            query["trace_end_ts"] = int(start_s) + _WINDOW_S
        return f"{self.ui_base()}{path}?{urlencode(query)}"


def trace_reference(
    links: TraceLinks | None,
    trace_id: str | int,
    dataset: str,
    *,
    start_s: float | None = None,
) -> str:
    """A link when Honeycomb is configured, else the bare 32-hex trace id."""
    tid = trace_id if isinstance(trace_id, str) else format(trace_id, "032x")
    if links is None:
        return tid
    return links.trace_url(tid, dataset, start_s=start_s)
