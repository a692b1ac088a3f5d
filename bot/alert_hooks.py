"""``POST /hooks/honeycomb``: Honeycomb's trigger and burn-alert webhook, into Discord.

Mounted beside the CircleCI receiver (the health port, or ``WEBHOOK_PORT``) when
``HONEYCOMB_WEBHOOK_SECRET`` and ``ALERT_CHANNEL_ID`` are set. Every delivery is a
root span ``hook honeycomb`` with ``app.outcome`` and the status answered. In order:

- the shared secret Honeycomb sends in ``X-Honeycomb-Webhook-Token`` must match,
  compared in constant time (``hmac.compare_digest``): else 401, outcome ``denied``;
- the body at most 64 KiB (413) and an alert (400, outcome ``bad_input``);
- ``X-Honeycomb-Webhook-Delivery-ID`` is required (400) and accepted once: a replay
  of a delivery (or Honeycomb's own retry of one already accepted) gets 200
  ``duplicate`` and posts nothing (outcome ``ignored``). Accepted ids are kept in
  ``HONEYCOMB_HOOK_STATE_DB`` for 7 days, so a restart does not let a replay in.

Then 202 at once (Honeycomb waits at most 10 s), and the post runs in a task.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from opentelemetry.trace import SpanContext

from bot.config import Settings
from commands.ops.alerts import Alert, BadAlert, parse_alert
from telemetry import schema
from telemetry.pipeline.deliveries import DeliveryStore
from telemetry.schema import Outcome
from telemetry.spans import MessageTrace, root_span

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Honeycomb-Webhook-Token"
DELIVERY_HEADER = "X-Honeycomb-Webhook-Delivery-ID"
MAX_BODY_BYTES = 64 * 1024
KEEP_IDS_S = 7 * 86_400
ROOT_SPAN = "hook honeycomb"

Deliver = Callable[[Alert, SpanContext | None], Awaitable[None]]


class HoneycombHook:
    """The receiver's state: the secret, where alerts go, the delivery ids accepted."""

    def __init__(
        self,
        secret: str,
        deliver: Deliver,
        deliveries: DeliveryStore,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret.encode()
        self._deliver = deliver
        self._deliveries = deliveries
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/hooks/honeycomb", self.hook)]

    async def hook(self, request: web.Request) -> web.Response:
        with root_span(ROOT_SPAN, {schema.INTERACTION_TYPE: "webhook"}, {}) as hook_trace:
            response = await self._answer(request, hook_trace)
            hook_trace.span.set_attribute(schema.HOOK_STATUS, response.status)
            return response

    async def _answer(self, request: web.Request, hook_trace: MessageTrace) -> web.Response:
        token = request.headers.get(TOKEN_HEADER, "").encode()
        if not hmac.compare_digest(token, self._secret):
            hook_trace.set_outcome(Outcome.DENIED)
            return web.json_response({"error": "bad or missing webhook token"}, status=401)
        body = await _read_limited(request)
        if body is None:
            hook_trace.set_outcome(Outcome.BAD_INPUT)
            return web.json_response({"error": "body too large"}, status=413)
        try:
            alert = parse_alert(json.loads(body))
        except (json.JSONDecodeError, UnicodeDecodeError, BadAlert) as exc:
            reason = str(exc) if isinstance(exc, BadAlert) else "the body is not JSON"
            hook_trace.record_error(BadAlert(reason), Outcome.BAD_INPUT)
            return web.json_response({"error": reason}, status=400)
        hook_trace.span.set_attribute(schema.ALERT_NAME, alert.name)
        hook_trace.span.set_attribute(schema.ALERT_STATUS, alert.status)
        delivery = request.headers.get(DELIVERY_HEADER, "").strip()
        if not delivery or len(delivery) > 200:
            hook_trace.record_error(BadAlert("no delivery id"), Outcome.BAD_INPUT)
            return web.json_response({"error": f"{DELIVERY_HEADER} is required"}, status=400)
        hook_trace.span.set_attribute(schema.HOOK_DELIVERY_ID, delivery)
        now = int(self._clock() * 1e9)
        if not self._deliveries.first_time(
            delivery, now, forget_before_ns=now - int(KEEP_IDS_S * 1e9)
        ):
            hook_trace.set_outcome(Outcome.IGNORED)
            return web.json_response({"status": "duplicate"})
        task = asyncio.create_task(self._post(alert, hook_trace.span.get_span_context()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.json_response({"status": "accepted"}, status=202)

    async def _post(self, alert: Alert, hook: SpanContext) -> None:
        try:
            await self._deliver(alert, hook)
        except Exception:
            log.exception("posting the Honeycomb alert %s failed", alert.name)

    async def close(self, timeout_s: float = 2.0) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)
        self._deliveries.close()


async def _read_limited(request: web.Request) -> bytes | None:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(16 * 1024):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def honeycomb_hook(settings: Settings, deliver: Deliver) -> HoneycombHook | None:
    """The receiver for ``settings``, or None unless the secret and the channel are set."""
    secret = settings.honeycomb_webhook_secret
    if secret is None or settings.alert_channel_id is None:
        return None
    return HoneycombHook(
        secret.get_secret_value(), deliver, DeliveryStore.open(settings.honeycomb_hook_state_db)
    )
