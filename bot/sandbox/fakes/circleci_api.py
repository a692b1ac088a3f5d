"""A fake CircleCI API v2: pipelines, workflows and jobs, ``Circle-Token`` auth, injectable faults.

Shapes follow CircleCI's API reference (and the recorded pages in
``tests/fakes/recorded/circleci_api_*.json``): ``{"items": [...], "next_page_token": ...}``,
the next page asked with ``?page-token=``; pipelines newest first. A wrong token is
401 ``{"message": "You must log in first."}``, an unknown project 404, and
``rate_limit_next`` / ``fail_next`` answer 429 (``Retry-After``) / 502 first.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from bot.sandbox.fakes.local_server import serve

TOKEN = "circle-test-token"


def stamp(moment: datetime) -> str:
    """CircleCI's timestamp spelling: UTC, milliseconds, ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _id(kind: str, *parts: object) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join([kind, *map(str, parts)])))


def pipeline(
    slug: str, number: int, created_at: datetime, *, branch: str = "main"
) -> dict[str, Any]:
    _, org, repo = slug.split("/")
    return {
        "id": _id("pipeline", slug, number),
        "errors": [],
        "project_slug": slug,
        "updated_at": stamp(created_at + timedelta(seconds=1)),
        "number": number,
        "trigger_parameters": {},
        "state": "created",
        "created_at": stamp(created_at),
        "trigger": {
            "type": "webhook",
            "received_at": stamp(created_at),
            "actor": {"login": "octocat", "avatar_url": "https://avatars.example/u/1"},
        },
        "vcs": {
            "provider_name": "GitHub",
            "target_repository_url": f"https://github.com/{org}/{repo}",
            "branch": branch,
            "revision": "f454a02b5d10fcccfd7d9dd7608a76d6493a98b4",
            "commit": {"subject": "Fix the login redirect", "body": ""},
            "origin_repository_url": f"https://github.com/{org}/{repo}",
        },
    }


def workflow(
    of: dict[str, Any],
    name: str,
    status: str,
    created_at: datetime,
    stopped_at: datetime | None,
) -> dict[str, Any]:
    return {
        "pipeline_id": of["id"],
        "canceled_by": _id("user", "canceller") if status == "canceled" else None,
        "id": _id("workflow", of["id"], name),
        "name": name,
        "project_slug": of["project_slug"],
        "errored_by": None,
        "tag": None,
        "status": status,
        "started_by": _id("user", "starter"),
        "pipeline_number": of["number"],
        "created_at": stamp(created_at),
        "stopped_at": stamp(stopped_at) if stopped_at else None,
    }


def job(
    of: dict[str, Any],
    name: str,
    status: str,
    *,
    number: int | None = None,
    started_at: datetime | None = None,
    stopped_at: datetime | None = None,
    kind: str = "build",
) -> dict[str, Any]:
    """A workflow job; one that never ran has no ``job_number`` nor times, as CircleCI shows."""
    found: dict[str, Any] = {
        "canceled_by": None,
        "dependencies": [],
        "id": _id("job", of["id"], name),
        "name": name,
        "approved_by": None,
        "project_slug": of["project_slug"],
        "status": status,
        "type": kind,
        "approval_request_id": None,
    }
    if number is not None:
        found["job_number"] = number
    if started_at is not None:
        found["started_at"] = stamp(started_at)
    if stopped_at is not None:
        found["stopped_at"] = stamp(stopped_at)
    return found


