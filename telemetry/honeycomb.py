"""Honeycomb's configuration API: deployment markers, and queries plus a board kept as code.

The ingest key cannot create markers, queries or boards (FACTS.md); these calls
take a configuration key, which is never printed: errors name the status and the
path, not the request. Every definition is looked up by name before it is written,
so ``chatops honeycomb apply`` can run again and again and update in place.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from telemetry.honeycomb_payloads import webhook_payloads

TIMEOUT = aiohttp.ClientTimeout(total=15, connect=5)


class HoneycombError(Exception):
    """Honeycomb refused or could not be reached; the message is one line, without the key."""


@dataclass(frozen=True)
class Definitions:
    """What ``infra/honeycomb/`` holds: derived columns, named queries and one board."""

    derived_columns: list[dict[str, Any]]
    queries: dict[str, dict[str, Any]]
    board: dict[str, Any]
    # Alerting (docs/ops-loop.md): triggers, and SLOs each with its SLI and burn alerts.
    triggers: dict[str, dict[str, Any]] = field(default_factory=dict)
    slos: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertRecipient:
    """The bot's ``/hooks/honeycomb`` as a Honeycomb webhook recipient (matched by name)."""

    name: str
    url: str
    secret: str


@dataclass
class ApplyReport:
    """What ``apply`` did, one line per object, for the CLI to print."""

    lines: list[str] = field(default_factory=list)
    board_id: str | None = None


