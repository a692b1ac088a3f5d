"""The CircleCI receiver as aiohttp routes, mountable on the bot's health app.

``POST /hooks/circleci`` answers at once: spans go to a background queue and
announcements to a task, so CircleCI never waits on the collector or Discord.
Every request outcome is a status code, never a traceback: 503 unconfigured,
413 too large, 401 bad signature, 400 unreadable or older than the window,
200 duplicate, 202 accepted. A signed delivery is valid forever, so replays are
refused twice over: by age (``happened_at`` is signed) and by event id, kept
across restarts (``deliveries``) for as long as the age check would let it in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from aiohttp import web

from telemetry.pipeline import circleci, ids
from telemetry.pipeline.deliveries import MEMORY, DeliveryStore
from telemetry.pipeline.events import Notifier, notify_safely
from telemetry.pipeline.export import PipelineSpan

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024  # CircleCI payloads are a few KiB
MAX_AGE_S = 3600.0
# How far ahead of our clock a delivery may say it happened (clock skew).
MAX_SKEW_S = 300.0
_SKEW_NS = int(MAX_SKEW_S * 1e9)


class SpanSink(Protocol):
    def emit(self, spans: list[PipelineSpan]) -> None: ...


class CircleCIReceiver:
    """State of the receiver: secret, sink, notifier, the ids of accepted deliveries."""

    def __init__(
        self,
        secret: str | None,
        sink: SpanSink | None,
        *,
        notifier: Notifier | None = None,
        deliveries: DeliveryStore | None = None,
        max_age_s: float = MAX_AGE_S,
        clock: Callable[[], float] = time.time,
        unconfigured_reason: str | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        id_scheme: ids.CircleIdScheme = "chatops",
    ) -> None:
        self._ids = ids.CircleIds(id_scheme)
        self._secret = secret.encode() if secret else b""
        self._sink = sink
        self._notifier = notifier
        self._max_body = max_body_bytes
        self._deliveries = deliveries or DeliveryStore(MEMORY)
        self._max_age_ns = int(max_age_s * 1e9)
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self._reason = unconfigured_reason or (
            None if self._secret else "CIRCLECI_HOOK_SECRET is not set"
        )
        if self._reason is None and sink is None:
            self._reason = "CIRCLECI_OTLP_ENDPOINT is not set"
        self._warned = False

    @property
    def configured(self) -> bool:
        return self._reason is None

    async def hook(self, request: web.Request) -> web.Response:
        if self._reason is not None or self._sink is None:
            if not self._warned:
                log.warning("CircleCI webhook refused with 503: %s", self._reason)
                self._warned = True
            return web.json_response({"error": "receiver not configured"}, status=503)
        body = await self._read_limited(request)
        if body is None:
            return web.json_response({"error": "body too large"}, status=413)
        header = request.headers.get(circleci.SIGNATURE_HEADER)
        if not circleci.verify_signature(self._secret, body, header):
            return web.json_response({"error": "bad or missing signature"}, status=401)
        try:
            translation = circleci.translate(circleci.parse(body), self._ids)
        except circleci.BadPayload as exc:
            log.info("CircleCI payload refused: %s", exc)
            return web.json_response({"error": str(exc)}, status=400)
        now = int(self._clock() * 1e9)
        happened = translation.happened_ns
        if happened is None or not now - self._max_age_ns <= happened <= now + _SKEW_NS:
            log.info("CircleCI delivery %s refused: outside the age window", translation.event_id)
            return web.json_response(
                {"error": "happened_at missing or outside the accepted window"}, status=400
            )
        if not self._deliveries.first_time(
            translation.event_id, happened, forget_before_ns=now - self._max_age_ns
        ):
            return web.json_response({"status": "duplicate"})
        self._sink.emit(translation.spans)
        if translation.finished is not None and self._notifier is not None:
            task = asyncio.create_task(notify_safely(self._notifier, translation.finished))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.json_response(
            {"status": "accepted", "type": translation.event_type, "spans": len(translation.spans)},
            status=202,
        )

    async def traceparent(self, request: web.Request) -> web.Response:
        """``export TRACEPARENT=...`` for a job, to append to ``$BASH_ENV`` in the job."""
        workflow_id = request.match_info["workflow_id"]
        job_id = request.match_info["job_id"]
        if not (ids.is_uuid(workflow_id) and ids.is_uuid(job_id)):
            return web.Response(status=400, text="workflow and job ids must be UUIDs\n")
        value = ids.traceparent(ids.trace_id_for_run(workflow_id), self._ids.job_span_id(job_id))
        return web.Response(text=f"export TRACEPARENT={value}\n")

    async def _read_limited(self, request: web.Request) -> bytes | None:
        if request.content_length is not None and request.content_length > self._max_body:
            return None
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > self._max_body:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Wait at most ``timeout_s`` for announcements still running (shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

    def close(self) -> None:
        """Close the delivery store (after ``drain``, at shutdown)."""
        self._deliveries.close()


def circleci_routes(receiver: CircleCIReceiver) -> list[web.RouteDef]:
    """The receiver's routes: ``app.add_routes(circleci_routes(receiver))`` on any app."""
    return [
        web.post("/hooks/circleci", receiver.hook),
        web.get("/traceparent/{workflow_id}/{job_id}", receiver.traceparent),
    ]
