"""A local fake of Honeycomb's configuration API: markers, derived columns, queries,
query annotations and boards, shaped after the documented requests and answers.

It records every request (method, path, headers, body) so tests assert what the
client sent, and answers 401 to any key other than the one it was built with.
``chatops console`` serves it (``async with``) for ``/marker``; tests may serve
``app()`` themselves.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeHoneycomb:
    key: str = "config-key-123"
    requests: list[Recorded] = field(default_factory=list)
    markers: list[dict[str, Any]] = field(default_factory=list)
    derived_columns: list[dict[str, Any]] = field(default_factory=list)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    boards: list[dict[str, Any]] = field(default_factory=list)
    triggers: list[dict[str, Any]] = field(default_factory=list)
    slos: list[dict[str, Any]] = field(default_factory=list)
    burn_alerts: list[dict[str, Any]] = field(default_factory=list)
    recipients: list[dict[str, Any]] = field(default_factory=list)
    # Query Data API: runs by id; ``results`` answers a spec with its rows (the ``data``
    # of each result), so a test decides what Honeycomb "found".
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    results: Callable[[dict[str, Any]], list[dict[str, Any]]] = lambda spec: []
    queries: dict[str, dict[str, Any]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    # What ``GET /1/auth`` says about the key: its team, environment and permissions.
    team: str = "chatops-team"
    environment: str = "production"
    access: dict[str, bool] = field(
        default_factory=lambda: {"events": True, "markers": True, "queries": True}
    )
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        """Serve on a free loopback port."""
        self._runner = web.AppRunner(self.app(), handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/1/auth", self._auth)
        app.router.add_post("/1/markers/{dataset}", self._marker)
        app.router.add_get("/1/markers/{dataset}", self._lister(self.markers))
        app.router.add_post("/1/query_results/{dataset}", self._run_query)
        app.router.add_get("/1/query_results/{dataset}/{id}", self._query_result)
        app.router.add_post("/1/queries/{dataset}", self._query)
        for name, items in (
            ("derived_columns", self.derived_columns),
            ("query_annotations", self.annotations),
        ):
            app.router.add_get(f"/1/{name}/{{dataset}}", self._lister(items))
            app.router.add_post(f"/1/{name}/{{dataset}}", self._creator(items))
            app.router.add_put(f"/1/{name}/{{dataset}}/{{id}}", self._updater(items))
        for name, items in (("triggers", self.triggers), ("slos", self.slos)):
            app.router.add_get(f"/1/{name}/{{dataset}}", self._lister(items))
            app.router.add_post(f"/1/{name}/{{dataset}}", self._creator(items))
            app.router.add_put(f"/1/{name}/{{dataset}}/{{id}}", self._updater(items))
        # Burn alerts are listed per SLO (``?slo_id=``), as in Honeycomb's API.
        app.router.add_get("/1/burn_alerts/{dataset}", self._burn_alerts)
        app.router.add_post("/1/burn_alerts/{dataset}", self._creator(self.burn_alerts))
        app.router.add_put("/1/burn_alerts/{dataset}/{id}", self._updater(self.burn_alerts))
        app.router.add_get("/1/recipients", self._lister(self.recipients))
        app.router.add_post("/1/recipients", self._creator(self.recipients))
        app.router.add_put("/1/recipients/{id}", self._updater(self.recipients))
        app.router.add_get("/1/boards", self._lister(self.boards))
        app.router.add_post("/1/boards", self._creator(self.boards))
        app.router.add_put("/1/boards/{id}", self._updater(self.boards))
        return app

    def calls(self, method: str, prefix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.startswith(prefix)]

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        text = await request.text()
        body = json.loads(text) if text else None
        self.requests.append(Recorded(request.method, request.path, dict(request.headers), body))
        if request.headers.get("X-Honeycomb-Team") != self.key:
            return web.json_response(
                {"error": "unknown API key - check your credentials"}, status=401
            )
        response: web.StreamResponse = await handler(request)
        return response

    async def _auth(self, request: web.Request) -> web.Response:
        """The key's metadata, shaped after Honeycomb's ``GET /1/auth``."""
        return web.json_response(
            {
                "id": "key-id-1",
                "type": "ingest",
                "api_key_access": self.access,
                "environment": {"name": self.environment.title(), "slug": self.environment},
                "team": {"name": self.team.title(), "slug": self.team},
            }
        )

    def _new_id(self) -> str:
        return f"id{next(self._ids)}"

    async def _marker(self, request: web.Request) -> web.Response:
        body = await request.json()
        marker = {**body, "id": self._new_id(), "created_at": "2026-11-23T00:00:00Z"}
        self.markers.append(marker)
        return web.json_response(marker, status=201)

    async def _query(self, request: web.Request) -> web.Response:
        spec = await request.json()
        # Honeycomb gives the same id to the same spec.
        key = json.dumps(spec, sort_keys=True)
        if key not in self.queries:
            self.queries[key] = {**spec, "id": self._new_id()}
        return web.json_response(self.queries[key])

    async def _run_query(self, request: web.Request) -> web.Response:
        body = await request.json()
        specs = {q["id"]: q for q in self.queries.values()}
        if body.get("query_id") not in specs:
            return web.json_response({"error": "query not found"}, status=404)
        run = {"id": self._new_id(), "query_id": body["query_id"], "complete": False}
        self.runs[run["id"]] = run
        return web.json_response(run, status=201)

    async def _query_result(self, request: web.Request) -> web.Response:
        """Incomplete at the first look, complete with ``results(spec)`` at the next."""
        run = self.runs.get(request.match_info["id"])
        if run is None:
            return web.json_response({"error": "not found"}, status=404)
        if not run["complete"]:
            run["complete"] = True
            return web.json_response({"id": run["id"], "complete": False})
        spec = {q["id"]: q for q in self.queries.values()}[run["query_id"]]
        rows = [{"data": row} for row in self.results(spec)]
        return web.json_response({"id": run["id"], "complete": True, "data": {"results": rows}})

    async def _burn_alerts(self, request: web.Request) -> web.Response:
        slo_id = request.query.get("slo_id")
        if not slo_id:
            return web.json_response({"error": "slo_id is required"}, status=400)
        return web.json_response([a for a in self.burn_alerts if a["slo"]["id"] == slo_id])

    def _lister(self, items: list[dict[str, Any]]) -> Any:
        async def handler(request: web.Request) -> web.Response:
            return web.json_response(items)

        return handler

    def _creator(self, items: list[dict[str, Any]]) -> Any:
        async def handler(request: web.Request) -> web.Response:
            item = {**(await request.json()), "id": self._new_id()}
            items.append(item)
            return web.json_response(item, status=201)

        return handler

    def _updater(self, items: list[dict[str, Any]]) -> Any:
        async def handler(request: web.Request) -> web.Response:
            for index, item in enumerate(items):
                if item["id"] == request.match_info["id"]:
                    items[index] = {**(await request.json()), "id": item["id"]}
                    return web.json_response(items[index])
            return web.json_response({"error": "not found"}, status=404)

        return handler