class Honeycomb:
    """A thin client: one session, explicit timeouts, errors as ``HoneycombError``."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._base = base_url.rstrip("/")

    async def call(self, method: str, path: str, body: object = None) -> Any:
        """One API call; returns the decoded JSON answer."""
        url = f"{self._base}{path}"
        try:
            async with self._session.request(method, url, json=body) as response:
                text = await response.text()
                if response.status in (401, 403):
                    raise HoneycombError(
                        f"Honeycomb rejected the key ({response.status}) for {method} {path}"
                    )
                if response.status >= 400:
                    raise HoneycombError(
                        f"Honeycomb answered {response.status} to {method} {path}: {_short(text)}"
                    )
                return json.loads(text) if text.strip() else None
        except aiohttp.ClientError as exc:
            raise HoneycombError(f"cannot reach Honeycomb at {self._base}: {exc}") from None
        except TimeoutError:
            raise HoneycombError(f"Honeycomb at {self._base} did not answer in time") from None
        except json.JSONDecodeError:
            raise HoneycombError(f"Honeycomb sent a non-JSON answer to {method} {path}") from None

    async def create_marker(
        self, dataset: str, *, message: str, url: str | None, start_time: int
    ) -> dict[str, Any]:
        """``POST /1/markers/{dataset}`` with type ``deploy``."""
        body: dict[str, Any] = {"message": message, "type": "deploy", "start_time": start_time}
        if url:
            body["url"] = url
        answer = await self.call("POST", f"/1/markers/{dataset}", body)
        return answer if isinstance(answer, dict) else {}

    async def list_markers(self, dataset: str) -> list[dict[str, Any]]:
        """``GET /1/markers/{dataset}``: every marker (``start_time`` in Unix seconds)."""
        answer = await self.call("GET", f"/1/markers/{dataset}")
        return [m for m in answer or [] if isinstance(m, dict)]

    async def query_data(
        self, dataset: str, spec: dict[str, Any], *, poll_s: float = 0.5, timeout_s: float = 30.0
    ) -> list[dict[str, Any]]:
        """Run ``spec`` through the Query Data API and return its result rows.

        ``POST /1/queries`` (the spec), ``POST /1/query_results`` (run it), then
        ``GET /1/query_results/{id}`` until ``complete``, within ``timeout_s``.
        """
        query = await self.call("POST", f"/1/queries/{dataset}", spec)
        run = await self.call(
            "POST",
            f"/1/query_results/{dataset}",
            {"query_id": query["id"], "disable_series": True, "limit": 1000},
        )
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not run.get("complete"):
            if asyncio.get_running_loop().time() > deadline:
                raise HoneycombError(f"the query on {dataset} did not complete in {timeout_s:g} s")
            await asyncio.sleep(poll_s)
            run = await self.call("GET", f"/1/query_results/{dataset}/{run['id']}")
        results = ((run.get("data") or {}).get("results")) or []
        return [r.get("data") or {} for r in results if isinstance(r, dict)]


@asynccontextmanager
async def connect(base_url: str, key: str) -> AsyncIterator[Honeycomb]:
    """A client whose every request carries the key in ``X-Honeycomb-Team``."""
    headers = {"X-Honeycomb-Team": key, "Content-Type": "application/json"}
    async with aiohttp.ClientSession(headers=headers, timeout=TIMEOUT) as session:
        yield Honeycomb(session, base_url)


def _short(text: str, limit: int = 200) -> str:
    return " ".join(text.split())[:limit] or "(empty body)"


def load_definitions(directory: Path) -> Definitions:
    """Read ``board.json``, ``queries/*.json`` and ``derived_columns/*.json``; ``ValueError``
    names the file that is wrong."""

    def read(path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object")
        return data

    board_file = directory / "board.json"
    if not board_file.is_file():
        raise ValueError(f"no board.json in {directory}")
    board = read(board_file)
    queries = {p.stem: read(p) for p in sorted((directory / "queries").glob("*.json"))}
    columns = [read(p) for p in sorted((directory / "derived_columns").glob("*.json"))]
    for name, query in queries.items():
        if "name" not in query or "spec" not in query:
            raise ValueError(f"{directory}/queries/{name}.json: needs 'name' and 'spec'")
    triggers = {p.stem: read(p) for p in sorted((directory / "triggers").glob("*.json"))}
    slos = {p.stem: read(p) for p in sorted((directory / "slos").glob("*.json"))}
    for name, trigger in triggers.items():
        missing = [k for k in ("name", "query", "threshold") if k not in trigger]
        if missing:
            raise ValueError(f"{directory}/triggers/{name}.json: needs {', '.join(missing)}")
    for name, slo in slos.items():
        sli = slo.get("sli")
        if "name" not in slo or not isinstance(sli, dict) or "alias" not in sli:
            raise ValueError(f"{directory}/slos/{name}.json: needs 'name' and 'sli' with 'alias'")
    for panel in board.get("panels", []):
        if panel not in queries:
            raise ValueError(f"board.json: panel {panel!r} has no queries/{panel}.json")
    if "name" not in board:
        raise ValueError("board.json: needs 'name'")
    return Definitions(
        derived_columns=columns, queries=queries, board=board, triggers=triggers, slos=slos
    )


def plan(definitions: Definitions, dataset: str) -> list[str]:
    """What ``apply`` would write, for ``--dry-run``: nothing is sent."""
    lines = [f"derived column {c['alias']} in {dataset}" for c in definitions.derived_columns]
    lines += [f"query {q['name']} in {dataset}" for q in definitions.queries.values()]
    panels = len(definitions.board.get("panels", []))
    lines.append(f"board {definitions.board['name']} ({panels} panels)")
    lines += [f"trigger {t['name']} in {dataset}" for t in definitions.triggers.values()]
    for slo in definitions.slos.values():
        lines.append(f"SLI {slo['sli']['alias']} and SLO {slo['name']} in {dataset}")
        lines += [f"burn alert {_burn_key(a)} of {slo['name']}" for a in slo.get("burn_alerts", [])]
    return lines


async def _upsert(
    hc: Honeycomb, list_path: str, item_path: str, key: str, body: dict[str, Any]
) -> tuple[str, str]:
    """Update the object whose ``key`` equals ``body[key]``, or create it; returns (verb, id)."""
    existing = await hc.call("GET", list_path) or []
    for item in existing:
        if isinstance(item, dict) and item.get(key) == body[key]:
            await hc.call("PUT", f"{item_path}/{item['id']}", body)
            return "updated", str(item["id"])
    created = await hc.call("POST", list_path, body)
    return "created", str(created["id"])


async def apply(
    hc: Honeycomb,
    definitions: Definitions,
    dataset: str,
    recipient: AlertRecipient | None = None,
) -> ApplyReport:
    """Create or update derived columns, queries with their annotations, the board, then
    the alerting: the webhook recipient, triggers, SLOs and their burn alerts."""
    report = ApplyReport()
    for column in definitions.derived_columns:
        path = f"/1/derived_columns/{dataset}"
        verb, _ = await _upsert(hc, path, path, "alias", column)
        report.lines.append(f"{verb} derived column {column['alias']}")

    panels: list[dict[str, Any]] = []
    for position, panel in enumerate(definitions.board.get("panels", [])):
        query = definitions.queries[panel]
        # Queries are immutable in Honeycomb: the same spec gives back the same id.
        created = await hc.call("POST", f"/1/queries/{dataset}", query["spec"])
        annotation = {
            "name": query["name"],
            "description": query.get("description", ""),
            "query_id": created["id"],
        }
        path = f"/1/query_annotations/{dataset}"
        verb, annotation_id = await _upsert(hc, path, path, "name", annotation)
        report.lines.append(f"{verb} query {query['name']}")
        panels.append(
            {
                "type": "query",
                "query_panel": {
                    "query_id": created["id"],
                    "query_annotation_id": annotation_id,
                    "query_style": query.get("style", "graph"),
                },
                "position": {
                    "x_coordinate": (position % 2) * 6,
                    "y_coordinate": (position // 2) * 6,
                    "width": 6,
                    "height": 6,
                },
            }
        )

    board = {
        "name": definitions.board["name"],
        "description": definitions.board.get("description", ""),
        "type": "flexible",
        "layout_generation": "manual",
        "panels": panels,
    }
    verb, report.board_id = await _upsert(hc, "/1/boards", "/1/boards", "name", board)
    report.lines.append(f"{verb} board {board['name']} ({len(panels)} panels)")
    await apply_alerts(hc, definitions, dataset, recipient, report)
    return report


def _burn_key(alert: dict[str, Any]) -> str:
    """What makes a burn alert the same one on the next run: its type and its window."""
    if alert.get("alert_type") == "budget_rate":
        return f"budget_rate {alert.get('budget_rate_window_minutes')} min"
    return f"exhaustion_time {alert.get('exhaustion_minutes')} min"


async def _recipient_id(hc: Honeycomb, recipient: AlertRecipient, report: ApplyReport) -> str:
    """The webhook recipient, matched by its name; its URL and secret kept up to date."""
    body = {
        "type": "webhook",
        "details": {
            "webhook_name": recipient.name,
            "webhook_url": recipient.url,
            "webhook_secret": recipient.secret,
            # One payload per alert type, so burn alerts arrive shaped like triggers.
            "webhook_payloads": webhook_payloads(),
        },
    }
    for item in await hc.call("GET", "/1/recipients") or []:
        if not isinstance(item, dict):
            continue
        details = item.get("details") or {}
        if item.get("type") == "webhook" and details.get("webhook_name") == recipient.name:
            await hc.call("PUT", f"/1/recipients/{item['id']}", body)
            report.lines.append(f"updated webhook recipient {recipient.name}")
            return str(item["id"])
    created = await hc.call("POST", "/1/recipients", body)
    report.lines.append(f"created webhook recipient {recipient.name}")
    return str(created["id"])


async def apply_alerts(
    hc: Honeycomb,
    definitions: Definitions,
    dataset: str,
    recipient: AlertRecipient | None,
    report: ApplyReport,
) -> None:
    """Triggers (by name), SLIs (derived columns, by alias), SLOs (by name) and burn alerts
    (by SLO, type and window), each notifying the bot's webhook when one is given."""
    if not definitions.triggers and not definitions.slos:
        return
    recipients: list[dict[str, str]] = []
    if recipient is not None:
        recipients = [{"id": await _recipient_id(hc, recipient, report)}]
    else:
        report.lines.append("no webhook recipient (HONEYCOMB_ALERT_WEBHOOK_URL is not set)")
    for trigger in definitions.triggers.values():
        body = {key: value for key, value in trigger.items() if key != "recipients"}
        body["recipients"] = recipients
        path = f"/1/triggers/{dataset}"
        verb, _ = await _upsert(hc, path, path, "name", body)
        report.lines.append(f"{verb} trigger {trigger['name']}")
    for slo in definitions.slos.values():
        sli = slo["sli"]
        columns = f"/1/derived_columns/{dataset}"
        verb, _ = await _upsert(hc, columns, columns, "alias", sli)
        report.lines.append(f"{verb} SLI {sli['alias']}")
        body = {k: v for k, v in slo.items() if k not in ("sli", "burn_alerts")}
        body["sli"] = {"alias": sli["alias"]}
        path = f"/1/slos/{dataset}"
        verb, slo_id = await _upsert(hc, path, path, "name", body)
        report.lines.append(f"{verb} SLO {slo['name']}")
        existing = await hc.call("GET", f"/1/burn_alerts/{dataset}?slo_id={slo_id}") or []
        by_key = {_burn_key(a): a for a in existing if isinstance(a, dict)}
        for alert in slo.get("burn_alerts", []):
            alert_body = {**alert, "slo": {"id": slo_id}, "recipients": recipients}
            found = by_key.get(_burn_key(alert))
            if found is not None:
                await hc.call("PUT", f"/1/burn_alerts/{dataset}/{found['id']}", alert_body)
                verb = "updated"
            else:
                await hc.call("POST", f"/1/burn_alerts/{dataset}", alert_body)
                verb = "created"
            report.lines.append(f"{verb} burn alert {_burn_key(alert)} of {slo['name']}")
