"""Honeycomb's configuration API: deployment markers, and queries plus a board kept as code.

The ingest key cannot create markers, queries or boards (FACTS.md); these calls
take a configuration key, which is never printed: errors name the status and the
path, not the request. Every definition is looked up by name before it is written,
so ``chatops honeycomb apply`` can run again and again and update in place.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

TIMEOUT = aiohttp.ClientTimeout(total=15, connect=5)


class HoneycombError(Exception):
    """Honeycomb refused or could not be reached; the message is one line, without the key."""


@dataclass(frozen=True)
class Definitions:
    """What ``infra/honeycomb/`` holds: derived columns, named queries and one board."""

    derived_columns: list[dict[str, Any]]
    queries: dict[str, dict[str, Any]]
    board: dict[str, Any]


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
    for panel in board.get("panels", []):
        if panel not in queries:
            raise ValueError(f"board.json: panel {panel!r} has no queries/{panel}.json")
    if "name" not in board:
        raise ValueError("board.json: needs 'name'")
    return Definitions(derived_columns=columns, queries=queries, board=board)


def plan(definitions: Definitions, dataset: str) -> list[str]:
    """What ``apply`` would write, for ``--dry-run``: nothing is sent."""
    lines = [f"derived column {c['alias']} in {dataset}" for c in definitions.derived_columns]
    lines += [f"query {q['name']} in {dataset}" for q in definitions.queries.values()]
    panels = len(definitions.board.get("panels", []))
    lines.append(f"board {definitions.board['name']} ({panels} panels)")
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


async def apply(hc: Honeycomb, definitions: Definitions, dataset: str) -> ApplyReport:
    """Create or update derived columns, queries with their annotations, then the board."""
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
    return report