def cancelled_run(
    slug: str, number: int, at: datetime
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """A pipeline whose workflow was cancelled at ``at`` while ``test`` ran: ``build``
    passed, ``lint`` failed, ``deploy`` never started (``blocked``)."""
    start = at - timedelta(minutes=4)
    run = pipeline(slug, number, start)
    flow = workflow(run, "build-test-deploy", "canceled", start, at)
    jobs = [
        job(flow, "build", "success", number=number * 10 + 1, started_at=start, stopped_at=start),
        job(flow, "lint", "failed", number=number * 10 + 2, started_at=start, stopped_at=start),
        job(
            flow,
            "test",
            "canceled",
            number=number * 10 + 3,
            started_at=start + timedelta(seconds=70),
            stopped_at=at,
        ),
        job(flow, "deploy", "blocked"),
    ]
    return run, flow, jobs


def failed_run(
    slug: str, number: int, at: datetime, *, last_job_ran: bool = False
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """A pipeline whose workflow failed at ``at``: ``build`` failed, so ``deploy`` (which
    needs it, the job that runs ``ci finish --result``) stayed ``blocked``; with
    ``last_job_ran``, ``deploy`` ran and failed instead."""
    start = at - timedelta(minutes=2)
    run = pipeline(slug, number, start)
    flow = workflow(run, "build-deploy", "failed", start, at)
    build = job(flow, "build", "failed", number=number * 10 + 1, started_at=start, stopped_at=at)
    if last_job_ran:
        deploy = job(flow, "deploy", "failed", number=number * 10 + 2, started_at=at, stopped_at=at)
    else:
        deploy = job(flow, "deploy", "blocked")
    deploy["dependencies"] = [build["id"]]
    return run, flow, [build, deploy]


def passed_run(
    slug: str, number: int, at: datetime
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """A pipeline whose workflow succeeded at ``at`` (``ci finish`` sent its spans)."""
    start = at - timedelta(minutes=3)
    run = pipeline(slug, number, start)
    flow = workflow(run, "build-test-deploy", "success", start, at)
    jobs = [job(flow, "build", "success", number=number * 10 + 1, started_at=start, stopped_at=at)]
    return run, flow, jobs


@dataclass
class FakeCircleCI:
    token: str = TOKEN  # the Circle-Token it accepts
    page_size: int = 20  # CircleCI's own page size
    rate_limit_next: int = 0  # answer this many requests with 429 first
    fail_next: int = 0  # ... then this many with 502
    redirect_to: str | None = None  # answer every request with a 302 there
    requests: list[str] = field(default_factory=list)
    tokens_seen: list[str] = field(default_factory=list)
    port: int = 0
    _pipelines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _workflows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _jobs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The API v2 base, as ``CIRCLECI_API_URL`` names it."""
        return f"http://127.0.0.1:{self.port}/api/v2"

    def add(
        self,
        run: dict[str, Any],
        flow: dict[str, Any] | None = None,
        jobs: list[dict[str, Any]] | None = None,
    ) -> None:
        """A pipeline (newest first by ``created_at``), its workflow and that workflow's jobs."""
        listed = self._pipelines.setdefault(run["project_slug"], [])
        listed.append(run)
        listed.sort(key=lambda item: item["created_at"], reverse=True)
        self._workflows.setdefault(run["id"], [])
        if flow is not None:
            self._workflows[run["id"]].append(flow)
            self._jobs[flow["id"]] = list(jobs or [])

    def project_known(self, slug: str) -> None:
        """A project CircleCI knows, with no pipeline yet."""
        self._pipelines.setdefault(slug, [])

    async def __aenter__(self) -> FakeCircleCI:
        app = web.Application()
        app.router.add_get("/api/v2/project/{vcs}/{org}/{repo}/pipeline", self._pipeline_list)
        app.router.add_get("/api/v2/pipeline/{id}/workflow", self._workflow_list)
        app.router.add_get("/api/v2/workflow/{id}/job", self._job_list)
        self._runner, self.port = await serve(app)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _refusal(self, request: web.Request) -> web.Response | None:
        self.requests.append(str(request.rel_url))
        self.tokens_seen.append(request.headers.get("Circle-Token", ""))
        if self.redirect_to is not None:
            raise web.HTTPFound(self.redirect_to)
        if request.headers.get("Circle-Token") != self.token:
            return web.json_response({"message": "You must log in first."}, status=401)
        if self.rate_limit_next:
            self.rate_limit_next -= 1
            return web.json_response(
                {"message": "Rate limit exceeded"}, status=429, headers={"Retry-After": "2"}
            )
        if self.fail_next:
            self.fail_next -= 1
            return web.Response(status=502)
        return None

    def _page(self, request: web.Request, items: list[dict[str, Any]]) -> web.Response:
        token = request.query.get("page-token", "")
        start = int(token.removeprefix("page-")) if token.startswith("page-") else 0
        chunk = items[start : start + self.page_size]
        following = start + self.page_size
        return web.json_response(
            {
                "items": chunk,
                "next_page_token": f"page-{following}" if following < len(items) else None,
            }
        )

    async def _pipeline_list(self, request: web.Request) -> web.Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        info = request.match_info
        slug = f"{info['vcs']}/{info['org']}/{info['repo']}"
        if slug not in self._pipelines:
            return web.json_response({"message": "Project not found"}, status=404)
        return self._page(request, self._pipelines[slug])

    async def _workflow_list(self, request: web.Request) -> web.Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        found = self._workflows.get(request.match_info["id"])
        if found is None:
            return web.json_response({"message": "Pipeline not found"}, status=404)
        return self._page(request, found)

    async def _job_list(self, request: web.Request) -> web.Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        found = self._jobs.get(request.match_info["id"])
        if found is None:
            return web.json_response({"message": "Workflow not found"}, status=404)
        return self._page(request, found)
