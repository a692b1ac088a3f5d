"""A fake BuildKite REST API: builds list with Link pagination, Bearer auth, injectable 429s.

Build and job shapes follow BuildKite's REST API documentation for
``GET /v2/organizations/{org}/builds`` (``finished_from``, ``page``, ``per_page``).
``chatops console`` runs it (with ``sample_builds``) when BuildKite is not
configured, so ``!builds`` answers offline; the tests use it through ``tests/fakes``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from bot.sandbox.fakes.local_server import serve

TOKEN = "bk-test-token"


def build(
    number: int,
    finished_at: str,
    *,
    state: str = "passed",
    pipeline: str = "app",
    started_at: str = "2024-05-01T10:00:05.000Z",
    branch: str = "main",
) -> dict[str, Any]:
    build_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"build/{pipeline}/{number}"))
    job_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"job/{pipeline}/{number}"))
    return {
        "id": build_id,
        "graphql_id": "QnVpbGQtLS0=",
        "url": f"https://api.buildkite.com/v2/organizations/acme/pipelines/{pipeline}/builds/{number}",
        "web_url": f"https://buildkite.com/acme/{pipeline}/builds/{number}",
        "number": number,
        "state": state,
        "blocked": False,
        "message": "Bumping to version 0.2-beta.6",
        "commit": "abcd0b72a1e580e90712cdd9eb26d3fb41cd09c8",
        "branch": branch,
        "env": {},
        "source": "webhook",
        "creator": {"id": "3d3c3bf0-7d58-4afe-8fe7-b3017d5504de", "name": "Keith Pitt"},
        "created_at": "2024-05-01T10:00:00.000Z",
        "scheduled_at": "2024-05-01T10:00:00.000Z",
        "started_at": started_at,
        "finished_at": finished_at,
        "meta_data": {},
        "pull_request": None,
        "pipeline": {
            "id": "849411f9-9e6d-4739-a0d8-e247088e9b52",
            "slug": pipeline,
            "name": pipeline.title(),
            "repository": "git@github.com:acme/app.git",
        },
        "jobs": [
            {
                "id": job_id,
                "type": "script",
                "name": ":package: Build",
                "step_key": "build",
                "state": "passed" if state == "passed" else "failed",
                "web_url": f"https://buildkite.com/acme/{pipeline}/builds/{number}#{job_id}",
                "command": "make build",
                "exit_status": 0 if state == "passed" else 1,
                "agent": {"id": "0b461f65-e7be-4c80-888a-ef11d81fd971", "name": "agent-1"},
                "created_at": "2024-05-01T10:00:00.000Z",
                "scheduled_at": "2024-05-01T10:00:01.000Z",
                "runnable_at": "2024-05-01T10:00:01.500Z",
                "started_at": "2024-05-01T10:00:04.250Z",
                "finished_at": "2024-05-01T10:00:30.000Z",
                "future_field": {"ignored": True},
            },
            {"id": str(uuid.uuid4()), "type": "waiter"},
        ],
    }


def sample_builds(now: datetime) -> list[dict[str, Any]]:
    """What the console's fake has finished lately: two pipelines, one failure."""

    def at(minutes_ago: float) -> str:
        return (now - timedelta(minutes=minutes_ago)).isoformat(timespec="milliseconds")[:-6] + "Z"

    return [
        build(42, at(12), pipeline="app", started_at=at(15.5)),
        build(41, at(47), state="failed", pipeline="app", started_at=at(49), branch="fix-login"),
        build(7, at(95), pipeline="docs-site", started_at=at(96)),
    ]


@dataclass
class FakeBuildkite:
    builds: list[dict[str, Any]] = field(default_factory=list)
    token: str = TOKEN  # the Bearer token it accepts
    rate_limit_next: int = 0  # answer this many requests with 429 first
    fail_next: int = 0  # ... then this many with 502
    requests: list[str] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeBuildkite:
        app = web.Application()
        app.router.add_get("/v2/organizations/{org}/builds", self._builds)
        app.router.add_get("/v2/organizations/{org}/pipelines/{pipeline}/builds", self._builds)
        self._runner, self.port = await serve(app)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _builds(self, request: web.Request) -> web.Response:
        self.requests.append(str(request.rel_url))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"message": "Authentication required"}, status=401)
        if self.rate_limit_next:
            self.rate_limit_next -= 1
            return web.json_response(
                {"message": "Too Many Requests"},
                status=429,
                headers={"RateLimit-Remaining": "0", "RateLimit-Reset": "2"},
            )
        if self.fail_next:
            self.fail_next -= 1
            return web.Response(status=502)
        pipeline = request.match_info.get("pipeline")
        since = request.query.get("finished_from", "")
        matching = [
            b
            for b in self.builds
            if (pipeline is None or b["pipeline"]["slug"] == pipeline)
            and b["finished_at"]
            and b["finished_at"] >= since
        ]
        matching.sort(key=lambda b: b["created_at"], reverse=True)
        page, per_page = (
            int(request.query.get("page", "1")),
            int(request.query.get("per_page", "30")),
        )
        chunk = matching[(page - 1) * per_page : page * per_page]
        if request.query.get("exclude_jobs") == "true":
            chunk = [{key: value for key, value in b.items() if key != "jobs"} for b in chunk]
        headers = {}
        if page * per_page < len(matching):
            query = dict(request.query, page=str(page + 1))
            next_url = request.url.with_query(query)
            headers["Link"] = f'<{next_url}>; rel="next"'
        return web.json_response(chunk, headers=headers)
